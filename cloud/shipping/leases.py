"""Number leases: blocks of a carrier's tracking numbers (or SSCCs) handed to agents ahead of need.

An agent packs offline, so it cannot ask the cloud for each number. The cloud leases every
enrolled agent a block of serials from the carrier's ranges, in range order (`lease_for_agents`,
on a new range or carrier, and `lease_for_agent` when an agent enrolls), and tops the agent up
with another block when fewer than half a block of its leased numbers are still unused
(`top_up`). A serial is leased to one agent only: `number_ranges.next_free` moves past every
block handed out, under the clock row's lock, so two agents never share a number.

Each lease is a NUMBER_LEASE change in its agent's warehouse (key: the lease id) with the body

    {"id", "agent_id", "carrier", "kind": "range" | "sscc", "first", "last",
     "used_through", "retired", "format"}

where `format` is the range's dockside.shipping.tracking.NumberFormat, or for an `sscc` carrier
`{"company_prefix", "extension"}` (the agent numbers with dockside.shipping.sscc.sscc18), and
agents use only their own leases. Agents report numbers as edge events (NUMBER_USED,
NUMBER_VOIDED): `record_number_event` stores each in tracking_numbers, unique per tenant,
carrier and number, so a number used a second time, by anyone, opens a `number_reused` exception
instead of passing silently; it raises the lease's `used_through` and tops the agent up.

Restore of an agent's database from an older backup: the restored agent believes it has used
fewer numbers than it did. The cloud's lease is the truth: whenever the cloud sees a number used
it raises the lease's `used_through` and sends the lease again, so the change (or the snapshot)
the restored agent reads on reconnect carries a `used_through` at least as high as anything it
reported before the restore, and the agent never issues a serial <= `used_through`: it skips
past. A number the agent took after its last report and before the restore cannot be known to
the cloud; if it is taken again, the second report opens a `number_reused` exception.

A carrier whose free numbers (unleased in its ranges plus leased and unused) fall below its
`low_water` opens one `numbers_low` exception (not another while that one is unresolved); a
carrier not given any range yet is being set up and opens none.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from sqlalchemy import Connection, insert, select, update

from cloud.orders.exceptions import ExceptionKind, ExceptionStatus, open_exception
from cloud.storage import schema
from cloud.storage.store import ChangeRecord, WriteTransaction, dumps
from dockside.errors import InputError
from dockside.sync import ChangeKind, EventKind

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "AgentRef",
    "check_low_water",
    "free_numbers",
    "lease_for_agent",
    "lease_for_agents",
    "lease_sync_bodies",
    "record_number_event",
    "retire_leases",
    "retire_restored",
    "top_up",
]

DEFAULT_BLOCK_SIZE = 200
_NUMBER_KINDS = ("range", "sscc")
_MAX_SERIAL = 10**18


class AgentRef(Protocol):
    """The agent an event came from (cloud.fleet.agents.AgentIdentity is one)."""

    @property
    def agent_id(self) -> str: ...

    @property
    def tenant_id(self) -> int: ...

    @property
    def warehouse_id(self) -> int: ...


def _carrier(conn: Connection, tenant_id: int, code: str) -> tuple[str, int, int] | None:
    """(kind, block size, low water) of a carrier that gets numbers from ranges, or None."""
    table = schema.carriers
    row = conn.execute(
        select(table.c.tracking, table.c.low_water).where(
            table.c.tenant_id == tenant_id, table.c.code == code
        )
    ).first()
    if row is None:
        return None
    tracking = json.loads(row.tracking)
    if tracking["kind"] not in _NUMBER_KINDS:
        return None
    return str(tracking["kind"]), int(tracking.get("block_size", DEFAULT_BLOCK_SIZE)), int(row.low_water)


def _unused(lease: Any) -> int:
    before = int(lease.first) - 1
    used = before if lease.used_through is None else max(int(lease.used_through), before)
    return max(0, int(lease.last) - used)


def _lease_body(lease: Any, tracking: str, fmt: str) -> str:
    """The NUMBER_LEASE body; `format` is the range's NumberFormat, or for an SSCC carrier its
    company prefix and extension digit (the agent numbers with dockside.shipping.sscc.sscc18)."""
    numbering = json.loads(tracking)
    kind = numbering["kind"]
    if kind == "sscc":
        scheme = numbering["scheme"]
        number_format = {"company_prefix": scheme["company_prefix"], "extension": scheme["extension"]}
    else:
        number_format = json.loads(fmt)
    return dumps(
        {
            "id": int(lease.id),
            "agent_id": lease.agent_id,
            "carrier": lease.carrier,
            "kind": kind,
            "first": int(lease.first),
            "last": int(lease.last),
            "used_through": None if lease.used_through is None else int(lease.used_through),
            "retired": bool(lease.retired),
            "format": number_format,
        }
    )


def _lease_change(tx: WriteTransaction, lease_id: int) -> ChangeRecord:
    leases, ranges, carriers, agents = (
        schema.number_leases,
        schema.number_ranges,
        schema.carriers,
        schema.agents,
    )
    row = tx.conn.execute(
        select(leases, ranges.c.format, carriers.c.tracking, agents.c.warehouse_id)
        .join(ranges, ranges.c.id == leases.c.range_id)
        .join(carriers, (carriers.c.tenant_id == leases.c.tenant_id) & (carriers.c.code == leases.c.carrier))
        .join(agents, agents.c.id == leases.c.agent_id)
        .where(leases.c.id == lease_id)
    ).one()
    body = _lease_body(row, row.tracking, row.format)
    return ChangeRecord(
        int(row.tenant_id), int(row.warehouse_id), ChangeKind.NUMBER_LEASE.value, str(lease_id), body
    )


def top_up(
    tx: WriteTransaction, tenant_id: int, agent_id: str, carrier: str, *, block_size: int | None = None
) -> list[int]:
    """Lease `agent_id` another block of `carrier`'s numbers if fewer than half a block are unused.

    The block comes from the carrier's ranges in order (several leases when a range ends inside
    it); returns the new lease ids, none when the agent has enough or the ranges are used up.
    """
    found = _carrier(tx.conn, tenant_id, carrier)
    if found is None:
        return []
    size = block_size if block_size is not None else found[1]
    tx.lock_clock()  # serialises every lease: next_free is read and moved by one writer at a time
    leases, ranges = schema.number_leases, schema.number_ranges
    held = tx.conn.execute(
        select(leases.c.first, leases.c.last, leases.c.used_through).where(
            leases.c.tenant_id == tenant_id,
            leases.c.carrier == carrier,
            leases.c.agent_id == agent_id,
            leases.c.retired.is_(False),
        )
    ).all()
    if sum(_unused(lease) for lease in held) * 2 >= size:
        return []
    wanted = size
    made: list[int] = []
    for source in tx.conn.execute(
        select(ranges.c.id, ranges.c.last, ranges.c.next_free)
        .where(
            ranges.c.tenant_id == tenant_id, ranges.c.carrier == carrier, ranges.c.next_free <= ranges.c.last
        )
        .order_by(ranges.c.first, ranges.c.id)
    ).all():
        if wanted <= 0:
            break
        first = int(source.next_free)
        last = min(int(source.last), first + wanted - 1)
        moved = tx.conn.execute(
            update(ranges)
            .where(ranges.c.id == source.id, ranges.c.next_free == first)
            .values(next_free=last + 1)
        ).rowcount
        if moved != 1:  # cannot happen under the clock lock; never hand out a block twice if it did
            raise RuntimeError(f"number range {source.id} moved while it was being leased")
        lease_id = int(
            tx.conn.execute(
                insert(leases)
                .values(
                    tenant_id=tenant_id,
                    carrier=carrier,
                    range_id=source.id,
                    agent_id=agent_id,
                    first=first,
                    last=last,
                    used_through=None,
                    retired=False,
                    created_at=tx.now,
                )
                .returning(leases.c.id)
            ).scalar_one()
        )
        made.append(lease_id)
        wanted -= last - first + 1
    tx.append_changes([_lease_change(tx, lease_id) for lease_id in made])
    check_low_water(tx, tenant_id, carrier)
    return made


def _active_agents(conn: Connection, tenant_id: int) -> list[str]:
    agents = schema.agents
    query = select(agents.c.id).where(agents.c.tenant_id == tenant_id, agents.c.revoked_at.is_(None))
    return [
        str(agent_id)
        for agent_id in conn.execute(query.order_by(agents.c.enrolled_at, agents.c.id)).scalars()
    ]


def lease_for_agents(
    tx: WriteTransaction, tenant_id: int, carrier: str, *, block_size: int | None = None
) -> list[int]:
    """Top up every enrolled (not revoked) agent of the tenant with `carrier`'s numbers; the new lease ids."""
    made: list[int] = []
    for agent_id in _active_agents(tx.conn, tenant_id):
        made.extend(top_up(tx, tenant_id, agent_id, carrier, block_size=block_size))
    check_low_water(tx, tenant_id, carrier)
    return made


