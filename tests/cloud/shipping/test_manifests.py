"""Manifests over the real HTTP API: labelled parcels of a carrier closed into a manifest in one
go, nothing to close refused, a PDF whose barcode zbar reads as the manifest id, a CSV that
parses, and a handover that ships the orders once, with their tracking numbers."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

import pypdfium2 as pdfium  # type: ignore[import-untyped]
from pyzbar import pyzbar  # type: ignore[import-untyped]
from sqlalchemy import insert, select, update

from cloud.storage import schema
from tests.cloud.conftest import RunningCloud, order

# (order_ref, parcel, carrier, weight_g, tracking number)
PARCELS = [
    ("O1", 1, "DHL", 1200, "00340434161234567890"),
    ("O1", 2, "DHL", 800, "00340434161234567906"),
    ("O2", 1, "DHL", 500, "JD014600006281234567"),
    ("O3", 1, "DHL", 300, "00340434161234567913"),
    ("O3", 2, "UPS", 700, "1Z999AA10123456784"),
    ("O4", 1, "DHL", 900, "00340434161234567920"),
]


def _setup(cloud: RunningCloud, parcels: Sequence[tuple[str, int, str, int, str]] = PARCELS) -> None:
    cloud.put_warehouse("WH1")
    cloud.put_warehouse("WH2")
    refs = sorted({ref for ref, *_ in parcels})
    cloud.ingest(*(order(ref, warehouse="WH2" if ref == "O4" else "WH1") for ref in refs))
    tenant = cloud.store.tenant_id()
    with cloud.store.write() as tx:
        # The edge's label events move orders to labelled and write their parcels (cloud.orders).
        tx.conn.execute(update(schema.orders).values(state="labelled"))
        tx.conn.execute(
            insert(schema.parcels),
            [
                {
                    "tenant_id": tenant,
                    "order_ref": ref,
                    "number": number,
                    "tracking_number": tracking,
                    "carrier": carrier,
                    "service": "express",
                    "weight_g": weight,
                    "dimensions_mm": "[300,200,150]",
                    "documents": '["shipping_label"]',
                    "state": "labelled",
                    "manifest_id": None,
                    "labelled_at": tx.now,
                }
                for ref, number, carrier, weight, tracking in parcels
            ],
        )


def _close(cloud: RunningCloud, warehouse: str, body: Any) -> Any:
    return cloud.api.post(f"/api/v1/warehouses/{warehouse}/manifests", json=body)


def test_closing_a_manifest_takes_every_labelled_parcel_of_the_carrier_there_once(
    cloud: RunningCloud,
) -> None:
    _setup(cloud)
    response = _close(cloud, "WH1", {"carrier": "DHL"})
    assert response.status_code == 201, response.text
    manifest = response.json()
    assert (manifest["warehouse"], manifest["carrier"]) == ("WH1", "DHL")
    assert manifest["parcel_count"] == 4
    assert manifest["total_weight_g"] == 1200 + 800 + 500 + 300
    assert manifest["handed_over_at"] is None
    assert [(p["order_ref"], p["number"], p["state"]) for p in manifest["parcels"]] == [
        ("O1", 1, "manifested"),
        ("O1", 2, "manifested"),
        ("O2", 1, "manifested"),
        ("O3", 1, "manifested"),
    ]
    assert cloud.api.get(f"/api/v1/manifests/{manifest['id']}").json() == manifest
    # Nothing left to close: 409 manifest_empty, and nothing changes.
    before = cloud.store.current_revision()
    for warehouse, carrier in (("WH1", "DHL"), ("WH1", "FEDEX"), ("WH2", "UPS")):
        empty = _close(cloud, warehouse, {"carrier": carrier})
        assert empty.status_code == 409, empty.text
        assert empty.json()["error"]["code"] == "manifest_empty"
        assert "nothing to close" in empty.json()["error"]["message"]
    assert cloud.store.current_revision() == before
    with cloud.store.read() as conn:
        assert len(conn.execute(select(schema.manifests)).all()) == 1
    # The other warehouse's DHL parcel and the UPS parcel make their own manifests.
    assert _close(cloud, "WH2", {"carrier": "DHL"}).json()["parcel_count"] == 1
    assert (
        _close(cloud, "WH1", {"carrier": "UPS"}).json()["parcels"][0]["tracking_number"]
        == "1Z999AA10123456784"
    )
    audit = cloud.api.get("/api/v1/audit", params={"object_kind": "manifest"}).json()["entries"]
    assert [entry["action"] for entry in audit] == ["close_manifest"] * 3


def test_hostile_manifest_requests_are_refused(cloud: RunningCloud) -> None:
    _setup(cloud)
    hostile: list[Any] = [
        {},
        {"carrier": ""},
        {"carrier": "D" * 33},
        {"carrier": "DHL", "all": True},
        {"carrier": 5},
        [],
        None,
    ]
    for body in hostile:
        response = _close(cloud, "WH1", body)
        assert response.status_code == 422, (body, response.text)
    assert _close(cloud, "NOPE", {"carrier": "DHL"}).status_code == 404
    assert _close(cloud, "WH1", {"carrier": "DHL", "pad": "x" * 2_000_000}).status_code == 413
    for path in (
        "/api/v1/manifests/0",
        "/api/v1/manifests/99",
        "/api/v1/manifests/x.pdf",
        "/api/v1/manifests/99.csv",
    ):
        assert cloud.api.get(path).status_code in (404, 422), path
    assert cloud.api.post("/api/v1/manifests/99/handover").status_code == 404
    with cloud.store.read() as conn:
        assert conn.execute(select(schema.manifests)).all() == []
        assert {row.state for row in conn.execute(select(schema.parcels))} == {"labelled"}


def test_a_limited_token_sees_only_its_warehouses_manifests(cloud: RunningCloud) -> None:
    _setup(cloud)
    made = cloud.api.post("/api/v1/tokens", json={"name": "wh2", "role": "editor", "warehouses": ["WH2"]})
    assert made.status_code == 201, made.text
    headers = {"Authorization": f"Bearer {made.json()['token']}"}
    manifest = _close(cloud, "WH1", {"carrier": "DHL"}).json()
    assert cloud.api.get(f"/api/v1/manifests/{manifest['id']}", headers=headers).status_code == 404
    assert cloud.api.get(f"/api/v1/manifests/{manifest['id']}.pdf", headers=headers).status_code == 404
    assert cloud.api.post(f"/api/v1/manifests/{manifest['id']}/handover", headers=headers).status_code == 404
    assert (
        cloud.api.post(
            "/api/v1/warehouses/WH1/manifests", json={"carrier": "UPS"}, headers=headers
        ).status_code
        == 404
    )
    assert (
        cloud.api.post(
            "/api/v1/warehouses/WH2/manifests", json={"carrier": "DHL"}, headers=headers
        ).status_code
        == 201
    )


def _barcodes(pdf: bytes) -> tuple[list[tuple[str, str]], str, int]:
    """What zbar reads on the first page rendered by PDFium at 200 dpi, the document's text, its pages."""
    document = pdfium.PdfDocument(pdf)
    try:
        page = document[0]
        picture = page.render(scale=200 / 72).to_pil().convert("L")
        text = "\n".join(document[i].get_textpage().get_text_range() for i in range(len(document)))
        symbols = [(symbol.type, symbol.data.decode()) for symbol in pyzbar.decode(picture)]
        return symbols, text, len(document)
    finally:
        document.close()


