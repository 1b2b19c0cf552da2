"""Python source of the compiled CPU kernels (numba), generated from the symbolic model.

Public API:
    cpu_kernel_source(model, grid, implicit_sinks, implicit_diffusion, implicit_chemotaxis,
                      report_sinks) -> CpuKernelSource
    CpuKernelSource.text        the module: `explicit_step` and `explicit_rates`, both
                                @njit(parallel=True, cache=True), loops over (i, j, k) with
                                the x-planes spread over threads (prange)
    CpuKernelSource.constants(dtype) -> ndarray    the numbers the kernels read at run time

The per-cell arithmetic is the CUDA kernel's exact path (solver/backends/cuda_codegen.py,
fast_math off): the same transport stencil (solver/backends/stencil.py), the same reaction
terms with the same common subexpressions and powers of ratios, printed in the same order
of operations. What differs is where the
numbers live: every number of the model (parameters, diffusion and chemotaxis
coefficients, 1/h, 1/h^2, the ghost coefficients of value and permeable faces) is an
element of a constants array passed at run time, so the source depends only on the
model's structure and the boundary kinds. Runs of a study that differ only in parameter
values, or grids that differ in size and spacing, share one compiled kernel (and its
on-disk cache entry: solver/backends/numba_backend.py). The constants are in the state's
dtype, so float32 arithmetic stays float32 (numba would widen a Python float to float64).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp
from sympy.printing.precedence import precedence
from sympy.printing.pycode import PythonCodePrinter

from solver.backends.stencil import (
    GhostRule,
    Neighbour,
    StencilPrinter,
    reaction_terms,
    transport_program,
    with_power_ratios,
)
from solver.grid import AXES, Grid
from solver.model import COORDS, Model

_INDEX = ("i", "j", "k")
_EXTENT = ("nx", "ny", "nz")


class _Constants:
    """Numbers lifted out of the source: each distinct value gets one slot of K."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.slots: dict[tuple[str, float], int] = {}

    def name(self, value: float, tag: str = "") -> str:
        """The local that holds `value` (tag: a different slot for numbers that vary apart,
        e.g. 1/h of two axes that happen to be equal on this grid)."""
        key = (tag, float(value)) if not tag else (tag, 0.0)
        if key not in self.slots:
            self.slots[key] = len(self.values)
            self.values.append(float(value))
        return f"k_{self.slots[key]}"


class _NumbaPrinter(PythonCodePrinter):
    """sympy -> Python for numba: numbers become the constants' locals, integer powers up
    to 4 are already products (stencil.reaction_terms), x**-n becomes 1 / x**n, no literal
    reaches the source (a Python literal would widen float32 arithmetic to float64)."""

    def __init__(self, constants: _Constants) -> None:
        super().__init__(settings={"fully_qualified_modules": True})
        self.constants = constants

    def _number(self, expr) -> str:
        return self.constants.name(float(expr))

    _print_Float = _print_Integer = _print_Rational = _number
    _print_One = _print_Zero = _print_NegativeOne = _print_Half = _number

    def _print_Pow(self, expr, rational=False):
        # as sympy's C printer (cuda_codegen): 1/x, sqrt, else pow, so the operations agree
        prec = precedence(expr)
        if expr.exp == -1:
            return f"{self._number(1)}/{self.parenthesize(expr.base, prec)}"
        if expr.exp == sp.S.Half:
            return f"math.sqrt({self._print(expr.base)})"
        return f"{self.parenthesize(expr.base, prec)} ** {self.parenthesize(expr.exp, prec)}"

    def _print_PowRatio(self, expr):  # (a / b)**e as one pow (stencil.with_power_ratios)
        a, b, e = (self._print(x) for x in expr.args)
        return f"(({a})/({b})) ** {e}"

    def _print_Piecewise(self, expr):
        *pairs, last = expr.args
        out = self._print(last.expr) if last.cond == sp.true else self.constants.name(float("nan"), "nan")
        for e, c in reversed(pairs):
            out = f"(({self._print(e)}) if ({self._print(c)}) else ({out}))"
        return out


