"""Cloud calls: LiveKit rooms with several people and several agents (issue 6).

The hub never routes media on this path: it creates rooms, mints join tokens and dispatches the
`hivecall worker` (a LiveKit Agents worker) into them. livekit.py wraps LiveKit's server API,
rooms.py is what the calls API uses, invites.py lets friends join, worker.py is the worker.
"""
