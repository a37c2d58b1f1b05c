"""A LiveKit server stand-in for tests and benchmarks (see server.py for the object's API).

Real wire protocols on 127.0.0.1, driven by the unmodified `livekit-api` client, the
`livekit-agents` AgentServer and LiveKit client SDKs:
- Twirp RoomService / AgentDispatchService (`twirp.py`): binary protobuf, JWT checked with
  `TokenVerifier`, grants enforced as livekit-server does.
- `/agent` worker websocket (`workers.py`): registration, availability, JobAssignment with a
  minted agent token, job status updates, terminations.
- `/rtc` and `/rtc/v1` (`rtc.py`): recorded and refused (no SFU), with `validate` answers the
  LiveKit client SDKs surface as errors.

    from tests.livekit_standin.server import running_standin

    with running_standin() as lk:
        api = LiveKitAPI(lk.url, lk.api_key, lk.api_secret)
"""
