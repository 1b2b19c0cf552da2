"""CUDA source for the fused explicit step, generated from the symbolic model.

Public API:
    explicit_step_source(model, grid, dtype, block_size=256) -> str
    explicit_rates_source(model, grid, dtype, block_size=256) -> str   F and lambda, no step
    compile_for_arch(source, arch="sm_90") -> bytes   (NVRTC, no GPU needed)
    kernel_template(name) -> str                      a kernels/*.cu file with a #line marker

Nothing here imports CuPy at module level: the source can be generated (and
compile-checked through NVRTC) on a machine without a GPU. The generated part is a
`__device__` function `model_update` written per model; the kernel entry point
around it lives in kernels/explicit_step.cu.

Discretisation: the transport stencil of solver/backends/stencil.py (the one definition
every backend prints), then

    u_new   = u_c + dt * ((D lap u + chemo) + R)

with R the reaction term, common subexpressions shared between species.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import sympy as sp
from sympy.codegen.ast import float32, float64, real
from sympy.printing.c import C99CodePrinter

from solver.backends.stencil import (
    GhostRule,
    Neighbour,
    StencilPrinter,
    reaction_terms,
    transport_program,
)
from solver.grid import AXES, Grid
from solver.model import COORDS, Model
from solver.package_data import data_dir

_INDEX = ("i", "j", "k")
_EXTENT = ("NX", "NY", "NZ")
_STRIDE = ("STRIDE_X", "STRIDE_Y", "1")


class _RealPrinter(C99CodePrinter):
    """C99 printer for `real` = float or double: literals and math functions match the type."""

    def __init__(self, dtype: np.dtype) -> None:
        alias = float32 if np.dtype(dtype) == np.float32 else float64
        super().__init__(settings={"type_aliases": {real: alias}})

    def _print_Piecewise(self, expr: sp.Piecewise) -> str:  # one line, nested ternaries
        *pairs, last = expr.args
        out = self._print(last.expr) if last.cond == sp.true else "NAN"
        for e, c in reversed(pairs):
            out = f"(({self._print(c)}) ? ({self._print(e)}) : ({out}))"
        return out

    def _print_Integer(self, expr: sp.Integer) -> str:  # keep arithmetic in `real`
        return self._print(sp.Float(int(expr)))


def kernel_template(name: str) -> str:
    """A .cu file from kernels/, prefixed with #line so compiler errors name the real file."""
    path = _kernels_dir() / name
    return f'#line 1 "{path}"\n' + path.read_text(encoding="utf-8")


def _kernels_dir() -> Path:
    return data_dir("kernels")


def _c_name(symbol: sp.Symbol, model: Model) -> str:
    name = str(symbol)
    if name in model.names:
        return f"c_{name}"
    if name in model.map_names:
        return f"m_{name}"
    if name in model.systemic_names:
        return f"s_{name}"
    return {"t": "t", "x": "xc", "y": "yc", "z": "zc"}[name]


def _literal(printer: _RealPrinter, value: float) -> str:
    return printer._print(sp.Float(value))


class _CudaStencil(StencilPrinter):
    """Prints the transport stencil (solver/backends/stencil.py) as CUDA: neighbours are
    the `<species>_<axis><m|p>` locals, grid constants the #defines, coefficients literals."""

    def __init__(self, model: Model, printer: _RealPrinter) -> None:
        self.model, self.pr = model, printer

    def number(self, value: float) -> str:
        return _literal(self.pr, value)

    def centre(self, s: int) -> str:
        return f"c_{self.model.species[s].name}"

    def neighbour(self, node: Neighbour) -> str:
        return f"{self.model.species[node.s].name}_{AXES[node.axis]}{'mp'[node.side]}"

    def inv_h(self, axis: int, power: int) -> str:
        return f"INV_H{AXES[axis].upper()}{'2' if power == 2 else ''}"

    def coefficient(self, s: int, what: str) -> str:
        species = self.model.species[s]
        return _literal(self.pr, species.diffusion if what == "diffusion" else species.chemotaxis.sensitivity)

    def upwind(self, v: str, if_positive: str, otherwise: str) -> str:
        return f"(({v} > {self.number(0.0)}) ? {v} * {if_positive} : {v} * {otherwise})"

    def off_face(self, axis: int, side: int, a: str) -> str:
        inside = f"{_INDEX[axis]} > 0" if side == 0 else f"{_INDEX[axis]} < {_EXTENT[axis]} - 1"
        return f"(({inside}) ? {a} : {self.number(0.0)})"

    def read(self, s: int, axis: int, side: int, rule: GhostRule) -> str:
        """The neighbour's value: the next cell, or the ghost rule on the face."""
        idx, ext, stride = _INDEX[axis], _EXTENT[axis], _STRIDE[axis]
        base = f"u[{s} * N_CELLS + idx"
        if side == 0:
            inside, cond = f"{base} - {stride}]", f"{idx} > 0"
            wrap = f"{base} + ({ext} - 1) * {stride}]"
        else:
            inside, cond = f"{base} + {stride}]", f"{idx} < {ext} - 1"
            wrap = f"{base} - ({ext} - 1) * {stride}]"
        c = self.centre(s)
        ghost = {"wrap": wrap, "edge": c, "reflect": f"{self.number(rule.beta)} - {c}",
                 "affine": f"{self.number(rule.alpha)} * {c} + {self.number(rule.beta)}"}[rule.kind]
        return f"(({cond}) ? {inside} : ({ghost}))"


