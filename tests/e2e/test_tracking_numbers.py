"""Leased tracking numbers on real processes: SIGKILLs, two agents of a warehouse, the cloud down.

A range carrier (UPU S10 numbers, `bench.provision.provision_range_carrier`) is what the ruleset
decides for every order, so each pack takes the next serial of its agent's lease. The tests count
every serial against the cloud's record (`number_leases`, `tracking_numbers`), the agents' own
(`numbers_taken` in agent.db, read after the agent stopped) and the mock printers' ledgers (the
numbers read back from the printed ZPL's fields). The chaos run SIGKILLs the agent at random
instants of three packs and has the printer cut one label off mid-way (the agent then voids the
numbers of the labels it cannot vouch for), so all three fates occur:

- every serial the cloud leased to an agent is exactly one of: used (in `tracking_numbers` once,
  as the agent took it), voided, or still free at the agent, above everything it took from that
  lease (a hole below would be a number lost silently);
- no number is on two labels, on a label without having been taken, or leased to two agents;
- with the cloud down, packing goes on until the lease runs out, then a pack holds its label (202
  `held`, printing nothing) and says what to do; after reconnect the cloud has every number once,
  tops the agent up, and the held label prints by itself, once, with a fresh number.
"""

from __future__ import annotations

import collections
import os
import random
import re
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bench.demo_data import station_body
from bench.provision import provision, provision_range_carrier
from bench.stack import Stack, restartable_address, running_stack, wait_for
from cloud.storage.store import CloudStore
from tests.e2e.conftest import PARCELS_G, put_next_parcel

CARRIER = "UPU"
SCALE_WAIT_S = 10.0  # each scan waits for its new parcel to settle (a deadline, rarely reached)
# A UPU S10 number as the carrier's format writes it: RR, 8-digit serial, check digit, GB.
_NUMBER = re.compile(r"\bRR\d{9}GB\b")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@dataclass(frozen=True)
class Taken:
    """One serial taken from a lease, as the agent or the cloud recorded it."""

    lease_id: int
    serial: int
    tracking_number: str
    state: str  # used, voided


def _start_agent(stack: Stack, name: str = "agent") -> httpx.Client:
    stack.start_agent(name, extra=("--scale-wait", str(SCALE_WAIT_S), "--no-advertise"))
    return stack.agent_client(name)


def _wait_ready(client: httpx.Client, last_order: str) -> None:
    """Until the agent holds the last order and a lease of the carrier."""
    wait_for(
        lambda: client.get(f"/api/v1/orders/{last_order}").status_code == 200,
        timeout=60,
        what=f"order {last_order} to reach the agent",
    )
    wait_for(
        lambda: client.get("/api/v1/status").json()["tracking_numbers"].get(CARRIER, 0) > 0,
        timeout=30,
        what=f"a lease of {CARRIER} numbers to reach the agent",
    )


def _drained(client: httpx.Client) -> None:
    wait_for(
        lambda: client.get("/api/v1/status").json()["outbox_depth"] == 0,
        timeout=60,
        what="the agent's outbox to drain",
    )


def _pack(client: httpx.Client, ref: str, request_id: str, station: str = "S1") -> httpx.Response | None:
    """The pack's answer, or None when the agent died under it."""
    try:
        return client.post(
            "/api/v1/pack", json={"order_ref": ref, "station": station, "request_id": request_id}
        )
    except httpx.TransportError:
        return None


def _printed(response: httpx.Response | None) -> str:
    """The tracking number of a pack whose label went out (it answers at `sent`, before the printer
    confirms it; a failed one fails the test, with its answer)."""
    assert response is not None
    answer = response.json()
    assert (response.status_code, answer.get("status"), answer.get("carrier")) == (200, "sent", CARRIER), (
        response.text
    )
    return str(answer["tracking_number"])


