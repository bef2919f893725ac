"""The serial protocols a mock scale speaks, each as a real indicator answers on its RS-232 port.

- MT-SICS (Mettler Toledo Standard Interface Command Set), commands and answers end in CR LF.
  Weight answers are `ID Status WeightValue Unit`, the value right-aligned in 10 characters:
  `S S     1234.5 g`. `S` waits for stability (`S I` after a timeout), `SI` answers at once
  (`S S` stable, `S D` dynamic); `S +` / `S -` overload / underload; `Z A`, `Z I`, `Z +`, `Z -`;
  `T S <tare>`; `TA`, `TAC A`; `@` and `I4` answer `I4 A "<serial>"`; `ES` syntax error, `ET`
  transmission error, `EL` logical error.
- Toledo 8217 (single-letter commands, 9600 7E1; on a pty no parity is applied, so only 7-bit
  ASCII is sent): `W` answers `STX weight CR` (`001.25` in pounds, `01.234kg` in kilograms) when
  the weight is stable and not negative, otherwise the status record `STX ? status CR`; `S`, `Z`
  and `T` answer the status record. Status byte: bit 0 in motion, bit 1 over capacity, bit 2 under
  zero, bit 3 outside zero capture range (a refused `Z`), bit 4 center of zero, bits 5-6 always 1.
- NCI / Weigh-Tronix SCP-12 (commands end in CR): `W` answers `LF weight units CR LF s1 s2 CR ETX`
  (status only when out of range), `S` and `Z` answer `LF s1 s2 CR ETX`, an unknown command
  `LF ? CR ETX`. Status byte 1: bit 0 in motion, bit 1 at zero, bit 2 RAM error, bit 3 EEPROM
  error; byte 2: bit 0 under capacity, bit 1 over capacity, bit 2 ROM error, bit 3 faulty
  calibration; bits 4-5 of each always 1. `U` switches units, `H` sends ten times the resolution.
- CAS continuous output: 18-byte lines streamed without request, `ST,GS,+  1.234kg CR LF`:
  `ST` stable, `US` unstable, `OL` overload or underload; `GS` gross, `NT` net (a tare is set).
"""

from __future__ import annotations

import abc
from typing import ClassVar, Protocol

from hardware_mocks.weighing import GRAMS_PER_UNIT, Reading, Weighing

__all__ = [
    "PROTOCOLS",
    "CasContinuous",
    "MtSics",
    "NciScp12",
    "ScaleContext",
    "ScaleProtocol",
    "Toledo8217",
]

STX, ETX, CR, LF = b"\x02", b"\x03", b"\r", b"\n"
# A command line longer than this is noise, not a command.
MAX_COMMAND_BYTES = 256


class ScaleContext(Protocol):
    """What a protocol may use of the scale it runs in."""

    weighing: Weighing
    units: str
    serial: str
    model: str
    stable_timeout_s: float

    async def wait_stable(self, timeout_s: float) -> bool: ...

    def repeat(self, command: bytes | None) -> None: ...


class ScaleProtocol(abc.ABC):
    """One wire protocol: how commands are framed, how each is answered, what streams by itself."""

    name: str
    units: tuple[str, ...]
    continuous = False
    # What ends a frame, so injected line noise ends like a frame and a driver resynchronises.
    frame_end = b"\r\n"

    def split(self, buffer: bytearray) -> list[bytes]:
        """Remove and return the complete commands at the start of buffer (CR and/or LF ended)."""
        commands: list[bytes] = []
        while True:
            ends = [index for index in (buffer.find(b"\r"), buffer.find(b"\n")) if index >= 0]
            if not ends:
                if len(buffer) > MAX_COMMAND_BYTES:
                    commands.append(bytes(buffer))
                    buffer.clear()
                return commands
            end = min(ends)
            line = bytes(buffer[:end])
            del buffer[: end + 1]
            if line:
                commands.append(line)

    @abc.abstractmethod
    async def answer(self, command: bytes, scale: ScaleContext) -> bytes:
        """The scale's answer to one command (empty for none)."""

    def frame(self, scale: ScaleContext) -> bytes:
        """One frame of continuous output (only for continuous protocols)."""
        return b""


def _status_bytes(reading: Reading) -> bytes:
    moving = not reading.stable and not (reading.overload or reading.underload)
    first = 0x30 | (0x01 if moving else 0) | (0x02 if reading.at_zero else 0)
    second = 0x30 | (0x01 if reading.underload else 0) | (0x02 if reading.overload else 0)
    return bytes([first, second])


