"""A tokenizer for ZPL II and the command set label templates may use.

A ZPL stream is a run of commands. Each starts with a prefix, `^` for format commands or `~` for
control commands (which a printer acts on at once, even in the middle of a label), followed by a
two-letter name; everything up to the next prefix is the command's parameters (for `^FD`, the
field data). The one exception is `^A`, the font command, whose second letter is already its first
parameter (the font name): `^A0N,30,30` is `^A` with `0N,30,30`.

`^CC`, `~CC`, `^CT`, `~CT`, `^CD` and `~CD` change the prefix and delimiter characters; this
tokenizer (and Dockside's escaping) assumes the defaults, so templates may not use them.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

__all__ = [
    "FORMAT_COMMANDS",
    "PREFIX_CHANGERS",
    "ZplCommand",
    "ZplSyntaxError",
    "tokenize",
]

# The format commands a label template may use, with what each is for (shown in error messages).
FORMAT_COMMANDS: dict[str, str] = {
    "XA": "start of label",
    "XZ": "end of label",
    "FO": "field origin",
    "FT": "field typeset (baseline origin)",
    "FD": "field data",
    "FS": "field separator",
    "FH": "field hex escapes",
    "FB": "field block (wrapped text)",
    "FR": "field reverse (white on black)",
    "FX": "comment",
    "A": "font",
    "CF": "default font",
    "CI": "character encoding",
    "PW": "print width",
    "LL": "label length",
    "LH": "label home",
    "LR": "label reverse",
    "PO": "print orientation",
    "BY": "barcode defaults",
    "BC": "Code 128 barcode",
    "B3": "Code 39 barcode",
    "BQ": "QR code",
    "GB": "graphic box or line",
    "GC": "graphic circle",
    "PQ": "print quantity",
    "PR": "print speed",
    "MD": "darkness",
    "MM": "print mode",
    "MN": "media tracking",
    "MT": "media type",
}

PREFIX_CHANGERS = frozenset({"CC", "CT", "CD"})
PREFIXES = "^~"


class ZplSyntaxError(ValueError):
    """ZPL that cannot be split into commands; `line` and `column` are 1-based."""

    def __init__(self, message: str, *, offset: int, line: int, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.line = line
        self.column = column


@dataclass(frozen=True, slots=True)
class ZplCommand:
    """One command as written: prefix, name (upper case), raw parameters and where it starts."""

    prefix: str
    name: str
    params: str
    offset: int
    line: int
    column: int

    @property
    def text(self) -> str:
        """The command as it appears in the stream (trailing line breaks dropped)."""
        return f"{self.prefix}{self.name}{self.params}".rstrip("\r\n")

    def args(self) -> list[str]:
        """The parameters split at commas, each stripped of surrounding line breaks and spaces."""
        return [part.strip() for part in self.params.strip("\r\n").split(",")]


class _Lines:
    """Offset to (line, column) for one text."""

    def __init__(self, text: str) -> None:
        self._starts = [0]
        self._starts.extend(i + 1 for i, char in enumerate(text) if char == "\n")

    def position(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self._starts, offset)
        return line, offset - self._starts[line - 1] + 1


def tokenize(text: str) -> tuple[str, list[ZplCommand]]:
    """Split a ZPL stream into the text before the first command and the commands."""
    lines = _Lines(text)
    starts = [i for i, char in enumerate(text) if char in PREFIXES]
    leading = text[: starts[0]] if starts else text
    commands: list[ZplCommand] = []
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else len(text)
        body = text[start + 1 : end]
        line, column = lines.position(start)
        if body[:1].upper() == "A" and body[1:2] != "@":
            name, params = "A", body[1:]
        else:
            name, params = body[:2].upper(), body[2:]
        if (len(name) < 2 and name != "A") or not name.isalnum() or not name.isascii():
            shown = (text[start] + body[:2]).replace("\n", "\\n")
            raise ZplSyntaxError(
                f"{shown!r} at line {line}, column {column} is not a ZPL command: a command is "
                f"{text[start]} followed by two letters or digits",
                offset=start,
                line=line,
                column=column,
            )
        commands.append(ZplCommand(text[start], name, params, start, line, column))
    return leading, commands
