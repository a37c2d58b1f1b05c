"""The v1 handshake cannot be replayed or forced in a loop (hivemind/guard.py): a captured
client envelope is refused before any key is derived, and unfinished handshakes are limited
per access key and per peer address."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from hivecall.hivemind import guard
from hivecall.hivemind.guard import Envelopes, Failures
from hivecall.hivemind_protocol.crypto import envelope, new_iv
from hivecall.hivemind_protocol.wire import TOO_MANY, MsgType
from tests.hivemind.conftest import Cred, Hive
from tests.hivemind.peer import Peer

SHAKE = {"binarize": False, "encodings": ["JSON-B64"], "ciphers": ["AES-GCM"]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def derivations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many PBKDF2 key derivations the listener ran."""
    from hivecall.hivemind import handshake

    runs: list[int] = []
    real: Callable[..., bytes] = handshake.derive_key

    def counting(*args: Any) -> bytes:
        runs.append(1)
        return real(*args)

    monkeypatch.setattr(handshake, "derive_key", counting)
    return runs


async def shake(hive: Hive, cred: Cred, env: str) -> tuple[str, tuple[int | None, str | None]]:
    """One connection that sends the client shake `env` and leaves after the server's answer:
    ("answered" | "closed", the close the server sent, if any)."""
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    try:
        await peer.recv_plain()
        await peer.recv_plain()
        await peer.send_plain(MsgType.SHAKE, {**SHAKE, "envelope": env})
        while "envelope" not in (await peer.recv_plain()).payload:
            pass
    except Exception:  # closed by the server
        return "closed", await peer.closed()
    await peer.aclose()
    return "answered", (None, None)


async def settled(hive: Hive) -> None:
    """Wait until the server has finished with every closed connection."""
    async with asyncio.timeout(5):
        while hive.listener.live:
            await asyncio.sleep(0.01)


async def test_a_replayed_envelope_is_refused_before_any_key_is_derived(
    hive: Hive, derivations: list[int]
) -> None:
    cred = await hive.add("sat")
    captured = envelope(cred.password, new_iv())  # what anyone on the path of ws:// sees
    assert (await shake(hive, cred, captured))[0] == "answered"
    assert len(derivations) == 1
    for _ in range(3):
        assert await shake(hive, cred, captured) == ("closed", (1008, "envelope replayed"))
    assert len(derivations) == 1
    # the real client, with a fresh envelope, is not affected by the replays
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.handshake()
    await peer.utter("still me")
    assert (await peer.recv_bus())[0] == "speak"


async def test_an_envelope_is_refused_when_resent_on_its_own_connection(hive: Hive) -> None:
    cred = await hive.add("sat")
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.recv_plain()
    await peer.recv_plain()
    env = envelope(cred.password, new_iv())
    await peer.send_plain(MsgType.SHAKE, {**SHAKE, "envelope": env})
    await peer.send_plain(MsgType.SHAKE, {**SHAKE, "envelope": env})
    assert await peer.closed() == (1008, "envelope replayed")


async def test_the_envelope_memory_is_per_client(hive: Hive) -> None:
    """The same iv under another client's password is another envelope: not a replay."""
    a, b = await hive.add("a"), await hive.add("b")
    iv = new_iv()
    assert (await shake(hive, a, envelope(a.password, iv)))[0] == "answered"
    assert (await shake(hive, b, envelope(b.password, iv)))[0] == "answered"


async def test_failed_handshakes_lock_the_key_out_without_deriving(
    hive: Hive, derivations: list[int]
) -> None:
    clock = Clock()
    hive.listener.failures = Failures(clock=clock)
    cred = await hive.add("sat")
    for _ in range(guard.FAILURES_PER_KEY):
        wrong = envelope("not-the-password-at-all", new_iv())
        assert await shake(hive, cred, wrong) == ("closed", (1008, "invalid authorization"))
    await settled(hive)
    # now even the right password is closed at once, before the offer: nothing derived
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    assert await peer.closed() == TOO_MANY
    assert derivations == []
    # another client (another key) from the same address is not locked out
    other = await hive.add("other")
    ok = await Peer.connect(hive.port, other.key, other.password)
    await ok.handshake()
    await ok.aclose()
    # a minute later the key may try again
    clock.now += guard.FAILURE_WINDOW
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.handshake()
    await peer.utter("back again")
    assert (await peer.recv_bus())[0] == "speak"


async def test_a_replay_loop_costs_at_most_a_few_derivations(
    hive: Hive, derivations: list[int]
) -> None:
    """The worst case: the replayer waits out the envelope memory every time (or the client
    made enough new envelopes to push the captured one out). Each replay that gets a key
    derived never uses it, so it counts as a failure, and the key is soon closed at once."""
    clock = Clock()
    hive.listener.envelopes = Envelopes(clock=clock)
    cred = await hive.add("sat")
    captured = envelope(cred.password, new_iv())
    outcomes: list[str] = []
    for _ in range(30):
        clock.now += guard.WINDOW
        outcome, _ = await shake(hive, cred, captured)
        outcomes.append(outcome)
        await settled(hive)
    assert len(derivations) == guard.FAILURES_PER_KEY
    assert outcomes.count("answered") == guard.FAILURES_PER_KEY


async def test_unknown_keys_lock_the_address_out(hive: Hive) -> None:
    clock = Clock()
    hive.listener.failures = Failures(clock=clock)
    cred = await hive.add("sat")
    for i in range(guard.FAILURES_PER_ADDRESS):
        stranger = await Peer.connect(hive.port, f"guessed-key-{i:04d}", "whatever-password")
        assert await stranger.closed() == (1008, "invalid authorization")
    await settled(hive)
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    assert await peer.closed() == TOO_MANY
    clock.now += guard.FAILURE_WINDOW
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.handshake()
    await peer.aclose()


async def test_finished_handshakes_are_not_failures(hive: Hive) -> None:
    """Many clients at once from one address (satellites behind one NAT, the benchmark's 32)
    all get in: only handshakes that do not finish count."""
    cred = await hive.add("sat")
    peers = [await Peer.connect(hive.port, cred.key, cred.password) for _ in range(40)]
    await asyncio.gather(*(p.handshake(session=f"s{i}") for i, p in enumerate(peers)))
    for p in peers:
        await p.aclose()
    await settled(hive)
    peer = await Peer.connect(hive.port, cred.key, cred.password)
    await peer.handshake()
    await peer.utter("one more")
    assert (await peer.recv_bus())[0] == "speak"


def test_envelopes_are_remembered_for_the_window_and_bounded() -> None:
    clock = Clock()
    seen = Envelopes(window=600, per_client=3, clock=clock)
    assert seen.first_use("c", b"1") and not seen.first_use("c", b"1")
    clock.now += 599
    assert not seen.first_use("c", b"1")
    clock.now += 1
    assert seen.first_use("c", b"1")  # past the window: forgotten
    for iv in (b"2", b"3", b"4"):
        assert seen.first_use("c", iv)
    assert seen.first_use("c", b"1")  # pushed out by the three newer ones
    seen.retain(["other"])
    assert seen.first_use("c", b"4")  # a deleted client's memory goes with it
