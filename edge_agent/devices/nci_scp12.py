"""The driver for NCI / Avery Weigh-Tronix scales speaking SCP-12 (the NCI standard, 9600 7E1).

Commands are a letter and CR (`W` weigh, `S` status, `Z` zero, `T` tare). A reply is one or two
LF..CR records and an ETX: `LF weight unit CR` (only with `W`) then `LF status CR ETX`. The
status is two or three bytes with bits 4 and 5 always set:

    byte 1: bit 0 motion, bit 1 at zero, bit 2 RAM error, bit 3 EEPROM error
    byte 2: bit 0 under capacity, bit 1 over capacity, bit 2 ROM error, bit 3 faulty calibration
    byte 3 (optional): bits 0-1 range, bit 2 net weight, bit 3 initial zero error

`LF ? CR ETX` means the command was not understood. Bytes are masked to 7 bits (parity).
`parse_nci_reply` is a pure function; what SCP-12 shares with the 8217 (letter commands, the
weight text, the status meanings, the driver) is in `letter_command_scale`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .letter_command_scale import LetterCommandScale, LetterProtocol, ScaleStatus, split_weight
from .scale import grams_from

__all__ = ["NciReply", "NciScp12Scale", "parse_nci_reply", "weight_from_nci"]

TERMINATOR = b"\x03"
_RECORD = re.compile(rb"\n([^\n\r]*)\r")
MOTION, AT_ZERO, RAM_ERROR, EEPROM_ERROR = 1, 2, 4, 8
UNDER_CAPACITY, OVER_CAPACITY, ROM_ERROR, BAD_CALIBRATION = 1, 2, 4, 8
NCI = LetterProtocol("NCI scale", "NCI (SCP-12)", command_end=b"\r", terminator=TERMINATOR, shown_bytes=32)


@dataclass(frozen=True)
class NciReply:
    """The status bytes of a reply and, after `W`, the weight record's text."""

    status: bytes
    weight: str | None = None

    def scale_status(self) -> ScaleStatus:
        """What the status bytes say."""
        first, second = self.status[0], self.status[1]
        return ScaleStatus(
            moving=bool(first & MOTION),
            overload=bool(second & OVER_CAPACITY),
            underload=bool(second & UNDER_CAPACITY),
            fault=bool(first & (RAM_ERROR | EEPROM_ERROR) or second & (ROM_ERROR | BAD_CALIBRATION)),
        )


def parse_nci_reply(frame: bytes) -> NciReply:
    """The records of one reply (up to ETX, bytes already 7-bit); raises ScaleError on anything else."""
    records = _RECORD.findall(frame)
    if not records:
        raise NCI.garbled(frame, "which has no LF..CR record")
    status = records[-1]
    if status == b"?":
        raise NCI.rejected()
    if not 2 <= len(status) <= 4 or any(b & 0x30 != 0x30 or b > 0x7F for b in status):
        raise NCI.garbled(frame, "whose last record is not a status")
    weight = None
    if len(records) >= 2:
        try:
            weight = records[-2].decode("ascii")
        except UnicodeDecodeError as exc:
            raise NCI.garbled(frame, "whose weight is not text") from exc
    return NciReply(status=bytes(status), weight=weight)


def weight_from_nci(reply: NciReply) -> tuple[int, bool]:
    """Grams and stability from the reply to `W`; ScaleError when it holds no usable weight."""
    status = reply.scale_status()
    refusal = status.refusal()
    if refusal is not None:
        raise refusal
    if reply.weight is None:
        raise status.without_weight()
    value, unit = split_weight(reply.weight) or ("", None)
    if unit is None:  # SCP-12 always sends the unit
        raise NCI.garbled(reply.weight.encode(), "which is not a weight")
    return grams_from(value, unit), not status.moving


class NciScp12Scale(LetterCommandScale):
    """An NCI (SCP-12) scale on a serial port."""

    PROTOCOL = NCI

    def weight_of(self, frame: bytes) -> tuple[int, bool]:
        return weight_from_nci(parse_nci_reply(frame))

    def status_of(self, frame: bytes) -> ScaleStatus:
        return parse_nci_reply(frame).scale_status()
