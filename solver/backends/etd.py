"""The exponential stages of the second-order step, as array expressions (any array module).

Public API:
    phi_functions(z, xp) -> (exp(-z), phi1(z), phi2(z))
    ArrayEtdStages(xp, local)    .predictor(...), .trapezoid(...)  (Backend.make_etd_stages)

solver/integrators/second_order.py states the scheme (Cox & Matthews 2002, ETD2) and
calls these through its backend: the NumPy backend uses the expressions here, the CuPy
backend the same formulas fused into one kernel per stage (kernels/etd_stage.cu), which
tests/test_second_order.py runs on the host against these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# Below this z the phi functions are summed from their series (the closed forms cancel).
# kernels/etd_stage.cu uses the same threshold and series.
SERIES_BELOW = 0.1

# Fields of the locally stepped species that trapezoid() holds at its peak, besides its
# inputs and output (measured with tracemalloc: tests/test_second_order.py).
ARRAY_TEMPORARY_SETS = 12


def phi_functions(z: Any, xp: Any = np) -> tuple[Any, Any, Any]:
    """e^{-z}, phi1(z) = (1 - e^{-z}) / z and phi2(z) = (z - 1 + e^{-z}) / z^2, z >= 0.

    phi1(0) = 1, phi2(0) = 1/2; below z = 0.1 the series to z^4 (error < 3e-10).
    """
    small = z < SERIES_BELOW
    zs = xp.where(small, 1, z)
    em = xp.expm1(-zs)
    z2 = z * z
    phi1 = xp.where(small, 1 - z / 2 + z2 / 6 - z2 * z / 24 + z2 * z2 / 120, -em / zs)
    phi2 = xp.where(small, 0.5 - z / 6 + z2 / 24 - z2 * z / 120 + z2 * z2 / 720, (zs + em) / (zs * zs))
    return xp.exp(-z), phi1, phi2


class ArrayEtdStages:
    """The predictor and corrector of the species `local` (indices along the fields' first
    axis) as whole-array expressions of `xp`."""

    def __init__(self, xp: Any, local: Sequence[int]) -> None:
        self.xp = xp
        self.local = list(local)

    def predictor(self, u: Any, rate0: Any, sink0: Any, out: Any, h: Any) -> None:
        """out = e^{-z} u + h phi1(z) (F + lambda u), z = h lambda (exponential Euler)."""
        if not self.local:
            return
        xp, i = self.xp, self.local
        lam, rate, v = sink0[i], rate0[i], u[i]
        e, phi1, _ = phi_functions(h * lam, xp)
        out[i] = e * v + h * phi1 * (rate + lam * v)

    def trapezoid(self, u: Any, stage_in: Any, rate0: Any, sink0: Any, rate1: Any, sink1: Any, out: Any, h: Any,
                  embedded: Any = None) -> None:
        """out = ETD2 from u with F0 (rate0) at u and F1 (rate1) at stage_in, lambda* = max
        of the two sinks; embedded (if given): e^{-z} u + h phi1(z) G1. out may be stage_in."""
        if not self.local:
            return
        xp, i = self.xp, self.local
        v0, v1 = u[i], stage_in[i]
        lam = xp.maximum(sink0[i], sink1[i])
        e, phi1, phi2 = phi_functions(h * lam, xp)
        g0 = rate0[i] + lam * v0
        g1 = rate1[i] + lam * v1
        if embedded is not None:
            embedded[i] = e * v0 + h * phi1 * g1
        out[i] = e * v0 + h * ((phi1 - phi2) * g0 + phi2 * g1)
