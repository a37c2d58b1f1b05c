"""What a hub that stopped without closing (SIGKILL, power loss) left: turns still marked queued
or running, and maybe their agents' processes."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import select, update

from hivecall.runtimes.orphans import kill_orphans
from hivecall.runtimes.runner import alive as runner_alive
from hivecall.store import Store
from hivecall.store.models import Turn
from hivecall.turns.queries import UNFINISHED

log = logging.getLogger(__name__)


async def recover(store: Store) -> int:
    """Mark turns a previous process left unfinished as interrupted. Returns how many.

    A hub that was killed could not stop its agents: their process groups may still run,
    editing the workspace beside the next turn. They are killed first.
    """
    async with store.session() as s:
        query = select(Turn.id, Turn.runner).where(Turn.status.in_(UNFINISHED))
        rows = (await s.execute(query)).all()
    # A turn another live process runs (`hivecall ask` in a terminal) is its own business.
    orphaned = {turn_id for turn_id, runner in rows if not runner_alive(runner)}
    if not orphaned:
        return 0
    if killed := await kill_orphans(orphaned):
        log.warning("killed agent processes a stopped hub left running", extra={"groups": killed})
    async with store.session() as s, s.begin():
        result = await s.execute(
            update(Turn)
            .where(Turn.id.in_(orphaned), Turn.status.in_(UNFINISHED))
            .values(
                status="interrupted",
                error_code="hub_restarted",
                spoken="Sorry, the hub restarted while the agent was working, so it stopped.",
                finished_at=datetime.now(UTC),
            )
        )
    count = int(getattr(result, "rowcount", 0) or 0)
    if count:
        log.warning("marked unfinished turns interrupted", extra={"count": count})
    return count