def _after_the_cut(client: httpx.Client, response: httpx.Response | None) -> None:
    """Until the agent has had its say on the label the printer cut off and sees the printer ready
    again: the next pack then goes out, rather than racing the lane's reconnection (and waiting held)."""
    assert response is not None
    job_id = response.json()["job_id"]
    settled = client.get(f"/api/v1/jobs/{job_id}", params={"wait_s": 10}, timeout=15)
    assert settled.status_code == 200, settled.text
    wait_for(
        lambda: client.get("/api/v1/status").json()["stations"][0]["printers"][0]["state"] == "ready",
        timeout=30,
        what="the agent to see the printer ready after the cut",
    )


def _label_numbers(labels: list[dict[str, Any]]) -> list[str]:
    """The one tracking number each label carries, read from its ZPL fields (barcode, QR, text)."""
    numbers = []
    for label in labels:
        found = set(_NUMBER.findall("\n".join(label["fields"])))
        assert len(found) == 1, (found, label["fields"])
        numbers.append(found.pop())
    return numbers


def _agent_records(stack: Stack, name: str) -> tuple[str, list[Taken]]:
    """The agent's id and what it took (read from agent.db: stop the agent first)."""
    assert not stack.processes[name].alive()
    with sqlite3.connect(stack.agent_dir(name) / "agent.db") as conn:
        agent_id = str(conn.execute("SELECT agent_id FROM identity WHERE id = 1").fetchone()[0])
        rows = conn.execute(
            "SELECT lease_id, serial, tracking_number, state FROM numbers_taken WHERE carrier = ?", (CARRIER,)
        ).fetchall()
    return agent_id, [Taken(int(r[0]), int(r[1]), str(r[2]), str(r[3])) for r in rows]


@dataclass
class CloudRecord:
    """The cloud's leases of the carrier, the numbers it saw used or voided, number exceptions."""

    leases: dict[int, tuple[str, int, int, bool]]  # lease id -> (agent id, first, last, retired)
    numbers: list[tuple[str, Taken]]  # (agent id, what it took)
    reused: list[str]  # messages of number_reused exceptions


def _cloud_record(stack: Stack) -> CloudRecord:
    store = CloudStore.open(stack.database_url, create=False, listen=False)
    try:
        with store.read() as conn:
            leases = {
                int(row[0]): (str(row[1]), int(row[2]), int(row[3]), bool(row[4]))
                for row in conn.exec_driver_sql(
                    "SELECT id, agent_id, first, last, retired FROM number_leases WHERE carrier = ?",
                    (CARRIER,),
                )
            }
            numbers = [
                (str(row[0]), Taken(int(row[1]), int(row[2]), str(row[3]), str(row[4])))
                for row in conn.exec_driver_sql(
                    "SELECT agent_id, lease_id, serial, tracking_number, state FROM tracking_numbers "
                    "WHERE carrier = ?",
                    (CARRIER,),
                )
            ]
            reused = [
                str(row[0])
                for row in conn.exec_driver_sql(
                    "SELECT message FROM order_exceptions WHERE kind = 'number_reused'"
                )
            ]
    finally:
        store.close()
    return CloudRecord(leases, numbers, reused)


def _account(record: CloudRecord, agent_id: str, taken: list[Taken]) -> dict[str, int]:
    """Count every serial leased to `agent_id` as used, voided or free; fail on any other fate.

    Returns how many of each. A lease the cloud retired once it was used up has no free serial; a
    free serial of another retired lease would be one nobody can use any more (none is expected
    here: no agent is revoked or restored from a backup).
    """
    leases = {
        lid: (first, last, retired)
        for lid, (owner, first, last, retired) in record.leases.items()
        if owner == agent_id
    }
    assert leases, f"the cloud leased agent {agent_id} nothing"
    # What the agent took is what the cloud recorded for it: same serials, numbers and states.
    in_cloud = [t for owner, t in record.numbers if owner == agent_id]
    assert len(in_cloud) == len(set(in_cloud))
    assert sorted(in_cloud, key=lambda t: (t.lease_id, t.serial)) == sorted(
        taken, key=lambda t: (t.lease_id, t.serial)
    )
    counts: collections.Counter[str] = collections.Counter()
    by_lease: dict[int, dict[int, str]] = collections.defaultdict(dict)
    for t in taken:
        assert t.lease_id in leases, f"{t} is from a lease not this agent's"
        first, last, _ = leases[t.lease_id]
        assert first <= t.serial <= last, t
        assert t.serial not in by_lease[t.lease_id], f"serial {t.serial} taken twice"
        by_lease[t.lease_id][t.serial] = t.state
    for lease_id, (first, last, retired) in leases.items():
        states = by_lease[lease_id]
        highest = max(states, default=first - 1)
        for serial in range(first, last + 1):
            fate = states.get(serial, "retired" if retired else "free")
            # A serial never taken below one that was is lost: nobody will ever issue it.
            assert fate != "free" or serial > highest, f"lease {lease_id}: serial {serial} skipped"
            counts[fate] += 1
    assert set(counts) <= {"used", "voided", "free"}, counts
    assert sum(counts.values()) == sum(last - first + 1 for first, last, _ in leases.values())
    return dict(counts)


