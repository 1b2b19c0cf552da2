"""`time.implicit_chemotaxis`: cell transport (diffusion + upwind chemotaxis) solved implicitly."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from _support import compile_on_host, make_config
from scipy.linalg import expm

from solver.backends.cuda_codegen import compile_for_arch, kernel_template
from solver.backends.lines import ImplicitTransport1D
from solver.backends.registry import get_backend
from solver.config import parse_config
from solver.errors import ConfigError
from solver.grid import FaceBC, line_layout
from solver.run import Simulation

SIGNAL = "1.5 + 0.6*sin(0.7*x) + 0.4*cos(0.5*y) + 0.3*z"


def cells_up_a_signal(shape, end: float, dt: float, order: int = 1, boundary="no-flux", **time):
    """Cells c (D = 0.5) climbing a static signal s (no diffusion, no reaction); equal steps
    of dt (no error control, no Courant limit) unless `time` says otherwise."""
    return make_config(
        {"s": {"initial": SIGNAL, "boundary": boundary},
         "c": {"diffusion": 0.5, "chemotaxis": {"signal": "s", "sensitivity": 0.8}, "boundary": boundary,
               "initial": "exp(-((x-2.5)**2 + (y-2.0)**2 + (z-1.5)**2)/2)"}},
        shape=shape, end=end, dt=dt, integrator="imex", order=order, implicit_chemotaxis=True,
        **{"rtol": None, "max_courant": 1.0e9, **time})


def exact_transport(sim: Simulation, t: float) -> np.ndarray:
    """exp(t A) c0, A the explicit step's own transport operator for c (the signal is static),
    assembled column by column from the NumPy stepper's right-hand side."""
    stepper = get_backend("numpy").make_explicit_stepper(sim.model, sim.grid, np.dtype("float64"))
    u = sim.u0.astype(np.float64)
    n = sim.grid.size
    a = np.empty((n, n))
    rate, sink = np.empty_like(u), np.empty_like(u)
    for j in range(n):
        probe = u.copy()
        probe[1] = 0.0
        probe[1].flat[j] = 1.0
        stepper.rates(probe, rate, sink, np.zeros((1,) + sim.grid.shape), 0.0)
        a[:, j] = rate[1].ravel()
    return (expm(t * a) @ u[1].ravel()).reshape(sim.grid.shape)


@pytest.mark.parametrize("order", [1, 2])
def test_order_in_time_against_the_exact_semi_discrete_solution(order: int) -> None:
    # LOD backward Euler, after every stage of either order: first order in time for the
    # transport, with order: 2 too (positive at any Courant number, which no linear scheme
    # of order 2 is; the Crank-Nicolson this replaced rang and went negative at Courant
    # numbers of 10-15). The axis operators do not commute here (the velocity varies in space).
    shape, end = (6, 5, 4), 1.0
    exact = exact_transport(Simulation(cells_up_a_signal(shape, end, 0.1, order)), end)
    errors = []
    for dt in (0.2, 0.1, 0.05):
        sim = Simulation(cells_up_a_signal(shape, end, dt, order))
        assert sim.plan.integrator.implicit_chemotaxis == frozenset({1})
        errors.append(float(np.max(np.abs(sim.evolve()[1] - exact))))
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(np.abs(orders - 1.0) < 0.2), (errors, orders)


@pytest.mark.parametrize("order", [1, 2])
def test_conservative_positive_and_stable_far_above_the_explicit_bound(order: int) -> None:
    sim = Simulation(cells_up_a_signal((10, 8, 6), end=300.0, dt=30.0, order=order))
    bound = 1.0 / (2 * 0.5 * 3 + 2 * 0.8 * 3 * 0.6)  # diffusion + a generous chemotaxis rate
    assert 30.0 > 10 * bound
    # the Courant number h |v| / dx of these steps: the limit for Courant 1, max_courant = 1
    probe = Simulation(cells_up_a_signal((10, 8, 6), end=300.0, dt=30.0, order=order, max_courant=1.0))
    state = probe.start()
    assert 30.0 / state.integrator.step_limit(state.fields) > 20  # Courant numbers above 20 (21.8)
    c0, c = sim.u0[1].astype(np.float64), sim.evolve()[1]
    assert np.all(np.isfinite(c)) and c.min() >= 0.0  # an M-matrix solve keeps cells >= 0
    assert c.sum() == pytest.approx(c0.sum(), rel=1e-12)  # no-flux faces: no cell leaves


