"""Validation measures every barcode as the printer draws it and refuses one that leaves the label.

The encoder follows the ZPL manual's invocation codes; zbar (an independent decoder) reads what it
draws, and its widths are Code 128's published arithmetic: 11 modules a character, 13 for the stop.
"""

from __future__ import annotations

import copy

import pytest
from PIL import Image
from pydantic import ValidationError

from dockside.errors import TemplateError
from dockside.labels import load_shipped_template, validate_template
from dockside.labels.barcode_fit import LONGEST_VALUES, check_barcodes_fit, measure_barcodes
from dockside.labels.barcode_modules import zebra_code128
from dockside.orders import Address, Order
from dockside.shipping.parcels import ExpectedParcel
from tests.dockside.labels.scanner import scan

SAMPLE = load_shipped_template("shipping-4x6").sample_data


def _image(modules: str, module: int = 2) -> Image.Image:
    row = "0" * 10 + modules + "0" * 10
    image = Image.new("L", (len(row) * module, 40), 255)
    for index, bit in enumerate(row):
        if bit == "1":
            image.paste(0, (index * module, 0, (index + 1) * module, 40))
    return image


@pytest.mark.parametrize(
    ("data", "reads", "gs1", "characters"),
    [
        ("CODE128", "CODE128", False, 1 + 7 + 1),  # no start code: subset B
        (">:CODE128", "CODE128", False, 1 + 7 + 1),
        (">;382436>6CODE128", "382436CODE128", False, 1 + 3 + 1 + 7 + 1),  # the manual's figure C, less A
        (">;12345>6X", "1234X", False, 1 + 2 + 1 + 1 + 1),  # an unpaired digit before a shift is dropped
        (">:A>0B>=C", "A>B~C", False, 1 + 5 + 1),  # >0 is '>', >= is '~'
        (">;>800106141411234567897", "00106141411234567897", True, 1 + 1 + 10 + 1),
        (">:>8420SW1A1AA>8400PO-7", "420SW1A1AA\x1d400PO-7", True, 1 + 1 + 10 + 1 + 7 + 1),
    ],
)
def test_zebra_code128_draws_what_the_invocation_codes_say_and_zbar_reads_it(
    data: str, reads: str, gs1: bool, characters: int
) -> None:
    symbol = zebra_code128(data)

    assert symbol.width_modules == 11 * characters + 13 == len(symbol.modules)
    assert (symbol.text, symbol.gs1) == (reads, gs1)
    (found,) = scan(_image(symbol.modules))
    assert (found.data, found.gs1) == (reads, gs1)


@pytest.mark.parametrize("data", [">9ABC", "AB>;12", "A>XB", ">:Zoë"])
def test_what_the_preview_cannot_draw_exactly_is_a_value_error(data: str) -> None:
    with pytest.raises(ValueError, match=r"subset A|start code|invocation code|subset B has no"):
        zebra_code128(data)


def _label(field: str, *, width: int = 812, extra: str = "") -> str:
    return f"^XA^CI28^PW{width}{extra}\n{field}\n^XZ"


def test_a_barcode_is_measured_with_its_module_width_origin_and_quiet_zones() -> None:
    (extent,) = measure_barcodes(
        _label("^FO100,50^BY3^BCN,100,Y,N,N^FD>:DS4200000042US^FS"), width_dots=812, height_dots=1218
    )

    assert (extent.modules, extent.module, extent.symbol_dots) == (189, 3, 567)
    assert (extent.start, extent.end, extent.limit) == (100 - 30, 100 + 567 + 30, 812)
    assert extent.fits


def test_the_old_shipping_label_with_a_20_character_tracking_number_is_refused_with_line_and_column() -> None:
    zpl = _label("^FO60,824^BY3,3,190^BCN,190,Y,N,N^FH^FDDS42000000420000US01^FS")

    with pytest.raises(TemplateError) as refused:
        check_barcodes_fit(zpl, width_dots=812, height_dots=1218)

    error = refused.value
    assert (error.code, error.line, error.column) == ("barcode_too_wide", 2, 20)
    message = error.message
    assert "the Code 128 for 'DS42000000420000US01' is 765 dots wide (255 modules of 3 dots)" in message
    assert "plus 30 dots of quiet zone either side" in message
    assert "of the 812-dot-wide label" in message
    assert "^BY2" in message
    assert "subset C" in message


def test_print_width_label_home_and_a_left_quiet_zone_count() -> None:
    fits = "^FO100,50^BY2^BCN,60,N,N,N^FD>:ABCDEFGHIJ^FS"  # 145 modules: 290 dots + 20 each side
    check_barcodes_fit(_label(fits), width_dots=812, height_dots=1218)

    with pytest.raises(TemplateError, match="ends at 410, 10 dots past the edge of the 400-dot-wide label"):
        check_barcodes_fit(_label(fits, width=400), width_dots=812, height_dots=1218)
    with pytest.raises(TemplateError, match="ends at 830"):
        check_barcodes_fit(_label(fits, extra="^LH420,0"), width_dots=812, height_dots=1218)
    with pytest.raises(TemplateError, match="starts 10 dots before the label's edge"):
        check_barcodes_fit(_label("^FO10,50^BY2^BCN,60,N,N,N^FD>:ABC^FS"), width_dots=812, height_dots=1218)