def _range_stack(stack: Stack, *, orders: int, block_size: int, prefix: str) -> None:
    """Cloud, printer and scale for station S1, WH1 with `orders` orders and the range carrier."""
    stack.start_cloud(grpc=restartable_address())  # some tests restart it on the same address
    stack.start_printer(serial=f"ZD421-{prefix}")
    stack.start_scale()
    provision(stack, order_count=orders, order_prefix=prefix)
    provision_range_carrier(stack, code=CARRIER, block_size=block_size)


def test_sigkills_mid_pack_never_use_a_number_twice_nor_lose_one(tmp_path) -> None:
    packs, kills_count = 45, 3
    rng = random.Random(int(os.environ.get("DOCKSIDE_CHAOS_SEED", "20261207")))
    kills = set(rng.sample(range(3, packs - 5), kills_count))
    # One label the printer cuts off mid-way: the agent finds the connection gone afterwards and
    # marks the labels it cannot vouch for unknown, voiding their numbers (some did print).
    drop = rng.choice([n for n in range(3, packs - 5) if n not in kills])
    answered: dict[str, str] = {}  # order -> the number its printed answer gave
    with running_stack(tmp_path) as stack:
        _range_stack(stack, orders=packs, block_size=30, prefix="TN")
        stack.enroll_agent("WH1")
        client = _start_agent(stack)
        _wait_ready(client, f"TN-{packs:04d}")
        for n in range(1, packs + 1):
            ref = f"TN-{n:04d}"
            put_next_parcel(stack, n)
            if n == drop:
                stack.control("printer", "POST", "/fault", {"fault": "drop"})
            if n not in kills:
                response = _pack(client, ref, f"tn-{n}")
                answered[ref] = _printed(response)
                if n == drop:
                    stack.control("printer", "POST", "/fault", {"fault": "none"})
                    _after_the_cut(client, response)
                continue
            # SIGKILL at a random instant of this pack (which mostly waits for the parcel to settle).
            killer = threading.Timer(
                rng.uniform(0.0, 0.12), stack.processes["agent"].stop, kwargs={"kill": True}
            )
            killer.start()
            _pack(client, ref, f"tn-{n}")
            killer.join()
            client.close()
            client = _start_agent(stack)
            # The packer scans again with the same request: a finished job answers as it is (sent,
            # printed or unknown); one the kill cut short before it was recorded is packed now.
            again = _pack(client, ref, f"tn-{n}")
            assert again is not None
            assert again.status_code < 500, again.text
            if again.json().get("status") in ("sent", "printed"):
                answered[ref] = str(again.json()["tracking_number"])
        _drained(client)
        labels = stack.control("printer", "GET", "/labels")
        client.close()
        stack.processes["agent"].stop()
        agent_id, taken = _agent_records(stack, "agent")
        record = _cloud_record(stack)

    fates = _account(record, agent_id, taken)
    on_labels = _label_numbers(labels)
    repeated = [number for number, count in collections.Counter(on_labels).items() if count > 1]
    assert repeated == []
    states = {t.tracking_number: t.state for t in taken}
    # Every label shows a number the agent took; every number still used is on a label (a job a
    # kill or the drop left unknown voided its number, whether or not its label came out).
    assert [number for number in on_labels if number not in states] == []
    assert sorted(n for n, state in states.items() if state == "used") == sorted(
        n for n in on_labels if states[n] == "used"
    )
    assert len(set(answered.values())) == len(answered)
    assert [n for n in answered.values() if states[n] == "used" and n not in on_labels] == []
    # Each pack took a number; the label cut off voided at least its own.
    assert fates["used"] + fates.get("voided", 0) >= packs
    assert fates.get("voided", 0) >= 1
    assert record.reused == []


