"""The generated CUDA source, executed on the CPU, against the NumPy step.

No GPU here, so the kernel's arithmetic and indexing are checked by compiling the very
source the GPU would get as C++ with g++ (CUDA keywords defined away, the launch grid
emulated by loops over blockIdx/threadIdx) and calling it through ctypes. This catches
code-generation bugs (ghost rules, strides, chemotaxis fluxes, CSE, literals) on every
CI run; it does not replace the `gpu` parity tests on a real device.
"""

from __future__ import annotations

import ctypes
import shutil

import numpy as np
import pytest
from _support import compile_on_host, host_launch, make_config

from solver.backends.cuda_codegen import explicit_step_source, fast_math_step_bound
from solver.backends.registry import get_backend
from solver.run import Simulation

# After the kernel source: the launch of explicit_step, as loops.
HOST_STEP = host_launch("host_step(const real* u, real* u_new, const real* maps, real* sinks, real t, real dt)",
                        "explicit_step(u, u_new, maps, sinks, t, dt)")

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++ to run the kernel source on the host")


def host_kernel(source: str, tmp_path):
    return compile_on_host(source + HOST_STEP, tmp_path, "host_step")


def run_against_numpy(sim, source: str, tmp_path, dtype: str, steps: int = 5):
    """Step the host-compiled kernel and the NumPy stepper side by side; yield
    (step, error relative to each species' max)."""
    step = host_kernel(source, tmp_path)
    ctype = ctypes.c_float if dtype == "float32" else ctypes.c_double
    running = sim.start(get_backend("numpy"))
    integ, state = running.integrator, running.fields
    u = state.u.copy()
    out = np.full_like(u, np.nan)  # poisoned: every cell must be written
    maps = np.ascontiguousarray(state.maps)
    ptr = lambda a: a.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
    dt = sim.plan.dt
    for n in range(steps):
        step(ptr(u), ptr(out), ptr(maps), ptr(out), ctype(n * dt), ctype(dt))  # no species reports sinks
        integ.stepper.step(state.u, state.u_new, state.maps, n * dt, dt)
        state.u, state.u_new = state.u_new, state.u
        assert np.all(np.isfinite(out))
        scale = np.max(np.abs(state.u), axis=(1, 2, 3), keepdims=True)
        err = float(np.max(np.abs(out - state.u) / scale))
        yield n, err
        u, out = out, u


# float32: measured <= 0.6 ulp (7.5e-8) after 5 steps, exp/sqrt may differ by an ulp between
# libm and NumPy; float64: bit-identical in most cases, 1.1e-16 where a time-dependent
# exp(-t) rounds differently in libm (the permeable case at step 5).
EXACT = {"float32": 1e-6, "float64": 1e-13}


def fast_tolerance(steps: int, **chain) -> float:
    """The exact path's tolerance plus the fast path's bound (cuda_codegen.fast_math_step_bound,
    per unit of the relative increment r = dt (|R| + |transport|) / max|u|), added over the
    steps. r <= 2 here: the stable dt keeps dt D |lap u| <= 12 D dt / h^2 max|u| <= 2 max|u|,
    and the reactions move far less. On the host the intrinsics are exact
    (tests/_support.py), so this bounds the regrouped sums and a * (1 / b) alone."""
    return EXACT["float32"] + steps * fast_math_step_bound(**chain) * 2


@pytest.mark.parametrize("reactions", ["explicit", "linearly-implicit"])
@pytest.mark.parametrize(("dtype", "fast"), [("float32", False), ("float32", True), ("float64", False)],
                         ids=["float32", "float32-fast", "float64"])
@pytest.mark.parametrize("kind", ["no-flux", "value", "periodic", "mixed", "permeable"])
def test_generated_kernel_source_matches_numpy(tmp_path, kind, dtype, fast, reactions) -> None:
    from test_gpu_parity import BOUNDARIES, parity_config

    sim = Simulation(parity_config(tmp_path, BOUNDARIES[kind], dtype, reactions))
    source = explicit_step_source(sim.model, sim.grid, np.dtype(dtype), implicit_sinks=sim.plan.integrator.implicit_sinks,
                                  fast_math=fast)
    assert ("__fdividef" in source) == fast
    for n, err in run_against_numpy(sim, source, tmp_path, dtype):
        tol = fast_tolerance(n + 1, exp_argument=1.0, divisions=2) if fast else EXACT[dtype]
        assert err < tol, (n, err, tol)


