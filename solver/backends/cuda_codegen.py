"""CUDA source for the fused explicit step, generated from the symbolic model.

Public API:
    explicit_step_source(model, grid, dtype, block_size=256) -> str
    explicit_rates_source(model, grid, dtype, block_size=256) -> str   F and lambda, no step
    compile_for_arch(source, arch="sm_90", options=...) -> bytes   (NVRTC, no GPU needed)
    nvrtc_options(dtype, fast_math), uses_fast_math(dtype, fast_math)
    fast_math_step_bound(...) -> float   per-step error bound of the fast path (float32)
    kernel_template(name) -> str                      a kernels/*.cu file with a #line marker
    launch_shape(shape, block_size=256) -> (block, grid)   the explicit kernels' 3-D launch

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
    Bin,
    Centre,
    Coefficient,
    GhostRule,
    InvH,
    Neg,
    Neighbour,
    Num,
    OffFace,
    PowRatio,
    Ref,
    StencilPrinter,
    Upwind,
    local_name,
    reaction_terms,
    transport_program,
    with_power_ratios,
)
from solver.grid import AXES, Grid
from solver.model import COORDS, Model
from solver.package_data import data_dir

_INDEX = ("i", "j", "k")
_EXTENT = ("NX", "NY", "NZ")
_STRIDE = ("STRIDE_X", "STRIDE_Y", "1")




class _RealPrinter(C99CodePrinter):
    """C99 printer for `real` = float or double: literals and math functions match the type.

    fast (float only): divisions, exp, log and non-integer powers as the CUDA intrinsics
    __fdividef, __expf, __logf, __powf (error bounds: fast_math_error_bound()).
    """

    def __init__(self, dtype: np.dtype, fast: bool = False) -> None:
        single = np.dtype(dtype) == np.float32
        super().__init__(settings={"type_aliases": {real: float32 if single else float64}})
        self.fast = fast and single

    def divide(self, a: str, b: str) -> str:
        return f"__fdividef({a}, {b})" if self.fast else f"({a}) / ({b})"

    def _print_Pow(self, expr: sp.Pow) -> str:
        if self.fast and expr.exp == -1:
            return self.divide(self._print(sp.Float(1.0)), self._print(expr.base))
        if self.fast and expr.exp.is_Number and not expr.exp.is_Integer and expr.exp != sp.Rational(1, 2):
            return f"__powf({self._print(expr.base)}, {self._print(expr.exp)})"
        return super()._print_Pow(expr)

    def _print_PowRatio(self, expr: PowRatio) -> str:
        a, b, e = (self._print(x) for x in expr.args)
        return f"{'__powf' if self.fast else 'pow' + self._get_func_suffix(real)}({self.divide(a, b)}, {e})"

    def _print_exp(self, expr: sp.exp) -> str:
        return f"__expf({self._print(expr.args[0])})" if self.fast else self._print_math_func(expr)

    def _print_log(self, expr: sp.log) -> str:
        return f"__logf({self._print(expr.args[0])})" if self.fast else self._print_math_func(expr)

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


def _literal(printer: _RealPrinter, value: float) -> str:
    return printer._print(sp.Float(value))


def _neighbours_in(node: object) -> list[Neighbour]:
    """The Neighbour leaves of a stencil expression (none for anything else)."""
    if isinstance(node, Neighbour):
        return [node]
    if isinstance(node, Bin):
        return _neighbours_in(node.a) + _neighbours_in(node.b)
    if isinstance(node, Neg):
        return _neighbours_in(node.a)
    return []


def _laplacian_terms(node: object) -> list[tuple[Neighbour, Neighbour, Centre, int]] | None:
    """(u_m, u_p, u_c, axis) of each axis of a Laplacian as transport_program writes it,
    sum_axes ((u_m + u_p) - 2 u_c) / h^2; None for any other expression."""
    if isinstance(node, Bin) and node.op == "+" and not isinstance(node.a, Neighbour):
        a, b = _laplacian_terms(node.a), _laplacian_terms(node.b)
        return None if a is None or b is None else a + b
    if not (isinstance(node, Bin) and node.op == "*" and isinstance(node.b, InvH) and node.b.power == 2):
        return None
    diff = node.a
    if not (isinstance(diff, Bin) and diff.op == "-" and isinstance(diff.a, Bin) and diff.a.op == "+"
            and isinstance(diff.b, Bin) and diff.b.op == "*" and diff.b.a == Num(2.0)
            and isinstance(diff.b.b, Centre)):
        return None
    lo, hi = diff.a.a, diff.a.b
    if not (isinstance(lo, Neighbour) and isinstance(hi, Neighbour)):
        return None
    return [(lo, hi, diff.b.b, node.b.axis)]


class _CudaStencil(StencilPrinter):
    """Prints the transport stencil (solver/backends/stencil.py) as CUDA: neighbours are
    the `<species>_<axis><m|p>` locals, grid constants the #defines, coefficients literals.

    Two rewrites, neither of them a change to the discretisation:
    - always: a chemotactic flux through a face that stops advection is not zeroed
      (OffFace) when the signal's ghost there is an edge copy: the face velocity
      chi (s_ghost - s_c) / h is then exactly 0, and so is the flux (bit-identical).
    - fast (printer.fast): the operations regrouped, rounding differently from the
      reference by a few ulp of |u| (fast_math_error_bound): chi / h folded into one
      literal in each face velocity, and the Laplacian summed over the axes of equal
      spacing before one multiply by 1/h^2: (sum (u_m + u_p) - 2 n u_c) / h^2.
    """

    def __init__(self, model: Model, printer: _RealPrinter, grid: Grid) -> None:
        self.model, self.pr, self.grid = model, printer, grid
        self.known: dict[str, object] = {}  # statements printed so far, by name

    def expr(self, node: object) -> str:
        if isinstance(node, OffFace) and self._zero_velocity_on_face(node):
            return self.expr(node.a)
        if self.pr.fast:
            folded = self._fast(node)
            if folded is not None:
                return folded
        return super().expr(node)

    def _zero_velocity_on_face(self, node: OffFace) -> bool:
        """True when the Upwind's velocity is chi (s_ghost - s_c) / h with an edge ghost on
        this face: exactly 0 in the face cells."""
        if not isinstance(node.a, Upwind) or not isinstance(node.a.v, Ref):
            return False
        velocity = self.known.get(node.a.v.name)
        reads = _neighbours_in(velocity)
        return (len(reads) == 1 and reads[0].axis == node.axis and reads[0].side == node.side
                and reads[0].rule.kind == "edge")

    def _fast(self, node: object) -> str | None:
        """The regrouped forms of the class docstring, or None where the node is not one."""
        if (isinstance(node, Bin) and node.op == "*" and isinstance(node.a, Coefficient)
                and node.a.what == "sensitivity" and isinstance(node.b, Bin) and node.b.op == "*"
                and isinstance(node.b.b, InvH) and node.b.b.power == 1):
            chi = self.model.species[node.a.s].chemotaxis.sensitivity
            return f"({self.expr(node.b.a)} * {self.number(chi / self.grid.spacing[node.b.b.axis])})"
        terms = _laplacian_terms(node)
        if terms is None:
            return None
        groups: dict[float, list] = {}
        for lo, hi, centre, axis in terms:
            groups.setdefault(self.grid.spacing[axis], []).append((lo, hi, centre, axis))
        parts = []
        for group in groups.values():
            pairs = " + ".join(f"({self.expr(lo)} + {self.expr(hi)})" for lo, hi, _, _ in group)
            centre = self.expr(group[0][2])
            parts.append(f"((({pairs}) - {self.number(2.0 * len(group))} * {centre}) * "
                         f"{self.inv_h(group[0][3], 2)})")
        return "(" + " + ".join(parts) + ")"

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
    fast_math: bool = False,
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
    With fast_math (float32 only; float64 ignores it) divisions, exp, log and powers are
    the CUDA intrinsics (_RealPrinter). Either way a**e * b**-e is printed as one power
    of a / b (merge_power_ratios).
    """
    pr = _RealPrinter(dtype, fast_math)
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
    terms = reaction_terms(model, implicit_sinks)
    used = terms.used
    for a, coord in enumerate(COORDS):
        if coord in used:
            lines.append(f"    const real {local_name(coord, model)} = ((real){_INDEX[a]} + {_literal(pr, 0.5)}) * H{AXES[a].upper()};")
    program = transport_program(model, grid, implicit_diffusion, implicit_chemotaxis)
    stencil = _CudaStencil(model, pr, grid)
    for s, axis, side, rule in program.neighbours:
        lines.append(f"    const real {stencil.neighbour(Neighbour(s, axis, side, rule))} = "
                     f"{stencil.read(s, axis, side, rule)};")

    # Reaction terms: common subexpressions computed once for all species.
    temps, reactions, sink_exprs = with_power_ratios(terms)
    for sym, expr in temps:
        lines.append(f"    const real {sym} = {pr.doprint(expr)};")

    for s, (sp_, reaction) in enumerate(zip(model.species, reactions)):
        n = sp_.name
        moves = program.species[s]
        for name, expr in moves.statements:
            stencil.known[name] = expr
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
                step = pr.divide(f"dt * ({total})", f"{_literal(pr, 1.0)} + dt * sink_{n}")
                lines.append(f"    u_new[{s} * N_CELLS + idx] = {base}{step};")
            else:
                lines.append(f"    u_new[{s} * N_CELLS + idx] = {base}dt * ({total});")
    lines.append("}")
    return "\n".join(lines)


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


