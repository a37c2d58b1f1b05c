"""Interop with the real upstream clients, unmodified, each from its own venv.

hivemind-bus-client 0.4.4 (with bitstring<5, ovos-bus-client<2) and the 1.2.x line, installed
by scripts/hivemind-clients.sh (make test runs it) into .hivemind-clients/. They run as
subprocesses against a hub this test starts on 127.0.0.1.

The 1.2 line speaks protocol v3 (Noise_XXpsk2, with the `noiseprotocol` library) when the
hub offers it, as hivecall's does: the v1 tests below hold it to the password handshake with
its own `max_protocol_version=2`, and the v3 tests let it choose.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from hivecall.hivemind.connection import Phase
from hivecall.hivemind_protocol.wire import V1_OFF
from tests.hivemind.conftest import Cred, Hive, MakeHive

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT / ".hivemind-clients"
DRIVER = Path(__file__).parent / "upstream_client.py"
MARK = "HIVECALL-RESULT "
VERSIONS = ["v044", "v12"]
# what keeps each client on the v1 password handshake (0.4.4 knows nothing else)
LEGACY: dict[str, tuple[str, ...]] = {"v044": (), "v12": ("--max-protocol", "2")}

pytestmark = pytest.mark.slow


def python_of(version: str) -> Path:
    py = CLIENTS / version / "bin" / "python"
    if not py.exists():
        pytest.fail(f"{py} is missing: run `bash scripts/hivemind-clients.sh` (make test does)")
    return py


class Upstream:
    """One upstream client process, connected (or refused) and waiting to be let go."""

    def __init__(self, proc: asyncio.subprocess.Process, result: dict[str, Any]) -> None:
        self.proc = proc
        self.result = result
        self._drain: asyncio.Task[bytes] | None = None

    @classmethod
    async def run(
        cls,
        version: str,
        hive: Hive,
        cred: Cred,
        mode: str,
        tmp: Path,
        *,
        binarize: bool = True,
        tls: bool = False,
        extra: tuple[str, ...] = (),
    ) -> Upstream:
        home = tmp / f"home-{version}-{mode}"
        home.mkdir(exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_CACHE_HOME": str(home / "cache"),
            "XDG_STATE_HOME": str(home / "state"),
            "LANG": "C.UTF-8",
        }
        args = [str(DRIVER), str(hive.port), cred.key, cred.password, mode]
        if not binarize:
            args.append("--no-binarize")
        if tls:
            args.append("--tls")
        args.extend(extra)
        proc = await asyncio.create_subprocess_exec(
            str(python_of(version)),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            limit=2**23,  # the clients log whole messages, and some are long
        )
        assert proc.stdout is not None
        log: list[str] = []
        try:
            async with asyncio.timeout(60):
                while line := (await proc.stdout.readline()).decode(errors="replace"):
                    if line.startswith(MARK):
                        break
                    log.append(line)
        except TimeoutError:
            proc.kill()
            raise
        if not line:
            raise AssertionError("upstream client died: " + "".join(log)[-3000:])
        client = cls(proc, json.loads(line[len(MARK) :]))
        client._drain = asyncio.create_task(proc.stdout.read())  # its logs, until it exits
        return client

    async def aclose(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self._drain is not None:
            await self._drain


def live_state(hive: Hive) -> list[tuple[str, str, bool]]:
    return [
        (c.cipher.value, c.encoding.value, c.binarize)
        for c in hive.listener.live
        if c.phase is Phase.ESTABLISHED
    ]


def live_versions(hive: Hive) -> list[int]:
    return [c.version for c in hive.listener.live if c.phase is Phase.ESTABLISHED]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("ciphers", "encodings", "binarize"),
    [
        ("AES-GCM", "JSON-B64", False),
        ("CHACHA20-POLY1305", "JSON-B64", False),
        ("AES-GCM", "JSON-B91", False),
        ("CHACHA20-POLY1305", "JSON-B91", True),
        ("AES-GCM", "JSON-B64", True),
    ],
)
async def test_utterance_speak_handled(
    make_hive: MakeHive,
    tmp_path: Path,
    version: str,
    ciphers: str,
    encodings: str,
    binarize: bool,
) -> None:
    async with make_hive(
        hivemind_ciphers=ciphers, hivemind_encodings=encodings, hivemind_binarize=binarize
    ) as hive:
        cred = await hive.add("satellite")
        client = await Upstream.run(version, hive, cred, "utter", tmp_path, extra=LEGACY[version])
        try:
            r = client.result
            assert r["handshake"], r
            assert r["protocol"] == 1 and live_versions(hive) == [1]
            # No 5 s stall (0.4.4's early-shake quirk): the client heard an offer, and never had
            # to start the handshake itself when its wait for one ran out.
            assert r["own_retries"] == 0, r
            assert (r["cipher"], r["encoding"]) == (ciphers, encodings)
            assert live_state(hive) == [(ciphers, encodings, binarize)]
            assert r["answered"], r
            assert len(r["speak"]) == 1 and "hello from upstream" in r["speak"][0]["utterance"]
            assert r["ovos.utterance.handled"] == [{}]
        finally:
            await client.aclose()
        turns = await hive.hub.bridge.list_turns()
        assert [(t.source, t.message) for t in turns] == [("hivemind", "hello from upstream")]


@pytest.mark.parametrize("version", VERSIONS)
async def test_client_side_binarize_off(make_hive: MakeHive, tmp_path: Path, version: str) -> None:
    """A client that will not send binary frames still gets answers (JSON out, binary in)."""
    async with make_hive() as hive:
        cred = await hive.add("satellite")
        client = await Upstream.run(
            version, hive, cred, "utter", tmp_path, binarize=False, extra=LEGACY[version]
        )
        try:
            assert client.result["answered"], client.result
            assert client.result["encoding"] == "JSON-B91"  # the clients' first choice
        finally:
            await client.aclose()


@pytest.mark.parametrize("version", VERSIONS)
async def test_wrong_password_refused(make_hive: MakeHive, tmp_path: Path, version: str) -> None:
    async with make_hive() as hive:
        cred = await hive.add("satellite")
        wrong = Cred(cred.name, cred.key, "Wr0ng-but-long-enough-password-xyz")
        client = await Upstream.run(version, hive, wrong, "utter", tmp_path, extra=LEGACY[version])
        try:
            assert not client.result["handshake"]
            assert client.result["speak"] == []
            assert live_state(hive) == []
        finally:
            await client.aclose()
        assert await hive.hub.bridge.list_turns() == []


@pytest.mark.parametrize("version", VERSIONS)
async def test_unknown_key_refused(make_hive: MakeHive, tmp_path: Path, version: str) -> None:
    async with make_hive() as hive:
        await hive.add("satellite")
        stranger = Cred("x", "0123456789abcdef0123456789abcdef", "Some-long-password-123456")
        client = await Upstream.run(
            version, hive, stranger, "utter", tmp_path, extra=LEGACY[version]
        )
        try:
            assert not client.result["handshake"]
            assert live_state(hive) == []
        finally:
            await client.aclose()


@pytest.mark.parametrize("version", VERSIONS)
async def test_disallowed_message_refused(
    make_hive: MakeHive, tmp_path: Path, version: str
) -> None:
    async with make_hive() as hive:
        cred = await hive.add("satellite")
        client = await Upstream.run(version, hive, cred, "refused", tmp_path, extra=LEGACY[version])
        try:
            r = client.result
            assert r["answered"], r
            (refusal,) = r["hive.message.refused"]
            assert refusal["type"] == "mycroft.stop"
            assert refusal["error"]["code"] == "hivemind_refused"
        finally:
            await client.aclose()


# -- protocol v3: Noise_XXpsk2, with the 1.2 line's own choice ---------------------------------


@pytest.mark.parametrize("binarize", [True, False])
async def test_v3_utterance_speak_handled(
    make_hive: MakeHive, tmp_path: Path, binarize: bool
) -> None:
    async with make_hive(hivemind_binarize=binarize) as hive:
        cred = await hive.add("satellite")
        client = await Upstream.run("v12", hive, cred, "utter", tmp_path)
        try:
            r = client.result
            assert r["handshake"] and r["protocol"] == 3, r
            assert live_versions(hive) == [3]
            assert [c.binarize for c in hive.listener.live] == [binarize]
            assert r["answered"], r
            assert len(r["speak"]) == 1 and "hello from upstream" in r["speak"][0]["utterance"]
            assert r["ovos.utterance.handled"] == [{}]
        finally:
            await client.aclose()
        turns = await hive.hub.bridge.list_turns()
        assert [(t.source, t.message) for t in turns] == [("hivemind", "hello from upstream")]


@pytest.mark.parametrize("binarize", [True, False])
async def test_v3_long_messages_are_chunked_both_ways(
    make_hive: MakeHive, tmp_path: Path, binarize: bool
) -> None:
    """150 kB each way: more than one Noise message (65535 bytes), so the client splits its
    utterance and the hub its answer, and each side reassembles the other's."""
    async with make_hive(max_message_chars=200_000, spoken_max_chars=200_000) as hive:
        cred = await hive.add("satellite")
        client = await Upstream.run("v12", hive, cred, "utter-long", tmp_path, binarize=binarize)
        try:
            r = client.result
            assert r["protocol"] == 3 and r["answered"], r
            assert r["speak"][0]["chars"] > r["sent_chars"] > 150_000
        finally:
            await client.aclose()
        (turn,) = await hive.hub.bridge.list_turns()
        assert len(turn.message) == r["sent_chars"]


