"""The implicit line solves of solver/backends/lines.py, compiled by numba: batched Thomas
sweeps, the grid's lines spread over threads.

Public API:
    NumbaImplicitSolver(lines, with_signal)   ImplicitSolver of solver/backends/base.py
    threads_for(cells), PARALLEL_MIN_CELLS     one thread on small grids (every compiled kernel)

Same algebra and the same float64 operations, in the same order, as the NumPy reference
(lines.py: ImplicitDiffusion1D.solve / solve_scaled, ImplicitTransport1D.solve), so the two
agree to round-off. Each kernel takes the field moved so that the solved axis comes first,
shape (n, m1, m2) (a strided view: no copy), and solves in place; the lines of one index of
m1 go to one thread, and the sweep runs over m2 innermost, which is contiguous unless the
solved axis is the contiguous one (then each line is).

The kernels are fixed (not generated), compiled once per machine and kept by numba's
cache beside this file (or in numba's user-wide cache when that is read-only).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from solver.backends.lines import ImplicitDiffusion1D, ImplicitTransport1D

_JIT = {"parallel": True, "cache": True, "nogil": True, "error_model": "numpy"}

# Below this many cells a kernel runs on one thread: the work of a step is then well under
# a millisecond, and a parallel region that has to wait for a thread the OS gave to
# another process (test workers, study members, a busy laptop) costs a time slice per
# launch, hundreds of times the work. Measured here (2 cores): de Pillis 32^3 is 1.0 ms on
# one thread, 0.8 ms on two, so below 32^3 a second thread gains little even when free.
PARALLEL_MIN_CELLS = 32**3


class threads_for:
    """Context manager: numba's threads for a kernel over `cells` cells (one below
    PARALLEL_MIN_CELLS, else numba's default), restored on exit. Thread-local in numba."""

    def __init__(self, cells: int) -> None:
        self.serial = cells < PARALLEL_MIN_CELLS

    def __enter__(self) -> None:
        if self.serial:
            import numba

            self.before = numba.get_num_threads()
            numba.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        if self.serial:
            import numba

            numba.set_num_threads(self.before)


@njit(**_JIT)
def _diffusion(d, lower, cprime, inv_denom, rhs_low, rhs_high, periodic, z, v_last):  # pragma: no cover (compiled)
    """(I - r L) y = d on every line, constant factors; the cyclic correction on top."""
    n, m1, m2 = d.shape
    for p in prange(m1):
        for q in range(m2):
            if not periodic:
                if rhs_low != 0.0:
                    d[0, p, q] += rhs_low
                if rhs_high != 0.0:
                    d[n - 1, p, q] += rhs_high
            d[0, p, q] = d[0, p, q] * inv_denom[0]
        for i in range(1, n):
            for q in range(m2):
                d[i, p, q] = (d[i, p, q] - lower[i - 1] * d[i - 1, p, q]) * inv_denom[i]
        for i in range(n - 2, -1, -1):
            for q in range(m2):
                d[i, p, q] -= cprime[i] * d[i + 1, p, q]
        if periodic:
            vz = z[0] + v_last * z[n - 1]
            for q in range(m2):
                vy = d[0, p, q] + v_last * d[n - 1, p, q]
                f = vy / (1.0 + vz)
                for i in range(n):
                    d[i, p, q] -= z[i] * f


@njit(**_JIT)
def _diffusion_scaled(d, s, r0, periodic, a_low, b_low, a_high, b_high):  # pragma: no cover (compiled)
    """(I - r S L) y = d, r_i = r0 scale_i, coefficients computed in the sweep
    (ImplicitDiffusion1D.solve_scaled); cyclic lines with a second right-hand side."""
    n, m1, m2 = d.shape
    for p in prange(m1):
        cp = np.empty((n, m2))
        zz = np.empty((n, m2))
        pivot = np.empty(m2)
        for q in range(m2):
            r_first = r0 * s[0, p, q]
            diag = 1.0 + 2.0 * r_first
            if periodic:  # (lines.py: only with n > 1)
                gamma = -diag
                diag = diag - gamma
                zz[0, q] = gamma / diag
            elif n == 1:
                diag = 1.0 + r_first * ((1.0 - a_low) + (1.0 - a_high))
                d[0, p, q] += r_first * (b_low + b_high)
            else:
                diag = diag - r_first * a_low
                if b_low != 0.0:
                    d[0, p, q] += r_first * b_low
            pivot[q] = diag
            d[0, p, q] = d[0, p, q] / diag
        for i in range(1, n):
            for q in range(m2):
                r_prev = r0 * s[i - 1, p, q]
                r_i = r0 * s[i, p, q]
                diag = 1.0 + 2.0 * r_i
                if i == n - 1:
                    if periodic:
                        gamma = -(1.0 + 2.0 * r0 * s[0, p, q])
                        diag = diag - r_i * (r0 * s[0, p, q]) / gamma
                    else:
                        diag = diag - r_i * a_high
                        if b_high != 0.0:
                            d[i, p, q] += r_i * b_high
                cp[i - 1, q] = -r_prev / pivot[q]
                pivot[q] = diag - (-r_i) * cp[i - 1, q]
                d[i, p, q] = (d[i, p, q] - (-r_i) * d[i - 1, p, q]) / pivot[q]
                if periodic:
                    second = -r_i if i == n - 1 else 0.0
                    zz[i, q] = (second - (-r_i) * zz[i - 1, q]) / pivot[q]
        for i in range(n - 2, -1, -1):
            for q in range(m2):
                d[i, p, q] -= cp[i, q] * d[i + 1, p, q]
                if periodic:
                    zz[i, q] -= cp[i, q] * zz[i + 1, q]
        if periodic:
            for q in range(m2):
                gamma = -(1.0 + 2.0 * r0 * s[0, p, q])
                v_last = -(r0 * s[0, p, q]) / gamma
                vy = d[0, p, q] + v_last * d[n - 1, p, q]
                vz = zz[0, q] + v_last * zz[n - 1, q]
                f = vy / (1.0 + vz)
                for i in range(n):
                    d[i, p, q] -= zz[i, q] * f


