"""long work: a turn's progress lines, the voice tool call that started it, its runner

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 13:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("turns") as batch:
        batch.add_column(sa.Column("tool_call_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("progress", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("runner", sa.String(length=200), nullable=True))
        batch.create_index("ux_turns_tool_call", ["call_id", "tool_call_id"], unique=True)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("turns") as batch:
        batch.drop_index("ux_turns_tool_call")
        batch.drop_column("runner")
        batch.drop_column("progress")
        batch.drop_column("tool_call_id")
