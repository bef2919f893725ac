"""Rendered labels parse back into fields that hold every sample value, read by us and by the mock printer."""

from __future__ import annotations

from typing import Any

from dockside.labels import compile_template, load_shipped_template
from dockside.labels.escpos_template import EscposTemplate
from dockside.labels.zpl_fields import read_labels
from hardware_mocks.zpl import decode_fields
from tests.dockside.hostile import HOSTILE, read_escpos, with_value


def _shipping(data: dict[str, Any]) -> bytes:
    return compile_template("zpl", load_shipped_template("shipping-4x6").source).render(data)


def test_the_shipping_label_holds_every_sample_value_in_its_fields() -> None:
    sample = load_shipped_template("shipping-4x6").sample_data
    label = _shipping(sample)
    (parsed,) = read_labels(label, width_dots=812, height_dots=1218)
    texts = [field.text for field in parsed.fields if field.data is not None]

    def field_with(value: str) -> str:
        matches = [text for text in texts if value in text]
        assert matches, f"{value!r} is on no field of the label: {texts}"
        return matches[0]

    for key in ("name", "company", "street", "street2", "city", "region", "postal_code", "country", "phone"):
        field_with(sample["ship_to"][key])
    for key in ("name", "street", "city", "region", "postal_code", "country"):
        field_with(sample["ship_from"][key])
    field_with(sample["shipment"]["carrier"])
    assert field_with(sample["shipment"]["service"].upper()) == "EXPRESS"
    field_with(f"{sample['parcel']['weight_kg']} kg / {sample['parcel']['weight_lb']} lb")
    field_with(f"ORDER {sample['order']['order_ref']}")
    field_with(f"{len(sample['lines'])} lines, {sum(line['qty'] for line in sample['lines'])} units")
    for key in ("station", "job_id", "printed_at"):
        field_with(sample[key])

    barcodes = {field.barcode.kind: field for field in parsed.fields if field.barcode is not None}
    assert barcodes["code128"].text == sample["shipment"]["tracking"]
    assert barcodes["qr"].text == f"{sample['shipment']['tracking']} {sample['order']['order_ref']}"


def test_the_mock_printer_reads_the_same_fields_as_our_parser() -> None:
    sample = load_shipped_template("shipping-4x6").sample_data
    for data in [sample, *(with_value(sample, ("ship_to", "name"), value) for value in HOSTILE.values())]:
        label = _shipping(data)
        (parsed,) = read_labels(label, width_dots=812, height_dots=1218)
        ours = [field.data for field in parsed.fields if field.data is not None]
        assert decode_fields(label) == ours


def test_each_sku_label_carries_its_line_and_prints_once_per_unit() -> None:
    shipped = load_shipped_template("sku-2x1")
    sample = shipped.sample_data
    labels = read_labels(
        compile_template("zpl", shipped.source).render(sample), width_dots=406, height_dots=203
    )

    assert len(labels) == len(sample["lines"])
    for label, line in zip(labels, sample["lines"], strict=True):
        texts = [field.text for field in label.fields]
        assert line["sku"] in texts
        assert line["description"] in texts
        assert f"Order {sample['order']['order_ref']}" in texts
        assert f"Qty {line['qty']}" in texts
        (barcode,) = [field for field in label.fields if field.barcode is not None]
        assert barcode.text == line["sku"]
        assert label.quantity == line["qty"]


def test_the_packing_slip_prints_every_sample_value() -> None:
    shipped = load_shipped_template("packing-slip")
    sample = shipped.sample_data
    compiled = compile_template("escpos", shipped.source, width_dots=shipped.width_dots)
    assert isinstance(compiled, EscposTemplate)
    items = read_escpos(compiled.render(sample))
    lines = [params.decode(compiled.setup.codec) for name, params in items if name == "text"]
    slip = "\n".join(lines)

    for key in ("name", "company", "street", "street2", "city", "region", "postal_code", "country"):
        assert sample["ship_to"][key] in slip, key
    for line in sample["lines"]:
        row = next(text for text in lines if text.startswith(line["sku"]))
        assert line["description"] in row
        assert row.endswith(str(line["qty"]))
    assert any(
        text.startswith("Units") and text.endswith(str(sum(x["qty"] for x in sample["lines"])))
        for text in lines
    )
    assert f"{sample['order']['value']['amount']} {sample['order']['value']['currency']}" in slip
    assert sample["order"]["order_ref"] in slip
    assert f"Tracking {sample['shipment']['tracking']}" in slip

    barcode = next(params for name, params in items if name == "GS k")
    assert barcode[2:].decode("ascii") == "{B" + sample["order"]["order_ref"]
    stored = next(params for name, params in items if name == "GS ( k" and params[4:5] == b"P")
    assert stored[6:].decode("utf-8") == f"{sample['shipment']['tracking']} {sample['order']['order_ref']}"
