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

from solver.grid import Grid
from solver.model import COORDS, TIME, Model

log = logging.getLogger(__name__)


def _along(axis: int, index: slice) -> tuple[slice, ...]:
    s = [slice(None)] * 3
    s[axis] = index
    return tuple(s)


class ArrayExpressionStep:
    """The forward-Euler step written the straightforward way, for any array module.

    Same discretisation and order of operations as the fused kernel
    (solver/backends/cuda_codegen.py) and the NumPy fallback: per axis the neighbour
    arrays are built by concatenating the ghost slab (solver/grid.py rules: no-flux
    copies the edge, periodic wraps, a fixed value g gives 2 g - u_edge, a permeable face
    alpha u_edge + beta) to the shifted field, then

        lap u   = sum_axes ((u_m + u_p) - 2 u) / h^2
        chemo   = -sum_axes (F_p - F_m) / h,  F = v u_upwind,  v = chi (s_p - s) / h
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
        # i < n - 1 and i > 0 along each axis: where a no-flux face does not cut the flux.
        self.not_last = [xp.asarray((np.arange(n) < n - 1).reshape([n if a == b else 1 for b in range(3)]))
                         for a, n in enumerate(grid.shape)]
        self.not_first = [xp.asarray((np.arange(n) > 0).reshape([n if a == b else 1 for b in range(3)]))
                          for a, n in enumerate(grid.shape)]
        args = [s.symbol for s in model.species] + [sp.Symbol(m, real=True) for m in model.map_names]
        args += [TIME, *COORDS, *(sp.Symbol(n, real=True) for n in model.systemic_names)]
        n_species = len(model.species)
        sinks = model.loss_rates() if implicit_sinks else [sp.Integer(0)] * n_species
        self.has_sink = [e != 0 for e in sinks]
        module = self.MODULES.get(getattr(xp, "__name__", ""), "numpy")
        self.reactions = sp.lambdify(args, [s.reaction for s in model.species] + sinks,
                                     modules=module, cse=True)
        need = [s.diffusion > 0 or s.chemotaxis is not None for s in model.species]
        for s in model.species:
            if s.chemotaxis is not None:
                need[s.chemotaxis.signal] = True
        self.need_neighbours = need
        self.numpy = xp is np

    def neighbours(self, s: int, c: Any, axis: int) -> tuple[Any, Any]:
        """Species s's values in the cell below and above along `axis`, ghosts included."""
        xp, n = self.xp, self.grid.shape[axis]
        species = self.model.species[s]
        first, last = c[_along(axis, slice(0, 1))], c[_along(axis, slice(n - 1, n))]
        ghosts = []
        for side, edge, wrap in ((0, first, last), (1, last, first)):
            face = species.boundary.face(axis, side)
            if face.kind == "periodic":
                ghosts.append(wrap)
            elif face.kind == "value":
                ghosts.append(self.cast(2.0 * face.value) - edge)
            elif face.kind == "permeable":
                alpha, beta = face.ghost_coefficients(species.diffusion, self.grid.spacing[axis])
                ghosts.append(self.cast(alpha) * edge + self.cast(beta))
            else:
                ghosts.append(edge)
        below = xp.concatenate([ghosts[0], c[_along(axis, slice(0, n - 1))]], axis=axis)
        above = xp.concatenate([c[_along(axis, slice(1, n))], ghosts[1]], axis=axis)
        return below, above

    def new_fields(self, u: Any, maps: Any, t: Any, dt: Any, systemic: Sequence[Any]) -> list[Any]:
        """u_new for every species, as a list of whole-grid arrays."""
        cast, model = self.cast, self.model
        fields = [u[i] for i in range(len(model.species))]
        map_fields = [maps[i] for i in range(len(model.maps))]
        near = {s: [self.neighbours(s, fields[s], a) for a in range(3)]
                for s in range(len(fields)) if self.need_neighbours[s]}
        errors = np.errstate(all="ignore") if self.numpy else contextlib.nullcontext()
        with errors:  # saturating terms may overflow to inf and divide by it, as on the GPU
            values = self.reactions(*fields, *map_fields, t, *self.coords, *systemic)
            n = len(fields)
            rates, sinks = values[:n], values[n:]
            out = []
            for s, species in enumerate(model.species):
                c = fields[s]
                total = None
                if species.diffusion > 0:
                    lap = None
                    for a in range(3):
                        below, above = near[s][a]
                        term = ((below + above) - cast(2) * c) * self.inv_h2[a]
                        lap = term if lap is None else lap + term
                    total = cast(species.diffusion) * lap
                if species.chemotaxis is not None:
                    chemo = self._chemotaxis(s, c, fields, near)
                    total = chemo if total is None else total + chemo
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

    def _chemotaxis(self, s: int, c: Any, fields: list[Any], near: dict[int, list]) -> Any:
        """-div(chi u grad signal), first-order upwind; zero flux through no-flux and permeable faces."""
        xp, cast = self.xp, self.cast
        species = self.model.species[s]
        chi, zero = cast(species.chemotaxis.sensitivity), cast(0)
        sig = species.chemotaxis.signal
        sc = fields[sig]
        div = None
        for a in range(3):
            inv_h = self.inv_h[a]
            s_below, s_above = near[sig][a]
            u_below, u_above = near[s][a]
            vp = chi * ((s_above - sc) * inv_h)
            vm = chi * ((sc - s_below) * inv_h)
            fp = xp.where(vp > zero, vp * c, vp * u_above)
            fm = xp.where(vm > zero, vm * u_below, vm * c)
            if species.boundary.face(a, 1).kind in ("no-flux", "permeable"):
                fp = xp.where(self.not_last[a], fp, zero)
            if species.boundary.face(a, 0).kind in ("no-flux", "permeable"):
                fm = xp.where(self.not_first[a], fm, zero)
            term = (fp - fm) * inv_h
            div = term if div is None else div + term
        return -div

    def step(self, u: Any, u_new: Any, maps: Any, t: float, dt: float, systemic: Sequence[float] = ()) -> None:
        """The ExplicitStepper interface for NumPy and CuPy: writes u_new species by species."""
        cast = self.cast
        for s, value in enumerate(self.new_fields(u, maps, cast(t), cast(dt), [cast(v) for v in systemic])):
            u_new[s] = value
