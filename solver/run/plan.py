"""What a run will do, known before it starts: the integrator, dt, records, doses, step count.

Public API:
    RunPlan                         frozen; no side effects to build
        .integrator                 the IntegratorChoice that runs (name, reason, implicit sets, bound)
        .candidates                 both integrators as this config would run them
        .dt, .dt_bound, .limited_by, .snapshot_times, .series_times, .dose_times
        .estimated_steps, .max_change, .events
    make_plan(config, model, grid, static) -> RunPlan
    record_times(end, snapshot_every, series_every) -> (snapshots, series, series interval)
    steps_for(dt, events) -> int    equal steps of at most dt landing on every event
    integrator_dt(time, bound, events) -> float   dt of an integrator with this bound

Steps land exactly on every record (time-series record or snapshot) and on every dose
start and stop: the interval between two such events is cut into
solver.timing.steps_between(a, b, dt) equal steps. dt is time.safety x the stability
bound of the chosen integrator (dt: auto) or the configured dt, which may not exceed it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from solver.config import RunConfig, TimeConfig
from solver.errors import ConfigError
from solver.fields.static import StaticFields
from solver.grid import Grid
from solver.integrators.choice import IntegratorChoice, choose_integrator, integrator_candidates
from solver.integrators.globals import GlobalsEvaluator
from solver.integrators.stability import StepBound, choose_dt
from solver.integrators.systemic import SystemicRuntime
from solver.model import Model
from solver.run.sizes import check_records, check_steps
from solver.timing import merge_times, output_times, steps_between

log = logging.getLogger(__name__)

# time.rtol: auto with order 2 (docs/numerics.md, "Error control", says how it was chosen),
# and the default atol of a species: rtol * ATOL_FRACTION * its scale (error_scales)
DEFAULT_RTOL = 0.05
ATOL_FRACTION = 1e-3


@dataclass(frozen=True)
class RunPlan:
    """What a run will do, known before it starts."""

    integrator: IntegratorChoice
    candidates: dict[str, IntegratorChoice]
    dt: float
    snapshot_times: tuple[float, ...]
    series_times: tuple[float, ...]
    dose_times: tuple[float, ...]  # every dose start and stop up to the end time
    estimated_steps: int
    max_change: float | None = None  # step-size control (time.max_change); None: equal steps
    order: int = 1  # time.order, auto resolved: 2 with imex, 1 with the explicit integrator
    rtol: float | None = None  # error control (order 2); None: equal steps of dt
    atol: dict[int, float] = field(default_factory=dict)  # per species index, the species' units
    max_courant: float | None = None  # the implicit transport's accuracy limit (imex + implicit chemotaxis)

    def step_summary(self, digits: int = 6) -> str:
        """"dt = 0.01", or "dt up to 0.01" with how steps are chosen below it."""
        if not self.controlled:
            return f"dt = {self.dt:.{digits}g}"
        how = []
        if self.rtol is not None:
            how.append(f"error control rtol {self.rtol:g}")
        if self.max_change is not None:
            how.append(f"max_change {self.max_change:g}")
        if self.max_courant is not None:
            how.append(f"Courant <= {self.max_courant:g}")
        return f"dt up to {self.dt:.{digits}g} ({', '.join(how)})"

    @property
    def controlled(self) -> bool:
        """Whether steps are chosen per step (error control, max_change, a Courant limit)."""
        return self.rtol is not None or self.max_change is not None or self.max_courant is not None

    @property
    def dt_bound(self) -> float:
        return self.integrator.bound.dt

    @property
    def limited_by(self) -> str:
        return self.integrator.bound.limited_by

    @property
    def events(self) -> list[float]:
        """Every record time (series and snapshots) in order: the loop of Simulation.run."""
        return merge_times([*self.series_times, *self.snapshot_times])

    @property
    def stepping_events(self) -> list[float]:
        """Every time a step lands on: t = 0, the records and the dose starts and stops."""
        return merge_times([0.0, *self.snapshot_times, *self.series_times, *self.dose_times])


def steps_for(dt: float, events: list[float]) -> int:
    """Equal steps of at most dt between each pair of consecutive events, summed."""
    return sum(steps_between(a, b, dt) for a, b in zip(events, events[1:]))


def integrator_dt(time: TimeConfig, bound: StepBound, events: list[float]) -> float:
    """The dt an integrator with this bound runs at: auto, or the configured dt (capped at
    the bound for the comparison of integrators); one step per interval when nothing
    limits dt."""
    dt = time.safety * bound.dt if time.dt == "auto" else min(float(time.dt), bound.dt)
    if not math.isfinite(dt):
        dt = min(b - a for a, b in zip(events, events[1:]) if b > a)
    return dt


def record_times(end: float, snapshot_every: float | None, series_every: float | None
                 ) -> tuple[list[float], list[float], float]:
    """(snapshot times, time-series record times, series interval) of a run to `end`; the
    intervals default to end/10 and min(snapshot interval, end/100)."""
    snap_every = snapshot_every or end / 10
    series_every = series_every or min(snap_every, end / 100)
    check_records(end, snap_every, series_every)  # before the lists are built
    return output_times(end, snap_every), output_times(end, series_every), series_every


def make_plan(config: RunConfig, model: Model, grid: Grid, static: StaticFields) -> RunPlan:
    """The plan of this config, from its (already built) static fields.

    Raises:
        ConfigError: a fixed time.dt above the stability bound of the chosen integrator.
    """
    time = config.time
    runtime = SystemicRuntime(model, GlobalsEvaluator(model, grid), static.maps)
    runtime.apply_boluses(0.0)
    candidates = integrator_candidates(model, grid, static.initial, static.maps,
                                       runtime.values(0.0, fields=static.initial), time)
    choice = choose_integrator(candidates, time, model.names)
    order, rtol, atol = _accuracy(time, choice, model, static)
    dt = choose_dt(time, choice.bound)
    end = time.end
    snaps, series, series_every = record_times(end, config.output.snapshot_every, config.output.series_every)
    if not math.isfinite(dt):  # nothing limits dt (no transport, no rates): one step per record
        dt = series_every
    check_steps(end, dt, "as configured" if time.dt != "auto" else f"auto: set by {choice.bound.limited_by}")
    schedule = model.schedule
    doses = tuple(t for t in (schedule.event_times() if schedule else ()) if 0.0 <= t <= end)
    events = merge_times([0.0, *snaps, *series, *doses])
    courant = time.max_courant if choice.implicit_chemotaxis else None
    return RunPlan(choice, candidates, dt, tuple(snaps), tuple(series), doses, steps_for(dt, events),
                   time.max_change, order, rtol, atol, courant)


def _accuracy(time: TimeConfig, choice: IntegratorChoice, model: Model,
              static: StaticFields) -> tuple[int, float | None, dict[int, float]]:
    """(order, rtol, atol by species index) of the run.

    order auto: 2 with imex, 1 with the explicit integrator (held by stability far below
    what accuracy needs). Error control needs order 2: rtol auto is DEFAULT_RTOL at order
    2 and none at order 1; a number at order 1 is refused. A species without an atol of
    its own gets rtol * ATOL_FRACTION * its scale (error_scales): errors far below what
    the species ever amounts to do not hold the step down, so a field that starts at 0
    (a drug before its first dose) can be resolved.

    Raises:
        ConfigError: rtol given with order 1, or atol naming an unknown species.
    """
    order = (2 if choice.implicit_diffusion else 1) if time.order == "auto" else int(time.order)
    rtol = time.rtol
    if rtol == "auto":
        rtol = DEFAULT_RTOL if order == 2 else None
    elif order == 1 and rtol is not None:
        raise ConfigError(
            f"time.rtol = {rtol:g} needs time.order: 2 (error control uses the second-order step's "
            "embedded estimate); use order: 2 (or auto with imex), or rtol: null")
    atol: dict[int, float] = {}
    if isinstance(time.atol, dict):
        for name, value in time.atol.items():
            if name not in model.names:
                raise ConfigError(f"time.atol: {name!r} is not a species; species: {', '.join(model.names)}")
            atol[model.index(name)] = value
    elif time.atol is not None:
        atol = {i: float(time.atol) for i in range(len(model.names))}
    if rtol is not None:
        scales = error_scales(model, static)
        atol = {i: atol.get(i, rtol * ATOL_FRACTION * scales[i]) for i in range(len(model.names))}
    return order, rtol, atol


def error_scales(model: Model, static: StaticFields) -> list[float]:
    """Per species, the size it is measured against when nothing else is known: the
    largest |initial value|; for a species that starts at 0, the largest plasma level of
    the agents in its reaction over the schedule (a drug in tissue follows its plasma
    level); else 1 (in the species' units)."""
    import numpy as np
    import sympy as sp

    from solver.systemic.pk import integrate_plasma

    plasma: dict[str, float] = {}
    schedule = model.schedule
    if schedule is not None:
        for agent in model.agents:
            if agent.pk is not None and agent.name in schedule.agents():
                times = sorted({0.0, *schedule.event_times()})
                plasma[agent.name] = float(np.max(integrate_plasma(agent.pk, schedule, agent.name, times)))
    out = []
    for i, species in enumerate(model.species):
        largest = float(np.max(np.abs(static.initial[i]))) if static.initial[i].size else 0.0
        if largest > 0:
            out.append(largest)
            continue
        used = {str(s) for s in species.reaction.free_symbols} if isinstance(species.reaction, sp.Basic) else set()
        levels = [plasma[a] for a in plasma if a in used and plasma[a] > 0]
        out.append(max(levels) if levels else 1.0)
    return out


def log_choice(plan: RunPlan, names: tuple[str, ...], auto: bool) -> None:
    """Log which integrator runs and why (the run banner and --dry-run print it too)."""
    choice = plan.integrator
    if auto:
        log.info("integrator auto: %s, %s", choice.name, choice.reason)
    if choice.name == "imex":
        chemotaxis = ", ".join(names[i] for i in sorted(choice.implicit_chemotaxis))
        log.info("imex: implicit diffusion for %s%s",
                 ", ".join(names[i] for i in sorted(choice.implicit_diffusion)) or "no species",
                 f"; with chemotaxis for {chemotaxis}" if chemotaxis else "")


__all__ = ["RunPlan", "integrator_dt", "log_choice", "make_plan", "steps_for"]