def _second_station(stack: Stack) -> None:
    """Station S2 of WH1 with its own mock printer and scale."""
    stack.start_printer("printer-S2", serial="ZD421-TN-S2")
    stack.start_scale("scale-S2")
    stack.admin_call(
        "POST",
        "/api/v1/warehouses/WH1/stations",
        station_body(
            "S2",
            printer_id="ZD421-TN-S2",
            printer_port=int(stack.processes["printer-S2"].ready["port"]),
            scale_port=stack.processes["scale-S2"].ready["pty"],
        ),
    )


def test_two_agents_of_a_warehouse_never_share_a_number(tmp_path) -> None:
    per_agent = 15
    # Small blocks: each agent is topped up twice while the other packs and is topped up too.
    with running_stack(tmp_path) as stack:
        _range_stack(stack, orders=2 * per_agent, block_size=10, prefix="TW")
        _second_station(stack)
        agents = {"agent-a": ("S1", "printer", "scale"), "agent-b": ("S2", "printer-S2", "scale-S2")}
        for name in agents:
            stack.enroll_agent("WH1", name)
        clients = {name: _start_agent(stack, name) for name in agents}
        for client in clients.values():
            _wait_ready(client, f"TW-{2 * per_agent:04d}")

        def pack_all(name: str, offset: int) -> list[str]:
            station, _, scale = agents[name]
            numbers = []
            # The packer's own client for its scale (the stack's one is not shared by threads).
            with httpx.Client(
                base_url=f"http://{stack.processes[scale].ready['control']}", timeout=10
            ) as hands:
                for i in range(per_agent):
                    n = 2 * i + offset
                    hands.post("/weight", json={"grams": PARCELS_G[i % 2], "stable": True}).raise_for_status()
                    numbers.append(_printed(_pack(clients[name], f"TW-{n:04d}", f"tw-{n}", station)))
            return numbers

        with ThreadPoolExecutor(2, thread_name_prefix="packer") as packers:
            running = [packers.submit(pack_all, name, offset) for offset, name in enumerate(agents, start=1)]
            answered = {name: share.result() for name, share in zip(agents, running, strict=True)}
        for client in clients.values():
            _drained(client)
            client.close()
        labels = {
            name: _label_numbers(stack.control(printer, "GET", "/labels"))
            for name, (_, printer, _) in agents.items()
        }
        records = {}
        for name in agents:
            stack.processes[name].stop()
            records[name] = _agent_records(stack, name)
        record = _cloud_record(stack)

    # Each agent printed what it answered, once; the two never printed the same number.
    for name in agents:
        assert sorted(labels[name]) == sorted(answered[name])
        assert len(set(answered[name])) == per_agent
    assert set(labels["agent-a"]) & set(labels["agent-b"]) == set()
    # The cloud's leases of the two agents are disjoint, and each was topped up while packing.
    owners: dict[int, str] = {}
    for agent_id, first, last, _ in record.leases.values():
        for serial in range(first, last + 1):
            assert serial not in owners, f"serial {serial} leased to {owners[serial]} and {agent_id}"
            owners[serial] = agent_id
    for name, (agent_id, taken) in records.items():
        assert len([lease for lease in record.leases.values() if lease[0] == agent_id]) >= 2
        fates = _account(record, agent_id, taken)
        assert (fates.get("used"), fates.get("voided", 0)) == (per_agent, 0), name
        assert sorted(t.tracking_number for t in taken) == sorted(answered[name])
    # The cloud has every number once (its unique key) and was never told of one used twice.
    numbers = [t.tracking_number for _, t in record.numbers]
    assert sorted(numbers) == sorted(answered["agent-a"] + answered["agent-b"])
    assert record.reused == []


