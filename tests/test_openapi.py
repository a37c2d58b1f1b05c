"""GET /openapi.json: a valid OpenAPI 3.1 document of every API route, built from the routes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from starlette.applications import Starlette
from starlette.routing import Route

from hivecall.openapi import OPERATIONS, Undocumented, api_routes, document
from hivecall.web.api import VoiceToolCall

JSON = {"content-type": "application/json"}


@pytest.fixture
async def doc(anon: httpx.AsyncClient) -> dict[str, Any]:
    # Served without a token: a list of routes and body shapes, nothing of this hub's own.
    r = await anon.get("/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    data: dict[str, Any] = r.json()
    return data


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.upper(), p, op) for p, item in doc["paths"].items() for m, op in item.items()]


async def test_the_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    assert doc["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(doc).validate()


async def test_every_api_route_is_in_it_once(app: Starlette, doc: dict[str, Any]) -> None:
    served = sorted((m, r.path) for m, r in api_routes(app.routes))
    assert sorted((m, p) for m, p, _ in operations(doc)) == served == sorted(OPERATIONS)
    assert any(p.startswith("/v1/") for _, p in served)  # the compat routes too
    assert ("POST", "/api/chat") in served and ("GET", "/api/tags") in served
    # A route nobody described, or a description of a route that went away, is an error.
    with pytest.raises(Undocumented, match="/api/new"):
        document([*app.routes, Route("/api/new", lambda r: None, methods=["POST"])])
    with pytest.raises(Undocumented, match="/api/health"):
        document([r for r in app.routes if getattr(r, "path", "") != "/api/health"])


async def test_bodies_are_the_routes_own_models(doc: dict[str, Any]) -> None:
    body = doc["paths"]["/api/phone"]["post"]["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/VoiceToolCall"
    }
    own = VoiceToolCall.model_json_schema(ref_template="#/components/schemas/{model}")
    assert doc["components"]["schemas"]["VoiceToolCall"] == own
    # Bodies are JSON (read_json refuses anything else) except the SDP offer.
    media = {
        (m, p): list(op["requestBody"]["content"])
        for m, p, op in operations(doc)
        if "requestBody" in op
    }
    assert media.pop(("POST", "/api/calls/{call_id}/local/offer")) == ["application/sdp"]
    assert set(map(tuple, media.values())) == {("application/json",)}
    # Optional bodies say so.
    assert doc["paths"]["/api/calls/{call_id}/end"]["post"]["requestBody"]["required"] is False
    turns = doc["paths"]["/api/turns"]["get"]["parameters"]
    assert {p["name"]: p["in"] for p in turns} == dict.fromkeys(
        ["agent", "session_id", "call_id", "status", "limit"], "query"
    )


async def test_errors_have_the_shape_each_client_reads(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert schemas["ErrorBody"]["required"] == ["error"]
    assert schemas["ErrorDetail"]["required"] == ["code", "message"]
    flavours = {}
    for _, path, op in operations(doc):
        assert op["responses"]["4XX"] == op["responses"]["5XX"]
        flavours[path] = op["responses"]["4XX"]["$ref"].rpartition("/")[2]
    assert flavours["/api/phone"] == "Error"
    assert flavours["/v1/chat/completions"] == "OpenAIError"
    assert flavours["/api/chat"] == "OllamaError"
    assert set(flavours.values()) == {"Error", "OpenAIError", "OllamaError"}


async def test_the_security_it_names_is_the_one_enforced(
    anon: httpx.AsyncClient, doc: dict[str, Any]
) -> None:
    """Every operation that names a security scheme refuses a caller without one (401), and
    every one that names none answers without."""
    assert set(doc["components"]["securitySchemes"]) == {"token", "session", "key", "worker"}
    open_ones = []
    for method, path, op in operations(doc):
        url = path.replace("{", "").replace("}", "")  # every parameter: its own name
        if "requestBody" in op:
            r = await anon.request(method, url, content=b"{}", headers=JSON)
        else:
            r = await anon.request(method, url)
        if op["security"]:
            assert r.status_code == 401, (method, path, r.text)
        else:
            assert r.status_code != 401, (method, path, r.text)
            open_ones.append(f"{method} {path}")
    assert sorted(open_ones) == [
        "GET /api/health",
        "GET /api/version",
        "GET /openapi.json",
        "POST /api/join",
        "POST /api/pairing/claim",
    ]
