"""The GPU kernels measured statically, without a GPU: registers, spills, SASS, slow ops, bytes.

Public API:
    kernel_report(config, arch="sm_90", dtype=None, variants="bench") -> KernelReport
    KernelReport                 .rows (KernelStats), .fast_math (KernelStats of the explicit
                                 step with --use_fast_math), .targets(), .to_markdown(), .summary()
    KernelStats                  one compiled kernel: resources, SASS counts, bytes per cell
    kernel_sources(config, dtype, variants) -> list[KernelSource]
    compile_cubin(source, arch, fast_math=False, options=...) -> (cubin, ptxas log)
    parse_ptxas_log(log, entry) -> dict      registers, spills, stack
    parse_resource_usage(text, entry) -> dict    REG, SHARED, LOCAL, CONSTANT[0], STACK
    parse_sass(text, entry) -> SassCounts
    findcuobjdump() -> str | None
    main(argv)                   python -m solver.bench.kernel_report CONFIG [--fast-math] [--variants run]

How it is measured
------------------
Each kernel's source is built as solver/backends/cupy_backend.py builds it (the generated
explicit step and rates from solver/backends/cuda_codegen.py; the line and transport
solves from their kernels/*.cu templates with `typedef float|double real;`), compiled
by NVRTC to an sm_90 cubin with `-Xptxas=-v` (the compiler CuPy's RawModule uses at
run time, from the nvidia-cuda-nvrtc wheel of the `gpu` extra), and read back with
cuobjdump (nvidia-cuda-cuobjdump wheel, same extra):

- registers, spill stores/loads, stack: NVRTC's ptxas log (`-Xptxas=-v`);
- shared, local and constant (bank 0) memory: `cuobjdump --dump-resource-usage`;
- SASS: `cuobjdump -sass`. `sass_total` is every instruction of the function less the
  padding after its end (NOP, and the BRA to itself that follows the last EXIT);
  `sass_body` leaves out the subroutines appended to the function (the CALL.REL
  targets: the IEEE division and sqrt slow paths, run only when the fast path's
  FCHK/range check fails). The explicit kernels run one thread per cell with no loop
  (checked: a backward branch would be a loop and is reported), so every body
  instruction runs at most once per cell: sass_body is an upper bound on the dynamic
  instructions per cell (branches not taken, e.g. the early return and inlined slow
  paths, make the real count smaller). The line kernels run one thread per LINE and
  loop over its cells: for them the instructions per cell are the loop bodies' sizes,
  reported as `loop bodies` (the compiler may unroll a loop, so a body can hold
  several cells' iterations).
- slow ops: FCHK (one per exact IEEE float division: the check that picks the slow
  path), MUFU (the special-function unit: RCP, EX2, LG2, RSQ, SQRT...; a quarter of the
  FP32 issue rate), CALL.REL (calls of the slow-path subroutines), BSSY (convergence
  barriers around each divergent slow path), and any double-precision instruction in
  a float32 kernel.

Bytes per cell (`bytes_floor`) are read from the kernel's arguments: for the explicit
kernels, the generated code's own loads and stores of the centre cell (`u[s * N_CELLS +
idx]`, `maps[m * N_CELLS + idx]`, each written array): each species read once, each
map read once, each output written once. The neighbour reads of a block (a tile of
BLOCK_Z x BLOCK_Y x BLOCK_X cells, cuda_codegen.launch_shape) hit rows that other blocks
read as their centre: they cost DRAM traffic only when the rows are evicted from L2 before
reuse. The reuse distance is one x-plane (NY NZ cells), so `window_bytes` (3 planes of
every species read with neighbours) is reported against the 50 MB L2 of GH100; past it
the DRAM bytes rise towards `bytes_no_reuse`: the 32-byte sectors a tile touches, every
one from DRAM once per tile (a tile's own reuse caught in L1, none between tiles): per
neighbour species its rows, the halo rows on its 4 y and x faces and one sector either
side of each row for the z-neighbours (none where the tile spans NZ). A 1-D block of 256
cells along z (the launch before the 3-D tiles) reads 5 rows per row written; a 32 x 8
tile 3.75.

The predicted fraction of copy bandwidth is a model, not a measurement: a roofline of
an issue-bound rate, (SMs x 4 schedulers x 32 lanes x clock) / sass_body cells/s, against
a bandwidth-bound rate, HBM bandwidth / bytes_floor cells/s, assuming the copy reaches
the same share of the HBM peak as the kernel would; fraction = min(1, issue rate /
bandwidth rate). It ignores latency, occupancy and the pipes' own limits (MUFU, FP64),
so it is an upper bound: a kernel it puts below 1 is issue-bound by its instruction count.

Nothing here imports CuPy at module level; the functions that compile need the `gpu`
extra (NVRTC through CuPy's binding, and cuobjdump).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from solver.backends.cuda_codegen import (
    explicit_rates_source,
    explicit_step_source,
    kernel_template,
    launch_shape,
    nvrtc_options,
    uses_fast_math,
)
from solver.bench.cubin import (  # noqa: F401 (re-exported: the report's public API)
    SassCounts,
    compile_cubin,
    cuobjdump,
    find_cuobjdump,
    parse_ptxas_log,
    parse_resource_usage,
    parse_sass,
    tools_missing,
)
from solver.config import RunConfig, load_config
from solver.grid import Grid
from solver.model import Model, build_model

log = logging.getLogger(__name__)

# The block sizes of solver/backends/cupy_backend.py (BLOCK_SIZE; _AxisLineSolve.THREADS).
BLOCK_SIZE = 256
LINE_THREADS = 128

# The target on the explicit step (benchmarks/README.md gives why).
TARGET_SASS_PER_CELL = 450
TARGET_CONFIG = "chemoimmuno-256"

# Spec sheets for the roofline model (NVIDIA H100 Tensor Core GPU datasheet and
# architecture whitepaper; H200 product brief): 132 SMs on the SXM parts, 4 warp
# schedulers per SM each issuing one warp instruction per clock, 1.98 GHz max boost
# clock (the SXM parts' max SM clock as nvidia-smi reports it), HBM3 3.35 TB/s (H100 SXM)
# and HBM3e 4.8 TB/s (H200 SXM), 50 MB L2 (GH100, both).
DEVICES = {
    "H100 SXM": {"sms": 132, "clock_hz": 1.98e9, "hbm_bytes_s": 3.35e12},
    "H200 SXM": {"sms": 132, "clock_hz": 1.98e9, "hbm_bytes_s": 4.8e12},
}
L2_BYTES = 50e6
ISSUE_PER_SM_PER_CLOCK = 4 * 32  # thread instructions: 4 schedulers x one 32-thread warp

# Per-cell arrays of the line kernels, from their arguments (kernels/*.cu): (read, written)
# in the floor; `extra` is what the source's second sweep re-reads and re-writes
# (back substitution over u and the scratch arrays) when a line leaves the cache.
LINE_ARRAYS = {
    "line_solve": {"read": 1, "written": 1, "extra": 2},  # u; factors are per line position (n)
    "line_solve_scaled": {"read": 2, "written": 1, "extra": 6},  # u, scale; scratch c', z
    "transport_solve": {"read": 2, "written": 1, "extra": 4},  # u, signal; scratch c'
}


@dataclass(frozen=True)
class KernelSource:
    """One kernel as the CuPy backend compiles it."""

    name: str  # what the report calls it
    entry: str  # the __global__ function
    source: str
    per_cell: bool  # one thread per cell (explicit kernels) or per line (line solves)
    bytes_floor: int | None = None  # per cell, read + written (explicit kernels)
    bytes_no_reuse: int | None = None  # per cell, every neighbour row from DRAM
    window_bytes: int | None = None  # 3 x-planes of the species read with neighbours
    used: str = ""  # where a run launches it
    variant: str = ""
    options: tuple[str, ...] = ("-std=c++17",)  # NVRTC options, as the CuPy backend passes them





@dataclass
class KernelStats:
    """One compiled kernel's static numbers."""

    kernel: KernelSource
    arch: str
    fast_math: bool
    registers: int
    spill_stores: int
    spill_loads: int
    stack: int
    shared: int
    local: int
    constant: int
    sass: SassCounts

    @property
    def name(self) -> str:
        return self.kernel.name

    def sass_per_cell(self) -> int | None:
        """Instructions per cell: the body of a one-thread-per-cell kernel without loops."""
        return self.sass.body if self.kernel.per_cell and not self.sass.loops else None

    def predicted_fraction_of_copy(self, device: str) -> float | None:
        """Roofline model (module docstring): min(1, issue-bound rate / bandwidth-bound rate)."""
        per_cell = self.sass_per_cell()
        if per_cell is None or not self.kernel.bytes_floor:
            return None
        d = DEVICES[device]
        issue_cells_s = d["sms"] * ISSUE_PER_SM_PER_CLOCK * d["clock_hz"] / per_cell
        bandwidth_cells_s = d["hbm_bytes_s"] / self.kernel.bytes_floor
        return min(1.0, issue_cells_s / bandwidth_cells_s)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kernel": self.name, "entry": self.kernel.entry, "variant": self.kernel.variant, "arch": self.arch,
            "fast_math": self.fast_math, "registers": self.registers, "spill_stores": self.spill_stores,
            "spill_loads": self.spill_loads, "stack": self.stack, "shared": self.shared, "local": self.local,
            "constant": self.constant, "sass_total": self.sass.total, "sass_body": self.sass.body,
            "sass_per_cell": self.sass_per_cell(), "loop_bodies": self.sass.loops, "slow_ops": self.sass.slow_ops(),
            "bytes_floor": self.kernel.bytes_floor, "bytes_no_reuse": self.kernel.bytes_no_reuse,
            "window_bytes": self.kernel.window_bytes, "used": self.kernel.used,
            "predicted_fraction_of_copy": {d: self.predicted_fraction_of_copy(d) for d in DEVICES},
        }


