"""The explicit stability bound and the time step it allows.

Public API:
    StepBound(dt, limited_by)                       the bound and what sets it
    species_rates(model, grid, u0, maps, systemic0, implicit_sinks, grid_values)
                                                    per species: (rate, what dominates it,
                                                    diffusion part, chemotaxis part)
    GridValues(model, grid, u0, maps, systemic0)    the initial state's evaluations, shared
    explicit_stability_bound(model, grid, u0, maps, ...) -> StepBound
    choose_dt(time_config, bound) -> float          auto, or a user value checked against the bound

The bound is the one under which forward Euler keeps every cell's update a
non-negative combination of old values (so it is stable and preserves
non-negativity) for the linear part of each species' operator:

    dt * (2 D sum_a 1/h_a^2 + D sum_{fixed-value faces} 1/h_a^2
          + 2 |chi| sum_a max|s_{+1} - s| / h_a^2 + max |dR_i/du_i|) <= 1

evaluated on the initial fields (chemotaxis gradients and the reaction Jacobian
are the values at t = 0; the blow-up guard every `check_every` steps catches a
run that outgrows them). With explicit sinks the reaction part is at least the loss
rate lambda_i of the species used up (u_i = 0): a Michaelis-Menten sink is stiffest
there, and a tumour consumes its oxygen in a fraction of the run.
The maps and the initial fields are handed in (solver/fields/static.py builds them
once per run); nothing here evaluates a static source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import sympy as sp

from solver.config import TimeConfig
from solver.errors import ConfigError
from solver.grid import Grid
from solver.model import COORDS, TIME, Model, _without_distributions
from solver.timing import TIME_RTOL


@dataclass(frozen=True)
class StepBound:
    """Largest stable explicit dt, and which term of which species sets it."""

    dt: float
    limited_by: str


def species_rates(
    model: Model, grid: Grid, u0: np.ndarray, maps: np.ndarray, systemic0: np.ndarray | None = None,
    implicit_sinks: bool = False, grid_values: GridValues | None = None,
) -> list[tuple[float, str, float, float]]:
    """Per species: (rate that bounds an explicit dt, what dominates it, its diffusion part,
    its chemotaxis part), on the initial fields `u0` and the (float64) `maps`.

    `grid_values`: a GridValues of the same arguments, to share its evaluations between
    calls (integrator_candidates asks for both integrators).
    """
    if grid_values is None:
        grid_values = GridValues(model, grid, u0, maps, systemic0)
    inv_h2 = [1.0 / h**2 for h in grid.spacing]
    out = []
    jacobians = model.reaction_jacobian_diagonal()
    losses = [_without_distributions(r) for r in model.loss_rates()]
    if implicit_sinks:  # the linear losses are implicit: only the rest of dR/du bounds dt
        jacobians = [j + r for j, r in zip(jacobians, losses)]
        depleted = [sp.Integer(0)] * len(losses)
    else:
        # A saturating sink (q T u/(K + u)) is at its stiffest when u is used up: its loss
        # rate at u = 0, q T/K, bounds forward Euler as the species falls, however large
        # u is at t = 0 (the oxygen sink: 120/day at blood oxygen, 1.2e6/day near anoxia).
        depleted = [r.subs(s.symbol, 0) for s, r in zip(model.species, losses)]
    for i, (s, jac) in enumerate(zip(model.species, jacobians)):
        diffusion = 0.0
        for a in range(3):
            # A face with ghost alpha u_edge + beta makes the edge cell's diagonal of the
            # discrete Laplacian -(2 - alpha) D/h^2: it adds max(0, -alpha) D/h^2 to the rate
            # (fixed value: alpha = -1, so 1). With n > 1 the two faces act on different
            # cells, with one cell both act on it.
            faces = [s.boundary.face(a, side) for side in (0, 1)]
            extra = [max(0.0, -f.ghost_coefficients(s.diffusion, grid.spacing[a])[0])
                     for f in faces if f.kind != "periodic"]
            acts = any(f.kind in ("value", "permeable") for f in faces)
            if grid.shape[a] > 1 or acts:  # one cell between no-flux faces: no flux along a
                diffusion += 2.0 * s.diffusion * inv_h2[a]
            diffusion += s.diffusion * (max(extra, default=0.0) if grid.shape[a] > 1 else sum(extra)) * inv_h2[a]
        chemo = 0.0
        if s.chemotaxis is not None:
            for a in range(3):
                if grid.shape[a] > 1:
                    step = grid_values.max_step(s.chemotaxis.signal, a)
                    chemo += 2.0 * abs(s.chemotaxis.sensitivity) * step * inv_h2[a]
        reaction = grid_values.max_abs(jac) if jac != 0 else 0.0
        if depleted[i] != 0:
            reaction = max(reaction, grid_values.max_abs(depleted[i]))
        parts = {
            f"diffusion of {s.name} (D={s.diffusion:g}, h={_fmt_h(grid)})": diffusion,
            f"chemotaxis of {s.name} up {model.species[s.chemotaxis.signal].name}" if s.chemotaxis else "": chemo,
            f"reaction of {s.name} (|dR/d{s.name}| up to {reaction:.3g} at t=0)": reaction,
        }
        main = max(parts, key=parts.get)
        out.append((diffusion + chemo + reaction, main, diffusion, chemo))
    return out


class GridValues:
    """The initial state's values for the bound: the largest |expr| over the cells, in
    float64, evaluated once per distinct value where that is exact, and the largest step
    of a field between neighbours.

    An initial state is mostly constant fields and one or two shaped ones (a tumour, a
    vessel map). When all but one of an expression's array arguments are constant, its
    value depends on that one argument alone, so evaluating it on the argument's distinct
    values (np.unique) gives exactly the values of the whole grid, each computed by the
    same elementwise array operations, hence the same maximum. When several arguments vary
    (a tumour T and a vessel map w), the expression is evaluated on the distinct rows of
    those arguments taken together, again exactly the values of the grid (on the 128^3 de
    Pillis combination 17 % of the cells); _rows finds them sorting only the cells where
    two or more arguments are off their background. At 256^3 this turns a minute of float64
    evaluation into seconds.
    """

    def __init__(self, model: Model, grid: Grid, u0: np.ndarray, maps: np.ndarray,
                 systemic0: np.ndarray | None = None) -> None:
        if systemic0 is None:
            systemic0 = np.zeros(len(model.systemic_names))
        coords = grid.coordinates()
        values: dict[sp.Symbol, object] = {s.symbol: u0[i] for i, s in enumerate(model.species)}
        values.update({sp.Symbol(m, real=True): maps[i] for i, m in enumerate(model.map_names)})
        values.update({c: coords[str(c)] for c in COORDS})
        values[TIME] = 0.0
        values.update({sp.Symbol(n, real=True): float(v) for n, v in zip(model.systemic_names, systemic0)})
        self.u0 = u0
        self.values = values
        self._constant: dict[sp.Symbol, float | None] = {}
        self._distinct: dict[tuple[sp.Symbol, ...], np.ndarray] = {}
        self._steps: dict[tuple[int, int], float] = {}

    def max_step(self, species: int, axis: int) -> float:
        """max |u_{i+1} - u_i| of one initial field along one axis (float64)."""
        if (species, axis) not in self._steps:
            signal = self.u0[species].astype(np.float64)
            self._steps[(species, axis)] = float(np.max(np.abs(np.diff(signal, axis=axis))))
        return self._steps[(species, axis)]

    def _constant_value(self, symbol: sp.Symbol) -> float | None:
        if symbol not in self._constant:
            v = self.values[symbol]
            if np.ndim(v) == 0:
                self._constant[symbol] = float(v)
            else:
                first = float(np.asarray(v).flat[0])
                self._constant[symbol] = first if bool(np.all(v == first)) else None
        return self._constant[symbol]

    def _rows(self, varying: tuple[sp.Symbol, ...]) -> np.ndarray:
        """The distinct rows of the `varying` arrays over the cells, (len(varying), n), float64;
        computed once per set of arguments.

        Sorting every cell is what costs (seconds at 256^3), so the cells are split first.
        Each argument has a background value, its value in the first cell. A cell where all
        arguments are at their background gives the background row; a cell where only
        argument j is not gives (background, ..., its value, ..., background), so these need
        only the distinct values of j over such cells; only the cells where two or more
        arguments are off their background are sorted as rows. Every row found is a row of
        some cell and every cell's row is found: exactly the grid's rows (a few twice).
        """
        if varying not in self._distinct:
            shape = self.u0.shape[1:]
            arrays = [np.broadcast_to(np.asarray(self.values[s]), shape) for s in varying]
            background = np.array([a.reshape(-1)[0] for a in arrays], dtype=np.float64)
            off = [a != a.reshape(-1)[0] for a in arrays]
            count = np.sum(off, axis=0, dtype=np.int16) if len(arrays) > 1 else off[0].astype(np.int16)
            parts = [background[:, None]]
            for j, (a, d) in enumerate(zip(arrays, off)):
                values = np.unique(a[d & (count == 1)].astype(np.float64))
                rows = np.repeat(background[:, None], len(values), axis=1)
                rows[j] = values
                parts.append(rows)
            many = count >= 2
            if many.any():
                columns = np.ascontiguousarray(np.stack([a[many].astype(np.float64) for a in arrays], axis=1))
                keys = np.unique(columns.view(np.dtype((np.void, 8 * len(arrays)))).reshape(-1))
                parts.append(np.frombuffer(keys.tobytes(), dtype=np.float64).reshape(-1, len(arrays)).T)
            self._distinct[varying] = np.concatenate(parts, axis=1)
        return self._distinct[varying]

    def max_abs(self, expr: sp.Expr) -> float:
        symbols = sorted(expr.free_symbols, key=str)
        fn = sp.lambdify(symbols, expr, modules="numpy")
        arrays = [s for s in symbols if np.ndim(self.values[s]) > 0]
        varying = [s for s in arrays if self._constant_value(s) is None]
        rows = self._rows(tuple(varying)) if varying else np.zeros((0, 1))
        args = [rows[varying.index(s)] if s in varying
                else np.full(rows.shape[1:], self._constant_value(s)) if s in arrays
                else self.values[s] for s in symbols]
        return float(np.max(np.abs(np.asarray(fn(*args), dtype=np.float64))))


def _fmt_h(grid: Grid) -> str:
    h = grid.spacing
    return f"{h[0]:g}" if h[0] == h[1] == h[2] else "(" + ", ".join(f"{v:g}" for v in h) + ")"


def explicit_stability_bound(
    model: Model, grid: Grid, u0: np.ndarray, maps: np.ndarray, systemic0: np.ndarray | None = None,
    implicit_sinks: bool = False, implicit_diffusion: frozenset[int] = frozenset(),
    implicit_chemotaxis: frozenset[int] = frozenset(), rates: list | None = None,
) -> StepBound:
    """The largest forward-Euler dt for this model, grid and initial state (see module doc).

    `systemic0`: the systemic scalars at t = 0, in model.systemic_names order.
    `implicit_diffusion`, `implicit_chemotaxis`: species whose diffusion (and chemotaxis)
    an IMEX step solves implicitly: left out of the bound. `rates`: species_rates of the
    same arguments, when the caller has them already.
    """
    if rates is None:
        rates = species_rates(model, grid, u0, maps, systemic0, implicit_sinks)
    out = []
    for i, (total, why, diffusion, chemo) in enumerate(rates):
        implicit = (diffusion if i in implicit_diffusion else 0.0) + (chemo if i in implicit_chemotaxis else 0.0)
        if implicit:
            total, why = total - implicit, f"the explicit part of {model.species[i].name}"
        out.append((total, why))
    rate, why = max(out, key=lambda r: r[0])
    if not math.isfinite(rate):
        raise ConfigError(f"the {why.split(' (')[0]} is not finite on the initial fields")
    if rate <= 0:
        return StepBound(math.inf, "nothing (no diffusion, chemotaxis or reaction rate)")
    return StepBound(1.0 / rate, why)


def choose_dt(time: TimeConfig, bound: StepBound) -> float:
    """dt for the run: safety * bound when auto; a fixed dt above the bound is refused."""
    if time.dt == "auto":
        return time.safety * bound.dt
    if time.dt > bound.dt * (1 + TIME_RTOL):
        raise ConfigError(
            f"time.dt = {time.dt:g} is above the explicit stability bound {bound.dt:.6g} "
            f"(set by {bound.limited_by}); use time.dt <= {bound.dt:.6g} or dt: auto"
        )
    return float(time.dt)
