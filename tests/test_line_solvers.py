"""Batched implicit line solves against dense solves of the same backward-Euler systems."""

from __future__ import annotations

import numpy as np
import pytest

from solver.backends.lines import ImplicitDiffusion1D
from solver.grid import FaceBC

FACES = {
    "no-flux": (FaceBC("no-flux"), FaceBC("no-flux")),
    "value": (FaceBC("value", 0.7), FaceBC("value", -0.2)),
    "mixed": (FaceBC("value", 1.5), FaceBC("no-flux")),
    "periodic": (FaceBC("periodic"), FaceBC("periodic")),
    # with D_LINE, H_LINE: b = P h / D = 3.125 (alpha = -0.22 < 0) on the low face, 0.1875 on the high
    "permeable": (FaceBC("permeable", 0.7, permeability=5.0), FaceBC("permeable", -0.2, permeability=0.3)),
}
D_LINE, H_LINE = 0.8, 0.5  # what a permeable face's ghost rule needs besides r


def dense_system(n: int, r: float, low: FaceBC, high: FaceBC) -> tuple[np.ndarray, np.ndarray]:
    """(I - r L) and the boundary contribution to the right-hand side, built row by row
    from the ghost rules (no-flux: ghost = edge; value g: ghost = 2g - edge; periodic: wrap;
    permeable: ghost = alpha edge + beta from FaceBC.ghost_coefficients(D_LINE, H_LINE))."""
    A = np.eye(n)
    b = np.zeros(n)
    for i in range(n):
        A[i, i] += 2 * r
        for j, face in ((i - 1, low), (i + 1, high)):
            if 0 <= j < n:
                A[i, j] -= r
            elif face.kind == "periodic":
                A[i, j % n] -= r
            elif face.kind == "no-flux":
                A[i, i] -= r
            elif face.kind == "permeable":
                alpha, beta = face.ghost_coefficients(D_LINE, H_LINE)
                A[i, i] -= r * alpha
                b[i] += r * beta
            else:
                A[i, i] += r
                b[i] += 2 * r * face.value
    return A, b


@pytest.mark.parametrize("n", [1, 2, 3, 17])
@pytest.mark.parametrize("kind", list(FACES))
@pytest.mark.parametrize("r", [0.01, 1.0, 250.0])
def test_line_solve_matches_dense_solve(n: int, kind: str, r: float) -> None:
    low, high = FACES[kind]
    rng = np.random.default_rng(n)
    rhs = rng.uniform(0.0, 1.0, size=(4, n, 3))  # lines along axis 1
    A, b = dense_system(n, r, low, high)
    expected = np.moveaxis(np.linalg.solve(A, (np.moveaxis(rhs, 1, 0).reshape(n, -1) + b[:, None])).reshape(n, 4, 3), 0, 1)
    got = ImplicitDiffusion1D(n, r, low, high, diffusion=D_LINE, h=H_LINE).solve(rhs, axis=1)
    # condition number of A is at most ~ 1 + 4r: float64 round-off times that
    np.testing.assert_allclose(got, expected, rtol=1e-12 * (1 + 4 * r), atol=1e-13 * (1 + 4 * r))


def test_no_flux_and_periodic_solves_conserve_the_total() -> None:
    rng = np.random.default_rng(1)
    rhs = rng.uniform(0.0, 1.0, size=(33, 5, 6))
    for kind in ("no-flux", "periodic"):
        out = ImplicitDiffusion1D(33, 40.0, *FACES[kind]).solve(rhs, axis=0)
        np.testing.assert_allclose(out.sum(axis=0), rhs.sum(axis=0), rtol=1e-12)
        assert out.min() >= rhs.min() - 1e-12 and out.max() <= rhs.max() + 1e-12  # maximum principle


