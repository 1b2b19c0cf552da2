"""A run from config to files: config -> model -> backend -> integrator -> writer.

Public API:
    Simulation(config, out_dir=None, overwrite=False)
        .plan            dt, its bound and what sets it, step count, output times
        .start(backend) -> RunningState      fields on the device + systemic runtime
        .advance(state, t_end)               steps, landing on every dose start/stop
        .evolve(t_end) -> np.ndarray         in memory, no files
        .run() -> RunSummary                 the whole run with its files
    RunSummary           where the files are, and what happened
    output_times(end, every) -> list[float]
"""

from __future__ import annotations

import json
import logging
import math
import time as wallclock
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from solver import __version__
from solver.backends.base import Backend
from solver.backends.registry import get_backend
from solver.config import RunConfig
from solver.grid import Grid
from solver.integrators.explicit import ExplicitIntegrator, FieldState, choose_dt, explicit_stability_bound
from solver.io.hdf5_writer import RunWriter
from solver.io.run_folder import RUN_FILE, prepare_run_folder
from solver.diagnostics import DiagnosticsEvaluator
from solver.model import build_model
from solver.systemic.runtime import SystemicRuntime

log = logging.getLogger(__name__)


def output_times(end: float, every: float) -> list[float]:
    """0, every, 2 every, ... up to end, and end itself; each computed as k * every (no drift)."""
    n = math.floor(end / every * (1 + 1e-12))
    times = [k * every for k in range(n + 1)]
    if abs(end - times[-1]) <= 1e-12 * max(1.0, end):
        times[-1] = end
    else:
        times.append(end)
    return times


@dataclass(frozen=True)
class RunPlan:
    """What a run will do, known before it starts."""

    dt: float
    dt_bound: float
    limited_by: str
    snapshot_times: tuple[float, ...]
    series_times: tuple[float, ...]
    estimated_steps: int


@dataclass
class RunSummary:
    """What a finished run reports."""

    out_dir: Path
    run_file: Path
    backend: str
    device: str
    steps: int
    dt: float
    t_end: float
    wall_seconds: float
    final_totals: dict[str, float] = field(default_factory=dict)
    final_min: dict[str, float] = field(default_factory=dict)
    final_max: dict[str, float] = field(default_factory=dict)
    final_diagnostics: dict[str, float] = field(default_factory=dict)


def _merge(a: list[float], b: list[float]) -> list[float]:
    out: list[float] = []
    for t in sorted(a + b):
        if not out or t - out[-1] > 1e-12 * max(1.0, abs(t)):
            out.append(t)
    return out


def _contains(times: list[float], t: float) -> bool:
    return any(abs(t - s) <= 1e-12 * max(1.0, abs(t)) for s in times)


@dataclass
class RunningState:
    """Everything that evolves during a run: device fields and the systemic scalars."""

    integrator: ExplicitIntegrator
    fields: FieldState
    systemic: SystemicRuntime

    @property
    def backend(self) -> Backend:
        return self.integrator.backend


