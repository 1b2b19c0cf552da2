"""A run from config to files: config -> model -> static fields -> plan -> backend ->
integrator -> writer.

Public API:
    Simulation(config, out_dir=None, overwrite=False)
        .model, .grid, .dtype, .static (maps and initial fields, built once), .plan
        .memory                       MemoryEstimate for the CPU backend (.memory_for(backend))
        .start(backend, checkpoint=None) -> RunningState   fields on the device + systemic state
        .advance(state, t_end, after_step=None) -> bool    steps, landing on every dose start/stop
        .evolve(t_end) -> np.ndarray  in memory, no files
        .run(resume=None, stop=None, on_step=None) -> RunSummary
                                      the whole run with its files and checkpoints
        .check_device_memory(backend) refuses a grid that does not fit, before allocating
    RunSummary, RunningState

Checkpoints (solver/io/checkpoint.py) are written at time-series or snapshot records
(so that the steps of a resumed run are those of an uninterrupted one: each interval
between records and dose events is split into solver.timing.steps_between equal steps),
and, when a stop is requested, after the current step (the interval in progress is saved
with them). A resumed run continues run.h5 from the checkpoint's record counts.
"""

from __future__ import annotations

import json
import logging
import time as wallclock
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from solver import __version__
from solver.backends.base import Backend
from solver.backends.etd import ARRAY_TEMPORARY_SETS
from solver.backends.registry import get_backend
from solver.config import RunConfig
from solver.diagnostics import DiagnosticsEvaluator
from solver.errors import RunInterrupted, SimulationError, TumorsimError
from solver.fields.static import StaticFields, build_static_fields
from solver.grid import Grid
from solver.integrators import make_integrator
from solver.integrators.explicit import ExplicitIntegrator, FieldState, Segment
from solver.integrators.globals import GlobalsEvaluator
from solver.integrators.systemic import SystemicRuntime
from solver.io.checkpoint import (
    CHECKPOINT_DIR,
    Checkpoint,
    array_sha256,
    config_hash,
    physics_config,
    remove_checkpoints,
    remove_partial_writes,
    run_hash,
    write_checkpoint,
    write_final_checkpoint,
)
from solver.io.lock import FolderLock
from solver.io.run_file import RUN_FILE
from solver.io.run_folder import claim_run_folder, prepare_run_folder, resume_run_folder
from solver.io.run_resume import resume_run_file
from solver.io.run_writer import RunWriter
from solver.io.safe_files import write_file
from solver.io.xdmf import write_xdmf
from solver.model import build_model
from solver.run import continuation
from solver.run.clock import CheckpointClock
from solver.run.guard import check_record, check_state
from solver.run.plan import RunPlan, log_choice, make_plan
from solver.run.resources import (
    MemoryEstimate,
    available_host_memory,
    check_fits,
    estimate_memory,
    free_device_memory,
)
from solver.run.signals import StopRequest, signal_name
from solver.timing import contains_sorted, merge_times

log = logging.getLogger(__name__)


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
    final_totals: dict[str, float] = field(default_factory=dict)  # total_<s>: in total units
    final_min: dict[str, float] = field(default_factory=dict)
    final_max: dict[str, float] = field(default_factory=dict)
    final_diagnostics: dict[str, float] = field(default_factory=dict)
    resumed_from: Path | None = None  # the checkpoint this run continued
    steps_this_session: int = 0  # steps taken by this process (all of them unless resumed)
    last_checkpoint: Path | None = None
    rejected_steps: int = 0  # steps the error control (or max_change) retook smaller, this session
    max_error_estimate: float | None = None  # largest accepted error estimate / tolerance, this session
    units: dict[str, str] = field(default_factory=dict)  # of every field and series (Simulation.units)


@dataclass
class RunningState:
    """Everything that evolves during a run: device fields and the systemic scalars."""

    integrator: ExplicitIntegrator
    fields: FieldState
    systemic: SystemicRuntime

    @property
    def backend(self) -> Backend:
        return self.integrator.backend

    def scalars(self, t: float | None = None) -> np.ndarray:
        """The systemic values, agents and the model's globals at t (default: the fields' t),
        the globals reduced from the current fields."""
        return self.systemic.values(self.fields.t if t is None else t, fields=self.fields.u)


