"""What a run will do, known before it starts: the integrator, dt, records, doses, step count.

Public API:
    RunPlan                         frozen; no side effects to build
        .integrator                 the IntegratorChoice that runs (name, reason, implicit sets, bound)
        .candidates                 both integrators as this config would run them
        .dt, .dt_bound, .limited_by, .snapshot_times, .series_times, .dose_times
        .estimated_steps, .max_change, .events
    make_plan(config, model, grid, static) -> RunPlan
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
from dataclasses import dataclass

from solver.config import RunConfig, TimeConfig
from solver.fields.static import StaticFields
from solver.grid import Grid
from solver.integrators.choice import IntegratorChoice, choose_integrator, integrator_candidates
from solver.integrators.stability import StepBound, choose_dt
from solver.integrators.systemic import SystemicRuntime
from solver.model import Model
from solver.run.sizes import check_records, check_steps
from solver.timing import merge_times, output_times, steps_between

log = logging.getLogger(__name__)


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


def make_plan(config: RunConfig, model: Model, grid: Grid, static: StaticFields) -> RunPlan:
    """The plan of this config, from its (already built) static fields.

    Raises:
        ConfigError: a fixed time.dt above the stability bound of the chosen integrator.
    """
    time = config.time
    runtime = SystemicRuntime(model)
    runtime.apply_boluses(0.0)
    candidates = integrator_candidates(model, grid, static.initial, static.maps, runtime.values(0.0), time)
    choice = choose_integrator(candidates, time, model.names)
    dt = choose_dt(time, choice.bound)
    end = time.end
    snap_every = config.output.snapshot_every or end / 10
    series_every = config.output.series_every or min(snap_every, end / 100)
    check_records(end, snap_every, series_every)  # before the lists are built
    snaps = output_times(end, snap_every)
    series = output_times(end, series_every)
    if not math.isfinite(dt):  # nothing limits dt (no transport, no rates): one step per record
        dt = series_every
    check_steps(end, dt, "as configured" if time.dt != "auto" else f"auto: set by {choice.bound.limited_by}")
    schedule = model.schedule
    doses = tuple(t for t in (schedule.event_times() if schedule else ()) if 0.0 <= t <= end)
    events = merge_times([0.0, *snaps, *series, *doses])
    return RunPlan(choice, candidates, dt, tuple(snaps), tuple(series), doses, steps_for(dt, events),
                   time.max_change)


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
