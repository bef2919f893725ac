"""The bookkeeping of confirmed printing (`SentLedger`): which sent labels a status answer confirms."""

from __future__ import annotations

import pytest

from edge_agent.devices.print_confirmation import SentLedger
from edge_agent.devices.printer import PrinterStatus, status_of
from edge_agent.printing.confirmation import CONFIRM_TIMEOUT_ENV, confirm_timeout_from_env


def _zpl(formats: int, *faults: str) -> PrinterStatus:
    return status_of("ZD421", faults, formats=formats)


def _ledger(*job_ids: str, at: float = 0.0, timeout_s: float = 30.0) -> SentLedger:
    ledger = SentLedger(timeout_s)
    for job_id in job_ids:
        ledger.sent(job_id, at)
    return ledger


def test_the_first_sent_minus_the_formats_still_waiting_are_printed_first_in_first_out() -> None:
    ledger = _ledger("a", "b", "c")

    confirmation = ledger.answer(ledger.mark(), _zpl(1), now=1.0)

    assert confirmation.printed == ("a", "b")
    assert confirmation.held == ()
    assert len(ledger) == 1
    assert ledger.answer(ledger.mark(), _zpl(0), now=2.0).printed == ("c",)
    assert len(ledger) == 0


def test_labels_sent_after_the_query_are_not_spoken_for_by_its_answer() -> None:
    ledger = _ledger("a")
    mark = ledger.mark()
    ledger.sent("b", 0.5)  # went out after the query was written

    confirmation = ledger.answer(mark, _zpl(0), now=1.0)

    assert confirmation.printed == ("a",)
    assert len(ledger) == 1


def test_more_formats_waiting_than_labels_sent_confirms_nothing() -> None:
    ledger = _ledger("a", "b")

    assert not ledger.answer(ledger.mark(), _zpl(5), now=1.0)
    assert len(ledger) == 2


def test_an_answer_applies_to_what_is_left_after_another_answer_came_in_between() -> None:
    ledger = _ledger("a", "b", "c")
    first = ledger.mark()
    second = ledger.mark()
    assert ledger.answer(second, _zpl(1), now=1.0).printed == ("a", "b")

    # The older answer said 2 waiting (of a, b, c): a printed, which is already known.
    assert ledger.answer(first, _zpl(2), now=1.0).printed == ()
    assert len(ledger) == 1


def test_a_fault_after_accept_holds_the_waiting_labels_once_and_confirms_them_after_the_fix() -> None:
    ledger = _ledger("a", "b")

    faulted = ledger.answer(ledger.mark(), _zpl(1, "paper_out"), now=1.0)

    assert faulted.printed == ("a",)
    assert faulted.held == ("b",)
    assert faulted.faults == frozenset({"paper_out"})
    assert ledger.all_held
    # Held once: the next faulted answer reports nothing new, and a held label never times out.
    assert not ledger.answer(ledger.mark(), _zpl(1, "paper_out"), now=100.0)
    fixed = ledger.answer(ledger.mark(), _zpl(0), now=101.0)
    assert fixed.printed == ("b",)
    assert len(ledger) == 0


def test_a_fault_with_an_empty_buffer_means_everything_sent_printed() -> None:
    ledger = _ledger("a")

    confirmation = ledger.answer(ledger.mark(), _zpl(0, "paper_out"), now=1.0)

    assert confirmation.printed == ("a",)
    assert confirmation.held == ()


@pytest.mark.parametrize("fault", ["no_answer", "offline"])
def test_no_answer_confirms_nothing_and_gives_up_after_the_timeout(fault: str) -> None:
    ledger = _ledger("a", at=0.0, timeout_s=30.0)
    silent = PrinterStatus(ready=False, faults=frozenset({fault}), message="no answer")

    assert not ledger.answer(ledger.mark(), silent, now=29.0)
    assert not ledger.answer(ledger.mark(), None, now=29.5)
    late = ledger.answer(ledger.mark(), silent, now=30.5)

    assert late.unconfirmable == ("a",)
    assert late.printed == ()
    assert len(ledger) == 0


def test_a_printer_that_keeps_a_label_waiting_without_a_fault_is_given_up_on_after_the_timeout() -> None:
    ledger = _ledger("a", at=0.0, timeout_s=5.0)

    assert not ledger.answer(ledger.mark(), _zpl(1), now=4.0)
    assert ledger.answer(ledger.mark(), _zpl(1), now=6.0).unconfirmable == ("a",)


def test_a_printer_that_cannot_be_read_confirms_nothing_at_once() -> None:
    ledger = _ledger("a", "b")

    confirmation = ledger.answer(ledger.mark(), _zpl(0), now=0.0, can_confirm=False)

    assert confirmation.unconfirmable == ("a", "b")
    assert confirmation.printed == ()


def test_escpos_says_nothing_of_its_buffer_so_clear_means_printed_and_a_fault_holds_everything() -> None:
    ledger = _ledger("a", "b")
    faulted = PrinterStatus(ready=False, faults=frozenset({"paper_out"}), message="paper out")

    assert ledger.answer(ledger.mark(), faulted, now=1.0).held == ("a", "b")
    clear = PrinterStatus(ready=True, faults=frozenset(), message="ready")
    assert ledger.answer(ledger.mark(), clear, now=2.0).printed == ("a", "b")


def test_lost_labels_are_forgotten_and_the_ledger_stays_within_its_limit() -> None:
    ledger = SentLedger(30.0, limit=2)
    assert ledger.sent("a", 0.0) == []
    ledger.sent("b", 0.0)
    assert ledger.sent("c", 0.0) == ["a"]
    ledger.forget(["b"])
    assert ledger.answer(ledger.mark(), _zpl(0), now=1.0).printed == ("c",)


@pytest.mark.parametrize("timeout_s", [0.0, -1.0, float("nan")])
def test_a_timeout_that_is_not_positive_is_refused(timeout_s: float) -> None:
    with pytest.raises(ValueError, match="above 0"):
        SentLedger(timeout_s)


def test_negative_formats_from_a_broken_parser_never_confirm_more_than_was_sent() -> None:
    ledger = _ledger("a")
    weird = PrinterStatus(ready=True, faults=frozenset(), message="", formats_in_buffer=-3)

    assert ledger.answer(ledger.mark(), weird, now=1.0).printed == ("a",)
    assert len(ledger) == 0


@pytest.mark.parametrize("text", ["0", "-5", "3601", "nan", "inf", "soon", "9" * 40])
def test_a_hostile_confirmation_timeout_setting_is_refused_naming_the_variable(text: str) -> None:
    with pytest.raises(ValueError, match=CONFIRM_TIMEOUT_ENV):
        confirm_timeout_from_env({CONFIRM_TIMEOUT_ENV: text})


def test_the_confirmation_timeout_defaults_to_30_s_and_can_be_set() -> None:
    assert confirm_timeout_from_env({}) == 30.0
    assert confirm_timeout_from_env({CONFIRM_TIMEOUT_ENV: " 2.5 "}) == 2.5


def test_the_variable_wins_over_the_agent_toml_setting() -> None:
    assert confirm_timeout_from_env({}, default=45.0) == 45.0
    assert confirm_timeout_from_env({CONFIRM_TIMEOUT_ENV: "3"}, default=45.0) == 3.0
