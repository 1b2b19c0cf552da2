"""IMEX time stepping: reactions and slow transport explicit, fast diffusion implicit.

Public API:
    ImexIntegrator(backend, model, grid, dtype, dt_max, check_every, implicit_sinks, implicit,
                   order=1, max_change=None, implicit_chemotaxis=frozenset(), rtol=None, atol=None)

Species with implicit diffusion (drugs, oxygen: they diffuse 1e3-1e5 times faster than
cells move) are solved with their linear sinks (decay, vessel exchange, linearised
uptake: lambda) on the diagonal of the line solves, as BioFVM does (Ghaffarizadeh et al.,
Bioinformatics 32 (2016) 1256). One step from t to t + h, order 1, is backward Euler

    (I + h Lambda - h D L) u_new = u + h G,     G = F - D L u + lambda u (production, sources)

with the operator factorised into line solves scaled by S = (1 + h lambda)^-1 per cell:

    u_new = P_z^-1 P_y^-1 P_x^-1 S (u + h G),   P_a = I - h S D L_a   (x, y, z in turn)

The fused explicit step writes S (u + h G) and lambda (report_sinks); the backend solves
each P_a (solver/backends/lines.py: solve_scaled; kernels/line_solve_scaled.cu). Each P_a
is an M-matrix, so u + h G >= 0 gives u_new >= 0, and every mode is damped at every h.
The factorisation adds h^2 S D L_a S D L_b (a != b) terms to backward Euler: where a sink
is stiff (h lambda >> 1) S ~ 1 / (h lambda) makes them O((D / (lambda dx^2))^2), independent
of h, so the state a stiff sink sets does not move with dt (the Lie splitting of the sink
from the diffusion that this replaced moved it by O(h D lambda / dx^2): on the oxygen
model at 32^3 the necrotic fraction went from 0.12 to 0 at the auto dt). Order 2 is the
exponential predictor-corrector of solver/integrators/second_order.py, with backward
Euler over h as its predictor and the Richardson extrapolation of backward Euler
(correct()) as its corrector for these species.

The species stepped explicitly (the cells) take the fused step (order 1) or the
exponential formulas (order 2); with time.implicit_chemotaxis the chosen cell species
have their diffusion and upwind chemotaxis solved by positive backward-Euler line solves
after each stage (an M-matrix per line: conservative, non-negative at any h), with the
chemoattractant of the step's start.

The line solves are batched Thomas solves (solver/backends/lines.py); the backend makes
them (NumPy on the CPU, kernels/line_solve_scaled.cu and kernels/transport_solve.cu on
the GPU), so nothing here depends on the device. time.max_courant limits the transport
step's Courant number (step_limit): backward-Euler upwind is positive at any Courant
number but smears a front by about that many cells.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

import numpy as np

from solver.backends.base import Backend, ImplicitSolver
from solver.grid import Grid
from solver.integrators.explicit import ExplicitIntegrator
from solver.integrators.second_order import PredictorCorrector
from solver.model import Model

log = logging.getLogger(__name__)

# Implicit solvers kept for this many step sizes (step-size control halves and doubles h).
FACTOR_CACHE = 8


class ImexIntegrator(ExplicitIntegrator):
    """The explicit part (fused step or predictor-corrector), then the implicit solves.

    `implicit`: species with implicit transport; those also in `implicit_chemotaxis` have
    diffusion and upwind chemotaxis solved together by backward Euler, the others
    (diffusion only) by the sink-scaled line solves (module docstring).
    """

    def __init__(
        self, backend: Backend, model: Model, grid: Grid, dtype: np.dtype, dt_max: float,
        check_every: int, implicit_sinks: bool, implicit: frozenset[int], order: int = 1,
        max_change: float | None = None, implicit_chemotaxis: frozenset[int] = frozenset(),
        rtol: float | None = None, atol: dict[int, float] | None = None, max_courant: float | None = None,
    ) -> None:
        self.transported = sorted(implicit_chemotaxis)
        self.delta = sorted(set(implicit) - set(implicit_chemotaxis))
        self.implicit = sorted(implicit)
        # species -> implicit solver, per backward-Euler time tau: h for the step (and the
        # predictor and full step of order 2), h/2 for the corrector's half steps.
        self._solvers: OrderedDict[float, dict[int, ImplicitSolver]] = OrderedDict()
        super().__init__(backend, model, grid, dtype, dt_max, check_every, implicit_sinks, order=order,
                         max_change=max_change, rtol=rtol, atol=atol)
        self.max_courant = max_courant if self.transported else None
        self._sinks = backend.xp.zeros(self.shape, self.dtype) if self.delta and order == 1 else None

    def _make_stepper(self):
        moved = frozenset(self.transported)  # their transport is solved after the explicit part
        # order 1: the delta species' diffusion is left to the line solves; order 2: it is in F
        # (the corrector's residual) and reported apart (its predictor leaves it out).
        no_diffusion = moved | frozenset(self.delta) if self.order == 1 else moved
        return self.backend.make_explicit_stepper(self.model, self.grid, self.dtype, self.implicit_sinks,
                                                  no_diffusion, moved, report_sinks=frozenset(self.delta))

    def _make_predictor_corrector(self) -> PredictorCorrector:
        explicit = [i for i in range(len(self.model.species)) if i not in self.implicit]
        return PredictorCorrector(self.backend, self.shape, self.dtype, explicit, self.delta, self.transported)

    def _controlled_species(self) -> list[int]:
        """The max_change guard measures the species stepped explicitly (the cell
        populations, whose reactions set the accuracy); a fast-clearing implicit drug would
        otherwise hold every step to a few per cent of its decay time."""
        return [i for i in range(len(self.model.species)) if i not in self.implicit] or \
            list(range(len(self.model.species)))

    def solvers(self, tau: float) -> dict[int, ImplicitSolver]:
        """The backend's implicit solver of each implicit species over tau, built once per tau."""
        key = tau
        if key in self._solvers:
            self._solvers.move_to_end(key)
            return self._solvers[key]
        if len(self._solvers) >= FACTOR_CACHE:
            self._solvers.popitem(last=False)
        out = {}
        for s in self.delta:
            out[s] = self.backend.make_line_solver(self.model.species[s], self.grid, tau, self.dtype)
        for s in self.transported:
            out[s] = self.backend.make_transport_solver(self.model.species[s], self.grid, tau, self.dtype)
        self._solvers[key] = out
        return out

    def step_limit(self, state: Any) -> float | None:
        """max_courant / sum_a |chi| max|s_{i+1} - s_i| / dx_a^2, the largest step whose
        Courant number h |v| / dx, v = chi grad s at the step's start, stays within
        time.max_courant for every transported species (one device-to-host transfer)."""
        if self.max_courant is None:
            return None
        xp = self.backend.xp
        parts = []
        for s in self.transported:
            species = self.model.species[s]
            signal = state.u[species.chemotaxis.signal]
            for a in range(3):
                if self.grid.shape[a] > 1:
                    step = xp.max(xp.abs(xp.diff(signal, axis=a))).astype(xp.float64)
                    parts.append(step * abs(species.chemotaxis.sensitivity) / self.grid.spacing[a] ** 2)
        if not parts:
            return None
        rates = self.backend.to_host(xp.stack(parts))
        per_species = np.asarray(rates).reshape(len(self.transported), -1).sum(axis=1)
        rate = float(per_species.max())
        return self.max_courant / rate if rate > 0 else None

    def _scaled_solve(self, v: Any, tau: float, lam: Any) -> None:
        """v <- (D - tau A_z)^-1 D (D - tau A_y)^-1 D (D - tau A_x)^-1 D v per delta species,
        D = 1 + tau lambda: the row-scaled line solves (I - tau D^-1 A_a) in turn. `v` and
        `lam` are indexed by species (arrays of all species, or dicts of the delta ones)."""
        cast = self.dtype.type
        solvers = self.solvers(tau)
        for s in self.delta:
            scale = cast(1) / (cast(1) + cast(tau) * lam[s])
            solvers[s].solve(v[s], (0, 1, 2), scale=scale)

    # the implicit parts of the predictor-corrector (order 2)

    def _backward_euler(self, rhs: Any, out: Any, tau: float, lam: Any) -> None:
        """out[delta] <- (I + tau Lambda - tau D L)~^-1 rhs[delta]: the positive sink-scaled
        line solves of backward Euler over tau (the faces' data included)."""
        cast = self.dtype.type
        for s in self.delta:
            out[s] = rhs[s] / (cast(1) + cast(tau) * lam[s])
        self._scaled_solve(out, tau, lam)

    def _source(self, stage: tuple, u: Any, s: int) -> Any:
        """G = F - D lap u + lambda u of delta species s at a stage (rate, sink, diffusion)."""
        rate, sink, diffusion = stage
        return rate[s] - diffusion[s] + sink[s] * u[s]

    # the implicit parts of the predictor-corrector (order 2)

    def predict(self, u: Any, out: Any, h: float, stage0: tuple) -> None:
        """Backward Euler over h of the delta species with the source of the step's start
        (positive): out = (I + h Lambda0 - h D L)~^-1 (u + h G0)."""
        hh = self.dtype.type(h)
        rhs = {s: u[s] + hh * self._source(stage0, u, s) for s in self.delta}
        self._backward_euler(rhs, out, h, stage0[1])

    def correct(self, u: Any, u1: Any, out: Any, h: float, stage0: tuple, stage1: tuple, embedded: Any = None) -> None:
        """Richardson extrapolation of backward Euler, the delta species' corrector:

            u2 = 2 w - v_h,   v_h = BE_h(u; G1),   w = BE_{h/2}(BE_{h/2}(u; (G0 + G1)/2); G1)

        with each BE the sink-scaled line solves (positive), the source at the end of each
        sub-step (G linear in t between the stages) and lambda* = max(lambda0, lambda1).
        Second order (the extrapolation removes backward Euler's and the factorisation's
        leading error), L-stable (its amplification tends to 0 for stiff modes: no
        Crank-Nicolson ringing after a dose) and, in the stiff limit, the quasi-steady state
        at the end of the step. Where 2 w - v_h would be negative (a fast washout) the
        half-step value w, positive and first order, is kept. `embedded` (may be u1): where
        to write w, the step's embedded first-order solution (w - v_h estimates its error).
        """
        xp, cast = self.backend.xp, self.dtype.type
        hh, half = cast(h), cast(h / 2)
        lam = {s: xp.maximum(stage0[1][s], stage1[1][s]) for s in self.delta}
        g0 = {s: self._source(stage0, u, s) for s in self.delta}
        g1 = {s: self._source(stage1, u1, s) for s in self.delta}
        full = {}
        self._backward_euler({s: u[s] + hh * g1[s] for s in self.delta}, full, h, lam)
        w = {}
        self._backward_euler({s: u[s] + half * (cast(0.5) * (g0[s] + g1[s])) for s in self.delta}, w, h / 2, lam)
        self._backward_euler({s: w[s] + half * g1[s] for s in self.delta}, w, h / 2, lam)
        for s in self.delta:
            extrapolated = cast(2) * w[s] - full[s]
            if self.model.species[s].nonnegative:
                extrapolated = xp.where(extrapolated < 0, w[s], extrapolated)
            out[s] = extrapolated
            if embedded is not None:
                embedded[s] = w[s]

    def transport(self, v: Any, tau: float, signals: Any) -> None:
        """Backward Euler over tau of the transport species' diffusion and chemotaxis, in
        place on v, with the chemoattractants of `signals` (the start of the step)."""
        if not self.transported:
            return
        solvers = self.solvers(tau)
        for s in self.transported:
            signal = signals[self.model.species[s].chemotaxis.signal]
            solvers[s].solve(v[s], (0, 1, 2), False, signal)

    def step(self, state: Any, t: float, h: float, systemic: Any) -> float | None:
        if self.pc is not None:
            weights = self.error_ratio if self.rtol is not None else None
            return self.pc.step(self.stepper, state.u, state.u_new, state.maps, t, h, systemic,
                                implicit=self, weights=weights)
        # order 1: the fused step writes D (u + h G) for the delta species and their sinks
        values = () if systemic is None else systemic.values(t, fields=state.u)
        self.stepper.step(state.u, state.u_new, state.maps, t, h, values, self._sinks)
        if systemic is not None:
            systemic.advance(t, h)
        if self.delta:
            self._scaled_solve(state.u_new, h, self._sinks)
        self.transport(state.u_new, h, state.u)
        return None