async def test_v3_wrong_password_refused(
    make_hive: MakeHive, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The client cannot read message 2 (the PSK differs), gives up and leaves (and retries:
    every attempt ends the same way)."""
    async with make_hive() as hive:
        cred = await hive.add("satellite")
        wrong = Cred(cred.name, cred.key, "Wr0ng-but-long-enough-password-xyz")
        with caplog.at_level(logging.INFO, logger="hivecall.hivemind.server"):
            client = await Upstream.run("v12", hive, wrong, "utter", tmp_path)
            try:
                assert not client.result["handshake"]
                assert client.result["speak"] == []
                assert live_state(hive) == []
            finally:
                await client.aclose()
        assert "left during the Noise handshake" in caplog.text
        assert await hive.hub.bridge.list_turns() == []


async def test_v3_disallowed_message_refused(make_hive: MakeHive, tmp_path: Path) -> None:
    async with make_hive() as hive:
        cred = await hive.add("satellite")
        client = await Upstream.run("v12", hive, cred, "refused", tmp_path)
        try:
            r = client.result
            assert r["protocol"] == 3 and r["answered"], r
            (refusal,) = r["hive.message.refused"]
            assert refusal["type"] == "mycroft.stop"
        finally:
            await client.aclose()


async def test_v3_key_survives_a_restart(make_hive: MakeHive, tmp_path: Path) -> None:
    """The client pins the hub's static key on first use and refuses a hub whose key changed:
    a restarted hub (same home) must present the same key."""
    async with make_hive() as hive:
        cred = await hive.add("satellite")
        client = await Upstream.run("v12", hive, cred, "utter", tmp_path)
        await client.aclose()
        assert client.result["protocol"] == 3 and client.result["answered"]
    async with make_hive() as hive:  # same home, same port, same client home (its pins)
        client = await Upstream.run("v12", hive, cred, "utter", tmp_path)
        try:
            assert client.result["protocol"] == 3 and client.result["answered"], client.result
        finally:
            await client.aclose()


async def test_v3_client_falls_back_to_v1_without_argon2id(
    make_hive: MakeHive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hivecall.hivemind.server.argon2_available", lambda: False)
    async with make_hive() as hive:
        cred = await hive.add("satellite")
        client = await Upstream.run("v12", hive, cred, "utter", tmp_path)
        try:
            assert client.result["protocol"] == 1 and client.result["answered"], client.result
            assert live_versions(hive) == [1]
        finally:
            await client.aclose()


# -- a v3-only hub (hivemind_min_protocol = 3) ---------------------------------------------------


async def test_v3_only_hub_answers_the_12_line(make_hive: MakeHive, tmp_path: Path) -> None:
    async with make_hive(hivemind_min_protocol=3) as hive:
        cred = await hive.add("satellite")
        client = await Upstream.run("v12", hive, cred, "utter", tmp_path)
        try:
            r = client.result
            assert r["handshake"] and r["protocol"] == 3 and r["answered"], r
            assert live_versions(hive) == [3]
        finally:
            await client.aclose()


@pytest.mark.parametrize("version", VERSIONS)
async def test_v3_only_hub_refuses_v1_clients_cleanly(
    make_hive: MakeHive,
    tmp_path: Path,
    version: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """0.4.4 speaks only v1, and the 1.2 line held to v1 too: closed with the reason, before
    the hub derives anything, and never with an error on the hub's side."""
    from hivecall.hivemind import handshake

    derived: list[object] = []
    monkeypatch.setattr(handshake, "derive_key", lambda *a: derived.append(a))
    async with make_hive(hivemind_min_protocol=3) as hive:
        cred = await hive.add("satellite")
        with caplog.at_level(logging.INFO, logger="hivecall.hivemind.server"):
            client = await Upstream.run(
                version, hive, cred, "utter", tmp_path, extra=LEGACY[version]
            )
            try:
                assert not client.result["handshake"], client.result
                assert live_state(hive) == []
            finally:
                await client.aclose()
        why = [getattr(r, "why", None) for r in caplog.records]
        assert V1_OFF in why, caplog.text
        assert derived == []
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert await hive.hub.bridge.list_turns() == []


def test_driver_never_imports_hivecall() -> None:
    assert "hivecall" not in DRIVER.read_text().split('"""', 2)[2]
    assert sys.executable  # the driver runs under the upstream venvs, not this one
