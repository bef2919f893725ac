"""A parcel's documents at the agent: the plan (the OMS's carrier label or the template, then the
ruleset's documents) and the jobs `Labeller.label_job` makes of them.

A PDF carrier label is checked the way a carrier's scanner would read it: the `^GFA` graphic the
agent sends is inflated here from its Z64 text, and zbar (pyzbar) must read the PDF's barcode
from the dots; an ESC/POS raster likewise from its `GS v 0` bands. Last, a pack through the agent's
real API prints the OMS's PDF label on a mock ZPL printer (read back the same way) and the
ruleset's packing slip on a mock ESC/POS printer, each a job with the parcel's tracking number.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium  # type: ignore[import-untyped]
import pytest
from fpdf import FPDF
from PIL import Image, ImageOps
from pyzbar import pyzbar  # type: ignore[import-untyped]

from dockside.errors import InputError
from dockside.labels import load_shipped_template
from dockside.orders import SyncedOrder
from dockside.rules import decide
from dockside.shipping.parcels import DocumentKind, LabelDocument
from edge_agent.devices.config import PrinterConfig
from edge_agent.devices.escpos_printer import EscposPrinter
from edge_agent.devices.printer_lane import PrinterLane
from edge_agent.devices.zpl import ZplPrinter
from edge_agent.packing import documents
from edge_agent.packing.documents import (
    DocumentPlan,
    carrier_label_printout,
    paper_for,
    parcel_documents,
    plan_documents,
    shipping_label_plan,
)
from edge_agent.packing.labelling import Labeller
from edge_agent.printing.jobs import JobStatus
from edge_agent.store.cache import Cache
from edge_agent.store.database import Store
from edge_agent.store.outbox import Outbox
from edge_agent.store.templates import compile_version
from edge_agent.sync import MemoryTransport
from hardware_mocks import MockPrinter, MockScale
from tests.edge_agent.agent_harness import (
    RunningAgent,
    order_body,
    publish_warehouse,
    scale_settled,
    station_body,
)
from tests.edge_agent.waiting import wait_until

TRACKING = "1Z999AA10123456784"  # UPS's published example number
DEADLINE_S = 10.0
RULESET: dict[str, Any] = {
    "default": {
        "carrier": "UPS",
        "template": "shipping-4x6",
        "documents": [{"kind": "packing_slip", "template": "packing-slip", "printer_role": "slip"}],
    },
    "rules": [
        {
            "name": "b2b",
            "when": "service_level == 'b2b'",
            "then": {
                "documents": [
                    {"kind": "carton_label", "template": "gs1-carton-4x6"},
                    {"kind": "packing_slip", "template": "packing-slip", "printer_role": "slip"},
                ]
            },
        }
    ],
}


def _pdf_label(text: str = TRACKING, *, pages: int = 1) -> bytes:
    """A 4x6 in carrier label as a PDF: a Code 39 barcode of `text` (6-dot bars at 203 dpi)."""
    pdf = FPDF(unit="in", format=(4, 6))
    for _ in range(pages):
        pdf.add_page()
        pdf.set_font("helvetica", size=16)
        pdf.text(0.3, 0.6, "UPS GROUND")
        pdf.code39(f"*{text}*", x=0.3, y=1.0, w=0.03, h=1.0)
    return bytes(pdf.output())


def _png_label(text: str = TRACKING) -> bytes:
    """The PDF label drawn at 203 dpi by PDFium and saved as a PNG that says its resolution."""
    pdf = pdfium.PdfDocument(_pdf_label(text))
    try:
        image = pdf[0].render(scale=203 / 72, grayscale=True).to_pil()
    finally:
        pdf.close()
    out = io.BytesIO()
    image.save(out, format="PNG", dpi=(203, 203))
    return out.getvalue()


def _document(fmt: str, data: bytes) -> LabelDocument:
    return LabelDocument.model_validate({"format": fmt, "data_base64": base64.b64encode(data).decode()})


ZPL_LABEL = (
    f"^XA^PW812^LL1218^FO60,60^A0N,40,40^FDUPS GROUND^FS^FO60,160^BY3^BCN,200,Y,N,N^FD{TRACKING}^FS^XZ\n"
).encode()


def _order(parcels: list[dict[str, Any]] | None = None, **fields: Any) -> SyncedOrder:
    body: dict[str, Any] = {
        "order_ref": "R-1",
        "warehouse": "WH1",
        "ship_to": {
            "name": "Ann",
            "street": "1 Rue",
            "city": "Lyon",
            "postal_code": "69001",
            "country": "FR",
        },
        "lines": [{"sku": "TEE-1", "qty": 2}],
        "parcels": parcels or [],
        **fields,
    }
    return SyncedOrder.from_sync_body(body, state="released")


def _labelled_order() -> SyncedOrder:
    """Two parcels: the OMS sent parcel 1's carrier label (PDF) and parcel 2's number only."""
    return _order(
        [
            {"tracking_number": TRACKING, "label": {"format": "pdf", "data_base64": _b64(_pdf_label())}},
            {"tracking_number": "1z 999 aa1 0123456793", "dimensions_mm": [400, 300, 200]},
        ]
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- plans -------------------------------------------------------------------------------------


def test_an_order_without_oms_labels_prints_its_template_then_the_rulesets_documents() -> None:
    order = _order()
    decision = decide(order.order_json, 900, RULESET)
    label = shipping_label_plan(order, 1, decision)
    assert label == DocumentPlan(DocumentKind.SHIPPING_LABEL, "shipping-4x6", "label", None, "")
    extra = plan_documents(order, 1, decision)
    assert extra == [DocumentPlan(DocumentKind.PACKING_SLIP, "packing-slip", "slip", None, "")]
    assert parcel_documents(order, 1, decision) == [label, *extra]

    b2b = _order(service_level="b2b")
    kinds = [plan.kind for plan in parcel_documents(b2b, 1, decide(b2b.order_json, 900, RULESET))]
    assert kinds == [DocumentKind.SHIPPING_LABEL, DocumentKind.CARTON_LABEL, DocumentKind.PACKING_SLIP]
    # No ruleset, no documents: the shipping label alone.
    assert plan_documents(order, 1, decide(order.order_json, 900)) == []


def test_the_oms_label_of_a_parcel_is_what_its_shipping_label_prints() -> None:
    order = _labelled_order()
    decision = decide(order.order_json, 900, RULESET)
    first = shipping_label_plan(order, 1, decision)
    assert (first.kind, first.template, first.printer_role) == (DocumentKind.SHIPPING_LABEL, None, "label")
    assert first.carrier_label is not None
    assert first.carrier_label.data().startswith(b"%PDF-")
    assert first.tracking_number == TRACKING
    # Parcel 2 has a number but no label: the template prints it, with the OMS's number.
    second = shipping_label_plan(order, 2, decision)
    assert (second.template, second.carrier_label, second.tracking_number) == (
        "shipping-4x6",
        None,
        "1Z999AA10123456793",
    )
    # A parcel the packer added at the station (the OMS listed two) gets the template, no number.
    third = shipping_label_plan(order, 3, decision)
    assert (third.template, third.carrier_label, third.tracking_number) == ("shipping-4x6", None, "")
    # The extra documents carry the parcel's number too and never the carrier label.
    slips = plan_documents(order, 1, decision)
    assert [(p.kind, p.carrier_label, p.tracking_number) for p in slips] == [
        (DocumentKind.PACKING_SLIP, None, TRACKING)
    ]


@pytest.mark.parametrize("parcel", [0, -1, 100, True])
def test_a_parcel_number_out_of_range_is_refused(parcel: Any) -> None:
    order = _order()
    with pytest.raises(InputError) as caught:
        shipping_label_plan(order, parcel, decide(order.order_json, 900))
    assert caught.value.code == "parcel_out_of_range"
    assert "order R-1 has no parcel" in caught.value.message


# -- carrier labels to printer bytes ------------------------------------------------------------


def _zpl_graphics(zpl: bytes) -> list[Image.Image]:
    """Each ^GFA Z64 graphic of `zpl` as a black-on-white picture, read independently of the
    code that wrote it: the CRC-16 of the base64 text, the inflated size and the row width."""
    found = re.findall(rb"\^GFA,(\d+),(\d+),(\d+),:Z64:([A-Za-z0-9+/=]+):([0-9A-Fa-f]{4})", zpl)
    pictures = []
    for total, binary, row_bytes, encoded, crc in found:
        assert total == binary
        assert int(crc, 16) == _crc16_xmodem(encoded)
        rows = zlib.decompress(base64.b64decode(encoded))
        assert len(rows) == int(total)
        width, height = int(row_bytes) * 8, int(total) // int(row_bytes)
        dots = Image.frombytes("1", (width, height), rows)  # a set bit is a printed (black) dot
        pictures.append(_on_white(ImageOps.invert(dots.convert("L"))))
    return pictures


def _crc16_xmodem(data: bytes) -> int:
    """CRC-16/XMODEM (poly 0x1021, init 0), bit by bit as the ZPL manual describes it."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def _escpos_pictures(raster: bytes) -> Image.Image:
    """The `GS v 0` bands of an ESC/POS raster stacked into one black-on-white picture."""
    bands, at = [], 0
    while raster.startswith(b"\x1dv0", at):
        row_bytes = int.from_bytes(raster[at + 4 : at + 6], "little")
        rows = int.from_bytes(raster[at + 6 : at + 8], "little")
        data = raster[at + 8 : at + 8 + row_bytes * rows]
        bands.append(Image.frombytes("1", (row_bytes * 8, rows), data))
        at += 8 + row_bytes * rows
    assert raster[at:].startswith(b"\x1dV"), "the raster ends with a cut"
    picture = Image.new("1", (bands[0].width, sum(b.height for b in bands)))
    top = 0
    for band in bands:
        picture.paste(band, (0, top))
        top += band.height
    return _on_white(ImageOps.invert(picture.convert("L")))


