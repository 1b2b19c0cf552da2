"""Times of a run: when two times are the same, and how an interval is cut into steps.

Public API:
    TIME_RTOL                         relative tolerance under which two times are one
    time_tolerance(t) -> float        the absolute tolerance near t: TIME_RTOL * max(1, |t|)
    steps_between(a, b, dt) -> int    the number of equal steps of at most dt from a to b
    output_times(end, every) -> list  0, every, 2 every, ... and end
    merge_times(times) -> list        sorted, times within the tolerance of each other merged
    contains_time(times, t) -> bool
    contains_sorted(times, t) -> bool   the same for sorted times, by bisection (a run's records)

Steps land exactly on every record and dose time: the interval between two such
times is cut into steps_between(a, b, dt) equal steps. Every module that decides
where steps fall (the run plan, the integrators, the dosing schedule, the checkpoint
clock) uses these functions, so they cannot disagree by a rounding.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence

TIME_RTOL = 1e-12


def time_tolerance(t: float) -> float:
    """Absolute tolerance for comparing times near `t`: TIME_RTOL * max(1, |t|)."""
    return TIME_RTOL * max(1.0, abs(t))


def steps_between(a: float, b: float, dt: float) -> int:
    """ceil((b - a) / dt), at least 1 when b > a, 0 otherwise; a span a rounding above
    k dt is k steps, not k + 1."""
    return max(1, math.ceil((b - a) / dt * (1 - TIME_RTOL))) if b > a else 0


def periods_passed(t: float, every: float) -> int:
    """floor(t / every), with t a rounding below k every counted as k."""
    return math.floor(t / every * (1 + TIME_RTOL))


def output_times(end: float, every: float) -> list[float]:
    """0, every, 2 every, ... up to end, and end itself; each computed as k * every (no drift)."""
    n = periods_passed(end, every)
    times = [k * every for k in range(n + 1)]
    if abs(end - times[-1]) <= time_tolerance(end):
        times[-1] = end
    else:
        times.append(end)
    return times


def merge_times(times: Iterable[float]) -> list[float]:
    """The times sorted, a time within the tolerance of the one before it dropped."""
    out: list[float] = []
    for t in sorted(times):
        if not out or t - out[-1] > time_tolerance(t):
            out.append(t)
    return out


def contains_time(times: Iterable[float], t: float) -> bool:
    """Whether one of `times` is `t` (within the tolerance)."""
    return any(abs(t - s) <= time_tolerance(t) for s in times)


def contains_sorted(times: Sequence[float], t: float) -> bool:
    """contains_time for sorted `times`, in log time (a run looks up each of its records)."""
    tol = time_tolerance(t)
    i = bisect.bisect_left(times, t - tol)
    return i < len(times) and abs(times[i] - t) <= tol