# --- tools -----------------------------------------------------------------------------

def kernel_sources(config: RunConfig, dtype: np.dtype | None = None, variants: str = "bench") -> list[KernelSource]:
    """The explicit step and rates, line and transport solves, as the CuPy backend builds them.

    variants "bench": the explicit kernels as the benchmark's fused step (every transport
    term explicit, the linear sinks implicit unless time.reactions is explicit): no field
    is evaluated. "run": as a run of this config builds them, from its run plan (which
    evaluates the initial fields on the whole grid: ~50 s at 256^3 on 2 cores), the IMEX
    flags of solver/integrators/imex.py (ImexIntegrator._make_stepper).
    """
    model = build_model(config)
    grid = Grid(tuple(config.grid.shape), config.grid.spacing3, model.length_unit)
    dtype = np.dtype(dtype or config.precision)
    flags, used = _explicit_flags(config, model, grid, dtype, variants)
    itemsize = dtype.itemsize
    out = []
    fast = config.gpu.fast_math
    math = "fast math (gpu.fast_math)" if uses_fast_math(dtype, fast) else "exact math"
    for name, rates in (("explicit step", False), ("explicit rates", True)):
        build = explicit_rates_source if rates else explicit_step_source
        source = build(model, grid, dtype, BLOCK_SIZE, **flags, fast_math=fast)
        floor, no_reuse, window = _explicit_bytes(source, model, grid, itemsize, launch_shape(grid.shape)[0])
        out.append(KernelSource(name, "explicit_rates" if rates else "explicit_step", source, True, floor, no_reuse,
                                window, used[name], f"{_describe(flags, model)}; {math}",
                                nvrtc_options(dtype, fast)))
    ctype = "float" if dtype == np.float32 else "double"
    for entry in ("line_solve", "line_solve_scaled", "transport_solve"):
        arrays = LINE_ARRAYS[entry]
        floor = (arrays["read"] + arrays["written"]) * itemsize
        out.append(KernelSource(entry.replace("_", " "), entry, f"typedef {ctype} real;\n" + kernel_template(f"{entry}.cu"),
                                False, floor, floor + arrays["extra"] * itemsize, None, used[entry],
                                f"{LINE_THREADS} threads per block, one per line"))
    return out