def _on_white(picture: Image.Image) -> Image.Image:
    framed = Image.new("L", (picture.width + 80, picture.height + 80), 255)
    framed.paste(picture, (40, 40))
    return framed


def _decoded(picture: Image.Image) -> list[str]:
    return [symbol.data.decode() for symbol in pyzbar.decode(picture)]


ZPL_PAPER = paper_for(PrinterConfig(id="Z1", language="zpl", host="127.0.0.1"))
ESCPOS_PAPER = paper_for(PrinterConfig(id="E1", language="escpos", host="127.0.0.1"))


def test_the_printers_paper_is_4x6_on_zpl_and_80mm_on_escpos_at_203_dpi() -> None:
    assert (ZPL_PAPER.dpi, ZPL_PAPER.width_dots, ZPL_PAPER.height_dots) == (203, 812, 1218)
    assert (ESCPOS_PAPER.dpi, ESCPOS_PAPER.width_dots, ESCPOS_PAPER.height_dots) == (203, 576, None)


def test_a_pdf_carrier_label_becomes_a_zpl_graphic_whose_barcode_scans() -> None:
    zpl = carrier_label_printout(_document("pdf", _pdf_label()), ZPL_PAPER, parcel=1)
    assert zpl.startswith(b"^XA")
    assert zpl.rstrip().endswith(b"^XZ")
    assert zpl.count(b"^XA") == 1
    (picture,) = _zpl_graphics(zpl)
    assert _decoded(picture) == [TRACKING]
    two_pages = carrier_label_printout(_document("pdf", _pdf_label(pages=2)), ZPL_PAPER, parcel=1)
    assert [_decoded(p) for p in _zpl_graphics(two_pages)] == [[TRACKING], [TRACKING]]


