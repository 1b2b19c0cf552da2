"""`time.order: 2`: the exponential predictor-corrector, and imex's backward-Euler Richardson corrector."""

from __future__ import annotations

import ctypes
import shutil

import numpy as np
import pytest
from _support import compile_on_host, host_launch, make_config
from scipy.fft import dctn, idctn

from solver.backends.cuda_codegen import compile_for_arch, explicit_rates_source
from solver.backends.registry import get_backend
from solver.config import parse_config
from solver.run import Simulation


def observed_orders(errors: list[float]) -> np.ndarray:
    return np.log2(np.array(errors[:-1]) / np.array(errors[1:]))


# --------------------------------------------------------------------------- ODE limit


def logistic(t: float, u0: float, r: float, k: float) -> float:
    """u' = r u (1 - u) - k u: logistic growth at rate a = r - k to K = a / r."""
    a = r - k
    K = a / r
    return K / (1.0 + (K / u0 - 1.0) * np.exp(-a * t))


@pytest.mark.parametrize("reactions", ["explicit", "linearly-implicit"])
def test_ode_limit_is_second_order(reactions: str) -> None:
    # One cell, so only the explicit part acts. With linearly-implicit reactions the loss
    # terms (k u, and r u^2 lagged as (r u) u) go through the Patankar weights.
    r, k, u0, end = 2.0, 0.5, 0.1, 2.0
    exact = logistic(end, u0, r, k)
    errors = []
    for dt in (0.1, 0.05, 0.025):
        cfg = make_config({"u": {"reaction": f"{r}*u*(1 - u) - {k}*u", "initial": u0}}, shape=(1, 1, 1),
                          end=end, dt=dt, order=2, rtol=None, reactions=reactions)
        errors.append(abs(Simulation(cfg).evolve()[0].item() - exact))
    orders = observed_orders(errors)
    assert np.all(np.abs(orders - 2.0) < 0.2), (errors, orders)


def test_stiff_sink_is_exact_for_any_step() -> None:
    # u' = -k u with k h = 10: the exponential predictor-corrector multiplies by exp(-kh)
    # exactly (the sink is the linear part it integrates exactly), where Heun would
    # multiply by 1 - kh + (kh)^2 / 2 = 41 per step.
    k, dt, n = 1.0e3, 0.01, 5
    cfg = make_config({"u": {"reaction": f"-{k}*u", "initial": 1.0}}, shape=(1, 1, 1), end=n * dt, dt=dt,
                      order=2, rtol=None, reactions="linearly-implicit")
    u = Simulation(cfg).evolve()[0].item()
    assert u == pytest.approx(np.exp(-k * n * dt), rel=1e-12)


def exchange_config(dt: float, order: int, exchange: float = 1.0e4, rate: float = 3.0, **time):
    """u' = P (c(t) - u), c = plasma level after a bolus at t = 0, c(t) = c0 exp(-k t),
    u(0) = 0: a tissue drug in fast exchange with a falling plasma level (P h = 25-100)."""
    return parse_config({
        "name": "exchange", "backend": "numpy", "precision": "float64",
        "grid": {"shape": [1, 1, 1], "spacing": 1.0},
        "time": {"end": 1.0, "dt": dt, "order": order, "rtol": None, "integrator": "explicit",
                 "reactions": "linearly-implicit", **time},
        "output": {"series_every": 0.05, "snapshot_every": 1.0, "pictures": False, "checkpoint": None},
        "model": {"parameters": {"P": exchange},
                  "agents": {"drug": {"pk": {"volume": 1.0, "k_el": rate}}},
                  "species": {"u": {"reaction": "P*(drug - u)", "initial": 0.0}}},
        "treatment": [{"agent": "drug", "kind": "bolus", "dose": 2.0, "start": 0.0}],
    })


def exchange_exact(t: np.ndarray, exchange: float = 1.0e4, rate: float = 3.0, c0: float = 2.0) -> np.ndarray:
    return exchange * c0 / (exchange - rate) * (np.exp(-rate * t) - np.exp(-exchange * t))


