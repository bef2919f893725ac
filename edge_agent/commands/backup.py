"""`dockside-agent backup PATH` and `dockside-agent restore PATH`: the agent's database, kept and put back.

A backup is one consistent copy of `agent.db`, taken with SQLite's online backup API, so it may
run beside a running agent (the agent's writes wait a moment, never fail); the file is 0600,
because the database holds the agent's credential.

A restore puts a backup in place of the database, with the agent stopped (`run` holds the data
dir's lock, `agent.lock`, while it runs; a restore refuses while it is held). The database it
replaces is kept beside it (`agent.db.replaced-<ms>`). Then, in one transaction, it retires every
number lease the restored database holds (`edge_agent.store.numbers.retire_all_leases`): the
agent never takes from them again and tells the cloud with one `lease_retired` event each, and
the cloud retires them (and every other lease of the agent) and leases fresh blocks. That is why
a restore can never issue a tracking number or SSCC twice: every number taken after the backup
lies in a lease that is now retired.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import click

from dockside.secret_files import SQLITE_COMPANIONS, private_file
from edge_agent.commands.agent_setup import Refused, data_dir_option
from edge_agent.store.data_dir import resolve_data_dir
from edge_agent.store.database import DB_FILENAME, Store, now_ms
from edge_agent.store.numbers import retire_all_leases
from edge_agent.store.outbox import Outbox

__all__ = [
    "LOCK_FILENAME",
    "AgentRunning",
    "agent_lock",
    "backup_command",
    "backup_database",
    "restore_command",
    "restore_database",
]

LOCK_FILENAME = "agent.lock"
_BACKUP_PAGES = 256  # pages per step: the running agent's writes wait for at most one step


class AgentRunning(Refused):
    """An agent holds the data dir's lock."""


def _try_lock(handle: IO[bytes]) -> bool:
    """Take the lock on `handle` without waiting; False when another process holds it."""
    if os.name == "nt":  # pragma: no cover -- exercised on Windows agents only
        import msvcrt

        handle.seek(0)
        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def agent_lock(folder: Path, *, doing: str = "run") -> Iterator[None]:
    """Hold `folder`'s agent lock for the block; AgentRunning when an agent (or a restore) holds it.

    The lock is an advisory `flock` on `agent.lock` (a byte lock on Windows), released by the
    kernel when the process ends however it ends (no stale pid file to clean up); its descriptor
    is not inherited by a restart into a new release.
    """
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle = open(folder / LOCK_FILENAME, "a+b")  # noqa: SIM115 -- held for the whole block
    try:
        if not _try_lock(handle):
            raise AgentRunning(
                f"an agent is running on the data dir {folder} (it holds {LOCK_FILENAME}): "
                + (
                    "stop it first (stop the service), then restore"
                    if doing == "restore"
                    else "stop it, or give this one another --data-dir"
                )
            )
        yield
    finally:
        handle.close()


def _is_agent_database(path: Path) -> str | None:
    """Why `path` is not a usable agent database, or None when it is."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return f"it cannot be opened ({exc})"
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"identity", "jobs", "outbox"} <= tables:
            return "it is not a Dockside agent database (no identity, jobs and outbox tables)"
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            return f"it is damaged ({str(check)[:200]})"
    except sqlite3.DatabaseError as exc:
        return f"it is not an SQLite database ({exc})"
    finally:
        conn.close()
    return None


def backup_database(folder: Path, target: Path) -> None:
    """Copy `folder`'s database to `target` (0600), consistently, even while the agent runs."""
    source_path = folder / DB_FILENAME
    if not source_path.exists():
        raise Refused(f"there is no agent database in {folder}: give the data dir the agent runs with")
    if target.exists():
        raise Refused(f"{target} already exists: give a new file name (a backup never overwrites a file)")
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    private_file(partial)
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True, timeout=10.0)
    try:
        dest = sqlite3.connect(str(partial))
        try:
            source.backup(dest, pages=_BACKUP_PAGES)
            dest.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            dest.close()
        os.replace(partial, target)
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise Refused(f"the backup to {target} failed ({exc}): check the disk and try again") from None
    finally:
        source.close()
    private_file(target)


def restore_database(folder: Path, backup: Path) -> list[dict[str, object]]:
    """Put `backup` in place of `folder`'s database (agent stopped) and retire every lease it holds;
    the `lease_retired` bodies recorded."""
    if not backup.is_file():
        raise Refused(f"there is no backup file {backup}: give the path `dockside-agent backup` wrote")
    problem = _is_agent_database(backup)
    if problem is not None:
        raise Refused(f"{backup} cannot be restored: {problem}")
    with agent_lock(folder, doing="restore"):
        current = folder / DB_FILENAME
        if current.exists():
            kept = folder / f"{DB_FILENAME}.replaced-{now_ms()}"
            os.replace(current, kept)
            for companion in SQLITE_COMPANIONS:
                old = folder / f"{DB_FILENAME}{companion}"
                if old.exists():
                    os.replace(old, folder / f"{kept.name}{companion}")
        partial = folder / f".{DB_FILENAME}.restoring"
        private_file(partial)
        shutil.copyfile(backup, partial)
        os.replace(partial, current)
        store = Store.open(folder)  # migrates a backup from an older agent
        try:
            return retire_all_leases(store, Outbox(store))
        finally:
            store.close()


@click.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@data_dir_option
def backup_command(path: Path, data_dir: Path | None) -> None:
    """Copy the agent's database to PATH (mode 0600); safe while the agent runs.

    Keep backups as safe as the PC: the database holds the agent's credential.
    """
    folder = resolve_data_dir(data_dir)
    backup_database(folder, path)
    click.echo(f"Backed up {folder / DB_FILENAME} to {path}.")


@click.command("restore")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@data_dir_option
def restore_command(path: Path, data_dir: Path | None) -> None:
    """Put the backup at PATH in place of the agent's database; the agent must be stopped.

    Every number lease in the backup is retired (never used again; the cloud hears of it and
    leases fresh blocks), so no tracking number is issued twice. The replaced database is kept
    beside it as agent.db.replaced-<time>.
    """
    folder = resolve_data_dir(data_dir)
    retired = restore_database(folder, path)
    click.echo(
        f"Restored {path} into {folder}; retired {len(retired)} number lease(s): start the agent, and "
        "it packs with fresh numbers once the cloud has leased them."
    )
