"""Schemathesis against the real hub over HTTP: every operation of /openapi.json, fuzzed.

The hub runs in uvicorn on 127.0.0.1 (its own thread and loop), on each store, with the OpenAI
Realtime stand-in as its OpenAI and local calls off (no speech models to load). Cases come from
the document itself (loaded from the served /openapi.json), valid ones and invalid ones, once
with the owner token and once without any. Two checks hold on every answer:

- no 5xx, ever;
- every 4xx body is the error shape the route's clients read: hivecall's one shape
  `{"error": {"code": str, "message": str}}` (OpenAI's paths add `type` and `param`), and
  `{"error": str}` on Ollama's paths, as Ollama's clients expect.

Nothing is left out; what is bent, and why:

- Agent bodies (create and edit) get `runtime: "echo"`: a generated command agent would run a
  generated command line, and an openai_chat or hivemind agent would dial a generated address.
- A generated `openai_api_key` becomes the stand-in's key: any other is refused upstream, which
  the hub answers 502 `openai_key_rejected` by design (tests/calls/test_calls_api.py).
- The SDP offer is sent as text (`application/sdp`); local calls are off, so it never reaches
  WebRTC. SSE and NDJSON answers all end (turns on the echo agent finish at once).

Hypothesis is derandomized (the same cases every run) with a small budget per operation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.schemas import APIOperation

from hivecall.app import create_app
from hivecall.openapi import OPERATIONS, PATH
from hivecall.settings import Settings
from tests.conftest import OWNER, OWNER_HEADERS
from tests.keys import FAKE_OPENAI_KEY
from tests.standins.realtime.server import RealtimeStandin
from tests.standins.threaded import ServerThread

schemathesis.serializer.alias("application/sdp", "text/plain")

AGENT_WRITES = {("POST", "/api/agents"), ("PATCH", "/api/agents/{ref}")}
KEY_BODIES = {("PATCH", "/api/settings"), ("POST", "/api/settings/openai-key/test")}
TIMEOUT_S = 10


@pytest.fixture
def realtime() -> Iterator[RealtimeStandin]:
    with RealtimeStandin(api_key=FAKE_OPENAI_KEY) as standin:
        yield standin


@pytest.fixture
def hub(
    tmp_path: Path,
    database_url: str,
    realtime: RealtimeStandin,
    environ: dict[str, str],
    workspace: Path,
) -> Iterator[ServerThread]:
    settings = Settings(
        home=tmp_path / "home",
        database_url=database_url,
        owner_token=OWNER,
        openai_api_key=FAKE_OPENAI_KEY,
        openai_base_url=realtime.base_url,
        openai_timeout=2.0,
        local_max_calls=0,
    )
    app = create_app(settings, environ=environ, workspace=workspace)
    server = ServerThread(app, name="hub", lifespan="on").start()
    try:
        yield server
    finally:
        server.close()


def error_shape_problem(case: Case, body: bytes) -> str | None:
    """What is wrong with a 4xx body for the error shape the document gives its operation."""
    documented = case.operation.definition.raw["responses"]["4XX"]["$ref"].rpartition("/")[2]
    try:
        data = json.loads(body)
    except ValueError:
        return "the body is not JSON"
    error = data.get("error") if isinstance(data, dict) else None
    if documented == "OllamaError":
        return None if isinstance(error, str) and set(data) == {"error"} else "not {error: str}"
    if not isinstance(error, dict) or set(data) != {"error"}:
        return "not {error: {code, message}}"
    if not (isinstance(error.get("code"), str) and isinstance(error.get("message"), str)):
        return "error.code and error.message must be strings"
    fields = {"code", "message"} | ({"type", "param"} if documented == "OpenAIError" else set())
    if set(error) != fields:
        return f"unexpected error fields {sorted(error)}"
    return None


def tamed(case: Case) -> Case:
    """The bends the module docstring lists: nothing generated runs or dials anything."""
    key = (case.operation.method.upper(), case.operation.path)
    if isinstance(case.body, dict):
        if key in AGENT_WRITES:
            case.body["runtime"] = "echo"
        if key in KEY_BODIES and isinstance(case.body.get("openai_api_key"), str):
            case.body["openai_api_key"] = FAKE_OPENAI_KEY
    return case


class Run:
    """Sends cases to the hub and keeps every broken promise (not only the first)."""

    def __init__(self, hub: ServerThread, token: str | None) -> None:
        self.base_url = hub.origin
        self.headers = {"authorization": f"Bearer {token}"} if token else {}
        self.failures: list[str] = []
        self.statuses: dict[int, int] = {}
        self.session = requests.Session()

    def send(self, case: Case) -> None:
        tamed(case)
        response = case.call(
            base_url=self.base_url,
            session=self.session,
            headers=self.headers,
            timeout=TIMEOUT_S,
        )
        status = response.status_code
        self.statuses[status] = self.statuses.get(status, 0) + 1
        problem = None
        if status >= 500:
            problem = "a server error"
        elif status >= 400:
            problem = error_shape_problem(case, response.content)
        if problem:
            self.failures.append(
                f"{case.operation.label} -> {status} ({problem}): {response.content[:300]!r}\n"
                f"    {case.as_curl_command(headers=self.headers)}"
            )

    def fuzz(
        self,
        operation: APIOperation,
        mode: GenerationMode,
        examples: int,
        ids: dict[str, str] | None = None,
    ) -> None:
        """`examples` generated cases; `ids` pins path parameters to things that exist."""
        pinned = {n: v for n, v in (ids or {}).items() if "{" + n + "}" in operation.path}
        if ids is not None and not pinned:
            return
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=pinned or None)

        @given(case=strategy)
        @hypothesis_settings(
            max_examples=examples,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.generate],  # every failure is kept; no time spent shrinking
            suppress_health_check=list(HealthCheck),
        )
        def one(case: Case) -> None:
            self.send(case)

        try:
            one()
        except Unsatisfiable:
            # Nothing of this operation can be sent invalid (no body, unconstrained strings).
            assert mode is GenerationMode.NEGATIVE, operation.label

    def examples(self, operation: APIOperation) -> None:
        """The document's own request examples (on the echo agent): the paths that do work."""
        for media in operation.definition.raw.get("requestBody", {}).get("content", {}).values():
            if "example" in media:
                self.send(operation.Case(body=json.loads(json.dumps(media["example"]))))