def exchange_error(dt: float, order: int, exchange: float = 1.0e4) -> float:
    """Largest relative error of the 20 records (after t = 0.05 the exchange has equilibrated)."""
    sim = Simulation(exchange_config(dt, order, exchange))
    state = sim.start()
    errors = []
    for t in np.arange(0.05, 1.0 + 1e-9, 0.05):
        sim.advance(state, float(t))
        exact = exchange_exact(np.array(t), exchange)
        errors.append(abs(float(state.fields.u[0, 0, 0, 0]) - exact) / exact)
    return max(errors)


@pytest.mark.parametrize("order", [1, 2])
def test_exchange_driven_by_a_changing_plasma_level_converges_at_the_scheme_order(order: int) -> None:
    # P h = 1, 0.5, 0.25: where the step and the exchange time are alike. The scheme this
    # replaced returned about (c_n + c_{n+1}) / 2 in the stiff limit, an O(h) lag, so its
    # order 2 was first order; here order 2 is observed 2.00 (measured 1.98, 2.00).
    errors = [exchange_error(dt, order, exchange=100.0) for dt in (0.01, 0.005, 0.0025)]
    orders = observed_orders(errors)
    assert np.all(np.abs(orders - order) < (0.1 if order == 1 else 0.2)), (errors, orders)


def test_stiff_exchange_has_no_lag_at_order_two() -> None:
    # P h = 25-100 (P = 1e4 /day): the first-order step lags the plasma level by one step
    # (error ~ k h = 3 %); the exponential trapezoid leaves only its O(h k^2 / P) term,
    # measured 4.5e-6 at h = 0.01 (the bound k^2 h / P = 9e-6), which shrinks with h.
    rate, exchange = 3.0, 1.0e4
    for dt in (0.01, 0.005, 0.0025):
        first, second = exchange_error(dt, 1, exchange), exchange_error(dt, 2, exchange)
        assert first == pytest.approx(rate * dt, rel=0.05)
        assert second <= rate**2 * dt / exchange and second < 1e-3 * first


def test_a_species_at_zero_keeps_its_sink_and_the_maximum_principle() -> None:
    # Tissue drug that is exactly 0 when a step starts (every infusion's first step): the
    # scheme this replaced dropped its sink there (u = u1 = 0), and the first step put the
    # tissue level 47x above the plasma level. u' = P (c - u) - g u stays below max c.
    cfg = parse_config({
        "name": "zero", "backend": "numpy", "precision": "float64", "grid": {"shape": [1, 1, 1], "spacing": 1.0},
        "time": {"end": 1.0, "dt": 0.05, "order": 2, "rtol": None, "integrator": "explicit",
                 "reactions": "linearly-implicit"},
        "output": {"series_every": 0.05, "snapshot_every": 1.0, "pictures": False, "checkpoint": None},
        "model": {"parameters": {"P": 2000.0, "g": 0.9},
                  "agents": {"chemo": {"pk": {"volume": 1.0, "k_el": 0.9}}},
                  "species": {"M": {"reaction": "P*(chemo - M) - g*M", "initial": 0.0}}},
        "treatment": [{"agent": "chemo", "kind": "infusion", "dose_rate": 2.0, "duration": 0.5, "start": 0.0}],
    })
    sim = Simulation(cfg)
    state = sim.start()
    for k in range(1, 21):
        t = 0.05 * k
        sim.advance(state, t)
        plasma = state.systemic.values(t)[0]
        peak_so_far = 2.0 / 0.9 * (1 - np.exp(-0.9 * min(t, 0.5)))  # the plasma level only rises to t = 0.5
        assert 0.0 <= float(state.fields.u[0, 0, 0, 0]) <= peak_so_far * (1 + 1e-12), (t, plasma)
    # and the first step is near the quasi-steady level P c / (P + g), not above it
    first = Simulation(cfg)
    s1 = first.start()
    first.advance(s1, 0.05)
    c = s1.systemic.values(0.05)[0]
    assert float(s1.fields.u[0, 0, 0, 0]) == pytest.approx(2000.0 * c / 2000.9, rel=2e-2)


# --------------------------------------------------------------------------- IMEX: Richardson-extrapolated backward Euler


