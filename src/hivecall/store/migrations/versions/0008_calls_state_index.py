"""calls never hang: an index on calls.state for the connect-timeout sweeper

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 15:30:00.000000

"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("calls") as batch:
        batch.create_index("ix_calls_state", ["state"])


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("calls") as batch:
        batch.drop_index("ix_calls_state")
