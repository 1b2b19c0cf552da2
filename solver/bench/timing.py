"""Timing helpers: host and CUDA-event timers, random inputs, prepared cases.

Part of the benchmark harness (solver/bench/__init__.py explains what is measured).
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from solver.bench.cases import ModelCase, case_config
from solver.bench.report import StepRow
from solver.grid import Grid
from solver.model import Model, build_model

log = logging.getLogger(__name__)


class Budget:
    """Wall-clock budget of the whole run: optional measurements are skipped past it."""

    def __init__(self, seconds: float | None) -> None:
        self.start = time.perf_counter()
        self.seconds = seconds

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def exhausted(self) -> bool:
        return self.seconds is not None and self.elapsed > self.seconds


def _median_spread(samples: Sequence[float]) -> tuple[float, float]:
    med = statistics.median(samples)
    return med, (max(samples) - min(samples)) / med if med > 0 else 0.0


def time_host(step: Callable[[], None], refill: Callable[[], None], repeats: int) -> list[float]:
    """Seconds per call of `step`: one warm-up call, then `repeats` calls on fresh inputs."""
    refill()
    step()
    samples = []
    for _ in range(repeats):
        refill()
        t0 = time.perf_counter()
        step()
        samples.append(time.perf_counter() - t0)
    return samples


def time_host_interleaved(steps: Sequence[Callable[[], None]], refill: Callable[[], None],
                          repeats: int) -> list[list[float]]:
    """Seconds per call of each of `steps`, timed side by side on the same fresh inputs.

    One warm-up call each; then per repeat one refill and every step once, the order
    reversed on alternate repeats, so that a change of machine load during the run (a
    shared CPU) hits every implementation alike.
    """
    refill()
    for step in steps:
        step()
    samples: list[list[float]] = [[] for _ in steps]
    for r in range(repeats):
        refill()
        order = range(len(steps)) if r % 2 == 0 else reversed(range(len(steps)))
        for i in order:
            t0 = time.perf_counter()
            steps[i]()
            samples[i].append(time.perf_counter() - t0)
    return samples


def time_cuda(cupy: Any, steps: Callable[[int], None], refill: Callable[[], None], repeats: int,
              batch_ms: float = 10.0, max_batch: int = 500) -> tuple[list[float], int]:
    """Seconds per step from CUDA events around batches of k steps on the current stream.

    Warm-up: two steps, then one timed step sets k so that a batch lasts about batch_ms.
    """
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    refill()
    steps(2)
    start.record()
    steps(1)
    end.record()
    end.synchronize()
    one = max(cupy.cuda.get_elapsed_time(start, end), 1e-3)
    k = int(min(max_batch, max(1, math.ceil(batch_ms / one))))
    samples = []
    for _ in range(repeats):
        refill()
        start.record()
        steps(k)
        end.record()
        end.synchronize()
        samples.append(cupy.cuda.get_elapsed_time(start, end) / 1e3 / k)
    return samples, k


def max_rel_diff(xp: Any, a: Any, b: Any) -> float:
    """max |a - b| per species over max |b| of that species; the largest over species."""
    n = a.shape[0]
    diff = xp.abs(a - b).reshape(n, -1).max(axis=1)
    scale = xp.abs(b).reshape(n, -1).max(axis=1)
    scale = xp.where(scale > 0, scale, 1)
    worst = float((diff / scale).max())
    return worst if math.isfinite(worst) else math.inf


def fill_random(rng: Any, u: Any, names: Sequence[str], ranges: dict[str, tuple[float, float]]) -> None:
    """Fresh uniform random values in each species' range, in place (never zeros).

    rng: a numpy or cupy Generator (xp.random.default_rng), made once per case and drawn
    on for every refill: each call gives new values.
    """
    for i, name in enumerate(names):
        lo, hi = ranges.get(name, (0.5, 1.5))
        rng.random(dtype=u.dtype, out=u[i])
        u[i] *= u.dtype.type(hi - lo)
        u[i] += u.dtype.type(lo)


@dataclass
class PreparedCase:
    """A model on a grid, ready to step: everything the steppers and peers share."""

    case: ModelCase
    n: int
    dtype: np.dtype
    model: Model
    grid: Grid
    dt: float
    implicit_sinks: bool
    systemic: tuple[float, ...]

    @property
    def cells(self) -> int:
        return self.grid.size

    @property
    def minimal_bytes(self) -> int:
        """Bytes one step must move: each species read and written once, each map read once."""
        return (2 * len(self.model.species) + len(self.model.maps)) * self.dtype.itemsize * self.cells

    @property
    def maps_shape(self) -> tuple[int, ...]:
        return (max(len(self.model.maps), 1),) + self.grid.shape  # as Simulation.start allocates


_dt_cache: dict[tuple[str, str], tuple[float, tuple[float, ...]]] = {}


def prepare_case(case: ModelCase, n: int, dtype: str) -> PreparedCase:
    """Model, grid and dt for `case` at n^3.

    dt and the systemic scalars at t = 0 come from a Simulation of the same config at
    16^3: the stability bound depends on the spacing and the (constant) initial fields,
    not on the grid size, and Simulation at 384^3 would spend half a minute of host time
    evaluating it in float64 on every cell. The stepper itself is built at n^3.
    """
    from solver.integrators.globals import GlobalsEvaluator
    from solver.integrators.systemic import SystemicRuntime
    from solver.run import Simulation

    config = case_config(case, n, dtype)
    model = build_model(config)
    key = (case.name, dtype)
    if key not in _dt_cache:
        small = Simulation(case_config(case, 16, dtype))
        runtime = SystemicRuntime(small.model, GlobalsEvaluator(small.model, small.grid), small.static.maps)
        runtime.apply_boluses(0.0)
        # Systemic scalars that are zero at t = 0 (no drug given yet) set to 1: non-zero inputs.
        values = tuple(float(v) if v != 0 else 1.0 for v in runtime.values(0.0, fields=small.static.initial))
        _dt_cache[key] = (small.plan.dt, values)
    dt, systemic = _dt_cache[key]
    grid = Grid((n, n, n), config.grid.spacing3, config.grid.length_unit)
    return PreparedCase(case, n, np.dtype(dtype), model, grid, dt, case.reactions == "linearly-implicit", systemic)


def _fill_row(row: StepRow, prepared: PreparedCase, samples: Sequence[float], copy_gb_s: float | None) -> None:
    med, spread = _median_spread(samples)
    row.ms_per_step = med * 1e3
    row.spread = spread
    row.repeats = len(samples)
    row.cell_steps_per_s = prepared.cells / med
    row.effective_gb_s = prepared.minimal_bytes / med / 1e9
    row.fraction_of_copy = row.effective_gb_s / copy_gb_s if copy_gb_s else None