def semi_discrete_heat(u0: np.ndarray, diffusion: float, h: float, t: float) -> np.ndarray:
    """exp(t D L) u0 exactly, L the cell-centred no-flux Laplacian of solver/grid.py.

    The DCT-II diagonalises L on each axis (ghost = edge value), with eigenvalues
    -(4 / h^2) sin^2(pi m / (2 n)), so the time integration has no error at all.
    """
    decay = np.zeros(u0.shape)
    for a, n in enumerate(u0.shape):
        shape = [1, 1, 1]
        shape[a] = n
        decay = decay + (-(4.0 / h**2) * np.sin(np.pi * np.arange(n) / (2 * n)) ** 2).reshape(shape)
    return idctn(dctn(u0, type=2, norm="ortho") * np.exp(t * diffusion * decay), type=2, norm="ortho")


def gaussian_with_decay(n: int, dt: float, order: int, reactions: str):
    # D = 1 on h = 1: the explicit bound of the diffusion is 1/6, so every dt below is
    # 0.15 to 0.6 times it: the asymptotic range of the line solves' time error
    c = n / 2
    return make_config(
        {"u": {"diffusion": 1.0, "reaction": "-0.5*u",
               "initial": f"exp(-((x-{c})**2 + (y-{c - 1})**2 + (z-{c + 1})**2)/6)"}},
        shape=(n, n, n), end=1.0, dt=dt, integrator="imex", order=order, rtol=None, reactions=reactions,
    )


@pytest.mark.parametrize("reactions", ["explicit", "linearly-implicit"])
@pytest.mark.parametrize("order", [1, 2])
def test_imex_order_in_time_against_the_exact_semi_discrete_solution(order: int, reactions: str) -> None:
    # Diffusion with decay, against exp(-kt) exp(t D L) u0: the spatial operator is the
    # same, so what is left is the time error. Order 1 (sink-scaled LOD backward Euler)
    # halves it with dt, order 2 (the Richardson extrapolation of backward Euler) quarters it.
    n = 12
    sim0 = Simulation(gaussian_with_decay(n, 0.1, order, reactions))
    exact = np.exp(-0.5) * semi_discrete_heat(sim0.u0[0].astype(np.float64), 1.0, 1.0, 1.0)
    errors = []
    for dt in (0.1, 0.05, 0.025):  # measured: order 1 0.98-1.00, order 2 1.87-1.94
        sim = Simulation(gaussian_with_decay(n, dt, order, reactions))
        assert sim.plan.integrator.implicit_diffusion == frozenset({0})
        errors.append(float(np.max(np.abs(sim.evolve()[0] - exact))))
    orders = observed_orders(errors)
    assert np.all(np.abs(orders - order) < 0.2), (errors, orders)


def test_second_order_is_stable_at_100x_the_explicit_bound() -> None:
    # The extrapolated backward Euler is L-stable (every mode damped at any dt); a smooth
    # field stays bounded and keeps its total (no-flux faces).
    n, bound = 16, 1.0 / 6.0
    c = n / 2
    cfg = make_config({"u": {"diffusion": 1.0, "initial": f"exp(-((x-{c})**2 + (y-{c})**2 + (z-{c})**2)/8)"}},
                      shape=(n, n, n), end=500 * bound, dt=100 * bound, integrator="imex", order=2, rtol=None)
    sim = Simulation(cfg)
    u = sim.evolve()[0]
    assert np.all(np.isfinite(u)) and np.abs(u).max() <= sim.u0[0].max()
    assert u.sum() == pytest.approx(sim.u0[0].sum(), rel=1e-12)


# --------------------------------------------------------------------------- the rates kernel

# After the kernel source: the launch of explicit_rates (as cupy_backend makes it), as loops.
HOST_RATES = host_launch(
    "host_rates(const real* u, real* rate, real* sink, const real* maps, real* diffusion, real t)",
    "explicit_rates(u, rate, sink, maps, diffusion, t)")