def model_update_source(
    model: Model, grid: Grid, dtype: np.dtype, implicit_sinks: bool = False,
    implicit_diffusion: frozenset[int] = frozenset(), rates: bool = False,
    implicit_chemotaxis: frozenset[int] = frozenset(), report_sinks: frozenset[int] = frozenset(),
) -> str:
    """The generated `__device__ void model_update(...)` for this model.

    With implicit_sinks, each species' loss rate lambda (Model.loss_rates) is taken
    implicitly: u_new = u + dt F / (1 + dt lambda) (linearly implicit Euler). Species in
    `implicit_diffusion` / `implicit_chemotaxis` get no diffusion / chemotaxis term (an
    IMEX step solves their transport after this one). For the species in `report_sinks` the step also
    writes lambda to `sinks_out` and the rates their diffusion term D lap u to
    `diffusion_out` (the IMEX step's sink-scaled line solves need them:
    solver/integrators/imex.py).
    With rates=True it is `model_rates(...)` instead, which writes the right-hand side F
    and the sink rate lambda (0 without implicit_sinks) of every species rather than a
    step: the stages of the second-order step (solver/integrators/second_order.py).
    """
    pr = _RealPrinter(dtype)
    names = model.names
    if rates:
        lines = [
            "__device__ __forceinline__ void model_rates(",
            "    const real* __restrict__ u, real* __restrict__ rate, real* __restrict__ sink,",
            "    const real* __restrict__ maps, real* __restrict__ diffusion_out,",
            "    const long long idx, const int i, const int j, const int k, const real t SYSTEMIC_PARAMS)",
            "{",
        ]
    else:
        lines = [
            "__device__ __forceinline__ void model_update(",
            "    const real* __restrict__ u, real* __restrict__ u_new, const real* __restrict__ maps,",
            "    real* __restrict__ sinks_out,",
            "    const long long idx, const int i, const int j, const int k, const real t, const real dt SYSTEMIC_PARAMS)",
            "{",
        ]
    for s, name in enumerate(names):
        lines.append(f"    const real c_{name} = u[{s} * N_CELLS + idx];")
    for m, name in enumerate(model.map_names):
        lines.append(f"    const real m_{name} = maps[{m} * N_CELLS + idx];")
    terms = reaction_terms(model, implicit_sinks, lambda sym: _c_name(sym, model))
    used = terms.used
    for a, coord in enumerate(COORDS):
        if coord in used:
            lines.append(f"    const real {_c_name(coord, model)} = ((real){_INDEX[a]} + {_literal(pr, 0.5)}) * H{AXES[a].upper()};")
    program = transport_program(model, grid, implicit_diffusion, implicit_chemotaxis)
    stencil = _CudaStencil(model, pr)
    for s, axis, side, rule in program.neighbours:
        lines.append(f"    const real {stencil.neighbour(Neighbour(s, axis, side, rule))} = "
                     f"{stencil.read(s, axis, side, rule)};")

    # Reaction terms: common subexpressions computed once for all species.
    for sym, expr in terms.temps:
        lines.append(f"    const real {sym} = {pr.doprint(expr)};")
    sink_exprs = terms.sinks

    for s, (sp_, reaction) in enumerate(zip(model.species, terms.rates)):
        n = sp_.name
        moves = program.species[s]
        for name, expr in moves.statements:
            lines.append(f"    const real {name} = {stencil.expr(expr)};")
        if rates and s in report_sinks and moves.diffusion is not None:
            lines.append(f"    diffusion_out[{s} * N_CELLS + idx] = {moves.diffusion};")
        transport = moves.total or ""
        rhs = pr.doprint(reaction) if reaction != 0 else ""
        if transport and rhs:
            total = f"({transport}) + ({rhs})"
        else:
            total = transport or rhs or _literal(pr, 0.0)
        if rates:
            sink = pr.doprint(sink_exprs[s]) if sink_exprs[s] != 0 else _literal(pr, 0.0)
            lines.append(f"    rate[{s} * N_CELLS + idx] = {total};")
            lines.append(f"    sink[{s} * N_CELLS + idx] = {sink};")
            if s in report_sinks and program.species[s].diffusion is None:
                lines.append(f"    diffusion_out[{s} * N_CELLS + idx] = {_literal(pr, 0.0)};")
        else:
            base = f"c_{n} + "
            if s in report_sinks:
                sink_value = pr.doprint(sink_exprs[s]) if sink_exprs[s] != 0 else _literal(pr, 0.0)
                lines.append(f"    sinks_out[{s} * N_CELLS + idx] = {sink_value};")
            if sink_exprs[s] != 0:
                lines.append(f"    const real sink_{n} = {pr.doprint(sink_exprs[s])};")
                lines.append(f"    u_new[{s} * N_CELLS + idx] = {base}dt * ({total}) / ({_literal(pr, 1.0)} + dt * sink_{n});")
            else:
                lines.append(f"    u_new[{s} * N_CELLS + idx] = {base}dt * ({total});")
    lines.append("}")
    return "\n".join(lines)