class Simulation:
    """Builds everything a run needs from a validated config; `run()` does the stepping."""

    def __init__(self, config: RunConfig, out_dir: str | Path | None = None, overwrite: bool = False) -> None:
        self.config = config
        self.out_dir = Path(out_dir or config.output.dir or Path("outputs") / config.name)
        self.overwrite = overwrite
        self.model = build_model(config)
        self.grid = Grid(tuple(config.grid.shape), config.grid.spacing3, config.grid.length_unit)
        self.dtype = np.dtype(config.precision)
        self.u0 = self.model.initial_fields(self.grid, self.dtype)
        self.maps = self.model.static_maps(self.grid, self.dtype)
        self.implicit_sinks = config.time.reactions == "linearly-implicit"
        self.plan = self._plan()

    def dose_times(self, t_end: float) -> list[float]:
        """Every dose start and stop up to t_end: steps land on them exactly."""
        schedule = self.model.schedule
        return [t for t in (schedule.event_times() if schedule else ()) if 0.0 <= t <= t_end]

    def _plan(self) -> RunPlan:
        cfg = self.config
        runtime = SystemicRuntime(self.model)
        runtime.apply_boluses(0.0)
        bound = explicit_stability_bound(self.model, self.grid, self.u0, runtime.values(0.0), self.implicit_sinks)
        dt = choose_dt(cfg.time, bound)
        end = cfg.time.end
        snap_every = cfg.output.snapshot_every or end / 10
        series_every = cfg.output.series_every or min(snap_every, end / 100)
        snaps = output_times(end, snap_every)
        series = output_times(end, series_every)
        if not math.isfinite(dt):  # nothing limits dt (no transport, no rates): one step per record
            dt = series_every
        events = _merge([0.0, *snaps, *series], self.dose_times(end))
        steps = sum(_steps_between(a, b, dt) for a, b in zip(events, events[1:]))
        return RunPlan(dt, bound.dt, bound.limited_by, tuple(snaps), tuple(series), steps)

    def start(self, backend: Backend | None = None) -> RunningState:
        """Put the initial state on the backend's device; give the boluses due at t = 0."""
        backend = backend or get_backend(self.config.backend)
        grid, plan = self.grid, self.plan
        log.info("backend %s on %s; dt = %.4g (bound %.4g, set by %s)", backend.name, backend.device,
                 plan.dt, plan.dt_bound, plan.limited_by)
        integrator = ExplicitIntegrator(backend, self.model, grid, self.dtype, plan.dt,
                                        self.config.output.check_every, self.implicit_sinks)
        maps = self.maps if len(self.maps) else np.zeros((1,) + grid.shape, self.dtype)
        u = backend.to_device(self.u0)
        fields = FieldState(u=u, u_new=backend.xp.empty_like(u), maps=backend.to_device(maps))
        systemic = SystemicRuntime(self.model)
        systemic.apply_boluses(0.0)
        return RunningState(integrator, fields, systemic)

    def advance(self, state: RunningState, t_end: float) -> None:
        """Step to t_end, landing on every dose start and stop on the way (boluses given there)."""
        for t in _merge(self.dose_times(t_end), [t_end]):
            if t <= state.fields.t:
                continue
            state.integrator.advance(state.fields, t, state.systemic)
            state.systemic.apply_boluses(t)

    def evolve(self, t_end: float | None = None, backend: Backend | None = None) -> np.ndarray:
        """Step to t_end (default: time.end) without writing files; return the fields on the host."""
        state = self.start(backend)
        self.advance(state, self.config.time.end if t_end is None else t_end)
        state.integrator.check(state.fields)
        return state.backend.to_host(state.fields.u)

    def series_names(self) -> dict[str, str]:
        """Time-series name -> units, for every systemic scalar and agent."""
        out = {v.name: v.units for v in self.model.systemic}
        for a in self.model.agents:
            out[f"plasma_{a.name}" if a.pk is not None else f"rate_{a.name}"] = a.units
        return out

    def units(self) -> dict[str, str]:
        """Units of every field and time series, for the HDF5 `units` attributes."""
        out = {s.name: s.units for s in self.model.species}
        out.update({f"{k}_{s.name}": s.units for s in self.model.species for k in ("min", "max")})
        out.update(self.series_names())
        out.update({d.name: d.units for d in self.model.diagnostics})
        return {k: v for k, v in out.items() if v}

    def record(self, state: RunningState, stats, diagnostics: DiagnosticsEvaluator) -> dict[str, float]:
        """One time-series record: per-species total/min/max, systemic scalars, diagnostics."""
        t = state.fields.t
        values: dict[str, float] = {}
        for i, n in enumerate(self.model.names):
            values[f"total_{n}"] = float(stats.total[i])
            values[f"min_{n}"] = float(stats.minimum[i])
            values[f"max_{n}"] = float(stats.maximum[i])
        scalars = state.systemic.values(t)
        values.update(zip(self.series_names(), (float(v) for v in scalars)))
        values.update(diagnostics.evaluate(state.fields.u, state.fields.maps, t, scalars))
        return values

    def run(self) -> RunSummary:
        """Step to the end time, writing snapshots and time series; return a summary."""
        cfg, plan, grid = self.config, self.plan, self.grid
        backend = get_backend(cfg.backend)  # a missing GPU fails before anything is written
        folder = prepare_run_folder(self.out_dir, self.overwrite)
        state = self.start(backend)
        diagnostics = DiagnosticsEvaluator(self.model, grid, backend, self.dtype)

        resolved = cfg.model_dump(mode="json")
        (folder / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False), encoding="utf-8")
        schedule = self.model.schedule
        doses = {a: [b.time for b in schedule.boluses.get(a, ())] + [i.start for i in schedule.infusions.get(a, ())]
                 for a in schedule.agents()} if schedule else {}
        attrs = {
            "tumorsim_version": __version__,
            "backend": backend.name,
            "device": backend.device,
            "name": cfg.name,
            "config_json": cfg.to_json(),
            "grid_shape": np.array(grid.shape),
            "grid_spacing": np.array(grid.spacing),
            "length_unit": grid.length_unit,
            "time_unit": cfg.time.unit,
            "dt": plan.dt,
            "dt_limited_by": plan.limited_by,
            "dose_times_json": json.dumps({a: sorted(t) for a, t in doses.items()}),
        }
        names = self.model.names
        series_times, snapshot_times = list(plan.series_times), list(plan.snapshot_times)
        started = wallclock.perf_counter()
        with RunWriter(folder / RUN_FILE, grid, names, self.dtype, attrs, cfg.output.compression,
                       dict(zip(self.model.map_names, self.maps)), self.units()) as writer:
            for t_event in _merge(series_times, snapshot_times):
                self.advance(state, t_event)
                stats = state.integrator.check(state.fields)
                if _contains(series_times, t_event):
                    writer.write_series(t_event, self.record(state, stats, diagnostics))
                if _contains(snapshot_times, t_event):
                    writer.write_snapshot(t_event, backend.to_host(state.fields.u))
                    elapsed = wallclock.perf_counter() - started
                    log.info("t = %.6g / %.6g  step %d  (%.0f steps/s)", t_event, cfg.time.end,
                             state.fields.step, state.fields.step / elapsed if elapsed > 0 else 0.0)
        backend.synchronize()
        wall = wallclock.perf_counter() - started
        final = diagnostics.last[1] if diagnostics.last else {}
        return RunSummary(
            out_dir=folder,
            run_file=folder / RUN_FILE,
            backend=backend.name,
            device=backend.device,
            steps=state.fields.step,
            dt=plan.dt,
            t_end=state.fields.t,
            wall_seconds=wall,
            final_totals={n: float(stats.total[i]) for i, n in enumerate(names)},
            final_min={n: float(stats.minimum[i]) for i, n in enumerate(names)},
            final_max={n: float(stats.maximum[i]) for i, n in enumerate(names)},
            final_diagnostics={**dict(zip(self.series_names(), state.systemic.values(state.fields.t))), **final},
        )


def _steps_between(a: float, b: float, dt: float) -> int:
    return max(1, math.ceil((b - a) / dt * (1 - 1e-12))) if b > a else 0
