"""`dockside-agent backup` and `restore` on real files: a restore never issues a number twice."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dockside.sync import ChangeKind
from edge_agent.commands.backup import AgentRunning, agent_lock
from edge_agent.commands.cli import main
from tests.edge_agent.store.test_numbers import Agent, lease


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def _serials(data_dir: Path) -> list[tuple[int, int]]:
    conn = sqlite3.connect(data_dir / "agent.db")
    try:
        return [
            tuple(row) for row in conn.execute("SELECT lease_id, serial FROM numbers_taken ORDER BY 1, 2")
        ]
    finally:
        conn.close()


def test_back_up_pack_more_restore_and_the_next_number_is_from_no_old_lease(
    data_dir: Path, tmp_path: Path
) -> None:
    agent = Agent(data_dir)
    agent.sync(ChangeKind.NUMBER_LEASE, "1", lease(1))
    first = [agent.take(job=f"before-{i}") for i in range(2)]
    backup = tmp_path / "kept" / "agent-backup.db"
    backup.parent.mkdir()
    # Taken while the agent's store is open (as when it runs): the copy is consistent.
    code, out = _cli("backup", str(backup), "--data-dir", str(data_dir))
    assert code == 0, out
    assert os.stat(backup).st_mode & 0o777 == 0o600
    after = [agent.take(job=f"after-{i}") for i in range(2)]  # numbers the backup never saw
    agent.close()
    assert len(set(first + after)) == 4

    code, out = _cli("restore", str(backup), "--data-dir", str(data_dir))
    assert code == 0, out
    assert "retired 1 number lease" in out
    assert _serials(data_dir) == [(1, 100), (1, 101)]  # the backup's own state
    assert [p.name for p in data_dir.iterdir() if p.name.startswith("agent.db.replaced-")]

    restored = Agent(data_dir)
    try:
        # The cache still lists lease 1 unretired (as the cloud did): the agent takes nothing from it.
        assert restored.cache.number_leases[1]["retired"] is False
        assert restored.take(job="next") is None
        assert restored.events("lease_retired") == [
            {"lease_id": 1, "carrier": "ACME", "reason": "restored from backup"}
        ]
        # The cloud retires it and leases a fresh block: the next number comes from there.
        restored.sync(ChangeKind.NUMBER_LEASE, "2", lease(2, first=500, last=504))
        number = restored.take(job="next")
        assert number is not None
        assert number not in first + after
        assert _serials(data_dir)[-1] == (2, 500)
    finally:
        restored.close()


def test_restore_refuses_while_an_agent_holds_the_data_dir_and_changes_nothing(
    data_dir: Path, tmp_path: Path
) -> None:
    agent = Agent(data_dir)
    agent.sync(ChangeKind.NUMBER_LEASE, "1", lease(1))
    agent.take(job="a")
    agent.close()
    backup = tmp_path / "b.db"
    assert _cli("backup", str(backup), "--data-dir", str(data_dir))[0] == 0
    before = (data_dir / "agent.db").read_bytes()
    holder = subprocess.Popen(  # a real process holding the lock, as `run` does
        [
            sys.executable,
            "-c",
            "import sys, pathlib\n"
            "from edge_agent.commands.backup import agent_lock\n"
            f"with agent_lock(pathlib.Path({str(data_dir)!r})):\n"
            "    print('held', flush=True)\n"
            "    sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        code, out = _cli("restore", str(backup), "--data-dir", str(data_dir))
        assert code == 1
        assert "an agent is running on the data dir" in out
        assert "stop it first" in out
        assert (data_dir / "agent.db").read_bytes() == before
        assert not [p for p in data_dir.iterdir() if "replaced" in p.name]
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
        if holder.stdout is not None:
            holder.stdout.close()
    assert _cli("restore", str(backup), "--data-dir", str(data_dir))[0] == 0


def test_hostile_backup_files_are_refused_and_change_nothing(data_dir: Path, tmp_path: Path) -> None:
    agent = Agent(data_dir)
    agent.sync(ChangeKind.NUMBER_LEASE, "1", lease(1))
    agent.take(job="a")
    agent.close()
    before = _serials(data_dir)
    not_sqlite = tmp_path / "junk.db"
    not_sqlite.write_bytes(b"\x00" * 4096 + b"not a database" * 100)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    for path, says in (
        (not_sqlite, "cannot be restored"),
        (other, "not a Dockside agent database"),
        (tmp_path / "missing.db", "there is no backup file"),
        (tmp_path, "is a directory"),
    ):
        code, out = _cli("restore", str(path), "--data-dir", str(data_dir))
        assert code in (1, 2), out
        assert says in out, out
    assert _serials(data_dir) == before
    assert not [p for p in data_dir.iterdir() if "replaced" in p.name]
    # A backup never overwrites a file, and needs an agent to back up.
    code, out = _cli("backup", str(not_sqlite), "--data-dir", str(data_dir))
    assert code == 1
    assert "already exists" in out
    code, out = _cli("backup", str(tmp_path / "x.db"), "--data-dir", str(tmp_path / "nobody"))
    assert code == 1
    assert "no agent database" in out


def test_a_second_agent_on_the_data_dir_is_refused_while_the_first_holds_it(data_dir: Path) -> None:
    with (
        agent_lock(data_dir),
        pytest.raises(AgentRunning, match="give this one another --data-dir"),
        agent_lock(data_dir),
    ):
        pass
    with agent_lock(data_dir):  # released with the first holder
        pass
