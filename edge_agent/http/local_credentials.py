"""The credentials of the agent's local API: the local token, pairing codes and station sessions.

Three ways in, all checked by `edge_agent.http.local_access`:

    Authorization: Bearer <local token>   a program on this PC (a WMS client, the demo, tests);
                                          the token lives in <data dir>/local-token (0600),
                                          `dockside-agent local-token [--rotate]` prints it
    session cookie, loopback              the station page opened on this PC gets one on load
    session cookie, paired                a station screen on another PC, after it entered a
                                          one-time code that `dockside-agent pair-code` printed

Files in the data dir, each written whole (temporary file, then rename) with mode 0600:

    local-token            the token, in clear: `local-token` must be able to print it again
    pair-code.json         the SHA-256 of the current pairing code and when it expires
    paired-screens.json    the SHA-256 of each paired screen's session secret

Requests never read a file: the token's and the paired screens' hashes are kept in memory, and
only a `stat` (no read) tells whether `--rotate` or `--unpair-all` replaced a file since; a
changed file is read again before the request is judged, so a rotated token is refused at once.
Loopback sessions live in memory only (a page that finds its session gone after an agent
restart asks for a new one). Secrets are compared by their SHA-256 with `hmac.compare_digest`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from dockside.errors import DocksideError

__all__ = [
    "LOCAL_TOKEN_FILE",
    "PAIRED_SCREENS_FILE",
    "PAIR_CODE_FILE",
    "PAIR_CODE_TRIES",
    "LocalCredentials",
    "PairingRefused",
    "PairingThrottled",
    "ensure_local_token",
    "issue_pair_code",
    "read_local_token",
    "rotate_local_token",
    "unpair_all_screens",
]

LOCAL_TOKEN_FILE = "local-token"  # noqa: S105 - a file name
PAIR_CODE_FILE = "pair-code.json"
PAIRED_SCREENS_FILE = "paired-screens.json"

PAIR_CODE_TTL_S = 600.0
PAIR_CODE_TRIES = 5  # wrong codes before the current code is burned
PAIR_ATTEMPTS_PER_MINUTE = 20  # every client together: a code is never guessed, only tried
# No I, L, O, 0 or 1: a code is read off one screen and typed on another.
_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_CODE_LENGTH = 8
MAX_LOOPBACK_SESSIONS = 256
MAX_PAIRED_SCREENS = 500
_TOKEN_PREFIX = "dsa_"  # noqa: S105 - marks a Dockside agent token in a log scan


class PairingRefused(DocksideError):
    """A pairing attempt that failed; `code` says why (wrong, expired, locked, throttled)."""

    http_status = 403


class PairingThrottled(PairingRefused):
    """Too many pairing attempts from everyone together in the last minute (429)."""

    code = "too_many_attempts"
    http_status = 429


def _digest(secret: str | bytes) -> bytes:
    return hashlib.sha256(secret.encode() if isinstance(secret, str) else secret).digest()


def _write_secret(path: Path, text: str, *, replace: bool = True) -> bool:
    """Write `text` to `path` with mode 0600, all or nothing; False if `replace` is off and it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)  # fails if another process created it first: keep theirs
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def read_local_token(folder: Path) -> str | None:
    """The local token kept in `folder`, or None if there is none yet."""
    try:
        token = (folder / LOCAL_TOKEN_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return token or None


def _new_token() -> str:
    return _TOKEN_PREFIX + secrets.token_urlsafe(32)


def ensure_local_token(folder: Path) -> str:
    """The local token in `folder`, created (0600) if there is none."""
    existing = read_local_token(folder)
    if existing is not None:
        return existing
    _write_secret(folder / LOCAL_TOKEN_FILE, _new_token() + "\n", replace=False)
    created = read_local_token(folder)
    if created is None:
        raise OSError(f"the local token file in {folder} vanished while it was created")
    return created


def rotate_local_token(folder: Path) -> str:
    """A new local token in `folder`; the old one stops working at once in a running agent."""
    token = _new_token()
    _write_secret(folder / LOCAL_TOKEN_FILE, token + "\n")
    return token


def issue_pair_code(folder: Path, ttl_s: float = PAIR_CODE_TTL_S) -> tuple[str, float]:
    """A new one-time pairing code (replacing any earlier one) and when it expires (epoch seconds)."""
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_LENGTH))
    expires_at = time.time() + ttl_s
    record = {"sha256": _digest(raw).hex(), "expires_at": expires_at}
    _write_secret(folder / PAIR_CODE_FILE, json.dumps(record))
    return f"{raw[:4]}-{raw[4:]}", expires_at


def unpair_all_screens(folder: Path) -> int:
    """Forget every paired station screen (each must pair again); how many there were."""
    path = folder / PAIRED_SCREENS_FILE
    count = len(_read_screens(path))
    _write_secret(path, json.dumps({"screens": []}))
    return count


def _normalise_code(text: str) -> str:
    return "".join(ch for ch in text.upper() if ch not in " -")


def _read_screens(path: Path) -> list[dict[str, Any]]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        return []  # an unreadable file pairs nobody; the next pairing rewrites it
    screens = document.get("screens") if isinstance(document, dict) else None
    return [s for s in screens or [] if isinstance(s, dict) and {"id", "sha256"} <= s.keys()]


# What `stat` says about a file: a rename-replaced file has a new inode, a rewrite a new mtime.
# A plain tuple: this runs on every request that carries a token.
_FileMark = tuple[int, int, int]


