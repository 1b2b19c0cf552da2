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
    find_cuobjdump() -> str | None
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
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
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
class SassCounts:
    """Instruction counts of one function's SASS."""

    total: int  # without the padding after the end
    body: int  # without the called slow-path subroutines either
    opcodes: Counter
    loops: list[int]  # instructions in each loop body (backward branches)
    calls: int
    subroutines: int

    def slow_ops(self) -> dict[str, int]:
        """The notable slow instructions (module docstring)."""
        mufu = {k.split(".", 1)[1]: v for k, v in self.opcodes.items() if k.startswith("MUFU.")}
        fp64 = sum(v for k, v in self.opcodes.items() if k.split(".")[0] in _FP64_OPS or ".F64" in k)
        return {"FCHK": self.opcodes.get("FCHK", 0), "MUFU": sum(mufu.values()),
                **{f"MUFU.{k}": v for k, v in sorted(mufu.items())}, "CALL.REL": self.calls,
                "BSSY": self.opcodes.get("BSSY", 0), "FP64": fp64}


_FP64_OPS = {"DADD", "DMUL", "DFMA", "DSETP", "DMNMX", "DSET"}


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

def find_cuobjdump() -> str | None:
    """cuobjdump from the nvidia-cuda-cuobjdump wheel (nvidia/cu13/bin), else on PATH or CUDA_HOME."""
    spec = importlib.util.find_spec("nvidia")
    for root in (spec.submodule_search_locations or []) if spec else []:
        for candidate in sorted(Path(root).glob("cu*/bin/cuobjdump"), reverse=True):
            if os.access(candidate, os.X_OK):
                return str(candidate)
    found = shutil.which("cuobjdump")
    if found:
        return found
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if home and os.access(Path(home) / "bin" / "cuobjdump", os.X_OK):
        return str(Path(home) / "bin" / "cuobjdump")
    return None


def tools_missing() -> str | None:
    """Why the report cannot be made here (None: it can)."""
    try:
        from cupy_backends.cuda.libs import nvrtc

        nvrtc.getVersion()
    except Exception as exc:  # noqa: BLE001 (ImportError without CuPy; a missing libnvrtc at the first call)
        return f"NVRTC is not usable ({type(exc).__name__}: {exc})"
    if find_cuobjdump() is None:
        return "cuobjdump not found (the nvidia-cuda-cuobjdump wheel of the `gpu` extra)"
    return None


def compile_cubin(source: str, arch: str = "sm_90", fast_math: bool = False,
                  name: str = "tumorsim_kernel.cu", options: tuple[str, ...] = ("-std=c++17",)) -> tuple[bytes, str]:
    """NVRTC: source -> (cubin for `arch`, ptxas's -v log). Raises RuntimeError with the log.
    `options`: the backend's (cuda_codegen.nvrtc_options); fast_math adds --use_fast_math."""
    from cupy_backends.cuda.libs import nvrtc

    options = [f"--gpu-architecture={arch}", *options, "-Xptxas=-v"] + (["--use_fast_math"] if fast_math else [])
    prog = nvrtc.createProgram(source, name, [], [])
    try:
        try:
            nvrtc.compileProgram(prog, options)
        except nvrtc.NVRTCError as exc:
            raise RuntimeError(f"NVRTC failed for {arch}: {exc}\n{nvrtc.getProgramLog(prog)}") from None
        return _complete_elf(nvrtc.getCUBIN(prog)), nvrtc.getProgramLog(prog)
    finally:
        nvrtc.destroyProgram(prog)


def _complete_elf(image: bytes) -> bytes:
    """The cubin padded to the size its ELF header declares.

    CuPy's getCUBIN (14.2) drops the image's last byte, as it does the NUL terminator of
    PTX; cuobjdump then rejects the file. The ELF64 header gives where the program and
    section header tables end; the missing bytes are NUL padding.
    """
    image = bytes(image)
    if len(image) < 64 or image[:4] != b"\x7fELF" or image[4] != 2:
        raise ValueError("NVRTC returned no ELF64 cubin")
    phoff, shoff = int.from_bytes(image[32:40], "little"), int.from_bytes(image[40:48], "little")
    phentsize, phnum, shentsize, shnum = (int.from_bytes(image[o:o + 2], "little") for o in (54, 56, 58, 60))
    end = max(phoff + phentsize * phnum, shoff + shentsize * shnum, len(image))
    return image + b"\0" * (end - len(image))


