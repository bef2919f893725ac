"""The shipped templates: loadable, valid, and their sample data is exactly what a real pack passes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockside.errors import TemplateError
from dockside.labels import (
    LabelLanguage,
    compile_template,
    label_context,
    load_shipped_template,
    shipped_template_names,
    validate_template,
)
from dockside.labels.zpl_syntax import tokenize
from dockside.rules import DEFAULT_DECISION
from tests.dockside.hostile import HOSTILE, TOKEN, string_paths, with_value


def test_the_shipped_templates_are_there() -> None:
    assert shipped_template_names() == [
        "customs-cn23-4x6",
        "gs1-carton-4x6",
        "packing-slip",
        "shipping-4x6",
        "sku-2x1",
    ]
    assert DEFAULT_DECISION.template in shipped_template_names()


@pytest.mark.parametrize(
    ("name", "language", "size"),
    [
        ("shipping-4x6", LabelLanguage.ZPL, (812, 1218)),
        ("gs1-carton-4x6", LabelLanguage.ZPL, (812, 1218)),
        ("customs-cn23-4x6", LabelLanguage.ZPL, (812, 1218)),
        ("sku-2x1", LabelLanguage.ZPL, (406, 203)),
        ("packing-slip", LabelLanguage.ESCPOS, (576, 4000)),
    ],
)
def test_each_shipped_template_loads_and_validates(
    name: str, language: LabelLanguage, size: tuple[int, int]
) -> None:
    shipped = load_shipped_template(name)

    assert shipped.name == name
    assert shipped.language is language
    assert (shipped.width_dots, shipped.height_dots, shipped.dpi) == (*size, 203)
    assert shipped.description
    body = shipped.version_body()
    assert set(body) == {"language", "source", "sample_data", "width_dots", "height_dots", "dpi"}
    assert json.loads(json.dumps(body)) == body
    label = validate_template(**{k: v for k, v in body.items() if k != "dpi"}, dpi=shipped.dpi)
    assert label


@pytest.mark.parametrize("name", shipped_template_names())
def test_sample_data_is_what_label_context_gives_for_its_order(name: str) -> None:
    sample = load_shipped_template(name).sample_data
    shipment = sample["shipment"]

    rebuilt = label_context(
        sample["order"],
        weight_g=sample["parcel"]["weight_g"],
        carrier=shipment["carrier"],
        service=shipment["service"],
        tracking=shipment["tracking"],
        ship_from=sample["ship_from"],
        station=sample["station"],
        job_id=sample["job_id"],
        printed_at=sample["printed_at"],
        parcel_number=sample["parcel"]["number"],
        parcel_count=sample["parcel"]["count"],
        dimensions_mm=sample["parcel"]["dimensions_mm"],
        sscc=shipment["sscc"],
    )

    assert json.loads(json.dumps(rebuilt)) == sample


def test_label_context_keeps_old_callers_working_with_one_parcel_and_empty_b2b_fields() -> None:
    sample = load_shipped_template("shipping-4x6").sample_data
    order = {key: value for key, value in sample["order"].items() if key not in ("po_number", "ship_to_gln")}

    context = label_context(
        order,
        weight_g=1000,
        carrier="C",
        service="S",
        tracking="T1",
        ship_from=sample["ship_from"],
        station="S1",
        job_id="j",
        printed_at="now",
    )

    assert context["parcel"] | {"weight_kg": "", "weight_lb": ""} == {
        "number": 1,
        "count": 1,
        "weight_g": 1000,
        "weight_kg": "",
        "weight_lb": "",
        "dimensions_mm": None,
    }
    assert context["shipment"] == {"carrier": "C", "service": "S", "tracking": "T1", "sscc": ""}
    assert (context["order"]["po_number"], context["order"]["ship_to_gln"]) == ("", "")
    assert "po_number" not in order  # the caller's order is not changed


def test_a_template_folder_can_be_loaded_by_path_and_reports_what_is_broken(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    with pytest.raises(TemplateError) as missing_meta:
        load_shipped_template(folder)
    assert "meta.json is missing" in missing_meta.value.message

    (folder / "meta.json").write_text('{"language": "zpl", "width_dots": 100}')
    with pytest.raises(TemplateError) as incomplete:
        load_shipped_template(folder)
    assert "needs language (zpl or escpos), width_dots, height_dots and dpi" in incomplete.value.message

    (folder / "meta.json").write_text('{"language": "zpl", "width_dots": 100, "height_dots": 50, "dpi": 300}')
    with pytest.raises(TemplateError) as no_source:
        load_shipped_template(folder)
    assert "template.zpl is missing" in no_source.value.message

    (folder / "template.zpl").write_text("^XA^XZ")
    (folder / "sample.json").write_text("{not json")
    with pytest.raises(TemplateError) as bad_sample:
        load_shipped_template(folder)
    assert "sample.json line 1, column 2: not valid JSON" in bad_sample.value.message

    (folder / "sample.json").write_text("{}")
    loaded = load_shipped_template(folder)
    assert (loaded.name, loaded.source, loaded.dpi) == ("mine", "^XA^XZ", 300)
    assert shipped_template_names(tmp_path) == ["mine"]


def _structure(label: bytes) -> list[str]:
    """Commands with their parameters, less field data and a barcode's length-chosen ^FO and ^BY."""
    _, commands = tokenize(label.decode("utf-8"))
    sized = {index for index, command in enumerate(commands) if command.name == "BY"}
    sized |= {index - 1 for index in sized if commands[index - 1].name == "FO"}
    return [
        f"{c.prefix}{c.name}" + ("" if c.name == "FD" or index in sized else c.params.strip())
        for index, c in enumerate(commands)
    ]


@pytest.mark.parametrize("name", ["gs1-carton-4x6", "customs-cn23-4x6"])
def test_hostile_values_never_change_the_new_labels_structure(name: str) -> None:
    shipped = load_shipped_template(name)
    compiled = compile_template(shipped.language, shipped.source)

    for path in string_paths(shipped.sample_data):
        clean = compiled.render(with_value(shipped.sample_data, path, TOKEN))
        for attack, value in HOSTILE.items():
            hostile = compiled.render(with_value(shipped.sample_data, path, value))
            assert hostile.count(b"^XA") == hostile.count(b"^XZ") == 1, (path, attack)
            assert b"~" not in hostile, (path, attack)
            assert _structure(hostile) == _structure(clean), (path, attack)
