"""The second-order step (`time.order: 2`): an exponential predictor-corrector.

Public API:
    phi_functions(z, xp) -> (exp(-z), phi1(z), phi2(z))          (from solver/backends/etd.py)
    PredictorCorrector(backend, shape, dtype, explicit, delta, transport)
        .step(stepper, u, u_new, maps, t, h, systemic, solve_delta, solve_transport) -> error estimate

Each species' right-hand side is written F = G - lambda u, with lambda >= 0 its loss rate
(Model.loss_rates: decay, vessel exchange, kill and uptake, lagged where nonlinear) and G
the rest (production, sources from plasma, transport). Exact for u' = G(t) - lambda u
with G linear in t and lambda constant is the exponential trapezoid (Cox & Matthews,
J. Comput. Phys. 176 (2002) 430, ETD2):

    u(t + h) = e^{-z} u(t) + h [(phi1(z) - phi2(z)) G(t) + phi2(z) G(t + h)],   z = h lambda,
    phi1(z) = (1 - e^{-z}) / z,   phi2(z) = (z - 1 + e^{-z}) / z^2.

A step of the species stepped explicitly (all of them for the explicit integrator; the
cell populations with imex):

    predictor   u1 = e^{-z0} u0 + h phi1(z0) G0                       (exponential Euler)
    corrector   u2 = ETD2(u0; G0 at u0, G1 at u1, lambda* = max(lambda0, lambda1))
    corrector   u3 = ETD2(u0; G0 at u0, G2 at u2, lambda** = max(lambda0, lambda2))

with G_k = F(u_k, t_k) + lambda* u_k. The second corrector is what keeps the scheme second
order when a stiff species (a drug in fast exchange with plasma, lambda h >> 1) drives
others: its predictor value is the quasi-steady state of the start of the step, one step
late, and a species reading it there would see an O(h) lag; after the first corrector
it is right at the end of the step (measured: orders 1.0 for N with two stages, 2.0
with three, on the ODE limit of the de Pillis model with chemotherapy; tests/
test_second_order.py). Taking lambda* as the larger of the two rates keeps every weight
and every G_k >= 0 whenever the model's production terms are, so the step is positive at
any h; a sink can neither drive u negative nor bound h. Without sinks it is Heun's
method applied through the corrector twice. A species that is exactly 0 with a sink gets
e^{-z} 0 + h phi(z) G: its sink is never dropped (the Patankar weights u_new / u1 of the
scheme this replaced did drop it at u = 0).

Species with implicit diffusion (imex: drugs, oxygen) take sink-scaled backward-Euler
line solves (solver/integrators/imex.py) in both stages: the predictor is backward Euler
over h with the source G0 of the step's start; the corrector is the Richardson
extrapolation 2 w - v_h of backward Euler over h and over two halves, with the source
of the end of each sub-step and lambda* = max(lambda0, lambda1): second order, L-stable
(no ringing after a dose), and the quasi-steady state of the end of the step in the
stiff limit. Where the extrapolation would be negative the half-step value w is kept.
The species with implicit transport (imex with time.implicit_chemotaxis) take the
explicit formulas above for their reactions and a positive backward-Euler transport
solve after each stage.

The error estimate compares u_final with an embedded first-order solution that, like
u_final, is consistent in the stiff limit: e^{-z} u0 + h phi1(z) G at the end of the step
for the species stepped explicitly, the two half backward-Euler steps w for the implicit
ones. Their difference, weighted by atol + rtol |u|, is
O(h^2) per step (solver/integrators/explicit.py turns it into the step size).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from solver.backends.base import Backend
from solver.backends.etd import phi_functions  # noqa: F401 (public here too)


class PredictorCorrector:
    """Scratch (F, lambda and the implicit species' diffusion at two stages, a stage field)
    and the step itself.

    `explicit`: species stepped by the exponential formulas; `delta`: species with
    implicit diffusion (their predictor and corrector come from `implicit`); `transport`:
    species with implicit transport (their reactions by the exponential formulas, their
    transport by `implicit.transport` after each stage).
    """

    def __init__(self, backend: Backend, shape: tuple[int, ...], dtype: np.dtype, explicit: Sequence[int],
                 delta: Sequence[int] = (), transport: Sequence[int] = ()) -> None:
        xp = backend.xp
        self.xp = xp
        self.dtype = np.dtype(dtype)
        self.rate0, self.sink0, self.rate1, self.sink1, self.stage = (xp.empty(shape, self.dtype) for _ in range(5))
        self.explicit = list(explicit)
        self.delta = list(delta)
        self.transport = list(transport)
        self.local = self.explicit + self.transport  # stepped by the exponential formulas
        self.diff0 = xp.zeros(shape, self.dtype) if self.delta else None  # D lap u of the delta species
        self.diff1 = xp.zeros(shape, self.dtype) if self.delta else None
        # the stages' formulas (solver/backends/etd.py), fused into one kernel each on the GPU
        self.stages = backend.make_etd_stages(shape, self.dtype, self.local)

    def step(
        self, stepper: Any, u: Any, u_new: Any, maps: Any, t: float, h: float, systemic: Any,
        implicit: Any = None, weights: Callable[[Any, Any], Any] | None = None,
    ) -> float | None:
        """u_new from u over [t, t + h]; the systemic scalars (if any) advance over the step.

        implicit (imex): .predict(u, out, h, stage0) and .correct(u, u1, out, h, stage0,
        stage1) write the delta species' predictor and corrector into out, each stage a
        (rate, sink, diffusion) triple; .transport(v, h, signals) solves the transport species' transport
        in place. weights(u_final, u_pred): the error estimate of the step (largest weighted
        |u_final - u_pred|), or None for no estimate. Returns what `weights` returns.
        """
        cast = self.dtype.type
        hh = cast(h)
        r0, s0, r1, s1, stage = self.rate0, self.sink0, self.rate1, self.sink1, self.stage
        d0, d1 = self.diff0, self.diff1
        stepper.rates(u, r0, s0, maps, t, () if systemic is None else systemic.values(t, fields=u), diffusion=d0)
        # predictor -> u_new
        self._exponential_euler(u, u_new, hh)
        if self.delta:
            implicit.predict(u, u_new, h, (r0, s0, d0))
        if self.transport:
            implicit.transport(u_new, h, u)
        if systemic is not None:
            systemic.advance(t, h)

        def end(stage_fields: Any) -> Any:  # the infusion rates of this step; globals of the stage
            return () if systemic is None else systemic.values(t + h, rate_time=t, fields=stage_fields)

        # first corrector -> stage
        stepper.rates(u_new, r1, s1, maps, t + h, end(u_new), diffusion=d1)
        self._trapezoid(u, u_new, stage, hh)
        if self.delta:  # their embedded first-order solution goes into u_new (the predictor is used up)
            implicit.correct(u, u_new, stage, h, (r0, s0, d0), (r1, s1, d1), embedded=u_new)
        if self.transport:
            implicit.transport(stage, h, u)
        # second corrector, in place on stage (each cell reads only its own values); the
        # delta species keep their first corrector's values
        stepper.rates(stage, r1, s1, maps, t + h, end(stage), diffusion=d1)
        self._trapezoid(u, stage, stage, hh, embedded=u_new)
        if self.transport:
            implicit.transport(stage, h, u)
            implicit.transport(u_new, h, u)
        estimate = weights(stage, u_new) if weights is not None else None
        u_new[...] = stage
        return estimate

    def _exponential_euler(self, u: Any, out: Any, h: Any) -> None:
        """out = e^{-z} u + h phi1(z) (F + lambda u) for the locally stepped species."""
        self.stages.predictor(u, self.rate0, self.sink0, out, h)

    def _trapezoid(self, u: Any, stage_in: Any, out: Any, h: Any, embedded: Any = None) -> None:
        """out = ETD2 from u with F0 (rate0) at u and F at stage_in (rate1), lambda* = max.

        embedded: where to write the embedded first-order solution e^{-z} u + h phi1(z) G1,
        the exponential Euler step with the source of the step's end (in the stiff limit,
        like out, the quasi-steady state at t + h: their difference measures the error of
        the step, not the one-step lag of a source taken at its start).
        """
        self.stages.trapezoid(u, stage_in, self.rate0, self.sink0, self.rate1, self.sink1, out, h, embedded)