class MtSics(ScaleProtocol):
    """Mettler Toledo MT-SICS level 0/1."""

    name = "mt-sics"
    units = ("g", "kg", "lb")
    _decimals: ClassVar[dict[str, int]] = {"g": 1, "kg": 4, "lb": 4}
    _level_zero = frozenset({"@", "I0", "I1", "I2", "I3", "I4", "S", "SI", "SIR", "Z"})
    _commands = ("@", "I0", "I1", "I2", "I3", "I4", "I5", "S", "SI", "SIR", "Z", "ZI", "T", "TI", "TA", "TAC")

    def _weight(self, status: str, grams: float, unit: str, ident: str = "S") -> str:
        value = f"{grams / GRAMS_PER_UNIT[unit]:.{self._decimals[unit]}f}"
        return f"{ident} {status} {value:>10} {unit}"

    async def answer(self, command: bytes, scale: ScaleContext) -> bytes:
        return (await self._answer(command, scale)).encode("ascii", "replace") + b"\r\n"

    async def _answer(self, command: bytes, scale: ScaleContext) -> str:
        try:
            text = command.decode("ascii")
        except UnicodeDecodeError:
            return "ET"
        if not text.isprintable():
            return "ET"
        name, _, argument = text.partition(" ")
        argument = argument.strip()
        if name not in self._commands:
            return "ES"
        if argument and name != "TA":
            return "EL"
        if name != "SIR":
            scale.repeat(None)
        weighing, unit = scale.weighing, scale.units
        if name == "@":
            weighing.clear_tare()
            return f'I4 A "{scale.serial}"'
        if name.startswith("I"):
            return self._identity(name, scale)
        if name in ("S", "SI", "SIR"):
            before = weighing.reading()
            if name == "S" and not (before.stable or before.overload or before.underload):
                await scale.wait_stable(scale.stable_timeout_s)
            reading = weighing.reading()
            if name == "SIR":
                scale.repeat(b"SI")
            if reading.overload:
                return "S +"
            if reading.underload:
                return "S -"
            if name == "S" and not reading.stable:
                return "S I"
            return self._weight("S" if reading.stable else "D", reading.net_g, unit)
        if name in ("Z", "ZI"):
            if name == "Z" and not weighing.reading().stable:
                await scale.wait_stable(scale.stable_timeout_s)
            stable_before = weighing.reading().stable
            outcome = weighing.zero(immediately=name == "ZI")
            if outcome == "done" and name == "ZI":
                return f"ZI {'S' if stable_before else 'D'}"
            return (
                f"{name} " + {"done": "A", "unstable": "I", "above_range": "+", "below_range": "-"}[outcome]
            )
        if name in ("T", "TI"):
            if name == "T" and not weighing.reading().stable:
                await scale.wait_stable(scale.stable_timeout_s)
            stable_before = weighing.reading().stable
            outcome = weighing.tare(immediately=name == "TI")
            if outcome != "done":
                return f"{name} " + {"unstable": "I", "above_range": "+", "below_range": "-"}[outcome]
            status = "S" if name == "T" or stable_before else "D"
            return self._weight(status, weighing.tare_g, unit, ident=name)
        if name == "TAC":
            weighing.clear_tare()
            return "TAC A"
        return self._preset_tare(argument, scale)

    def _preset_tare(self, argument: str, scale: ScaleContext) -> str:
        weighing, unit = scale.weighing, scale.units
        if argument:
            value, _, given_unit = argument.partition(" ")
            given_unit = given_unit.strip() or unit
            try:
                grams = float(value) * GRAMS_PER_UNIT[given_unit]
            except (ValueError, KeyError):
                return "TA L"
            outcome = weighing.preset_tare(grams)
            if outcome != "done":
                return "TA " + ("+" if outcome == "above_range" else "-")
        return self._weight("A", weighing.tare_g, unit, ident="TA")

    def _identity(self, name: str, scale: ScaleContext) -> str:
        if name == "I0":
            lines = [f'I0 B {0 if c in self._level_zero else 1} "{c}"' for c in self._commands]
            lines[-1] = lines[-1].replace("I0 B", "I0 A", 1)
            return "\r\n".join(lines)
        if name == "I1":
            return 'I1 A "01" "2.20" "2.20" "1.00" "1.50"'
        if name == "I2":
            capacity = f"{scale.weighing.capacity_g:.1f}"
            return f'I2 A "{scale.model} {capacity} g"'
        if name == "I3":
            return 'I3 A "2.10 10.28.0.493.142"'
        if name == "I4":
            return f'I4 A "{scale.serial}"'
        return 'I5 A "12121306C"'