def launch_shape(shape: tuple[int, int, int], block_size: int = 256) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(block, grid) of the explicit kernels, CUDA order (x, y, z) = grid axes (z, y, x).

    A block is a tile of up to 32 cells along z (one warp: a coalesced 128-byte row) by
    up to block_size / 32 along y (their y-neighbours are rows the same block reads, from
    L1), then x; on thin grids the tile shrinks to the next power of two of the extent and
    grows along the next axis instead, so no block is mostly idle. The kernel template
    takes the tile as BLOCK_Z, BLOCK_Y, BLOCK_X and returns for cells past the grid.
    """
    nx, ny, nz = shape
    bz = min(32, _pow2_at_least(nz), block_size)
    by = min(block_size // bz, _pow2_at_least(ny))
    bx = min(block_size // (bz * by), _pow2_at_least(nx))
    block = (bz, by, bx)
    grid = (-(-nz // bz), -(-ny // by), -(-nx // bx))
    return block, grid


def defines(model: Model, grid: Grid, dtype: np.dtype, block_size: int) -> str:
    """The #define block: grid constants baked in so the compiler can fold them."""
    pr = _RealPrinter(dtype)
    nx, ny, nz = grid.shape
    (bz, by, bx), _ = launch_shape(grid.shape, block_size)
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
        f"#define BLOCK_Z {bz}",
        f"#define BLOCK_Y {by}",
        f"#define BLOCK_X {bx}",
        f"#define BLOCK_SIZE {bz * by * bx}",
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
    report_sinks: frozenset[int] = frozenset(), fast_math: bool = False,
) -> str:
    """Complete CUDA source of the fused explicit step for this model, grid and precision."""
    return _kernel_source(model, grid, dtype, block_size, implicit_sinks, implicit_diffusion, implicit_chemotaxis,
                          rates=False, report_sinks=report_sinks, fast_math=fast_math)


