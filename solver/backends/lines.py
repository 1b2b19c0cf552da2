"""Tridiagonal line operators of the implicit solves, and their NumPy reference solves.

Public API:
    ImplicitDiffusion1D(n, r, low, high, diffusion=None, h=None)
                                    factors of (I - r L) for one axis, computed once
        .solve(rhs, axis)           all grid lines along `axis` at once; returns float64
        .boundary_rhs()             r beta of the faces' ghost rules, for the CUDA kernel
    ImplicitTransport1D(n, tau, h, diffusion, sensitivity, low, high)
        .solve(rhs, signal, axis)   backward Euler of diffusion + upwind chemotaxis; float64
        .scalars()                  what kernels/transport_solve.cu takes besides arrays
    diffusion_lines(species, grid, tau), transport_lines(species, grid, tau)
                                    the three axes' operators of one species
    chemotaxis_can_be_implicit(species) -> bool

The backends build their implicit solvers from these (solver/backends/numpy_backend.py
solves with them; solver/backends/cupy_backend.py uploads their factors to
kernels/line_solve.cu and kernels/transport_solve.cu).

Diffusion
---------
Backward Euler for u_t = D u_xx on the cell-centred grid of solver/grid.py, one axis at a
time (locally one-dimensional splitting, as BioFVM does: Ghaffarizadeh et al.,
Bioinformatics 32 (2016) 1256):

    (1 + 2 r) u_i - r (u_{i-1} + u_{i+1}) = rhs_i,      r = D dt / h^2

with the ghost rules of solver/grid.py, u_ghost = alpha u_edge + beta
(FaceBC.ghost_coefficients), folded into the first and last rows: diagonal
1 + 2 r - r alpha and r beta added to the right-hand side. So no-flux (alpha = 1):
diagonal 1 + r; fixed value g (alpha = -1, beta = 2 g): diagonal 1 + 3 r and 2 r g on
the right; permeable (-1 < alpha <= 1): in between. On a line of one cell both faces
act on it: diagonal 1 + r ((1 - alpha_low) + (1 - alpha_high)). Periodic: the cyclic
system, solved with the Sherman-Morrison formula on top of the same Thomas factors.
The matrix is strictly diagonally dominant for every r >= 0 and alpha <= 1 (an edge
row has |diagonal| - r = 1 + r (1 - alpha) >= 1), so the Thomas algorithm needs no
pivoting and the scheme is unconditionally stable.

Transport
---------
Backward Euler for u_t = -d/dx F with the fluxes of the explicit step (solver/backends/numpy_backend.py,
chemotaxis): through the face between cells i and i+1

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

from solver.grid import FaceBC, Grid


def chemotaxis_can_be_implicit(species) -> bool:
    """Whether a chemotactic species' transport can be solved implicitly here: every face
    stops advection (no-flux or permeable; value and periodic faces carry an advective
    flux in the explicit step, which this solver does not reproduce)."""
    return species.chemotaxis is not None and all(
        species.boundary.face(a, side).stops_advection for a in range(3) for side in (0, 1)
    )


def diffusion_lines(species, grid: Grid, tau: float) -> tuple[ImplicitDiffusion1D, ...]:
    """Backward Euler over tau of one species' diffusion, one operator per axis."""
    out = []
    for a in range(3):
        low, high, h = species.boundary.face(a, 0), species.boundary.face(a, 1), grid.spacing[a]
        out.append(ImplicitDiffusion1D(grid.shape[a], species.diffusion * tau / h**2, low, high,
                                       diffusion=species.diffusion, h=h))
    return tuple(out)


def transport_lines(species, grid: Grid, tau: float) -> tuple[ImplicitTransport1D, ...]:
    """Backward Euler over tau of one species' diffusion and chemotaxis, one per axis."""
    out = []
    for a in range(3):
        low, high, h = species.boundary.face(a, 0), species.boundary.face(a, 1), grid.spacing[a]
        out.append(ImplicitTransport1D(grid.shape[a], tau, h, species.diffusion,
                                       species.chemotaxis.sensitivity, low, high))
    return tuple(out)


