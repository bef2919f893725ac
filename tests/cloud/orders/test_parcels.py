"""An order's parcels in the cloud, over real gRPC and HTTP: labelled from edge events, joined with
what the OMS expected, voided, closed, given a carrier label, shown on the timeline and in exports,
and overdue on the dock; hostile parcel facts are rejected with a reason, never acked."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fpdf import FPDF
from PIL import Image
from sqlalchemy import select, update

from cloud.orders.overdue_parcels import overdue_parcels, run_overdue_parcels
from cloud.orders.parcel_reads import merge_parcels
from cloud.storage import schema
from dockside.v1 import sync_pb2
from tests.cloud.conftest import Agent, RunningCloud, order

ZPL_LABEL = b"^XA^FO50,50^A0N,40,40^FDCARRIER LABEL^FS^BY2^FO50,120^BCN,100,Y,N,N^FD1Z999AA10123456784^FS^XZ"


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("1", (812, 1218), 1).save(out, format="PNG")
    return out.getvalue()


def _label(data: bytes, fmt: str = "zpl") -> dict[str, str]:
    return {"format": fmt, "data_base64": base64.b64encode(data).decode()}


def _event(order_ref: str, kind: str = "label_printed", sequence: int = 1, **body: Any) -> sync_pb2.EdgeEvent:
    return sync_pb2.EdgeEvent(
        event_id=str(uuid.uuid4()),
        kind=kind,
        order_ref=order_ref,
        station="S1",
        occurred_at_ms=int(time.time() * 1000),
        body=json.dumps(body).encode(),
        sequence=sequence,
    )


def _label_event(
    order_ref: str, parcel: int, tracking: str, sequence: int = 1, **extra: Any
) -> sync_pb2.EdgeEvent:
    body = {
        "job_id": f"job-{order_ref}-{parcel}-{sequence}",
        "weight_g": 1000 + parcel,
        "carrier": "ups",
        "service": "ground",
        "printer": "ZD421-1",
        "parcel": parcel,
        "document": "shipping_label",
        "tracking_number": tracking,
        "dimensions_mm": [300, 200, 100 + parcel],
        "sscc": "",
        **extra,
    }
    return _event(order_ref, "label_printed", sequence, **body)


def _parcels(cloud: RunningCloud, ref: str) -> list[dict[str, Any]]:
    response = cloud.api.get(f"/api/v1/orders/{ref}")
    assert response.status_code == 200, response.text
    parcels: list[dict[str, Any]] = response.json()["parcels"]
    return parcels


def _state(cloud: RunningCloud, ref: str) -> str:
    return str(cloud.api.get(f"/api/v1/orders/{ref}").json()["state"])


def _webhook_payloads(cloud: RunningCloud, kind: str) -> list[dict[str, Any]]:
    events = schema.webhook_events
    with cloud.store.read() as conn:
        rows = conn.execute(
            select(events.c.payload).where(events.c.kind == kind).order_by(events.c.id)
        ).scalars()
        return [json.loads(row) for row in rows]


@pytest.fixture
def agent(cloud: RunningCloud) -> Agent:
    cloud.put_warehouse("WH1")
    two = [
        {"expected_weight_g": 900, "dimensions_mm": [300, 200, 100], "carrier": "ups"},
        {"expected_weight_g": 1100, "tracking_number": "1z999aa10123456784"},
    ]
    answer = cloud.ingest(
        order("P-2", parcels=two),
        order("P-1"),
        order("P-3", parcels=[{}, {}, {}]),
        order("P-B2B", po_number="PO-77", ship_to_gln="4012345000009"),
    )
    assert answer["errors"] == []
    return cloud.enroll("WH1")


def test_an_order_is_labelled_once_every_expected_parcel_has_its_label(
    cloud: RunningCloud, agent: Agent
) -> None:
    before = _parcels(cloud, "P-2")
    assert [(p["number"], p["state"], p["tracking_number"], p["dimensions_mm"]) for p in before] == [
        (1, "expected", "", [300, 200, 100]),
        (2, "expected", "1Z999AA10123456784", None),
    ]
    assert before[0]["expected_weight_g"] == 900
    assert before[0]["carrier"] == "ups"

    first = _label_event("P-2", 1, "1Z999AA10000000011")
    assert list(agent.push(first).acked) == [first.event_id]
    assert _state(cloud, "P-2") == "packed", "one of two parcels labelled: packed, not labelled"
    (one, two) = _parcels(cloud, "P-2")
    assert one["state"] == "labelled"
    assert (one["tracking_number"], one["carrier"], one["service"], one["weight_g"]) == (
        "1Z999AA10000000011",
        "ups",
        "ground",
        1001,
    )
    assert one["dimensions_mm"] == [300, 200, 101]
    assert one["documents"] == [{"kind": "shipping_label", "job_id": "job-P-2-1-1"}]
    assert two["state"] == "expected"

    second = _label_event("P-2", 2, "1Z999AA10123456784", sequence=2)
    assert list(agent.push(second).acked) == [second.event_id]
    assert _state(cloud, "P-2") == "labelled"
    # Delivered again (at least once): acked, and nothing happens twice.
    assert sorted(agent.push(first, second).acked) == sorted([first.event_id, second.event_id])
    labelled = [p for p in _webhook_payloads(cloud, "parcel.labelled") if p["order_ref"] == "P-2"]
    assert labelled == [
        {
            "order_ref": "P-2",
            "warehouse": "WH1",
            "parcel": 1,
            "tracking_number": "1Z999AA10000000011",
            "carrier": "ups",
            "service": "ground",
            "weight_g": 1001,
            "dimensions_mm": [300, 200, 101],
        },
        {
            "order_ref": "P-2",
            "warehouse": "WH1",
            "parcel": 2,
            "tracking_number": "1Z999AA10123456784",
            "carrier": "ups",
            "service": "ground",
            "weight_g": 1002,
            "dimensions_mm": [300, 200, 102],
        },
    ]


def test_an_agent_without_parcel_facts_labels_a_one_parcel_order(cloud: RunningCloud, agent: Agent) -> None:
    old = _event("P-1", "label_printed", job_id="j-old", weight_g=1200, carrier="dhl", service="express")
    assert list(agent.push(old).acked) == [old.event_id]
    assert _state(cloud, "P-1") == "labelled"
    (parcel,) = _parcels(cloud, "P-1")
    assert (parcel["number"], parcel["state"], parcel["carrier"], parcel["weight_g"]) == (
        1,
        "labelled",
        "dhl",
        1200,
    )


def test_documents_carton_labels_and_a_close(cloud: RunningCloud, agent: Agent) -> None:
    slip = _label_event("P-B2B", 1, "", document="packing_slip", job_id="slip-1")
    assert list(agent.push(slip).acked) == [slip.event_id]
    assert _state(cloud, "P-B2B") == "packed", "a packing slip packs the order but does not label it"
    (parcel,) = _parcels(cloud, "P-B2B")
    assert parcel["state"] == "expected"
    assert parcel["documents"] == [{"kind": "packing_slip", "job_id": "slip-1"}]

    carton = _label_event("P-B2B", 1, "", sequence=2, document="carton_label", sscc="340123450000000017")
    carton_body = json.loads(carton.body)
    assert list(agent.push(carton).acked) == [carton.event_id]
    (parcel,) = _parcels(cloud, "P-B2B")
    assert parcel["state"] == "labelled"
    assert parcel["tracking_number"] == "340123450000000017", "a carton's SSCC is its tracking number"
    assert [d["kind"] for d in parcel["documents"]] == ["packing_slip", "carton_label"]
    assert _state(cloud, "P-B2B") == "labelled"
    assert carton_body["job_id"] in [d["job_id"] for d in parcel["documents"]]

    # Three parcels expected; the packer closes the order after one.
    first = _label_event("P-3", 1, "TRACK1")
    third_slip = _label_event("P-3", 3, "", sequence=2, document="packing_slip", job_id="slip-3")
    agent.push(first, third_slip)
    assert _state(cloud, "P-3") == "packed"
    close = _event("P-3", "order_closed", sequence=3, parcels=1)
    assert list(agent.push(close).acked) == [close.event_id]
    assert _state(cloud, "P-3") == "labelled"
    # Parcel 3 only got its packing slip before the close: it will never ship, so it is voided.
    assert [p["state"] for p in _parcels(cloud, "P-3")] == ["labelled", "expected", "voided"]


def test_a_voided_parcel_is_relabelled_with_a_new_number_and_a_reprint_never_revives_it(
    cloud: RunningCloud, agent: Agent
) -> None:
    agent.push(_label_event("P-1", 1, "OLD1"))
    void = _event("P-1", "parcel_voided", sequence=2, parcel=1, tracking_number="OLD1", reason="torn")
    assert list(agent.push(void).acked) == [void.event_id]
    (parcel,) = _parcels(cloud, "P-1")
    assert (parcel["state"], parcel["tracking_number"]) == ("voided", "OLD1")
    reprint = _event("P-1", "label_reprinted", sequence=3, job_id="re-1", parcel=1, tracking_number="OLD1")
    assert list(agent.push(reprint).acked) == [reprint.event_id]
    assert _parcels(cloud, "P-1")[0]["state"] == "voided"
    agent.push(_label_event("P-1", 1, "NEW1", sequence=4))
    (parcel,) = _parcels(cloud, "P-1")
    assert (parcel["state"], parcel["tracking_number"]) == ("labelled", "NEW1")
    tracking = [
        p["tracking_number"] for p in _webhook_payloads(cloud, "parcel.labelled") if p["order_ref"] == "P-1"
    ]
    assert tracking == ["OLD1", "NEW1"]


HOSTILE: list[tuple[str, dict[str, Any], str]] = [
    ("label_printed", {"parcel": 0}, "parcel"),
    ("label_printed", {"parcel": 1000}, "parcel"),
    ("label_printed", {"parcel": True}, "parcel"),
    ("label_printed", {"parcel": "1"}, "parcel"),
    ("label_printed", {"tracking_number": "1Z 999 AA1"}, "tracking_number"),
    ("label_printed", {"tracking_number": "A" * 500}, "tracking_number"),
    ("label_printed", {"tracking_number": 12345}, "tracking_number"),
    ("label_printed", {"dimensions_mm": [-300, 200, 100]}, "dimensions_mm"),
    ("label_printed", {"dimensions_mm": [300, 200]}, "dimensions_mm"),
    ("label_printed", {"dimensions_mm": [300, 200, 10**12]}, "dimensions_mm"),
    ("label_printed", {"dimensions_mm": "300x200x100"}, "dimensions_mm"),
    ("label_held", {"document": "invoice"}, "document"),
    ("order_packed", {"sscc": "12345"}, "sscc"),
    ("order_closed", {}, "parcels"),
    ("order_closed", {"parcels": -1}, "parcels"),
    ("parcel_voided", {"tracking_number": "X1"}, "parcel"),
    ("number_used", {"carrier": "ups", "serial": 1, "tracking_number": "X1"}, "lease_id"),
    ("number_used", {"lease_id": 1, "carrier": "ups", "serial": -5, "tracking_number": "X1"}, "serial"),
    ("number_voided", {"lease_id": 1, "carrier": "", "serial": 5, "tracking_number": "X1"}, "carrier"),
    (
        "number_voided",
        {"lease_id": 1, "carrier": "ups", "serial": 5, "tracking_number": "x 1"},
        "tracking_number",
    ),
]


def test_hostile_parcel_facts_are_rejected_with_a_reason_and_change_nothing(
    cloud: RunningCloud, agent: Agent
) -> None:
    events = [_event("P-1", kind, index, **body) for index, (kind, body, _) in enumerate(HOSTILE)]
    answer = agent.push(*events)
    assert list(answer.acked) == []
    rejected = {item.event_id: item for item in answer.rejected}
    assert len(rejected) == len(HOSTILE)
    for event, (_, _, field) in zip(events, HOSTILE, strict=True):
        item = rejected[event.event_id]
        assert item.code == "invalid_body"
        assert field in item.message, (field, item.message)
    with cloud.store.read() as conn:
        stored = conn.execute(
            select(schema.order_events.c.id).where(schema.order_events.c.order_ref == "P-1")
        ).all()
        parcels = conn.execute(select(schema.parcels.c.id)).all()
        numbers = conn.execute(select(schema.tracking_numbers.c.id)).all()
    assert (stored, parcels, numbers) == ([], [], [])
    assert _state(cloud, "P-1") == "created"


def test_number_events_are_recorded_by_the_shipping_capability(cloud: RunningCloud, agent: Agent) -> None:
    body: dict[str, Any] = {
        "lease_id": 1,
        "carrier": "ups",
        "serial": 7,
        "tracking_number": "1Z0000007",
        "job_id": "j7",
    }
    used = _event("P-1", "number_used", **body)
    assert list(agent.push(used).acked) == [used.event_id]
    with cloud.store.read() as conn:
        rows = conn.execute(
            select(schema.tracking_numbers.c.tracking_number, schema.tracking_numbers.c.state)
        ).all()
        kinds = conn.execute(select(schema.order_exceptions.c.kind)).scalars().all()
    assert [tuple(row) for row in rows] == [("1Z0000007", "used")]
    # No lease 1 belongs to this agent: the number may be another's, so a person looks.
    assert kinds == ["number_reused"]


def test_the_oms_sends_a_carrier_label_for_one_parcel(cloud: RunningCloud, agent: Agent) -> None:
    revision = cloud.store.current_revision()
    response = cloud.api.post("/api/v1/orders/P-1/parcels/2/label", json=_label(_png(), "png"))
    assert response.status_code == 200, response.text
    assert response.json()["parcels"] == 2
    assert cloud.store.current_revision() == revision + 1, "the agents receive the order again"
    with cloud.store.read() as conn:
        body = conn.execute(
            select(schema.changes.c.body).order_by(schema.changes.c.revision.desc()).limit(1)
        ).scalar_one()
    synced = json.loads(body)
    assert synced["parcels"][0]["label"] is None
    assert base64.b64decode(synced["parcels"][1]["label"]["data_base64"]) == _png()
    parcels = _parcels(cloud, "P-1")
    assert [p["state"] for p in parcels] == ["expected", "expected"]
    assert parcels[1]["label"] == {"format": "png", "bytes": len(_png())}
    assert "data_base64" not in json.dumps(parcels), "GET shows a label's size, never its bytes"
    timeline = cloud.api.get("/api/v1/orders/P-1/timeline").json()
    assert "parcel_label_received" in [entry["kind"] for entry in timeline["timeline"]]

    refused = [
        ("/api/v1/orders/P-1/parcels/1/label", _label(b"%PDF-1.7 not really", "pdf"), 422),
        ("/api/v1/orders/P-1/parcels/1/label", _label(b"^XA^FDone^FS^XZ^XA^FDtwo^FS^XZ"), 422),
        ("/api/v1/orders/P-1/parcels/0/label", _label(ZPL_LABEL), 422),
        ("/api/v1/orders/P-1/parcels/100/label", _label(ZPL_LABEL), 422),
        ("/api/v1/orders/P-1/parcels/1/label", {"format": "gif", "data_base64": "AAAA"}, 422),
        ("/api/v1/orders/NOPE/parcels/1/label", _label(ZPL_LABEL), 404),
    ]
    for path, body_json, status in refused:
        answer = cloud.api.post(path, json=body_json)
        assert answer.status_code == status, (path, answer.text)
        assert answer.json()["error"]["message"]
    assert cloud.store.current_revision() == revision + 1, "a refused label changes nothing"

    # Parcel 1 of two is labelled (the order is packed): its label can no longer change, parcel 2's can.
    agent.push(_label_event("P-2", 1, "T1"))
    answer = cloud.api.post("/api/v1/orders/P-2/parcels/1/label", json=_label(ZPL_LABEL))
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "parcel_labelled"
    assert cloud.api.post("/api/v1/orders/P-2/parcels/2/label", json=_label(ZPL_LABEL)).status_code == 200
    # A labelled order takes no label at all.
    agent.push(_label_event("P-1", 1, "T2"), _label_event("P-1", 2, "T3", sequence=2))
    assert _state(cloud, "P-1") == "labelled"
    answer = cloud.api.post("/api/v1/orders/P-1/parcels/3/label", json=_label(ZPL_LABEL))
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "order_locked"


def test_ingest_checks_carrier_labels_order_by_order(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    good = order("L-1", parcels=[{"label": _label(ZPL_LABEL)}])
    bad = order("L-2", parcels=[{}, {"label": _label(b"this is not a PDF", "pdf")}])
    answer = cloud.ingest(good, bad)
    assert answer["accepted"] == ["L-1"]
    (error,) = answer["errors"]
    assert (error["index"], error["order_ref"]) == (1, "L-2")
    assert error["code"].startswith("label_")
    assert "parcel 2" in error["message"]


def test_timeline_and_exports_show_each_parcel(cloud: RunningCloud, agent: Agent) -> None:
    agent.push(_label_event("P-2", 1, "1Z999AA10000000011"))
    timeline = cloud.api.get("/api/v1/orders/P-2/timeline").json()
    assert [p["tracking_number"] for p in timeline["parcels"]] == ["1Z999AA10000000011", "1Z999AA10123456784"]
    (printed,) = [entry for entry in timeline["timeline"] if entry["kind"] == "label_printed"]
    assert printed["parcel"] == {
        "number": 1,
        "document": "shipping_label",
        "tracking_number": "1Z999AA10000000011",
        "carrier": "ups",
        "service": "ground",
        "weight_g": 1001,
        "dimensions_mm": [300, 200, 101],
        "sscc": "",
    }

    lines = cloud.api.get("/api/v1/export/orders", params={"format": "jsonl"}).text.splitlines()
    records = {record["order_ref"]: record for record in map(json.loads, lines)}
    assert [p["state"] for p in records["P-2"]["parcels"]] == ["labelled", "expected"]
    assert records["P-B2B"]["po_number"] == "PO-77"
    rows = {
        row["order_ref"]: row
        for row in csv.DictReader(
            io.StringIO(cloud.api.get("/api/v1/export/orders", params={"format": "csv"}).text)
        )
    }
    assert rows["P-2"]["tracking_numbers"] == "1Z999AA10000000011 1Z999AA10123456784"
    assert rows["P-2"]["parcel_count"] == "2"
    assert rows["P-1"]["parcel_count"] == "1"
    assert rows["P-B2B"]["ship_to_gln"] == "4012345000009"
    assert json.loads(rows["P-2"]["parcels"])[0]["weight_g"] == 1001


def test_a_parcel_left_on_the_dock_past_the_next_day_opens_one_exception(
    cloud: RunningCloud, agent: Agent
) -> None:
    agent.push(
        _label_event("P-2", 1, "A1"), _label_event("P-2", 2, "A2", sequence=2), _label_event("P-1", 1, "B1")
    )
    labelled_at = datetime(2026, 3, 10, 16, 30, tzinfo=UTC)
    parcels = schema.parcels
    with cloud.store.write() as tx:
        tx.conn.execute(update(parcels).values(labelled_at=labelled_at))
        # P-2's second parcel left with the driver: it is no exception.
        tx.conn.execute(update(parcels).where(parcels.c.tracking_number == "A2").values(state="shipped"))
    day_after_end = datetime(2026, 3, 11, 23, 59, 59, tzinfo=UTC)
    assert overdue_parcels(cloud.store, day_after_end) == 0, "labelled yesterday: still in time today"
    two_days = day_after_end + timedelta(seconds=1)
    assert overdue_parcels(cloud.store, two_days) == 2
    assert overdue_parcels(cloud.store, two_days + timedelta(days=3)) == 0, "one exception per parcel"
    exceptions = cloud.api.get("/api/v1/exceptions", params={"kind": "parcel_overdue"}).json()
    listed = exceptions["exceptions"] if isinstance(exceptions, dict) else exceptions
    assert sorted((e["order_ref"], e["detail"]["tracking_number"]) for e in listed) == [
        ("P-1", "B1"),
        ("P-2", "A1"),
    ]
    assert all("hand it to the carrier" in e["message"] for e in listed)


def test_merge_parcels_keeps_a_station_added_parcel_and_the_oms_facts() -> None:
    stored = [
        {
            "number": 1,
            "state": "labelled",
            "tracking_number": "",
            "carrier": "dhl",
            "service": "",
            "weight_g": 5,
            "dimensions_mm": None,
            "documents": [],
            "manifest_id": None,
            "labelled_at": None,
        },
        {
            "number": 3,
            "state": "labelled",
            "tracking_number": "T3",
            "carrier": "dhl",
            "service": "",
            "weight_g": 7,
            "dimensions_mm": [1, 2, 3],
            "documents": [],
            "manifest_id": None,
            "labelled_at": None,
        },
    ]
    merged = merge_parcels(
        [{"tracking_number": "OMS1", "dimensions_mm": [9, 9, 9], "service": "air"}], stored
    )
    assert [(p["number"], p["tracking_number"], p["service"], p["dimensions_mm"]) for p in merged] == [
        (1, "OMS1", "air", [9, 9, 9]),
        (3, "T3", "", [1, 2, 3]),
    ]


def _pdf(pages: int) -> bytes:
    pdf = FPDF(unit="in", format=(4, 6))
    for page in range(pages):
        pdf.add_page()
        pdf.set_font("helvetica", size=24)
        pdf.cell(text=f"label page {page + 1}")
    return bytes(pdf.output())


def test_hostile_carrier_labels_are_refused_and_change_nothing(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    oversized = {
        "format": "zpl",
        "data_base64": base64.b64encode(b"^XA" + b"A" * (3 * 1024 * 1024) + b"^XZ").decode(),
    }
    answer = cloud.ingest(
        order("H-1", parcels=[{"label": _label(_pdf(50), "pdf")}]),
        order("H-2", parcels=[{"label": oversized}]),
        order("H-3", parcels=[{"label": _label(b"^XA^MNY^FDx^FS^XZ")}]),
        order("H-4", parcels=[{"label": _label(_pdf(1), "pdf")}]),
    )
    assert answer["accepted"] == ["H-4"]
    codes = {error["order_ref"]: error["code"] for error in answer["errors"]}
    assert codes["H-1"].startswith("label_"), "50 pages is not one label"
    assert codes["H-2"] == "invalid_order", "over 2 MiB"
    assert codes["H-3"].startswith("label_"), "a printer set-up command is refused, not dropped"
    revision = cloud.store.current_revision()
    fifty = cloud.api.post("/api/v1/orders/H-4/parcels/2/label", json=_label(_pdf(50), "pdf"))
    assert fifty.status_code == 422, fifty.text
    assert "page" in fifty.json()["error"]["message"]
    assert cloud.store.current_revision() == revision
    one = cloud.api.post("/api/v1/orders/H-4/parcels/2/label", json=_label(_pdf(1), "pdf"))
    assert one.status_code == 200, one.text
    assert [p["label"]["format"] for p in _parcels(cloud, "H-4")] == ["pdf", "pdf"]


def test_two_agents_labelling_one_parcel_at_once_leave_one_parcel(cloud: RunningCloud, agent: Agent) -> None:
    other = cloud.enroll("WH1")
    barrier = threading.Barrier(2)
    answers: dict[str, Any] = {}

    def push(name: str, who: Agent, tracking: str) -> None:
        events = [_label_event(f"P-{n}", 1, tracking) for n in ("1", "2", "3", "B2B")]
        barrier.wait(timeout=10)
        answers[name] = (events, who.push(*events))

    threads = [
        threading.Thread(target=push, args=("a", agent, "FIRST")),
        threading.Thread(target=push, args=("b", other, "SECOND")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for events, answer in answers.values():
        assert sorted(answer.acked) == sorted(event.event_id for event in events)
    with cloud.store.read() as conn:
        rows = conn.execute(select(schema.parcels.c.order_ref, schema.parcels.c.number)).all()
    assert sorted(tuple(row) for row in rows) == [("P-1", 1), ("P-2", 1), ("P-3", 1), ("P-B2B", 1)]


def test_the_cloud_scans_for_overdue_parcels_until_stopped(cloud: RunningCloud, agent: Agent) -> None:
    agent.push(_label_event("P-1", 1, "LATE1"))
    with cloud.store.write() as tx:
        tx.conn.execute(update(schema.parcels).values(labelled_at=datetime.now(UTC) - timedelta(days=3)))

    def opened() -> list[str]:
        with cloud.store.read() as conn:
            return list(
                conn.execute(
                    select(schema.order_exceptions.c.order_ref).where(
                        schema.order_exceptions.c.kind == "parcel_overdue"
                    )
                ).scalars()
            )

    async def scan_until_opened() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_overdue_parcels(cloud.store, stop, interval_s=0.05))
        deadline = time.monotonic() + 20
        while not opened() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(task, 20)

    asyncio.run(scan_until_opened())
    assert opened() == ["P-1"]