def explicit_rates_source(
    model: Model, grid: Grid, dtype: np.dtype, block_size: int = 256, implicit_sinks: bool = False,
    implicit_diffusion: frozenset[int] = frozenset(), implicit_chemotaxis: frozenset[int] = frozenset(),
    report_sinks: frozenset[int] = frozenset(), fast_math: bool = False,
) -> str:
    """CUDA source of the kernel that writes F and lambda of every species (kernels/explicit_rates.cu)."""
    return _kernel_source(model, grid, dtype, block_size, implicit_sinks, implicit_diffusion, implicit_chemotaxis,
                          rates=True, report_sinks=report_sinks, fast_math=fast_math)


def _kernel_source(
    model: Model, grid: Grid, dtype: np.dtype, block_size: int, implicit_sinks: bool,
    implicit_diffusion: frozenset[int], implicit_chemotaxis: frozenset[int], rates: bool,
    report_sinks: frozenset[int] = frozenset(), fast_math: bool = False,
) -> str:
    """#defines, the generated device function, then the kernel template that calls it."""
    function, template = ("model_rates", "explicit_rates.cu") if rates else ("model_update", "explicit_step.cu")
    return "\n".join(
        [
            f"// Generated by solver/backends/cuda_codegen.py for species {', '.join(model.names)}",
            defines(model, grid, dtype, block_size),
            f'#line 1 "<generated {function}>"',
            model_update_source(model, grid, dtype, implicit_sinks, implicit_diffusion, rates=rates,
                                implicit_chemotaxis=implicit_chemotaxis, report_sinks=report_sinks,
                                fast_math=fast_math),
            kernel_template(template),
        ]
    )


def uses_fast_math(dtype: np.dtype, fast_math: bool) -> bool:
    """The fast path is float32 only: float64 kernels always use exact math."""
    return bool(fast_math) and np.dtype(dtype) == np.float32


