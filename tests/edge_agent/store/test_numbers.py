"""Leased tracking numbers at the agent: taken in order, formatted with their check character,
never twice (not after a restart, a snapshot or below the cloud's used_through), voided once.

Check characters are checked with python-stdnum's GS1 check digit, not the project's own code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from stdnum import ean

from dockside.sync import ChangeKind, SyncChange
from edge_agent.store.cache import Cache, UnusableChange
from edge_agent.store.database import Store
from edge_agent.store.numbers import Numbers, NumbersExhausted
from edge_agent.store.outbox import Outbox
from edge_agent.sync.identity import save_identity

AGENT = "agent-7"


def lease(lease_id: int, **extra: Any) -> dict[str, Any]:
    """A range lease of serials 100..104 for ACME, GS1 mod 10, 8 digits after prefix 99."""
    return {
        "id": lease_id,
        "agent_id": AGENT,
        "carrier": "ACME",
        "kind": "range",
        "first": 100,
        "last": 104,
        "used_through": None,
        "retired": False,
        "format": {"scheme": "gs1_mod10", "prefix": "99", "digits": 8},
        **extra,
    }


class Agent:
    """A store with this agent's identity, its cache, outbox and numbers (as the agent wires them)."""

    def __init__(self, data_dir: Path) -> None:
        self.store = Store.open(data_dir)
        if not self.store.query("SELECT agent_id FROM identity"):
            save_identity(self.store, agent_id=AGENT, credential="c", warehouse="WH1", tenant="t", cloud="m")
        self.cache = Cache(self.store)
        self.cache.load()
        self.outbox = Outbox(self.store)
        self.numbers = Numbers(self.store, self.cache, self.outbox)
        self.revision = self.store.revision()

    def sync(self, kind: str, key: str, body: dict[str, Any] | None) -> None:
        self.revision += 1
        raw = b"" if body is None else json.dumps(body).encode()
        with self.store.atomic():
            self.cache.apply(SyncChange(self.revision, kind, key, raw, deleted=body is None))
            self.store.set_revision(self.revision)
        self.cache.after_commit()

    def take(self, carrier: str = "ACME", job: str = "job") -> str | None:
        with self.store.atomic():
            taken = self.numbers.take(carrier, job)
        return taken.tracking_number if taken else None

    def events(self, kind: str) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT body FROM outbox WHERE kind = ? ORDER BY seq", (kind,))
        return [json.loads(row["body"]) for row in rows]

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def agent(data_dir: Path) -> Any:
    opened = Agent(data_dir)
    yield opened
    opened.close()


def test_numbers_are_taken_in_order_with_a_right_check_digit_and_each_recorded_once(agent: Agent) -> None:
    agent.sync(ChangeKind.NUMBER_LEASE, "1", lease(1))
    assert agent.numbers.remaining("ACME") == 5

    numbers = [agent.take(job=f"job-{n}") for n in range(5)]

    assert [n and n[:10] for n in numbers] == [f"99{serial:08d}" for serial in range(100, 105)]
    for number in numbers:
        assert number is not None
        assert len(number) == 11
        assert ean.calc_check_digit(number[:-1]) == number[-1]  # GS1 mod 10, computed by stdnum
    assert agent.take() is None
    assert agent.numbers.remaining("ACME") == 0
    used = agent.events("number_used")
    assert [(e["lease_id"], e["serial"], e["job_id"]) for e in used] == [
        (1, serial, f"job-{serial - 100}") for serial in range(100, 105)
    ]
    assert [e["tracking_number"] for e in used] == numbers


def test_no_number_is_taken_twice_after_a_restart_a_snapshot_or_below_used_through(data_dir: Path) -> None:
    first = Agent(data_dir)
    first.sync(ChangeKind.NUMBER_LEASE, "1", lease(1, last=120))
    assert [first.take() for _ in range(2)] == _formatted([100, 101])
    first.close()

    again = Agent(data_dir)  # a restart: the next number follows the last taken
    assert again.numbers.next_number("ACME") is not None
    assert again.numbers.next_number("ACME").serial == 102  # type: ignore[union-attr]

    # A snapshot replaces the leases (here with the same one): what was taken is kept.
    again.cache.begin_snapshot()
    again.cache.stage(SyncChange(50, ChangeKind.NUMBER_LEASE, "1", json.dumps(lease(1, last=120)).encode()))
    again.cache.finish_snapshot(50)
    again.cache.after_commit()
    again.revision = 50
    assert again.numbers.next_number("ACME").serial == 102  # type: ignore[union-attr]

    # The cloud saw serials up to 110 used (say, by this agent before its database was restored
    # from an older backup): nothing at or below it is issued again.
    again.sync(ChangeKind.NUMBER_LEASE, "1", lease(1, last=120, used_through=110))
    assert again.numbers.next_number("ACME").serial == 111  # type: ignore[union-attr]
    assert again.numbers.remaining("ACME") == 10
    again.take()
    serials = [row["serial"] for row in again.store.query("SELECT serial FROM numbers_taken ORDER BY serial")]
    assert serials == [100, 101, 111]
    again.close()


