"""A software serial scale on a pseudo-terminal, with a control API and injectable faults.

`MockScale` opens a pty in raw mode; a driver opens the slave path with pyserial exactly as it
opens a COM port or /dev/ttyUSB0. The mock keeps its own slave descriptor open, so a driver may
close and reopen the port at will; bytes a continuous scale sends while nobody reads are dropped
once a second's worth piles up, as a real UART overruns. `unplug` closes the pty (the driver's
reads fail, as when a USB serial adapter is pulled) and removes the `link`; replugging opens a NEW
pty and re-points the link, as the adapter re-appears.

    with MockScale(protocol="mt-sics", control_port=0) as scale:
        scale.set_weight(1234, stable=True)
        port = serial.Serial(scale.pty_path, 9600, timeout=1)
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import random
import struct
import termios
import time
import tty
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from hardware_mocks.control_http import ControlledMock
from hardware_mocks.scale_control import build_scale_app
from hardware_mocks.scale_protocols import PROTOCOLS, ScaleProtocol
from hardware_mocks.weighing import Weighing

__all__ = ["MODES", "MockScale"]

MODES = ("swing", "overload", "underload", "noise", "silent", "unplug", "units")
# Unread continuous output beyond this is discarded, like a UART overrun with no reader.
_BACKLOG_LIMIT = 512
_SERVICE_INTERVAL_S = 0.02


class MockScale(ControlledMock):
    """A serial scale on a pty, in a background thread, with an HTTP control API.

    Parameters: `protocol` ("mt-sics", "toledo-8217", "nci-scp12" or "cas"), `control_host` /
    `control_port` (0 picks a free port), `link` (a symlink kept pointing at the current pty),
    `serial` and `model` (what the scale reports), `capacity_g`, `stable_timeout_s` (how long a
    stable-weight request waits before answering "not executable"), `interval_s` (the period of
    continuous output and of MT-SICS `SIR` repeats).
    """

    def __init__(
        self,
        protocol: str = "mt-sics",
        control_port: int = 9181,
        control_host: str = "127.0.0.1",
        link: str | Path | None = None,
        serial: str = "B912345678",
        model: str = "PBA430",
        capacity_g: float = 30000.0,
        stable_timeout_s: float = 3.0,
        interval_s: float = 0.1,
        units: str | None = None,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown scale protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
        self.protocol: ScaleProtocol = PROTOCOLS[protocol]
        if units is not None and units not in self.protocol.units:
            raise ValueError(f"{protocol} reports {', '.join(self.protocol.units)}, not {units!r}")
        super().__init__(f"mock-scale-{protocol}", control_host, control_port)
        self.units = units or self.protocol.units[0]
        self.link = Path(link) if link is not None else None
        self.serial = serial
        self.model = model
        self.stable_timeout_s = stable_timeout_s
        self.interval_s = interval_s
        self.weighing = Weighing(capacity_g)
        self.noise = False
        self.silent = False
        self.pty_path: str | None = None
        self.commands_received = 0
        self.frames_sent = 0
        self.bytes_dropped = 0
        self.plug_count = 0
        self._master: int | None = None
        self._slave: int | None = None
        self._input = bytearray()
        self._queue: asyncio.Queue[bytes] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._repeat: bytes | None = None
        self._random = random.Random(0x5CA1E)

    # ----- lifecycle -------------------------------------------------------------------------

    async def _open_device(self) -> None:
        self._queue = asyncio.Queue()
        self._plug()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._answer_commands()), loop.create_task(self._stream())]

    async def _close_device(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._unplug()

    def _control_app(self) -> FastAPI:
        return build_scale_app(self)

    # ----- identity and state ----------------------------------------------------------------

    @property
    def plugged(self) -> bool:
        """Whether the pty is open (not unplugged)."""
        return self._master is not None

    def state(self) -> dict[str, Any]:
        """The scale's state as `GET /` reports it (call on the scale's loop, or via `status()`)."""
        weighing = self.weighing
        reading = weighing.reading()
        return {
            "pty": self.pty_path,
            "link": str(self.link) if self.link is not None else None,
            "control": self.control_address,
            "protocol": self.protocol.name,
            "grams": weighing.load_g,
            "stable": weighing.stable,
            "reading": {
                "gross_g": reading.gross_g,
                "net_g": reading.net_g,
                "tare_g": reading.tare_g,
                "stable": reading.stable,
                "overload": reading.overload,
                "underload": reading.underload,
            },
            "zero_offset_g": weighing.zero_offset_g,
            "tare_g": weighing.tare_g,
            "capacity_g": weighing.capacity_g,
            "units": self.units,
            "supported_units": list(self.protocol.units),
            "swing": weighing.swing,
            "overload": weighing.overload,
            "underload": weighing.underload,
            "noise": self.noise,
            "silent": self.silent,
            "plugged": self.plugged,
            "unplug": not self.plugged,
            "serial": self.serial,
            "model": self.model,
            "commands_received": self.commands_received,
            "frames_sent": self.frames_sent,
            "bytes_dropped": self.bytes_dropped,
            "plug_count": self.plug_count,
        }

    # ----- thread-safe API for tests and benches ---------------------------------------------

    def status(self) -> dict[str, Any]:
        """The scale's state, from any thread."""
        return self._thread.call(self._async_state())

    async def _async_state(self) -> dict[str, Any]:
        return self.state()

    def set_weight(self, grams: float, stable: bool = True) -> dict[str, Any]:
        """Place a load on the platform, from any thread."""
        return self._thread.call(self._async_set_weight(grams, stable))

    async def _async_set_weight(self, grams: float, stable: bool) -> dict[str, Any]:
        self.weighing.put(grams, stable)
        return self.state()

    def set_mode(self, **modes: Any) -> dict[str, Any]:
        """Change modes (swing, overload, underload, noise, silent, unplug, units), from any thread."""
        return self._thread.call(self.apply_modes(modes))

    async def apply_modes(self, modes: dict[str, Any]) -> dict[str, Any]:
        """Change modes on the scale's loop; ValueError names the first bad one."""
        for key, value in modes.items():
            if key not in MODES:
                raise ValueError(f"unknown mode {key!r}: use any of {', '.join(MODES)}")
            if key == "units":
                if value not in self.protocol.units:
                    raise ValueError(
                        f"{self.protocol.name} reports {', '.join(self.protocol.units)}, not units {value!r}"
                    )
            elif not isinstance(value, bool):
                raise ValueError(f"mode {key} takes true or false, not {value!r}")
        for key, value in modes.items():
            if key == "units":
                self.units = value
            elif key in ("swing", "overload", "underload"):
                setattr(self.weighing, key, value)
            elif key == "noise":
                self.noise = value
            elif key == "silent":
                self.silent = value
            elif key == "unplug":
                if value and self.plugged:
                    self._unplug()
                elif not value and not self.plugged:
                    self._plug()
        return self.state()

    # ----- the pty ---------------------------------------------------------------------------

    def _plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        tty.setraw(master)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.pty_path = os.ttyname(slave)
        self._input.clear()
        self._repeat = None
        self.plug_count += 1
        asyncio.get_running_loop().add_reader(master, self._on_readable)
        if self.link is not None:
            temporary = self.link.with_name(f".{self.link.name}.{os.getpid()}.tmp")
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            os.symlink(self.pty_path, temporary)
            # rename() swaps the link atomically: a driver never sees it missing or half made.
            os.replace(temporary, self.link)

    def _unplug(self) -> None:
        if self._master is not None:
            asyncio.get_running_loop().remove_reader(self._master)
            os.close(self._master)
        if self._slave is not None:
            os.close(self._slave)
        self._master = self._slave = None
        self._repeat = None
        if self._queue is not None:
            while not self._queue.empty():
                self._queue.get_nowait()
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()

    def _on_readable(self) -> None:
        if self._master is None:
            return
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        if not data:
            return
        self._input += data
        assert self._queue is not None
        for command in self.protocol.split(self._input):
            self.commands_received += 1
            self._queue.put_nowait(command)

    def _write(self, data: bytes) -> None:
        if self._master is None or self.silent or not data:
            return
        if self.noise and self._random.random() < 0.5:
            data = self._garbage() + data
        try:
            written = os.write(self._master, data)
        except (BlockingIOError, InterruptedError):
            written = 0
        except OSError:
            return
        self.bytes_dropped += len(data) - written

    def _garbage(self) -> bytes:
        reserved = set(b"\r\n\x02\x03")
        noise = bytes(
            byte for byte in (self._random.randrange(1, 256) for _ in range(self._random.randint(3, 12)))
            if byte not in reserved
        )  # fmt: skip
        return noise + self.protocol.frame_end

    def _unread_bytes(self) -> int:
        if self._slave is None:
            return 0
        raw = fcntl.ioctl(self._slave, termios.FIONREAD, b"\x00\x00\x00\x00")
        count: int = struct.unpack("i", raw)[0]
        return count

    # ----- what runs on the loop -------------------------------------------------------------

    async def wait_stable(self, timeout_s: float) -> bool:
        """Wait until the reading is stable, as a balance does before answering `S`."""
        deadline = time.monotonic() + timeout_s
        while not self.weighing.reading().stable:
            if time.monotonic() >= deadline or not self.plugged:
                return False
            await asyncio.sleep(_SERVICE_INTERVAL_S)
        return True

    def repeat(self, command: bytes | None) -> None:
        """Answer `command` again every interval (MT-SICS `SIR`), or stop repeating with None."""
        self._repeat = command

    async def _answer_commands(self) -> None:
        assert self._queue is not None
        while True:
            command = await self._queue.get()
            try:
                answer = await self.protocol.answer(command, self)
            except Exception as exc:  # a bad command must never kill the scale
                answer = b""
                print(f"mock scale: could not answer {command!r}: {exc}", flush=True)
            self._write(answer)

    async def _stream(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            if not self.plugged or self.silent:
                continue
            if self.protocol.continuous:
                frame = self.protocol.frame(self)
            elif self._repeat is not None:
                repeating = self._repeat
                frame = await self.protocol.answer(repeating, self)
                # Answering the repeated command must not count as a new command that stops it.
                self._repeat = repeating
            else:
                continue
            if self._unread_bytes() > _BACKLOG_LIMIT and self._slave is not None:
                termios.tcflush(self._slave, termios.TCIFLUSH)
            self.frames_sent += 1
            self._write(frame)
