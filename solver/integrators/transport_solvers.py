"""Implicit cell transport along one axis: diffusion plus upwind chemotaxis, NumPy.

Public API:
    ImplicitTransport1D(n, tau, h, diffusion, sensitivity, low, high)
        .solve(rhs, signal, axis)       backward Euler on every grid line along `axis`
        .scalars()                      what kernels/transport_solve.cu takes besides arrays
    chemotaxis_can_be_implicit(species) -> bool

Backward Euler for u_t = -d/dx F with the fluxes of the explicit step (solver/backends/
numpy_backend.py, chemotaxis): through the face between cells i and i+1

    F = v+ u_i - v- u_{i+1} - D (u_{i+1} - u_i) / h,   v = chi (s_{i+1} - s_i) / h,
    v+ = max(v, 0), v- = max(-v, 0),

the velocity taken from the signal s at the start of the step (lagged: the system stays
linear and tridiagonal along each line). Row i of (I + tau/h (F_{i+1/2} - F_{i-1/2})):

    lower  -(r + q v+_{i-1/2}),   upper  -(r + q v-_{i+1/2}),   r = D tau / h^2, q = tau / h
    diag   1 + (r + q v+_{i+1/2}) + (r + q v-_{i-1/2})

with no advective flux through the domain faces (no-flux and permeable faces; as in the
explicit step) and their diffusive ghost rule u_ghost = alpha u_edge + beta folded into
the edge rows: diagonal + r (1 - alpha), right-hand side + r beta. Every column sums to
1 plus what the faces take out, and the off-diagonals are <= 0: an M-matrix, so the
solve conserves cells through no-flux faces, keeps them non-negative and is stable for
every tau, and the Thomas algorithm needs no pivoting. The coefficients change with the
signal, so they are computed during the sweep (no factors to keep).
"""

from __future__ import annotations

import numpy as np

from solver.grid import FaceBC


def chemotaxis_can_be_implicit(species) -> bool:
    """Whether a chemotactic species' transport can be solved implicitly here: every face
    no-flux or permeable (no advective flux through the domain faces; value and periodic
    faces carry one in the explicit step, which this solver does not reproduce)."""
    return species.chemotaxis is not None and all(
        species.boundary.face(a, side).kind in ("no-flux", "permeable") for a in range(3) for side in (0, 1)
    )


class ImplicitTransport1D:
    """Backward Euler for diffusion plus upwind chemotaxis along one axis of n cells."""

    def __init__(self, n: int, tau: float, h: float, diffusion: float, sensitivity: float,
                 low: FaceBC, high: FaceBC) -> None:
        self.n = n
        self.r = diffusion * tau / h**2
        self.q = tau / h
        self.chi_over_h = sensitivity / h
        # diagonal and right-hand-side terms of the two domain faces' ghost rules
        alpha_low, beta_low = low.ghost_coefficients(diffusion, h)
        alpha_high, beta_high = high.ghost_coefficients(diffusion, h)
        self.edge_low, self.rhs_low = self.r * (1.0 - alpha_low), self.r * beta_low
        self.edge_high, self.rhs_high = self.r * (1.0 - alpha_high), self.r * beta_high

    def scalars(self) -> tuple[float, ...]:
        """(r, q, chi/h, edge_low, rhs_low, edge_high, rhs_high) for the CUDA kernel."""
        return (self.r, self.q, self.chi_over_h, self.edge_low, self.rhs_low, self.edge_high, self.rhs_high)

    def solve(self, rhs: np.ndarray, signal: np.ndarray, axis: int) -> np.ndarray:
        """Solve on every line along `axis`; returns the solution (float64).

        The same operations, in the same order, as kernels/transport_solve.cu, vectorised
        over the lines instead of one thread per line.
        """
        d = np.moveaxis(np.asarray(rhs, dtype=np.float64), axis, 0)
        shape = d.shape
        d = d.reshape(self.n, -1)
        s = np.moveaxis(np.asarray(signal, dtype=np.float64), axis, 0).reshape(self.n, -1)
        n, r, q = self.n, self.r, self.q
        cprime = np.empty((max(n - 1, 0), d.shape[1]))
        y = np.empty_like(d)
        left_vp = left_vm = None  # v+ and v- of face i - 1/2
        for i in range(n):
            diag = np.full(d.shape[1], 1.0)
            rhs_i = d[i].copy()
            if i == 0:
                diag += self.edge_low
                rhs_i += self.rhs_low
            if i == n - 1:
                diag += self.edge_high
                rhs_i += self.rhs_high
            if i < n - 1:
                v = self.chi_over_h * (s[i + 1] - s[i])
                vp, vm = np.maximum(v, 0.0), np.maximum(-v, 0.0)
                diag += r + q * vp
                upper = -(r + q * vm)
            if i > 0:
                diag += r + q * left_vm
                lower = -(r + q * left_vp)
                pivot = diag - lower * cprime[i - 1]
                y[i] = (rhs_i - lower * y[i - 1]) / pivot
            else:
                pivot = diag
                y[i] = rhs_i / pivot
            if i < n - 1:
                cprime[i] = upper / pivot
                left_vp, left_vm = vp, vm
        for i in range(n - 2, -1, -1):
            y[i] -= cprime[i] * y[i + 1]
        return np.moveaxis(y.reshape(shape), 0, axis)