def test_offline_packs_until_the_lease_runs_out_then_holds_and_resumes_after_reconnect(tmp_path) -> None:
    block = 10
    with running_stack(tmp_path) as stack:
        _range_stack(stack, orders=2 * block + 4, block_size=block, prefix="TO")
        stack.enroll_agent("WH1")
        client = _start_agent(stack)
        _wait_ready(client, f"TO-{2 * block + 4:04d}")
        put_next_parcel(stack, 1)
        online = [_printed(_pack(client, "TO-0001", "to-1"))]
        _drained(client)
        grpc_address = stack.cloud.ready["grpc"]
        stack.cloud.stop(kill=True)
        wait_for(
            lambda: not client.get("/api/v1/status").json()["online"], timeout=30, what="the agent offline"
        )
        left = client.get("/api/v1/status").json()["tracking_numbers"][CARRIER]
        assert 0 < left < 2 * block

        offline: list[str] = []
        n = 1
        for _ in range(left):
            n += 1
            put_next_parcel(stack, n)
            offline.append(_printed(_pack(client, f"TO-{n:04d}", f"to-{n}")))
        assert client.get("/api/v1/status").json()["tracking_numbers"][CARRIER] == 0
        printed_before = len(stack.control("printer", "GET", "/labels"))
        n += 1
        held = f"TO-{n:04d}"
        put_next_parcel(stack, n)
        waiting = _pack(client, held, f"to-{n}")
        assert waiting is not None
        assert waiting.status_code == 202, waiting.text
        answer = waiting.json()
        assert (answer["status"], answer["tracking_number"], answer["order_ref"]) == ("held", "", held)
        # What to do, for the packer at the station: the label prints by itself; set the parcel aside.
        assert f"no {CARRIER} tracking number left at this agent" in answer["message"]
        assert "prints by itself" in answer["message"]
        assert "put the parcel aside" in answer["message"]
        assert len(stack.control("printer", "GET", "/labels")) == printed_before == 1 + left
        assert client.get("/api/v1/status").json()["outbox_depth"] >= 2 * left  # number_used, label_printed

        stack.start_cloud(grpc=grpc_address)
        # Nobody scans again: once the cloud tops the agent up, the held label prints by itself.
        job_url = f"/api/v1/jobs/{answer['job_id']}"
        wait_for(
            lambda: client.get(job_url).json()["status"] == "printed",
            timeout=60,
            what="the held label to print by itself after the top-up",
        )
        resumed = str(client.get(job_url).json()["tracking_number"])
        assert _NUMBER.fullmatch(resumed), resumed
        _drained(client)
        labels = stack.control("printer", "GET", "/labels")
        assert len(labels) == printed_before + 1  # exactly once
        assert client.get("/api/v1/status").json()["tracking_numbers"][CARRIER] > 0
        again = _pack(client, held, f"to-{n}-again")  # a scan now: its parcel is packed already
        assert again is not None
        assert (again.json()["status"], again.json()["job_id"]) == ("already_packed", answer["job_id"])
        assert len(stack.control("printer", "GET", "/labels")) == len(labels)
        client.close()
        stack.processes["agent"].stop()
        agent_id, taken = _agent_records(stack, "agent")
        record = _cloud_record(stack)

    used = online + offline + [resumed]
    assert len(set(used)) == len(used)
    assert sorted(_label_numbers(labels)) == sorted(used)
    in_cloud = collections.Counter(t.tracking_number for _, t in record.numbers)
    assert in_cloud == collections.Counter(used)
    assert {t.state for _, t in record.numbers} == {"used"}
    fates = _account(record, agent_id, taken)
    assert (fates["used"], fates.get("voided", 0)) == (len(used), 0)
    assert fates["free"] > 0  # topped up
    assert record.reused == []
