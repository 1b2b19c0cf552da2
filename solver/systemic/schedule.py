"""Dosing schedules: validated treatment entries expanded into bolus events and infusions.

A treatment entry (`DoseSpec`) is either a bolus, an amount given instantly, or an
infusion, an amount per unit time given at a constant rate over `duration`.  Each
entry repeats `count` times, every `every` time units, from `start`:

    t_k = start + k * every,   k = 0, ..., count - 1

(computed from `start` each time, never accumulated, so there is no drift).
`expand_schedule` checks every entry and returns a `Schedule`, whose input is
piecewise constant between its `event_times()`: the step control lands exactly on
those times, so the plasma ODEs see a constant infusion rate on every step.

Conventions:
    * An infusion is on over the half-open interval [start, stop): at `stop` the rate
      is already off, at `start` it is already on.
    * Times closer than solver.timing.time_tolerance(t) are one time: all the times of a schedule
      are merged to a single representative before use, so that an infusion stopping
      at (k + 1) * every and the next starting at start + (k + 1) * every are exactly
      back to back, with no zero-length step or double rate between them.
    * Units are those of the config (e.g. days; mg or IU; mg/day or IU/day).
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

from solver.errors import ConfigError
from solver.limits import limit, refuse
from solver.timing import time_tolerance

log = logging.getLogger(__name__)


class DoseKind(str, Enum):
    """How a dose is given."""

    BOLUS = "bolus"
    INFUSION = "infusion"


@dataclass(frozen=True)
class DoseSpec:
    """One treatment entry, as written in the config's `treatment` list.

    Attributes:
        agent: Name of the drug or cell product (e.g. "chemo", "il2").
        kind: "bolus" or "infusion".
        dose: Amount per bolus (bolus only).
        dose_rate: Amount per unit time (infusion only).
        duration: Length of each infusion (infusion only), > 0.
        start: Time of the first dose.
        every: Period between repeats; required and > 0 when count > 1.
        count: Number of doses, >= 1.
    """

    agent: str
    kind: str
    dose: float | None = None
    dose_rate: float | None = None
    duration: float | None = None
    start: float = 0.0
    every: float | None = None
    count: int = 1


class Bolus(NamedTuple):
    """An amount given instantly at `time`."""

    time: float
    amount: float


class Infusion(NamedTuple):
    """A constant input `rate` (amount per time) on [start, stop)."""

    start: float
    stop: float
    rate: float


@dataclass(frozen=True)
class Schedule:
    """Expanded dosing for every agent; build it with `expand_schedule`.

    Attributes:
        boluses: Per agent, the bolus events sorted by time.
        infusions: Per agent, the infusion intervals sorted by start.
    """

    boluses: dict[str, tuple[Bolus, ...]]
    infusions: dict[str, tuple[Infusion, ...]]
    _events: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _rate_breaks: dict[str, list[float]] = field(init=False, repr=False, compare=False)
    _rate_values: dict[str, list[float]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        times = {b.time for bs in self.boluses.values() for b in bs}
        for infs in self.infusions.values():
            for inf in infs:
                times.update((inf.start, inf.stop))
        object.__setattr__(self, "_events", tuple(sorted(times)))
        breaks: dict[str, list[float]] = {}
        values: dict[str, list[float]] = {}
        for agent, infs in self.infusions.items():
            edges = sorted({t for inf in infs for t in (inf.start, inf.stop)})
            # Rate on [edges[i], edges[i+1]); overlapping infusions add up (in list order).
            rates = _rates_at(infs, edges)
            breaks[agent], values[agent] = edges, rates
        object.__setattr__(self, "_rate_breaks", breaks)
        object.__setattr__(self, "_rate_values", values)

    def agents(self) -> tuple[str, ...]:
        """Names of the agents that receive any dose, sorted."""
        return tuple(sorted(set(self.boluses) | set(self.infusions)))

    def event_times(self) -> tuple[float, ...]:
        """Sorted, unique times of every bolus, infusion start and infusion stop.

        An infusion stop may lie after the end time (the infusion runs past it).
        """
        return self._events

    def next_event(self, t: float) -> float | None:
        """First event time later than `t` (beyond its tolerance), or None."""
        i = bisect.bisect_right(self._events, t + time_tolerance(t))
        return self._events[i] if i < len(self._events) else None

    def infusion_rate(self, agent: str, t: float) -> float:
        """Total infusion rate of `agent` at time `t` (0 for an agent without infusions).

        Piecewise constant and right-continuous: each infusion counts on [start, stop).
        """
        edges = self._rate_breaks.get(agent)
        if not edges:
            return 0.0
        i = bisect.bisect_right(edges, t) - 1
        return self._rate_values[agent][i] if i >= 0 else 0.0

    def boluses_at(self, agent: str, t: float) -> float:
        """Total amount of `agent` given as boluses at `t`, within `time_tolerance(t)`."""
        tol = time_tolerance(t)
        boluses = self.boluses.get(agent, ())  # sorted by time: only those near t are summed
        first = bisect.bisect_left(boluses, (t - 2 * tol,))
        last = bisect.bisect_right(boluses, (t + 2 * tol, math.inf))
        return sum(b.amount for b in boluses[first:last] if abs(b.time - t) <= tol)


def _rates_at(infs: tuple[Infusion, ...], edges: list[float]) -> list[float]:
    """At each edge, the sum of the rates of the infusions on at it ([start, stop)), added in
    the order of `infs`; a sweep over the edges keeps the work near n log n."""
    order = sorted(range(len(infs)), key=lambda k: infs[k].start)
    active: set[int] = set()
    rates, next_start = [], 0
    for t in edges:
        while next_start < len(order) and infs[order[next_start]].start <= t:
            active.add(order[next_start])
            next_start += 1
        active = {k for k in active if t < infs[k].stop}
        rates.append(sum(infs[k].rate for k in sorted(active)))
    return rates


def _fail(i: int, spec: DoseSpec, message: str) -> ConfigError:
    return ConfigError(f"treatment[{i}] (agent {spec.agent}): {message}")


def _check_positive(i: int, spec: DoseSpec, name: str, value: float | None) -> float:
    """Return `value` if it is a finite number > 0, else raise naming the entry."""
    if value is None:
        raise _fail(i, spec, f"{spec.kind} needs {name}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(i, spec, f"{name} must be a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise _fail(i, spec, f"{name} must be > 0, got {value!r}")
    return float(value)


def _check_spec(i: int, spec: DoseSpec) -> DoseKind:
    """Validate one entry's fields on their own; return its kind."""
    if not isinstance(spec.agent, str) or not spec.agent:
        raise _fail(i, spec, f"agent must be a non-empty name, got {spec.agent!r}")
    try:
        kind = DoseKind(spec.kind)
    except ValueError:
        valid = ", ".join(k.value for k in DoseKind)
        raise _fail(i, spec, f"unknown kind {spec.kind!r}; expected one of: {valid}") from None
    if kind is DoseKind.BOLUS:
        _check_positive(i, spec, "dose", spec.dose)
        if spec.dose_rate is not None or spec.duration is not None:
            raise _fail(i, spec, "dose_rate and duration apply to infusions; a bolus takes dose")
    else:
        _check_positive(i, spec, "dose_rate", spec.dose_rate)
        _check_positive(i, spec, "duration", spec.duration)
        if spec.dose is not None:
            raise _fail(i, spec, "an infusion takes dose_rate and duration, not dose")
    if isinstance(spec.start, bool) or not isinstance(spec.start, (int, float)):
        raise _fail(i, spec, f"start must be a number, got {spec.start!r}")
    if not math.isfinite(spec.start):
        raise _fail(i, spec, f"start must be finite, got {spec.start!r}")
    if isinstance(spec.count, bool) or not isinstance(spec.count, int) or spec.count < 1:
        raise _fail(i, spec, f"count must be an integer >= 1, got {spec.count!r}")
    if spec.count > 1 and spec.every is None:
        raise _fail(i, spec, f"every is required when count > 1 (count is {spec.count})")
    if spec.every is not None:
        every = _check_positive(i, spec, "every", spec.every)
        if kind is DoseKind.INFUSION and spec.count > 1 and spec.duration > every:
            raise _fail(
                i,
                spec,
                f"infusion duration {spec.duration:g} is longer than every {every:g}; "
                "the repeats would overlap",
            )
    return kind