def test_float64_ignores_fast_math(tmp_path) -> None:
    from test_gpu_parity import BOUNDARIES, parity_config

    sim = Simulation(parity_config(tmp_path, BOUNDARIES["mixed"], "float64"))

    def build(fast: bool) -> str:
        return explicit_step_source(sim.model, sim.grid, np.dtype("float64"), fast_math=fast)

    assert build(True) == build(False)
    assert not any(f in build(True) for f in ("__fdividef", "__expf", "__logf", "__powf"))


POWER_RATIO = {
    # a Hill-type power of a ratio of nonnegative quantities (the de Pillis D term):
    # sympy splits (a/b)**l into a**l * b**-l; the kernel prints one powf of a / b.
    "u": {"diffusion": 0.8, "reaction": "0.3*u*(max(u, 0)/max(v, 1e-6))**2.09/(0.5 + (max(u, 0)/max(v, 1e-6))**2.09)"
                                        " - 0.2*u*exp(-2*v)",
          "boundary": "no-flux", "chemotaxis": {"signal": "v", "sensitivity": 0.4}},
    "v": {"diffusion": 0.3, "reaction": "0.2*u - 0.1*v", "boundary": "no-flux"},
}


@pytest.mark.parametrize("fast", [False, True], ids=["exact", "fast"])
def test_power_of_a_ratio_is_one_pow_and_matches_numpy(tmp_path, fast) -> None:
    rng = np.random.default_rng(5)
    species = {name: {**spec, "initial": {"file": str(tmp_path / f"{name}.npy")}} for name, spec in POWER_RATIO.items()}
    for name in species:
        np.save(tmp_path / f"{name}.npy", rng.uniform(0.1, 1.0, (9, 8, 7)))
    sim = Simulation(make_config(species, shape=(9, 8, 7), spacing=1.0, precision="float32", reactions="linearly-implicit"))
    source = explicit_step_source(sim.model, sim.grid, np.dtype("float32"), implicit_sinks=True, fast_math=fast)
    body = source.split("model_update(")[1].split("#line")[0]
    power = "__powf(" if fast else "powf("
    assert body.count(power) == 1 and f"{power}{'__fdividef(' if fast else '('}" in body  # one pow, of the ratio
    assert "? ((vp_u_x" not in body.replace(" ", "")  # no-flux signal: fluxes not zeroed on the faces (exactly 0)
    for n, err in run_against_numpy(sim, source, tmp_path, "float32"):
        # the merged power rounds differently from NumPy's u**l * v**-l by a few ulp even
        # with exact powf; |log2| of the power here is below 10 (ratio in [0.1, 10])
        tol = fast_tolerance(n + 1, exp_argument=2.0, pow_exponent=2.09, pow_log2_result=10.0, divisions=2)
        assert err < tol, (n, err, tol)


@pytest.mark.parametrize("shape", [(256, 256, 256), (20, 17, 33), (256, 4, 4), (9, 8, 7), (1, 1, 300), (64, 1, 1)])
def test_launch_shape_covers_every_cell_with_few_idle_threads(shape) -> None:
    """The 3-D launch of cupy_backend (and of HOST_STEP above, from the BLOCK_* defines)."""
    from solver.backends.cuda_codegen import launch_shape

    block, grid = launch_shape(shape)
    bz, by, bx = block
    assert bz * by * bx <= 256 and bz <= 32
    for n, b, g in zip(shape[::-1], block, grid):  # CUDA x, y, z = grid axes z, y, x
        assert (g - 1) * b < n <= g * b  # every cell, no block wholly outside
        assert b < 2 * n  # the tile never more than twice the extent
    if shape == (256, 256, 256):
        assert block == (32, 8, 1) and grid == (8, 32, 256)


def test_source_defines_the_launch_tile(tmp_path) -> None:
    from test_gpu_parity import BOUNDARIES, parity_config

    from solver.backends.cuda_codegen import launch_shape

    sim = Simulation(parity_config(tmp_path, BOUNDARIES["no-flux"], "float32"))
    source = explicit_step_source(sim.model, sim.grid, np.dtype("float32"))
    (bz, by, bx), _ = launch_shape(sim.grid.shape)
    for name, value in (("BLOCK_Z", bz), ("BLOCK_Y", by), ("BLOCK_X", bx), ("BLOCK_SIZE", bz * by * bx)):
        assert f"#define {name} {value}\n" in source