HARNESS = r"""
#define __global__
#define __restrict__ __restrict
struct Dim { unsigned x; };
static Dim blockIdx, threadIdx, blockDim = {128};
typedef double real;
%(source)s
extern "C" void host_solve(real* u, const real* lower, const real* cprime, const real* inv_denom,
                           const real* z, int n, long long stride, long long inner, long long outer,
                           long long n_lines, real lo, real hi, int cyclic, real v_last) {
    for (unsigned b = 0; b * 128 < n_lines; ++b) {
        blockIdx.x = b;
        for (unsigned t = 0; t < 128; ++t) { threadIdx.x = t;
            line_solve(u, lower, cprime, inv_denom, z, n, stride, inner, outer, n_lines, lo, hi, cyclic, v_last); }
    }
}
"""


@pytest.mark.skipif(__import__("shutil").which("g++") is None, reason="needs g++")
@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("kind", list(FACES))
def test_cuda_line_solve_source_matches_numpy(tmp_path, axis: int, kind: str) -> None:
    """kernels/line_solve.cu compiled with g++ on the host gives the NumPy line solve."""
    import ctypes
    import subprocess

    from solver.grid import line_layout
    from solver.package_data import data_dir

    src = tmp_path / "line.cpp"
    src.write_text(HARNESS % {"source": (data_dir("kernels") / "line_solve.cu").read_text()})
    lib = tmp_path / "line.so"
    subprocess.run(["g++", "-O1", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True, capture_output=True)
    host = ctypes.CDLL(str(lib)).host_solve
    shape = (7, 5, 6)
    rhs = np.random.default_rng(axis).uniform(0.0, 1.0, shape)
    solver = ImplicitDiffusion1D(shape[axis], 3.5, *FACES[kind], diffusion=D_LINE, h=H_LINE)
    expected = solver.solve(rhs, axis)
    u = rhs.copy()
    n, stride, inner, outer, n_lines = line_layout(shape, axis)
    z = solver.z if solver.periodic else np.zeros(n)
    lo, hi = solver.boundary_rhs()
    arrays = [np.ascontiguousarray(a, dtype=np.float64) for a in (solver.lower, solver.cprime, solver.inv_denom, z)]
    ptr = lambda a: a.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
    c_ll, c_d = ctypes.c_longlong, ctypes.c_double
    host(ptr(u), *(ptr(a) for a in arrays), ctypes.c_int(n), c_ll(stride), c_ll(inner), c_ll(outer), c_ll(n_lines),
         c_d(lo), c_d(hi), ctypes.c_int(int(solver.periodic)), c_d(getattr(solver, "v_last", 0.0)))
    np.testing.assert_allclose(u, expected, rtol=1e-13, atol=1e-14)


def test_permeable_face_needs_diffusion_and_spacing() -> None:
    with pytest.raises(ValueError, match="diffusion="):
        ImplicitDiffusion1D(5, 1.0, *FACES["permeable"])


def test_permeable_line_solve_is_exact_for_the_discrete_steady_state() -> None:
    # u'' = 0 between a permeable face (P, g) and a no-flux face: the steady state is u = g.
    # Backward Euler keeps it exactly (to round-off), at any r.
    low = FaceBC("permeable", 1.7, permeability=2.0)
    out = ImplicitDiffusion1D(9, 50.0, low, FaceBC("no-flux"), diffusion=D_LINE, h=H_LINE).solve(
        np.full((9, 2), 1.7), axis=0)
    np.testing.assert_allclose(out, 1.7, rtol=1e-13)


# ------------------------------------------------------------------ per-cell diffusion number


def dense_scaled_system(n: int, r: float, scale: np.ndarray, low: FaceBC, high: FaceBC) -> tuple[np.ndarray, np.ndarray]:
    """(I - r S L) and its boundary right-hand side, row i with r_i = r scale_i."""
    A = np.eye(n)
    b = np.zeros(n)
    for i in range(n):
        ri = r * scale[i]
        A[i, i] += 2 * ri
        for j, face in ((i - 1, low), (i + 1, high)):
            if 0 <= j < n:
                A[i, j] -= ri
            elif face.kind == "periodic":
                A[i, j % n] -= ri
            else:
                alpha, beta = face.ghost_coefficients(D_LINE, H_LINE)
                A[i, i] -= ri * alpha
                b[i] += ri * beta
    return A, b


@pytest.mark.parametrize("kind", list(FACES))
def test_scaled_line_solve_matches_a_dense_solve(kind: str) -> None:
    # the sink-scaled line solves of the IMEX step: (D - tau A) u = D rhs, D = 1 + tau lambda
    rng = np.random.default_rng(3)
    n, r = 9, 6.0
    rhs = rng.uniform(0.0, 1.0, size=(n, 4))
    scale = 1.0 / (1.0 + rng.uniform(0.0, 50.0, size=(n, 4)))
    line = ImplicitDiffusion1D(n, r, *FACES[kind], diffusion=D_LINE, h=H_LINE)
    got = line.solve_scaled(rhs, 0, scale)
    for c in range(4):
        A, b = dense_scaled_system(n, r, scale[:, c], *FACES[kind])
        np.testing.assert_allclose(got[:, c], np.linalg.solve(A, rhs[:, c] + b), rtol=1e-13, atol=1e-15)
    # scale 1 is the plain backward-Euler solve
    np.testing.assert_allclose(line.solve_scaled(rhs, 0, np.ones_like(rhs)), line.solve(rhs, 0), rtol=1e-13)


SCALED_HARNESS = r"""
#define __global__
#define __restrict__ __restrict
struct Dim { unsigned x; };
static Dim blockIdx, threadIdx, blockDim = {128};
typedef double real;
%(source)s
extern "C" void host_solve(real* u, const real* scale, real* cprime, real* zline, int n, long long stride,
                           long long inner, long long outer, long long n_lines, real r, real al, real bl,
                           real ah, real bh, int cyclic) {
    for (unsigned b = 0; b * 128 < n_lines; ++b) {
        blockIdx.x = b;
        for (unsigned t = 0; t < 128; ++t) { threadIdx.x = t;
            line_solve_scaled(u, scale, cprime, zline, n, stride, inner, outer, n_lines, r, al, bl, ah, bh, cyclic); }
    }
}
"""


@pytest.mark.skipif(__import__("shutil").which("g++") is None, reason="needs g++")
@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("kind", list(FACES))
def test_cuda_scaled_line_solve_source_matches_numpy(tmp_path, axis: int, kind: str) -> None:
    """kernels/line_solve_scaled.cu compiled with g++ on the host gives solve_scaled."""
    import ctypes
    import subprocess

    from solver.grid import line_layout
    from solver.package_data import data_dir

    src = tmp_path / "scaled.cpp"
    src.write_text(SCALED_HARNESS % {"source": (data_dir("kernels") / "line_solve_scaled.cu").read_text()})
    lib = tmp_path / "scaled.so"
    subprocess.run(["g++", "-O1", "-ffp-contract=off", "-shared", "-fPIC", "-o", str(lib), str(src)],
                   check=True, capture_output=True)
    host = ctypes.CDLL(str(lib)).host_solve
    shape = (7, 5, 6)
    rng = np.random.default_rng(axis + 10)
    rhs = rng.uniform(0.0, 1.0, shape)
    scale = 1.0 / (1.0 + rng.uniform(0.0, 30.0, shape))
    line = ImplicitDiffusion1D(shape[axis], 3.5, *FACES[kind], diffusion=D_LINE, h=H_LINE)
    expected = line.solve_scaled(rhs, axis, scale)
    u, cprime, zline = rhs.copy(), np.zeros(shape), np.zeros(shape)
    n, stride, inner, outer, n_lines = line_layout(shape, axis)
    (al, bl), (ah, bh) = line.ghosts
    ptr = lambda a: a.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
    c_ll, c_d = ctypes.c_longlong, ctypes.c_double
    host(ptr(u), ptr(np.ascontiguousarray(scale)), ptr(cprime), ptr(zline), ctypes.c_int(n), c_ll(stride),
         c_ll(inner), c_ll(outer), c_ll(n_lines), c_d(line.r), c_d(al), c_d(bl), c_d(ah), c_d(bh),
         ctypes.c_int(int(line.periodic)))
    np.testing.assert_allclose(u, expected, rtol=2e-15, atol=1e-16)
