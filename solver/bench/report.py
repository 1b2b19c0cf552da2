"""Benchmark results: rows, targets and their PASS/FAIL lines, JSON and Markdown.

Part of the benchmark harness (solver/bench/__init__.py explains what is measured).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from solver.bench.cases import (
    CPU_TARGET_GRID,
    DEPILLIS,
    IMPLEMENTATIONS,
    MODEL_CASES,
    TARGET_COMPILED_OF_COPY,
    TARGET_COMPILED_OVER_NUMPY,
    TARGET_FRACTION_OF_COPY,
    TARGET_GRIDS,
    TARGET_IMEX_OVER_EXPLICIT,
    TARGET_LARGEST_CUBE,
    TARGET_OUTSIDE_KERNELS,
    TARGET_OVER_CUPY,
    TARGET_OVER_JAX,
)

log = logging.getLogger(__name__)


@dataclass
class StepRow:
    """One implementation of the step on one model, grid and precision."""

    model: str
    grid: int
    dtype: str
    impl: str
    device: str
    ms_per_step: float | None = None
    spread: float | None = None  # (max - min) / median over the repeats
    repeats: int = 0
    steps_per_repeat: int = 0
    cell_steps_per_s: float | None = None
    effective_gb_s: float | None = None
    fraction_of_copy: float | None = None
    slower_than_solver: float | None = None  # this time / the solver's time on the same device
    # (CPU rows: the median of the paired per-repeat ratios, robust to a shared CPU's load)
    max_rel_diff: float | None = None  # against the solver's step, same input
    over_numpy: float | None = None  # CPU rows: NumPy reference time / this time (paired median)
    note: str = ""


@dataclass
class EndToEndRow:
    """A whole run through Simulation.run(), with snapshots."""

    model: str
    grid: int
    dtype: str
    device: str
    compression: str
    steps: int
    snapshots: int
    snapshot_every_steps: int
    wall_s: float
    step_ms: float
    in_kernels_s: float
    outside_share: float
    setup_s: float
    note: str = ""


@dataclass
class Target:
    """A PASS/FAIL line against a target (benchmarks/README.md gives each target and why)."""

    name: str
    status: str  # PASS, FAIL, SKIP (not measured in this run, with the reason)
    value: float | None
    threshold: float
    detail: str


@dataclass
class BenchmarkReport:
    """Everything one benchmark run measured, and the targets judged on it."""

    mode: str
    meta: dict[str, Any] = field(default_factory=dict)
    copy_bandwidth: dict[str, dict[str, float]] = field(default_factory=dict)  # device -> numbers
    steps: list[StepRow] = field(default_factory=list)
    end_to_end: list[EndToEndRow] = field(default_factory=list)
    largest_grid: dict[str, Any] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    kernels: Any = None  # solver.bench.kernel_report.KernelReport: the GPU kernels measured statically
    kernels_skipped: str = ""  # why there is none (no NVRTC or cuobjdump here, or a failure)

    def find(self, model: str, grid: int, dtype: str, impl: str) -> StepRow | None:
        for row in self.steps:
            if (row.model, row.grid, row.dtype, row.impl) == (model, grid, dtype, impl):
                return row
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "meta": self.meta,
            "copy_bandwidth": self.copy_bandwidth,
            "steps": [dataclasses.asdict(r) for r in self.steps],
            "end_to_end": [dataclasses.asdict(r) for r in self.end_to_end],
            "largest_grid": self.largest_grid,
            "targets": [dataclasses.asdict(t) for t in self.targets],
            "notes": self.notes,
            "kernels_static": self.kernels.as_dict() if self.kernels is not None else self.kernels_skipped or None,
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, default=_json_default)

    def to_markdown(self) -> str:
        """The full tables, for benchmarks/RESULTS.md."""
        m = self.meta
        lines = [f"# tumorsim benchmark ({self.mode} mode)", ""]
        lines += [f"- {k}: {v}" for k, v in m.items()]
        lines += ["", "## Copy bandwidth (bytes read + written)", "",
                  "| device | method | GB/s | spread | size |", "|---|---|---|---|---|"]
        for device, c in self.copy_bandwidth.items():
            for method in ("memcpy", "copy_kernel", "host_copy"):
                if method in c:
                    lines.append(f"| {device} | {method} | {c[method]:.1f} | {_fmt(c.get(method + '_spread'), '.1%')} "
                                 f"| {_fmt_bytes(c.get('bytes'))} |")
            lines.append(f"| {device} | **reference** | **{c['reference']:.1f}** | | |")
        lines += ["", "## Explicit step", "", STEP_TABLE_NOTE, ""]
        lines += [f"- `{k}`: {v}" for k, v in IMPLEMENTATIONS.items()]
        lines += ["", STEP_TABLE_HEADER, "|---" * 13 + "|"]
        for r in self.steps:
            lines.append(
                f"| {r.model} | {r.grid}^3 | {r.dtype} | {r.impl} | {r.device} | {_fmt(r.ms_per_step, '.4g')} | "
                f"{_fmt(r.spread, '.1%')} | {_fmt(r.cell_steps_per_s and r.cell_steps_per_s / 1e9, '.3g')} | "
                f"{_fmt(r.effective_gb_s, '.1f')} | {_fmt(r.fraction_of_copy, '.1%')} | "
                f"{_fmt(r.slower_than_solver, '.2f')} | {_fmt(r.max_rel_diff, '.1e')} | {r.note} |")
        if self.end_to_end:
            lines += ["", "## End to end (Simulation.run, snapshots)", "", E2E_TABLE_NOTE, "", E2E_TABLE_HEADER,
                      "|---" * 12 + "|"]
            for e in self.end_to_end:
                lines.append(f"| {e.model} | {e.grid}^3 | {e.dtype} | {e.device} | {e.compression} | {e.steps} | "
                             f"{e.snapshots} (every {e.snapshot_every_steps}) | {e.wall_s:.3f} | {e.in_kernels_s:.3f} | "
                             f"{e.outside_share:.1%} | {e.setup_s:.2f} | {e.note} |")
        if self.largest_grid:
            lines += ["", "## Largest grid", ""]
            lines += [f"- {k}: {v}" for k, v in self.largest_grid.items()]
        if self.kernels is not None:
            lines += ["", self.kernels.to_markdown(targets=False).rstrip()]
        lines += ["", "## Targets", ""] + [f"    {_target_line(t)}" for t in self.targets]
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def summary(self) -> str:
        """A short plain-text table (the last thing a GPU check prints)."""
        lines = [f"tumorsim benchmark, {self.mode} mode: {self.meta.get('device', '')}"]
        for device, c in self.copy_bandwidth.items():
            lines.append(f"copy bandwidth ({device}): {c['reference']:.1f} GB/s")
        header = f"{'model':<13} {'grid':>5} {'dtype':<7} {'impl':<15} {'ms/step':>9} {'Gcell/s':>8} " \
                 f"{'GB/s':>7} {'of copy':>7} {'x solver':>8} {'rel diff':>8}"
        lines += [header, "-" * len(header)]
        for r in self.steps:
            lines.append(
                f"{r.model:<13} {r.grid:>5} {r.dtype:<7} {r.impl:<15} {_fmt(r.ms_per_step, '.4g'):>9} "
                f"{_fmt(r.cell_steps_per_s and r.cell_steps_per_s / 1e9, '.3g'):>8} "
                f"{_fmt(r.effective_gb_s, '.1f'):>7} {_fmt(r.fraction_of_copy, '.1%'):>7} "
                f"{_fmt(r.slower_than_solver, '.2f'):>8} {_fmt(r.max_rel_diff, '.1e'):>8}"
                + (f"  ({r.note})" if r.note else ""))
        for e in self.end_to_end:
            lines.append(f"end to end {e.model} {e.grid}^3 {e.device} ({e.compression}): {e.steps} steps, "
                         f"{e.snapshots} snapshots, wall {e.wall_s:.2f} s, outside kernels {e.outside_share:.1%}")
        if self.largest_grid:
            g = self.largest_grid
            lines.append(f"largest cube (depillis2006, float32): {g.get('bytes_per_cell_device')} B/cell on the "
                         f"device -> {g.get('largest_cube_80GB')}^3 on 80 GB; host setup "
                         f"{g.get('host_setup_bytes_per_cell')} B/cell -> {g.get('largest_cube_host_128GiB')}^3 "
                         "on a 128 GiB host")
        if self.kernels is not None:
            lines += self.kernels.table()
        lines += [_target_line(t) for t in self.targets]
        return "\n".join(lines)

    def write(self, out_dir: str | Path) -> tuple[Path, Path, Path]:
        """bench.json, bench.md and summary.txt in out_dir (created)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = (out / "bench.json", out / "bench.md", out / "summary.txt")
        paths[0].write_text(self.to_json() + "\n", encoding="utf-8")
        paths[1].write_text(self.to_markdown(), encoding="utf-8")
        paths[2].write_text(self.summary() + "\n", encoding="utf-8")
        return paths


