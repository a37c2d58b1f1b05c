"""How a turn is shown: one JSON view of a stored turn, for the API, the calls API and the CLI."""

from __future__ import annotations

from typing import Any

from hivecall.store.models import Turn


def turn_view(t: Turn) -> dict[str, Any]:
    return {
        "id": t.id,
        "agent_id": t.agent_id,
        "session_id": t.session_id,
        "call_id": t.call_id,
        "source": t.source,
        "status": t.status,
        "message": t.message,
        "reply": t.reply,
        "spoken": t.spoken,
        "error_code": t.error_code,
        "queued_at": t.queued_at.isoformat(),
        "started_at": t.started_at.isoformat() if t.started_at else None,
        "finished_at": t.finished_at.isoformat() if t.finished_at else None,
        "duration_ms": t.duration_ms,
        "progress": t.progress or [],
    }
