"""The ZPL tokenizer, the field-data escaping and reading labels back into fields."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockside.labels.zpl_escape import MAX_VALUE_CHARS, code128_data, zpl_field
from dockside.labels.zpl_fields import decode_field_data, read_labels
from dockside.labels.zpl_syntax import ZplSyntaxError, tokenize


def test_tokenize_splits_commands_with_positions() -> None:
    leading, commands = tokenize("  ^XA\n^FO10,20^A0N,30,28^FDhi, there^FS\n~HS^XZ")

    assert leading == "  "
    assert [(c.prefix, c.name) for c in commands] == [
        ("^", "XA"),
        ("^", "FO"),
        ("^", "A"),
        ("^", "FD"),
        ("^", "FS"),
        ("~", "HS"),
        ("^", "XZ"),
    ]
    font = commands[2]
    assert font.params == "0N,30,28"
    assert (font.line, font.column) == (2, 9)
    assert commands[1].args() == ["10", "20"]
    assert commands[3].params == "hi, there"
    assert (commands[5].line, commands[5].column) == (3, 1)


def test_lowercase_command_names_are_read_as_the_printer_reads_them() -> None:
    _, commands = tokenize("^xa^fo1,2^fs^xz")
    assert [c.name for c in commands] == ["XA", "FO", "FS", "XZ"]


@pytest.mark.parametrize("text", ["^XA^", "^XA^ X^XZ", "^XA^\n^XZ", "^XA^é1^XZ"])
def test_a_prefix_without_a_command_name_is_a_syntax_error(text: str) -> None:
    with pytest.raises(ZplSyntaxError) as caught:
        tokenize(text)
    assert caught.value.line == 1
    assert caught.value.column == 4
    assert "is not a ZPL command" in caught.value.message


def test_escaping_hex_escapes_prefixes_escape_character_and_controls() -> None:
    assert zpl_field("a^b~c_d\\e\nf\x00g") == "a_5Eb_7Ec_5Fd_5Ce_0Af_00g"
    assert zpl_field("Zoë 東京 🙂") == "Zoë 東京 🙂"
    assert zpl_field(None) == ""
    assert zpl_field(42) == "42"
    assert zpl_field("\x85\u2028\ud800") == "  \ufffd"
    assert len(zpl_field("x" * 20_000)) == MAX_VALUE_CHARS


def test_code128_data_writes_a_literal_angle_bracket_as_zebras_invocation_code() -> None:
    # ZPL II Programming Guide, ^BC, "Code 128 Invocation Characters": >0 is the value 30, which
    # is ">" in subsets A and B (>< is 62, "^").
    assert code128_data("A>B") == "A>0B"
    assert code128_data(None) == ""


@given(st.text(max_size=MAX_VALUE_CHARS))
def test_escaped_values_carry_no_command_and_decode_back(value: str) -> None:
    escaped = zpl_field(value)

    assert "^" not in escaped
    assert "~" not in escaped
    assert not any(ord(char) < 0x20 or ord(char) == 0x7F for char in escaped)
    expected = "".join(
        " "
        if 0x80 <= ord(c) <= 0x9F or c in "\u2028\u2029"
        else "\ufffd"
        if 0xD800 <= ord(c) <= 0xDFFF
        else c
        for c in value
    )
    assert decode_field_data(escaped, hex_escaped=True) == expected


def test_reading_a_label_gives_fields_with_positions_fonts_and_decoded_data() -> None:
    zpl = (
        "^XA^CI28^PW400^LL200^LH5,6^CF0,20"
        "^FO10,20^A0N,30,28^FH^FDAnn _5E Lee^FS"
        "^FT10,150^FDplain^FS"
        "^FO20,30^BY2^BCN,50,Y,N,N^FH^FD12>03^FS"
        "^FO1,2^BQN,2,4^FDMA,hello^FS"
        "^FO0,0^GB100,50,3,B,2^FS"
        "^FO50,50^FR^FB200,2,0,C^FDblock^FS"
        "^PQ3^XZ"
    )
    (label,) = read_labels(zpl, width_dots=812, height_dots=1218)

    assert (label.width, label.height, label.quantity) == (400, 200, 3)
    text, typeset, code128, qr, box, block = label.fields
    assert (text.x, text.y, text.data, text.font.height, text.font.width) == (15, 26, "Ann ^ Lee", 30, 28)
    assert typeset.typeset
    assert typeset.font.height == 20
    assert code128.barcode is not None
    assert code128.barcode.kind == "code128"
    assert (code128.barcode.height, code128.barcode.module_width, code128.text) == (50, 2, "12>3")
    assert qr.barcode is not None
    assert qr.barcode.magnification == 4
    assert qr.text == "hello"
    assert box.box is not None
    assert (box.box.width, box.box.height, box.box.thickness) == (100, 50, 3)
    assert block.reverse
    assert block.block is not None
    assert block.block.justify == "C"