class Toledo8217(ScaleProtocol):
    """Toledo 8217 (POS scales and scanner-scales)."""

    name = "toledo-8217"
    units = ("lb", "kg")
    frame_end = b"\r"

    def split(self, buffer: bytearray) -> list[bytes]:
        # Single-letter commands with no terminator; CR, LF and other bytes are ignored.
        commands = [bytes([byte]) for byte in buffer if 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A]
        buffer.clear()
        return commands

    async def answer(self, command: bytes, scale: ScaleContext) -> bytes:
        weighing = scale.weighing
        letter = command.decode("ascii")
        refused_zero = False
        if letter == "W":
            reading = weighing.reading()
            if reading.stable and reading.net_g >= 0:
                return STX + self._weight(reading, scale.units) + CR
        elif letter == "Z":
            refused_zero = weighing.zero() in ("above_range", "below_range")
        elif letter == "T":
            weighing.tare()
        return STX + b"?" + bytes([self.status_byte(weighing.reading(), refused_zero)]) + CR

    @staticmethod
    def status_byte(reading: Reading, outside_zero_range: bool = False) -> int:
        """Bit 0 motion, 1 over capacity, 2 under zero, 3 outside zero capture range, 4 center of zero."""
        value = 0x60
        value |= 0x01 if not reading.stable and not (reading.overload or reading.underload) else 0
        value |= 0x02 if reading.overload else 0
        value |= 0x04 if reading.underload or reading.net_g < 0 else 0
        value |= 0x08 if outside_zero_range else 0
        value |= 0x10 if reading.at_zero else 0
        return value

    @staticmethod
    def _weight(reading: Reading, unit: str) -> bytes:
        # Pounds carry no unit (the 8217's US default); kilograms say so.
        if unit == "lb":
            return f"{reading.net_in('lb'):06.2f}".encode("ascii")
        return f"{reading.net_in('kg'):06.3f}kg".encode("ascii")


class NciScp12(ScaleProtocol):
    """NCI / Avery Weigh-Tronix SCP-12 (the NCI standard command set)."""

    name = "nci-scp12"
    units = ("lb", "kg", "g", "oz")
    frame_end = b"\r\x03"
    _decimals: ClassVar[dict[str, int]] = {"lb": 2, "kg": 3, "g": 0, "oz": 1}

    def split(self, buffer: bytearray) -> list[bytes]:
        return [command.strip(b"\n") for command in super().split(buffer) if command.strip(b"\n")]

    async def answer(self, command: bytes, scale: ScaleContext) -> bytes:
        weighing = scale.weighing
        letter = command.decode("ascii", "replace")
        if letter in ("W", "H"):
            reading = weighing.reading()
            if reading.overload or reading.underload:
                return self._status(reading)
            decimals = self._decimals[scale.units] + (1 if letter == "H" else 0)
            weight = f"{reading.net_in(scale.units):{7 + (1 if letter == 'H' else 0)}.{decimals}f}"
            return LF + weight.encode("ascii") + scale.units.encode("ascii") + CR + self._status(reading)
        if letter == "S":
            return self._status(weighing.reading())
        if letter == "Z":
            weighing.zero()
            return self._status(weighing.reading())
        if letter == "T":
            weighing.tare()
            return self._status(weighing.reading())
        if letter == "U":
            units = self.units
            scale.units = units[(units.index(scale.units) + 1) % len(units)]
            return LF + scale.units.encode("ascii") + CR + self._status(weighing.reading())
        return LF + b"?" + CR + ETX

    @staticmethod
    def _status(reading: Reading) -> bytes:
        return LF + _status_bytes(reading) + CR + ETX


class CasContinuous(ScaleProtocol):
    """CAS continuous output: a weight line many times a second, no request needed."""

    name = "cas"
    units = ("kg", "lb", "g")
    continuous = True
    _decimals: ClassVar[dict[str, int]] = {"kg": 3, "lb": 2, "g": 0}

    def frame(self, scale: ScaleContext) -> bytes:
        reading = scale.weighing.reading()
        out_of_range = reading.overload or reading.underload
        header = "OL" if out_of_range else "ST" if reading.stable else "US"
        mode = "NT" if reading.net_mode else "GS"
        value = reading.net_in(scale.units)
        sign = "-" if value < 0 else "+"
        number = f"{abs(value):.{self._decimals[scale.units]}f}"
        return f"{header},{mode},{sign}{number:>7}{scale.units:>2}\r\n".encode("ascii")

    async def answer(self, command: bytes, scale: ScaleContext) -> bytes:
        # The indicator's front keys, reachable as single-letter commands: zero, tare, clear tare.
        letter = command.strip().decode("ascii", "replace")
        if letter == "Z":
            scale.weighing.zero()
        elif letter == "T":
            scale.weighing.tare()
        elif letter == "C":
            scale.weighing.clear_tare()
        return b""


PROTOCOLS: dict[str, ScaleProtocol] = {
    protocol.name: protocol for protocol in (MtSics(), Toledo8217(), NciScp12(), CasContinuous())
}