def test_a_rotated_barcode_is_measured_against_the_labels_height() -> None:
    tall = "^FO50,100^BY3^BCR,80,N,N,N^FD>:ABCDEFGHIJKLMNOPQRSTUVWXYZ^FS"  # 325 modules: 975 dots

    with pytest.raises(TemplateError, match=r"dots high .* of the 1000-dot-high label"):
        check_barcodes_fit(_label(tall), width_dots=812, height_dots=1000)
    check_barcodes_fit(_label(tall), width_dots=812, height_dots=1218)


def test_a_qr_code_and_its_quiet_zone_must_be_on_the_label() -> None:
    qr = "^FO700,50^BQN,2,5^FDMA,DS4200000042US DEMO-0042^FS"  # 25 modules: 125 dots

    with pytest.raises(TemplateError, match=r"QR code .* smaller magnification"):
        check_barcodes_fit(_label(qr), width_dots=812, height_dots=1218)


def test_broken_barcode_data_is_measured_as_subset_b_and_empty_data_is_skipped() -> None:
    zpl = _label("^FO10,10^BY1^BCN,40,N,N,N^FD>9ABC^FS^FO10,80^BY1^BCN,40,N,N,N^FD^FS")

    (extent,) = measure_barcodes(zpl, width_dots=812, height_dots=1218)
    assert extent.modules == 11 * (5 + 2) + 13
    assert measure_barcodes("^XA^FO1,1^F", width_dots=100, height_dots=100) == []


def test_the_longest_values_are_the_models_bounds() -> None:
    bounds = {value.path: value.length for value in LONGEST_VALUES}

    assert bounds[("shipment", "tracking")] == 40
    assert bounds[("shipment", "sscc")] == 18
    assert bounds[("ship_to", "postal_code")] == bounds[("order", "ship_to", "postal_code")] == 20
    assert bounds[("order", "po_number")] == 30
    assert bounds[("order", "order_ref")] == 64
    # One past each bound is refused where orders come in, so no longer value reaches a label.
    with pytest.raises(ValidationError, match="at most 40 characters"):
        ExpectedParcel(tracking_number="T" * 41)
    with pytest.raises(ValidationError, match="at most 30 characters"):
        Order.model_validate({**_order(), "po_number": "P" * 31})
    with pytest.raises(ValidationError, match="at most 20 characters"):
        Address.model_validate({**SAMPLE["ship_to"], "postal_code": "9" * 21})
    with pytest.raises(ValidationError, match="at most 64 characters"):
        Order.model_validate({**_order(), "order_ref": "R" * 65})


def _order() -> dict[str, object]:
    order = copy.deepcopy(SAMPLE["order"])
    return {key: value for key, value in order.items() if key not in ("po_number", "ship_to_gln")}


FIXED_TEMPLATE = """^XA
^CI28
^PW812
^FO60,100^BY3,3,100^BCN,100,Y,N,N^FH^FD>:{{ shipment.tracking | code128 }}^FS
^XZ
"""


def test_publish_refuses_a_barcode_that_fits_the_sample_but_not_the_longest_tracking_number() -> None:
    body = load_shipped_template("shipping-4x6").version_body() | {"source": FIXED_TEMPLATE}

    with pytest.raises(TemplateError) as refused:
        validate_template(**body)

    error = refused.value
    assert error.code == "barcode_too_wide"
    assert (error.line, error.column) == (4, 20)
    assert "the label with the longest values as letters: shipment.tracking (40)" in error.message
    assert f"{'Z' * 40!r} is 1425 dots wide" in error.message


def test_publish_refuses_a_sample_whose_barcode_runs_off_the_label() -> None:
    body = load_shipped_template("shipping-4x6").version_body()
    body["source"] = FIXED_TEMPLATE.replace("^FO60,100", "^FO400,100")

    with pytest.raises(TemplateError, match=r"of the rendered sample label .* 812-dot-wide label"):
        validate_template(**body)


@pytest.mark.parametrize("name", ["shipping-4x6", "gs1-carton-4x6", "customs-cn23-4x6", "sku-2x1"])
def test_every_shipped_zpl_template_passes_with_its_longest_values(name: str) -> None:
    assert validate_template(**load_shipped_template(name).version_body())


@pytest.mark.parametrize(
    ("command", "characters", "text"),
    [
        # Mode A: the printer packs the twenty digits two a character (start, 10, check).
        ("^BCN,100,Y,N,N,A^FD12345678901234567890", 12, "12345678901234567890"),
        # Mode D: parentheses and spaces stripped, FNC1 after the start (start, FNC1, 10, check).
        ("^BCN,100,Y,N,N,D^FD(00) 106141411234567897", 13, "00106141411234567897"),
        # Mode N without invocation codes: subset B throughout (start, 20, check).
        ("^BCN,100,Y,N,N^FD12345678901234567890", 22, "12345678901234567890"),
    ],
)
def test_the_printers_automatic_modes_are_measured_as_it_packs_them(
    command: str, characters: int, text: str
) -> None:
    (extent,) = measure_barcodes(f"^XA^FO50,50^BY3{command}^FS^XZ", width_dots=812, height_dots=1218)

    assert (extent.modules, extent.text) == (11 * characters + 13, text)
    assert extent.fits == (characters < 22)