def two_species(dtype: str = "float64", integrator: str = "explicit"):
    return make_config(
        {
            "u": {"diffusion": 2.0, "reaction": "0.5*u*(1 - u) - 3*u*v", "initial": "0.5 + 0.1*sin(x)*cos(z)",
                  "boundary": {"x": {"low": {"value": 0.2}, "high": "no-flux"}, "y": "periodic"}},
            "v": {"diffusion": 0.1, "reaction": "0.2*u - 0.4*v", "initial": "0.3 + 0.05*cos(y)",
                  "chemotaxis": {"signal": "u", "sensitivity": 0.3}, "boundary": {"y": "periodic"}},
        },
        shape=(7, 6, 5), spacing=1.0, end=0.2, precision=dtype, reactions="linearly-implicit",
        integrator=integrator, order=2, rtol=None,
    )


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++ to run the kernel source on the host")
@pytest.mark.parametrize("report", [frozenset(), frozenset({0})])
def test_rates_kernel_source_matches_numpy(tmp_path, report) -> None:
    # The generated explicit_rates source compiled as C++ on the host (as in
    # tests/test_kernel_on_host.py) writes the same F and lambda as the NumPy stepper, and,
    # for the species an IMEX step treats implicitly (report), their diffusion term.
    from solver.backends.numpy_backend import NumpyExplicitStepper

    sim = Simulation(two_species())
    source = explicit_rates_source(sim.model, sim.grid, np.dtype("float64"), implicit_sinks=True, report_sinks=report)
    host_rates = compile_on_host(source + HOST_RATES, tmp_path, "host_rates")
    state = sim.start(get_backend("numpy"))
    u, maps = state.fields.u, np.ascontiguousarray(state.fields.maps)
    rate, sink, diffusion = np.full_like(u, np.nan), np.full_like(u, np.nan), np.full_like(u, np.nan)
    ptr = lambda a: a.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
    host_rates(ptr(u), ptr(rate), ptr(sink), ptr(maps), ptr(diffusion), ctypes.c_double(0.0))
    ref_rate, ref_sink, ref_diffusion = np.empty_like(u), np.empty_like(u), np.full_like(u, np.nan)
    stepper = NumpyExplicitStepper(sim.model, sim.grid, np.dtype("float64"), True, report_sinks=report)
    stepper.rates(u, ref_rate, ref_sink, state.fields.maps, 0.0, diffusion=ref_diffusion)
    # measured: sink bit-identical, F within one ulp (2.2e-16, relative to its largest
    # value) in a few cells; the bound allows 4.5 ulp and fails on any real codegen error
    pairs = [(rate, ref_rate), (sink, ref_sink)] + [(diffusion[s], ref_diffusion[s]) for s in report]
    for ours, ref in pairs:
        scale = np.max(np.abs(ref), axis=tuple(range(1, ref.ndim)) if ref.ndim == 4 else None, keepdims=True)
        assert np.max(np.abs(ours - ref) / scale) < 1e-15
    assert np.all(ref_sink[0] > 0) and np.all(ref_sink[1] > 0)  # both species have losses
    for s in report:  # D lap u of a non-uniform field: not zero, and part of F
        assert np.max(np.abs(ref_diffusion[s])) > 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rates_kernel_compiles_for_sm90(dtype: str) -> None:
    sim = Simulation(two_species(dtype))
    ptx = compile_for_arch(explicit_rates_source(sim.model, sim.grid, np.dtype(dtype), implicit_sinks=True))
    assert b".entry explicit_rates" in ptx


@pytest.mark.parametrize("integrator", ["explicit", "imex"])
def test_gpu_second_order_matches_numpy(gpu, integrator: str) -> None:
    """Order-2 steps on the GPU (rates kernel; for imex the sink-scaled line solves and the
    Richardson step) against NumPy."""
    sim = Simulation(two_species("float64", integrator))
    a = sim.evolve(0.2, get_backend("numpy"))
    b = sim.evolve(0.2, get_backend("gpu"))
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-12 * float(np.max(np.abs(a))))


# --------------------------------------------------------------------------- the fused stages

HOST_ETD = r"""
extern "C" void host_etd(const real* u, const real* stage_in, const real* r0, const real* s0, const real* r1,
                         const real* s1, real* out, real* embedded, const int* species, int n_local,
                         long long n_cells, real h, int mode, int with_embedded) {
    const long long blocks = (n_local * n_cells + 255) / 256;
    for (long long b = 0; b < blocks; ++b) {
        blockIdx.x = (unsigned)b;
        for (threadIdx.x = 0; threadIdx.x < 256; ++threadIdx.x)
            etd_stage(u, stage_in, r0, s0, r1, s1, out, embedded, species, n_local, n_cells, h, mode, with_embedded);
    }
}
"""


