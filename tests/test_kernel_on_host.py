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
from _support import compile_on_host

from solver.backends.cuda_codegen import explicit_step_source
from solver.backends.registry import get_backend
from solver.run import Simulation

# After the kernel source: run the launch grid of explicit_step as loops.
HOST_STEP = r"""
extern "C" void host_step(const real* u, real* u_new, const real* maps, real* sinks, real t, real dt) {
    const long long blocks = (N_CELLS + BLOCK_SIZE - 1) / BLOCK_SIZE;
    for (long long b = 0; b < blocks; ++b) {
        blockIdx.x = (unsigned)b;
        for (unsigned th = 0; th < BLOCK_SIZE; ++th) { threadIdx.x = th; explicit_step(u, u_new, maps, sinks, t, dt); }
    }
}
"""

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++ to run the kernel source on the host")


def host_kernel(source: str, tmp_path):
    return compile_on_host(source + HOST_STEP, tmp_path, "host_step")


@pytest.mark.parametrize("reactions", ["explicit", "linearly-implicit"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["no-flux", "value", "periodic", "mixed", "permeable"])
def test_generated_kernel_source_matches_numpy(tmp_path, kind, dtype, reactions) -> None:
    from test_gpu_parity import BOUNDARIES, parity_config

    sim = Simulation(parity_config(tmp_path, BOUNDARIES[kind], dtype, reactions))
    source = explicit_step_source(sim.model, sim.grid, np.dtype(dtype), implicit_sinks=sim.plan.integrator.implicit_sinks)
    step = host_kernel(source, tmp_path)
    ctype = ctypes.c_float if dtype == "float32" else ctypes.c_double
    running = sim.start(get_backend("numpy"))
    integ, state = running.integrator, running.fields
    u = state.u.copy()
    out = np.full_like(u, np.nan)  # poisoned: every cell must be written
    maps = np.ascontiguousarray(state.maps)
    ptr = lambda a: a.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
    dt = sim.plan.dt
    for n in range(5):
        step(ptr(u), ptr(out), ptr(maps), ptr(out), ctype(n * dt), ctype(dt))  # no species reports sinks
        integ.stepper.step(state.u, state.u_new, state.maps, n * dt, dt)
        state.u, state.u_new = state.u_new, state.u
        assert np.all(np.isfinite(out))
        scale = np.max(np.abs(state.u), axis=(1, 2, 3), keepdims=True)
        err = float(np.max(np.abs(out - state.u) / scale))
        # float32: measured <= 0.6 ulp (7.5e-8) after 5 steps, exp/sqrt may differ by an ulp between
        # libm and NumPy; float64: bit-identical in most cases, 1.1e-16 where a time-dependent
        # exp(-t) rounds differently in libm (the permeable case at step 5).
        assert err < (1e-6 if dtype == "float32" else 1e-13), (n, err)
        u, out = out, u
