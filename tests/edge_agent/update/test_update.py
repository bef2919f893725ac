"""Self-update for real: a cloud on real sockets, fake agent binaries run as real processes.

The fake binaries are small Python programs that behave like `dockside-agent run` where the
updater looks (a ready file, `GET /api/v1/status` with a version), so the swap, the trial
run, the health deadline and the rollback happen on the filesystem and in processes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from cloud.fleet.releases import PUBLIC_KEY_ENV, generate_release_key, sign_release
from cloud.storage import schema
from edge_agent.update import SelfUpdate
from edge_agent.update.release import Release, UpdateRefused, verify_release
from edge_agent.update.self_update import MARKER
from tests.cloud.conftest import (  # noqa: F401
    RunningCloud,
    cloud,
    database_url,
    migrated_sqlite,
    postgres_database,
    postgres_migration,
    store,
)

FAKE_AGENT = """#!{python}
# A stand-in for dockside-agent {version}: mode {mode}.
import http.server, json, os, sys, threading
VERSION, MODE = {version!r}, {mode!r}
args = sys.argv[1:]
if args == ["--version"]:
    print("dockside-agent, version " + VERSION)
    sys.exit(0)
if MODE == "crash":
    sys.exit("boom: the new release cannot start")
class Status(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({{"version": VERSION if MODE != "liar" else "0.0.1"}}).encode()
        self.send_response(200 if MODE != "sick" else 500)
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Status)
ready = args[args.index("--ready-file") + 1]
with open(ready + ".tmp", "w") as f:
    json.dump({{"http": "127.0.0.1:%d" % server.server_address[1]}}, f)
os.replace(ready + ".tmp", ready)
server.serve_forever()
"""


def fake_agent(version: str, mode: str = "healthy") -> bytes:
    return FAKE_AGENT.format(python=sys.executable, version=version, mode=mode).encode()


class Fleet:
    """One warehouse with one enrolled agent, a release key the cloud trusts, and the agent's binary."""

    def __init__(self, running: RunningCloud, tmp_path: Path, private_key: bytes, public_key: str) -> None:
        self.cloud = running
        self.private_key = private_key
        self.public_key = public_key
        running.put_warehouse("WH1")
        self.agent = running.enroll("WH1")
        self.binary = tmp_path / "opt" / "dockside-agent"
        self.binary.parent.mkdir()
        self.old = fake_agent("0.1.0")
        self.binary.write_bytes(self.old)
        self.binary.chmod(0o755)
        self.data_dir = tmp_path / "data"
        self.data_dir.mkdir()

    def release(self, version: str, blob: bytes) -> None:
        signature = sign_release(self.private_key, version, blob)
        published = self.cloud.api.post(
            "/api/v1/releases",
            params={"version": version},
            content=blob,
            headers={"X-Release-Signature": signature},
        )
        assert published.status_code == 201, published.text
        assigned = self.cloud.api.post(f"/api/v1/releases/{version}/assign", json={"warehouses": ["WH1"]})
        assert assigned.status_code == 200, assigned.text

    def updater(self, *, public_key: str | None = None, deadline_s: float = 20.0) -> SelfUpdate:
        return SelfUpdate(
            binary=self.binary,
            data_dir=self.data_dir,
            cloud_http=f"http://{self.cloud.http_address}",
            credential=self.agent.credential,
            public_key=public_key or self.public_key,
            check_interval_s=0.05,
            health_deadline_s=deadline_s,
            current_version="0.1.0",
        )

    def reports(self, version: str) -> list[tuple[str, str]]:
        body = self.cloud.api.get(f"/api/v1/releases/{version}").json()
        return [(report["agent_id"], report["outcome"]) for report in body["reports"]]

    def messages(self, version: str) -> list[str]:
        return [
            report["message"]
            for report in self.cloud.api.get(f"/api/v1/releases/{version}").json()["reports"]
        ]


