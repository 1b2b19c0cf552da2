"""Global quantities of a model: integrals over the domain, reduced at every stage.

Public API:
    GlobalsEvaluator(model, grid, backend=None, dtype=float64)   backend None: host NumPy arrays
        .values(u, maps, t, base) -> tuple[float, ...]   in model.globals order

A model's `globals:` are integrals of expressions of the fields over the domain (for
the built-in de Pillis model: the tumour's cell count and its square integral), or
values computed from the globals before them in float64 (the tumour's effective volume,
a ratio whose numerator and denominator would overflow float32 inside a kernel). Reactions read them like systemic scalars, so the
generated kernels take them as scalar arguments after the systemic values
(Model.systemic_names). They are evaluated from the fields of each stage of a step (the
integrators pass those fields to SystemicRuntime.values), so a second-order step stays
second order in them; a bound on dt at t = 0 uses those of the initial fields. Each
evaluation is one pass over the grid per global plus one device-to-host transfer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sympy as sp

from solver.backends.base import Backend
from solver.grid import Grid
from solver.model import COORDS, TIME, Model


class GlobalsEvaluator:
    """Lambdified integrands on the backend's array module; sums in float64."""

    def __init__(self, model: Model, grid: Grid, backend: Backend | None = None,
                 dtype: np.dtype = np.dtype(np.float64)) -> None:
        self.model, self.grid = model, grid
        self.xp, self.to_host = (np, np.asarray) if backend is None else (backend.xp, backend.to_host)
        module = "cupy" if backend is not None and backend.name == "cupy" else "numpy"
        base = [*(v.name for v in model.systemic), *(a.name for a in model.agents)]
        args = ([s.symbol for s in model.species] + [sp.Symbol(m, real=True) for m in model.map_names]
                + [TIME, *COORDS, *(sp.Symbol(n, real=True) for n in base)])
        self.integrals = [g for g in model.globals if g.integral]
        self.functions = [sp.lambdify(args, g.expr, modules=module) for g in self.integrals]
        earlier: list[sp.Symbol] = []
        self.derived: list[tuple[int, Any, list[int]]] = []  # (position, function, inputs)
        for i, g in enumerate(model.globals):
            if not g.integral:
                used = sorted((s for s in g.expr.free_symbols if s in earlier), key=earlier.index)
                self.derived.append((i, sp.lambdify(used, g.expr, modules="numpy"), [earlier.index(s) for s in used]))
            earlier.append(sp.Symbol(g.name, real=True))
        self.cast = np.dtype(dtype).type
        self.coords = [self.xp.asarray(grid.centres(a, dtype)) for a in range(3)]  # as the kernels compute them

    def values(self, u: Any, maps: Any, t: float, base: Any) -> tuple[float, ...]:
        """Every global at time t from the fields u (all species) and maps; `base`: the
        systemic values and agents at t."""
        if not self.model.globals:
            return ()
        xp = self.xp
        out: list[float] = []
        if self.functions:
            args = [*u, *maps[: len(self.model.maps)], self.cast(t), *self.coords, *(self.cast(v) for v in base)]
            sums = [xp.broadcast_to(xp.asarray(f(*args), dtype=xp.float64), self.grid.shape).sum()
                    for f in self.functions]
            out = [float(v) * self.grid.cell_volume for v in np.asarray(self.to_host(xp.stack(sums)), dtype=np.float64)]
        for i, f, inputs in self.derived:
            out.insert(i, float(f(*(out[j] for j in inputs))))
        return tuple(out)
