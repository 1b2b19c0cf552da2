"""The largest grid that fits: bytes per cell on the device and the host.

Part of the benchmark harness (solver/bench/__init__.py explains what is measured).
"""

from __future__ import annotations

import functools
import logging
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from solver.backends.base import Backend
from solver.bench.cases import (
    DEPILLIS,
    DEVICE_HOST_MEMORY,
    GPU_MEMORY_80GB,
    SCRATCH_GRID_GPU,
    SCRATCH_GRIDS_CPU,
    ModelCase,
    case_config,
)
from solver.bench.report import BenchmarkReport
from solver.bench.timing import PreparedCase, fill_random, prepare_case
from solver.model import Model

log = logging.getLogger(__name__)


def persistent_bytes_per_cell(model: Model, dtype: np.dtype | str) -> int:
    """Device bytes per cell held for a whole run: u and u_new (S species each) and the maps."""
    return (2 * len(model.species) + max(len(model.maps), 1)) * np.dtype(dtype).itemsize


def largest_cube(bytes_per_cell: float, memory_bytes: float) -> int:
    """The largest n with n^3 cells x bytes_per_cell <= memory_bytes."""
    if not bytes_per_cell > 0:
        raise ValueError(f"bytes per cell must be > 0, got {bytes_per_cell!r}")
    n = round((memory_bytes / bytes_per_cell) ** (1 / 3))
    while n > 0 and n**3 * bytes_per_cell > memory_bytes:
        n -= 1
    while (n + 1) ** 3 * bytes_per_cell <= memory_bytes:
        n += 1
    return n