def test_the_manifest_pdf_renders_and_its_barcode_reads_as_the_manifest_id(cloud: RunningCloud) -> None:
    _setup(cloud)
    manifest = _close(cloud, "WH1", {"carrier": "DHL"}).json()
    response = cloud.api.get(f"/api/v1/manifests/{manifest['id']}.pdf")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    symbols, text, pages = _barcodes(response.content)
    assert symbols == [("CODE128", str(manifest["id"]))]
    assert pages == 1
    for needle in (
        "WH1",
        "DHL",
        "O1",
        "00340434161234567906",
        "JD014600006281234567",
        "2.800 kg",
        "Signature",
    ):
        assert needle in text, needle
    assert "Total: 4 parcels, 2.800 kg" in text


def test_a_long_manifest_runs_over_pages_and_keeps_its_barcode(cloud: RunningCloud) -> None:
    many = [(f"B{i:03d}", 1, "BIG", 1000 + i, f"TRK{i:017d}") for i in range(90)]
    _setup(cloud, many)
    manifest = _close(cloud, "WH1", {"carrier": "BIG"}).json()
    assert manifest["parcel_count"] == 90
    symbols, text, pages = _barcodes(cloud.api.get(f"/api/v1/manifests/{manifest['id']}.pdf").content)
    assert symbols == [("CODE128", str(manifest["id"]))]
    assert pages >= 2
    assert "TRK00000000000000089" in text
    assert "90 parcels" in text


def test_the_manifest_csv_parses_to_its_parcels(cloud: RunningCloud) -> None:
    _setup(cloud)
    manifest = _close(cloud, "WH1", {"carrier": "DHL"}).json()
    response = cloud.api.get(f"/api/v1/manifests/{manifest['id']}.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["order_ref"], r["parcel"], r["tracking_number"], r["weight_g"]) for r in rows] == [
        ("O1", "1", "00340434161234567890", "1200"),
        ("O1", "2", "00340434161234567906", "800"),
        ("O2", "1", "JD014600006281234567", "500"),
        ("O3", "1", "00340434161234567913", "300"),
    ]
    assert {r["manifest_id"] for r in rows} == {str(manifest["id"])}
    assert sum(int(r["weight_g"]) for r in rows) == manifest["total_weight_g"]


