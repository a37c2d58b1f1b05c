"""hardening: agents' own environment, the caller of a turn, preset commands with `--`

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 12:00:00.000000

Agents' api_keys stored in clear are sealed by the hub when it opens the store
(agents.records.Agents.seal_plain_keys): sealing needs the home's key file, which a migration
does not see.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Preset commands as earlier versions stored them (the message where a CLI could read it as an
# option), and what they are now (runtimes/presets.py).
_OLD_TO_NEW = {
    "claude": (["claude", "-p", "{message}"], ["claude", "-p", "--", "{message}"]),
    "codex": (["codex", "exec", "{message}"], ["codex", "exec", "--", "{message}"]),
    "aider": (
        ["aider", "--yes-always", "--no-pretty", "--no-stream", "--message", "{message}"],
        ["aider", "--yes-always", "--no-pretty", "--no-stream", "--message={message}"],
    ),
    "opencode": (["opencode", "run", "{message}"], ["opencode", "run", "--", "{message}"]),
    "goose": (["goose", "run", "--text", "{message}"], ["goose", "run", "--text={message}"]),
    "gemini": (["gemini", "-p", "{message}"], ["gemini", "--prompt={message}"]),
}


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("env", sa.JSON(), nullable=False, server_default="{}"))
    with op.batch_alter_table("turns") as batch:
        batch.add_column(
            sa.Column("caller", sa.String(length=160), nullable=False, server_default="owner")
        )
    agents = sa.table(
        "agents",
        sa.column("id", sa.String),
        sa.column("preset", sa.String),
        sa.column("command", sa.JSON),
    )
    conn = op.get_bind()
    for agent_id, preset, command in conn.execute(
        sa.select(agents.c.id, agents.c.preset, agents.c.command)
    ).all():
        old_new = _OLD_TO_NEW.get(preset or "")
        if old_new and list(command or []) == old_new[0]:
            conn.execute(agents.update().where(agents.c.id == agent_id).values(command=old_new[1]))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("turns") as batch:
        batch.drop_column("caller")
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("env")
