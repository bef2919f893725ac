"""bench/station_page.py drives the real page in Chromium: its JSON's shape, every scan printed.

Behaviour only (the figures are the bench's to report, not this test's to judge), plus its
arithmetic and its refusal of arguments that make no run.
"""

from __future__ import annotations

import json

import pytest

from bench import station_page

FIGURES = ("p50_ms", "p99_ms", "first_fifth_p50_ms", "last_fifth_p50_ms", "max_ms")


def test_five_scans_all_reach_printed_and_the_json_has_every_figure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert station_page.main(["--scans", "5"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out  # one JSON object, nothing else
    result = json.loads(out[0])
    assert result["scans"] == 5
    assert result["printed"] == 5
    assert result["errors"] == []
    assert result["error_count"] == 0
    assert result["labels_at_printer"] == 5
    for name in FIGURES:
        assert isinstance(result[name], float), name
        assert result[name] > 0, name
    assert result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert set(result["goal_met"]) == {"p50", "p99", "no_growth", "all_printed"}
    assert all(isinstance(v, bool) for v in result["goal_met"].values())
    assert result["goal_met"]["all_printed"] is True
    assert result["viewport"] == "1366x768"


def test_summary_splits_the_run_into_fifths_in_scan_order() -> None:
    samples = [1.0] * 20 + [5.0] * 60 + [9.0] * 20
    figures = station_page.summarize(samples)
    assert figures["first_fifth_p50_ms"] == 1.0
    assert figures["last_fifth_p50_ms"] == 9.0
    assert figures["p50_ms"] == 5.0
    assert figures["max_ms"] == 9.0
    assert station_page.goal_met(figures, errors=0) == {
        "p50": True,
        "p99": True,
        "no_growth": False,
        "all_printed": True,
    }


def test_growth_within_the_slack_is_no_growth_and_errors_fail_all_printed() -> None:
    figures = station_page.summarize([10.0] * 10 + [11.5] * 10)
    assert station_page.goal_met(figures, errors=1) == {
        "p50": True,
        "p99": True,
        "no_growth": True,
        "all_printed": False,
    }
    slow = station_page.summarize([30.0, 80.0])
    met = station_page.goal_met(slow, errors=0)
    assert met["p50"] is False
    assert met["p99"] is False


def test_a_run_with_no_sample_meets_no_goal() -> None:
    figures = station_page.summarize([])
    assert all(figures[name] is None for name in FIGURES)
    assert not any(station_page.goal_met(figures, errors=3).values())


@pytest.mark.parametrize(
    "argv",
    [["--scans", "0"], ["--scans", "-5"], ["--scans", "many"], ["--scans", "10001"], ["--budget-s", "0"]],
)
def test_arguments_that_make_no_run_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        station_page.main(argv)
    assert exited.value.code == 2
    assert capsys.readouterr().out == ""
