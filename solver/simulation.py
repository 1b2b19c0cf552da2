"""A run from config to files: config -> model -> backend -> integrator -> writer.

Public API:
    Simulation(config, out_dir=None, overwrite=False)
        .plan            dt, its bound and what sets it, step count, output times
        .memory          MemoryEstimate for the CPU backend (.memory_for(backend) for another)
        .start(backend, checkpoint=None) -> RunningState   fields on the device + systemic runtime
        .advance(state, t_end, after_step=None) -> bool    steps, landing on every dose start/stop
        .evolve(t_end) -> np.ndarray         in memory, no files
        .run(resume=None, stop=None, on_step=None) -> RunSummary
                                             the whole run with its files and checkpoints
        .check_device_memory(backend)        refuses a grid that does not fit, before allocating
        .output_bytes() -> int               expected size of the run's files
        .seconds_per_step(backend) -> float | None   measured on a few steps (CPU only)
    RunSummary           where the files are, and what happened
    MemoryEstimate, estimate_memory(...), available_host_memory()
    StopRequest, stop_on_signals(stop)   SIGINT/SIGTERM: stop after the current step
    output_times(end, every) -> list[float]

Checkpoints (solver/io/checkpoint.py) are written at time-series or snapshot records
(so that the steps of a resumed run are those of an uninterrupted one: each interval
between records and dose events is split into ceil(span / dt) equal steps), and,
when a stop is requested, after the current step (the interval in progress is saved
with them). A resumed run continues run.h5 from the checkpoint's record counts.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
import time as wallclock
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from solver import __version__
from solver.backends.base import Backend
from solver.backends.registry import get_backend
from solver.config import CheckpointConfig, RunConfig
from solver.diagnostics import DiagnosticsEvaluator
from solver.errors import CheckpointError, RunInterrupted, SimulationError
from solver.grid import Grid
from solver.integrators.explicit import (
    ExplicitIntegrator,
    FieldState,
    Segment,
    StepBound,
    choose_dt,
    explicit_stability_bound,
    species_rates,
)
from solver.integrators.imex import IMPLICIT_RATIO, ImexIntegrator, choose_implicit_species
from solver.integrators.transport_solvers import chemotaxis_can_be_implicit
from solver.io.checkpoint import (
    CHECKPOINT_DIR,
    Checkpoint,
    array_sha256,
    config_differences,
    config_hash,
    find_checkpoint,
    physics_config,
    read_checkpoint,
    remove_checkpoints,
    remove_partial_writes,
    write_checkpoint,
)
from solver.io.hdf5_writer import RunWriter
from solver.io.run_folder import RUN_FILE, prepare_run_folder, resume_run_folder
from solver.model import build_model
from solver.systemic.runtime import SystemicRuntime

log = logging.getLogger(__name__)

# (linear sinks implicit, implicit diffusion, implicit chemotaxis, dt bound) of an integrator
Candidate = tuple[bool, frozenset[int], frozenset[int], StepBound]


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

    @property
    def events(self) -> list[float]:
        """Every record time (series and snapshots) in order: the loop of Simulation.run."""
        return _merge(list(self.series_times), list(self.snapshot_times))


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
    resumed_from: Path | None = None  # the checkpoint this run continued
    steps_this_session: int = 0  # steps taken by this process (all of them unless resumed)
    last_checkpoint: Path | None = None


# ------------------------------------------------------------------------------- memory


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a run needs, estimated from the grid, species, maps and precision.

    On the device: the fields double-buffered (u, u_new), the static maps, and scratch
    (NumPy: each species copied with one ghost layer, plus the temporaries of the
    reaction and stencil expressions; CuPy: one fused kernel, so only the diagnostics'
    float64 temporaries). On the host: the initial fields and maps the Simulation keeps,
    the float64 copies the stability bound is evaluated on (freed before stepping), and
    one copy of the fields for each snapshot or checkpoint written.
    """

    fields: int
    maps: int
    scratch: int
    setup: int  # host, while the Simulation is built (before any backend is chosen)
    host_output: int  # host copy of the fields for a snapshot or checkpoint

    @property
    def device(self) -> int:
        return self.fields + self.maps + self.scratch


