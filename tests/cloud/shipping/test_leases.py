"""Number leases: every agent gets its own block of a carrier's numbers ahead of need, synced to
its warehouse; used numbers raise the lease's used_through and top it up; a number used twice or
outside its lease is an exception, never accepted silently; two agents never share a number."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select

from cloud.shipping.carriers import CarrierIn, carrier_sync_bodies, put_carrier
from cloud.shipping.leases import free_numbers, lease_sync_bodies, record_number_event, retire_leases
from cloud.shipping.ranges import RangeIn, add_range
from cloud.storage import schema
from cloud.storage.store import CloudStore
from dockside.errors import InputError
from dockside.shipping.sscc import sscc18
from dockside.shipping.tracking import NumberFormat, format_number
from dockside.sync import ChangeKind, EventKind
from tests.cloud.conftest import Agent, RunningCloud

FORMAT = {"scheme": "gs1_mod10", "prefix": "00340", "digits": 9}
FMT = NumberFormat.model_validate(FORMAT)


@dataclass(frozen=True)
class AgentRef:
    agent_id: str
    tenant_id: int
    warehouse_id: int


def _carrier(cloud: RunningCloud, code: str = "DHL", block_size: int = 10, low_water: int = 0) -> None:
    body = {
        "code": code,
        "name": code,
        "tracking": {"kind": "range", "format": FORMAT},
        "low_water": low_water,
        "block_size": block_size,
    }
    assert cloud.api.post("/api/v1/carriers", json=body).status_code == 201


def _leases(store: CloudStore, carrier: str | None = None) -> list[Any]:
    table = schema.number_leases
    query = select(table).order_by(table.c.id)
    if carrier is not None:
        query = query.where(table.c.carrier == carrier)
    with store.read() as conn:
        return list(conn.execute(query).all())


def _ref(store: CloudStore, agent_id: str) -> AgentRef:
    with store.read() as conn:
        row = conn.execute(select(schema.agents).where(schema.agents.c.id == agent_id)).one()
    return AgentRef(agent_id, int(row.tenant_id), int(row.warehouse_id))


def _range(cloud: RunningCloud, first: int, last: int) -> int:
    return cloud.api.post("/api/v1/carriers/DHL/ranges", json={"first": first, "last": last}).status_code


def _lease_changes(agent: Agent, after: int, count: int) -> list[dict[str, Any]]:
    stream = agent.watch(after)
    seen: list[dict[str, Any]] = []
    try:
        for item in stream:
            if item.HasField("change") and item.change.kind == ChangeKind.NUMBER_LEASE.value:
                seen.append(json.loads(item.change.body))
                if len(seen) == count:
                    break
    finally:
        stream.cancel()
    return seen


def _use(
    store: CloudStore,
    agent: AgentRef,
    lease: Any,
    serial: int,
    job: str,
    kind: EventKind = EventKind.NUMBER_USED,
) -> None:
    body = {
        "lease_id": int(lease.id),
        "carrier": lease.carrier,
        "serial": serial,
        "tracking_number": format_number(FMT, serial),
        "job_id": job,
        "reason": "job failed",
    }
    with store.write() as tx:
        record_number_event(tx, agent, kind, body, order_ref=f"O-{job}", parcel=1)


def test_every_agent_gets_its_own_block_synced_to_its_warehouse_only(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    cloud.put_warehouse("WH2")
    a1, a2, a3 = cloud.enroll("WH1"), cloud.enroll("WH1"), cloud.enroll("WH2")
    _carrier(cloud)
    after = cloud.store.current_revision()
    assert (
        cloud.api.post("/api/v1/carriers/DHL/ranges", json={"first": 1000, "last": 1099}).status_code == 201
    )
    leases = _leases(cloud.store)
    assert [(lease.agent_id, lease.first, lease.last) for lease in leases] == [
        (a1.agent_id, 1000, 1009),
        (a2.agent_id, 1010, 1019),
        (a3.agent_id, 1020, 1029),
    ]
    # An agent enrolled later gets its block as it enrolls.
    a4 = cloud.enroll("WH2")
    assert [(lease.agent_id, lease.first, lease.last) for lease in _leases(cloud.store)][3] == (
        a4.agent_id,
        1030,
        1039,
    )
    # WH1's agents hear of WH1's two leases, in the contract's shape, and never of WH2's.
    heard = _lease_changes(a1, after, 2)
    assert heard[0] == {
        "id": int(leases[0].id),
        "agent_id": a1.agent_id,
        "carrier": "DHL",
        "kind": "range",
        "first": 1000,
        "last": 1009,
        "used_through": None,
        "retired": False,
        "format": {"scheme": "gs1_mod10", "prefix": "00340", "suffix": "", "digits": 9},
    }
    assert heard[1]["agent_id"] == a2.agent_id
    table = schema.changes
    with cloud.store.read() as conn:
        scopes = conn.execute(
            select(table.c.key, table.c.warehouse_id).where(table.c.kind == ChangeKind.NUMBER_LEASE.value)
        ).all()
    by_lease = {int(key): wh for key, wh in scopes}
    assert by_lease[int(leases[0].id)] == by_lease[int(leases[1].id)] != by_lease[int(leases[2].id)]
    assert cloud.api.get("/api/v1/carriers/DHL").json()["free_numbers"] == 100


def test_used_numbers_move_used_through_and_top_the_agent_up(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    a1, a2 = cloud.enroll("WH1"), cloud.enroll("WH1")
    _carrier(cloud)
    assert (
        cloud.api.post("/api/v1/carriers/DHL/ranges", json={"first": 1000, "last": 1099}).status_code == 201
    )
    one, two = _ref(cloud.store, a1.agent_id), _ref(cloud.store, a2.agent_id)
    lease = _leases(cloud.store)[0]
    for serial in range(1000, 1005):  # 5 of 10 left: still half a block
        _use(cloud.store, one, lease, serial, f"job-{serial}")
    assert len(_leases(cloud.store)) == 2
    after = cloud.store.current_revision()
    _use(cloud.store, one, lease, 1005, "job-1005")  # 4 left: below half a block
    leases = _leases(cloud.store)
    assert int(leases[0].used_through) == 1005
    assert [(row.agent_id, row.first, row.last) for row in leases[2:]] == [(a1.agent_id, 1020, 1029)]
    heard = _lease_changes(a1, after, 2)
    assert (heard[0]["id"], heard[0]["used_through"]) == (int(lease.id), 1005)
    assert (heard[1]["first"], heard[1]["used_through"]) == (1020, None)
    # Reported again by the same job (at-least-once delivery), then voided by it: no conflict.
    _use(cloud.store, one, lease, 1005, "job-1005")
    _use(cloud.store, one, lease, 1005, "job-1005", EventKind.NUMBER_VOIDED)
    with cloud.store.read() as conn:
        numbers = {row.tracking_number: row for row in conn.execute(select(schema.tracking_numbers))}
    assert len(numbers) == 6
    assert numbers[format_number(FMT, 1005)].state == "voided"
    assert numbers[format_number(FMT, 1000)].order_ref == "O-job-1000"
    assert cloud.api.get("/api/v1/exceptions", params={"kind": "number_reused"}).json()["exceptions"] == []
    # Another agent reporting a number already used (and not from its own lease): exceptions, twice.
    _use(cloud.store, two, lease, 1003, "other-job")
    found = cloud.api.get("/api/v1/exceptions", params={"kind": "number_reused"}).json()["exceptions"]
    assert len(found) == 2
    messages = " | ".join(exception["message"] for exception in found)
    assert f"{format_number(FMT, 1003)} of carrier DHL was used again by agent {a2.agent_id}" in messages
    assert "not a block leased to it" in messages
    # The first use stays the record; the lease of agent 1 is not moved by agent 2.
    assert int(_leases(cloud.store)[0].used_through) == 1005


def test_a_malformed_number_event_is_refused(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    agent = _ref(cloud.store, cloud.enroll("WH1").agent_id)
    good = {"lease_id": 1, "carrier": "DHL", "serial": 5, "tracking_number": "X", "job_id": "j"}
    for kind, body in (
        (EventKind.LABEL_PRINTED, good),
        (EventKind.NUMBER_USED, {**good, "lease_id": "1"}),
        (EventKind.NUMBER_USED, {**good, "serial": -1}),
        (EventKind.NUMBER_USED, {**good, "serial": True}),
        (EventKind.NUMBER_USED, {**good, "serial": 10**30}),
        (EventKind.NUMBER_USED, {**good, "tracking_number": "X" * 41}),
        (EventKind.NUMBER_USED, {**good, "tracking_number": " "}),
        (EventKind.NUMBER_USED, {**good, "job_id": None}),
        (EventKind.NUMBER_VOIDED, {k: v for k, v in good.items() if k != "carrier"}),
        (EventKind.NUMBER_USED, ["not", "an", "object"]),
    ):
        with pytest.raises(InputError), cloud.store.write() as tx:
            record_number_event(tx, agent, kind, body)  # type: ignore[arg-type]
    with cloud.store.read() as conn:
        assert conn.execute(select(schema.tracking_numbers)).all() == []


def test_a_carrier_running_low_opens_one_exception(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    agent = cloud.enroll("WH1")
    _carrier(cloud, low_water=55)
    assert cloud.api.post("/api/v1/carriers/DHL/ranges", json={"first": 1, "last": 60}).status_code == 201
    assert cloud.api.get("/api/v1/exceptions", params={"kind": "numbers_low"}).json()["exceptions"] == []
    ref = _ref(cloud.store, agent.agent_id)
    lease = _leases(cloud.store)[0]
    for serial in range(1, 9):
        _use(cloud.store, ref, lease, serial, f"job-{serial}")
    assert cloud.api.get("/api/v1/carriers/DHL").json()["free_numbers"] == 52
    found = cloud.api.get("/api/v1/exceptions", params={"kind": "numbers_low"}).json()["exceptions"]
    assert len(found) == 1
    assert "carrier DHL has 54 tracking numbers left, below its low water of 55" in found[0]["message"]
    assert "POST /api/v1/carriers/DHL/ranges" in found[0]["message"]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    agents=st.integers(min_value=1, max_value=4),
    block_size=st.integers(min_value=1, max_value=12),
    ranges=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=3),
    uses=st.lists(st.integers(min_value=0, max_value=3), max_size=40),
)
def test_two_agents_never_share_a_number(
    store: CloudStore, agents: int, block_size: int, ranges: list[int], uses: list[int]
) -> None:
    """Whatever the agents, block size, ranges and order of use: every lease lies in one range, no
    serial is leased twice, every use is recorded once, and the free count adds up."""
    tenant = store.tenant_id()
    code = f"C{next(_codes)}"
    with store.write() as tx:
        wh = tx.conn.execute(
            insert(schema.warehouses)
            .values(tenant_id=tenant, code=code, name=code, created_at=tx.now, updated_at=tx.now)
            .returning(schema.warehouses.c.id)
        ).scalar_one()
    refs = []
    for index in range(agents):
        agent_id = f"agt_{code}_{index}"
        with store.write() as tx:
            tx.conn.execute(
                insert(schema.agents).values(
                    id=agent_id,
                    tenant_id=tenant,
                    warehouse_id=wh,
                    credential_hash=f"{code}-{index}".ljust(64, "0"),
                    enrolled_at=tx.now,
                    revision=0,
                    outbox_depth=0,
                    devices="[]",
                )
            )
        refs.append(AgentRef(agent_id, tenant, int(wh)))
    body = {
        "code": code,
        "name": code,
        "tracking": {"kind": "range", "format": FORMAT},
        "block_size": block_size,
    }
    put_carrier(store, tenant, CarrierIn.model_validate(body))
    start = 1
    for size in ranges:
        add_range(store, tenant, code, RangeIn(first=start, last=start + size - 1))
        start += size + 7  # a gap between ranges
    used: set[int] = set()
    for which in uses:
        agent = refs[which % agents]
        own = [lease for lease in _leases(store, code) if lease.agent_id == agent.agent_id]
        free = [
            (serial, lease)
            for lease in own
            for serial in range(lease.first, lease.last + 1)
            if serial not in used
        ]
        if not free:
            continue
        serial, lease = min(free, key=lambda pair: pair[0])
        _use(store, agent, lease, serial, f"{agent.agent_id}-{serial}")
        used.add(serial)
    leases = _leases(store, code)
    leased = [serial for lease in leases for serial in range(lease.first, lease.last + 1)]
    assert len(leased) == len(set(leased)), "a serial was leased twice"
    with store.read() as conn:
        spans = conn.execute(
            select(schema.number_ranges.c.first, schema.number_ranges.c.last).where(
                schema.number_ranges.c.carrier == code
            )
        ).all()
        recorded = (
            conn.execute(
                select(schema.tracking_numbers.c.serial).where(schema.tracking_numbers.c.carrier == code)
            )
            .scalars()
            .all()
        )
        reused = conn.execute(
            select(schema.order_exceptions.c.id).where(schema.order_exceptions.c.kind == "number_reused")
        ).all()
        free_left = free_numbers(conn, tenant, code)
    for lease in leases:
        assert any(first <= lease.first and lease.last <= last for first, last in spans)
        # A lease used up is retired, so agents drop it.
        assert bool(lease.retired) == (lease.used_through == lease.last)
    assert sorted(recorded) == sorted(used)
    assert reused == []
    assert free_left == sum(ranges) - len(used)


_codes = itertools.count()


def _last_changes(store: CloudStore, kind: ChangeKind) -> dict[str, str]:
    table = schema.changes
    with store.read() as conn:
        query = select(table.c.key, table.c.body).where(table.c.kind == kind.value).order_by(table.c.revision)
        return {row.key: row.body for row in conn.execute(query)}


def test_snapshot_bodies_are_the_last_changes_and_a_retired_agent_leaves_them(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    a1, a2 = cloud.enroll("WH1"), cloud.enroll("WH1")
    _carrier(cloud)
    assert _range(cloud, 1000, 1099) == 201
    lease = _leases(cloud.store)[0]
    _use(cloud.store, _ref(cloud.store, a1.agent_id), lease, 1000, "job-1")
    tenant, warehouse = cloud.store.tenant_id(), _ref(cloud.store, a1.agent_id).warehouse_id
    with cloud.store.read() as conn:
        leases = dict(lease_sync_bodies(conn, tenant, warehouse))
        carriers = dict(carrier_sync_bodies(conn, tenant))
    assert leases == _last_changes(cloud.store, ChangeKind.NUMBER_LEASE)
    assert json.loads(leases[str(lease.id)])["used_through"] == 1000
    assert carriers == _last_changes(cloud.store, ChangeKind.CARRIER)
    free = cloud.api.get("/api/v1/carriers/DHL").json()["free_numbers"]
    with cloud.store.write() as tx:
        retired = retire_leases(tx, tenant, a1.agent_id)
    assert retired == [int(lease.id)]
    assert json.loads(_last_changes(cloud.store, ChangeKind.NUMBER_LEASE)[str(lease.id)])["retired"] is True
    with cloud.store.read() as conn:
        left = dict(lease_sync_bodies(conn, tenant, warehouse))
    assert [json.loads(body)["agent_id"] for body in left.values()] == [a2.agent_id]
    # The 9 numbers agent 1 never used are gone for good, not free.
    assert cloud.api.get("/api/v1/carriers/DHL").json()["free_numbers"] == free - 9


def test_an_sscc_carrier_leases_serials_the_agent_numbers_with_sscc18(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    agent = cloud.enroll("WH1")
    after = cloud.store.current_revision()
    tracking = {"kind": "sscc", "company_prefix": "0614141", "extension": 1}
    body = {"code": "CARTONS", "name": "B2B cartons", "tracking": tracking, "block_size": 5}
    assert cloud.api.post("/api/v1/carriers", json=body).status_code == 201
    (heard,) = _lease_changes(agent, after, 1)
    assert heard["kind"] == "sscc"
    assert heard["format"] == {"company_prefix": "0614141", "extension": 1}
    assert (heard["first"], heard["last"], heard["agent_id"]) == (1, 5, agent.agent_id)
    # GS1's published example SSCC, (00) 1 0614141 234567890 8, from the lease's own format.
    assert sscc18(**heard["format"], serial=234567890) == "106141412345678908"


def test_a_new_agents_snapshot_holds_the_carriers_and_its_warehouses_leases(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    cloud.put_warehouse("WH2")
    _carrier(cloud)
    assert _range(cloud, 1000, 1099) == 201
    other = cloud.enroll("WH2")
    agent = cloud.enroll("WH1")  # enrolled after the range: its block comes with enrollment
    stream = agent.watch(0)
    snapshot: list[tuple[str, dict[str, Any]]] = []
    try:
        for item in stream:
            if item.HasField("snapshot_end"):
                break
            if item.HasField("change"):
                snapshot.append((item.change.kind, json.loads(item.change.body)))
    finally:
        stream.cancel()
    carriers = [body for kind, body in snapshot if kind == ChangeKind.CARRIER.value]
    leases = [body for kind, body in snapshot if kind == ChangeKind.NUMBER_LEASE.value]
    assert [carrier["code"] for carrier in carriers] == ["DHL"]
    assert [(lease["agent_id"], lease["first"], lease["last"]) for lease in leases] == [
        (agent.agent_id, 1010, 1019)
    ]
    assert other.agent_id not in json.dumps(leases)


def test_revoking_an_agent_retires_its_leases(cloud: RunningCloud) -> None:
    cloud.put_warehouse("WH1")
    gone, kept = cloud.enroll("WH1"), cloud.enroll("WH1")
    _carrier(cloud)
    assert _range(cloud, 1000, 1099) == 201
    assert cloud.api.get("/api/v1/carriers/DHL").json()["free_numbers"] == 100
    assert cloud.api.post(f"/api/v1/agents/{gone.agent_id}/revoke").status_code == 200
    retired = {lease.agent_id: bool(lease.retired) for lease in _leases(cloud.store)}
    assert retired == {gone.agent_id: True, kept.agent_id: False}
    assert cloud.api.get("/api/v1/carriers/DHL").json()["free_numbers"] == 90
    # A new range is leased to the agents still enrolled only.
    assert _range(cloud, 2000, 2099) == 201
    assert {lease.agent_id for lease in _leases(cloud.store) if not lease.retired} == {kept.agent_id}