def _cuobjdump(cubin: bytes, *flags: str) -> str:
    tool = find_cuobjdump()
    if tool is None:
        raise RuntimeError("cuobjdump not found: pip install -e '.[gpu]' (nvidia-cuda-cuobjdump)")
    with tempfile.TemporaryDirectory(prefix="tumorsim-kreport-") as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(cubin)
        done = subprocess.run([tool, *flags, str(path)], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"cuobjdump {' '.join(flags)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


# --- parsers: each raises ValueError on output it does not recognise ------------------------

def parse_ptxas_log(text: str, entry: str) -> dict[str, int]:
    """Registers, spill stores/loads and stack frame of `entry` from ptxas -v output."""
    start = text.find(f"Function properties for {entry}")
    if start < 0:
        raise ValueError(f"ptxas log has no 'Function properties for {entry}': {text[:200]!r}")
    part = text[start:]
    frame = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", part)
    regs = re.search(r"Used (\d+) registers", part)
    if frame is None or regs is None:
        raise ValueError(f"ptxas log for {entry} lacks the stack/spill or register line: {part[:300]!r}")
    return {"registers": int(regs.group(1)), "stack": int(frame.group(1)), "spill_stores": int(frame.group(2)),
            "spill_loads": int(frame.group(3))}


def parse_resource_usage(text: str, entry: str) -> dict[str, int]:
    """`cuobjdump --dump-resource-usage`: the KEY:value pairs of `entry`."""
    match = re.search(rf"Function {re.escape(entry)}:\s*\n\s*(.+)", text)
    if match is None:
        raise ValueError(f"cuobjdump resource usage has no function {entry}: {text[:200]!r}")
    pairs = dict(re.findall(r"([A-Z]+(?:\[\d+\])?):(\d+)", match.group(1)))
    need = ("REG", "STACK", "SHARED", "LOCAL", "CONSTANT[0]")
    if any(k not in pairs for k in need):
        raise ValueError(f"cuobjdump resource usage of {entry} lacks one of {need}: {match.group(1)!r}")
    return {k: int(v) for k, v in pairs.items()}


_SASS_LINE = re.compile(r"^\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;?\s*/\*\s*0x[0-9a-f]+\s*\*/\s*$")


def parse_sass(text: str, entry: str) -> SassCounts:
    """Count `entry`'s instructions in `cuobjdump -sass` output (module docstring)."""
    start = text.find(f"Function : {entry}\n")
    if start < 0:
        raise ValueError(f"cuobjdump -sass output has no 'Function : {entry}': {text[:200]!r}")
    end = text.find("Function : ", start + 1)
    instructions: list[tuple[int, str]] = []
    for line in text[start:end if end > 0 else None].splitlines():
        m = _SASS_LINE.match(line)
        if m:
            instructions.append((int(m.group(1), 16), m.group(2).rstrip(" ;")))
    if not instructions:
        raise ValueError(f"no SASS instructions found for {entry}")
    while instructions and (_opcode(instructions[-1][1]) == "NOP" or _is_self_branch(*instructions[-1])):
        instructions.pop()  # padding after the end
    calls = [int(m.group(1), 16) for _, ins in instructions
             if (m := re.match(r"CALL\.REL(?:\.NOINC)?\s+0x([0-9a-f]+)", _strip_guard(ins)))]
    first_sub = min(calls, default=None)
    body = [(a, i) for a, i in instructions if first_sub is None or a < first_sub]
    while body and (_opcode(body[-1][1]) == "NOP" or _is_self_branch(*body[-1])):
        body.pop()
    loops = []
    for address, ins in body:
        m = re.match(r"BRA(?:\.[A-Z.]+)?\s+(?:\S+,\s*)?0x([0-9a-f]+)", _strip_guard(ins))
        if m and int(m.group(1), 16) < address:
            loops.append((address - int(m.group(1), 16)) // 16 + 1)
    return SassCounts(total=len(instructions), body=len(body), opcodes=Counter(_opcode(i) for _, i in instructions),
                      loops=loops, calls=len(calls), subroutines=len(set(calls)))


def _strip_guard(instruction: str) -> str:
    return re.sub(r"^@!?U?P[T0-9]+\s+", "", instruction)


def _opcode(instruction: str) -> str:
    return _strip_guard(instruction).split(" ", 1)[0].rstrip(";")


def _is_self_branch(address: int, instruction: str) -> bool:
    m = re.match(r"BRA\s+0x([0-9a-f]+)", _strip_guard(instruction))
    return bool(m) and int(m.group(1), 16) == address


# --- the kernels of a config --------------------------------------------------------------

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
    r = parse_resource_usage(_cuobjdump(cubin, "--dump-resource-usage"), kernel.entry)
    sass = parse_sass(_cuobjdump(cubin, "-sass"), kernel.entry)
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