def test_only_this_agents_unretired_leases_of_the_carrier_are_used_oldest_first(agent: Agent) -> None:
    agent.sync(ChangeKind.NUMBER_LEASE, "3", lease(3, agent_id="agent-other"))
    agent.sync(ChangeKind.NUMBER_LEASE, "4", lease(4, retired=True))
    agent.sync(ChangeKind.NUMBER_LEASE, "5", lease(5, carrier="OTHER"))
    assert agent.take() is None
    assert agent.numbers.status() == {"ACME": 0, "OTHER": 5}

    agent.sync(ChangeKind.NUMBER_LEASE, "9", lease(9, first=900, last=900))
    agent.sync(ChangeKind.NUMBER_LEASE, "6", lease(6, first=600, last=601))
    assert [agent.take() for _ in range(4)] == [*_formatted([600, 601, 900]), None]
    # Deleting a lease (the cloud took it back) stops its use; its taken serials stay taken.
    agent.sync(ChangeKind.NUMBER_LEASE, "6", None)
    agent.sync(ChangeKind.NUMBER_LEASE, "6", lease(6, first=600, last=602))
    assert agent.numbers.next_number("ACME").serial == 602  # type: ignore[union-attr]


def _formatted(serials: list[int]) -> list[str]:
    out = []
    for serial in serials:
        body = f"99{serial:08d}"
        out.append(body + ean.calc_check_digit(body))
    return out


def test_an_sscc_lease_gives_sscc_18_numbers(agent: Agent) -> None:
    agent.sync(
        ChangeKind.NUMBER_LEASE,
        "2",
        lease(
            2,
            carrier="B2B",
            kind="sscc",
            first=123456789,
            last=123456791,
            format={"company_prefix": "0614141", "extension": 1},
        ),
    )
    numbers = [agent.take("B2B") for _ in range(3)]
    assert numbers[0] == "106141411234567897"  # GS1's own SSCC example (General Specifications)
    for number in numbers:
        assert number is not None
        assert len(number) == 18
        assert ean.calc_check_digit(number[:17]) == number[17]
    assert agent.take("B2B") is None


def test_a_void_marks_the_jobs_numbers_once_with_one_event(agent: Agent) -> None:
    agent.sync(ChangeKind.NUMBER_LEASE, "1", lease(1))
    agent.take(job="a")
    agent.take(job="b")
    with agent.store.atomic():
        voided = agent.numbers.void("a", "job_unknown")
    with agent.store.atomic():
        again = agent.numbers.void("a", "job_unknown")
    assert [n.serial for n in voided] == [100]
    assert again == []
    states = agent.store.query("SELECT serial, state FROM numbers_taken ORDER BY serial")
    assert [(r["serial"], r["state"]) for r in states] == [(100, "voided"), (101, "used")]
    (event,) = agent.events("number_voided")
    assert (event["serial"], event["job_id"], event["reason"]) == (100, "a", "job_unknown")
    assert agent.numbers.next_number("ACME").serial == 102  # type: ignore[union-attr]


def test_a_rolled_back_job_transaction_takes_no_number(agent: Agent) -> None:
    agent.sync(ChangeKind.NUMBER_LEASE, "1", lease(1))

    def job_transaction_fails() -> None:
        with agent.store.atomic():
            agent.numbers.take("ACME", "job")
            raise RuntimeError("the job insert failed")

    with pytest.raises(RuntimeError):
        job_transaction_fails()
    assert agent.store.query("SELECT * FROM numbers_taken") == []
    assert agent.events("number_used") == []
    assert agent.take() == _formatted([100])[0]
    assert agent.numbers.remaining("ACME") == 4