def estimate_memory(
    n_species: int, n_maps: int, shape: tuple[int, int, int], dtype: np.dtype, backend: str = "numpy",
    stepping_sets: int = 0,
) -> MemoryEstimate:
    """MemoryEstimate for a grid of `shape` cells (see MemoryEstimate); `backend` numpy or cupy.

    `stepping_sets`: extra arrays of all species the time stepping needs (second-order
    stages, step-size control temporaries; Simulation.memory_for counts them).
    """
    cells = math.prod(shape)
    padded = math.prod(n + 2 for n in shape)
    size = np.dtype(dtype).itemsize
    fields = 2 * n_species * cells * size
    maps = max(n_maps, 1) * cells * size
    diagnostics = 3 * cells * 8
    stepping = stepping_sets * n_species * cells * size
    if backend == "cupy":
        scratch = diagnostics + stepping
    else:
        scratch = n_species * padded * size + (2 * n_species + 8) * cells * size + diagnostics + stepping
    # Setup, measured with tracemalloc on the de Pillis model (6 species, 1 map): about 200
    # bytes per cell in float32; this errs on the safe side by about a quarter.
    kept = (n_species + n_maps) * cells * size
    bound = (2 * n_species + 2 * n_maps + 14) * cells * 8
    return MemoryEstimate(fields, maps, scratch, kept + bound, n_species * cells * size)


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as f:
            text = f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def available_host_memory() -> int | None:
    """Bytes of RAM this process can still use: MemAvailable, capped by a cgroup limit.

    None when the system does not say (the memory check is then skipped).
    """
    candidates: list[int] = []
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    candidates.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError):
        pass
    if not candidates:
        try:
            candidates.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            pass
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 1 << 60:
            candidates.append(max(limit - usage, 0))
    return min(candidates) if candidates else None


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


# ------------------------------------------------------------------------------ signals


class StopRequest:
    """A request to stop after the current step, set by a signal handler or by the caller.

    Simulation.run checks it after every step; when set, it writes a checkpoint and
    raises RunInterrupted with the signal number (0 when requested by a caller).
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    def request(self, signum: int = 0) -> None:
        if self.signum is None:
            self.signum = signum

    def __bool__(self) -> bool:
        return self.signum is not None


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return "a stop request" if signum == 0 else f"signal {signum}"


@contextmanager
def stop_on_signals(
    stop: StopRequest, signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)
) -> Iterator[StopRequest]:
    """While inside: the first SIGINT/SIGTERM sets `stop` (the run finishes its step and
    writes a checkpoint); a second one aborts at once with RunInterrupted (no new
    checkpoint). Outside the main thread (where Python cannot catch signals) this does
    nothing. The previous handlers are restored on exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: object) -> None:
        if stop:
            raise RunInterrupted(
                f"aborted by a second {signal_name(signum)}: no checkpoint written for this point",
                signum,
            )
        stop.request(signum)

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield stop
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


# --------------------------------------------------------------------------- the run


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


class _CheckpointClock:
    """Says when a periodic checkpoint is due (at a record), from output.checkpoint."""

    def __init__(self, config: CheckpointConfig | None, t: float, step: int) -> None:
        self.config = config
        self.reset(t, step)

    def reset(self, t: float, step: int) -> None:
        self.t, self.step, self.wall = t, step, wallclock.monotonic()

    def due(self, t: float, step: int) -> bool:
        c = self.config
        if c is None:
            return False
        if c.every_steps is not None and step - self.step >= c.every_steps:
            return True
        if c.every_time is not None:
            crossed = math.floor(t / c.every_time * (1 + 1e-12)) > math.floor(self.t / c.every_time * (1 + 1e-12))
            if crossed:
                return True
        return c.every_seconds is not None and wallclock.monotonic() - self.wall >= c.every_seconds