def test_steady_state_is_the_explicit_one() -> None:
    # A linear signal of slope g along x: the discrete zero-flux state has
    # c_{i+1} / c_i = 1 + v h / D, v = chi g (tests/test_chemotaxis_and_reference.py checks
    # the explicit step against it); backward Euler's fixed point solves the same equations.
    g, chi, d = 0.5, 0.8, 0.5
    cfg = make_config(
        {"s": {"initial": f"{g}*x"},
         "c": {"diffusion": d, "chemotaxis": {"signal": "s", "sensitivity": chi}, "initial": 1.0}},
        shape=(12, 1, 1), end=4000.0, dt=50.0, integrator="imex", implicit_chemotaxis=True,
        max_courant=100.0)  # Courant 20: the fixed point, not the path to it, is tested
    c = Simulation(cfg).evolve()[1][:, 0, 0]
    np.testing.assert_allclose(c[1:] / c[:-1], 1.0 + chi * g * 1.0 / d, rtol=1e-10)


def test_only_species_with_no_flux_or_permeable_faces_qualify() -> None:
    # periodic faces carry chemotactic flux in the explicit step: such cells keep their
    # chemotaxis explicit (their diffusion may still be implicit)
    sim = Simulation(cells_up_a_signal((6, 5, 4), end=0.5, dt=0.05, boundary={"x": "periodic"}))
    assert sim.plan.integrator.implicit_chemotaxis == frozenset()


@pytest.mark.parametrize(("time", "fragment"), [
    ({"integrator": "explicit", "dt": 0.1}, "time.implicit_chemotaxis: needs time.integrator: imex"),
    ({"integrator": "imex", "max_courant": 0}, "time.max_courant: input should be greater than 0"),
])
def test_config_errors(time: dict, fragment: str) -> None:
    data = {"name": "t", "grid": {"shape": [4, 4, 4]}, "time": {"end": 1.0, "implicit_chemotaxis": True, **time},
            "model": {"species": {"u": {"diffusion": 1.0, "initial": 1.0}}}}
    with pytest.raises(ConfigError, match=fragment):
        parse_config(data, source="<test>")


# --------------------------------------------------------------------------- the CUDA kernel

HOST_SOLVE = r"""
extern "C" void host_transport(real* u, const real* s, real* cp, int n, long long stride, long long inner,
                               long long outer, long long n_lines, real r, real q, real chi_h,
                               real edge_low, real rhs_low, real edge_high, real rhs_high) {
    const long long blocks = (n_lines + 127) / 128;
    for (long long b = 0; b < blocks; ++b) {
        blockIdx.x = (unsigned)b;
        for (unsigned th = 0; th < 128; ++th) {
            threadIdx.x = th;
            transport_solve(u, s, cp, n, stride, inner, outer, n_lines, r, q, chi_h, edge_low, rhs_low,
                            edge_high, rhs_high);
        }
    }
}
"""


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++ to run the kernel source on the host")
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_transport_kernel_source_matches_numpy(tmp_path, axis: int) -> None:
    import ctypes

    code = "typedef double real;\nstatic Dim blockDim = {128, 1, 1};\n" + kernel_template("transport_solve.cu")
    solve = compile_on_host(code + HOST_SOLVE, tmp_path, "host_transport")
    shape = (7, 6, 5)
    rng = np.random.default_rng(axis)
    rhs, signal = rng.uniform(0.1, 1.0, shape), rng.uniform(0.0, 2.0, shape)
    faces = (FaceBC("permeable", 0.3, 2.0), FaceBC("no-flux"))  # one face of each kind it takes
    line = ImplicitTransport1D(shape[axis], 0.7, 1.0, 0.5, 0.8, *faces)
    ref = line.solve(rhs, signal, axis)
    u, s, cp = rhs.copy(), signal.copy(), np.zeros(shape)
    n, stride, inner, outer, n_lines = line_layout(shape, axis)
    ptr = lambda a: a.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
    solve(ptr(u), ptr(s), ptr(cp), ctypes.c_int(n), ctypes.c_longlong(stride), ctypes.c_longlong(inner),
          ctypes.c_longlong(outer), ctypes.c_longlong(n_lines), *(ctypes.c_double(v) for v in line.scalars()))
    # the same operations in the same order: equal up to g++ vs NumPy rounding (measured 0)
    np.testing.assert_allclose(u, ref, rtol=1e-14, atol=0)


@pytest.mark.parametrize("ctype", ["float", "double"])
def test_transport_kernel_compiles_for_sm90(ctype: str) -> None:
    ptx = compile_for_arch(f"typedef {ctype} real;\n" + kernel_template("transport_solve.cu"), arch="sm_90")
    assert b".entry transport_solve" in ptx


@pytest.mark.parametrize("order", [1, 2])
def test_gpu_implicit_chemotaxis_matches_numpy(gpu, order: int) -> None:
    sim = Simulation(cells_up_a_signal((9, 7, 5), end=0.5, dt=0.1, order=order, precision="float64"))
    a = sim.evolve(0.5, get_backend("numpy"))
    b = sim.evolve(0.5, get_backend("gpu"))
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-12 * float(np.max(np.abs(a))))