def operations(hub: ServerThread) -> list[APIOperation]:
    schema = schemathesis.openapi.from_url(f"{hub.origin}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def existing(hub: ServerThread) -> dict[str, str]:
    """Things that exist, for the path parameters that name them (random ones are 404s)."""
    with requests.Session() as s:
        s.headers.update(OWNER_HEADERS)

        def made(path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
            r = s.post(f"{hub.origin}{path}", json=body, timeout=TIMEOUT_S)
            assert r.status_code in (200, 201), r.text
            data: dict[str, Any] = r.json()
            return data

        made("/api/agents", {"name": "probe", "runtime": "echo"})
        made("/api/keys", {"name": "probe"})
        return {
            "ref": "probe",
            "model": "probe",
            "name": "probe",
            "turn_id": made("/api/phone", {"agent_id": "probe", "message": "hi"})["turn_id"],
            "call_id": made("/api/calls", {"agent_id": "probe", "mode": "byok"})["call"]["id"],
            "id": made("/api/pairing")["pairing"]["id"],
        }


def test_no_case_is_a_server_error_or_breaks_the_error_shape(hub: ServerThread) -> None:
    ops = operations(hub)
    # Every operation of the table; schemathesis skips the one serving the document itself.
    expected = sorted(f"{m} {p}" for m, p in OPERATIONS if p != PATH)
    assert sorted(o.label for o in ops) == expected
    ids = existing(hub)
    owner = Run(hub, OWNER)
    # Deletions last, so what they remove was there for every other operation.
    for op in sorted(ops, key=lambda o: o.method.upper() == "DELETE"):
        owner.examples(op)
        # With path parameters, random ones meet nothing (404): most cases name what exists.
        unpinned = 3 if "{" in op.path else 10
        owner.fuzz(op, GenerationMode.POSITIVE, examples=unpinned)
        owner.fuzz(op, GenerationMode.NEGATIVE, examples=unpinned // 2)
        owner.fuzz(op, GenerationMode.POSITIVE, examples=10, ids=ids)
        owner.fuzz(op, GenerationMode.NEGATIVE, examples=5, ids=ids)
    anonymous = Run(hub, None)
    for op in ops:
        anonymous.fuzz(op, GenerationMode.POSITIVE, examples=3)
    assert owner.failures + anonymous.failures == []
    # The run reached past the front door: answers of every kind, not only refusals.
    assert owner.statuses.get(200, 0) > 20 and owner.statuses.get(201, 0) > 0
    assert 401 in anonymous.statuses and 200 in anonymous.statuses