STEP_TABLE_NOTE = (
    "Effective bandwidth counts only (2 S + M) x itemsize bytes per cell (each species read once and "
    "written once, static maps read once). `x solver`: this time over the solver's own step on the same "
    "device (the fused kernel on the GPU, the NumPy reference on the CPU). `rel diff`: largest difference "
    "from the solver's step on the same input, relative to each species' largest value."
)
STEP_TABLE_HEADER = (
    "| model | grid | dtype | implementation | device | ms/step | spread | Gcell-steps/s | eff. GB/s | "
    "of copy | x solver | rel diff | note |"
)
E2E_TABLE_NOTE = ("Outside share = 1 - steps x (median step time, measured on the run's own initial state "
                  "through Simulation.start) / wall time of the run loop (stepping, records, writes).")
E2E_TABLE_HEADER = (
    "| model | grid | dtype | device | compression | steps | snapshots | wall s | in kernels s | outside | "
    "setup s | note |"
)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _fmt(value: float | None, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, spec)


def _fmt_bytes(n: float | None) -> str:
    return "-" if n is None else f"{n / 2**20:.0f} MiB"


def _target_line(t: Target) -> str:
    return f"{t.status}: {t.name}: {t.detail}"


def evaluate_targets(report: BenchmarkReport) -> list[Target]:
    """PASS/FAIL lines against the targets; SKIP where this run did not measure it."""
    targets: list[Target] = []
    gpu = report.mode == "full"
    for case in MODEL_CASES:
        for n in TARGET_GRIDS:
            where = f"{case} {n}^3 float32"
            fused = report.find(case, n, "float32", "fused")
            if not gpu or fused is None or fused.fraction_of_copy is None:
                why = "needs the GPU (full mode)" if not gpu else "not measured at this grid in this run"
                targets.append(Target(f"fused step >= 85% of copy bandwidth, {where}", "SKIP", None,
                                      TARGET_FRACTION_OF_COPY, why))
            else:
                v = fused.fraction_of_copy
                targets.append(Target(f"fused step >= 85% of copy bandwidth, {where}",
                                      "PASS" if v >= TARGET_FRACTION_OF_COPY else "FAIL", v, TARGET_FRACTION_OF_COPY,
                                      f"{v:.1%} ({fused.effective_gb_s:.0f} of "
                                      f"{report.copy_bandwidth['gpu']['reference']:.0f} GB/s)"))
            for impl, threshold, label in (("cupy-expr", TARGET_OVER_CUPY, "plain CuPy"),
                                           ("jax-jit", TARGET_OVER_JAX, "jax.jit")):
                name = f"fused step >= {threshold:g}x {label}, {where}"
                peer = report.find(case, n, "float32", impl)
                if not gpu or peer is None or peer.slower_than_solver is None:
                    why = "needs the GPU (full mode)" if not gpu else (
                        peer.note if peer else "not measured at this grid in this run")
                    targets.append(Target(name, "SKIP", None, threshold, why or "not measured"))
                else:
                    v = peer.slower_than_solver
                    targets.append(Target(name, "PASS" if v >= threshold else "FAIL", v, threshold,
                                          f"{v:.2f}x ({peer.ms_per_step:.4g} vs {peer.ms_per_step / v:.4g} ms/step)"))
    for e in report.end_to_end:
        name = f"time outside stepping kernels < 5%, {e.model} {e.grid}^3 {e.compression}, snapshot every " \
               f"{e.snapshot_every_steps} steps"
        if not e.device.startswith("GPU"):
            targets.append(Target(name, "SKIP", e.outside_share, TARGET_OUTSIDE_KERNELS,
                                  f"{e.outside_share:.1%} on the CPU (the target is for the GPU)"))
        else:
            targets.append(Target(name, "PASS" if e.outside_share < TARGET_OUTSIDE_KERNELS else "FAIL",
                                  e.outside_share, TARGET_OUTSIDE_KERNELS,
                                  f"{e.outside_share:.1%} of {e.wall_s:.2f} s"))
    targets += _cpu_targets(report)
    targets += _kernel_targets(report)
    g = report.largest_grid
    if g:
        measured = g.get("largest_cube_80GB_measured")
        n = measured or g["largest_cube_80GB"]
        per_cell = g["gpu_measured_peak_bytes_per_cell"] if measured else g["bytes_per_cell_device"]
        how = "measured on this GPU" if measured else "estimated on the CPU"
        targets.append(Target("largest cube of the chemoimmunotherapy model >= 1024^3 in 80 GB of GPU memory",
                              "PASS" if n >= TARGET_LARGEST_CUBE else "FAIL", float(n), TARGET_LARGEST_CUBE,
                              f"{n}^3 predicted ({per_cell} B/cell, {how})"))
        host = g.get("largest_cube_host_128GiB")
        if host:
            targets.append(Target("... and its setup on a 128 GiB GPU host >= 1024^3",
                                  "PASS" if host >= TARGET_LARGEST_CUBE else "FAIL", float(host),
                                  TARGET_LARGEST_CUBE, f"{host}^3 ({g['host_setup_bytes_per_cell']} B/cell at the "
                                  "peak of Simulation(config), tracemalloc)"))
    return targets


