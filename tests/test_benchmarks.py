"""The benchmark suite (solver/benchmark.py, benchmarks/bench.py): structure, never timings.

Performance is shown by benchmarks, not by timed tests (issue 6): these tests run the
CPU small mode on tiny grids and check what it reports (rows, JSON, Markdown, targets),
that its "straightforward" peer computes the same step as the solver, and the
largest-grid arithmetic. The `gpu` test runs the full-mode code path on a small grid.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _support import make_config

from solver.backends.numpy_backend import NumpyBackend
from solver.bench import (
    DEPILLIS,
    MODEL_CASES,
    ArrayExpressionStep,
    largest_cube,
    persistent_bytes_per_cell,
    prepare_case,
    run_benchmark,
)
from solver.run import Simulation
from solver.bench.accuracy import FIELD_TOLERANCE

REPO = Path(__file__).resolve().parent.parent
TINY = 10  # cube edge for the structure tests: a fraction of a second per step


@pytest.fixture(scope="module")
def small_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    # without the compiled backend: each model would compile kernels of its own (its rows are
    # checked on the four-species model in test_compiled_rows_and_targets_on_a_small_model)
    report = run_benchmark(small=True, sizes=[TINY], out_dir=out, repeats=2, compiled=False)
    return report, out


def test_small_mode_rows_cover_both_models_both_implementations(small_report) -> None:
    report, _ = small_report
    seen = {(r.model, r.grid, r.dtype, r.impl) for r in report.steps}
    for model in MODEL_CASES:
        for dtype in ("float32", "float64"):
            for impl in ("numpy-reference", "numpy-expr"):
                assert (model, TINY, dtype, impl) in seen
    for r in report.steps:
        assert r.ms_per_step > 0 and r.cell_steps_per_s > 0 and r.effective_gb_s > 0
        assert r.device.startswith("CPU")
        assert r.repeats == 2


def test_straightforward_numpy_computes_the_solvers_step(small_report) -> None:
    report, _ = small_report
    tolerance = {"float32": 1e-5, "float64": 1e-12}
    for r in report.steps:
        if r.impl == "numpy-expr":
            assert r.max_rel_diff is not None and r.max_rel_diff <= tolerance[r.dtype], r
            assert r.slower_than_solver > 0


def test_minimal_bytes_count_species_twice_and_maps_once(small_report) -> None:
    report, _ = small_report
    row = report.find(DEPILLIS.name, TINY, "float32", "numpy-reference")
    # de Pillis: 7 species read + written, 1 vessel map read, 4 bytes each.
    assert row.effective_gb_s * 1e9 * row.ms_per_step / 1e3 == pytest.approx(15 * 4 * TINY**3, rel=1e-9)
    row = report.find("four-species", TINY, "float64", "numpy-reference")
    assert row.effective_gb_s * 1e9 * row.ms_per_step / 1e3 == pytest.approx(8 * 8 * TINY**3, rel=1e-9)


def test_small_mode_writes_json_markdown_and_summary(small_report) -> None:
    report, out = small_report
    data = json.loads((out / "bench.json").read_text(encoding="utf-8"))
    assert set(data) >= {"mode", "meta", "copy_bandwidth", "steps", "end_to_end", "largest_grid", "targets"}
    assert data["mode"] == "small"
    assert data["copy_bandwidth"]["cpu"]["reference"] > 0
    assert len(data["steps"]) == len(report.steps)
    assert set(data["steps"][0]) >= {"model", "grid", "dtype", "impl", "ms_per_step", "cell_steps_per_s",
                                     "effective_gb_s", "fraction_of_copy", "slower_than_solver", "max_rel_diff"}
    assert {t["status"] for t in data["targets"]} <= {"PASS", "FAIL", "SKIP", "INFO"}
    markdown = (out / "bench.md").read_text(encoding="utf-8")
    assert "| model | grid | dtype | implementation |" in markdown
    assert markdown.count("| depillis2006 |") >= 4
    summary = (out / "summary.txt").read_text(encoding="utf-8")
    assert summary == report.summary() + "\n"
    assert "numpy-expr" in summary


def test_compiled_rows_and_targets_on_a_small_model(tmp_path) -> None:
    """The compiled backend's rows (every thread, one thread) and the IMEX row, on the
    four-species model (a cheap compile); its targets, named for de Pillis at 128^3, SKIP
    with what was measured."""
    pytest.importorskip("numba")
    report = run_benchmark(small=True, sizes=[TINY], repeats=2, models=["four-species"], end_to_end=False,
                           largest_grid=False, kernels=False)
    # the compiled step against the NumPy reference: measured at most 1.1e-7 (float32) and
    # 2.4e-16 (float64), about 1 eps; allowed 4 eps (libm rounding of exp and pow)
    for dtype in ("float32", "float64"):
        tolerance = 4 * np.finfo(dtype).eps
        for impl in ("compiled", "compiled-1t"):
            row = report.find("four-species", TINY, dtype, impl)
            assert row is not None and row.max_rel_diff <= tolerance and row.over_numpy > 0, row
            assert row.device.startswith("CPU") and "thread" in row.device
    imex = report.find("four-species", TINY, "float32", "compiled-imex1")
    assert imex is not None and imex.slower_than_solver > 0 and "dt =" in imex.note
    lines = {t.name: t for t in report.targets if "compiled" in t.name}
    assert len(lines) == 3 and all(t.status == "SKIP" and "informative: four-species" in t.detail
                                   for t in lines.values())


def test_every_issue_target_has_a_line(small_report) -> None:
    report, _ = small_report
    names = " | ".join(t.name for t in report.targets)
    for phrase in ("85% of copy bandwidth", "25x plain CuPy", "3x jax.jit", "outside stepping kernels",
                   "8x the NumPy reference, one thread", "25% of the host copy bandwidth",
                   "IMEX order-1 step <= 1.5x the explicit step", "1024^3"):
        assert phrase in names
    gpu_lines = [t for t in report.targets if "fused step" in t.name]
    assert gpu_lines and all(t.status == "SKIP" for t in gpu_lines)  # no GPU in small mode


def test_static_kernel_lines_are_judged_without_a_gpu(small_report) -> None:
    """The static GPU kernel report runs in small mode too (NVRTC + cuobjdump, no GPU)."""
    from solver.bench.kernel_report import target_name, tools_missing

    report, out = small_report
    line = next(t for t in report.targets if t.name == target_name())
    if tools_missing() is not None:
        assert line.status == "SKIP" and "gpu" in line.detail
        return
    assert line.status in ("PASS", "FAIL") and line.value > 0
    assert "| explicit step |" in report.summary() and "## GPU kernels, static" in (out / "bench.md").read_text()
    data = json.loads((out / "bench.json").read_text(encoding="utf-8"))
    assert data["kernels_static"]["config"] == "chemoimmuno-256"


def test_end_to_end_row_counts_steps_and_snapshots(small_report) -> None:
    report, _ = small_report
    (e2e,) = report.end_to_end
    assert e2e.steps == 200 and e2e.snapshots == 3 and e2e.snapshot_every_steps == 100
    assert 0.0 <= e2e.outside_share <= 1.0
    assert e2e.in_kernels_s == pytest.approx(e2e.steps * e2e.step_ms / 1e3)


def test_largest_grid_section(small_report) -> None:
    report, _ = small_report
    g = report.largest_grid
    assert g["persistent_bytes_per_cell"] == 60  # (2 x 7 species + 1 map) x 4 bytes
    assert g["bytes_per_cell_device"] >= 60
    n = g["largest_cube_80GB"]
    assert n**3 * g["bytes_per_cell_device"] <= 80e9 < (n + 1) ** 3 * g["bytes_per_cell_device"]
    assert g["host_setup_bytes_per_cell"] > 0


def test_largest_cube_arithmetic() -> None:
    assert largest_cube(52, 80e9) == 1154  # 1154^3 x 52 = 79.9e9 <= 80e9 < 1155^3 x 52
    assert largest_cube(1, 1000) == 10 and largest_cube(1, 999) == 9
    with pytest.raises(ValueError):
        largest_cube(0, 1e9)
    p = prepare_case(DEPILLIS, 4, "float64")
    assert persistent_bytes_per_cell(p.model, "float64") == 15 * 8


# (boundary of u, boundary of its chemotaxis signal v): chemotaxis needs both periodic
# along the same axes; a no-flux u under a fixed-value v is where the zero-flux face matters.
BOUNDARIES = {
    "no-flux": ("no-flux", "no-flux"),
    "value": ({"value": 0.7}, {"value": 0.7}),
    "periodic": ("periodic", "periodic"),
    "no-flux-in-value-signal": ("no-flux", {"value": 1.9}),
    "mixed": ({"x": {"low": {"value": 0.3}, "high": "no-flux"}, "y": "periodic",
               "z": {"low": "no-flux", "high": {"value": 1.5}}},
              {"x": {"low": "no-flux", "high": {"value": 0.2}}, "y": "periodic"}),
    "permeable": ({"x": {"low": {"permeable": {"permeability": 3.0, "value": 0.4}}, "high": {"value": 0.3}},
                   "y": "periodic", "z": {"high": {"permeable": {"permeability": 0.25, "value": 1.2}}}},
                  {"x": {"low": {"permeable": {"permeability": 0.5, "value": 1.9}}}, "y": "periodic"}),
}


@pytest.mark.parametrize("reactions", ["explicit", "linearly-implicit"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", list(BOUNDARIES))
def test_array_expression_step_matches_numpy_fallback(kind, dtype, reactions) -> None:
    """The peer's whole-array step equals the solver's, every boundary kind and chemotaxis."""
    bc_u, bc_v = BOUNDARIES[kind]
    config = make_config(
        {
            "u": {"diffusion": 0.8, "reaction": "r*u*(1 - u)*w - u*v/(1 + u**2) + 0.01*x*exp(-t)",
                  "initial": "0.5 + 0.4*sin(0.7*x + 0.3*y)*cos(0.5*z)", "boundary": bc_u,
                  "chemotaxis": {"signal": "v", "sensitivity": 0.4}},
            "v": {"diffusion": 0.3, "reaction": "0.2*u - 0.1*v + min(u, v)*0.05",
                  "initial": "0.6 + 0.3*cos(0.4*x - 0.8*z)", "boundary": bc_v},
        },
        shape=(9, 7, 11), spacing=(1.0, 0.9, 1.1), parameters={"r": 1.0}, maps={"w": "1 + 0.5*sin(0.3*y)"},
        precision=dtype, reactions=reactions,
    )
    sim = Simulation(config)
    fallback = NumpyBackend().make_explicit_stepper(sim.model, sim.grid, sim.dtype, sim.plan.integrator.implicit_sinks)
    peer = ArrayExpressionStep(sim.model, sim.grid, sim.dtype, sim.plan.integrator.implicit_sinks, np)
    u, maps, dt = sim.u0.copy(), sim.maps, sim.plan.dt
    a, b = np.empty_like(u), np.empty_like(u)
    for step in range(5):
        fallback.step(u, a, maps, step * dt, dt)
        peer.step(u, b, maps, step * dt, dt)
        scale = np.max(np.abs(a), axis=(1, 2, 3), keepdims=True)
        assert np.max(np.abs(b - a) / scale) <= 8 * np.finfo(sim.dtype).eps, (step, kind)
        u = a.copy()
    assert not np.allclose(u, sim.u0)  # the step did something


def test_bench_script_small_mode_runs_without_cupy_or_jax(tmp_path) -> None:
    """`python benchmarks/bench.py --small` from a checkout: table on stdout, files under --out."""
    probe = (
        "import runpy, sys; sys.argv = ['bench.py', '--small', '--sizes', '8', '--repeats', '1', "
        f"'--no-end-to-end', '--no-largest-grid', '--no-kernels', '--no-compiled', '-q', '--out', {str(tmp_path)!r}]; "
        "code = 0\n"
        "try:\n    runpy.run_path('benchmarks/bench.py', run_name='__main__')\n"
        "except SystemExit as e:\n    code = e.code\n"
        "assert 'cupy' not in sys.modules and 'jax' not in sys.modules, 'small mode imported a GPU library'\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert "numpy-reference" in result.stdout and "SKIP:" in result.stdout
    assert {p.name for p in tmp_path.iterdir()} == {"bench.json", "bench.md", "summary.txt"}


def test_bench_script_full_mode_without_gpu_says_so(tmp_path) -> None:
    """Full mode on a machine without a usable GPU exits 2 with a message, writes nothing."""
    from solver.errors import BackendError

    try:
        from solver.backends.cupy_backend import import_cupy

        import_cupy()
        pytest.skip("a GPU is present: full mode would run")
    except BackendError:
        pass
    result = subprocess.run([sys.executable, "benchmarks/bench.py", "--out", str(tmp_path / "o"), "-q"], cwd=REPO,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert "--small" in result.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.gpu
def test_gpu_full_mode_peers_compute_the_fused_step(gpu) -> None:
    """The full-mode path on a 32^3 grid: every peer agrees with the fused kernel."""
    report = run_benchmark(sizes=[32], end_to_end=False, largest_grid=False, repeats=3)
    assert report.copy_bandwidth["gpu"]["reference"] > 0
    for model in MODEL_CASES:
        fused = report.find(model, 32, "float32", "fused")
        assert fused is not None and fused.ms_per_step > 0 and fused.device.startswith("GPU")
        cupy_row = report.find(model, 32, "float32", "cupy-expr")
        assert cupy_row.note == "" and cupy_row.max_rel_diff < 1e-4, cupy_row
        jax_row = report.find(model, 32, "float32", "jax-jit")
        assert jax_row.note.startswith("skipped") or jax_row.max_rel_diff < 1e-4, jax_row
        cpu_row = report.find(model, 32, "float32", "numpy-expr")
        assert cpu_row is not None and cpu_row.max_rel_diff < 1e-5
    assert all(math.isfinite(r.ms_per_step) for r in report.steps if r.ms_per_step is not None)


def test_imex_cycle_script_runs_on_the_cpu(tmp_path, capsys) -> None:
    """benchmarks/imex_cycle.py at a tiny size (the 256^3 target needs a GPU): the run
    end to end, then the same run checked against its float64 reference."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("imex_cycle", REPO / "benchmarks" / "imex_cycle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    common = ["--n", "8", "--spacing", "300", "--backend", "numpy", "--steps", "2", "--end", "3",
              "--out", str(tmp_path)]
    assert module.main(common) == 0
    (result,) = json.loads((tmp_path / "imex_cycle.json").read_text(encoding="utf-8")).values()
    assert result["implicit"] == ["N", "L", "K", "M", "I", "A"] and result["order"] == 2 and result["rtol"] == 0.05
    assert result["steps"] > 0 and result["explicit_steps"] > 10 * result["steps"]
    assert module.main([*common, "--reference"]) == 0
    (checked,) = json.loads((tmp_path / "imex_cycle.json").read_text(encoding="utf-8")).values()
    # the reference is 20x tighter in rtol: more steps, and the defaults' fields within the
    # stated tolerance of it (FIELD_TOLERANCE 8 %, BURDEN_TOLERANCE 2.5 %; measured at this
    # size, 3 days: largest K 1.7 %, L 0.71 %, burden 0.12 %; over 8 days L 4.9 %, burden 0.024 %)
    assert checked["reference_steps"] > 1.5 * checked["steps"]
    errors = checked["errors"]
    assert checked["within_tolerance"] and max(errors.values()) <= FIELD_TOLERANCE, errors
    assert errors["burden"] < 2e-3 and max(errors.values()) < 0.03, errors  # as measured, a margin above
    assert checked["steps"] == result["steps"]  # the same run, stepped beside the reference
    out = capsys.readouterr().out
    assert "one imex step = " in out and "(target is for 256^3 x 10 um, 21 days, GPU)" in out
    assert "accuracy: burden" in out and ": PASS" in out