def _webhook_payloads(cloud: RunningCloud, kind: str) -> list[dict[str, Any]]:
    table = schema.webhook_events
    with cloud.store.read() as conn:
        rows = conn.execute(
            select(table.c.payload).where(table.c.kind == kind).order_by(table.c.id)
        ).scalars()
        return [json.loads(row) for row in rows]


def test_handover_ships_the_orders_whose_parcels_all_left_once(cloud: RunningCloud) -> None:
    _setup(cloud)
    manifest = _close(cloud, "WH1", {"carrier": "DHL"}).json()
    response = cloud.api.post(f"/api/v1/manifests/{manifest['id']}/handover")
    assert response.status_code == 200, response.text
    done = response.json()
    assert done["changed"] is True
    assert done["handed_over_at"] is not None
    assert done["orders_shipped"] == ["O1", "O2"]
    # O3's UPS parcel has not left yet: the order waits for it.
    assert [entry["order_ref"] for entry in done["orders_not_shipped"]] == ["O3"]
    assert {p["state"] for p in done["parcels"]} == {"shipped"}
    states = {ref: cloud.api.get(f"/api/v1/orders/{ref}").json()["state"] for ref in ("O1", "O2", "O3")}
    assert states == {"O1": "shipped", "O2": "shipped", "O3": "labelled"}
    shipped = _webhook_payloads(cloud, "order.shipped")
    assert [(p["order_ref"], p["tracking_numbers"]) for p in shipped] == [
        ("O1", ["00340434161234567890", "00340434161234567906"]),
        ("O2", ["JD014600006281234567"]),
    ]
    assert shipped[0]["manifest_id"] == manifest["id"]
    assert shipped[0]["carrier"] == "DHL"
    # Handing over again changes nothing and tells nobody twice.
    before = cloud.store.current_revision()
    again = cloud.api.post(f"/api/v1/manifests/{manifest['id']}/handover").json()
    assert again["changed"] is False
    assert again["handed_over_at"] == done["handed_over_at"]
    assert cloud.store.current_revision() == before
    assert len(_webhook_payloads(cloud, "order.shipped")) == 2
    # The UPS parcel's handover ships O3 at last.
    ups = _close(cloud, "WH1", {"carrier": "UPS"}).json()
    assert cloud.api.post(f"/api/v1/manifests/{ups['id']}/handover").json()["orders_shipped"] == ["O3"]
    assert cloud.api.get("/api/v1/orders/O3").json()["state"] == "shipped"
    audit = cloud.api.get("/api/v1/audit", params={"object_kind": "manifest"}).json()["entries"]
    assert sorted(entry["action"] for entry in audit).count("handover_manifest") == 2


def test_a_cancelled_order_on_a_manifest_is_reported_not_shipped(cloud: RunningCloud) -> None:
    _setup(cloud)
    manifest = _close(cloud, "WH1", {"carrier": "DHL"}).json()
    assert cloud.api.post("/api/v1/orders/O2/cancel").status_code == 200
    done = cloud.api.post(f"/api/v1/manifests/{manifest['id']}/handover").json()
    assert done["orders_shipped"] == ["O1"]
    refused = {entry["order_ref"]: entry["message"] for entry in done["orders_not_shipped"]}
    assert "cancelled and cannot become shipped" in refused["O2"]
    assert cloud.api.get("/api/v1/orders/O2").json()["state"] == "cancelled"


def test_a_manifests_audit_entry_belongs_to_its_warehouse(cloud: RunningCloud) -> None:
    _setup(cloud)
    made = cloud.api.post(
        "/api/v1/tokens", json={"name": "wh2-admin", "role": "admin", "warehouses": ["WH2"]}
    )
    headers = {"Authorization": f"Bearer {made.json()['token']}"}
    assert _close(cloud, "WH1", {"carrier": "DHL"}).status_code == 201
    mine = cloud.api.post("/api/v1/warehouses/WH2/manifests", json={"carrier": "DHL"}, headers=headers).json()
    entries = cloud.api.get("/api/v1/audit", params={"object_kind": "manifest"}, headers=headers).json()[
        "entries"
    ]
    assert [(entry["object_key"], entry["warehouse"]) for entry in entries] == [(str(mine["id"]), "WH2")]


def test_an_order_still_waiting_for_an_expected_parcel_does_not_ship(cloud: RunningCloud) -> None:
    _setup(cloud)
    with cloud.store.write() as tx:
        # O2's OMS expects a second parcel nobody has labelled: the order is packed, not labelled.
        tx.conn.execute(update(schema.orders).where(schema.orders.c.order_ref == "O2").values(state="packed"))
    manifest = _close(cloud, "WH1", {"carrier": "DHL"}).json()
    done = cloud.api.post(f"/api/v1/manifests/{manifest['id']}/handover").json()
    assert done["orders_shipped"] == ["O1"]
    refused = {entry["order_ref"]: entry["message"] for entry in done["orders_not_shipped"]}
    assert "not every parcel it expects is labelled" in refused["O2"]
    assert cloud.api.get("/api/v1/orders/O2").json()["state"] == "packed"