class ImplicitDiffusion1D:
    """Precomputed Thomas factors of (I - r L) along one axis of n cells.

    `diffusion` (D) and `h` (the spacing along the axis) give a permeable face its ghost
    rule; r = D dt / h^2 alone does not determine it.
    """

    def __init__(
        self, n: int, r: float, low: FaceBC, high: FaceBC,
        diffusion: float | None = None, h: float | None = None,
    ) -> None:
        if (low.kind == "periodic") != (high.kind == "periodic"):
            raise ValueError("periodic must be set on both faces of an axis")
        self.n, self.r = n, float(r)
        self.low, self.high = low, high
        self.periodic = low.kind == "periodic" and n > 1
        # (alpha, beta) per face; a periodic axis of one cell wraps onto itself: (1, 0)
        self.ghosts = tuple(_ghost(face, diffusion, h) for face in (low, high))
        diag = np.full(n, 1.0 + 2.0 * r)
        off = np.full(max(n - 1, 0), -r)
        if self.periodic:
            # cyclic: A = T + v w^T with the corner entries -r folded into a rank-one term
            self.gamma = -diag[0]
            diag[0] -= self.gamma
            diag[-1] -= (-r) * (-r) / self.gamma
        elif n == 1:  # both ghosts act on the single cell: 1 + 2r - r (alpha_low + alpha_high)
            (a_low, _), (a_high, _) = self.ghosts
            diag[0] = 1.0 + r * ((1.0 - a_low) + (1.0 - a_high))
        else:
            for (alpha, _), i in zip(self.ghosts, (0, n - 1)):
                diag[i] -= r * alpha
        self.lower = off
        # forward elimination factors: c'_i and 1 / (b_i - a_i c'_{i-1})
        self.cprime = np.empty(max(n - 1, 0))
        self.inv_denom = np.empty(n)
        self.inv_denom[0] = 1.0 / diag[0]
        for i in range(n - 1):
            self.cprime[i] = off[i] * self.inv_denom[i]
            self.inv_denom[i + 1] = 1.0 / (diag[i + 1] - off[i] * self.cprime[i])
        if self.periodic:
            u = np.zeros(n)
            u[0], u[-1] = self.gamma, -r
            self.z = self._thomas(u.reshape(n, 1))[:, 0]
            self.v_last = -r / self.gamma  # v = (1, 0, ..., 0, -r / gamma)

    def _thomas(self, d: np.ndarray) -> np.ndarray:
        """Solve the (non-cyclic) tridiagonal system for every column of d (shape (n, m))."""
        n = self.n
        y = np.empty_like(d)
        y[0] = d[0] * self.inv_denom[0]
        for i in range(1, n):
            y[i] = (d[i] - self.lower[i - 1] * y[i - 1]) * self.inv_denom[i]
        for i in range(n - 2, -1, -1):
            y[i] -= self.cprime[i] * y[i + 1]
        return y

    def boundary_rhs(self) -> tuple[float, float]:
        """r beta of the two faces: what they add to the first and last right-hand-side
        entries (kernels/line_solve.cu takes them as rhs_low, rhs_high; one cell: both on it)."""
        if self.periodic:
            return 0.0, 0.0
        low, high = (self.r * beta for _, beta in self.ghosts)
        if self.n == 1:
            return low + high, 0.0
        return low, high

    def solve_scaled(self, rhs: np.ndarray, axis: int, scale: np.ndarray) -> np.ndarray:
        """Solve (I - r S L) u = rhs on every line along `axis`, S = diag(scale) per cell;
        returns u (float64).

        With scale = 1 / (1 + tau lambda) this is (D_lambda - tau D L) u = D_lambda rhs,
        D_lambda = I + tau lambda: the line solve of the sink-scaled factorisation
        (solver/integrators/imex.py). Row i: -r_i u_{i-1} + (1 + 2 r_i) u_i - r_i u_{i+1},
        r_i = r scale_i, the faces' ghost rules folded into the edge rows as in solve();
        cyclic lines by Sherman-Morrison with a second right-hand side in the same sweep.
        The coefficients change from cell to cell, so they are computed in the sweep.
        """
        d = np.moveaxis(np.asarray(rhs, dtype=np.float64), axis, 0)
        shape = d.shape
        n = self.n
        d = d.reshape(n, -1).copy()
        r = self.r * np.moveaxis(np.asarray(scale, dtype=np.float64), axis, 0).reshape(n, -1)
        diag = 1.0 + 2.0 * r
        if self.periodic:
            gamma = -diag[0]
            diag = diag.copy()
            diag[0] = diag[0] - gamma
            diag[-1] = diag[-1] - r[-1] * r[0] / gamma
            corr = np.zeros_like(d)
            corr[0], corr[-1] = gamma, -r[-1]
            y, z = _thomas_varying(-r, diag, -r, d, corr)
            v_last = -r[0] / gamma
            vy = y[0] + v_last * y[-1]
            vz = z[0] + v_last * z[-1]
            y -= z * (vy / (1.0 + vz))
        else:
            if n == 1:
                (a_low, b_low), (a_high, b_high) = self.ghosts
                diag[0] = 1.0 + r[0] * ((1.0 - a_low) + (1.0 - a_high))
                d[0] += r[0] * (b_low + b_high)
            else:
                for (alpha, beta), i in zip(self.ghosts, (0, n - 1)):
                    diag[i] = diag[i] - r[i] * alpha
                    if beta != 0.0:
                        d[i] += r[i] * beta
            y, _ = _thomas_varying(-r, diag, -r, d)
        return np.moveaxis(y.reshape(shape), 0, axis)

    def solve(self, rhs: np.ndarray, axis: int) -> np.ndarray:
        """Solve (I - r L) u = rhs on every grid line along `axis`; returns u (float64)."""
        moved = np.moveaxis(np.asarray(rhs, dtype=np.float64), axis, 0)
        shape = moved.shape
        d = moved.reshape(self.n, -1).copy()
        if not self.periodic:
            for (_, beta), i in zip(self.ghosts, (0, self.n - 1)):
                if beta != 0.0:
                    d[i] += self.r * beta
        y = self._thomas(d)
        if self.periodic:  # Sherman-Morrison: x = y - z (v.y) / (1 + v.z)
            vy = y[0] + self.v_last * y[-1]
            vz = self.z[0] + self.v_last * self.z[-1]
            y -= np.outer(self.z, vy / (1.0 + vz))
        return np.moveaxis(y.reshape(shape), 0, axis)


