"""The compiled CPU backend (numba) against the NumPy reference, its disk cache, and how
`auto` picks a backend.

The kernels print the same stencil and reaction terms as the reference evaluates
(solver/backends/stencil.py), in the same order of operations, so the two agree to a few
ulps: the libm of numba (exp, pow) and NumPy's own vectorised exp may round differently.
Measured, relative to each field's largest value: at most 0.62 eps per step over five steps
in float32 (0 in float64), the rates 0.44 eps, whole float64 runs 3 eps (IMEX order 2).
The tolerances are 4 eps per step (a term's libm rounding of 1-2 ulp, on another
platform's libm, carried by a few steps) and 32 eps for whole runs (a few hundred
operations deep, each rounding once).
Compiling costs about 2 s per kernel here, so the cases are chosen to cover every boundary
kind, chemotaxis, both reaction treatments, both precisions, order 1 and 2, and IMEX with
few distinct kernels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_gpu_parity import BOUNDARIES, parity_config

from solver.backends.registry import AUTO_BACKEND_ENV, get_backend
from solver.errors import ConfigError
from solver.run import Simulation

pytest.importorskip("numba", reason="the compiled CPU backend needs numba")

REPO = Path(__file__).resolve().parents[1]
STEP_EPS = 4  # per-step tolerance in eps of the precision, of each field's largest value
RUN_EPS = 32  # whole float64 runs


def worst_relative(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per species: max |a - b| over the largest |a| (a field's own scale)."""
    flat_a, flat_b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    scale = np.abs(flat_a).max(axis=1)
    return np.abs(flat_a - flat_b).max(axis=1) / np.where(scale > 0, scale, 1.0)


# (boundary kind, precision, reactions): "mixed" holds value, no-flux and periodic faces,
# "permeable" permeable, value, periodic and no-flux ones; every case moves u by chemotaxis.
CASES = [
    ("no-flux", "float32", "explicit"), ("periodic", "float64", "explicit"), ("mixed", "float64", "explicit"),
    ("mixed", "float32", "linearly-implicit"), ("permeable", "float32", "linearly-implicit"),
]


@pytest.mark.parametrize(("kind", "dtype", "reactions"), CASES)
def test_compiled_step_and_rates_match_numpy(tmp_path, kind, dtype, reactions) -> None:
    sim = Simulation(parity_config(tmp_path, BOUNDARIES[kind], dtype, reactions))
    reference, compiled = sim.start(get_backend("numpy")), sim.start(get_backend("cpu"))
    assert type(compiled.integrator.stepper).__name__ == "NumbaExplicitStepper"
    u = reference.fields.u.copy()
    maps = reference.fields.maps
    dt, tol = sim.plan.dt, STEP_EPS * np.finfo(dtype).eps
    a, b = u.copy(), u.copy()
    out_a, out_b = np.empty_like(u), np.full_like(u, np.nan)  # poisoned: every cell must be written
    for n in range(5):
        reference.integrator.stepper.step(a, out_a, maps, n * dt, dt)
        compiled.integrator.stepper.step(b, out_b, maps, n * dt, dt)
        a, out_a, b, out_b = out_a, a, out_b, b
        worst = worst_relative(a, b)
        assert np.isfinite(b).all() and (worst <= tol).all(), f"step {n}: {worst} > {tol}"
    rates = [np.full_like(u, np.nan) for _ in range(4)]
    reference.integrator.stepper.rates(u, rates[0], rates[1], maps, 0.25)
    compiled.integrator.stepper.rates(u, rates[2], rates[3], maps, 0.25)
    assert (worst_relative(rates[0], rates[2]) <= tol).all()
    assert np.array_equal(rates[1] == 0, rates[3] == 0) and (worst_relative(rates[1], rates[3]) <= tol).all()


@pytest.mark.parametrize(("integrator", "order"), [("imex", 1), ("imex", 2), ("explicit", 2)])
def test_compiled_backend_runs_the_integrators_as_the_reference(tmp_path, integrator, order) -> None:
    """A whole run: IMEX (the fused step reporting its sinks, the line solves after it) and
    the second-order step (three rate evaluations per step), every field at the end."""
    cfg = parity_config(tmp_path, BOUNDARIES["mixed"], "float64", "linearly-implicit")
    time = cfg.time.model_copy(update={"integrator": integrator, "order": order, "end": 0.2})
    sim = Simulation(cfg.replace(time=time))
    a = sim.evolve(0.2, get_backend("numpy"))
    b = sim.evolve(0.2, get_backend("cpu"))
    assert a.shape == b.shape and np.isfinite(b).all()
    assert (worst_relative(a, b) <= RUN_EPS * np.finfo(np.float64).eps).all()