def _explicit_flags(config: RunConfig, model: Model, grid: Grid, dtype: np.dtype, variants: str
                    ) -> tuple[dict[str, Any], dict[str, str]]:
    """Keyword arguments of explicit_step_source, and where a run launches each kernel."""
    if variants == "bench":
        flags = {"implicit_sinks": config.time.reactions != "explicit"}
        used = {"explicit step": "benchmark's fused step", "explicit rates": "order 2 (explicit integrator)",
                "line_solve": "imex: compiled, not launched", "line_solve_scaled": "imex", "transport_solve": "imex + implicit_chemotaxis"}
        return flags, used
    if variants != "run":
        raise ValueError(f"variants must be 'bench' or 'run', got {variants!r}")
    from solver.fields.static import build_static_fields
    from solver.run.plan import make_plan

    plan = make_plan(config, model, grid, build_static_fields(model, grid, dtype))
    choice = plan.integrator
    moved = frozenset(choice.implicit_chemotaxis)
    delta = frozenset(choice.implicit_diffusion) - moved
    flags = {"implicit_sinks": choice.implicit_sinks}
    if choice.implicit_diffusion:  # ImexIntegrator._make_stepper
        no_diffusion = moved | delta if plan.order == 1 else moved
        flags.update(implicit_diffusion=no_diffusion, implicit_chemotaxis=moved, report_sinks=delta)
    imex = bool(choice.implicit_diffusion)
    used = {"explicit step": "every step" if plan.order == 1 else "compiled, not launched (order 2)",
            "explicit rates": "every stage (order 2)" if plan.order == 2 else "not compiled (order 1)",
            "line_solve": "compiled, not launched" if delta else "-",
            "line_solve_scaled": "every step" if delta else "-",
            "transport_solve": "every step" if imex and moved else "-"}
    return flags, used