def nvrtc_options(dtype: np.dtype, fast_math: bool) -> tuple[str, ...]:
    """NVRTC options of the explicit kernels: C++17, and on the fast path --ftz=true
    (float32 denormals, |x| < 2^-126, flushed to 0: an absolute change below 1.2e-38)."""
    return ("-std=c++17",) + (("--ftz=true",) if uses_fast_math(dtype, fast_math) else ())


# Maximum errors of the single-precision intrinsics the fast path prints, in ulp of the
# result (CUDA C++ Programming Guide, "Mathematical Functions", intrinsic functions):
#   __fdividef(x, y)  2, for 2^-126 <= |y| <= 2^126 (the step's 1 + dt lambda >= 1 always is)
#   __expf(x)         2 + floor(|1.173 x|)
#   __logf(x)         3 (absolute error 2^-21.41 for x in [0.5, 2])
#   __powf(x, y)      exp2(y __log2f(x)): __log2f has absolute error 2^-22 in [0.5, 2], else
#                     2 ulp, so the error of y log2 x is at most |y| 2^-22 (1 + |log2 x|) + 0.5 ulp,
#                     which exp2 turns into a relative error ln 2 times that, plus 2 ulp:
#                     2 + 1.39 |y| + 1.73 |log2 result| ulp (x / y of a merged ratio: + 2 ulp).
# The exact path's own library calls are within 2 ulp (expf, logf) and 4 ulp (powf) of
# correctly rounded, so these are also bounds on fast - exact, to within those.
ULP32 = 2.0**-23


def fast_math_step_bound(exp_argument: float = 0.0, pow_exponent: float = 0.0, pow_log2_result: float = 0.0,
                         divisions: int = 1) -> float:
    """A bound on |u_fast - u_exact| / max|u| after ONE step, per unit of the step's
    relative increment r = dt (|R| + |transport|) / max|u| (so the bound is this times r).

    u_new = u + dt F / (1 + dt lambda): each reaction term's relative error is at most the
    sum of the ulp of the intrinsics along its chain (the table above: `divisions`
    __fdividef in a chain, one __expf of |argument| <= exp_argument, one __powf), the
    step's own __fdividef adds 2 ulp, and the regrouped Laplacian and chi/h literals round
    differently by at most 4 ulp of the neighbour values times D dt / h^2 <= 1/6 per axis
    (stability), i.e. at most 4 ulp of the increment's scale. A factor 2 covers the
    rounding of the products and sums around them. Errors add over steps (at most
    linearly).

    Against the time discretisation: forward Euler's local error is about r^2 / 2 of the
    field, which the tolerance-driven dt holds at rtol = 1e-4..1e-3 (so r ~ 0.014..0.045),
    while the fast path adds this bound times r: 5e-8 per step for a typical chain (two
    divisions, |exp argument| <= 1: 3.1e-6 per unit r), 3e-7 for an extreme one (|exp
    argument| 20, a power of 2^+-20, three divisions: 1.9e-5 per unit r), i.e. 300x and
    more below rtol.
    """
    exp_ulp = 2 + np.floor(1.173 * abs(exp_argument)) if exp_argument else 0.0
    pow_ulp = 4 + 1.39 * abs(pow_exponent) + 1.73 * abs(pow_log2_result) if pow_exponent else 0.0
    chain = 2 * divisions + exp_ulp + pow_ulp
    return 2 * (chain + 2 + 4) * ULP32


def compile_for_arch(source: str, arch: str = "sm_90", name: str = "tumorsim_kernel.cu",
                     options: tuple[str, ...] = ("-std=c++17",)) -> bytes:
    """Compile CUDA source to PTX with NVRTC (no GPU needed); raise with the compiler log.

    Uses CuPy's low-level NVRTC binding, backed by the nvidia-cuda-nvrtc wheel. `options`:
    nvrtc_options() for the explicit kernels.
    """
    from cupy_backends.cuda.libs import nvrtc

    prog = nvrtc.createProgram(source, name, [], [])
    try:
        try:
            nvrtc.compileProgram(prog, [f"--gpu-architecture={arch}", *options])
        except nvrtc.NVRTCError as exc:
            raise RuntimeError(f"NVRTC failed for {arch}: {exc}\n{nvrtc.getProgramLog(prog)}") from None
        return nvrtc.getPTX(prog)
    finally:
        nvrtc.destroyProgram(prog)
