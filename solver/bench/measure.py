"""Measurements: copy bandwidth, the explicit step and its peers, end-to-end runs.

Part of the benchmark harness (solver/bench/__init__.py explains what is measured).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from solver.backends.base import Backend
from solver.bench.cases import MAP_RANGES, ModelCase, case_config
from solver.bench.peers import ArrayExpressionStep
from solver.bench.report import BenchmarkReport, EndToEndRow, StepRow
from solver.bench.timing import (
    Budget,
    PreparedCase,
    _fill_row,
    _median_spread,
    fill_random,
    max_rel_diff,
    prepare_case,
    time_cuda,
    time_host,
    time_host_interleaved,
)
from solver.config import parse_config

log = logging.getLogger(__name__)


def measure_host_copy(nbytes: int = 256 * 2**20, repeats: int = 5) -> dict[str, float]:
    """Host memory copy bandwidth (np.copyto of a large float32 array), bytes read + written."""
    src = np.random.default_rng(1).random(nbytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    samples = time_host(lambda: np.copyto(dst, src), lambda: None, repeats)
    med, spread = _median_spread(samples)
    gb_s = 2 * nbytes / med / 1e9
    return {"host_copy": gb_s, "host_copy_spread": spread, "bytes": nbytes, "reference": gb_s}


def measure_device_copy(cupy: Any, nbytes: int = 2**31, repeats: int = 20) -> dict[str, float]:
    """Device-to-device copy bandwidth, bytes read + written: cudaMemcpyAsync and a copy kernel.

    The reference is the larger of the two (the stricter yardstick for the fused step).
    """
    src = cupy.empty(nbytes // 4, dtype=cupy.float32)
    cupy.random.default_rng(2).random(dtype=cupy.float32, out=src)
    dst = cupy.empty_like(src)
    stream = cupy.cuda.get_current_stream()

    def memcpy(k: int) -> None:
        for _ in range(k):
            dst.data.copy_from_device_async(src.data, nbytes, stream)

    def kernel(k: int) -> None:
        for _ in range(k):
            cupy.copyto(dst, src)

    out: dict[str, float] = {"bytes": nbytes}
    for name, fn in (("memcpy", memcpy), ("copy_kernel", kernel)):
        samples, _ = time_cuda(cupy, fn, lambda: None, repeats, batch_ms=0.0, max_batch=1)
        med, spread = _median_spread(samples)
        out[name] = 2 * nbytes / med / 1e9
        out[name + "_spread"] = spread
    out["reference"] = max(out["memcpy"], out["copy_kernel"])
    return out  # the caller frees the pool once src and dst are gone


def measure_cpu_steps(report: BenchmarkReport, case: ModelCase, n: int, dtype: str, repeats: int,
                      compiled: bool = True) -> None:
    """The CPU implementations of the step, same inputs, timed interleaved: the compiled
    backend with every thread ("compiled") and with one ("compiled-1t"), the NumPy reference
    ("numpy-reference") and straightforward NumPy ("numpy-expr"). Each row's `over_numpy`
    is the median of the paired per-repeat ratios (NumPy reference time / its time)."""
    from solver.backends.numpy_backend import NumpyBackend

    p = prepare_case(case, n, dtype)
    backend = NumpyBackend()
    shape = (len(p.model.species),) + p.grid.shape
    u, u_new, u_ref = (np.empty(shape, p.dtype) for _ in range(3))
    maps = np.empty(p.maps_shape, p.dtype)
    rng = np.random.default_rng(1)

    def refill() -> None:
        fill_random(rng, u, p.model.names, case.ranges)

    fill_random(rng, maps, ("w",), MAP_RANGES)
    reference = backend.make_explicit_stepper(p.model, p.grid, p.dtype, p.implicit_sinks)
    impls: list[tuple[str, Any, str]] = [("numpy-reference", reference, backend.device),
                                         ("numpy-expr", ArrayExpressionStep(p.model, p.grid, p.dtype,
                                                                            p.implicit_sinks, np), backend.device)]
    timed = [lambda s=reference: s.step(u, u_new, maps, 0.0, p.dt, p.systemic),
             lambda s=impls[1][1]: s.step(u, u_new, maps, 0.0, p.dt, p.systemic)]
    if compiled:
        from solver.backends.numba_backend import NumbaBackend, numba_unavailable

        why = numba_unavailable()
        if why:
            report.notes.append(f"compiled CPU backend not measured: {why}")
        else:
            import numba

            fast = NumbaBackend()
            stepper = fast.make_explicit_stepper(p.model, p.grid, p.dtype, p.implicit_sinks)
            threads = numba.config.NUMBA_NUM_THREADS

            def one_thread(s=stepper) -> None:
                numba.set_num_threads(1)
                try:
                    s.step(u, u_new, maps, 0.0, p.dt, p.systemic)
                finally:
                    numba.set_num_threads(threads)

            impls += [("compiled", stepper, fast.device), ("compiled-1t", stepper, fast.device.replace(
                f"{threads} threads", "1 thread"))]
            timed += [lambda s=stepper: s.step(u, u_new, maps, 0.0, p.dt, p.systemic), one_thread]
    copy_gb_s = report.copy_bandwidth.get("cpu", {}).get("reference")

    refill()
    reference.step(u, u_ref, maps, 0.0, p.dt, p.systemic)
    diffs = []
    for (_, stepper, _), step in zip(impls, timed):
        step()
        diffs.append(max_rel_diff(np, u_new, u_ref))
    samples = time_host_interleaved(timed, refill, repeats)
    base = samples[0]
    for (impl, _, device), times, diff in zip(impls, samples, diffs):
        row = StepRow(case.name, n, dtype, impl, device, steps_per_repeat=1)
        _fill_row(row, p, times, copy_gb_s)
        # paired: the median over repeats of (reference / this) on the same inputs
        row.over_numpy = statistics.median(a / b for a, b in zip(base, times))
        row.slower_than_solver = 1.0 / row.over_numpy
        row.max_rel_diff = diff
        report.steps.append(row)
    log.info("cpu %s %d^3 %s: %s", case.name, n, dtype, ", ".join(
        f"{impl} {statistics.median(t) * 1e3:.3g} ms" for (impl, _, _), t in zip(impls, samples)))


def measure_cpu_imex(report: BenchmarkReport, case: ModelCase, n: int, repeats: int) -> None:
    """One whole step of the IMEX integrator (order 1: the fused step, then each diffusing
    species' sink-scaled line solves) against one explicit step, both on the compiled
    backend, float32, the same dt, timed interleaved: a row "compiled-imex1" whose
    `slower_than_solver` is the paired median ratio (IMEX / explicit)."""
    from solver.backends.numba_backend import NumbaBackend, numba_unavailable
    from solver.run import Simulation

    if numba_unavailable():
        return
    backend = NumbaBackend()
    sims = {integrator: Simulation(case_config(case, n, "float32", integrator=integrator, order=1))
            for integrator in ("explicit", "imex")}
    dt = min(sim.plan.dt for sim in sims.values())
    running = {k: sim.start(backend) for k, sim in sims.items()}
    rng = np.random.default_rng(3)
    names = sims["explicit"].model.names

    def refill() -> None:
        for state in running.values():
            fill_random(rng, state.fields.u, names, case.ranges)

    steps = [lambda r=r: r.integrator.step(r.fields, 0.0, dt, r.systemic) for r in running.values()]
    samples = time_host_interleaved(steps, refill, repeats)
    p = prepare_case(case, n, "float32")
    for impl, times in zip(("compiled-explicit1", "compiled-imex1"), samples):
        row = StepRow(case.name, n, "float32", impl, backend.device, steps_per_repeat=1)
        _fill_row(row, p, times, report.copy_bandwidth.get("cpu", {}).get("reference"))
        row.slower_than_solver = statistics.median(b / a for a, b in zip(samples[0], times))
        row.note = f"whole integrator step, dt = {dt:.3g}"
        report.steps.append(row)


def _import_jax() -> tuple[Any, Any, str]:
    """(jax, jax.numpy, "") on a GPU, or (None, None, why not)."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # share the GPU with CuPy
    try:
        import jax
        import jax.numpy as jnp
    except Exception as exc:  # noqa: BLE001 (ImportError, or a broken CUDA plugin raising anything)
        return None, None, f"JAX does not import ({exc.__class__.__name__})"
    jax.config.update("jax_enable_x64", True)  # float64 rows; float32 arrays stay float32
    if jax.default_backend() != "gpu":
        return None, None, f"JAX runs on {jax.default_backend()}, not the GPU"
    return jax, jnp, ""


def measure_gpu_steps(report: BenchmarkReport, cupy: Any, backend: Backend, case: ModelCase, n: int,
                      dtype: str, repeats: int, jax_modules: tuple[Any, Any] | None, budget: Budget) -> None:
    """Fused kernel, CuPy expressions and jax.jit on the GPU, same inputs; up to three rows."""
    p = prepare_case(case, n, dtype)
    device = backend.device
    shape = (len(p.model.species),) + p.grid.shape
    u, u_new = cupy.empty(shape, p.dtype), cupy.empty(shape, p.dtype)
    maps = cupy.empty(p.maps_shape, p.dtype)
    rng = cupy.random.default_rng(1)  # made once: creating a cuRAND generator is slow
    fill_random(rng, maps, ("w",), MAP_RANGES)
    state = {"u": u, "u_new": u_new}

    def refill() -> None:
        fill_random(rng, state["u"], p.model.names, case.ranges)

    copy_gb_s = report.copy_bandwidth.get("gpu", {}).get("reference")
    fused = backend.make_explicit_stepper(p.model, p.grid, p.dtype, p.implicit_sinks)

    def fused_steps(k: int) -> None:
        a, b = state["u"], state["u_new"]
        for _ in range(k):
            fused.step(a, b, maps, 0.0, p.dt, p.systemic)
            a, b = b, a
        state["u"], state["u_new"] = a, b

    # The reference output on a fixed random input, for every peer's check.
    refill()
    u_in = state["u"].copy()
    reference = cupy.empty_like(u_in)
    fused.step(u_in, reference, maps, 0.0, p.dt, p.systemic)

    row = StepRow(case.name, n, dtype, "fused", device, slower_than_solver=1.0, max_rel_diff=0.0)
    samples, k = time_cuda(cupy, fused_steps, refill, repeats)
    row.steps_per_repeat = k
    _fill_row(row, p, samples, copy_gb_s)
    report.steps.append(row)
    fused_s = row.ms_per_step / 1e3
    log.info("gpu %s %d^3 %s: fused %.4g ms/step, %.1f GB/s effective (%.1f%% of copy)", case.name, n, dtype,
             row.ms_per_step, row.effective_gb_s, 100 * (row.fraction_of_copy or 0))

    # Plain CuPy: the same step as array expressions, one kernel per operation.
    row = StepRow(case.name, n, dtype, "cupy-expr", device)
    if budget.exhausted():
        row.note = "skipped: time budget"
    else:
        try:
            expr = ArrayExpressionStep(p.model, p.grid, p.dtype, p.implicit_sinks, cupy)
            out = cupy.empty_like(u_in)
            expr.step(u_in, out, maps, 0.0, p.dt, p.systemic)
            row.max_rel_diff = max_rel_diff(cupy, out, reference)

            def expr_steps(k: int) -> None:
                a, b = state["u"], state["u_new"]
                for _ in range(k):
                    expr.step(a, b, maps, 0.0, p.dt, p.systemic)
                    a, b = b, a
                state["u"], state["u_new"] = a, b

            samples, k = time_cuda(cupy, expr_steps, refill, max(3, repeats // 2))
            row.steps_per_repeat = k
            _fill_row(row, p, samples, copy_gb_s)
            row.slower_than_solver = row.ms_per_step / 1e3 / fused_s
            log.info("gpu %s %d^3 %s: CuPy expressions %.4g ms/step (x%.1f), rel diff %.1e", case.name, n, dtype,
                     row.ms_per_step, row.slower_than_solver, row.max_rel_diff)
        except Exception as exc:  # one failing peer must not lose the rest of the run
            log.exception("CuPy expressions failed")
            row.note = f"error: {exc.__class__.__name__}: {str(exc)[:120]}"
    report.steps.append(row)

    # jax.jit of the same expressions.
    row = StepRow(case.name, n, dtype, "jax-jit", device)
    if jax_modules is None:
        row.note = "skipped: " + report.meta.get("jax", "JAX not available")
    elif budget.exhausted():
        row.note = "skipped: time budget"
    else:
        try:
            _measure_jax(row, p, cupy, jax_modules, u_in, maps, reference, repeats, copy_gb_s)
            row.slower_than_solver = row.ms_per_step / 1e3 / fused_s
            log.info("gpu %s %d^3 %s: jax.jit %.4g ms/step (x%.2f), rel diff %.1e", case.name, n, dtype,
                     row.ms_per_step, row.slower_than_solver, row.max_rel_diff)
        except Exception as exc:  # as above
            log.exception("jax.jit peer failed")
            row.note = f"error: {exc.__class__.__name__}: {str(exc)[:120]}"
    report.steps.append(row)


def _to_jax(jnp: Any, cupy: Any, array: Any) -> Any:
    """A cupy array as a jax array on the GPU (DLPack, no copy; through the host otherwise)."""
    try:
        return jnp.from_dlpack(array)
    except Exception:  # noqa: BLE001 (any DLPack refusal: take the slow path)
        return jnp.asarray(cupy.asnumpy(array))


def _to_cupy(cupy: Any, array: Any) -> Any:
    try:
        return cupy.from_dlpack(array)
    except Exception:  # noqa: BLE001 (any DLPack refusal: take the slow path)
        return cupy.asarray(np.asarray(array))


def _measure_jax(row: StepRow, p: PreparedCase, cupy: Any, jax_modules: tuple[Any, Any], u_in: Any, maps: Any,
                 reference: Any, repeats: int, copy_gb_s: float | None) -> None:
    """Time jax.jit(step) with the host clock around block_until_ready (JAX has its own stream)."""
    jax, jnp = jax_modules
    expr = ArrayExpressionStep(p.model, p.grid, p.dtype, p.implicit_sinks, jnp)
    n_systemic = len(p.systemic)

    @jax.jit
    def step(u: Any, maps: Any, t: Any, dt: Any, systemic: Any) -> Any:
        return jnp.stack(expr.new_fields(u, maps, t, dt, [systemic[i] for i in range(n_systemic)]))

    cast = p.dtype.type
    t0, dt = jnp.asarray(cast(0.0)), jnp.asarray(cast(p.dt))
    systemic = jnp.asarray(np.array(p.systemic if n_systemic else [0.0], dtype=p.dtype))
    j_maps = _to_jax(jnp, cupy, maps.copy())
    j_in = _to_jax(jnp, cupy, u_in.copy())
    out = step(j_in, j_maps, t0, dt, systemic)  # compiles
    out.block_until_ready()
    row.max_rel_diff = max_rel_diff(cupy, _to_cupy(cupy, out), reference)
    keys = iter(range(10**6))

    def fresh() -> Any:  # fresh random fields in each species' range, made by JAX itself
        key = jax.random.PRNGKey(next(keys))
        lo = np.array([p.case.ranges.get(nm, (0.5, 1.5))[0] for nm in p.model.names], dtype=p.dtype)
        hi = np.array([p.case.ranges.get(nm, (0.5, 1.5))[1] for nm in p.model.names], dtype=p.dtype)
        r = jax.random.uniform(key, j_in.shape, dtype=p.dtype)
        return (r * jnp.asarray(hi - lo)[:, None, None, None] + jnp.asarray(lo)[:, None, None, None]).block_until_ready()

    one_start = time.perf_counter()
    step(fresh(), j_maps, t0, dt, systemic).block_until_ready()
    k = int(min(200, max(1, math.ceil(0.05 / max(time.perf_counter() - one_start, 1e-6)))))
    samples = []
    for _ in range(max(3, repeats // 2)):
        v = fresh()
        start = time.perf_counter()
        for _ in range(k):
            v = step(v, j_maps, t0, dt, systemic)
        v.block_until_ready()
        samples.append((time.perf_counter() - start) / k)
    row.steps_per_repeat = k
    _fill_row(row, p, samples, copy_gb_s)


_e2e_dt_cache: dict[tuple[str, int, str], float] = {}


def measure_end_to_end(report: BenchmarkReport, case: ModelCase, n: int, steps: int, snapshot_every: int,
                       backend_name: str, compression: str, workdir: Path, checkpoint_every: int | None = None,
                       cupy: Any = None) -> None:
    """Simulation.run() with a snapshot (and a time-series record) every `snapshot_every` steps.

    The initial state is a tumour sphere in tissue with immune cells, with a chemo
    infusion running the whole time (no dose event inside the run: every step has the
    same length). dt is fixed to the automatic choice so that the run has exactly
    `steps` steps. With checkpoint_every, output.checkpoint.every_steps is set too
    (checkpoints land on records).

    The stepping time is measured first on this run's own initial state, through
    Simulation.start (the same stepper the run uses; on the CPU the cost of pow and exp
    depends on the values, so random fields would not do): CUDA events when `cupy` is
    given, the host clock otherwise.
    """
    from solver.errors import ConfigError
    from solver.run import Simulation

    setup_start = time.perf_counter()
    extra = {
        "species": {"T": {"initial": {"tumour": {"kind": "sphere", "radius": n * case.spacing / 4,
                                                 "density": 5.0e8, "smooth": 2 * case.spacing}}},
                    "N": {"initial": 3.0e5}, "L": {"initial": 1.0e4}},
    }
    model = {**case.model, **extra}
    key = (case.name, n, backend_name)
    if key not in _e2e_dt_cache:
        probe = Simulation(case_config(dataclasses.replace(case, model=model), n, "float32", backend_name))
        _e2e_dt_cache[key] = probe.plan.dt
    dt = _e2e_dt_cache[key]
    end = steps * dt
    data = {
        "name": f"bench-e2e-{case.name}",
        "backend": backend_name,
        "precision": "float32",
        "grid": {"shape": [n, n, n], "spacing": case.spacing, "length_unit": case.length_unit},
        "time": {"end": end, "dt": dt, "unit": case.time_unit, "reactions": case.reactions,
                 "integrator": "explicit"},
        "output": {"snapshot_every": snapshot_every * dt, "series_every": snapshot_every * dt,
                   "compression": compression, "pictures": False},
        "model": model,
        "treatment": [{"agent": "chemo", "kind": "infusion", "dose_rate": 1.0, "duration": 10 * end, "start": 0.0}],
    }
    note = ""
    if checkpoint_every:
        data["output"]["checkpoint"] = {"every_steps": checkpoint_every}
        note = f"checkpoint every {checkpoint_every} steps"
    try:
        config = parse_config(data, source="<benchmark end-to-end>")
    except ConfigError:
        if not checkpoint_every:
            raise
        del data["output"]["checkpoint"]  # a solver without output.checkpoint
        config = parse_config(data, source="<benchmark end-to-end>")
        note = "no checkpoints (output.checkpoint not supported)"
    sim = Simulation(config, out_dir=workdir / f"e2e-{n}-{compression}", overwrite=True)
    setup = time.perf_counter() - setup_start
    step_seconds = _run_step_seconds(sim, backend_name, cupy)
    summary = sim.run()
    in_kernels = summary.steps * step_seconds
    row = EndToEndRow(
        model=case.name, grid=n, dtype="float32", device=summary.device, compression=compression,
        steps=summary.steps, snapshots=len(sim.plan.snapshot_times), snapshot_every_steps=snapshot_every,
        wall_s=summary.wall_seconds, step_ms=step_seconds * 1e3, in_kernels_s=in_kernels,
        outside_share=max(0.0, 1.0 - in_kernels / summary.wall_seconds), setup_s=setup, note=note,
    )
    report.end_to_end.append(row)
    log.info("end to end %s %d^3 (%s): %d steps, wall %.3f s, outside kernels %.1f%%", case.name, n, compression,
             row.steps, row.wall_s, 100 * row.outside_share)


def _run_step_seconds(sim: Any, backend_name: str, cupy: Any) -> float:
    """Median seconds of one step of `sim`'s stepper on its own initial state (the state evolves)."""
    from solver.backends.registry import get_backend

    state = sim.start(get_backend(backend_name))
    stepper, f = state.integrator.stepper, state.fields
    systemic = tuple(float(v) for v in state.scalars(0.0))
    dt = sim.plan.dt

    def steps(k: int) -> None:
        for _ in range(k):
            stepper.step(f.u, f.u_new, f.maps, 0.0, dt, systemic)
            f.u, f.u_new = f.u_new, f.u

    if cupy is not None:
        samples, _ = time_cuda(cupy, steps, lambda: None, 10)
    else:
        samples = time_host(lambda: steps(1), lambda: None, 5)
    return statistics.median(samples)