@pytest.mark.parametrize(
    ("key", "body", "problem"),
    [
        ("x1", lease(1), "not a lease number"),
        ("2", lease(1), "is not its key"),
        ("1", lease(1, kind="mystery"), "kind must be one of"),
        ("1", lease(1, first=5, last=4), "0 <= first <= last"),
        ("1", lease(1, first="100"), "whole serials"),
        ("1", lease(1, last=True), "whole serials"),
        ("1", lease(1, used_through="7"), "used_through"),
        ("1", lease(1, retired="no"), "retired"),
        ("1", lease(1, agent_id=""), "agent_id"),
        ("1", lease(1, format={"scheme": "gs1_mod10", "digits": 99}), "format is not usable"),
        ("1", lease(1, last=10**8), "more digits than its format holds"),
        ("1", lease(1, kind="sscc", format={"company_prefix": "12"}), "format is not usable"),
        ("1", lease(1, kind="sscc", format={"company_prefix": "0614141", "extension": 10}), "extension"),
    ],
)
def test_a_broken_lease_is_refused_and_changes_nothing(
    agent: Agent, key: str, body: dict[str, Any], problem: str
) -> None:
    with pytest.raises(UnusableChange, match=problem), agent.store.atomic():
        agent.cache.apply(SyncChange(1, ChangeKind.NUMBER_LEASE, key, json.dumps(body).encode()))
    agent.cache.after_commit()
    assert agent.cache.number_leases == {}
    assert agent.take() is None


def test_out_of_numbers_is_reported_once_until_numbers_come_back(agent: Agent) -> None:
    agent.sync(ChangeKind.NUMBER_LEASE, "1", lease(1, first=1, last=1))
    agent.take()
    # A scan that holds its label only notes it (nothing raised); a wave or a relabel is refused.
    agent.numbers.note_exhausted("ACME", order_ref="O-held")
    errors = [agent.numbers.report_exhausted("ACME", order_ref=f"O-{n}") for n in range(3)]
    assert {e.code for e in errors} == {"tracking_numbers_exhausted"}
    assert {e.carrier for e in errors} == {"ACME"}  # decided by type and attribute, not by string
    assert all(isinstance(e, NumbersExhausted) for e in errors)
    assert errors[0].http_status == 409
    assert "used every ACME tracking number it was given" in errors[0].message
    raised = agent.events("exception_raised")
    assert len(raised) == 1
    assert (raised[0]["carrier"], raised[0]["reason"]) == ("ACME", "tracking_numbers_exhausted")
    agent.numbers.note_exhausted("OTHER")  # each carrier once
    assert len(agent.events("exception_raised")) == 2
    agent.sync(ChangeKind.NUMBER_LEASE, "2", lease(2, first=5, last=5))
    assert agent.take() is not None
    agent.numbers.note_exhausted("ACME")
    assert len(agent.events("exception_raised")) == 3


def test_lease_listeners_hear_of_lease_changes_and_of_load_only(agent: Agent) -> None:
    heard: list[int] = []
    agent.cache.on_number_leases_changed(lambda: heard.append(len(agent.cache.number_leases)))
    agent.sync(ChangeKind.CARRIER, "ACME", {"code": "ACME", "tracking": {"kind": "range"}})
    assert heard == []  # not a lease
    agent.sync(ChangeKind.NUMBER_LEASE, "1", lease(1))
    assert heard == [1]  # after the commit, with the new lease in view
    with pytest.raises(UnusableChange), agent.store.atomic():
        agent.cache.apply(SyncChange(99, ChangeKind.NUMBER_LEASE, "2", b'{"id": 3}'))
    agent.cache.discard_pending()
    agent.cache.after_commit()
    assert heard == [1]  # a refused lease changes nothing, and nobody hears of it
    agent.cache.load()
    assert heard == [1, 1]


def test_a_snapshot_replaces_carriers_and_leases_but_never_what_was_taken(data_dir: Path) -> None:
    agent = Agent(data_dir)
    agent.sync(ChangeKind.CARRIER, "ACME", {"code": "ACME", "tracking": {"kind": "range"}})
    agent.sync(ChangeKind.CARRIER, "OLD", {"code": "OLD", "tracking": {"kind": "oms"}})
    agent.sync(ChangeKind.NUMBER_LEASE, "1", lease(1))
    agent.take()
    agent.cache.begin_snapshot()
    body = json.dumps({"code": "ACME", "tracking": {"kind": "range"}}).encode()
    agent.cache.stage(SyncChange(9, ChangeKind.CARRIER, "ACME", body))
    agent.cache.finish_snapshot(9)
    agent.cache.after_commit()
    assert set(agent.cache.carriers) == {"ACME"}
    assert agent.cache.number_leases == {}
    assert agent.take() is None
    assert [row["serial"] for row in agent.store.query("SELECT serial FROM numbers_taken")] == [100]
    agent.close()

    restarted = Agent(data_dir)  # the views are built from the tables at start
    assert set(restarted.cache.carriers) == {"ACME"}
    restarted.sync(ChangeKind.NUMBER_LEASE, "1", lease(1))
    assert restarted.numbers.next_number("ACME").serial == 101  # type: ignore[union-attr]
    restarted.close()
