"""The peers: the solver's explicit step written as whole-array expressions (NumPy, CuPy, jax).

Part of the benchmark harness (solver/bench/__init__.py explains what is measured).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import sympy as sp

from solver.backends.stencil import ArrayEvaluator, Neighbour, ghost_rule, transport_program
from solver.grid import Grid
from solver.model import COORDS, TIME, Model

log = logging.getLogger(__name__)


def _along(axis: int, index: slice) -> tuple[slice, ...]:
    s = [slice(None)] * 3
    s[axis] = index
    return tuple(s)


class ArrayExpressionStep:
    """The forward-Euler step written the straightforward way, for any array module.

    The stencil of solver/backends/stencil.py (the one every backend prints), evaluated
    with whole arrays: per axis the neighbour arrays are built by concatenating the ghost
    slab to the shifted field, then

        u_new   = u + dt ((D lap u + chemo) + R)        [/ (1 + dt lambda) for implicit sinks]

    Reactions are the model's sympy expressions lambdified for `xp` (common
    subexpressions shared, as a person would name them once). Every intermediate is a
    whole-grid temporary: that is what the fused kernel and the fallback avoid.

    Args:
        xp: numpy, cupy or jax.numpy (jax: call new_fields inside jax.jit).
    """

    MODULES: ClassVar[dict[str, str]] = {"numpy": "numpy", "cupy": "cupy", "jax.numpy": "jax"}

    def __init__(self, model: Model, grid: Grid, dtype: np.dtype, implicit_sinks: bool, xp: Any) -> None:
        self.model, self.grid, self.xp = model, grid, xp
        self.dtype = np.dtype(dtype)
        cast = self.dtype.type
        self.cast = cast
        self.inv_h = [cast(1.0 / h) for h in grid.spacing]
        self.inv_h2 = [cast(1.0 / (h * h)) for h in grid.spacing]
        self.coords = [
            xp.asarray(((np.arange(n, dtype=self.dtype) + cast(0.5)) * cast(h)).reshape(
                [n if a == b else 1 for b in range(3)]))
            for a, (n, h) in enumerate(zip(grid.shape, grid.spacing))
        ]
        args = [s.symbol for s in model.species] + [sp.Symbol(m, real=True) for m in model.map_names]
        args += [TIME, *COORDS, *(sp.Symbol(n, real=True) for n in model.systemic_names)]
        n_species = len(model.species)
        sinks = model.loss_rates() if implicit_sinks else [sp.Integer(0)] * n_species
        self.has_sink = [e != 0 for e in sinks]
        module = self.MODULES.get(getattr(xp, "__name__", ""), "numpy")
        self.reactions = sp.lambdify(args, [s.reaction for s in model.species] + sinks,
                                     modules=module, cse=True)
        self.program = transport_program(model, grid)
        self.evaluator = _ConcatenatedEvaluator(self, model, grid, dtype, xp)
        self.numpy = xp is np

    def neighbours(self, s: int, c: Any, axis: int) -> tuple[Any, Any]:
        """Species s's values in the cell below and above along `axis`: the shifted field
        with the ghost slab (rule of solver/backends/stencil.py) concatenated."""
        xp, n = self.xp, self.grid.shape[axis]
        first, last = c[_along(axis, slice(0, 1))], c[_along(axis, slice(n - 1, n))]
        ghosts = []
        for side, edge, wrap in ((0, first, last), (1, last, first)):
            face = self.model.species[s].boundary.face(axis, side)
            rule = ghost_rule(face, self.model.species[s].diffusion, self.grid.spacing[axis])
            if rule.kind == "wrap":
                ghosts.append(wrap)
            elif rule.kind == "edge":
                ghosts.append(edge)
            elif rule.kind == "reflect":
                ghosts.append(self.cast(rule.beta) - edge)
            else:
                ghosts.append(self.cast(rule.alpha) * edge + self.cast(rule.beta))
        below = xp.concatenate([ghosts[0], c[_along(axis, slice(0, n - 1))]], axis=axis)
        above = xp.concatenate([c[_along(axis, slice(1, n))], ghosts[1]], axis=axis)
        return below, above

    def new_fields(self, u: Any, maps: Any, t: Any, dt: Any, systemic: Sequence[Any]) -> list[Any]:
        """u_new for every species, as a list of whole-grid arrays."""
        cast, model = self.cast, self.model
        fields = [u[i] for i in range(len(model.species))]
        map_fields = [maps[i] for i in range(len(model.maps))]
        self.evaluator.fields, self.evaluator.near = fields, {}
        errors = np.errstate(all="ignore") if self.numpy else contextlib.nullcontext()
        with errors:  # saturating terms may overflow to inf and divide by it, as on the GPU
            values = self.reactions(*fields, *map_fields, t, *self.coords, *systemic)
            n = len(fields)
            rates, sinks = values[:n], values[n:]
            out = []
            for s, species in enumerate(model.species):
                c = fields[s]
                moves = self.program.species[s]
                total = self.evaluator.run(moves, {}).get(moves.total) if moves.statements else None
                rate = rates[s]
                if not (np.isscalar(rate) and rate == 0):
                    total = rate if total is None else total + rate
                if total is None:
                    out.append(c)
                elif self.has_sink[s]:
                    out.append(c + dt * total / (cast(1) + dt * sinks[s]))
                else:
                    out.append(c + dt * total)
        return out

    def step(self, u: Any, u_new: Any, maps: Any, t: float, dt: float, systemic: Sequence[float] = ()) -> None:
        """The ExplicitStepper interface for NumPy and CuPy: writes u_new species by species."""
        cast = self.cast
        for s, value in enumerate(self.new_fields(u, maps, cast(t), cast(dt), [cast(v) for v in systemic])):
            u_new[s] = value


class _ConcatenatedEvaluator(ArrayEvaluator):
    """The stencil on whole arrays whose neighbours are built by concatenation (no padded
    buffers: what a person writes first, and what jax.jit can trace)."""

    def __init__(self, step: ArrayExpressionStep, model: Model, grid: Grid, dtype: np.dtype, xp: Any) -> None:
        super().__init__(model, grid, dtype, xp)
        self.in_place = False  # the straightforward way: a masked select, not a face assignment
        self.step, self.fields, self.near = step, [], {}

    def centre(self, s: int) -> Any:
        return self.fields[s]

    def neighbour(self, node: Neighbour) -> Any:
        key = (node.s, node.axis)
        if key not in self.near:
            self.near[key] = self.step.neighbours(node.s, self.fields[node.s], node.axis)
        return self.near[key][node.side]
