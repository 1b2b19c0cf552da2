"""The second-order step (`time.order: 2`): Heun with modified-Patankar sinks, and Crank-Nicolson.

Public API:
    HeunPatankar(backend, shape, dtype)
        .step(stepper, u, u_new, maps, t, h, systemic)   second-order explicit part, u -> u_new

Explicit part (reactions, slow transport), two evaluations of F and of the sink rate
lambda (kernels/explicit_rates.cu or the NumPy stepper's `rates`):

    u1    = u + h F(u, t) / (1 + h lambda(u, t))        the first-order step (linearly implicit
                                                        where a species has a sink)
    Q     = lambda(u, t) u + lambda(u1, t + h) u1       losses at both ends of the step
    u_new = (u + h/2 (F(u) + F(u1) + Q)) * u1 / (u1 + h/2 Q)

This is MPRK22, the modified Patankar-Runge-Kutta scheme of Burchard, Deleersnijder and
Meister (Appl. Numer. Math. 47 (2003) 1), applied to the loss terms only: the losses of
Heun's second stage are weighted by u_new / u1, so a stiff sink (vessel exchange, drug
kill) can neither drive u_new negative nor bound h, and the step is second order
(for u' = -k u it multiplies u by 1 / (1 + kh + (kh)^2 / 2)). Without sinks (Q = 0) it is
Heun's method (SSP-RK2: positive under the forward-Euler bound).

Implicit diffusion (solver/integrators/imex.py, order 2) is Crank-Nicolson per axis,
written with the backward-Euler line solver of half the rate:

    (I - r/2 L) u_new = (I + r/2 L) u + r b   <=>   u_new = 2 (I - r/2 L)^-1 (u + r/2 b) - u

so the Thomas factors, boundary rows and CUDA kernels of the first-order scheme serve
both (ImexIntegrator._backward_euler). Crank-Nicolson does not damp the fastest modes (amplification -> -1 as r grows):
steep fronts at large r ring, which the step-size control (time.max_change) sees.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from solver.backends.base import Backend


class HeunPatankar:
    """Scratch for the two stages (F and lambda at u and at u1) and the step itself."""

    def __init__(self, backend: Backend, shape: tuple[int, ...], dtype: np.dtype) -> None:
        xp = backend.xp
        self.xp = xp
        self.dtype = np.dtype(dtype)
        self.rate0, self.sink0, self.rate1, self.sink1 = (xp.empty(shape, self.dtype) for _ in range(4))

    def step(self, stepper: Any, u: Any, u_new: Any, maps: Any, t: float, h: float, systemic: Any) -> None:
        """u_new from u over [t, t + h]; the systemic scalars (if any) advance over the step."""
        xp, cast = self.xp, self.dtype.type
        hh, half = cast(h), cast(h / 2)
        stepper.rates(u, self.rate0, self.sink0, maps, t, () if systemic is None else systemic.values(t))
        xp.divide(hh * self.rate0, cast(1) + hh * self.sink0, out=u_new)
        u_new += u  # u1, the first-order step
        if systemic is not None:
            systemic.advance(t, h)
            end_values = systemic.values(t + h, rate_time=t)  # the infusion rates of this step
        else:
            end_values = ()
        stepper.rates(u_new, self.rate1, self.sink1, maps, t + h, end_values)
        loss = self.sink0 * u + self.sink1 * u_new
        gain = u + half * (self.rate0 + self.rate1 + loss)
        with np.errstate(divide="ignore", invalid="ignore"):  # where loss = 0 the ratio is unused
            u_new[...] = xp.where(loss > 0, gain * u_new / (u_new + half * loss), gain)