def lease_for_agent(tx: WriteTransaction, tenant_id: int, agent_id: str) -> list[int]:
    """Give a newly enrolled agent a block of every carrier of the tenant that numbers from ranges."""
    table = schema.carriers
    made: list[int] = []
    for code in tx.conn.execute(
        select(table.c.code).where(table.c.tenant_id == tenant_id).order_by(table.c.code)
    ).scalars():
        made.extend(top_up(tx, tenant_id, agent_id, str(code)))
    return made


def free_numbers(conn: Connection, tenant_id: int, carrier: str) -> int:
    """The carrier's numbers not yet used: unleased in its ranges plus leased and not seen used."""
    ranges, leases = schema.number_ranges, schema.number_leases
    unleased = sum(
        max(0, int(row.last) - int(row.next_free) + 1)
        for row in conn.execute(
            select(ranges.c.last, ranges.c.next_free).where(
                ranges.c.tenant_id == tenant_id, ranges.c.carrier == carrier
            )
        )
    )
    leased = sum(
        _unused(row)
        for row in conn.execute(
            select(leases.c.first, leases.c.last, leases.c.used_through).where(
                leases.c.tenant_id == tenant_id, leases.c.carrier == carrier, leases.c.retired.is_(False)
            )
        )
    )
    return unleased + leased