def test_a_png_carrier_label_prints_on_an_escpos_printer_and_scans() -> None:
    raster = carrier_label_printout(_document("png", _png_label()), ESCPOS_PAPER, parcel=1)
    assert _decoded(_escpos_pictures(raster)) == [TRACKING]


def test_a_zpl_carrier_label_passes_through_unchanged() -> None:
    assert carrier_label_printout(_document("zpl", ZPL_LABEL), ZPL_PAPER, parcel=1) == ZPL_LABEL


@pytest.mark.parametrize(
    ("fmt", "data", "paper", "needle"),
    [
        ("pdf", b"not a pdf at all", ZPL_PAPER, "is not a PDF"),
        ("pdf", _pdf_label()[:600], ZPL_PAPER, "%%EOF"),
        ("pdf", _pdf_label(pages=50), ZPL_PAPER, "50 pages"),
        ("png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, ZPL_PAPER, "PNG"),
        ("zpl", ZPL_LABEL + ZPL_LABEL, ZPL_PAPER, "second ^XA"),
        ("zpl", b"^XA^MNY^FO10,10^FDx^FS^XZ", ZPL_PAPER, "^MN"),
        ("zpl", b"~JR^XA^FO10,10^FDx^FS^XZ", ZPL_PAPER, "ZPL label"),
        ("zpl", ZPL_LABEL, ESCPOS_PAPER, "is ZPL, which printer P-7 (ESC/POS) cannot print"),
    ],
)
def test_a_label_that_cannot_print_is_an_input_error_naming_the_parcel(
    fmt: str, data: bytes, paper: Any, needle: str
) -> None:
    with pytest.raises(InputError) as caught:
        carrier_label_printout(_document(fmt, data), paper, parcel=3, printer="P-7")
    message = caught.value.message
    assert message.startswith(f"parcel 3's carrier label ({fmt.upper()})")
    assert needle in message
    assert caught.value.code.startswith(("label_", "carrier_label_"))


def test_a_renderer_crash_on_the_oms_bytes_is_still_an_input_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> bytes:
        raise RuntimeError("pdfium fell over")

    monkeypatch.setattr(documents, "label_to_zpl", broken)
    with pytest.raises(InputError) as caught:
        carrier_label_printout(_document("pdf", _pdf_label()), ZPL_PAPER, parcel=2)
    assert caught.value.code == "carrier_label_unprintable"
    assert "parcel 2's carrier label (PDF) cannot be printed" in caught.value.message
    assert "RuntimeError" in caught.value.message


# -- label_job ---------------------------------------------------------------------------------


@pytest.fixture
def labeller(store: Store) -> Labeller:
    cache = Cache(store)
    cache.warehouses["WH1"] = {"ship_from": {"name": "Dock", "country": "FR"}}
    return Labeller(store, cache, Outbox(store), warehouse="WH1")


@pytest.fixture
def zpl_lane() -> Iterator[PrinterLane]:
    config = PrinterConfig(id="Z-1", language="zpl", host="127.0.0.1", role="label")
    lane = PrinterLane(config, ZplPrinter(config))
    yield lane
    lane.close()


@pytest.fixture
def escpos_lane() -> Iterator[PrinterLane]:
    config = PrinterConfig(id="E-1", language="escpos", host="127.0.0.1", role="slip")
    lane = PrinterLane(config, EscposPrinter(config))
    yield lane
    lane.close()


TEMPLATE = compile_version(
    "shipping-4x6",
    4,
    {
        "language": "zpl",
        "source": "^XA^FO20,20^A0N,30,30^FH^FDParcel {{ parcel.number }} of {{ parcel.count }}"
        " T:{{ shipment.tracking }} S:{{ shipment.sscc }}"
        " D:{{ (parcel.dimensions_mm or []) | join('x') }}^FS^XZ",
    },
)


def test_a_pdf_carrier_label_job_holds_a_zpl_graphic_of_the_oms_label(
    labeller: Labeller, zpl_lane: PrinterLane
) -> None:
    order = _labelled_order()
    decision = decide(order.order_json, 900, RULESET)
    plan = shipping_label_plan(order, 1, decision)
    assert plan.carrier_label is not None

    async def made() -> bytes:
        assert plan.carrier_label is not None
        return await labeller.carrier_label_bytes(zpl_lane, plan.carrier_label, parcel=1)

    data = asyncio.run(made())
    job = labeller.label_job(
        "R-1",
        order,
        900,
        decision,
        None,
        "S1",
        zpl_lane,
        request_id="req-1",
        parcel=1,
        parcel_count=2,
        tracking=plan.tracking_number,
        carrier_label=plan.carrier_label,
        carrier_label_data=data,
    )
    assert job.label == data
    assert [_decoded(p) for p in _zpl_graphics(job.label)] == [[TRACKING]]
    assert (job.status, job.printer, job.parcel, job.document, job.tracking_number) == (
        JobStatus.SENDING,
        "Z-1",
        1,
        "shipping_label",
        TRACKING,
    )
    assert (job.decision.template, job.decision.template_version, job.decision.carrier) == (
        "carrier-label-pdf",
        None,
        "UPS",
    )
    # Without the bytes made ahead, label_job converts the label itself (same bytes); without a
    # tracking number it records the one the OMS sent with the label (the one printed on it).
    inline = labeller.label_job(
        "R-1", order, 900, decision, None, "S1", zpl_lane, request_id=None, carrier_label=plan.carrier_label
    )
    assert (inline.label, inline.tracking_number) == (data, TRACKING)


def test_a_zpl_carrier_label_job_sends_the_oms_zpl_as_given(
    labeller: Labeller, zpl_lane: PrinterLane
) -> None:
    order = _order(
        [{"tracking_number": TRACKING, "label": {"format": "zpl", "data_base64": _b64(ZPL_LABEL)}}]
    )
    decision = decide(order.order_json, 900)
    plan = shipping_label_plan(order, 1, decision)
    assert plan.carrier_label is not None
    data = asyncio.run(labeller.carrier_label_bytes(zpl_lane, plan.carrier_label, parcel=1))
    job = labeller.label_job(
        "R-1",
        order,
        900,
        decision,
        None,
        "S1",
        zpl_lane,
        request_id=None,
        tracking=TRACKING,
        carrier_label=plan.carrier_label,
        carrier_label_data=data,
    )
    assert job.label == ZPL_LABEL
    assert job.decision.template == "carrier-label-zpl"


def test_a_bad_carrier_label_is_refused_before_any_job_naming_the_parcel(
    labeller: Labeller, zpl_lane: PrinterLane, escpos_lane: PrinterLane
) -> None:
    not_pdf = _document("pdf", b"<html>label</html>")
    with pytest.raises(InputError) as caught:
        asyncio.run(labeller.carrier_label_bytes(zpl_lane, not_pdf, parcel=2))
    assert caught.value.message.startswith("parcel 2's carrier label (PDF) cannot be printed")
    zpl = _document("zpl", ZPL_LABEL)
    with pytest.raises(InputError) as caught:
        asyncio.run(labeller.carrier_label_bytes(escpos_lane, zpl, parcel=1))
    assert "printer E-1 (ESC/POS) cannot print" in caught.value.message


def test_template_documents_see_the_parcel_and_record_its_facts(
    labeller: Labeller, zpl_lane: PrinterLane
) -> None:
    order = _labelled_order()
    decision = decide(order.order_json, 2500, RULESET, parcel_number=2, parcel_count=3)
    plan = shipping_label_plan(order, 2, decision)
    job = labeller.label_job(
        "R-1",
        order,
        2500,
        decision,
        TEMPLATE,
        "S1",
        zpl_lane,
        request_id="req-2",
        parcel=2,
        parcel_count=3,
        tracking=plan.tracking_number,
        dimensions_mm=(400, 300, 200),
    )
    assert b"Parcel 2 of 3 T:1Z999AA10123456793 S: D:400x300x200" in job.label
    assert (job.parcel, job.document, job.tracking_number) == (2, "shipping_label", "1Z999AA10123456793")
    assert (job.decision.template, job.decision.template_version) == ("shipping-4x6", 4)
    assert job.decision.dimensions_mm == (400, 300, 200)
    facts = job.event_body()
    assert (facts["parcel"], facts["document"], facts["tracking_number"], facts["dimensions_mm"]) == (
        2,
        "shipping_label",
        "1Z999AA10123456793",
        [400, 300, 200],
    )

    carton = labeller.label_job(
        "R-1",
        order,
        2500,
        decision,
        TEMPLATE,
        "S1",
        zpl_lane,
        request_id=None,
        parcel=2,
        parcel_count=3,
        tracking=job.tracking_number,
        sscc="003456789012345675",
        document=DocumentKind.CARTON_LABEL,
        printer_role="carton",
    )
    assert b"S:003456789012345675" in carton.label
    assert (carton.document, carton.decision.printer_role, carton.decision.sscc) == (
        "carton_label",
        "carton",
        "003456789012345675",
    )
    assert carton.event_body()["sscc"] == "003456789012345675"


def test_without_a_tracking_number_the_job_id_is_the_reference(
    labeller: Labeller, zpl_lane: PrinterLane
) -> None:
    order = _order()
    job = labeller.label_job(
        "R-1", order, 900, decide(order.order_json, 900), TEMPLATE, "S1", zpl_lane, request_id=None
    )
    assert job.tracking_number == job.job_id.upper()[-20:]
    assert f"T:{job.tracking_number}".encode() in job.label
    assert b"Parcel 1 of 1" in job.label
    assert (job.parcel, job.document, job.decision.printer_role) == (1, "shipping_label", "label")


# -- through the agent: a pack prints the OMS's PDF label and the ruleset's packing slip ---------


@pytest.fixture
def label_printer() -> Iterator[MockPrinter]:
    mock = MockPrinter(port=0, control_port=0, serial="ZDOCS1").start()
    try:
        yield mock
    finally:
        mock.stop()


@pytest.fixture
def slip_printer() -> Iterator[MockPrinter]:
    mock = MockPrinter(port=0, control_port=0, language="escpos", serial="EDOCS1").start()
    try:
        yield mock
    finally:
        mock.stop()


@pytest.fixture
def agent(
    data_dir: Path, label_printer: MockPrinter, slip_printer: MockPrinter, scale: MockScale
) -> Iterator[RunningAgent]:
    cloud = MemoryTransport()
    publish_warehouse(cloud)
    slip = load_shipped_template("packing-slip").version_body()
    cloud.publish(
        "template_version", "packing-slip@1", {**slip, "name": "packing-slip", "version": 1, "active": True}
    )
    assert scale.pty_path
    station = station_body("S1", label_printer, scale.pty_path)
    station["printers"].append(
        {
            "id": "S1-slip",
            "role": "slip",
            "language": "escpos",
            "host": "127.0.0.1",
            "port": slip_printer.port,
        }
    )
    cloud.publish("station", "S1", station)
    cloud.publish("carrier", "UPS", {"code": "UPS", "name": "UPS", "tracking": {"kind": "oms"}})
    documents_ = [{"kind": "packing_slip", "template": "packing-slip", "printer_role": "slip"}]
    cloud.publish(
        "ruleset",
        "default",
        {
            "name": "default",
            "version": 1,
            "default": {"carrier": "UPS", "documents": documents_},
            "rules": [],
        },
    )
    parcels = [{"tracking_number": TRACKING, "label": {"format": "pdf", "data_base64": _b64(_pdf_label())}}]
    cloud.publish("order", "D-0001", order_body("D-0001", parcels=parcels))
    running = RunningAgent(data_dir, cloud).start()
    try:
        running.wait_synced()
        wait_until(lambda: scale_settled(running), timeout=10, what="the scale reader to settle")
        yield running
    finally:
        running.stop()


def test_a_pack_prints_the_oms_pdf_label_as_a_graphic_that_scans_and_the_slip_on_its_printer(
    agent: RunningAgent, label_printer: MockPrinter, slip_printer: MockPrinter
) -> None:
    assert agent.http is not None
    packed = agent.http.post(
        "/api/v1/pack", json={"order_ref": "D-0001", "station": "S1", "request_id": "d1"}
    )
    assert packed.status_code == 200, packed.text
    answer = packed.json()
    assert (answer["status"], answer["tracking_number"], answer["carrier"]) == ("sent", TRACKING, "UPS")

    (label,) = label_printer.wait_for_labels(1)
    (picture,) = _zpl_graphics(label["data"].encode("ascii"))
    assert _decoded(picture) == [TRACKING]  # what the carrier's scanner reads off the printed label
    (slip,) = slip_printer.wait_for_labels(1)
    assert "D-0001" in "\n".join(slip["fields"])

    def printed() -> dict[str, dict[str, Any]]:
        return {body["document"]: body for body in map(json.loads, _bodies(agent, "label_printed"))}

    wait_until(lambda: len(printed()) == 2, what="both documents' label_printed events")
    events = printed()
    assert {(kind, e["parcel"], e["tracking_number"]) for kind, e in events.items()} == {
        ("shipping_label", 1, TRACKING),
        ("packing_slip", 1, TRACKING),
    }
    assert events["shipping_label"]["template"] == "carrier-label-pdf"
    assert events["packing_slip"]["printer"] == "S1-slip"


def _bodies(agent: RunningAgent, kind: str) -> list[str]:
    """The bodies of `kind` events the cloud received or the outbox still holds."""
    assert agent.agent is not None
    store = agent.agent.store
    rows = agent.call_on_loop(lambda: store.query("SELECT body FROM outbox WHERE kind = ?", (kind,)))
    return [event.body for event in agent.events(kind)] + [row["body"] for row in rows]