class Simulation:
    """Builds everything a run needs from a validated config; `run()` does the stepping.

    The static fields (maps and initial values) are built once here and handed to the
    plan, the integrator, the checkpoints and the writer.

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
        self.grid = Grid(tuple(config.grid.shape), config.grid.spacing3, self.model.length_unit)
        self._totals = self._total_units()
        self.dtype = np.dtype(config.precision)
        self.memory = estimate_memory(len(self.model.species), len(self.model.maps), self.grid.shape, self.dtype)
        self._check_memory(self.memory.setup, available_host_memory(), "RAM available on the host",
                           "to set it up (initial fields, maps, the stability bound)")
        self.static: StaticFields = build_static_fields(self.model, self.grid, self.dtype)
        self.maps = self.static.maps.astype(self.dtype)  # as the device holds them
        self.plan: RunPlan = make_plan(config, self.model, self.grid, self.static)
        log_choice(self.plan, self.model.names, config.time.integrator == "auto")
        self.last_checkpoint: Path | None = None
        self._lock: FolderLock | None = None  # the output folder's, while run() runs

    @property
    def u0(self) -> np.ndarray:
        """The initial fields, (n_species, nx, ny, nz) in the run's dtype."""
        return self.static.initial

    def _check_memory(self, need: int, available: int | None, where: str, what: str) -> None:
        check_fits(need, available, what, where, self.grid.shape, len(self.model.species), self.dtype)

    def memory_for(self, backend: Backend) -> MemoryEstimate:
        """The memory estimate for this backend's kind of device."""
        choice, sets = self.plan.integrator, 0
        if self.plan.order == 2:  # F and lambda at two stages and a stage field; imex: the
            sets += 5 + (2 if choice.implicit_diffusion else 0)  # implicit species' diffusion at both
            if choice.implicit_diffusion:  # the corrector's sub-steps (one set: sub-step values)
                sets += 1
            if backend.name != "cupy":  # the stages' array temporaries (the GPU fuses them: etd_stage.cu)
                sets += ARRAY_TEMPORARY_SETS
        elif choice.implicit_diffusion:  # the sinks the line solves scale with
            sets += 1
        if self.plan.rtol is not None:  # the weighted difference of the error estimate
            sets += 2
        if self.plan.max_change is not None:  # |u_new - u|, |u| + floor and their ratio
            sets += 3
        if choice.implicit_diffusion:  # the scaled line solves' scratch (c' and the cyclic vector)
            sets += 1
        if choice.implicit_chemotaxis:  # the transport solves' c' scratch (one field; counted as a set)
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
            self._check_memory(memory.device, free_device_memory(backend), f"free on {backend.device}", "on the GPU")
        else:
            self._check_memory(memory.device + memory.host_output, available_host_memory(),
                               "RAM available", "of RAM to run (fields double-buffered, maps, scratch)")

    def dose_times(self, t_end: float) -> list[float]:
        """Every dose start and stop up to t_end: steps land on them exactly."""
        schedule = self.model.schedule
        return [t for t in (schedule.event_times() if schedule else ()) if 0.0 <= t <= t_end]

    def start(self, backend: Backend | None = None, checkpoint: Checkpoint | None = None) -> RunningState:
        """Put the initial state on the backend's device and give the boluses due at t = 0;
        or, with a checkpoint, put its state there instead (boluses up to its t are in it)."""
        backend = backend or get_backend(self.config.backend)
        backend.configure(self.config)
        grid, plan = self.grid, self.plan
        log.info("backend %s on %s; dt = %.4g (bound %.4g, set by %s)", backend.name, backend.device,
                 plan.dt, plan.dt_bound, plan.limited_by)
        integrator = make_integrator(backend, self.model, grid, self.dtype, plan.integrator, plan.dt,
                                     self.config.output.check_every, plan.order, plan.max_change, plan.rtol,
                                     plan.atol, plan.max_courant)
        maps = self.maps if len(self.maps) else self.static.maps_as(self.dtype)  # kernels take a pointer
        device_maps = backend.to_device(maps)
        systemic = SystemicRuntime(self.model, GlobalsEvaluator(self.model, grid, backend, self.dtype), device_maps)
        if checkpoint is None:
            u = backend.to_device(self.u0)
            fields = FieldState(u=u, u_new=backend.xp.empty_like(u), maps=device_maps)
            systemic.apply_boluses(0.0)
        else:
            u = backend.to_device(checkpoint.fields)
            segment = Segment(*checkpoint.segment) if checkpoint.segment is not None else None
            fields = FieldState(u=u, u_new=backend.xp.empty_like(u), maps=device_maps,
                                t=checkpoint.t, step=checkpoint.step, segment=segment,
                                dt_next=checkpoint.dt_next, peak=checkpoint.guard_peak)
            systemic.set_state(checkpoint.systemic)
        return RunningState(integrator, fields, systemic)

    def advance(
        self, state: RunningState, t_end: float, after_step: Callable[[FieldState], bool] | None = None,
        check: bool = True,
    ) -> bool:
        """Step to t_end, landing on every dose start and stop on the way (boluses given there).

        `after_step(fields)` is called after every step; when it returns True the stepping
        stops after that step (or after the boluses of a dose time just reached) and False
        is returned; calling again continues with the same steps. `check`: run the blow-up
        guard on the fields where the stepping stops (the guard also runs every
        output.check_every steps), so NaN or negative densities never come back silently.

        Raises:
            SimulationError: the fields blew up (NaN, infinity, negative densities).
        """
        done = True
        for t in merge_times([*self.dose_times(t_end), t_end]):
            if t <= state.fields.t:
                continue
            if not state.integrator.advance(state.fields, t, state.systemic, after_step):
                done = False
                break
            state.systemic.apply_boluses(t)
            if t < t_end and after_step is not None and after_step(state.fields):
                done = False
                break
        if check:
            state.integrator.check(state.fields)
        return done

    def evolve(self, t_end: float | None = None, backend: Backend | None = None) -> np.ndarray:
        """Step to t_end (default: time.end) without writing files; return the fields on the host."""
        state = self.start(backend)
        self.advance(state, self.config.time.end if t_end is None else t_end)
        state.integrator.check(state.fields)
        return state.backend.to_host(state.fields.u)

    def record_names(self) -> tuple[str, ...]:
        """Every name of a time-series record (record()), in its order."""
        stats = [f"{k}_{n}" for n in self.model.names for k in ("total", "min", "max")]
        return (*stats, *self.series_names(), *(d.name for d in self.model.diagnostics))

    def series_names(self) -> dict[str, str]:
        """Time-series name -> units, for every systemic scalar, agent and global, in
        Model.systemic_names order."""
        out = {v.name: v.units for v in self.model.systemic}
        for a in self.model.agents:
            out[f"plasma_{a.name}" if a.pk is not None else f"rate_{a.name}"] = a.units
        out.update({g.name: g.units for g in self.model.globals})
        return out

    def _total_units(self) -> dict[str, tuple[float, str]]:
        """Species -> (factor, unit) of total_<s>, its integral over the domain: an amount
        (cells/mL x um^3 -> 1e-12 cells), or the density's unit times a volume."""
        from solver.units import integral_unit

        return {s.name: integral_unit(s.units, self.grid.length_unit) for s in self.model.species}

    def units(self) -> dict[str, str]:
        """Units of every field and time series (and "time": the time unit), for the HDF5 `units`
        attributes."""
        out = {s.name: s.units for s in self.model.species}
        out.update({f"{k}_{s.name}": s.units for s in self.model.species for k in ("min", "max")})
        out.update({f"total_{n}": label for n, (_, label) in self._totals.items()})
        out["time"] = self.model.time_unit
        out.update(self.series_names())
        out.update({d.name: d.units for d in self.model.diagnostics})
        return {k: v for k, v in out.items() if v}

    def record(self, state: RunningState, stats, diagnostics: DiagnosticsEvaluator) -> dict[str, float]:
        """One time-series record: per-species total/min/max, systemic scalars, diagnostics."""
        t = state.fields.t
        values: dict[str, float] = {}
        for i, n in enumerate(self.model.names):
            values[f"total_{n}"] = float(stats.total[i]) * self._totals[n][0]
            values[f"min_{n}"] = float(stats.minimum[i])
            values[f"max_{n}"] = float(stats.maximum[i])
        scalars = state.systemic.values(t, fields=state.fields.u)
        values.update(zip(self.series_names(), (float(v) for v in scalars)))
        values.update(diagnostics.evaluate(state.fields.u, state.fields.maps, t, scalars))
        return values

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
            "time_unit": self.model.time_unit,
            "dt": plan.dt,
            "dt_limited_by": plan.limited_by,
            "integrator": plan.integrator.name,
            "dose_times_json": json.dumps({a: sorted(t) for a, t in doses.items()}),
            "run_hash": run_hash(self._physics(), array_sha256(self.maps)),
        }

    def _physics(self) -> dict[str, object]:
        physics = physics_config(self.config.model_dump(mode="json"))
        physics["dt"] = self.plan.dt  # set by the config and, through the bound, by the initial fields
        return physics

    def load_checkpoint(self, folder: Path, which: str | Path, backend: Backend, extend: bool = False) -> Checkpoint:
        """Find, read and check the checkpoint to resume from (solver/run/continuation.py)."""
        return continuation.load_checkpoint(self, folder, which, backend, extend)

    def finished_at(self, which: str | Path = "latest", extend: bool = False) -> float | None:
        """The end time when the output folder holds this run finished, else None
        (solver/run/continuation.py)."""
        return continuation.finished_at(self, which, extend)

    def run(
        self,
        resume: str | Path | None = None,
        stop: StopRequest | None = None,
        on_step: Callable[[FieldState], None] | None = None,
        extend: bool = False,
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
            extend: continue the run of `resume` ("latest": final-<step>.h5, the state at its
                end time, when there is one) to this config's later time.end (check_extension);
                run.h5 and config.yaml then describe the run to the new end.

        Raises:
            RunInterrupted: stopped on request, after writing a checkpoint.
            CheckpointError: the checkpoint to resume cannot be used.
            SimulationError: the folder is not usable or another run holds it (its lock:
                solver/io/lock.py), a file cannot be written, or the fields, systemic
                scalars or diagnostics blew up (the last good checkpoint is named).
        """
        try:
            return self._run(resume, stop, on_step, extend)
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def _run(self, resume: str | Path | None, stop: StopRequest | None,
             on_step: Callable[[FieldState], None] | None, extend: bool = False) -> RunSummary:
        cfg, plan, grid = self.config, self.plan, self.grid
        backend = get_backend(cfg.backend)  # a missing GPU fails before anything is written
        self.check_device_memory(backend)
        checkpoint: Checkpoint | None = None
        if resume is not None:
            folder = resume_run_folder(self.out_dir)
            self._lock = claim_run_folder(folder, new_run=False, overwrite=False)
            checkpoint = self.load_checkpoint(folder, resume, backend, extend)
        else:
            folder = prepare_run_folder(self.out_dir, self.overwrite)
            self._lock = claim_run_folder(folder, new_run=True, overwrite=self.overwrite)
        checkpoints = folder / CHECKPOINT_DIR
        state = self.start(backend, checkpoint)
        diagnostics = DiagnosticsEvaluator(self.model, grid, backend, self.dtype)
        names = self.model.names
        if checkpoint is not None:
            diagnostics.set_state(checkpoint.diagnostics)
            note = {"t": checkpoint.t, "step": checkpoint.step, "checkpoint": str(checkpoint.path),
                    "backend": backend.name, "device": backend.device, "tumorsim_version": __version__}
            replaced = None
            if extend:  # run.h5 and config.yaml become those of the run to the new end
                note["extended_to"] = cfg.time.end
                replaced = {k: v for k, v in self._attrs(backend).items()
                            if k in ("config_json", "run_hash", "dose_times_json")}
            writer = resume_run_file(folder / RUN_FILE, names, self.record_names(), checkpoint.n_series,
                                     checkpoint.n_snapshots, checkpoint.t, note, self.units(), checkpoint.run_hash,
                                     replaced)
            if extend:
                resolved = cfg.model_dump(mode="json")
                write_file(folder / "config.yaml", yaml.safe_dump(resolved, sort_keys=False).encode("utf-8"))
            stale = remove_checkpoints(checkpoints, after_step=checkpoint.step)
            if stale:
                log.warning("removed %d checkpoint(s) after the one resumed from (their records in %s are gone)",
                            len(stale), RUN_FILE)
            self.last_checkpoint = checkpoint.path
        else:
            resolved = cfg.model_dump(mode="json")
            write_file(folder / "config.yaml", yaml.safe_dump(resolved, sort_keys=False).encode("utf-8"))
            writer = RunWriter(folder / RUN_FILE, grid, names, self.dtype, self._attrs(backend),
                               cfg.output.compression, dict(zip(self.model.map_names, self.maps)), self.units(),
                               self.record_names())
            remove_checkpoints(checkpoints)  # a previous run's, replaced with --overwrite
        remove_partial_writes(checkpoints)

        physics = self._physics()
        physics_hash = config_hash(physics)
        maps_hash = array_sha256(self.maps)
        keep = cfg.output.checkpoint.keep if cfg.output.checkpoint else 1
        clock = CheckpointClock(cfg.output.checkpoint, state.fields.t, state.fields.step)

        def save(next_event: int, reason: str, final: bool = False) -> Path:
            with self._writing(writer, state.fields.t):
                writer.fsync()  # run.h5 on disk holds every record the checkpoint counts
            self._checked(state, record_peak=False)  # never checkpoint a state that blew up
            check_state(self.model, state.systemic.get_state(), diagnostics.get_state(), state.fields.t,
                        state.fields.step, self._resume_hint(blow_up=True))
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
                run_hash=run_hash(physics, maps_hash),
            )
            self.last_checkpoint = (write_final_checkpoint(checkpoints, ck) if final
                                    else write_checkpoint(checkpoints, ck, keep))
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
            with self._sidecar(writer), writer:
                for i in range(first, len(events)):
                    t_event = events[i]
                    if not self._step_to(state, t_event, after_step):
                        raise interrupted(i)
                    stats = self._checked(state)
                    with self._writing(writer, t_event):
                        if contains_sorted(series_times, t_event):
                            record = self.record(state, stats, diagnostics)
                            check_record(self.model, record, t_event, state.fields.step,
                                         self._resume_hint(blow_up=True))
                            writer.write_series(t_event, record)
                        if contains_sorted(snapshot_times, t_event):
                            writer.write_snapshot(t_event, backend.to_host(state.fields.u))
                    if contains_sorted(snapshot_times, t_event):
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
                with self._writing(writer, state.fields.t):
                    writer.flush()  # the writer thread's last writes: a failure reported like any other
                if cfg.output.checkpoint is not None:  # the end state, which --extend-to continues
                    save(len(events), "end", final=True)
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
            final_totals={n: float(stats.total[i]) * self._totals[n][0] for i, n in enumerate(names)},
            final_min={n: float(stats.minimum[i]) for i, n in enumerate(names)},
            final_max={n: float(stats.maximum[i]) for i, n in enumerate(names)},
            final_diagnostics={**dict(zip(self.series_names(), state.scalars())), **final},
            resumed_from=checkpoint.path if checkpoint is not None else None,
            steps_this_session=state.fields.step - step0,
            last_checkpoint=self.last_checkpoint,
            rejected_steps=state.fields.rejected,
            max_error_estimate=state.integrator.max_error if plan.rtol is not None else None,
            units=self.units(),
        )

    @staticmethod
    @contextmanager
    def _sidecar(writer: RunWriter) -> Iterator[None]:
        """The XDMF sidecar written beside run.h5 once the writer has closed it (also when
        the run stops early), so ParaView can open what is there."""
        failed = True
        try:
            yield
            failed = False
        finally:
            if writer.path.is_file() and not writer.abandoned:
                try:
                    write_xdmf(writer.path)
                except (OSError, TumorsimError) as exc:  # derived from run.h5: never worth losing the run for
                    (log.debug if failed else log.warning)("could not write the XDMF sidecar of %s: %s",
                                                           writer.path, exc)

    @contextmanager
    def _writing(self, writer: RunWriter, t: float) -> Iterator[None]:
        """A failed write to run.h5 (disk full...) as one SimulationError naming the last checkpoint."""
        try:
            yield
        except (OSError, RuntimeError) as exc:  # h5py raises RuntimeError for some failed writes
            writer.abandon()  # never let HDF5 touch the disk again (nor crash closing it)
            failed_at = getattr(exc, "failed_at", None)  # the writer thread's record, written after t
            raise SimulationError(
                f"writing {writer.path} failed at t = {t if failed_at is None else failed_at:.6g}: "
                f"{getattr(exc, 'strerror', None) or exc}{self._resume_hint()}"
            ) from None

    def _resume_hint(self, blow_up: bool = False) -> str:
        if self.last_checkpoint is None:
            return "; no checkpoint yet: start again" + (" with a lower time.dt or time.safety" if blow_up else "")
        return f"; last good checkpoint: {self.last_checkpoint} (continue with --resume)" + (
            "; a resume may lower time.dt or time.safety" if blow_up else "")

    def _step_to(self, state: RunningState, t_event: float, after_step: Callable[[FieldState], bool]) -> bool:
        """advance(), with a blow-up error naming the last good checkpoint."""
        try:
            return self.advance(state, t_event, after_step, check=False)  # the loop checks at records
        except SimulationError as exc:
            raise SimulationError(f"{exc}{self._resume_hint(blow_up=True)}") from None

    def _checked(self, state: RunningState, record_peak: bool = True):
        try:
            return state.integrator.check(state.fields, record_peak)
        except SimulationError as exc:
            raise SimulationError(f"{exc}{self._resume_hint(blow_up=True)}") from None
