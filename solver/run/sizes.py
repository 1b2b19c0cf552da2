"""How much a run's plan asks for, refused past the limits before any list is built.

Public API:
    check_records(end, snapshot_every, series_every)   ConfigError past limit("records")
    check_steps(end, dt, dt_source)                     ConfigError past limit("steps")

The plan lists every record time and cuts every interval into steps; a config can ask for
1e13 records (`series_every: 1e-7` to `end: 1e6`) or 1e300 steps (`dt: 1e-300`) in a few
characters. These checks divide before anything is listed, so the refusal is immediate,
and they name the keys and the limit (solver/limits.py: TUMORSIM_MAX_RECORDS, _STEPS).
"""

from __future__ import annotations

import math

from solver.errors import ConfigError
from solver.limits import limit, refuse


def _count(end: float, every: float) -> float:
    """end / every as a float (inf when it overflows), the number of records it gives less one."""
    try:
        return end / every
    except (OverflowError, ZeroDivisionError):
        return math.inf


def check_records(end: float, snapshot_every: float, series_every: float) -> None:
    """Refuse a plan with more records (snapshots and time-series records) than the limit.

    Raises:
        ConfigError: naming output.snapshot_every / output.series_every, time.end and the limit.
    """
    snapshots, series = _count(end, snapshot_every) + 1, _count(end, series_every) + 1
    if snapshots + series > limit("records"):
        key, every, n = (("output.snapshot_every", snapshot_every, snapshots) if snapshots >= series
                         else ("output.series_every", series_every, series))
        raise ConfigError(f"{key}: {every:g} with time.end {end:g} gives {n:.3g} records; {refuse('records')}")


def check_steps(end: float, dt: float, dt_source: str) -> None:
    """Refuse a plan of more time steps than the limit (dt from time.dt or the stability bound).

    Raises:
        ConfigError: naming time.dt (and what set it), time.end and the limit.
    """
    steps = _count(end, dt)
    if not steps <= limit("steps"):
        raise ConfigError(f"time.dt: {dt:.3g} ({dt_source}) with time.end {end:g} gives {steps:.3g} steps; "
                          f"{refuse('steps')}")
