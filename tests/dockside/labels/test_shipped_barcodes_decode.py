"""Every shipped label's barcodes scan: drawn by the project's renderer, read by zbar, to the value put in.

For the sample and for the tracking numbers, postal codes, PO numbers and SSCCs real orders carry,
up to the longest the models allow: each Code 128 decodes to exactly its value (GS1-128 ones with
zbar's GS1 flag, so FNC1 follows the start), has ten modules of white either side on the label,
and is as wide in pixels as validation measured it.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pyzbar.pyzbar import ZBarSymbol  # type: ignore[import-untyped]

from dockside.labels import compile_template, load_shipped_template
from dockside.labels.barcode_fit import LONGEST_VALUES, measure_barcodes
from dockside.labels.zpl_fields import ZplField, ZplLabel
from tests.dockside.labels.scanner import bars, linear_barcodes, render_shipped, scan

QUIET = 10
TRACKING_LIMIT = next(value.length for value in LONGEST_VALUES if value.path == ("shipment", "tracking"))

TRACKING_NUMBERS = [
    "DS4200000042US",  # the sample
    "RR123456785US",  # UPU S10, 13
    "1Z999AA10123456784",  # UPS, 18
    "00340434161094042557",  # SSCC-like, 20 digits
    "9400111899223197428490",  # USPS-style, 22 digits
    "420902101234940011189922319742",  # IMpb with routing, 30 digits
    "9" * 33,  # odd digits: subset C, the last in B
    "1" * 34,
    "JJD00" + "1234567890" * 2 + "12345",  # mixed, 30
    "Z" * TRACKING_LIMIT,  # the widest the model allows
    "7" * TRACKING_LIMIT,
]


def _with(sample: dict[str, Any], **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(sample)
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        for holder in (data, data.get("order", {})) if parents[:1] == ["ship_to"] else (data,):
            node = holder
            for parent in parents:
                node = node[parent]
            node[key] = value
    return data


def _one_label(name: str, data: dict[str, Any]) -> tuple[ZplLabel, Any]:
    (rendered,) = render_shipped(name, data)
    return rendered


def _assert_scans(image: Any, field: ZplField, expected: str, *, gs1: bool = False) -> None:
    assert field.barcode is not None
    band, strip = bars(image, field)
    found = scan(strip)
    assert [(hit.data, hit.gs1) for hit in found] == [(expected, gs1)], f"line {field.line}: {found}"
    module = field.barcode.module_width
    left, right = band.quiet()
    assert left >= QUIET * module, f"{left} dots of quiet zone left of {expected!r}: need {QUIET * module}"
    assert right >= QUIET * module, f"{right} dots of quiet zone right of {expected!r}: need {QUIET * module}"


def _measured_widths(name: str, data: dict[str, Any]) -> list[int]:
    shipped = load_shipped_template(name)
    zpl = compile_template(shipped.language, shipped.source).render(data).decode()
    return [
        extent.symbol_dots
        for extent in measure_barcodes(zpl, width_dots=shipped.width_dots, height_dots=shipped.height_dots)
        if extent.kind == "Code 128"
    ]


@pytest.mark.parametrize("tracking", TRACKING_NUMBERS, ids=lambda value: f"{len(value)}:{value[:6]}")
def test_the_shipping_labels_tracking_barcode_scans_with_quiet_zones(tracking: str) -> None:
    sample = load_shipped_template("shipping-4x6").sample_data
    data = _with(sample, shipment__tracking=tracking, order__order_ref="R" * 64)
    label, image = _one_label("shipping-4x6", data)

    (field,) = linear_barcodes(label)
    _assert_scans(image, field, tracking)
    band, _ = bars(image, field)
    assert [band.width] == _measured_widths("shipping-4x6", data)
    assert field.barcode is not None
    # What carriers ask for where it can be had: 2 dots (0.25 mm) or more up to 31 characters.
    if len(tracking) <= 31 or tracking.isdigit():
        assert field.barcode.module_width >= 2
    (qr,) = scan(image, (ZBarSymbol.QRCODE,))
    assert qr.data == f"{tracking} {'R' * 64}"


def test_the_sample_shipping_label_scans_and_reads_as_it_should() -> None:
    sample = load_shipped_template("shipping-4x6").sample_data
    label, image = _one_label("shipping-4x6", sample)

    (field,) = linear_barcodes(label)
    _assert_scans(image, field, sample["shipment"]["tracking"])
    texts = [field.text for field in label.fields if field.data is not None and field.barcode is None]
    assert "PARCEL 1 OF 2" in texts
    assert "3 lines, 6 units" in texts
    assert "300 x 200 x 150 mm" in texts


def test_empty_address_lines_collapse_and_one_line_reads_one_line() -> None:
    sample = load_shipped_template("shipping-4x6").sample_data
    full, _ = _one_label("shipping-4x6", sample)
    data = _with(sample, ship_to__company="", ship_to__street2="", ship_to__phone="")
    data["lines"] = data["order"]["lines"] = [{"sku": "MUG-BLUE", "qty": 1, "description": "Blue mug"}]
    sparse, _ = _one_label("shipping-4x6", data)

    def rows(label: ZplLabel) -> dict[str, int]:
        return {field.text: field.y for field in label.fields if field.data and 200 <= field.y < 540}

    before, after = rows(full), rows(sparse)
    street, city = sample["ship_to"]["street"], "Portland, OR 97205"
    assert after[street] == before[street] - 46  # the company's line is gone
    assert after[city] == before[city] - 46 - 48  # and the second street line's
    assert after["US"] - after[city] == before["US"] - before[city]  # no gap left anywhere
    assert sorted(after) == sorted([sample["ship_to"]["name"], street, city, "US"])
    texts = [field.text for field in sparse.fields]
    assert "1 line, 1 unit" in texts


CARTON_CASES = [
    pytest.param({}, id="sample"),
    pytest.param({"ship_to__postal_code": "1010"}, id="odd-digit-postal"),
    pytest.param({"ship_to__postal_code": "SW1A 1AA"}, id="uk-postal-without-space"),
    pytest.param({"ship_to__postal_code": "Z" * 20, "order__po_number": "P" * 30}, id="longest-letters"),
    pytest.param({"ship_to__postal_code": "9" * 20, "order__po_number": "8" * 30}, id="longest-digits"),
    pytest.param({"order__po_number": "4500012345"}, id="numeric-po"),
    pytest.param({"shipment__sscc": "003456789012345675"}, id="another-sscc"),
]


@pytest.mark.parametrize("changes", CARTON_CASES)
def test_the_gs1_carton_labels_barcodes_scan_as_gs1_128(changes: dict[str, str]) -> None:
    sample = load_shipped_template("gs1-carton-4x6").sample_data
    data = _with(sample, **changes)
    label, image = _one_label("gs1-carton-4x6", data)

    postal = data["ship_to"]["postal_code"].replace(" ", "").upper()
    expected = [f"420{postal}", f"400{data['order']['po_number']}", f"00{data['shipment']['sscc']}"]
    fields = linear_barcodes(label)
    assert len(fields) == 3
    for field, value in zip(fields, expected, strict=True):
        _assert_scans(image, field, value, gs1=True)
    widths = [bars(image, field)[0].width for field in fields]
    assert widths == _measured_widths("gs1-carton-4x6", data)
    texts = [field.text for field in label.fields if field.data is not None and field.barcode is None]
    assert f"(00) {data['shipment']['sscc']}" in texts
    assert f"SHIP TO POSTAL CODE  (420) {postal}" in texts
    assert f"PURCHASE ORDER  (400) {data['order']['po_number']}" in texts
    assert "2 OF 3" in texts


def test_a_carton_without_po_or_sscc_prints_no_empty_barcode() -> None:
    sample = load_shipped_template("gs1-carton-4x6").sample_data
    label, image = _one_label("gs1-carton-4x6", _with(sample, order__po_number="", shipment__sscc=""))

    (field,) = linear_barcodes(label)
    _assert_scans(image, field, "42043219", gs1=True)


@pytest.mark.parametrize("tracking", ["RR123456785US", "Z" * TRACKING_LIMIT, "9" * 21])
def test_the_customs_declarations_tracking_barcode_scans(tracking: str) -> None:
    sample = load_shipped_template("customs-cn23-4x6").sample_data
    label, image = _one_label("customs-cn23-4x6", _with(sample, shipment__tracking=tracking))

    (field,) = linear_barcodes(label)
    _assert_scans(image, field, tracking)
    texts = [field.text for field in label.fields if field.data is not None]
    assert [text for text in texts if text.startswith(("69", "49", "61"))] == ["691200", "490199", "611595"]
    assert {"PT", "US", "TR"} <= set(texts)
    assert [text for text in texts if text.endswith((".00", ".90", ".60"))] == ["25.00", "39.90", "18.60"]
    assert "Total value 83.50 USD" in texts


@pytest.mark.parametrize("sku", ["MUG-BLUE", "1234567", "ABCDEFGHIJKLM", "X" * 31])
def test_the_sku_labels_barcode_scans(sku: str) -> None:
    sample = load_shipped_template("sku-2x1").sample_data
    data = copy.deepcopy(sample)
    data["lines"] = data["order"]["lines"] = [{"sku": sku, "qty": 1, "description": "thing"}]
    label, image = _one_label("sku-2x1", data)

    (field,) = linear_barcodes(label)
    _assert_scans(image, field, sku)
