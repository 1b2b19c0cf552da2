"""Implicit diffusion along one axis: batched tridiagonal (Thomas) solves, NumPy.

Public API:
    ImplicitDiffusion1D(n, r, low, high, diffusion=None, h=None)
                                              factors of (I - r L) for one axis, computed once
                                              (D and h are needed only by permeable faces)
        .solve(rhs, axis)                     all grid lines along `axis` at once (NumPy)
        .boundary_rhs() -> (low, high)        r beta of the faces' ghost rules, for the CUDA kernel
    line_layout(shape, axis) -> (n, stride, inner, outer_stride, n_lines)
                                              how kernels/line_solve.cu walks the lines

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
"""

from __future__ import annotations

import numpy as np

from solver.grid import FaceBC


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


def _ghost(face: FaceBC, diffusion: float | None, h: float | None) -> tuple[float, float]:
    """(alpha, beta) of one face's ghost rule; a periodic face (one-cell axis) gives (1, 0)."""
    if face.kind == "periodic":
        return 1.0, 0.0
    if face.kind == "permeable" and (diffusion is None or h is None):
        raise ValueError("a permeable face needs the diffusion coefficient and the spacing (diffusion=, h=)")
    return face.ghost_coefficients(1.0 if diffusion is None else diffusion, 1.0 if h is None else h)


def line_layout(shape: tuple[int, int, int], axis: int) -> tuple[int, int, int, int, int]:
    """(n, stride, inner, outer_stride, n_lines) of the lines along `axis` of a C-order array.

    Line l starts at (l // inner) * outer_stride + l % inner and its cells are `stride`
    apart: x lines (stride ny nz) are numbered along y, z; y lines along x, z; z lines along x, y.
    """
    nx, ny, nz = shape
    if axis == 0:
        return nx, ny * nz, ny * nz, 0, ny * nz
    if axis == 1:
        return ny, nz, nz, ny * nz, nx * nz
    return nz, 1, 1, nz, nx * ny
