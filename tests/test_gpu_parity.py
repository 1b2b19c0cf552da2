"""GPU (CuPy) against NumPy: same config, same steps, agreement to round-off.

`gpu`-marked: skipped unless CuPy imports and a CUDA device is present. Importing this
module never needs CuPy.
"""

from __future__ import annotations

import numpy as np
import pytest
from _support import make_config

from solver.run import Simulation

pytestmark = pytest.mark.gpu

BOUNDARIES = {
    "no-flux": "no-flux",
    "value": {"value": 0.7},
    "periodic": "periodic",
    "mixed": {"x": {"low": {"value": 0.3}, "high": "no-flux"}, "y": "periodic", "z": {"low": "no-flux", "high": {"value": 1.5}}},
    # D = 0.8, hx = 1: b = P h / D = 3.75 (alpha < 0) on x.low; a weak wall on z.high
    "permeable": {"x": {"low": {"permeable": {"permeability": 3.0, "value": 0.4}}, "high": {"value": 0.2}},
                  "y": "periodic", "z": {"low": "no-flux", "high": {"permeable": {"permeability": 0.25, "value": 1.2}}}},
}
# Relative tolerance per step for float32: a few ulps (eps = 1.2e-7) per operation,
# growing with the number of steps compared; float64 the same in its own eps.
TOLERANCE = {"float32": 2e-6, "float64": 1e-13}


def fast_math_tolerance(steps: int) -> float:
    """What gpu.fast_math (float32, the default) may add after `steps` steps of the parity
    model: the documented intrinsic errors (cuda_codegen.fast_math_step_bound: two
    __fdividef in a chain, one __expf of |-t| <= 1) per unit of the relative increment,
    which is <= 2 at the stable dt (tests/test_kernel_on_host.py fast_tolerance), added
    linearly over the steps."""
    from solver.backends.cuda_codegen import fast_math_step_bound

    return steps * 2 * fast_math_step_bound(exp_argument=1.0, divisions=2)


def parity_config(tmp_path, boundary, dtype, reactions="explicit"):
    shape = (20, 17, 33)  # odd sizes: partial last block, every face index path
    rng = np.random.default_rng(11)
    for name in ("u", "v"):
        np.save(tmp_path / f"{name}.npy", rng.uniform(0.1, 1.0, shape))
    # chemotaxis needs u and its signal v periodic along the same axes
    bc_v = {"y": "periodic"} if isinstance(boundary, dict) and "x" in boundary else boundary
    return make_config(
        {
            "u": {"diffusion": 0.8, "reaction": "r*u*(1 - u)*w - u*v/(1 + u**2) + 0.01*x*exp(-t)",
                  "initial": {"file": str(tmp_path / "u.npy")}, "boundary": boundary,
                  "chemotaxis": {"signal": "v", "sensitivity": 0.4}},
            "v": {"diffusion": 0.3, "reaction": "0.2*u - 0.1*v + min(u, v)*0.05",
                  "initial": {"file": str(tmp_path / "v.npy")}, "boundary": bc_v},
        },
        shape=shape, spacing=(1.0, 0.9, 1.1), end=1.0, parameters={"r": 1.0},
        maps={"w": "1 + 0.5*sin(0.3*y)"}, precision=dtype, reactions=reactions,
    )


@pytest.mark.parametrize("reactions", ["explicit", "linearly-implicit"])
@pytest.mark.parametrize(("dtype", "fast"), [("float32", True), ("float32", False), ("float64", False)],
                         ids=["float32-fast", "float32-exact", "float64"])
@pytest.mark.parametrize("kind", list(BOUNDARIES))
def test_gpu_matches_numpy_step_by_step(gpu, tmp_path, kind, dtype, fast, reactions) -> None:
    from solver.backends.registry import get_backend

    cfg = parity_config(tmp_path, BOUNDARIES[kind], dtype, reactions).replace(gpu={"fast_math": fast})
    sim = Simulation(cfg)
    on_cpu, on_gpu = sim.start(get_backend("numpy")), sim.start(get_backend("gpu"))
    cpu_int, cpu = on_cpu.integrator, on_cpu.fields
    gpu_int, dev = on_gpu.integrator, on_gpu.fields
    dt = sim.plan.dt
    for step in range(20):
        t = step * dt
        cpu_int.stepper.step(cpu.u, cpu.u_new, cpu.maps, t, dt)
        gpu_int.stepper.step(dev.u, dev.u_new, dev.maps, t, dt)
        cpu.u, cpu.u_new = cpu.u_new, cpu.u
        dev.u, dev.u_new = dev.u_new, dev.u
        host = gpu_int.backend.to_host(dev.u)
        scale = np.max(np.abs(cpu.u), axis=(1, 2, 3), keepdims=True)
        err = np.max(np.abs(host - cpu.u) / scale)
        tol = TOLERANCE[dtype] * (step + 1) ** 0.5 * 4 + (fast_math_tolerance(step + 1) if fast else 0.0)
        assert err < tol, (step, err, tol)


def test_gpu_run_writes_same_series_as_cpu(gpu, tmp_path) -> None:
    from solver.backends.registry import get_backend

    sim = Simulation(parity_config(tmp_path, "no-flux", "float32"))
    a = sim.evolve(0.5, get_backend("numpy"))
    b = sim.evolve(0.5, get_backend("gpu"))
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-5 * float(np.max(np.abs(a))))


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gpu_imex_matches_numpy(gpu, tmp_path, dtype, order) -> None:
    """IMEX steps (fused explicit step + GPU sink-scaled line solves; order 2: the
    predictor-corrector and its Richardson step) against the NumPy IMEX steps, at equal
    steps (error control would let round-off pick different step sequences)."""
    from solver.backends.registry import get_backend

    cfg = make_config(
        {
            "u": {"diffusion": 50.0, "reaction": "-0.5*u*v", "initial": "exp(-((x-8)**2 + (y-6)**2)/8)",
                  "boundary": {"x": {"low": {"value": 0.2}, "high": "no-flux"}, "y": "periodic"}},
            "v": {"diffusion": 0.05, "reaction": "0.1*u - 0.2*v", "initial": 0.5, "boundary": {"y": "periodic"}},
        },
        shape=(17, 12, 9), spacing=1.0, end=0.5, precision=dtype, integrator="imex", order=order, rtol=None,
    )
    sim = Simulation(cfg)
    assert sim.plan.integrator.implicit_diffusion == frozenset({0})
    a = sim.evolve(0.5, get_backend("numpy"))
    b = sim.evolve(0.5, get_backend("gpu"))
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(b, a, rtol=0, atol=tol * float(np.max(np.abs(a))))
