"""The one HTTP error contract: its body, its field wording, and the handlers both apps install.

Unit tests of the handlers on a small FastAPI app driven in memory (httpx's ASGI transport); the
cloud's and the agent's real servers are tested with the same expectations in tests/cloud and
tests/edge_agent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, StringConstraints, TypeAdapter, ValidationError
from starlette.exceptions import HTTPException

from dockside.errors import AuthError, Conflict, InputError, MalformedJson, NotFound, PrinterUnreachable
from dockside.http_errors import (
    STATUS_ERRORS,
    CatchAllMiddleware,
    body_too_large_message,
    describe_field_errors,
    error_body,
    install_error_handlers,
    invalid_body,
)

Code = Annotated[str, StringConstraints(min_length=1, max_length=8, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]


class Parcel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    station: Code
    weight_g: int
    reason: Annotated[str, StringConstraints(max_length=5)] = ""


def _errors(value: Any) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as caught:
        TypeAdapter(Parcel).validate_python(value)
    return list(caught.value.errors(include_url=False, include_input=False))


def test_the_body_is_the_contract_shape() -> None:
    assert error_body("order_not_found", "no such order") == {
        "error": {"code": "order_not_found", "message": "no such order"}
    }


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ({"weight_g": 1}, "station is missing"),
        ({"station": 5, "weight_g": 1}, "station must be a text"),
        ({"station": "", "weight_g": 1}, "station must not be empty"),
        ({"station": "S 1", "weight_g": 1}, "station may only hold letters, digits and . _ -"),
        ({"station": "S1", "weight_g": 1, "reason": "torn label"}, "reason is longer than 5 characters"),
        ({"station": "S1", "weight_g": 1, "force": True}, "force is not a field of this request"),
        ({"station": "S1", "weight_g": "heavy"}, "weight_g: Input should be a valid integer"),
        (["S1"], "the body must be a JSON object"),
    ],
)
def test_each_field_problem_is_said_plainly(value: Any, said: str) -> None:
    message = describe_field_errors(_errors(value))

    assert message.startswith(said), message
    assert message.endswith(": fix the request and send it again")


def test_only_three_problems_are_shown_and_the_rest_counted() -> None:
    message = describe_field_errors(
        _errors({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}), fix="send a parcel", whole="the parcel"
    )

    assert message.count(";") == 2
    assert message.endswith(" (and 4 more): send a parcel")


def test_a_hostile_key_is_cut_short_and_a_value_never_echoed() -> None:
    message = describe_field_errors(_errors({"station": "S1 <script>", "weight_g": 1, "k" * 5000: 1}))

    assert "<script>" not in message
    assert "k" * 64 in message
    assert "k" * 65 not in message


def test_the_whole_value_is_named_as_told() -> None:
    assert describe_field_errors(_errors("a parcel"), whole="the order").startswith(
        "the order must be a JSON object"
    )


def test_a_body_that_is_not_json_is_400_and_one_of_the_wrong_shape_422() -> None:
    with pytest.raises(ValidationError) as broken:
        Parcel.model_validate_json(b'{"station": ')
    with pytest.raises(ValidationError) as wrong:
        Parcel.model_validate_json(b'{"station": "S1"}')

    not_json = invalid_body(broken.value.errors(), expected="a JSON parcel")
    misshapen = invalid_body(wrong.value.errors(), expected="a JSON parcel")

    assert isinstance(not_json, MalformedJson)
    assert (not_json.http_status, not_json.code) == (400, "invalid_json")
    assert "send a JSON parcel" in not_json.message
    assert type(misshapen) is InputError
    assert (misshapen.http_status, misshapen.code) == (422, "invalid_input")
    assert misshapen.message == "weight_g is missing: send a JSON parcel"


def test_the_standard_answers_say_what_to_do() -> None:
    assert STATUS_ERRORS[413][0] == "body_too_large"
    for code, message in STATUS_ERRORS.values():
        assert code.islower()
        assert " " not in code
        assert ": " in message or message.startswith("send "), message
    assert "65,536 bytes" in body_too_large_message(64 * 1024)


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(CatchAllMiddleware)

    @app.post("/parcels")
    async def add_parcel(parcel: Parcel) -> dict[str, str]:
        return {"station": parcel.station}

    @app.get("/stream-then-crash")
    async def stream_then_crash() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first label,"
            raise RuntimeError("the disk went away")

        return StreamingResponse(chunks())

    @app.get("/raise/{kind}")
    async def raise_one(kind: str) -> None:
        errors: dict[str, Exception] = {
            "not_found": NotFound("order X does not exist: check the reference", code="order_not_found"),
            "conflict": Conflict("order X is packed: reprint it instead"),
            "auth": AuthError("the token is revoked: ask for a new one"),
            "printer": PrinterUnreachable("printer P1 is off: switch it on", code="printer_offline"),
            "worded": HTTPException(status_code=408, detail="no body arrived for 10 s: send it"),
            "teapot": HTTPException(status_code=418, detail="short and stout"),
            "bare": HTTPException(status_code=415),
            "crash": RuntimeError("SELECT secret FROM agents"),
        }
        raise errors[kind]

    return app


def _call(method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://dockside") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("not_found", 404, "order_not_found"),
        ("conflict", 409, "conflict"),
        ("auth", 401, "unauthenticated"),
        ("printer", 503, "printer_offline"),
        ("worded", 408, "body_timeout"),
        ("teapot", 418, "http_error"),
        ("bare", 415, "unsupported_media_type"),
    ],
)
def test_every_error_answers_with_its_status_and_code(kind: str, status: int, code: str) -> None:
    response = _call("GET", f"/raise/{kind}")

    assert response.status_code == status
    assert set(response.json()) == {"error"}
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]


def test_an_error_keeps_its_own_words_and_a_bare_one_gets_the_standard_ones() -> None:
    assert _call("GET", "/raise/worded").json()["error"]["message"] == "no body arrived for 10 s: send it"
    assert _call("GET", "/raise/bare").json()["error"]["message"] == STATUS_ERRORS[415][1]


def test_a_refused_credential_says_how_to_send_one() -> None:
    assert _call("GET", "/raise/auth").headers["www-authenticate"] == "Bearer"


def test_unknown_paths_and_methods_are_named() -> None:
    missing = _call("GET", "/nowhere")
    wrong = _call("DELETE", "/parcels")

    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    assert missing.json()["error"]["message"] == "there is no GET /nowhere: see /docs for the API"
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (405, "method_not_allowed")
    assert wrong.json()["error"]["message"] == "/parcels does not take DELETE: see /docs for the API"


def test_bad_bodies_are_400_when_not_json_and_422_naming_the_field() -> None:
    headers = {"content-type": "application/json"}
    broken = _call("POST", "/parcels", content=b'{"station": ', headers=headers)
    misshapen = _call("POST", "/parcels", json={"station": "S1", "weight_g": 1, "force": True})

    assert (broken.status_code, broken.json()["error"]["code"]) == (400, "invalid_json")
    assert broken.json()["error"]["message"].startswith("the body is not valid JSON (")
    assert (misshapen.status_code, misshapen.json()["error"]["code"]) == (422, "invalid_input")
    assert misshapen.json()["error"]["message"] == (
        "force is not a field of this request: fix the request and send it again"
    )


def test_a_crash_is_a_logged_500_without_a_trace(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="dockside.http_errors"):
        response = _call("GET", "/raise/crash")

    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "internal_error"
    incident = error["message"].split("(incident ")[1].split(",")[0]
    assert "SELECT" not in error["message"]
    assert any(incident in record.getMessage() for record in caplog.records)


def test_a_crash_after_the_answer_began_breaks_the_connection_instead() -> None:
    # A second response cannot follow a started one: the error goes on to the server, which cuts
    # the connection, so the client never takes half an answer for a whole one.
    with pytest.raises(RuntimeError, match="the disk went away"):
        _call("GET", "/stream-then-crash")