def _traced_peak(fn: Callable[[], Any]) -> int:
    """Peak bytes allocated (Python and NumPy) while fn runs, above what was held before."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
        del result
    finally:
        tracemalloc.stop()
    return peak - base


def _slope(sizes: Sequence[int], values: Sequence[int]) -> float:
    (a, b), (va, vb) = sizes, values
    return (vb - va) / (b**3 - a**3)


def _one_record(backend: Backend, diagnostics: Any, p: PreparedCase, u: Any, maps: Any) -> None:
    """What a run does at each time-series record: per-species reductions and diagnostics."""
    backend.field_stats(u, p.grid.cell_volume)
    diagnostics.evaluate(u, maps, 0.0, p.systemic)


def measure_record_scratch_cpu(case: ModelCase = DEPILLIS) -> float:
    """Scratch bytes per cell of one time-series record (field_stats + diagnostics), via NumPy.

    The record code (Backend.field_stats, DiagnosticsEvaluator) is the same on NumPy and
    CuPy, with the same temporaries, so tracemalloc on the CPU measures what the device
    needs on top of u, u_new and the maps.
    """
    from solver.backends.numpy_backend import NumpyBackend
    from solver.diagnostics import DiagnosticsEvaluator

    backend = NumpyBackend()
    peaks = []
    for n in SCRATCH_GRIDS_CPU:
        p = prepare_case(case, n, "float32")
        u = np.empty((len(p.model.species),) + p.grid.shape, p.dtype)
        fill_random(np.random.default_rng(5), u, p.model.names, case.ranges)
        maps = np.ones(p.maps_shape, p.dtype)
        diagnostics = DiagnosticsEvaluator(p.model, p.grid, backend, p.dtype)
        record = functools.partial(_one_record, backend, diagnostics, p, u, maps)
        record()  # warm-up: lambdify caches, first-call allocations
        peaks.append(_traced_peak(record))
    return max(0.0, _slope(SCRATCH_GRIDS_CPU, peaks))


def measure_host_setup_cpu(case: ModelCase = DEPILLIS) -> float:
    """Host bytes per cell at the peak of Simulation(config): initial fields, maps, stability bound."""
    from solver.run import Simulation

    Simulation(case_config(case, 8))  # warm-up: imports and sympy caches
    peaks = [_traced_peak(lambda n=n: Simulation(case_config(case, n))) for n in SCRATCH_GRIDS_CPU]
    return max(0.0, _slope(SCRATCH_GRIDS_CPU, peaks))


def measure_device_scratch_gpu(cupy: Any, backend: Backend, case: ModelCase = DEPILLIS,
                               n: int = SCRATCH_GRID_GPU) -> dict[str, float]:
    """Device bytes per cell: state allocated as a run does, then steps + one record + a snapshot copy.

    The CuPy pool keeps every block it ever allocated until free_all_blocks(), so its
    total after the work bounds the peak from above (fragmentation included).
    """
    from solver.diagnostics import DiagnosticsEvaluator

    pool = cupy.get_default_memory_pool()
    pool.free_all_blocks()
    p = prepare_case(case, n, "float32")
    shape = (len(p.model.species),) + p.grid.shape
    before = pool.total_bytes()
    u, u_new, maps = cupy.empty(shape, p.dtype), cupy.empty(shape, p.dtype), cupy.ones(p.maps_shape, p.dtype)
    fill_random(cupy.random.default_rng(7), u, p.model.names, case.ranges)
    cupy.cuda.get_current_stream().synchronize()
    pool.free_all_blocks()  # drop the random generator's scratch: only the state stays
    state = pool.total_bytes() - before
    stepper = backend.make_explicit_stepper(p.model, p.grid, p.dtype, p.implicit_sinks)
    for _ in range(4):
        stepper.step(u, u_new, maps, 0.0, p.dt, p.systemic)
        u, u_new = u_new, u
    backend.field_stats(u, p.grid.cell_volume)
    DiagnosticsEvaluator(p.model, p.grid, backend, p.dtype).evaluate(u, maps, 0.0, p.systemic)
    backend.to_host(u)
    cupy.cuda.get_current_stream().synchronize()
    peak = pool.total_bytes() - before
    del u, u_new, maps
    pool.free_all_blocks()
    cells = p.grid.size
    return {"grid": n, "state_bytes_per_cell": state / cells, "peak_bytes_per_cell": peak / cells}


def estimate_largest_grid(report: BenchmarkReport, cupy: Any = None, backend: Backend | None = None) -> None:
    """Bytes per cell of the chemoimmunotherapy model in float32, and the largest cube that fits."""
    p = prepare_case(DEPILLIS, 8, "float32")
    persistent = persistent_bytes_per_cell(p.model, "float32")
    scratch = measure_record_scratch_cpu()
    host_setup = measure_host_setup_cpu()
    device_per_cell = persistent + scratch
    out: dict[str, Any] = {
        "model": f"{DEPILLIS.name} ({len(p.model.species)} species + {len(p.model.maps)} map), float32",
        "persistent_bytes_per_cell": persistent,
        "persistent_breakdown": f"u {len(p.model.species)} x 4 + u_new {len(p.model.species)} x 4 + maps "
                                f"{max(len(p.model.maps), 1)} x 4",
        "record_scratch_bytes_per_cell (tracemalloc, CPU)": round(scratch, 1),
        "bytes_per_cell_device": round(device_per_cell, 1),
        "largest_cube_80GB": largest_cube(device_per_cell, GPU_MEMORY_80GB),
        "largest_cube_80GB_state_only": largest_cube(persistent, GPU_MEMORY_80GB),
        "host_setup_bytes_per_cell": round(host_setup, 1),
        "largest_cube_host_128GiB": largest_cube(host_setup, DEVICE_HOST_MEMORY) if host_setup > 0 else None,
        "assumptions": "80 GB = 80e9 bytes usable on the device; host setup = peak of Simulation(config) "
                       "(initial fields, maps and the stability bound in float64 on the full grid)",
    }
    try:  # the solver's own estimate (what `tumorsim run --dry-run` uses), as a cross-check
        from solver.run.resources import estimate_memory

        n = 64
        est = estimate_memory(len(p.model.species), len(p.model.maps), (n, n, n), np.dtype("float32"), "cupy")
        out["solver_estimate_device_bytes_per_cell"] = round(est.device / n**3, 1)
        out["solver_estimate_host_setup_bytes_per_cell"] = round(est.setup / n**3, 1)
    except (ImportError, TypeError, AttributeError) as exc:
        out["solver_estimate_device_bytes_per_cell"] = f"not available ({exc.__class__.__name__})"
    if cupy is not None and backend is not None:
        try:
            measured = measure_device_scratch_gpu(cupy, backend)
            if not measured["peak_bytes_per_cell"] > 0:
                raise RuntimeError(f"the CuPy pool reported no allocation ({measured})")
            free, total = cupy.cuda.runtime.memGetInfo()
            out["gpu_measured_peak_bytes_per_cell"] = round(measured["peak_bytes_per_cell"], 1)
            out["gpu_measured_state_bytes_per_cell"] = round(measured["state_bytes_per_cell"], 1)
            out["gpu_memory_total_bytes"] = int(total)
            out["largest_cube_this_gpu"] = largest_cube(measured["peak_bytes_per_cell"], free)
            out["largest_cube_80GB_measured"] = largest_cube(measured["peak_bytes_per_cell"], GPU_MEMORY_80GB)
        except Exception as exc:  # the estimate from the CPU still stands
            log.exception("device memory measurement failed")
            out["gpu_measured_peak_bytes_per_cell"] = f"error: {exc.__class__.__name__}: {exc}"
    report.largest_grid = out
