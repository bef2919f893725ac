"""Hostile templates at the cloud: validation, publish and preview answer 422 with the reason, the
cloud keeps serving other requests while a hostile validation runs, and a template an agent set
aside opens an exception (real HTTP and gRPC servers)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from sqlalchemy import select

from cloud.storage import schema
from cloud.storage.store import dumps
from cloud.storage.versions import insert_next_version
from dockside.v1 import sync_pb2
from tests.cloud.conftest import RunningCloud, order

# The issue's templates: the first took 6.7 s to validate and stopped the whole cloud; the second
# passes with its sample (weight 1) and overruns only with a real parcel's weight.
ISSUE_STATIC = "^XA^CI28{% if ((((3)**64)**64)**64)**64 > 7 %}^FO1,1^FDx^FS{% endif %}^XZ"
ISSUE_DATA = "^XA^CI28^FO1,1^FH^FD{{ (((parcel.weight_g)**64)**64)**64 }}^FS^XZ"
# Runs its whole validation budget on the sample: 9,999 x 9,999 loop turns.
LOOPS = (
    "^XA^CI28{% for a in 'x' * parcel.weight_g %}{% for b in 'x' * parcel.weight_g %}"
    "{% endfor %}{% endfor %}^FO1,1^FDdone^FS^XZ"
)
GOOD = "^XA^CI28^FO1,1^FH^FD{{ parcel.weight_g }} g^FS^XZ"


def _version(source: str, weight: int = 1) -> dict[str, Any]:
    return {
        "language": "zpl",
        "source": source,
        "sample_data": {"parcel": {"weight_g": weight}},
        "width_dots": 812,
        "height_dots": 1218,
    }


def _error(response: httpx.Response) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"error"}, body
    return dict(body["error"])


def test_the_issues_templates_and_a_budget_overrun_answer_422_with_the_reason(cloud: RunningCloud) -> None:
    static = cloud.api.post("/api/v1/templates/hostile/versions", json=_version(ISSUE_STATIC))
    assert static.status_code == 422
    error = _error(static)
    assert error["code"] == "template_unsafe"
    assert "template 'hostile' does not render its sample data" in error["message"]
    assert "a power of more than 4,096 bits" in error["message"]

    loops = cloud.api.post("/api/v1/templates/hostile/versions", json=_version(LOOPS, weight=9_999))
    assert loops.status_code == 422
    assert _error(loops)["code"] == "template_over_budget"
    assert "simplify the loops" in _error(loops)["message"]

    # The data-dependent one renders its sample: it is stored, and the agent stops it at a real
    # parcel (tests/edge_agent/packing/test_hostile_templates.py).
    data = cloud.api.post("/api/v1/templates/hostile/versions", json=_version(ISSUE_DATA))
    assert data.status_code == 201, data.text
    assert cloud.api.get("/api/v1/templates/hostile/versions").json()["versions"][0]["version"] == 1


def test_a_hostile_version_stored_before_the_bounds_cannot_be_published_or_previewed(
    cloud: RunningCloud,
) -> None:
    made = cloud.api.post("/api/v1/templates/legacy/versions", json=_version(GOOD))
    assert made.status_code == 201, made.text
    with cloud.store.read() as conn:
        tenant_id = conn.execute(
            select(schema.template_versions.c.tenant_id).where(schema.template_versions.c.name == "legacy")
        ).scalar_one()
    values = {
        "language": "zpl",
        "source": ISSUE_STATIC,
        "sample_data": dumps({"parcel": {"weight_g": 1}}),
        "width_dots": 812,
        "height_dots": 1218,
        "dpi": 203,
        "active": False,
    }
    number = insert_next_version(
        cloud.store, schema.template_versions, tenant_id, "legacy", values, lambda _c, n: n
    )
    assert number == 2

    published = cloud.api.post(f"/api/v1/templates/legacy/versions/{number}/publish")
    assert published.status_code == 422
    assert "a power of more than 4,096 bits" in _error(published)["message"]
    preview = cloud.api.get(f"/api/v1/templates/legacy/versions/{number}/preview.png")
    assert preview.status_code == 422
    assert _error(preview)["code"] == "template_unsafe"
    assert cloud.api.post("/api/v1/templates/legacy/versions/1/publish").status_code == 200


def test_healthz_answers_while_hostile_validations_run(cloud: RunningCloud) -> None:
    in_flight = 0
    lock = threading.Lock()
    seen_during: list[int] = []
    done = threading.Event()

    def hostile(n: int) -> int:
        nonlocal in_flight
        with lock:
            in_flight += 1
        try:
            source = ISSUE_STATIC if n % 2 else LOOPS
            response = cloud.api.post(
                "/api/v1/templates/hostile/versions", json=_version(source, weight=9_999)
            )
            return response.status_code
        finally:
            with lock:
                in_flight -= 1

    def probe() -> list[int]:
        answers = []
        with httpx.Client(base_url=f"http://{cloud.http_address}", timeout=30) as client:
            while not done.is_set():
                answers.append(client.get("/healthz").status_code)
                with lock:
                    seen_during.append(in_flight)
        return answers

    with ThreadPoolExecutor(max_workers=3) as pool:
        probes = pool.submit(probe)
        try:
            statuses = list(pool.map(hostile, range(12)))
        finally:
            done.set()
        answers = probes.result(timeout=60)

    assert statuses == [422] * 12
    assert answers
    assert set(answers) == {200}
    assert any(count > 0 for count in seen_during), "no /healthz answer came while a validation was running"


def test_a_template_set_aside_at_a_station_opens_an_exception_for_a_person(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    agent = cloud.enroll("WH1")
    cloud.ingest(order("T-1"))
    message = (
        "template shipping-4x6 v3 exceeded its render budget: ...; fix the template and publish a new version"
    )
    body = {
        "reason": "template_over_budget",
        "code": "template_unsafe",
        "template": "shipping-4x6",
        "template_version": 3,
        "message": message,
    }
    other = {"reason": "label_maybe_printed", "message": "check the printer"}
    answer = agent.push(
        _event("exception_raised", "T-1", body, 1), _event("exception_raised", "T-1", other, 2)
    )
    assert len(answer.acked) == 2
    (opened,) = cloud.api.get("/api/v1/exceptions", params={"order_ref": "T-1"}).json()["exceptions"]
    assert opened["kind"] == "raised_at_edge"
    assert opened["message"] == message
    assert opened["detail"]["template"] == "shipping-4x6"
    assert opened["detail"]["template_version"] == 3
    assert opened["detail"]["station"] == "S1"


def _event(kind: str, ref: str, body: dict[str, Any], seq: int) -> sync_pb2.EdgeEvent:
    return sync_pb2.EdgeEvent(
        event_id=str(uuid.uuid4()),
        kind=kind,
        order_ref=ref,
        station="S1",
        occurred_at_ms=int(time.time() * 1000),
        body=json.dumps(body).encode(),
        sequence=seq,
    )
