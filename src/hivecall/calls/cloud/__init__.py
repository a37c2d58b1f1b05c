"""Cloud calls on the hub's side: LiveKit rooms with several people and several agents (issue 6).

The hub never routes media on this path: it creates rooms, mints join tokens and dispatches
`hivecall worker` (hivecall/cloud/, a front door of its own) into them. livekit.py wraps
LiveKit's server API, rooms.py is what the calls API uses, invites.py lets friends join, and
wire.py is what hub and worker tell each other besides a call's events (calls/events.py). Nothing
is imported here: the worker imports wire.py without the hub's room management.
"""
