"""Turns: what a front door asks of the bridge, and what the bridge keeps of it.

request (TurnRequest: one turn asked for), handle (a running turn as its callers follow it:
events, result), progress_gate (a runtime's progress, rate-limited), writer (group commit of turn
rows, and its SQLite fast path), queries (reading the turns table), recovery (turns a stopped hub
left unfinished), view (a turn as the API shows it), ids (time-ordered turn ids). The bridge
(bridge.py) runs turns with these.
"""