class Simulation:
    """Builds everything a run needs from a validated config; `run()` does the stepping.

    Raises (on construction):
        ConfigError: the model or the time step is invalid.
        SimulationError: the grid does not fit in the host's memory (checked before the
            fields are allocated).
    """

    def __init__(self, config: RunConfig, out_dir: str | Path | None = None, overwrite: bool = False) -> None:
        self.config = config
        self.out_dir = Path(out_dir or config.output.dir or Path("outputs") / config.name)
        self.overwrite = overwrite
        self.model = build_model(config)
        self.grid = Grid(tuple(config.grid.shape), config.grid.spacing3, config.grid.length_unit)
        self.dtype = np.dtype(config.precision)
        self.memory = estimate_memory(len(self.model.species), len(self.model.maps), self.grid.shape, self.dtype)
        self._check_memory(self.memory.setup, available_host_memory(), "RAM available on the host",
                           "to set it up (initial fields, maps, the stability bound)")
        self.u0 = self.model.initial_fields(self.grid, self.dtype)
        self.maps = self.model.static_maps(self.grid, self.dtype)
        self.plan = self._plan()  # also sets integrator_name, implicit_sinks, implicit_diffusion
        self.last_checkpoint: Path | None = None

    def _check_memory(self, need: int, available: int | None, where: str, what: str) -> None:
        if available is not None and need > available:
            raise SimulationError(
                f"grid {self.grid.shape} with {len(self.model.species)} species in {self.dtype} needs about "
                f"{format_bytes(need)} {what}; only {format_bytes(available)} {where}: use a smaller grid"
                + (" or float32" if self.dtype == np.float64 else "")
            )

    def memory_for(self, backend: Backend) -> MemoryEstimate:
        """The memory estimate for this backend's kind of device."""
        sets = 0
        if self.config.time.order == 2:  # F and lambda at two stages; imex: the half-step field
            sets += 4 + (1 if self.implicit_diffusion else 0)
        if self.max_change is not None:  # |u_new - u|, |u| + floor and their ratio
            sets += 3
        if self.implicit_chemotaxis:  # the transport solves' c' scratch (one field; counted as a set)
            sets += 1
        return estimate_memory(
            len(self.model.species), len(self.model.maps), self.grid.shape, self.dtype, backend.name, sets
        )

    def check_device_memory(self, backend: Backend) -> None:
        """Refuse, before allocating, a grid whose fields, maps and scratch do not fit.

        CPU: the RAM available now (the Simulation's own arrays already counted). GPU:
        the free memory of the current device, queried here (only for the GPU backend).

        Raises:
            SimulationError: the estimate exceeds what is available.
        """
        memory = self.memory_for(backend)
        if backend.name == "cupy":
            free = int(backend.xp.cuda.runtime.memGetInfo()[0])
            self._check_memory(memory.device, free, f"free on {backend.device}", "on the GPU")
        else:
            self._check_memory(memory.device + memory.host_output, available_host_memory(),
                               "RAM available", "of RAM to run (fields double-buffered, maps, scratch)")

    def dose_times(self, t_end: float) -> list[float]:
        """Every dose start and stop up to t_end: steps land on them exactly."""
        schedule = self.model.schedule
        return [t for t in (schedule.event_times() if schedule else ()) if 0.0 <= t <= t_end]

    def _plan(self) -> RunPlan:
        cfg = self.config
        runtime = SystemicRuntime(self.model)
        runtime.apply_boluses(0.0)
        systemic0 = runtime.values(0.0)
        candidates = self._candidates(systemic0)
        if cfg.time.integrator == "auto":
            self.integrator_name, self.integrator_reason = self._auto_integrator(candidates)
            log.info("integrator auto: %s, %s", self.integrator_name, self.integrator_reason)
        else:
            self.integrator_name, self.integrator_reason = cfg.time.integrator, "as configured"
        self.implicit_sinks, self.implicit_diffusion, self.implicit_chemotaxis, bound = candidates[self.integrator_name]
        if self.integrator_name == "imex":
            log.info("imex: implicit diffusion for %s%s",
                     ", ".join(self.model.names[i] for i in sorted(self.implicit_diffusion)) or "no species",
                     f"; with chemotaxis for {', '.join(self.model.names[i] for i in sorted(self.implicit_chemotaxis))}"
                     if self.implicit_chemotaxis else "")
        self.max_change = cfg.time.max_change
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

    def _candidates(self, systemic0: np.ndarray) -> dict[str, Candidate]:
        """Per integrator: (linear sinks implicit?, species with implicit diffusion, those
        with implicit chemotaxis too, the dt bound).

        `time.reactions: auto` takes the linear sinks (decay, vessel exchange) implicitly with
        imex, whose point is to lift the fast processes out of the dt bound, and explicitly
        with the explicit integrator. With `time.implicit_chemotaxis`, a chemotactic species
        whose faces allow it (transport_solvers.chemotaxis_can_be_implicit) counts its
        chemotaxis as transport that imex can take implicitly.
        """
        reactions = self.config.time.reactions
        out = {}
        for name in ("explicit", "imex"):
            sinks = reactions == "linearly-implicit" or (reactions == "auto" and name == "imex")
            implicit: frozenset[int] = frozenset()
            chemotactic: frozenset[int] = frozenset()
            if name == "imex":
                eligible = {i for i, sp in enumerate(self.model.species)
                            if self.config.time.implicit_chemotaxis and chemotaxis_can_be_implicit(sp)}
                transport = [(d + (chemo if i in eligible else 0.0), total)
                             for i, (total, _, d, chemo) in enumerate(
                                 species_rates(self.model, self.grid, self.u0, systemic0, sinks))]
                implicit = choose_implicit_species([(fast, total - fast) for fast, total in transport])
                chemotactic = frozenset(implicit & eligible)
            bound = explicit_stability_bound(self.model, self.grid, self.u0, systemic0, sinks, implicit, chemotactic)
            out[name] = (sinks, implicit, chemotactic, bound)
        return out

    def _auto_integrator(self, candidates: dict[str, Candidate]) -> tuple[str, str]:
        """`time.integrator: auto`: imex when it lets dt grow >= IMPLICIT_RATIO x; and why."""
        explicit = candidates["explicit"][3]
        sinks, implicit, _, imex = candidates["imex"]
        gain = imex.dt / explicit.dt if math.isfinite(explicit.dt) else 1.0
        if not implicit or gain < IMPLICIT_RATIO:
            return "explicit", (f"no species diffuses fast enough for implicit diffusion to pay (the explicit "
                                f"bound {explicit.dt:.3g} is set by {explicit.limited_by})")
        names = ", ".join(self.model.names[i] for i in sorted(implicit))
        extra = " and the linear sinks" if sinks and not candidates["explicit"][0] else ""
        return "imex", (f"the {explicit.limited_by} bounds an explicit dt at {explicit.dt:.3g}; with the "
                        f"diffusion of {names}{extra} implicit, dt can be {imex.dt:.3g} ({gain:.0f}x), "
                        f"set by {imex.limited_by}")

    def integrator_choices(self) -> dict[str, tuple[float, int, tuple[str, ...]]]:
        """For each integrator: (dt, steps to the end, species with implicit diffusion),
        as the plan of this config would be with `time.integrator` set to it."""
        cfg = self.config
        runtime = SystemicRuntime(self.model)
        runtime.apply_boluses(0.0)
        events = _merge([0.0, *self.plan.snapshot_times, *self.plan.series_times], self.dose_times(cfg.time.end))
        out = {}
        for name, (_, chosen, _, bound) in self._candidates(runtime.values(0.0)).items():
            dt = cfg.time.safety * bound.dt if cfg.time.dt == "auto" else min(float(cfg.time.dt), bound.dt)
            if not math.isfinite(dt):
                dt = min(b - a for a, b in zip(events, events[1:]) if b > a)
            steps = sum(_steps_between(a, b, dt) for a, b in zip(events, events[1:]))
            out[name] = (dt, steps, tuple(self.model.names[i] for i in sorted(chosen)))
        return out

    def start(self, backend: Backend | None = None, checkpoint: Checkpoint | None = None) -> RunningState:
        """Put the initial state on the backend's device and give the boluses due at t = 0;
        or, with a checkpoint, put its state there instead (boluses up to its t are in it)."""
        backend = backend or get_backend(self.config.backend)
        grid, plan = self.grid, self.plan
        log.info("backend %s on %s; dt = %.4g (bound %.4g, set by %s)", backend.name, backend.device,
                 plan.dt, plan.dt_bound, plan.limited_by)
        order = self.config.time.order
        if self.implicit_diffusion:
            integrator: ExplicitIntegrator = ImexIntegrator(
                backend, self.model, grid, self.dtype, plan.dt, self.config.output.check_every,
                self.implicit_sinks, self.implicit_diffusion, order, self.max_change, self.implicit_chemotaxis)
        else:
            integrator = ExplicitIntegrator(backend, self.model, grid, self.dtype, plan.dt,
                                            self.config.output.check_every, self.implicit_sinks,
                                            order=order, max_change=self.max_change)
        maps = self.maps if len(self.maps) else np.zeros((1,) + grid.shape, self.dtype)
        systemic = SystemicRuntime(self.model)
        if checkpoint is None:
            u = backend.to_device(self.u0)
            fields = FieldState(u=u, u_new=backend.xp.empty_like(u), maps=backend.to_device(maps))
            systemic.apply_boluses(0.0)
        else:
            u = backend.to_device(checkpoint.fields)
            segment = Segment(*checkpoint.segment) if checkpoint.segment is not None else None
            fields = FieldState(u=u, u_new=backend.xp.empty_like(u), maps=backend.to_device(maps),
                                t=checkpoint.t, step=checkpoint.step, segment=segment,
                                dt_next=checkpoint.dt_next, peak=checkpoint.guard_peak)
            systemic.set_state(checkpoint.systemic)
        return RunningState(integrator, fields, systemic)

    def advance(
        self, state: RunningState, t_end: float, after_step: Callable[[FieldState], bool] | None = None
    ) -> bool:
        """Step to t_end, landing on every dose start and stop on the way (boluses given there).

        `after_step(fields)` is called after every step; when it returns True the stepping
        stops after that step (or after the boluses of a dose time just reached) and False
        is returned; calling again continues with the same steps.
        """
        for t in _merge(self.dose_times(t_end), [t_end]):
            if t <= state.fields.t:
                continue
            if not state.integrator.advance(state.fields, t, state.systemic, after_step):
                return False
            state.systemic.apply_boluses(t)
            if t < t_end and after_step is not None and after_step(state.fields):
                return False
        return True

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

    # ----------------------------------------------------------------- dry run

    def output_bytes(self, backend: Backend | None = None) -> dict[str, int]:
        """Expected file sizes, uncompressed (gzip usually does better): run.h5's snapshots,
        maps and time series, and the checkpoints kept."""
        cells, size = self.grid.size, self.dtype.itemsize
        n_species = len(self.model.species)
        n_series = 3 * n_species + len(self.series_names()) + len(self.model.diagnostics) + 1
        keep = self.config.output.checkpoint.keep if self.config.output.checkpoint else 1
        return {
            "snapshots": len(self.plan.snapshot_times) * n_species * cells * size,
            "maps": len(self.model.maps) * cells * size,
            "time series": len(self.plan.series_times) * n_series * 8,
            "checkpoints": keep * n_species * cells * size,
        }

    def seconds_per_step(self, backend: Backend, steps: int = 3, max_values: int = 1 << 22) -> float | None:
        """Wall seconds per step, measured on `steps` steps after one warm-up, on the CPU
        backend only and only for grids of at most `max_values` values; None otherwise."""
        if backend.name != "numpy" or self.grid.size * len(self.model.species) > max_values:
            return None
        state = self.start(backend)
        fields, stepper = state.fields, state.integrator.stepper
        systemic = state.systemic.values(0.0)
        stepper.step(fields.u, fields.u_new, fields.maps, 0.0, self.plan.dt, systemic)
        started = wallclock.perf_counter()
        for _ in range(steps):
            stepper.step(fields.u, fields.u_new, fields.maps, 0.0, self.plan.dt, systemic)
        return (wallclock.perf_counter() - started) / steps

    # --------------------------------------------------------------- the run

    def _attrs(self, backend: Backend) -> dict[str, object]:
        cfg, grid, plan = self.config, self.grid, self.plan
        schedule = self.model.schedule
        doses = {a: [b.time for b in schedule.boluses.get(a, ())] + [i.start for i in schedule.infusions.get(a, ())]
                 for a in schedule.agents()} if schedule else {}
        return {
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

    def _physics(self) -> dict[str, object]:
        physics = physics_config(self.config.model_dump(mode="json"))
        physics["dt"] = self.plan.dt  # set by the config and, through the bound, by the initial fields
        return physics

    def load_checkpoint(self, folder: Path, which: str | Path, backend: Backend) -> Checkpoint:
        """Find, read and check the checkpoint to resume from (nothing is changed on disk).

        Raises:
            CheckpointError: none found, unreadable, or not from this config: the message
                names the keys that differ.
        """
        path = find_checkpoint(folder / CHECKPOINT_DIR, which)
        checkpoint = read_checkpoint(path)
        differences = config_differences(checkpoint.physics, self._physics())
        if differences:
            shown = "; ".join(differences[:4]) + (f"; and {len(differences) - 4} more" if len(differences) > 4 else "")
            raise CheckpointError(
                f"checkpoint {str(path)!r} was written with a config whose physics differs: {shown}; "
                "resume with the config it was written with"
            )
        if checkpoint.species != self.model.names or checkpoint.fields.shape != (len(self.model.names), *self.grid.shape) \
                or checkpoint.fields.dtype != self.dtype:
            raise CheckpointError(
                f"checkpoint {str(path)!r} holds fields {checkpoint.species} of shape {checkpoint.fields.shape} "
                f"({checkpoint.fields.dtype}); this config has {self.model.names} on {self.grid.shape} ({self.dtype})"
            )
        if checkpoint.maps_sha256 != array_sha256(self.maps):
            raise CheckpointError(
                f"checkpoint {str(path)!r}: the static maps ({', '.join(self.model.map_names)}) differ from those "
                "the run started with (was a map file changed?)"
            )
        events = self.plan.events
        if not 0 <= checkpoint.next_event <= len(events) or (
            checkpoint.next_event < len(events) and checkpoint.t > events[checkpoint.next_event]
        ):
            raise CheckpointError(f"checkpoint {str(path)!r} is inconsistent: t = {checkpoint.t} at record "
                                  f"{checkpoint.next_event} of {len(events)}")
        try:
            SystemicRuntime(self.model).set_state(checkpoint.systemic)
            DiagnosticsEvaluator(self.model, self.grid, backend, self.dtype).set_state(checkpoint.diagnostics)
        except ValueError as exc:
            raise CheckpointError(f"checkpoint {str(path)!r}: {exc}") from None
        if checkpoint.tumorsim_version != __version__:
            log.warning("checkpoint written by tumorsim %s, resuming with %s: the continuation may not be "
                        "bit-identical", checkpoint.tumorsim_version, __version__)
        if checkpoint.backend != backend.name:
            log.warning("checkpoint written on %s, resuming on %s: the continuation is the same physics but "
                        "not bit-identical to an uninterrupted run", checkpoint.backend, backend.name)
        return checkpoint

    def run(
        self,
        resume: str | Path | None = None,
        stop: StopRequest | None = None,
        on_step: Callable[[FieldState], None] | None = None,
    ) -> RunSummary:
        """Step to the end time, writing snapshots, time series and checkpoints; return a summary.

        A new run (with overwrite) removes the checkpoints of the run it replaces;
        periodic checkpoints follow output.checkpoint and land on records.

        Args:
            resume: "latest" or a checkpoint file: continue that run in its folder
                (records in run.h5 after the checkpoint, and later checkpoints, are removed).
            stop: checked after every step; when set, a checkpoint is written and
                RunInterrupted raised (see stop_on_signals).
            on_step: called with the FieldState after every step (progress display).

        Raises:
            RunInterrupted: stopped on request, after writing a checkpoint.
            CheckpointError: the checkpoint to resume cannot be used.
            SimulationError: the folder is not usable, a file cannot be written, or the
                fields blew up (the last good checkpoint is named).
        """
        cfg, plan, grid = self.config, self.plan, self.grid
        backend = get_backend(cfg.backend)  # a missing GPU fails before anything is written
        self.check_device_memory(backend)
        checkpoint: Checkpoint | None = None
        if resume is not None:
            folder = resume_run_folder(self.out_dir)
            checkpoint = self.load_checkpoint(folder, resume, backend)
        else:
            folder = prepare_run_folder(self.out_dir, self.overwrite)
        checkpoints = folder / CHECKPOINT_DIR
        state = self.start(backend, checkpoint)
        diagnostics = DiagnosticsEvaluator(self.model, grid, backend, self.dtype)
        names = self.model.names
        if checkpoint is not None:
            diagnostics.set_state(checkpoint.diagnostics)
            note = {"t": checkpoint.t, "step": checkpoint.step, "checkpoint": str(checkpoint.path),
                    "backend": backend.name, "device": backend.device, "tumorsim_version": __version__}
            writer = RunWriter.resume(folder / RUN_FILE, names, checkpoint.n_series, checkpoint.n_snapshots,
                                      checkpoint.t, note, self.units())
            stale = remove_checkpoints(checkpoints, after_step=checkpoint.step)
            if stale:
                log.warning("removed %d checkpoint(s) after the one resumed from (their records in %s are gone)",
                            len(stale), RUN_FILE)
            self.last_checkpoint = checkpoint.path
        else:
            resolved = cfg.model_dump(mode="json")
            (folder / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False), encoding="utf-8")
            writer = RunWriter(folder / RUN_FILE, grid, names, self.dtype, self._attrs(backend),
                               cfg.output.compression, dict(zip(self.model.map_names, self.maps)), self.units())
            remove_checkpoints(checkpoints)  # a previous run's, replaced with --overwrite
        remove_partial_writes(checkpoints)

        physics = self._physics()
        physics_hash = config_hash(physics)
        maps_hash = array_sha256(self.maps)
        keep = cfg.output.checkpoint.keep if cfg.output.checkpoint else 1
        clock = _CheckpointClock(cfg.output.checkpoint, state.fields.t, state.fields.step)

        def save(next_event: int, reason: str) -> Path:
            with self._writing(writer, state.fields.t):
                writer.flush()  # run.h5 on disk holds every record the checkpoint counts
            self._checked(state, record_peak=False)  # never checkpoint a state that blew up
            n_series, n_snapshots = writer.counts
            f = state.fields
            ck = Checkpoint(
                t=f.t, step=f.step, fields=backend.to_host(f.u), species=names,
                systemic=state.systemic.get_state(), diagnostics=diagnostics.get_state(),
                next_event=next_event, n_series=n_series, n_snapshots=n_snapshots, physics=physics,
                maps_sha256=maps_hash, backend=backend.name, device=backend.device,
                segment=None if f.segment is None else (f.segment.t0, f.segment.t_end, f.segment.n, f.segment.k),
                dt_next=f.dt_next, guard_peak=f.peak,
                reason=reason, tumorsim_version=__version__, config_hash=physics_hash,
            )
            self.last_checkpoint = write_checkpoint(checkpoints, ck, keep)
            clock.reset(f.t, f.step)
            return self.last_checkpoint

        def after_step(fields: FieldState) -> bool:
            if on_step is not None:
                on_step(fields)
            return bool(stop)

        def interrupted(next_event: int, written: Path | None = None) -> RunInterrupted:
            """Write a checkpoint (unless one of this state was just `written`); the error to raise."""
            signum = stop.signum if stop is not None and stop.signum is not None else 0
            path = written or save(next_event, signal_name(signum))
            f = state.fields
            return RunInterrupted(
                f"stopped by {signal_name(signum)} at t = {f.t:.6g} (step {f.step}); checkpoint {path}",
                signum, path,
            )

        series_times, snapshot_times = list(plan.series_times), list(plan.snapshot_times)
        events = plan.events
        first = checkpoint.next_event if checkpoint is not None else 0
        step0 = state.fields.step
        started = wallclock.perf_counter()
        try:
            with writer:
                for i in range(first, len(events)):
                    t_event = events[i]
                    if not self._step_to(state, t_event, after_step):
                        raise interrupted(i)
                    stats = self._checked(state)
                    with self._writing(writer, t_event):
                        if _contains(series_times, t_event):
                            writer.write_series(t_event, self.record(state, stats, diagnostics))
                        if _contains(snapshot_times, t_event):
                            writer.write_snapshot(t_event, backend.to_host(state.fields.u))
                    if _contains(snapshot_times, t_event):
                        elapsed = wallclock.perf_counter() - started
                        log.info("t = %.6g / %.6g  step %d  (%.0f steps/s)", t_event, cfg.time.end,
                                 state.fields.step, (state.fields.step - step0) / elapsed if elapsed > 0 else 0.0)
                    if i + 1 < len(events):
                        if stop:
                            raise interrupted(i + 1)
                        if clock.due(t_event, state.fields.step):
                            path = save(i + 1, "periodic")
                            if stop:  # the signal came while that checkpoint was written
                                raise interrupted(i + 1, written=path)
        except RunInterrupted as exc:  # a second signal arrives without a checkpoint of its own
            if exc.checkpoint is None:
                exc.checkpoint = self.last_checkpoint
            raise
        backend.synchronize()
        wall = wallclock.perf_counter() - started
        stats = self._checked(state)
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
            resumed_from=checkpoint.path if checkpoint is not None else None,
            steps_this_session=state.fields.step - step0,
            last_checkpoint=self.last_checkpoint,
        )

    @contextmanager
    def _writing(self, writer: RunWriter, t: float) -> Iterator[None]:
        """A failed write to run.h5 (disk full...) as one SimulationError naming the last checkpoint."""
        try:
            yield
        except OSError as exc:
            raise SimulationError(
                f"writing {writer.path} failed at t = {t:.6g}: {exc.strerror or exc}{self._resume_hint()}"
            ) from None

    def _resume_hint(self) -> str:
        if self.last_checkpoint is None:
            return ""
        return f"; last good checkpoint: {self.last_checkpoint} (continue with --resume)"

    def _step_to(self, state: RunningState, t_event: float, after_step: Callable[[FieldState], bool]) -> bool:
        """advance(), with a blow-up error naming the last good checkpoint."""
        try:
            return self.advance(state, t_event, after_step)
        except SimulationError as exc:
            raise SimulationError(f"{exc}{self._resume_hint()}") from None

    def _checked(self, state: RunningState, record_peak: bool = True):
        try:
            return state.integrator.check(state.fields, record_peak)
        except SimulationError as exc:
            raise SimulationError(f"{exc}{self._resume_hint()}") from None


def _steps_between(a: float, b: float, dt: float) -> int:
    return max(1, math.ceil((b - a) / dt * (1 - 1e-12))) if b > a else 0