def check_low_water(tx: WriteTransaction, tenant_id: int, carrier: str) -> int | None:
    """Open a `numbers_low` exception if the carrier's free numbers are below its low water and none
    is open yet; returns the new exception's id."""
    found = _carrier(tx.conn, tenant_id, carrier)
    if found is None:
        return None
    low_water = found[2]
    ranges = schema.number_ranges
    has_ranges = tx.conn.execute(
        select(ranges.c.id).where(ranges.c.tenant_id == tenant_id, ranges.c.carrier == carrier).limit(1)
    ).first()
    free = free_numbers(tx.conn, tenant_id, carrier)
    # A carrier not given any range yet is being set up, not running low.
    if has_ranges is None or free >= low_water:
        return None
    exceptions = schema.order_exceptions
    detail = dumps({"carrier": carrier})
    already = tx.conn.execute(
        select(exceptions.c.id).where(
            exceptions.c.tenant_id == tenant_id,
            exceptions.c.kind == ExceptionKind.NUMBERS_LOW.value,
            exceptions.c.detail == detail,
            exceptions.c.status != ExceptionStatus.RESOLVED.value,
        )
    ).first()
    if already is not None:
        return None
    return open_exception(
        tx,
        tenant_id=tenant_id,
        warehouse_id=None,
        order_ref=None,
        kind=ExceptionKind.NUMBERS_LOW,
        message=(
            f"carrier {carrier} has {free:,} tracking numbers left, below its low water of {low_water:,}: "
            f"add a range with POST /api/v1/carriers/{carrier}/ranges before agents run out"
        ),
        detail={"carrier": carrier},
    )


def _field(body: Mapping[str, Any], name: str, kind: type, limit: int = 0) -> Any:
    value = body.get(name)
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_SERIAL:
            raise InputError(f"a number event's {name} is a whole number from 0, got {str(value)[:30]!r}")
        return value
    if not isinstance(value, str) or len(value) > limit:
        raise InputError(f"a number event's {name} is text of at most {limit} characters")
    return value


