"""A scale's serial port as a stream of frames: open with the protocol's settings, read to a terminator.

Scales talk in short frames ended by a fixed byte (CR LF, CR or ETX). Reading up to the
terminator is also how the drivers survive noise: a garbled frame ends at the next terminator
and the frame after it is clean again. 7-bit protocols (Toledo 8217, NCI) get every byte masked
to 7 bits, because a USB adapter or a pty may hand the parity bit through. Serial and OS errors
become ScaleError: a vanished port is `ScalePortLost` (`scale_unplugged`), which the reader answers
by reopening.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import time

import serial

from dockside.errors import ScaleError, ScaleGarbledFrame, ScalePortLost

__all__ = ["SerialLine"]

log = logging.getLogger(__name__)

try:  # POSIX: pyserial lets termios' own error escape when a port refuses its settings
    import termios

    _TERMIOS_ERRORS: tuple[type[Exception], ...] = (termios.error,)
except ImportError:  # Windows
    _TERMIOS_ERRORS = ()

# No scale frame is longer; a run of bytes without a terminator this long is noise.
MAX_FRAME_BYTES = 256
_SEVEN_BIT = bytes(b & 0x7F for b in range(256))
# What a port that went away raises: an unplugged adapter, or a pty whose other end closed,
# fails reads with OSError and `tcflush` (discarding input) with termios' own error.
_PORT_GONE = (*_TERMIOS_ERRORS, serial.SerialException, OSError)
_POLL_S = 0.02


class SerialLine:
    """One open serial port, read frame by frame."""

    def __init__(
        self,
        path: str,
        *,
        baudrate: int,
        seven_bit: bool = False,
        scale_name: str = "scale",
    ) -> None:
        self.path = path
        self._baudrate = baudrate
        self._seven_bit = seven_bit
        self._name = scale_name
        self._port: serial.Serial | None = None
        self._buffer = bytearray()

    @property
    def is_open(self) -> bool:
        return self._port is not None

    def _open_port(self, seven_bit: bool) -> serial.Serial:
        return serial.Serial(
            self.path,
            self._baudrate,
            bytesize=serial.SEVENBITS if seven_bit else serial.EIGHTBITS,
            parity=serial.PARITY_EVEN if seven_bit else serial.PARITY_NONE,
            stopbits=serial.STOPBITS_ONE,
            # Fixed for the port's life: changing it later reconfigures the port, which some
            # drivers (and ptys) refuse. Reads loop on it up to their deadline.
            timeout=_POLL_S,
            write_timeout=1.0,
        )

    def open(self) -> None:
        if self._port is not None:
            return
        try:
            try:
                self._port = self._open_port(self._seven_bit)
            except _TERMIOS_ERRORS:
                if not self._seven_bit:
                    raise
                # A pty (and some adapters) refuses 7E1 once it was set to 8N1. Bytes are masked
                # to 7 bits anyway, so 8N1 reads the same frames; only a real line checks parity.
                log.info("%s refuses 7E1; reading it as 8N1 with 7-bit masking", self.path)
                self._port = self._open_port(False)
        except (*_TERMIOS_ERRORS, serial.SerialException, OSError, ValueError) as exc:
            cause = getattr(exc, "errno", None) or getattr(exc.__context__, "errno", None)
            if cause in (errno.EACCES, errno.EPERM):
                raise ScalePortLost(
                    f"the {self._name} on {self.path} may not be opened by this user: add the agent's "
                    "user to the 'dialout' group (Linux) or run the agent as a service, then restart it",
                    code="scale_port_denied",
                ) from exc
            raise ScalePortLost(
                f"the {self._name} on {self.path} is not there: check that its cable is plugged in "
                "and that the port is the one set for this station",
                code="scale_unplugged",
            ) from exc
        self._buffer.clear()

    def _lost(self, exc: BaseException) -> ScalePortLost:
        self.close()
        return ScalePortLost(
            f"the {self._name} on {self.path} went away ({exc}): check its cable; "
            "Dockside reconnects by itself when it is back",
            code="scale_unplugged",
        )

    def write(self, data: bytes) -> None:
        self.open()
        assert self._port is not None
        try:
            self._port.write(data)
        except serial.SerialTimeoutException as exc:
            raise ScaleError(
                f"the {self._name} on {self.path} does not take commands: check its cable and "
                "its handshake setting (none)",
                code="scale_not_answering",
            ) from exc
        except _PORT_GONE as exc:
            raise self._lost(exc) from exc

    def discard_input(self) -> None:
        """Drop what arrived unasked, so the next frame read is the answer to the next command."""
        self._buffer.clear()
        if self._port is not None:
            try:
                self._port.reset_input_buffer()
            except _PORT_GONE as exc:
                raise self._lost(exc) from exc

    def _fill(self, timeout_s: float) -> bool:
        """Read what is there (waiting up to `timeout_s` for the first byte); False if nothing came."""
        port = self._port
        assert port is not None
        deadline = time.monotonic() + timeout_s
        chunk = b""
        try:
            while not chunk:
                waiting = port.in_waiting
                if waiting:
                    chunk = port.read(waiting)
                elif time.monotonic() >= deadline:
                    break
                else:
                    # Blocks for at most the port's short timeout, returns at the first byte.
                    chunk = port.read(1)
        except _PORT_GONE as exc:
            raise self._lost(exc) from exc
        if self._seven_bit:
            chunk = chunk.translate(_SEVEN_BIT)
        self._buffer += chunk
        return bool(chunk)

    def _take(self, terminator: bytes) -> bytes | None:
        end = self._buffer.find(terminator)
        if end < 0:
            if len(self._buffer) > MAX_FRAME_BYTES:
                # Keep the tail: the start of the next real frame may be in it.
                del self._buffer[: -len(terminator)]
                raise ScaleGarbledFrame(
                    f"the {self._name} on {self.path} sent more than {MAX_FRAME_BYTES} bytes without "
                    "a frame end: check that the scale's protocol and baud rate match the station settings"
                )
            return None
        end += len(terminator)
        frame = bytes(self._buffer[:end])
        del self._buffer[:end]
        return frame

    def read_frame(self, terminator: bytes, timeout_s: float) -> bytes:
        """The next frame up to and including `terminator`; ScaleError if none completes in time."""
        self.open()
        deadline = time.monotonic() + timeout_s
        while True:
            frame = self._take(terminator)
            if frame is not None:
                return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._fill(remaining):
                raise ScaleError(
                    f"the {self._name} on {self.path} did not answer within {timeout_s:g} s: check that it "
                    "is switched on and set to the protocol and baud rate of the station settings",
                    code="scale_not_answering",
                )

    def read_latest_frame(self, terminator: bytes, timeout_s: float) -> bytes:
        """The newest complete frame (for scales that send without being asked), skipping older ones."""
        frame = self.read_frame(terminator, timeout_s)
        # Whatever else has arrived is newer; only the last complete frame is the current weight.
        self._fill(0)
        with contextlib.suppress(ScaleError):
            while (newer := self._take(terminator)) is not None:
                frame = newer
        return frame

    def close(self) -> None:
        port, self._port = self._port, None
        self._buffer.clear()
        if port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                port.close()