@njit(**_JIT)
def _transport(d, sig, r, q_, chi_over_h, edge_low, rhs_low, edge_high, rhs_high):  # pragma: no cover (compiled)
    """Backward Euler of diffusion + upwind chemotaxis on every line (ImplicitTransport1D.solve)."""
    n, m1, m2 = d.shape
    for p in prange(m1):
        cp = np.empty((n, m2))
        left_vp = np.zeros(m2)
        left_vm = np.zeros(m2)
        for i in range(n):
            for q in range(m2):
                diag = 1.0
                rhs_i = d[i, p, q]
                if i == 0:
                    diag += edge_low
                    rhs_i += rhs_low
                if i == n - 1:
                    diag += edge_high
                    rhs_i += rhs_high
                upper = 0.0
                vp = vm = 0.0
                if i < n - 1:
                    v = chi_over_h * (sig[i + 1, p, q] - sig[i, p, q])
                    vp = max(v, 0.0)
                    vm = max(-v, 0.0)
                    diag += r + q_ * vp
                    upper = -(r + q_ * vm)
                if i > 0:
                    diag += r + q_ * left_vm[q]
                    lower = -(r + q_ * left_vp[q])
                    pv = diag - lower * cp[i - 1, q]
                    d[i, p, q] = (rhs_i - lower * d[i - 1, p, q]) / pv
                else:
                    pv = diag
                    d[i, p, q] = rhs_i / pv
                if i < n - 1:
                    cp[i, q] = upper / pv
                    left_vp[q] = vp
                    left_vm[q] = vm
        for i in range(n - 2, -1, -1):
            for q in range(m2):
                d[i, p, q] -= cp[i, q] * d[i + 1, p, q]


class NumbaImplicitSolver:
    """Line solves of one species along axes in turn, in float64 from one axis to the next,
    written back into the field once (as NumpyImplicitSolver)."""

    def __init__(self, lines: tuple, with_signal: bool) -> None:
        self.lines = lines
        self.with_signal = with_signal

    def solve(self, field: np.ndarray, axes: tuple[int, ...], crank_nicolson: bool = False,
              signal: np.ndarray | None = None, scale: np.ndarray | None = None) -> None:
        with threads_for(field.size):
            self._solve(field, axes, crank_nicolson, signal, scale)

    def _solve(self, field: np.ndarray, axes: tuple[int, ...], crank_nicolson: bool,
               signal: np.ndarray | None, scale: np.ndarray | None) -> None:
        work = np.array(field, dtype=np.float64)  # a copy: solved in place axis by axis
        sig = None if signal is None else np.asarray(signal, dtype=np.float64)
        sc = None if scale is None else np.asarray(scale, dtype=np.float64)
        for a in axes:
            before = work.copy() if crank_nicolson else None
            self._solve_axis(work, a, sig, sc)
            if crank_nicolson:  # (I - A/2)^-1 (I + A/2) u = 2 (I - A/2)^-1 u - u
                work = 2.0 * work - before
        field[...] = work

    def _solve_axis(self, work: np.ndarray, axis: int, signal, scale) -> None:
        line = self.lines[axis]
        d = np.moveaxis(work, axis, 0)
        if self.with_signal:
            assert isinstance(line, ImplicitTransport1D)
            _transport(d, np.moveaxis(signal, axis, 0), *line.scalars())
            return
        assert isinstance(line, ImplicitDiffusion1D)
        if scale is not None:
            (a_low, b_low), (a_high, b_high) = line.ghosts
            _diffusion_scaled(d, np.moveaxis(scale, axis, 0), line.r, line.periodic, a_low, b_low, a_high, b_high)
            return
        low, high = (line.r * beta for _, beta in line.ghosts)  # on one cell both land on it, in turn
        z = line.z if line.periodic else np.zeros(1)
        _diffusion(d, line.lower, line.cprime, line.inv_denom, low, high, line.periodic, z,
                   line.v_last if line.periodic else 0.0)