def defines(model: Model, grid: Grid, dtype: np.dtype, block_size: int) -> str:
    """The #define block: grid constants baked in so the compiler can fold them."""
    pr = _RealPrinter(dtype)
    nx, ny, nz = grid.shape
    ctype = "float" if np.dtype(dtype) == np.float32 else "double"
    out = [
        f"typedef {ctype} real;",
        f"#define NX {nx}",
        f"#define NY {ny}",
        f"#define NZ {nz}",
        f"#define STRIDE_X {ny * nz}LL",
        f"#define STRIDE_Y {nz}",
        f"#define N_CELLS {grid.size}LL",
        f"#define N_SPECIES {len(model.species)}",
        f"#define N_MAPS {len(model.maps)}",
        f"#define BLOCK_SIZE {block_size}",
        "#define SYSTEMIC_PARAMS " + "".join(f", const real s_{n}" for n in model.systemic_names),
        "#define SYSTEMIC_ARGS " + "".join(f", s_{n}" for n in model.systemic_names),
    ]
    for a, h in zip(AXES, grid.spacing):
        A = a.upper()
        out += [
            f"#define H{A} {_literal(pr, h)}",
            f"#define INV_H{A} {_literal(pr, 1.0 / h)}",
            f"#define INV_H{A}2 {_literal(pr, 1.0 / (h * h))}",
        ]
    return "\n".join(out)


def explicit_step_source(
    model: Model, grid: Grid, dtype: np.dtype, block_size: int = 256, implicit_sinks: bool = False,
    implicit_diffusion: frozenset[int] = frozenset(), implicit_chemotaxis: frozenset[int] = frozenset(),
    report_sinks: frozenset[int] = frozenset(),
) -> str:
    """Complete CUDA source of the fused explicit step for this model, grid and precision."""
    return _kernel_source(model, grid, dtype, block_size, implicit_sinks, implicit_diffusion, implicit_chemotaxis,
                          rates=False, report_sinks=report_sinks)


def explicit_rates_source(
    model: Model, grid: Grid, dtype: np.dtype, block_size: int = 256, implicit_sinks: bool = False,
    implicit_diffusion: frozenset[int] = frozenset(), implicit_chemotaxis: frozenset[int] = frozenset(),
    report_sinks: frozenset[int] = frozenset(),
) -> str:
    """CUDA source of the kernel that writes F and lambda of every species (kernels/explicit_rates.cu)."""
    return _kernel_source(model, grid, dtype, block_size, implicit_sinks, implicit_diffusion, implicit_chemotaxis,
                          rates=True, report_sinks=report_sinks)


def _kernel_source(
    model: Model, grid: Grid, dtype: np.dtype, block_size: int, implicit_sinks: bool,
    implicit_diffusion: frozenset[int], implicit_chemotaxis: frozenset[int], rates: bool,
    report_sinks: frozenset[int] = frozenset(),
) -> str:
    """#defines, the generated device function, then the kernel template that calls it."""
    function, template = ("model_rates", "explicit_rates.cu") if rates else ("model_update", "explicit_step.cu")
    return "\n".join(
        [
            f"// Generated by solver/backends/cuda_codegen.py for species {', '.join(model.names)}",
            defines(model, grid, dtype, block_size),
            f'#line 1 "<generated {function}>"',
            model_update_source(model, grid, dtype, implicit_sinks, implicit_diffusion, rates=rates,
                                implicit_chemotaxis=implicit_chemotaxis, report_sinks=report_sinks),
            kernel_template(template),
        ]
    )


def compile_for_arch(source: str, arch: str = "sm_90", name: str = "tumorsim_kernel.cu") -> bytes:
    """Compile CUDA source to PTX with NVRTC (no GPU needed); raise with the compiler log.

    Uses CuPy's low-level NVRTC binding, backed by the nvidia-cuda-nvrtc wheel.
    """
    from cupy_backends.cuda.libs import nvrtc

    prog = nvrtc.createProgram(source, name, [], [])
    try:
        try:
            nvrtc.compileProgram(prog, [f"--gpu-architecture={arch}", "-std=c++17"])
        except nvrtc.NVRTCError as exc:
            raise RuntimeError(f"NVRTC failed for {arch}: {exc}\n{nvrtc.getProgramLog(prog)}") from None
        return nvrtc.getPTX(prog)
    finally:
        nvrtc.destroyProgram(prog)
