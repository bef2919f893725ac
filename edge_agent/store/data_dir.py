"""Where the agent keeps its database: `--data-dir`, else `$DOCKSIDE_AGENT_DATA_DIR`, else a per-OS folder.

The per-OS folder follows platformdirs' `user_data_dir` (no dependency for four lines):
Linux `$XDG_DATA_HOME/dockside-agent` (default `~/.local/share/dockside-agent`), macOS
`~/Library/Application Support/Dockside Agent`, Windows `%LOCALAPPDATA%\\Dockside\\Agent`. The
installers point services elsewhere (e.g. /var/lib/dockside-agent) through the variable.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["DATA_DIR_ENV", "default_data_dir", "resolve_data_dir"]

DATA_DIR_ENV = "DOCKSIDE_AGENT_DATA_DIR"


def default_data_dir(env: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    """The per-OS data folder for the current user."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    home = Path(env.get("HOME") or env.get("USERPROFILE") or Path.home())
    if platform == "win32":
        base = env.get("LOCALAPPDATA") or str(home / "AppData" / "Local")
        return Path(base) / "Dockside" / "Agent"
    if platform == "darwin":
        return home / "Library" / "Application Support" / "Dockside Agent"
    base = env.get("XDG_DATA_HOME") or str(home / ".local" / "share")
    return Path(base) / "dockside-agent"


def resolve_data_dir(option: str | Path | None, env: Mapping[str, str] | None = None) -> Path:
    """The data dir in force: the option, else the environment variable, else the per-OS default."""
    env = os.environ if env is None else env
    if option:
        return Path(option).expanduser()
    if env.get(DATA_DIR_ENV):
        return Path(env[DATA_DIR_ENV]).expanduser()
    return default_data_dir(env)