class _NumbaStencil(StencilPrinter):
    """The transport stencil as Python for numba: ternaries on the cell index for the faces."""

    def __init__(self, model: Model, grid: Grid, constants: _Constants) -> None:
        self.model, self.grid, self.constants = model, grid, constants

    def number(self, value: float) -> str:
        return self.constants.name(value)

    def centre(self, s: int) -> str:
        return f"c_{self.model.species[s].name}"

    def neighbour(self, node: Neighbour) -> str:
        return f"{self.model.species[node.s].name}_{AXES[node.axis]}{'mp'[node.side]}"

    def inv_h(self, axis: int, power: int) -> str:
        h = self.grid.spacing[axis]
        return self.constants.name(1.0 / h ** power, f"inv_h{power}_{axis}")

    def coefficient(self, s: int, what: str) -> str:
        species = self.model.species[s]
        value = species.diffusion if what == "diffusion" else species.chemotaxis.sensitivity
        return self.constants.name(value, f"{what}_{s}")

    def upwind(self, v: str, if_positive: str, otherwise: str) -> str:
        return f"({v} * {if_positive} if {v} > {self.number(0.0)} else {v} * {otherwise})"

    def off_face(self, axis: int, side: int, a: str) -> str:
        inside = f"{_INDEX[axis]} > 0" if side == 0 else f"{_INDEX[axis]} < {_EXTENT[axis]} - 1"
        return f"({a} if {inside} else {self.number(0.0)})"

    def read(self, s: int, axis: int, side: int, rule: GhostRule) -> str:
        """The neighbour's value: the next cell, or the face's ghost rule (its coefficients
        are constants, so one kernel serves every value of g and P)."""
        index = list(_INDEX)
        index[axis] = f"{_INDEX[axis]} - 1" if side == 0 else f"{_INDEX[axis]} + 1"
        inside = f"u[{s}, {', '.join(index)}]"
        cond = f"{_INDEX[axis]} > 0" if side == 0 else f"{_INDEX[axis]} < {_EXTENT[axis]} - 1"
        c = self.centre(s)
        tag = f"ghost_{s}_{axis}_{side}"
        if rule.kind == "wrap":
            index[axis] = f"{_EXTENT[axis]} - 1" if side == 0 else "0"
            ghost = f"u[{s}, {', '.join(index)}]"
        elif rule.kind == "edge":
            ghost = c
        elif rule.kind == "reflect":
            ghost = f"{self.constants.name(rule.beta, tag + '_beta')} - {c}"
        else:
            ghost = (f"{self.constants.name(rule.alpha, tag + '_alpha')} * {c} + "
                     f"{self.constants.name(rule.beta, tag + '_beta')}")
        return f"({inside} if {cond} else ({ghost}))"


@dataclass(frozen=True)
class CpuKernelSource:
    """The generated module and the constants its kernels read (in slot order)."""

    text: str
    values: tuple[float, ...]

    def constants(self, dtype: np.dtype) -> np.ndarray:
        """K in the state's dtype: every number rounded as NumPy rounds a Python float
        that meets a float32 array."""
        return np.array(self.values, dtype=np.float64).astype(dtype)