def _describe(flags: dict[str, Any], model: Model) -> str:
    names = model.names
    parts = ["implicit sinks" if flags.get("implicit_sinks") else "explicit sinks"]
    for key, what in (("implicit_diffusion", "no diffusion of"), ("implicit_chemotaxis", "no chemotaxis of"),
                      ("report_sinks", "lambda out for")):
        if flags.get(key):
            parts.append(f"{what} {','.join(names[i] for i in sorted(flags[key]))}")
    return "; ".join(parts)


def _explicit_bytes(source: str, model: Model, grid: Grid, itemsize: int, block: tuple[int, int, int]
                    ) -> tuple[int, int, int]:
    """(floor, no-L2-reuse, 3-plane window) in bytes per cell, from the generated loads and
    stores; no-L2-reuse for tiles of `block` = (BLOCK_Z, BLOCK_Y, BLOCK_X) cells."""
    read = set(re.findall(r"\bu\[(\d+) \* N_CELLS \+ idx\]", source))
    maps = set(re.findall(r"\bmaps\[(\d+) \* N_CELLS \+ idx\]", source))
    written = set(re.findall(r"\b(\w+)\[(\d+) \* N_CELLS \+ idx\] =", source))
    neighbours = set(re.findall(r"\bu\[(\d+) \* N_CELLS \+ idx [+-] STRIDE_X\]", source))
    if not read or not written:
        raise ValueError("generated source has no centre loads or stores of the expected form")
    floor = (len(read) + len(maps) + len(written)) * itemsize
    no_reuse = floor + len(neighbours) * (tile_bytes_per_cell(block, grid.shape, itemsize) - itemsize)
    window = 3 * len(neighbours) * grid.shape[1] * grid.shape[2] * itemsize
    return floor, round(no_reuse), window