def _stage_inputs(dtype: str, shape=(3, 5, 4, 7)):
    rng = np.random.default_rng(3)
    u, v1, r0, r1 = (rng.uniform(-1.0, 1.0, shape).astype(dtype) for _ in range(4))
    # sinks spanning the series branch (h lambda < 0.1), the closed forms and the stiff limit
    s0, s1 = (np.exp(rng.uniform(-8.0, 6.0, shape)).astype(dtype) for _ in range(2))
    return u, v1, r0, s0, r1, s1


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++ to run the kernel source on the host")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_stages_match_the_array_expressions(tmp_path, dtype) -> None:
    """kernels/etd_stage.cu (the CuPy backend's fused stages) run on the host against
    solver/backends/etd.py (the NumPy backend's): predictor, corrector with and without the
    embedded solution, in place, on a non-contiguous species subset."""
    from solver.backends.cuda_codegen import kernel_template
    from solver.backends.etd import ArrayEtdStages

    ctype = "float" if dtype == "float32" else "double"
    etd = compile_on_host(f"typedef {ctype} real;\n" + kernel_template("etd_stage.cu") + HOST_ETD, tmp_path, "host_etd")
    u, v1, r0, s0, r1, s1 = _stage_inputs(dtype)
    local = [0, 2]
    species = np.asarray(local, dtype=np.int32)
    cells = int(np.prod(u.shape[1:]))
    h = 0.7
    real = ctypes.c_float if dtype == "float32" else ctypes.c_double
    ptr = lambda a: a.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
    ref = ArrayEtdStages(np, local)
    # float64: the same operations in the same order (libm's exp/expm1 against NumPy's:
    # an ulp at most); float32 likewise in its own eps
    tol = 1e-6 if dtype == "float32" else 1e-14
    for mode, with_embedded, in_place in ((0, 0, False), (1, 0, False), (1, 1, False), (1, 1, True)):
        stage = v1.copy()
        out, emb = np.full_like(u, np.nan), np.full_like(u, np.nan)
        want, want_emb = np.full_like(u, np.nan), np.full_like(u, np.nan)
        target = stage if in_place else out
        etd(ptr(u), ptr(stage), ptr(r0), ptr(s0), ptr(r1), ptr(s1), ptr(target), ptr(emb), ptr(species),
            len(local), ctypes.c_longlong(cells), real(h), mode, with_embedded)
        ref_stage = v1.copy()
        ref_target = ref_stage if in_place else want
        if mode == 0:
            ref.predictor(u, r0, s0, ref_target, u.dtype.type(h))
        else:
            ref.trapezoid(u, ref_stage, r0, s0, r1, s1, ref_target, u.dtype.type(h),
                          embedded=want_emb if with_embedded else None)
        for ours, theirs in ((target, ref_target), (emb, want_emb)):
            assert np.array_equal(np.isnan(ours), np.isnan(theirs))  # the other species untouched
            np.testing.assert_allclose(ours[local], theirs[local], rtol=tol, atol=tol)


def test_array_stage_temporaries_are_counted() -> None:
    """resources' ARRAY_TEMPORARY_SETS: the peak of the NumPy corrector's temporaries, in
    fields of the locally stepped species, measured."""
    import tracemalloc

    from solver.backends.etd import ARRAY_TEMPORARY_SETS, ArrayEtdStages

    u, v1, r0, s0, r1, s1 = _stage_inputs("float64", shape=(2, 32, 32, 32))
    out, emb = np.empty_like(u), np.empty_like(u)
    stages = ArrayEtdStages(np, [0, 1])
    tracemalloc.start()
    stages.trapezoid(u, v1, r0, s0, r1, s1, out, 0.7, embedded=emb)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    sets = peak / u.nbytes
    assert ARRAY_TEMPORARY_SETS - 1.5 <= sets <= ARRAY_TEMPORARY_SETS, sets  # measured 11.1


@pytest.mark.parametrize("ctype", ["float", "double"])
def test_fused_stages_compile_for_sm90(ctype: str) -> None:
    from solver.backends.cuda_codegen import kernel_template

    ptx = compile_for_arch(f"typedef {ctype} real;\n" + kernel_template("etd_stage.cu"))
    text = ptx.decode() if isinstance(ptx, bytes) else ptx
    assert ".entry etd_stage" in text and (ctype == "double" or ".f64" not in text)
