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

Discretisation (identical to solver/backends/numpy_backend.py, term by term):
    lap u   = sum_axes ((u_m + u_p) - 2 u_c) / h^2
    chemo   = -sum_axes (F_p - F_m) / h, F = v * u_upwind, v = chi (s_p - s_c) / h
    u_new   = u_c + dt * ((D lap u + chemo) + R)
with ghost values outside each face as described in solver/grid.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import sympy as sp
from sympy.codegen.ast import float32, float64, real
from sympy.codegen.rewriting import create_expand_pow_optimization
from sympy.printing.c import C99CodePrinter

from solver.grid import AXES, Grid
from solver.model import COORDS, Model
from solver.package_data import data_dir

_expand_small_powers = create_expand_pow_optimization(4)  # x**2 -> x*x: no powf in the hot loop
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


def _neighbour(model: Model, grid: Grid, s: int, axis: int, side: int, printer: _RealPrinter) -> str:
    """C expression for species s's value in the neighbour cell (or ghost) on one side."""
    sp_ = model.species[s]
    idx, ext, stride = _INDEX[axis], _EXTENT[axis], _STRIDE[axis]
    base = f"u[{s} * N_CELLS + idx"
    face = sp_.boundary.face(axis, side)
    if side == 0:
        inside, cond = f"{base} - {stride}]", f"{idx} > 0"
        wrap = f"{base} + ({ext} - 1) * {stride}]"
    else:
        inside, cond = f"{base} + {stride}]", f"{idx} < {ext} - 1"
        wrap = f"{base} - ({ext} - 1) * {stride}]"
    c = f"c_{sp_.name}"
    alpha, beta = (1.0, 0.0) if face.kind in ("periodic", "no-flux") else \
        face.ghost_coefficients(sp_.diffusion, grid.spacing[axis])
    if face.kind == "periodic":
        ghost = wrap
    elif alpha == 1.0 and beta == 0.0:  # no-flux, and permeable with P = 0 or D = 0
        ghost = c
    elif alpha == -1.0:  # fixed value g: 2 g - edge
        ghost = f"{_literal(printer, beta)} - {c}"
    else:  # permeable: the coefficients NumPy uses, rounded to `real` as it casts them
        ghost = f"{_literal(printer, alpha)} * {c} + {_literal(printer, beta)}"
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
    sinks = model.loss_rates() if implicit_sinks else [sp.Integer(0)] * len(model.species)
    used = set().union(*(e.free_symbols for e in [*(s.reaction for s in model.species), *sinks]))
    for a, coord in enumerate(COORDS):
        if coord in used:
            lines.append(f"    const real {_c_name(coord, model)} = ((real){_INDEX[a]} + {_literal(pr, 0.5)}) * H{AXES[a].upper()};")
    need = model.neighbour_species(implicit_diffusion, implicit_chemotaxis)
    for s, name in enumerate(names):
        if not need[s]:
            continue
        for a in range(3):
            for side, tag in ((0, "m"), (1, "p")):
                lines.append(f"    const real {name}_{AXES[a]}{tag} = {_neighbour(model, grid, s, a, side, pr)};")

    # Reaction terms: common subexpressions computed once for all species.
    subs = {sym: sp.Symbol(_c_name(sym, model), real=True) for sym in used}
    exprs = [s.reaction.xreplace(subs) for s in model.species] + [e.xreplace(subs) for e in sinks]
    temps, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("tmp_"), optimizations="basic")
    reduced = [_expand_small_powers(r) for r in reduced]  # after cse, which would undo it
    reduced, sink_exprs = reduced[: len(model.species)], reduced[len(model.species) :]
    for sym, expr in temps:
        lines.append(f"    const real {sym} = {pr.doprint(_expand_small_powers(expr))};")

    two = _literal(pr, 2.0)
    for s, (sp_, reaction) in enumerate(zip(model.species, reduced)):
        n = sp_.name
        terms = []
        if sp_.diffusion > 0 and s not in implicit_diffusion:
            lap = " + ".join(
                f"(({n}_{a}m + {n}_{a}p) - {two} * c_{n}) * INV_H{a.upper()}2" for a in AXES
            )
            lines.append(f"    const real lap_{n} = {lap};")
            terms.append(f"{_literal(pr, sp_.diffusion)} * lap_{n}")
            if rates and s in report_sinks:
                lines.append(f"    diffusion_out[{s} * N_CELLS + idx] = {_literal(pr, sp_.diffusion)} * lap_{n};")
        if sp_.chemotaxis is not None and s not in implicit_chemotaxis:
            lines += _chemotaxis_lines(model, s, pr)
            terms.append(f"chemo_{n}")
        transport = " + ".join(terms)
        rhs = pr.doprint(reaction) if reaction != 0 else ""
        if transport and rhs:
            total = f"({transport}) + ({rhs})"
        else:
            total = transport or rhs or _literal(pr, 0.0)
        if rates:
            sink = pr.doprint(sink_exprs[s]) if sink_exprs[s] != 0 else _literal(pr, 0.0)
            lines.append(f"    rate[{s} * N_CELLS + idx] = {total};")
            lines.append(f"    sink[{s} * N_CELLS + idx] = {sink};")
            if s in report_sinks and not (sp_.diffusion > 0 and s not in implicit_diffusion):
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


def _chemotaxis_lines(model: Model, s: int, pr: _RealPrinter) -> list[str]:
    """Upwind fluxes F = v u_upwind on the two faces of each axis; zero through the faces
    that stop advection (FaceBC.stops_advection)."""
    sp_ = model.species[s]
    n, sig = sp_.name, model.species[sp_.chemotaxis.signal].name
    chi = _literal(pr, sp_.chemotaxis.sensitivity)
    zero = _literal(pr, 0.0)
    lines, parts = [], []
    for a, ax in enumerate(AXES):
        inv_h = f"INV_H{ax.upper()}"
        vp, vm = f"vp_{n}_{ax}", f"vm_{n}_{ax}"
        lines.append(f"    const real {vp} = {chi} * (({sig}_{ax}p - c_{sig}) * {inv_h});")
        lines.append(f"    const real {vm} = {chi} * ((c_{sig} - {sig}_{ax}m) * {inv_h});")
        fp = f"(({vp} > {zero}) ? {vp} * c_{n} : {vp} * {n}_{ax}p)"
        fm = f"(({vm} > {zero}) ? {vm} * {n}_{ax}m : {vm} * c_{n})"
        if sp_.boundary.face(a, 1).stops_advection:
            fp = f"(({_INDEX[a]} < {_EXTENT[a]} - 1) ? {fp} : {zero})"
        if sp_.boundary.face(a, 0).stops_advection:
            fm = f"(({_INDEX[a]} > 0) ? {fm} : {zero})"
        lines.append(f"    const real fp_{n}_{ax} = {fp};")
        lines.append(f"    const real fm_{n}_{ax} = {fm};")
        parts.append(f"(fp_{n}_{ax} - fm_{n}_{ax}) * {inv_h}")
    lines.append(f"    const real chemo_{n} = -({' + '.join(parts)});")
    return lines


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