@pytest.fixture
def fleet(cloud: RunningCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fleet:  # noqa: F811
    private, public = generate_release_key()
    monkeypatch.setenv(PUBLIC_KEY_ENV, public)
    return Fleet(cloud, tmp_path, private, public)


def _watch(updater: SelfUpdate, busy: Any = lambda: False, timeout: float = 30) -> asyncio.Event:
    async def main() -> asyncio.Event:
        stop = asyncio.Event()
        await asyncio.wait_for(updater.watch(busy, stop), timeout)
        return stop

    return asyncio.run(main())


def _check_once(updater: SelfUpdate) -> Release | None:
    from edge_agent.update.cloud_releases import CloudReleases

    async def main() -> Release | None:
        releases = CloudReleases(updater.cloud_http, updater.credential)
        try:
            return await updater.check_once(releases)
        finally:
            await releases.close()

    return asyncio.run(main())


TRIAL = ["run", "--http", "127.0.0.1:0"]


def test_a_good_release_is_installed_and_reported(fleet: Fleet) -> None:
    new = fake_agent("0.2.0")
    fleet.release("0.2.0", new)
    updater = fleet.updater()

    stop = _watch(updater)
    assert stop.is_set()
    assert updater.slot.staged.read_bytes() == new
    assert fleet.binary.read_bytes() == fleet.old  # nothing swapped while the agent runs

    outcome = updater.apply(TRIAL)

    assert outcome == "installed"
    assert fleet.binary.read_bytes() == new
    assert fleet.binary.stat().st_mode & 0o111
    assert updater.slot.previous.read_bytes() == fleet.old
    assert not updater.slot.staged.exists()
    # On probation until the new binary serves (it marks the marker started, then removes it).
    assert json.loads((fleet.data_dir / MARKER).read_text()) == {"version": "0.2.0", "from": "0.1.0"}
    assert fleet.reports("0.2.0") == [(fleet.agent.agent_id, "installed")]
    assert fleet.messages("0.2.0") == ["0.1.0 -> 0.2.0"]


def test_the_update_waits_while_a_job_is_printing(fleet: Fleet) -> None:
    fleet.release("0.2.0", fake_agent("0.2.0"))
    updater = fleet.updater()
    asked: list[int] = []

    def busy() -> bool:
        asked.append(1)
        return len(asked) < 4  # a job is held or sending for the first three looks

    stop = _watch(updater, busy)

    assert stop.is_set()
    assert len(asked) == 4
    assert fleet.binary.read_bytes() == fleet.old


def test_a_release_signed_by_another_key_is_refused_and_reported(fleet: Fleet) -> None:
    fleet.release("0.2.0", fake_agent("0.2.0"))
    _, other_public = generate_release_key()
    updater = fleet.updater(public_key=other_public)

    assert _check_once(updater) is None

    assert updater.staged is None
    assert not updater.slot.staged.exists()
    assert fleet.binary.read_bytes() == fleet.old
    assert fleet.reports("0.2.0") == [(fleet.agent.agent_id, "refused")]
    assert fleet.messages("0.2.0")[0].startswith("bad_signature:")
    assert _check_once(updater) is None  # not downloaded and refused again
    assert len(fleet.reports("0.2.0")) == 1


def test_a_release_with_a_bad_checksum_is_refused_and_reported(fleet: Fleet) -> None:
    fleet.release("0.2.0", fake_agent("0.2.0"))
    with fleet.cloud.store.write() as tx:  # the stored bytes change after publication
        tx.conn.execute(update(schema.agent_releases).values(binary=fake_agent("0.2.0", "crash")))
    updater = fleet.updater()

    assert _check_once(updater) is None

    assert fleet.binary.read_bytes() == fleet.old
    assert not updater.slot.staged.exists()
    assert fleet.reports("0.2.0") == [(fleet.agent.agent_id, "refused")]
    assert fleet.messages("0.2.0")[0].startswith("bad_checksum:")


@pytest.mark.parametrize(
    ("mode", "why"),
    [("crash", "exited with status 1"), ("sick", "answered 500"), ("liar", "reports version '0.0.1'")],
)
def test_a_release_that_fails_its_health_check_is_rolled_back_and_reported(
    fleet: Fleet, mode: str, why: str
) -> None:
    broken = fake_agent("0.2.0", mode)
    fleet.release("0.2.0", broken)
    updater = fleet.updater(deadline_s=3)
    _watch(updater)

    outcome = updater.apply(TRIAL)

    assert outcome == "rolled_back"
    assert fleet.binary.read_bytes() == fleet.old
    assert updater.slot.failed.read_bytes() == broken
    assert not updater.slot.previous.exists()  # a failed release never replaced anything
    assert not updater.slot.staged.exists()
    assert not (fleet.data_dir / MARKER).exists()
    assert fleet.reports("0.2.0") == [(fleet.agent.agent_id, "rolled_back")]
    assert why in fleet.messages("0.2.0")[0]
    assert "0.2.0" in updater.refused()
    assert _check_once(updater) is None  # the cloud still assigns it, the agent does not retry


def _started_as(fleet: Fleet, version: str) -> SelfUpdate:
    updater = fleet.updater()
    updater.current_version = version
    return updater


def test_a_swapped_in_release_that_never_serves_is_rolled_back(fleet: Fleet) -> None:
    new = fake_agent("0.2.0")
    fleet.release("0.2.0", new)
    updater = fleet.updater()
    _watch(updater)
    assert updater.apply(TRIAL) == "installed"

    first = _started_as(fleet, "0.2.0")  # the exec'd new binary's first start
    assert first.recover() is False
    assert first.probation
    # ...it dies before serving; the service manager starts it again:
    second = _started_as(fleet, "0.2.0")

    assert second.recover() is True

    assert fleet.binary.read_bytes() == fleet.old
    assert not (fleet.data_dir / MARKER).exists()
    assert fleet.reports("0.2.0") == [
        (fleet.agent.agent_id, "installed"),
        (fleet.agent.agent_id, "rolled_back"),
    ]
    assert "0.2.0" in second.refused()
    assert _started_as(fleet, "0.1.0").recover() is False


def test_a_swapped_in_release_that_serves_ends_its_probation(fleet: Fleet) -> None:
    fleet.release("0.2.0", fake_agent("0.2.0"))
    updater = fleet.updater()
    _watch(updater)
    assert updater.apply(TRIAL) == "installed"
    started = _started_as(fleet, "0.2.0")
    assert started.recover() is False

    async def serve() -> None:
        stop, serving = asyncio.Event(), asyncio.Event()
        watching = asyncio.create_task(started.watch(lambda: False, stop, serving))
        serving.set()
        deadline = asyncio.get_running_loop().time() + 20
        while (fleet.data_dir / MARKER).exists() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        watching.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watching

    asyncio.run(serve())

    assert not (fleet.data_dir / MARKER).exists()
    assert not started.probation
    assert _started_as(fleet, "0.2.0").recover() is False  # a later restart is an ordinary start


def test_a_marker_left_before_the_swap_is_just_cleared(fleet: Fleet) -> None:
    (fleet.data_dir / MARKER).write_text(json.dumps({"version": "0.2.0", "from": "0.1.0"}))

    assert fleet.updater().recover() is False  # still the old binary: the swap never happened

    assert fleet.binary.read_bytes() == fleet.old
    assert not (fleet.data_dir / MARKER).exists()


def test_the_swap_never_leaves_the_station_without_a_binary(tmp_path: Path) -> None:
    from edge_agent.update.slot import BinarySlot

    slot = BinarySlot(tmp_path / "dockside-agent")
    slot.path.write_bytes(b"old")
    with pytest.raises(FileNotFoundError):
        slot.swap()  # nothing staged
    with pytest.raises(FileNotFoundError):
        slot.roll_back()  # nothing to go back to
    assert slot.path.read_bytes() == b"old"
    slot.stage(b"new")
    slot.swap()
    assert (slot.path.read_bytes(), slot.previous.read_bytes()) == (b"new", b"old")
    slot.roll_back()
    assert (slot.path.read_bytes(), slot.failed.read_bytes()) == (b"old", b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dockside-agent", "dockside-agent.failed"]


def test_verification_checks_size_digest_and_signature() -> None:
    private, public = generate_release_key()
    blob = b"agent bytes"
    release = Release(
        "1.0.0", hashlib.sha256(blob).hexdigest(), sign_release(private, "1.0.0", blob), len(blob)
    )
    verify_release(blob, release, public)

    with pytest.raises(UpdateRefused) as short:
        verify_release(blob[:-1], release, public)
    moved = Release("1.0.1", release.sha256, release.signature, release.size)
    with pytest.raises(UpdateRefused) as replayed:
        verify_release(blob, moved, public)
    garbled = Release("1.0.0", release.sha256, base64.b64encode(b"x" * 64).decode(), release.size)
    with pytest.raises(UpdateRefused) as forged:
        verify_release(blob, garbled, public)

    assert short.value.reason == "bad_checksum"
    assert replayed.value.reason == forged.value.reason == "bad_signature"
    assert "update.public_key" in forged.value.message


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"version": "1.0.0", "sha256": "zz", "signature": "", "size": 1},
        {"version": "../../etc", "sha256": "0" * 64, "signature": "", "size": 1},
        {"version": "1.0.0", "sha256": "0" * 64, "signature": "", "size": "big"},
        [],
    ],
)
def test_an_unusable_release_answer_is_refused(body: Any) -> None:
    with pytest.raises(UpdateRefused) as caught:
        Release.from_answer(body)
    assert caught.value.reason == "bad_answer"


def test_an_unreachable_cloud_only_delays_the_check(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _, public = generate_release_key()
    binary = tmp_path / "dockside-agent"
    binary.write_bytes(b"old")
    updater = SelfUpdate(
        binary=binary,
        data_dir=tmp_path,
        cloud_http="http://127.0.0.1:9",  # discard port: nothing listens
        credential="c",
        public_key=public,
        check_interval_s=0.01,
    )

    def failed_checks() -> int:
        return sum("cannot check for agent updates" in r.getMessage() for r in caplog.records)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(updater.watch(lambda: False, stop))
        deadline = asyncio.get_running_loop().time() + 20
        while failed_checks() < 3 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not stop.is_set()

    with caplog.at_level("WARNING"):
        asyncio.run(main())
    assert failed_checks() >= 3  # it keeps trying
    assert binary.read_bytes() == b"old"
    assert updater.staged is None
