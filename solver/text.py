"""Message helpers: every message tumorsim shows a user is one short line.

Public API:
    first_line(text) -> str          the first non-empty line of a (library's) message
    one_line(text) -> str            a multi-line message joined into one line
    shown(value, limit=80) -> str    a user's value as it appears in a message, bounded
    format_bytes(n) -> str           1536 -> '1.5 KiB'
    duration(seconds) -> str         12.3 -> '12 s', 3725 -> '1:02:05'
    display_unit(unit) -> str        "um" -> "µm", as printed on an axis
    with_unit(label, unit) -> str    "label [unit]", or the bare label
    LogLine                          logging.Formatter: `tumorsim: warning: ...`, as the
                                     error lines (no timestamp; tracebacks under --verbose)

`shown` never builds the whole repr of a large value: reprlib stops after a few
levels and items, so a deeply nested or huge config value (a YAML alias bomb, a
megabyte string) costs bounded time and gives a bounded line.
"""

from __future__ import annotations

import logging
import math
import reprlib
from typing import Any

_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxdict = 4
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = 6
_REPR.maxstring = 120
_REPR.maxother = 120
_REPR.maxlong = 60


def first_line(text: object) -> str:
    """The first non-empty line of `text`, stripped (the name of its type when empty)."""
    for line in str(text).splitlines():
        if line.strip():
            return line.strip()
    return type(text).__name__ if isinstance(text, BaseException) else ""


def one_line(text: object) -> str:
    """`text` with its lines stripped and joined by spaces."""
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def shown(value: Any, limit: int = 80) -> str:
    """repr of `value` for a message, at most `limit` characters (cut with '...')."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KiB' (binary prefixes)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def duration(seconds: float) -> str:
    """12.3 -> '12 s'; 3725 -> '1:02:05'."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.0f} s"
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}"


_UNIT_DISPLAY = {"um": "\u00b5m", "micrometre": "\u00b5m", "micrometer": "\u00b5m", "micron": "\u00b5m"}


def display_unit(unit: str) -> str:
    """The unit as it should be printed on an axis ("um" becomes "µm")."""
    return _UNIT_DISPLAY.get(unit.strip(), unit.strip())


def with_unit(label: str, unit: str) -> str:
    """"label [unit]", or the bare label when the unit is empty."""
    unit = display_unit(unit)
    return f"{label} [{unit}]" if unit else label


class LogLine(logging.Formatter):
    """A log record as the command line prints it: `tumorsim: warning: ...` (the level in
    lower case, no timestamp or logger name), like `tumorsim: error: ...`; an exception
    logged under --verbose keeps its traceback after the line."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"tumorsim: {record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line