def _cpu_targets(report: BenchmarkReport) -> list[Target]:
    """The compiled CPU backend's targets, de Pillis 128^3 float32 (other grids and models: INFO)."""
    out: list[Target] = []
    grid, case = CPU_TARGET_GRID, DEPILLIS.name

    def judged(name: str, impl: str, value_of, threshold: float, passes, detail) -> None:
        row = report.find(case, grid, "float32", impl)
        if row is None or value_of(row) is None:
            seen = [r for r in report.steps if r.impl == impl and value_of(r) is not None]
            info = "; ".join(f"{r.model} {r.grid}^3 {r.dtype}: {detail(r)}" for r in seen)
            out.append(Target(name, "SKIP", None, threshold,
                              f"not measured at {grid}^3" + (f" (informative: {info})" if info else "")))
            return
        v = value_of(row)
        out.append(Target(name, "PASS" if passes(v) else "FAIL", v, threshold, detail(row)))

    judged(f"compiled CPU step >= {TARGET_COMPILED_OVER_NUMPY:g}x the NumPy reference, one thread, {case} "
           f"{grid}^3 float32", "compiled-1t", lambda r: r.over_numpy, TARGET_COMPILED_OVER_NUMPY,
           lambda v: v >= TARGET_COMPILED_OVER_NUMPY,
           lambda r: f"{r.over_numpy:.2f}x ({r.ms_per_step:.4g} ms/step, paired median, spread {r.spread:.0%})")
    judged(f"compiled CPU step >= {TARGET_COMPILED_OF_COPY:.0%} of the host copy bandwidth, all threads, {case} "
           f"{grid}^3 float32", "compiled", lambda r: r.fraction_of_copy, TARGET_COMPILED_OF_COPY,
           lambda v: v >= TARGET_COMPILED_OF_COPY,
           lambda r: f"{r.fraction_of_copy:.1%} ({r.effective_gb_s:.2f} GB/s, {r.ms_per_step:.4g} ms/step; "
                     f"{r.device})")
    judged(f"IMEX order-1 step <= {TARGET_IMEX_OVER_EXPLICIT:g}x the explicit step, compiled CPU, {case} "
           f"{grid}^3 float32", "compiled-imex1", lambda r: r.slower_than_solver, TARGET_IMEX_OVER_EXPLICIT,
           lambda v: v <= TARGET_IMEX_OVER_EXPLICIT,
           lambda r: f"{r.slower_than_solver:.2f}x ({r.ms_per_step:.4g} ms per IMEX step, paired median)")
    return out


def _kernel_targets(report: BenchmarkReport) -> list[Target]:
    """The static GPU kernel lines (solver/bench/kernel_report.py); SKIP when not measured."""
    from solver.bench.kernel_report import TARGET_SASS_PER_CELL, target_name

    if report.kernels is None:
        why = report.kernels_skipped or "not requested (--no-kernels)"
        return [Target(target_name(), "SKIP", None, TARGET_SASS_PER_CELL, why)]
    return [Target(name, status, value, threshold, detail)
            for status, name, value, threshold, detail in report.kernels.targets()]