def record_number_event(
    tx: WriteTransaction,
    agent: AgentRef,
    kind: EventKind | str,
    body: Mapping[str, Any],
    *,
    order_ref: str | None = None,
    parcel: int | None = None,
    event_id: str | None = None,
) -> None:
    """Record a NUMBER_USED or NUMBER_VOIDED edge event inside the caller's transaction.

    `body` is the event's `{"lease_id", "carrier", "serial", "tracking_number", "job_id"}` (and
    `"reason"` for a void). The number goes into tracking_numbers (used or voided: a voided
    number is never used again); the same job reporting it again, or voiding the number it
    used, is no conflict. Anyone else's use of a recorded number, or a serial outside this
    agent's lease, opens a `number_reused` exception and is never accepted silently. The
    lease's used_through rises to the serial (and is synced), the agent is topped up, and the
    carrier's low water is checked. InputError for a malformed body (the caller refuses the event).
    """
    if not isinstance(body, Mapping):
        raise InputError("a number event's body is a JSON object")
    kind = EventKind(kind)
    if kind not in (EventKind.NUMBER_USED, EventKind.NUMBER_VOIDED):
        raise InputError(f"{kind.value} is not a number event: only number_used and number_voided are")
    lease_id = _field(body, "lease_id", int)
    carrier = _field(body, "carrier", str, 32)
    serial = _field(body, "serial", int)
    number = _field(body, "tracking_number", str, 40).strip().upper()
    job_id = _field(body, "job_id", str, 64)
    if not number:
        raise InputError("a number event names its tracking_number")
    state = "used" if kind is EventKind.NUMBER_USED else "voided"
    tx.lock_clock()
    tenant_id, numbers, leases = agent.tenant_id, schema.tracking_numbers, schema.number_leases
    lease = tx.conn.execute(
        select(leases).where(leases.c.id == lease_id, leases.c.tenant_id == tenant_id)
    ).first()
    in_lease = (
        lease is not None
        and lease.agent_id == agent.agent_id
        and lease.carrier == carrier
        and int(lease.first) <= serial <= int(lease.last)
    )
    seen = tx.conn.execute(
        select(numbers).where(
            numbers.c.tenant_id == tenant_id,
            numbers.c.carrier == carrier,
            numbers.c.tracking_number == number,
        )
    ).first()
    reported = {"agent_id": agent.agent_id, "job_id": job_id, "lease_id": lease_id, "serial": serial}
    if seen is None:
        tx.conn.execute(
            insert(numbers).values(
                tenant_id=tenant_id,
                carrier=carrier,
                tracking_number=number,
                state=state,
                order_ref=order_ref,
                parcel=parcel,
                agent_id=agent.agent_id,
                lease_id=lease_id,
                serial=serial,
                job_id=job_id,
                at=tx.now,
            )
        )
    elif (seen.agent_id == agent.agent_id and seen.job_id == job_id) or (
        state == "voided" and seen.state == "voided"
    ):
        # The same job again, or a void of a number already voided (the agent's parcel_voided
        # and its number_voided both void it): no conflict.
        if state == "voided" and seen.state != "voided":  # the job that took it ended unknown or failed
            tx.conn.execute(update(numbers).where(numbers.c.id == seen.id).values(state="voided", at=tx.now))
    else:
        first = {
            "agent_id": seen.agent_id,
            "job_id": seen.job_id,
            "state": seen.state,
            "at": seen.at.isoformat(),
        }
        open_exception(
            tx,
            tenant_id=tenant_id,
            warehouse_id=agent.warehouse_id,
            order_ref=order_ref,
            kind=ExceptionKind.NUMBER_REUSED,
            message=(
                f"tracking number {number} of carrier {carrier} was {state} again by agent {agent.agent_id} "
                f"(job {job_id}) after agent {seen.agent_id} (job {seen.job_id}) {seen.state} it: "
                "void one of the two labels and relabel that parcel with a new number"
            ),
            detail={"carrier": carrier, "tracking_number": number, "first": first, "again": reported},
            event_id=event_id,
        )
    if not in_lease:
        open_exception(
            tx,
            tenant_id=tenant_id,
            warehouse_id=agent.warehouse_id,
            order_ref=order_ref,
            kind=ExceptionKind.NUMBER_REUSED,
            message=(
                f"agent {agent.agent_id} {state} tracking number {number} (serial {serial}) of carrier "
                f"{carrier} from lease {lease_id}, which is not a block leased to it: the number may be "
                "another agent's; void that label and relabel the parcel"
            ),
            detail={"carrier": carrier, "tracking_number": number, "reported": reported},
            event_id=event_id,
        )
        return
    assert lease is not None
    if lease.used_through is None or serial > int(lease.used_through):
        # A lease used up to its last serial is retired: agents drop it and it leaves the free count.
        retired = bool(lease.retired) or serial >= int(lease.last)
        tx.conn.execute(
            update(leases).where(leases.c.id == lease_id).values(used_through=serial, retired=retired)
        )
        tx.append_changes([_lease_change(tx, lease_id)])
    top_up(tx, tenant_id, agent.agent_id, carrier)
    check_low_water(tx, tenant_id, carrier)