def _mark(path: str) -> _FileMark | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class LocalCredentials:
    """What the agent checks a request's credential against; one per running agent, on its loop."""

    def __init__(self, folder: Path, *, clock: Any = time.time) -> None:
        self.folder = folder
        self._clock = clock
        self._token_path = str(folder / LOCAL_TOKEN_FILE)
        self._screens_path = str(folder / PAIRED_SCREENS_FILE)
        ensure_local_token(folder)
        self._token_mark: _FileMark | None = None
        self._token_digest: bytes | None = None
        self._reload_token()
        self._loopback: OrderedDict[str, bytes] = OrderedDict()
        self._paired: dict[str, bytes] = {}
        self._screens_mark: _FileMark | None = None
        self._reload_screens()
        self._failed_tries: dict[str, int] = {}
        self._attempts: list[float] = []

    # -- the local token -------------------------------------------------------------------

    def _reload_token(self) -> None:
        self._token_mark = _mark(self._token_path)
        token = read_local_token(self.folder)
        self._token_digest = _digest(token) if token else None

    def token_ok(self, presented: bytes) -> bool:
        """Whether `presented` is the current local token (re-read first if the file changed)."""
        if _mark(self._token_path) != self._token_mark:
            self._reload_token()
        expected = self._token_digest
        return expected is not None and hmac.compare_digest(_digest(presented), expected)

    # -- sessions --------------------------------------------------------------------------

    def _reload_screens(self) -> None:
        self._screens_mark = _mark(self._screens_path)
        self._paired = {}
        for screen in _read_screens(Path(self._screens_path)):
            with contextlib.suppress(ValueError):
                self._paired[str(screen["id"])] = bytes.fromhex(str(screen["sha256"]))

    def session_ok(self, cookie: str) -> bool:
        """Whether `cookie` ("<id>.<secret>") is a live loopback or paired session."""
        session_id, dot, secret = cookie.partition(".")
        if not dot or not secret:
            return False
        expected = self._loopback.get(session_id)
        if expected is None:
            if _mark(self._screens_path) != self._screens_mark:
                self._reload_screens()
            expected = self._paired.get(session_id)
        return expected is not None and hmac.compare_digest(_digest(secret), expected)

    def new_loopback_session(self) -> str:
        """A cookie value for the station page opened on this PC (in memory, oldest dropped first)."""
        session_id, secret = secrets.token_urlsafe(9), secrets.token_urlsafe(32)
        self._loopback[session_id] = _digest(secret)
        while len(self._loopback) > MAX_LOOPBACK_SESSIONS:
            self._loopback.popitem(last=False)
        return f"{session_id}.{secret}"

    # -- pairing ---------------------------------------------------------------------------

    def pair(self, code: str, client: str) -> str:
        """Trade a pairing code for a paired screen's cookie value; PairingRefused says why not."""
        now = self._clock()
        self._attempts = [t for t in self._attempts if now - t < 60.0]
        if len(self._attempts) >= PAIR_ATTEMPTS_PER_MINUTE:
            raise PairingThrottled(
                "too many pairing attempts in the last minute: wait a minute, then enter the code again"
            )
        self._attempts.append(now)
        record = self._current_code()
        if record is None:
            raise PairingRefused(
                "there is no pairing code to pair with: ask IT to run `dockside-agent pair-code` "
                "on the agent's PC and enter the code it prints",
                code="pairing_code_missing",
            )
        expected, expires_at = record
        key = expected.hex()
        if now >= expires_at:
            self._burn_code()
            raise PairingRefused(
                "that pairing code has expired: ask IT to run `dockside-agent pair-code` again",
                code="pairing_code_expired",
            )
        if not hmac.compare_digest(_digest(_normalise_code(code[:64])), expected):
            tries = self._failed_tries.get(key, 0) + 1
            self._failed_tries[key] = tries
            if tries >= PAIR_CODE_TRIES:
                self._burn_code()
                raise PairingRefused(
                    f"{tries} wrong pairing codes: this code no longer works; ask IT to run "
                    "`dockside-agent pair-code` for a new one",
                    code="pairing_locked",
                    params={"tries": tries},
                )
            raise PairingRefused(
                f"that is not the pairing code ({PAIR_CODE_TRIES - tries} tries left): check it "
                "and enter it again",
                code="pairing_code_wrong",
                params={"tries_left": PAIR_CODE_TRIES - tries},
            )
        self._burn_code()  # one screen per code
        return self._add_screen(client)

    def _current_code(self) -> tuple[bytes, float] | None:
        try:
            record = json.loads((self.folder / PAIR_CODE_FILE).read_text(encoding="utf-8"))
            return bytes.fromhex(str(record["sha256"])), float(record["expires_at"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _burn_code(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.folder / PAIR_CODE_FILE).unlink()
        self._failed_tries.clear()

    def _add_screen(self, client: str) -> str:
        session_id, secret = secrets.token_urlsafe(9), secrets.token_urlsafe(32)
        screens = _read_screens(Path(self._screens_path))
        screens.append(
            {
                "id": session_id,
                "sha256": _digest(secret).hex(),
                "paired_at": round(self._clock()),
                "client": client[:64],
            }
        )
        _write_secret(Path(self._screens_path), json.dumps({"screens": screens[-MAX_PAIRED_SCREENS:]}))
        self._reload_screens()
        return f"{session_id}.{secret}"
