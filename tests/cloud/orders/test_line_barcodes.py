"""A barcode per order line (for the item check at the station): GTINs with their check digit, or
another printable code; what the cloud accepts is what its agents receive."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import text

from cloud.fleet.agents import authenticate_agent
from cloud.sync.edge_events import apply_events
from cloud.sync.incoming_events import IncomingEvent
from dockside.sync import EventKind
from tests.cloud.conftest import RunningCloud, order


@pytest.fixture
def wh1(cloud: RunningCloud) -> RunningCloud:
    cloud.put_warehouse("WH1")
    return cloud


def _lines(*barcodes: str) -> list[dict[str, object]]:
    return [{"sku": f"SKU-{n}", "qty": 1, "barcode": code} for n, code in enumerate(barcodes)]


def test_gtins_of_every_length_and_free_codes_are_kept_and_synced(wh1: RunningCloud) -> None:
    # GTIN-8, UPC-A (GTIN-12), EAN-13, GTIN-14, an internal Code 128 code, and none.
    barcodes = ("96385074", "036000291452", "4006381333931", "10614141000415", "BIN-7/A:42", "")
    answer = wh1.ingest(order("BC-1", lines=_lines(*barcodes)))
    assert answer == {"accepted": ["BC-1"], "errors": []}

    got = wh1.api.get("/api/v1/orders/BC-1").json()
    assert [line["barcode"] for line in got["lines"]] == list(barcodes)
    # What the warehouse's agents receive: the order change carries every line's barcode.
    with wh1.store.engine.connect() as conn:
        body = conn.execute(
            text("SELECT body FROM changes WHERE kind = 'order' AND key = 'BC-1' ORDER BY revision DESC")
        ).scalar_one()
    assert [line["barcode"] for line in json.loads(body)["lines"]] == list(barcodes)


@pytest.mark.parametrize(
    ("barcode", "said"),
    [
        ("96385075", "is not a GTIN-8: its GS1 check digit"),
        ("036000291453", "is not a GTIN-12"),
        ("4006381333932", "is not a GTIN-13"),
        ("10614141000416", "is not a GTIN-14"),
        ("BIN 7", "lines.0.barcode"),  # a space: no scanner types one inside a code
        ("X" * 65, "lines.0.barcode"),
        ("ab\x1dcd", "lines.0.barcode"),
        ("\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668", "lines.0.barcode"),  # Arabic-Indic digits
    ],
)
def test_a_wrong_gtin_or_a_hostile_code_refuses_the_order(wh1: RunningCloud, barcode: str, said: str) -> None:
    response = wh1.api.post(
        "/api/v1/orders", json={"orders": [order("BC-BAD", lines=_lines(barcode)), order("BC-OK")]}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["accepted"] == ["BC-OK"]
    [error] = answer["errors"]
    assert (error["index"], error["order_ref"], error["code"]) == (0, "BC-BAD", "invalid_order")
    assert said in error["message"]
    assert "Traceback" not in error["message"]
    assert wh1.api.get("/api/v1/orders/BC-BAD").status_code == 404


def test_the_cloud_keeps_an_item_check_refusal_on_the_order_timeline_and_leaves_its_state(
    wh1: RunningCloud,
) -> None:
    wh1.ingest(order("BC-2", lines=_lines("4006381333931")))
    agent = wh1.enroll()
    identity = authenticate_agent(wh1.store, agent.credential)
    body = {"reason": "wrong_item", "scan": "96385074", "sku": None, "packer": None}
    outcome = apply_events(
        wh1.store,
        identity,
        [
            IncomingEvent(
                "ic-1",
                EventKind.ITEM_CHECK_REFUSED.value,
                "BC-2",
                "S1",
                int(time.time() * 1000),
                json.dumps(body).encode(),
                1,
            )
        ],
    )
    assert (outcome.acked, outcome.rejected) == (["ic-1"], [])
    got = wh1.api.get("/api/v1/orders/BC-2").json()
    assert got["state"] == "created"
    [event] = got["events"]
    assert event["kind"] == "item_check_refused"
