"""Tables and cells as `ship` prints them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence


def printable(value: object) -> str:
    """A cell as text with control characters escaped: a platform's message or a mart
    value must not move the cursor or recolour the terminal."""
    text = str(value)
    if not any(ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 for char in text):
        return text
    return "".join(char if not (ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0)
                   else f"\\x{ord(char):02x}" for char in text)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = ([[printable(value) for value in headers]]
             + [[printable(value) for value in row] for row in rows])
    widths = [max(len(row[index]) for row in cells) for index in range(len(headers))]
    lines = []
    for row in cells:
        lines.append("  ".join(
            value.rjust(width) if value.replace(",", "").isdigit() else value.ljust(width)
            for value, width in zip(row, widths, strict=True)
        ).rstrip())
    return "\n".join(lines)


def time_cell(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"
