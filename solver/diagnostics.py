"""Scalar diagnostics of a run, reduced on the device at every time-series record.

Public API:
    DiagnosticsEvaluator(model, grid, backend, dtype)
        .evaluate(u, maps, t, systemic) -> dict[name, float]
        .get_state() / .set_state()     AUC accumulators and the last record, for checkpoints

Each diagnostic of the model (solver.model.Diagnostic) is an `integral` of an
expression over the cells where its condition holds (sum of value * cell volume),
a `mean` over that region, or the `auc` of another diagnostic: its time integral
by the trapezoidal rule over the records (so its accuracy follows
`output.series_every`). Expressions are lambdified for the backend's array module
(NumPy or CuPy), so the reductions run where the fields are; the host receives
one float per diagnostic.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import sympy as sp

from solver.backends.base import Backend
from solver.grid import Grid
from solver.model import Model


class DiagnosticsEvaluator:
    """Evaluates the model's diagnostics on the device; keeps the AUC accumulators."""

    def __init__(self, model: Model, grid: Grid, backend: Backend, dtype: np.dtype) -> None:
        self.model = model
        self.grid = grid
        self.xp = backend.xp
        self.to_host = backend.to_host
        module = "cupy" if backend.name == "cupy" else "numpy"
        args = model.arguments()
        self.functions: dict[str, tuple[Any, Any]] = {}
        for d in model.diagnostics:
            if d.kind == "auc":
                continue
            value = sp.lambdify(args, d.expr, modules=module)
            mask = None if d.where is None else sp.lambdify(args, d.where, modules=module)
            self.functions[d.name] = (value, mask)
        cast = np.dtype(dtype).type
        self.coords = [self.xp.asarray(grid.centres(a, dtype)) for a in range(3)]  # as the kernels compute them
        self.cast = cast
        self.auc: dict[str, float] = {d.name: 0.0 for d in model.diagnostics if d.kind == "auc"}
        self.last: tuple[float, dict[str, float]] | None = None

    def evaluate(self, u: Any, maps: Any, t: float, systemic: Any) -> dict[str, float]:
        """All diagnostics at time t (AUCs advanced from the previous record to t)."""
        xp = self.xp
        args = [*u, *maps[: len(self.model.maps)], self.cast(t), *self.coords, *(self.cast(v) for v in systemic)]
        out: dict[str, float] = {}
        volume = self.grid.cell_volume
        names, reductions = [], []
        for d in self.model.diagnostics:
            if d.kind == "auc":
                continue
            value_fn, mask_fn = self.functions[d.name]
            value = xp.broadcast_to(xp.asarray(value_fn(*args), dtype=xp.float64), self.grid.shape)
            if mask_fn is None:
                total, cells = value.sum(), xp.asarray(float(self.grid.size))
            else:
                mask = xp.broadcast_to(xp.asarray(mask_fn(*args), dtype=bool), self.grid.shape)
                total, cells = xp.where(mask, value, 0.0).sum(), mask.sum(dtype=xp.float64)
            names.append(d)
            reductions += [total, cells]
        # one device-to-host transfer for all diagnostics of this record
        host = self.to_host(xp.stack(reductions)) if reductions else []
        for k, d in enumerate(names):
            integral, cells = float(host[2 * k]) * volume, float(host[2 * k + 1])
            if d.kind == "integral":
                out[d.name] = integral
            else:
                out[d.name] = integral / (cells * volume) if cells else math.nan
        for d in self.model.diagnostics:
            if d.kind == "auc":
                if self.last is not None and t > self.last[0]:
                    prev = self.last[1][d.of]
                    if math.isfinite(prev) and math.isfinite(out[d.of]):
                        self.auc[d.name] += 0.5 * (prev + out[d.of]) * (t - self.last[0])
                out[d.name] = self.auc[d.name]
        self.last = (t, dict(out))
        return out

    def get_state(self) -> dict[str, Any]:
        """{"auc": {name: accumulated value}, "last": (t, {name: value}) of the last record or None}."""
        last = None if self.last is None else (self.last[0], dict(self.last[1]))
        return {"auc": dict(self.auc), "last": last}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what get_state() returned, so the next record's AUCs continue exactly.

        Raises:
            ValueError: the state has other AUC diagnostics than this model.
        """
        if set(state["auc"]) != set(self.auc):
            raise ValueError(f"AUC diagnostics {sorted(state['auc'])} do not match this model's {sorted(self.auc)}")
        self.auc = {name: float(state["auc"][name]) for name in self.auc}
        last = state.get("last")
        self.last = None if last is None else (float(last[0]), {k: float(v) for k, v in last[1].items()})