def test_wrong_arrays_are_refused_before_the_unchecked_loops_see_them(tmp_path) -> None:
    sim = Simulation(parity_config(tmp_path, BOUNDARIES["no-flux"], "float32"))
    running = sim.start(get_backend("cpu"))
    stepper, fields = running.integrator.stepper, running.fields
    with pytest.raises(ValueError, match=r"u_new must be a C-contiguous float32 array of shape \(2, 20, 17, 33\)"):
        stepper.step(fields.u, np.empty((2, 20, 17, 32), np.float32), fields.maps, 0.0, sim.plan.dt)
    with pytest.raises(ValueError, match="u must be a C-contiguous float32"):
        stepper.step(fields.u.astype(np.float64), fields.u_new, fields.maps, 0.0, sim.plan.dt)


PROBE = r"""
import json, sys
import numpy as np
sys.path.insert(0, {tests!r})
from pathlib import Path
from test_gpu_parity import BOUNDARIES, parity_config
from solver.backends.registry import get_backend
from solver.run import Simulation
sim = Simulation(parity_config(Path({folder!r}), BOUNDARIES["value"], "float32"))
running = sim.start(get_backend("cpu"))
f = running.fields
running.integrator.stepper.step(f.u, f.u_new, f.maps, 0.0, sim.plan.dt)
stats = running.integrator.stepper.module.explicit_step.stats
print(json.dumps({{"hits": sum(stats.cache_hits.values()), "misses": sum(stats.cache_misses.values())}}))
"""


def test_a_second_process_loads_the_compiled_kernel_from_the_disk_cache(tmp_path) -> None:
    env = {**os.environ, "TUMORSIM_CACHE_DIR": str(tmp_path / "cache")}
    script = PROBE.format(tests=str(REPO / "tests"), folder=str(tmp_path))
    runs = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300,
                              cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert runs[0] == {"hits": 0, "misses": 1}  # compiled, and written to the cache
    assert runs[1] == {"hits": 1, "misses": 0}  # the same source: loaded, not compiled
    assert len(list((tmp_path / "cache" / "kernels").glob("tumorsim_*.py"))) == 1


def _backend_in_subprocess(name: str, env: dict[str, str], prelude: str = "") -> subprocess.CompletedProcess:
    code = (f"{prelude}\nfrom solver.backends.registry import get_backend\n"
            f"b = get_backend({name!r}); print(b.name)")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_auto_picks_the_compiled_cpu_backend_without_a_gpu_and_says_why(caplog, monkeypatch) -> None:
    import logging

    monkeypatch.delenv(AUTO_BACKEND_ENV)
    from conftest import _gpu_available

    if _gpu_available()[0]:
        pytest.skip("a GPU is visible here: auto picks it")
    with caplog.at_level(logging.INFO, logger="solver.backends.registry"):
        backend = get_backend("auto")
    assert backend.name == "numba"
    assert any("backend auto: using CPU:" in r.getMessage() and "because" in r.getMessage() for r in caplog.records)


def test_auto_backend_variable_and_a_missing_numba(monkeypatch) -> None:
    monkeypatch.setenv(AUTO_BACKEND_ENV, "numpy")
    assert get_backend("auto").name == "numpy"
    monkeypatch.setenv(AUTO_BACKEND_ENV, "fast")
    with pytest.raises(ConfigError, match=r"^TUMORSIM_AUTO_BACKEND='fast'; allowed: gpu, cpu, numpy$"):
        get_backend("auto")
    # without numba (its import made to fail, in a real process): cpu is an error, auto the reference
    env = {k: v for k, v in os.environ.items() if k != AUTO_BACKEND_ENV}
    hide = "import sys; sys.modules['numba'] = None"
    proc = _backend_in_subprocess("cpu", env, hide)
    assert proc.returncode != 0 and "backend cpu: numba does not import" in proc.stderr
    proc = _backend_in_subprocess("auto", env, hide)
    assert proc.returncode == 0 and proc.stdout.split()[-1] == "numpy"


def test_small_grids_run_on_one_thread_and_the_pool_is_restored() -> None:
    """Below PARALLEL_MIN_CELLS a kernel runs serially: a parallel region waiting for a thread
    the OS gave to another process costs a time slice per launch (measured: two 8^3 runs of
    the untreated arm side by side on 2 cores, 52.7 s each with two threads, 4.2 s with one)."""
    import numba

    from solver.backends.numba_lines import PARALLEL_MIN_CELLS, threads_for

    before = numba.get_num_threads()
    with threads_for(PARALLEL_MIN_CELLS - 1):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before
    with threads_for(PARALLEL_MIN_CELLS):
        assert numba.get_num_threads() == before
