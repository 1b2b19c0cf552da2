"""What a run would do and need, computed without running it: `tumorsim run --dry-run`.

Public API:
    DryRunReport                        the plan, memory, output size and runtime estimate
        .lines() -> list[str]           as the CLI prints it
    dry_run_device(backend, device, device_memory) -> Backend | StatedDevice   checked first
    dry_run(sim, backend) -> DryRunReport
        refuses (SimulationError) a grid that does not fit, like a run would; `backend`
        may be a StatedDevice (solver/run/devices.py): a GPU planned for, not queried
    output_bytes(sim) -> dict           expected size of the run's files
    seconds_per_step(sim, backend)      measured on a few steps (CPU only)

It writes nothing. The runtime is estimated from a few steps on the run's own initial
state when the backend is the CPU and the grid is small enough to time quickly;
otherwise it is reported as unknown. The static fields and the plan are the
Simulation's own: nothing is built twice.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from solver.backends.base import Backend
from solver.errors import ConfigError, SimulationError
from solver.io.run_file import RUN_PRODUCTS
from solver.run.devices import StatedDevice
from solver.run.plan import integrator_dt, steps_for
from solver.run.resources import MemoryEstimate, free_device_memory
from solver.text import duration, format_bytes


@dataclass(frozen=True)
class IntegratorOption:
    """One integrator as this config would run it."""

    name: str
    dt: float
    steps: int
    implicit: tuple[str, ...]  # species with implicit diffusion
    chosen: bool


@dataclass(frozen=True)
class DryRunReport:
    """Everything `--dry-run` reports (the simulation, the backend, and what they need)."""

    sim: object  # the Simulation
    backend_name: str
    device: str
    memory: MemoryEstimate
    free: int | None  # free memory where the fields go (GPU, or host RAM)
    output: dict[str, int]
    folder_holds_run: bool
    seconds_per_step: float | None
    options: tuple[IntegratorOption, ...]
    stated: bool = False  # the device was stated on the command line (no GPU queried)

    def lines(self) -> list[str]:
        sim = self.sim
        cfg, plan, grid = sim.config, sim.plan, sim.grid
        unit = f" {sim.model.time_unit}" if sim.model.time_unit else ""
        length = f" {grid.length_unit}" if grid.length_unit else ""
        out = [f"dry run of {cfg.name!r}: nothing is written"]
        out.append(
            f"  grid {grid.shape} = {grid.size} cells of {' x '.join(f'{h:g}' for h in grid.spacing)}{length}; "
            f"{len(sim.model.species)} species ({', '.join(sim.model.names)}), {len(sim.model.maps)} map(s), {sim.dtype}"
        )
        out.append(f"  units: {sim.model.units.describe()}")
        if not math.isfinite(plan.dt_bound):
            why = f"nothing limits it ({plan.limited_by}): one step per time-series record"
        elif cfg.time.dt == "auto":
            why = f"time.safety {cfg.time.safety:g} x the stability bound {plan.dt_bound:.6g}, set by {plan.limited_by}"
        else:
            why = f"time.dt as given; the stability bound is {plan.dt_bound:.6g}, set by {plan.limited_by}"
        auto = "auto: " if cfg.time.integrator == "auto" else ""
        out.append(f"  integrator {plan.integrator.name}, order {plan.order} ({auto}{plan.integrator.reason})")
        controlled = plan.controlled
        out.append(f"  {plan.step_summary()}{unit}: {why}")
        if plan.rtol is not None:
            out.append(f"  error control: a step whose estimated local error exceeds atol + {plan.rtol:g} |u| in any "
                       "cell is retaken smaller; steps grow while the estimate allows (time.rtol, time.atol)")
        if plan.max_change is not None:
            out.append(f"  step-size control: a step in which a species changes by more than {plan.max_change:g} "
                       "of its value is retaken with half the step (time.max_change)")
        out.append(
            f"  {'at least ' if controlled else ''}{plan.estimated_steps} steps to t = {cfg.time.end:g}{unit}; "
            f"{len(plan.snapshot_times)} snapshots, {len(plan.series_times)} time-series records"
        )
        m = self.memory
        out.append(
            f"  memory on {self.device} ({self.backend_name}): {format_bytes(m.device)} = fields "
            f"{format_bytes(m.fields)} (double-buffered) + maps {format_bytes(m.maps)} + scratch "
            f"{format_bytes(m.scratch)}; host: {format_bytes(m.setup)} to set up"
        )
        free = format_bytes(self.free) if self.free is not None else "unknown"
        if self.stated:
            out.append(f"  GPU memory stated: {free}; the run needs {format_bytes(m.device)} of it "
                       f"({m.device / self.free:.0%}; a real run checks what the driver reports free)")
        else:
            out.append(f"  free on the GPU: {free}" if self.backend_name == "cupy" else f"  RAM available: {free}")
        sizes = ", ".join(f"{k} {format_bytes(v)}" for k, v in self.output.items())
        out.append(f"  output in {sim.out_dir}: up to {format_bytes(sum(self.output.values()))} uncompressed ({sizes})")
        if self.folder_holds_run:
            out.append(f"  note: {sim.out_dir} already holds a run: a run needs --overwrite (or --resume to continue it)")
        per_step = self.seconds_per_step
        if per_step is None:
            why = ("measured only on the CPU backends" if self.backend_name == "cupy" else "grid too large to time here")
            if self.stated:
                why = "no GPU here to time it on"
            out.append(f"  runtime: unknown ({why})")
        else:
            out.append(f"  runtime: about {duration(per_step * plan.estimated_steps)} "
                       f"({per_step * 1e3:.3g} ms per step, measured on 3 steps; records and files add to it)")
        for o in self.options:
            detail = f", implicit diffusion of {', '.join(o.implicit)}" if o.implicit else ""
            # only this run's integrator is timed; the others' step counts are at their bounds
            projected = f", about {duration(per_step * o.steps)}" if per_step is not None and o.chosen else ""
            chosen = " (this run)" if o.chosen else ""
            out.append(f"  integrator {o.name}{chosen}: dt = {o.dt:.4g}{unit}, {o.steps} steps{detail}{projected}")
        return out


def dry_run_device(backend: str, device: str | None, device_memory: str | None) -> Backend | StatedDevice:
    """What a dry run plans for, before the Simulation is built: the GPU stated by
    `--device` / `--device-memory` (no CUDA call), else the backend of that name.

    Raises:
        ConfigError: a stated device with a CPU backend, an unknown device, a bad size.
        BackendError: --backend gpu without a usable GPU and none stated (the message says how
            to state one).
    """
    from solver.backends.registry import get_backend
    from solver.errors import BackendError
    from solver.run.devices import DEVICE_MEMORY, stated_device

    if device is not None or device_memory is not None:
        if backend in ("cpu", "numpy"):
            raise ConfigError("--device and --device-memory state the GPU a --backend gpu run is planned for; "
                              f"the backend here is {backend} (use --backend gpu, or drop them to plan for this CPU)")
        return stated_device(device, device_memory)
    try:
        return get_backend(backend)
    except BackendError as exc:
        if backend != "gpu":
            raise
        raise BackendError(f"{exc}; to plan a GPU run on this machine, state the GPU: --device NAME "
                           f"({', '.join(DEVICE_MEMORY)}) or --device-memory SIZE (e.g. 80GB)") from None


def dry_run(sim, backend: Backend | StatedDevice) -> DryRunReport:
    """The dry-run report of `sim` on `backend`; refuses a grid that does not fit.

    Raises:
        SimulationError: the grid does not fit in the device's (or the host's) memory.
        ConfigError: it does not fit in the memory of a StatedDevice.
    """
    memory = sim.memory_for(backend)
    free = free_device_memory(backend)
    try:
        sim.check_device_memory(backend)  # refuses a grid that does not fit
    except SimulationError as exc:
        if isinstance(backend, StatedDevice):  # the stated device is input: exit status 2
            raise ConfigError(f"{exc} (as --device/--device-memory state it)") from None
        raise
    plan = sim.plan
    events = plan.stepping_events
    options = []
    for name, choice in plan.candidates.items():
        dt = integrator_dt(sim.config.time, choice.bound, events)
        options.append(IntegratorOption(name, dt, steps_for(dt, events),
                                        tuple(sim.model.names[i] for i in sorted(choice.implicit_diffusion)),
                                        (name == "imex") == bool(plan.integrator.implicit_diffusion)))
    return DryRunReport(
        sim=sim, backend_name=backend.name, device=backend.device, memory=memory, free=free,
        output=output_bytes(sim),
        folder_holds_run=any((sim.out_dir / name).exists() for name in RUN_PRODUCTS),
        seconds_per_step=seconds_per_step(sim, backend), options=tuple(options),
        stated=isinstance(backend, StatedDevice),
    )


def output_bytes(sim) -> dict[str, int]:
    """`sim`'s expected file sizes, uncompressed (gzip usually does better): run.h5's snapshots,
    maps and time series, and the checkpoints kept."""
    cells, size = sim.grid.size, sim.dtype.itemsize
    n_species = len(sim.model.species)
    n_series = 3 * n_species + len(sim.series_names()) + len(sim.model.diagnostics) + 1
    keep = sim.config.output.checkpoint.keep if sim.config.output.checkpoint else 1
    return {
        "snapshots": len(sim.plan.snapshot_times) * n_species * cells * size,
        "maps": len(sim.model.maps) * cells * size,
        "time series": len(sim.plan.series_times) * n_series * 8,
        "checkpoints": keep * n_species * cells * size,
    }


def seconds_per_step(sim, backend: Backend, steps: int = 3, max_values: int = 1 << 22) -> float | None:
    """Wall seconds per step of `sim`'s integrator (all its stages, line solves and
    error estimate), measured on `steps` steps of the planned dt after one warm-up (which
    compiles the kernels of the compiled backend), on the CPU backends only and only for
    grids of at most `max_values` values; None otherwise. Rejected steps of error control
    are not counted."""
    if backend.name == "cupy" or sim.grid.size * len(sim.model.species) > max_values:
        return None
    state = sim.start(backend)
    step = state.integrator.step
    step(state.fields, 0.0, sim.plan.dt, state.systemic)
    started = time.perf_counter()
    for _ in range(steps):
        step(state.fields, 0.0, sim.plan.dt, state.systemic)
    return (time.perf_counter() - started) / steps