def _thomas_varying(lower: np.ndarray, diag: np.ndarray, upper: np.ndarray, d: np.ndarray,
                    second: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Tridiagonal solves, one per column, coefficients per row and column (shape (n, m)):
    row i is lower[i] x_{i-1} + diag[i] x_i + upper[i] x_{i+1} = d[i] (lower[0] and
    upper[n-1] unused). `second`: another right-hand side solved with the same factors."""
    n = d.shape[0]
    y = np.empty_like(d)
    z = None if second is None else np.empty_like(second)
    cprime = np.empty_like(d)
    pivot = diag[0]
    y[0] = d[0] / pivot
    if z is not None:
        z[0] = second[0] / pivot
    for i in range(1, n):
        cprime[i - 1] = upper[i - 1] / pivot
        pivot = diag[i] - lower[i] * cprime[i - 1]
        y[i] = (d[i] - lower[i] * y[i - 1]) / pivot
        if z is not None:
            z[i] = (second[i] - lower[i] * z[i - 1]) / pivot
    for i in range(n - 2, -1, -1):
        y[i] -= cprime[i] * y[i + 1]
        if z is not None:
            z[i] -= cprime[i] * z[i + 1]
    return y, z


def _ghost(face: FaceBC, diffusion: float | None, h: float | None) -> tuple[float, float]:
    """(alpha, beta) of one face's ghost rule; a periodic face (one-cell axis) gives (1, 0)."""
    if face.kind == "periodic":
        return 1.0, 0.0
    if face.kind == "permeable" and (diffusion is None or h is None):
        raise ValueError("a permeable face needs the diffusion coefficient and the spacing (diffusion=, h=)")
    return face.ghost_coefficients(1.0 if diffusion is None else diffusion, 1.0 if h is None else h)


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
