"""`hivecall worker`: the front door that speaks for hivecall's agents in cloud calls (issue 6).

A LiveKit Agents worker, run beside the hub or elsewhere; it reaches the hub over HTTP only. The
hub's own side of cloud calls (rooms, dispatches, invites, the wire between the two) is
hivecall/calls/cloud/.

worker.py is the worker process (registering, accepting jobs, draining); job.py is one job, from
the claim to leaving the room; room.py is who is in the room; call_floor.py applies the floor
rule (floor.py) in the session, with outbox.py taking its lines to the hub; tools.py and
running_turns.py relay the agent's work; hubclient.py (with sse.py) is the HTTP client.
"""