def retire_leases(tx: WriteTransaction, tenant_id: int, agent_id: str) -> list[int]:
    """Retire every lease of an agent that will print no more (revoked): its unused numbers are
    never issued by anyone, and no longer count as free. Returns the retired lease ids."""
    leases = schema.number_leases
    tx.lock_clock()
    ids = [
        int(lease_id)
        for lease_id in tx.conn.execute(
            select(leases.c.id).where(
                leases.c.tenant_id == tenant_id, leases.c.agent_id == agent_id, leases.c.retired.is_(False)
            )
        ).scalars()
    ]
    if ids:
        tx.conn.execute(update(leases).where(leases.c.id.in_(ids)).values(retired=True))
        tx.append_changes([_lease_change(tx, lease_id) for lease_id in ids])
        carriers = {
            str(code)
            for code in tx.conn.execute(select(leases.c.carrier).where(leases.c.id.in_(ids))).scalars()
        }
        for carrier in sorted(carriers):
            check_low_water(tx, tenant_id, carrier)
    return ids


def retire_restored(
    tx: WriteTransaction, agent: AgentRef, lease_id: int, carrier: str, reason: str
) -> list[int]:
    """An agent's database was restored from a backup (its LEASE_RETIRED event names `lease_id`):
    retire every lease the agent holds now, not only the one named, and lease it fresh blocks.

    A lease synced to the agent after the backup was taken is unknown to the restored database
    (the agent cannot name it) and numbers it took after the backup may never have been sent, so
    none of them may be issued again: each retired lease's used_through becomes its last serial.
    Returns the retired lease ids; InputError when `lease_id` is not one of this agent's leases.
    """
    leases = schema.number_leases
    tx.lock_clock()
    named = tx.conn.execute(
        select(leases.c.agent_id, leases.c.carrier).where(
            leases.c.id == lease_id, leases.c.tenant_id == agent.tenant_id
        )
    ).first()
    if named is None or named.agent_id != agent.agent_id or named.carrier != carrier:
        raise InputError(
            f"lease {lease_id} of carrier {carrier[:32]!r} is not a lease of agent {agent.agent_id}: "
            "the agent may only retire its own leases"
        )
    rows = tx.conn.execute(
        select(leases.c.id, leases.c.last, leases.c.carrier).where(
            leases.c.tenant_id == agent.tenant_id,
            leases.c.agent_id == agent.agent_id,
            leases.c.retired.is_(False),
        )
    ).all()
    ids = [int(row.id) for row in rows]
    for row in rows:
        tx.conn.execute(
            update(leases).where(leases.c.id == row.id).values(retired=True, used_through=row.last)
        )
    tx.append_changes([_lease_change(tx, lease) for lease in ids])
    log.warning(
        "agent %s retired its leases %s (%s): fresh blocks are leased to it",
        agent.agent_id,
        ids or [lease_id],
        reason[:200],
    )
    lease_for_agent(tx, agent.tenant_id, agent.agent_id)
    for code in sorted({str(row.carrier) for row in rows} | {carrier}):
        check_low_water(tx, agent.tenant_id, code)
    return ids


def lease_sync_bodies(conn: Connection, tenant_id: int, warehouse_id: int) -> Iterator[tuple[str, str]]:
    """(key, body) of the unretired leases of a warehouse's agents, as they receive them, for a snapshot."""
    leases, ranges, carriers, agents = (
        schema.number_leases,
        schema.number_ranges,
        schema.carriers,
        schema.agents,
    )
    rows = conn.execute(
        select(leases, ranges.c.format, carriers.c.tracking)
        .join(ranges, ranges.c.id == leases.c.range_id)
        .join(carriers, (carriers.c.tenant_id == leases.c.tenant_id) & (carriers.c.code == leases.c.carrier))
        .join(agents, agents.c.id == leases.c.agent_id)
        .where(
            leases.c.tenant_id == tenant_id,
            agents.c.warehouse_id == warehouse_id,
            agents.c.revoked_at.is_(None),
            leases.c.retired.is_(False),
        )
        .order_by(leases.c.id)
    )
    for row in rows:
        yield str(row.id), _lease_body(row, row.tracking, row.format)
