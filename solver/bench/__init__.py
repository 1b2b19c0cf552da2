"""Performance benchmark of the explicit step: `tumorsim bench` and benchmarks/bench.py.

Modules: cases (models, grids, targets), peers (the same step as array expressions),
timing, measure, memory (largest grid), report (rows, targets, JSON, Markdown),
kernel_report (the GPU kernels measured statically: registers, SASS, bytes per cell;
also `python -m solver.bench.kernel_report CONFIG`).

Public API:
    run_benchmark(small=False, sizes=None, out_dir=None, ..., kernels=True) -> BenchmarkReport
    static_kernel_report(report)     adds the static GPU kernel report (kernel_report.py)
    add_arguments(parser)            the options of `tumorsim bench` and benchmarks/bench.py
    run_from_args(args) -> BenchmarkReport
    BenchmarkReport                  rows, targets; .to_json(), .to_markdown(), .summary(), .write(dir)
    ArrayExpressionStep(model, grid, dtype, implicit_sinks, xp)
                                     the same step written as whole-array expressions (the peers)
    MODEL_CASES                      the benchmarked models, written as config data
    persistent_bytes_per_cell(model, dtype) -> int
    largest_cube(bytes_per_cell, memory_bytes) -> int

What is measured, and why
-------------------------
An explicit step is memory-bound: its floor is reading every
species once, writing it once and reading the static maps once, (2 S + M) x itemsize
bytes per cell. So each step is reported as ms/step, cell-steps/s and the *effective*
bandwidth, that minimal byte count over the measured time, and as a fraction of the
device's copy bandwidth measured in the same run (bytes read + written by a large
device-to-device copy). Peers compute the same step, same model, grid and inputs:

- "fused":          the solver's CupyExplicitStepper (one generated CUDA kernel per step),
                    built through backend.make_explicit_stepper as Simulation.start does;
- "cupy-expr":      ArrayExpressionStep on CuPy: one kernel per array operation;
- "jax-jit":        ArrayExpressionStep on jax.numpy under jax.jit (XLA fuses what it can);
- "compiled":       the solver's compiled CPU backend (NumbaExplicitStepper), every thread;
- "compiled-1t":    the same, one thread;
- "numpy-reference": the solver's NumpyExplicitStepper, the reference the CPU rows are
                    compared with (their `x solver` and `over_numpy`);
- "numpy-expr":     ArrayExpressionStep on NumPy, "straightforward NumPy";
- "compiled-imex1": a whole IMEX order-1 step against a whole explicit step
                    ("compiled-explicit1"), compiled backend, same dt.

Each peer is first checked against the solver's step on the same random input (the
largest relative difference per species is reported): a fast wrong step proves nothing.

Timing: warm-up first (kernel compilation, JIT, caches), fresh random non-zero inputs
before every repeat (outside the timed region), the median of the repeats. CUDA events
bracket a batch of k steps on the current stream (k chosen so a batch lasts about 10 ms,
so launch gaps are included the way a run sees them); jax runs on its own stream, so
its batches are timed with the host clock around `block_until_ready`; CPU steps with
the host clock, one step per repeat, the two CPU implementations interleaved on the
same inputs (a shared CPU's load changes hit both alike).

End to end: Simulation.run() with a snapshot every 100 steps; the share of wall time
outside the stepping kernels is 1 - steps x (median step time) / wall, the step timed
first on the run's own initial state through Simulation.start.

Largest grid: the device holds u, u_new (S species each) and the maps for the whole
run, plus scratch while the reductions of a time-series record run; the host builds
the initial state and the stability bound on the full grid in float64 first. Both are
measured per cell (tracemalloc on the CPU, the CuPy pool on a GPU) and turned into the
largest cube that fits.

Nothing here imports CuPy or JAX at module level: the CPU small mode runs without them.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import platform
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

from solver import __version__
from solver.backends.base import Backend
from solver.bench.cases import (
    DEPILLIS,
    E2E_CHECKPOINT_EVERY,
    E2E_GRID_FULL,
    E2E_GRID_SMALL,
    E2E_SNAPSHOT_EVERY,
    E2E_STEPS,
    E2E_STEPS_SMALL,
    GPU_CPU_PEER_GRIDS,
    GPU_GRIDS,
    MODEL_CASES,
    SMALL_GRIDS,
    ModelCase,
)
from solver.bench.measure import (
    _import_jax,
    measure_cpu_imex,
    measure_cpu_steps,
    measure_device_copy,
    measure_end_to_end,
    measure_gpu_steps,
    measure_host_copy,
)
from solver.bench.memory import estimate_largest_grid, largest_cube, persistent_bytes_per_cell
from solver.bench.peers import ArrayExpressionStep
from solver.bench.report import BenchmarkReport, StepRow, evaluate_targets
from solver.bench.timing import Budget, prepare_case

__all__ = [
    "DEPILLIS", "MODEL_CASES", "ArrayExpressionStep", "BenchmarkReport", "add_arguments", "largest_cube",
    "persistent_bytes_per_cell", "prepare_case", "run_benchmark", "run_from_args", "static_kernel_report",
]

log = logging.getLogger(__name__)


def environment(mode: str) -> dict[str, Any]:
    """Date, machine and versions for the report header."""
    from solver.backends.numpy_backend import cpu_name

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": mode,
        "tumorsim": __version__,
        "cpu": f"{cpu_name()} ({os.cpu_count()} logical CPUs)",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "sympy": sp.__version__,
        "load_average_at_start": " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "-",
    }


def _gpu_environment(cupy: Any, backend: Backend) -> dict[str, Any]:
    runtime = cupy.cuda.runtime
    props = runtime.getDeviceProperties(runtime.getDevice())
    free, total = runtime.memGetInfo()
    return {
        "device": backend.device,
        "gpu_memory": f"{total / 2**30:.1f} GiB ({free / 2**30:.1f} GiB free at start)",
        "multiprocessors": props.get("multiProcessorCount"),
        "cupy": cupy.__version__,
        "cuda_runtime": runtime.runtimeGetVersion(),
        "cuda_driver": runtime.driverGetVersion(),
    }


def run_benchmark(
    *,
    small: bool = False,
    sizes: Sequence[int] | None = None,
    out_dir: str | Path | None = None,
    use_jax: bool = True,
    end_to_end: bool = True,
    largest_grid: bool = True,
    repeats: int | None = None,
    budget_s: float | None = None,
    models: Sequence[str] | None = None,
    kernels: bool = True,
    compiled: bool = True,
) -> BenchmarkReport:
    """Measure the explicit step and its peers; judge the targets; optionally write files.

    Args:
        small: CPU only (no CUDA needed): NumPy fallback and straightforward NumPy at 32^3
            (float32 and float64), a short end-to-end run, the largest-grid estimate.
            Otherwise the full GPU suite (CuPy and a CUDA device required).
        sizes: cube edges to run instead of the defaults (float32 at each; float64 at the
            first in small mode, at 256 in full mode when 256 is among them).
        out_dir: write bench.json, bench.md and summary.txt there (nothing is written when None).
        use_jax: measure the jax.jit peer when JAX imports and runs on the GPU.
        end_to_end, largest_grid: include those sections.
        repeats: timed repeats per measurement (default 7 on the CPU at 32^3, 3 above, 15 on the GPU).
        budget_s: wall-clock budget; optional peers past it are skipped (and say so).
        models: names from MODEL_CASES (default both).
        compiled: measure the compiled CPU backend too (its first compile of each model
            costs seconds; cached on disk after).
        kernels: the static report of the GPU kernels (solver/bench/kernel_report.py, no GPU
            needed: NVRTC and cuobjdump from the `gpu` extra; SKIP with the reason without them).

    Raises:
        BackendError: full mode without CuPy or a CUDA device.
    """
    budget = Budget(budget_s)
    cases = [MODEL_CASES[m] for m in (models or MODEL_CASES)]
    report = BenchmarkReport(mode="small" if small else "full", meta=environment("small" if small else "full"))

    def save() -> None:  # the report so far, targets judged on what is measured
        report.targets = evaluate_targets(report)
        report.meta["benchmark_seconds"] = round(budget.elapsed, 1)
        if out_dir is not None:
            report.write(out_dir)

    with tempfile.TemporaryDirectory(prefix="tumorsim-bench-") as tmp:
        if small:
            _run_small(report, cases, sizes, repeats, end_to_end, Path(tmp), compiled)
            if largest_grid:
                estimate_largest_grid(report)
        else:
            _run_full(report, cases, sizes, repeats, use_jax, end_to_end, largest_grid, budget, Path(tmp), save)
    if kernels:
        static_kernel_report(report)
    save()
    if out_dir is not None:
        log.info("wrote bench.json, bench.md and summary.txt to %s", out_dir)
    return report


def _run_small(report: BenchmarkReport, cases: Sequence[ModelCase], sizes: Sequence[int] | None,
               repeats: int | None, end_to_end: bool, workdir: Path, compiled: bool = True) -> None:
    report.meta["device"] = "CPU only (small mode)"
    report.copy_bandwidth["cpu"] = measure_host_copy()
    grids = SMALL_GRIDS if sizes is None else tuple((n, "float32") for n in sizes) + ((sizes[0], "float64"),)
    for n, dtype in grids:
        for case in cases:
            measure_cpu_steps(report, case, n, dtype, repeats or (7 if n <= 48 else 3), compiled)
    if compiled:
        n = max(n for n, _ in grids)
        for case in cases:
            measure_cpu_imex(report, case, n, repeats or (7 if n <= 48 else 3))
    if end_to_end and DEPILLIS in cases:
        n = E2E_GRID_SMALL if sizes is None else min(sizes)
        measure_end_to_end(report, DEPILLIS, n, E2E_STEPS_SMALL, E2E_SNAPSHOT_EVERY, "cpu" if compiled else "numpy",
                           "gzip", workdir, checkpoint_every=E2E_SNAPSHOT_EVERY)
    report.notes.append("Small mode: CPU only; the GPU targets are SKIP. Timings are host-clock medians.")


def _run_full(report: BenchmarkReport, cases: Sequence[ModelCase], sizes: Sequence[int] | None,
              repeats: int | None, use_jax: bool, end_to_end: bool, largest_grid: bool, budget: Budget,
              workdir: Path, save: Callable[[], None]) -> None:
    """The GPU suite. Each case is guarded (a failure becomes a row note), and `save` writes
    the report so far after every section: a run cut short by a time limit keeps its numbers."""
    from solver.backends.cupy_backend import CupyBackend, import_cupy

    cupy = import_cupy()  # BackendError, saying why, when there is no GPU
    backend = CupyBackend()
    report.meta.update(_gpu_environment(cupy, backend))
    jax_modules = None
    if use_jax:
        jax, jnp, why = _import_jax()
        if jax is None:
            report.meta["jax"] = why
            report.notes.append(f"jax.jit peer skipped: {why}")
        else:
            report.meta["jax"] = f"{jax.__version__} on {jax.devices()[0]}"
            jax_modules = (jax, jnp)
    else:
        report.meta["jax"] = "not requested (--no-jax)"
    report.copy_bandwidth["gpu"] = measure_device_copy(cupy)
    pool = cupy.get_default_memory_pool()
    pool.free_all_blocks()
    report.copy_bandwidth["cpu"] = measure_host_copy()
    log.info("copy bandwidth: GPU %.0f GB/s, host %.1f GB/s", report.copy_bandwidth["gpu"]["reference"],
             report.copy_bandwidth["cpu"]["reference"])
    grids = GPU_GRIDS if sizes is None else tuple((n, "float32") for n in sizes) + (
        ((256, "float64"),) if 256 in sizes else ())
    save()
    for n, dtype in grids:
        for case in cases:
            try:
                measure_gpu_steps(report, cupy, backend, case, n, dtype, repeats or 15, jax_modules, budget)
            except Exception as exc:  # e.g. the fused kernel fails: keep the other cases
                log.exception("GPU step benchmark failed: %s %d^3 %s", case.name, n, dtype)
                report.steps.append(StepRow(case.name, n, dtype, "fused", backend.device,
                                            note=f"error: {exc.__class__.__name__}: {str(exc)[:160]}"))
            pool.free_all_blocks()  # the next case (and JAX) gets the memory back
            save()
    for n, dtype in GPU_CPU_PEER_GRIDS if sizes is None else ((min(sizes), "float32"),):
        for case in cases:
            if budget.exhausted():
                report.notes.append(f"CPU peers {case.name} at {n}^3 skipped: time budget")
                continue
            measure_cpu_steps(report, case, n, dtype, repeats or 3)
            save()
    if end_to_end and DEPILLIS in cases:
        n = E2E_GRID_FULL if sizes is None else min(sizes)
        try:  # warm-up run: compiles the reduction and diagnostics kernels outside the timed runs
            measure_end_to_end(BenchmarkReport("warm-up"), DEPILLIS, 16, 20, 10, "gpu", "none", workdir, cupy=cupy)
        except Exception:  # the timed runs below will say what is wrong
            log.exception("end-to-end warm-up run failed")
        for compression in ("gzip", "none"):
            if budget.exhausted():
                report.notes.append(f"end-to-end run ({compression}) skipped: time budget")
                continue
            try:
                measure_end_to_end(report, DEPILLIS, n, E2E_STEPS, E2E_SNAPSHOT_EVERY, "gpu", compression, workdir,
                                   checkpoint_every=E2E_CHECKPOINT_EVERY, cupy=cupy)
            except Exception as exc:  # report it, keep the rest of the run
                log.exception("end-to-end run failed")
                report.notes.append(f"end-to-end run ({compression}) failed: {exc.__class__.__name__}: {exc}")
            pool.free_all_blocks()
            save()
    if largest_grid:
        try:
            estimate_largest_grid(report, cupy, backend)
        except Exception as exc:  # report it; the step numbers stand
            log.exception("largest-grid estimate failed")
            report.notes.append(f"largest-grid estimate failed: {exc.__class__.__name__}: {exc}")
    report.notes.append("Full mode: GPU rows timed with CUDA events (batches of k steps, median); jax.jit with "
                        "the host clock around block_until_ready; CPU rows with the host clock.")


def static_kernel_report(report: BenchmarkReport) -> None:
    """The GPU kernels of configs/chemoimmuno_256.yaml measured statically (seconds, no GPU):
    report.kernels, or a note saying why not (its target line is then SKIP)."""
    from solver.bench import kernel_report as kr
    from solver.package_data import data_dir

    why = kr.tools_missing()
    if why is not None:
        report.kernels_skipped = f"{why}: pip install -e '.[gpu]'"
        report.notes.append(f"static GPU kernel report skipped: {report.kernels_skipped}")
        return
    try:
        report.kernels = kr.kernel_report(data_dir("configs") / "chemoimmuno_256.yaml")
    except Exception as exc:  # a compiler or parser failure: report it, keep the rest
        log.exception("static GPU kernel report failed")
        report.kernels_skipped = f"failed: {exc.__class__.__name__}: {str(exc)[:200]}"
        report.notes.append(f"static GPU kernel report {report.kernels_skipped}")


DEFAULT_OUT = Path("benchmarks") / "out"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `tumorsim bench` (and benchmarks/bench.py)."""
    parser.add_argument("--small", action="store_true",
                        help="CPU only, small grids, well under a minute (CI); no CUDA needed")
    parser.add_argument("--out", nargs="?", const=str(DEFAULT_OUT), default=None, metavar="DIR",
                        help=f"write bench.json, bench.md and summary.txt to DIR (default {DEFAULT_OUT}); "
                             "nothing is written without --out")
    parser.add_argument("--sizes", type=int, nargs="+", metavar="N",
                        help="cube edges instead of the defaults (small: 32; full: 128 256 384 + 256 float64)")
    parser.add_argument("--models", nargs="+", choices=sorted(MODEL_CASES), help="models to run (default: all)")
    parser.add_argument("--repeats", type=int, help="timed repeats per measurement")
    parser.add_argument("--no-jax", action="store_true", help="skip the jax.jit peer")
    parser.add_argument("--no-end-to-end", action="store_true", help="skip the end-to-end runs")
    parser.add_argument("--no-largest-grid", action="store_true", help="skip the largest-grid estimate")
    parser.add_argument("--no-kernels", action="store_true",
                        help="skip the static GPU kernel report (registers, SASS; NVRTC + cuobjdump, no GPU)")
    parser.add_argument("--no-compiled", action="store_true",
                        help="skip the compiled CPU backend (numba; its first compile of a model takes seconds)")
    parser.add_argument("--budget-s", type=float, metavar="S",
                        help="skip optional peers once the benchmark has run S seconds")


def run_from_args(args: argparse.Namespace) -> BenchmarkReport:
    """run_benchmark with the options of add_arguments."""
    return run_benchmark(
        small=args.small,
        sizes=args.sizes,
        out_dir=args.out,
        use_jax=not args.no_jax,
        end_to_end=not args.no_end_to_end,
        largest_grid=not args.no_largest_grid,
        kernels=not args.no_kernels,
        compiled=not args.no_compiled,
        repeats=args.repeats,
        budget_s=args.budget_s,
        models=args.models,
    )