def tile_bytes_per_cell(block: tuple[int, int, int], shape: tuple[int, int, int], itemsize: int,
                        sector: int = 32) -> float:
    """Bytes per cell one species read with its 6 neighbours costs a tile of `block` cells
    (z, y, x) when only the tile's own reuse is caught (module docstring)."""
    bz, by, bx = block
    row = -(-bz * itemsize // sector)  # sectors per row of the tile
    rows = by * bx + 2 * bx + 2 * by  # its own, and the y and x halo rows
    z_halo = 0 if bz >= shape[2] else 2 * by * bx
    return (rows * row + z_halo) * sector / (bz * by * bx)


# --- measuring ------------------------------------------------------------------------------

def measure(kernel: KernelSource, arch: str = "sm_90", fast_math: bool = False) -> KernelStats:
    """Compile one kernel and read its numbers."""
    cubin, ptxas = compile_cubin(kernel.source, arch, fast_math, name=f"{kernel.entry}.cu", options=kernel.options)
    p = parse_ptxas_log(ptxas, kernel.entry)
    r = parse_resource_usage(cuobjdump(cubin, "--dump-resource-usage"), kernel.entry)
    sass = parse_sass(cuobjdump(cubin, "-sass"), kernel.entry)
    if r["REG"] != p["registers"]:
        raise ValueError(f"{kernel.entry}: ptxas says {p['registers']} registers, cuobjdump {r['REG']}")
    return KernelStats(kernel, arch, fast_math, p["registers"], p["spill_stores"], p["spill_loads"], p["stack"],
                       r["SHARED"], r["LOCAL"], r["CONSTANT[0]"], sass)


@dataclass
class KernelReport:
    """The static numbers of every kernel of one config."""

    config: str
    grid: tuple[int, int, int]
    dtype: str
    arch: str
    variants: str
    rows: list[KernelStats] = field(default_factory=list)
    fast_math: KernelStats | None = None

    def step(self) -> KernelStats:
        return next(r for r in self.rows if r.kernel.entry == "explicit_step")

    def targets(self) -> list[tuple[str, str, float | None, float, str]]:
        """(status, name, value, threshold, detail): the SASS target (PASS/FAIL on its own
        config, INFO on any other), the fast-math build and the roofline prediction (INFO)."""
        s = self.step()
        n, spills = s.sass_per_cell(), s.spill_stores + s.spill_loads
        ok = n is not None and n <= TARGET_SASS_PER_CELL and spills == 0
        status = ("PASS" if ok else "FAIL") if self.config == TARGET_CONFIG else "INFO"
        where = f"{self.config} {'x'.join(map(str, self.grid))} {self.dtype} {self.arch}, {s.kernel.variant}"
        out = [(status, target_name(), n, TARGET_SASS_PER_CELL,
                f"{n} per cell, {spills} bytes spilled, {s.registers} registers ({where})")]
        if self.fast_math is not None:
            f = self.fast_math
            out.append(("INFO", "GPU static: explicit step with --use_fast_math", f.sass_per_cell(),
                        TARGET_SASS_PER_CELL,
                        (f"{f.sass_per_cell()} SASS per cell (default {n}), {f.registers} registers, "
                        f"{f.spill_stores + f.spill_loads} bytes spilled, slow ops {_slow(f)}")))
        for device in DEVICES:
            frac = s.predicted_fraction_of_copy(device)
            if frac is not None:
                out.append(("INFO", f"GPU static: explicit step, predicted fraction of copy bandwidth, {device}",
                            frac, 1.0, (f"{frac:.0%} (a model, not a measurement: min(1, issue-bound / "
                            f"bandwidth-bound cell rate) at {n} SASS and {s.kernel.bytes_floor} B per cell)")))
        return out

    def table(self) -> list[str]:
        """The Markdown table, one row per kernel (and the fast-math explicit step)."""
        lines = [(f"GPU kernels, static: {self.config}, {'x'.join(map(str, self.grid))}, {self.dtype}, {self.arch} "
                 f"(NVRTC + cuobjdump; explicit kernels: {self.step().kernel.variant})"), "",
                 ("| kernel | regs | spill st/ld B | smem B | cmem B | SASS total | SASS/cell | loop bodies | slow ops | "
                 "B/cell floor | B/cell no L2 reuse | pred. of copy H100/H200 | launched |"),
                 "|---" * 13 + "|"]
        for r in self.rows + ([self.fast_math] if self.fast_math else []):
            name = r.name + (" (fast-math)" if r.fast_math else "")
            fr = [r.predicted_fraction_of_copy(d) for d in DEVICES]
            lines.append(
                f"| {name} | {r.registers} | {r.spill_stores}/{r.spill_loads} | {r.shared} | {r.constant} | "
                f"{r.sass.total} | {_dash(r.sass_per_cell())} | {','.join(map(str, r.sass.loops)) or '-'} | "
                f"{_slow(r)} | {_dash(r.kernel.bytes_floor)} | {_dash(r.kernel.bytes_no_reuse)} | "
                f"{'/'.join('-' if f is None else f'{f:.0%}' for f in fr)} | {r.kernel.used} |")
        return lines

    def to_markdown(self, targets: bool = True) -> str:
        """A section: the table, how each column is counted, and (targets) the target lines."""
        s = self.step()
        lines = ["## GPU kernels, static", "", *self.table(), "",
                 ("SASS/cell: the function's instructions without the padding and the slow-path subroutines; "
                 "one thread per cell and no loop, so each runs at most once per cell (an upper bound). Line "
                 "kernels: one thread per line; their loop bodies are the instructions per cell (an unrolled "
                 "body holds several cells). Slow ops: FCHK = exact divisions, MUFU = special-function unit, "
                 "CALL = slow-path calls, BSSY = divergent blocks. B/cell floor: each species and map read "
                 "once, each output written once (line kernels: the per-cell arrays of their arguments); no L2 "
                 "reuse: every neighbour row from DRAM (line kernels: the second sweep and the scratch arrays "
                 "too). Predicted fraction of copy: a roofline model, not a measurement "
                 "(solver/bench/kernel_report.py).")]
        if s.kernel.window_bytes:
            lines.append(f"The neighbour rows are reused from L2 while 3 x-planes of the neighbour species "
                         f"({s.kernel.window_bytes / 1e6:.1f} MB) fit in its {L2_BYTES / 1e6:.0f} MB.")
        if targets:
            lines += ["", *(f"    {t[0]}: {t[1]}: {t[4]}" for t in self.targets())]
        return "\n".join(lines) + "\n"

    def summary(self) -> str:
        return "\n".join(f"{t[0]}: {t[1]}: {t[4]}" for t in self.targets())

    def as_dict(self) -> dict[str, Any]:
        return {"config": self.config, "grid": list(self.grid), "dtype": self.dtype, "arch": self.arch,
                "variants": self.variants, "kernels": [r.as_dict() for r in self.rows],
                "explicit_step_fast_math": self.fast_math.as_dict() if self.fast_math else None,
                "targets": [dict(zip(("status", "name", "value", "threshold", "detail"), t)) for t in self.targets()]}


def target_name() -> str:
    """The name of the explicit step's SASS target line."""
    return (f"GPU static: explicit step <= {TARGET_SASS_PER_CELL} SASS instructions per cell and no spills, "
            f"{TARGET_CONFIG.replace('-', '_')}")


def _slow(r: KernelStats) -> str:
    ops = r.sass.slow_ops()
    mufu = " ".join(f"{k[5:]}:{v}" for k, v in ops.items() if k.startswith("MUFU.") and v)
    text = f"FCHK {ops['FCHK']}, MUFU {ops['MUFU']}" + (f" ({mufu})" if mufu else "") + \
        f", CALL {ops['CALL.REL']}, BSSY {ops['BSSY']}"
    return text + (f", FP64 {ops['FP64']}" if ops["FP64"] else "")


def _dash(v: Any) -> str:
    return "-" if v is None else str(v)


def kernel_report(config: RunConfig | str | Path, arch: str = "sm_90", dtype: str | None = None,
                  variants: str = "bench", fast_math: bool = True) -> KernelReport:
    """Every kernel of `config` compiled and measured; with fast_math also the explicit step
    under --use_fast_math."""
    cfg = config if isinstance(config, RunConfig) else load_config(config)
    dtype = np.dtype(dtype or cfg.precision)
    report = KernelReport(cfg.name, tuple(cfg.grid.shape), dtype.name, arch, variants)
    for kernel in kernel_sources(cfg, dtype, variants):
        report.rows.append(measure(kernel, arch))
    if fast_math:
        report.fast_math = measure(report.step().kernel, arch, fast_math=True)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m solver.bench.kernel_report",
                                     description="GPU kernels measured statically (NVRTC + cuobjdump, no GPU)")
    parser.add_argument("config", nargs="?", default=None, help="a config file (default: configs/chemoimmuno_256.yaml)")
    parser.add_argument("--arch", default="sm_90")
    parser.add_argument("--dtype", choices=("float32", "float64"), help="default: the config's precision")
    parser.add_argument("--variants", choices=("bench", "run"), default="bench",
                        help="explicit kernels as the benchmark's fused step (default, seconds) or as a run of "
                             "the config builds them (its run plan: evaluates the initial fields)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    why = tools_missing()
    if why:
        print(f"kernel_report: {why}: pip install -e '.[gpu]'", file=sys.stderr)
        return 2
    if args.config is None:
        from solver.package_data import data_dir

        args.config = data_dir("configs") / "chemoimmuno_256.yaml"
    report = kernel_report(args.config, args.arch, args.dtype, args.variants)
    if args.json:
        import json

        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report.to_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