def cpu_kernel_source(
    model: Model, grid: Grid, implicit_sinks: bool = False, implicit_diffusion: frozenset[int] = frozenset(),
    implicit_chemotaxis: frozenset[int] = frozenset(), report_sinks: frozenset[int] = frozenset(),
) -> CpuKernelSource:
    """The module with `explicit_step(u, u_new, maps, sinks_out, t, dt, systemic, K, X, Y, Z)`
    and `explicit_rates(u, rate, sink, maps, diffusion_out, t, systemic, K, X, Y, Z)` for this
    model (flags as solver/backends/cuda_codegen.model_update_source). X, Y, Z: the cell
    centres along each axis (Grid.centres), in the state's dtype."""
    constants = _Constants()
    pr = _NumbaPrinter(constants)
    stencil = _NumbaStencil(model, grid, constants)
    program = transport_program(model, grid, implicit_diffusion, implicit_chemotaxis, by_value=False)
    terms = reaction_terms(model, implicit_sinks)
    temps, rates_exprs, sink_exprs = with_power_ratios(terms)

    cell: list[str] = []  # the body of the innermost loop, shared by both kernels up to the writes
    for s, name in enumerate(model.names):
        cell.append(f"c_{name} = u[{s}, i, j, k]")
    for m, name in enumerate(model.map_names):
        cell.append(f"m_{name} = maps[{m}, i, j, k]")
    for s, axis, side, rule in program.neighbours:
        cell.append(f"{stencil.neighbour(Neighbour(s, axis, side, rule))} = {stencil.read(s, axis, side, rule)}")
    for sym, expr in temps:
        cell.append(f"{sym} = {pr.doprint(expr)}")
    step, rates = list(cell), list(cell)
    zero, one = constants.name(0.0), constants.name(1.0)
    for s, species in enumerate(model.species):
        n = species.name
        moves = program.species[s]
        body = [f"{name} = {stencil.expr(expr)}" for name, expr in moves.statements]
        step += body
        rates += body
        reaction = rates_exprs[s]
        rhs = pr.doprint(reaction) if reaction != 0 else ""
        transport = moves.total or ""
        total = f"({transport}) + ({rhs})" if transport and rhs else transport or rhs or zero
        sink = pr.doprint(sink_exprs[s]) if sink_exprs[s] != 0 else zero
        rates.append(f"rate[{s}, i, j, k] = {total}")
        rates.append(f"sink[{s}, i, j, k] = {sink}")
        if s in report_sinks:
            rates.append(f"diffusion_out[{s}, i, j, k] = {moves.diffusion or zero}")
            step.append(f"sinks_out[{s}, i, j, k] = {sink}")
        if sink_exprs[s] != 0:
            step.append(f"sink_{n} = {sink}")
            step.append(f"u_new[{s}, i, j, k] = c_{n} + dt * ({total}) / ({one} + dt * sink_{n})")
        else:
            step.append(f"u_new[{s}, i, j, k] = c_{n} + dt * ({total})")

    used_coords = [a for a, coord in enumerate(COORDS) if coord in terms.used]

    def kernel(name: str, arguments: str, body: list[str]) -> list[str]:
        head = [
            "",
            "@njit(parallel=True, cache=True, nogil=True, error_model='numpy')",
            f"def {name}({arguments}):",
            "    nx, ny, nz = u.shape[1], u.shape[2], u.shape[3]",
        ]
        head += [f"    s_{n} = systemic[{m}]" for m, n in enumerate(model.systemic_names)]
        head.append("    SLOTS")  # the constants' locals, filled in once every slot is known
        loops = ["    for i in prange(nx):"]
        if 0 in used_coords:
            loops.append("        xc = X[i]")
        loops.append("        for j in range(ny):")
        if 1 in used_coords:
            loops.append("            yc = Y[j]")
        loops.append("            for k in range(nz):")
        if 2 in used_coords:
            loops.append("                zc = Z[k]")
        return head + loops + [f"                {line}" for line in body]

    text = [
        f"# Generated by solver/backends/cpu_codegen.py for species {', '.join(model.names)}",
        "import math",
        "",
        "from numba import njit, prange",
        "",
        *kernel("explicit_step", "u, u_new, maps, sinks_out, t, dt, systemic, K, X, Y, Z", step),
        "",
        *kernel("explicit_rates", "u, rate, sink, maps, diffusion_out, t, systemic, K, X, Y, Z", rates),
        "",
    ]
    slots = "\n".join(f"    k_{i} = K[{i}]" for i in range(len(constants.values))) or "    pass"
    source = "\n".join(text).replace("    SLOTS", slots)
    return CpuKernelSource(source, tuple(constants.values))
