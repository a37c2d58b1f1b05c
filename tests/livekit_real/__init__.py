"""Tests against a real LiveKit server (livekit-server, the Go SFU) on 127.0.0.1.

scripts/livekit-server.sh builds it with `go install` (once, cached) and runs it loopback-only;
`conftest.py` starts one per test session. Without Go the tests skip (they fail instead under
HIVECALL_TEST_REQUIRE_BROWSER=1, as in `make test` as root). They check what the stand-in in
tests/livekit_standin/ can only imitate: media between two participants, and the hub's rooms on
the server itself.
"""