def _dose_times(i: int, spec: DoseSpec, t_start: float, t_end: float) -> list[float]:
    """Start times t_k = start + k * every of an entry; each must lie in [t_start, t_end)."""
    times = [spec.start + k * (spec.every or 0.0) for k in range(spec.count)]
    for k, t in enumerate(times, start=1):
        if t < t_start - time_tolerance(t_start):
            raise _fail(i, spec, f"dose {k} at t={t:g} is before the start time {t_start:g}")
        if t >= t_end - time_tolerance(t_end):
            raise _fail(
                i,
                spec,
                f"dose {k} at t={t:g} is at or after the end time {t_end:g}; "
                "lower count or raise time.end",
            )
    return times


def _check_dose_count(specs: list[DoseSpec]) -> None:
    """Refuse, before expanding anything, more doses in all than limit("doses")."""
    total = 0
    for i, spec in enumerate(specs):
        if isinstance(spec.count, int) and not isinstance(spec.count, bool):
            total += max(spec.count, 0)
        if total > limit("doses"):
            raise _fail(i, spec, f"count {spec.count} makes {total} doses in all; {refuse('doses')}")


def _merge_close_times(times: Iterable[float]) -> dict[float, float]:
    """Map each time to the first of its cluster of times within `time_tolerance`."""
    mapping: dict[float, float] = {}
    rep = None
    for t in sorted(set(times)):
        if rep is None or t - rep > time_tolerance(rep):
            rep = t
        mapping[t] = rep
    return mapping


def expand_schedule(
    specs: Iterable[DoseSpec],
    t_end: float,
    allow_overlap: bool = False,
    *,
    t_start: float = 0.0,
) -> Schedule:
    """Validate treatment entries and expand them into bolus events and infusions.

    Args:
        specs: The config's treatment entries, in order (their index names them in
            error messages, as `treatment[i]`).
        t_end: End time of the run; every dose must start before it.
        allow_overlap: Let infusions of one agent overlap (their rates add up).
        t_start: Start time of the run; no dose may start before it.

    Returns:
        The expanded `Schedule`.

    Raises:
        ConfigError: One line naming the entry: non-positive dose, rate, duration or
            every, count < 1, unknown kind, a dose outside [t_start, t_end), an
            infusion longer than its period, or overlapping infusions of one agent.
    """
    if not (math.isfinite(t_start) and math.isfinite(t_end) and t_end > t_start):
        raise ConfigError(f"time.end must be finite and > {t_start:g}, got {t_end!r}")
    raw_boluses: list[tuple[str, float, float]] = []
    raw_infusions: list[tuple[int, str, float, float, float]] = []
    specs = list(specs)
    _check_dose_count(specs)
    for i, spec in enumerate(specs):
        kind = _check_spec(i, spec)
        for t in _dose_times(i, spec, t_start, t_end):
            if kind is DoseKind.BOLUS:
                raw_boluses.append((spec.agent, t, float(spec.dose)))
            else:
                stop = t + spec.duration
                raw_infusions.append((i, spec.agent, t, stop, float(spec.dose_rate)))

    snap = _merge_close_times(
        [t for _, t, _ in raw_boluses] + [t for *_, a, b, _ in raw_infusions for t in (a, b)]
    )
    boluses: dict[str, list[Bolus]] = {}
    for agent, t, amount in raw_boluses:
        boluses.setdefault(agent, []).append(Bolus(snap[t], amount))
    infusions: dict[str, list[tuple[int, Infusion]]] = {}
    for i, agent, a, b, rate in raw_infusions:
        if snap[b] <= snap[a]:
            raise _fail(i, specs[i], f"duration {b - a:g} is too short to resolve at t={a:g}")
        infusions.setdefault(agent, []).append((i, Infusion(snap[a], snap[b], rate)))

    for agent, entries in infusions.items():
        entries.sort(key=lambda e: (e[1].start, e[1].stop))
        if allow_overlap:
            continue
        for (i_prev, prev), (i_next, nxt) in itertools.pairwise(entries):
            if nxt.start < prev.stop:
                raise _fail(
                    i_next,
                    specs[i_next],
                    f"infusion [{nxt.start:g}, {nxt.stop:g}) overlaps infusion "
                    f"[{prev.start:g}, {prev.stop:g}) of treatment[{i_prev}]; "
                    "space them out or allow overlapping infusions",
                )

    schedule = Schedule(
        boluses={a: tuple(sorted(bs)) for a, bs in boluses.items()},
        infusions={a: tuple(inf for _, inf in es) for a, es in infusions.items()},
    )
    log.debug(
        "expanded %d treatment entries into %d boluses and %d infusions on [%g, %g)",
        len(specs),
        len(raw_boluses),
        len(raw_infusions),
        t_start,
        t_end,
    )
    return schedule
