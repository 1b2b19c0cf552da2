"""Planning a GPU run on a machine without one: `run --dry-run --backend gpu --device NAME`
(or `--device-memory SIZE`), no CUDA call, the memory a GPU run needs against the stated
memory; and the exact stability-bound evaluation on distinct rows that keeps the plan of a
large grid cheap (solver/integrators/stability.py GridValues)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from _support import make_config

from solver.errors import ConfigError
from solver.grid import Grid
from solver.integrators.stability import GridValues
from solver.model import build_model
from solver.run.devices import DEVICE_MEMORY, parse_memory, stated_device

REPO = Path(__file__).resolve().parents[1]


def test_memory_sizes_parse_with_their_units() -> None:
    assert parse_memory("80GB") == 80 * 10**9
    assert parse_memory("80 GiB") == 80 * 2**30
    assert parse_memory("81920MiB") == 81920 * 2**20
    assert parse_memory("0.5tb") == 5 * 10**11
    assert parse_memory("512MB") == 512 * 10**6
    for bad, says in (("80", "not a memory size"), ("eighty GB", "not a memory size"),
                      ("80XB", "unknown unit 'XB'"), ("0GB", "at least 1 byte"), ("", "not a memory size")):
        with pytest.raises(ConfigError, match=says) as err:
            parse_memory(bad)
        assert "units: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB" in str(err.value)


def test_named_devices() -> None:
    assert stated_device("H100", None).memory == 80 * 10**9 == DEVICE_MEMORY["H100"]
    assert stated_device("h200", None).memory == 141 * 10**9
    assert stated_device("A100-40GB", None).memory == 40 * 10**9
    assert stated_device("H100", "40GiB").memory == 40 * 2**30  # a size wins over the name's
    with pytest.raises(ConfigError, match="known: A100-40GB"):
        stated_device("V100", None)


def test_grid_values_on_distinct_rows_are_those_of_the_whole_grid() -> None:
    """Two varying fields and a varying map: the maximum over the distinct rows is the
    maximum over every cell, bit for bit."""
    cfg = make_config({"u": {"diffusion": 1.0, "reaction": "u*v*w - u**2 + v*x"},
                       "v": {"diffusion": 1.0, "reaction": "-v"}},
                      shape=(12, 10, 8), maps={"w": "1.0"})
    model = build_model(cfg)
    grid = Grid((12, 10, 8), (1.0, 1.0, 1.0))
    rng = np.random.default_rng(3)
    u0 = rng.choice([0.0, 0.5, 2.0, 7.0], size=(2, 12, 10, 8))  # few distinct values, many cells
    maps = rng.choice([0.0, 1.0, 3.0], size=(1, 12, 10, 8))
    values = GridValues(model, grid, u0, maps)
    w, x = sp.Symbol("w", real=True), sp.Symbol("x", real=True)
    u, v = model.species[0].symbol, model.species[1].symbol
    for expr in (u * v * w - u**2, u * v * w + v * x, sp.exp(-u) * w + v):
        fn = sp.lambdify(sorted(expr.free_symbols, key=str), expr, modules="numpy")
        full = {"u": u0[0], "v": u0[1], "w": maps[0], "x": grid.coordinates()["x"]}
        expected = float(np.max(np.abs(fn(*(full[str(s)] for s in sorted(expr.free_symbols, key=str))))))
        assert values.max_abs(expr) == expected
    rows = values._rows((u, v))
    assert rows.shape[1] <= 1 + 3 + 3 + 16  # the background, u or v alone off it, both: not 960 cells
    assert set(map(tuple, rows.T)) == set(zip(u0[0].reshape(-1), u0[1].reshape(-1)))  # the grid's rows exactly


def _tumorsim(*args: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess where CuPy cannot be imported: planning must not touch CUDA."""
    block = cwd / "no_cupy"
    for name in ("cupy", "cupy_backends"):
        (block / name).mkdir(parents=True, exist_ok=True)
        (block / name / "__init__.py").write_text("raise ImportError('CuPy is blocked in this test')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(block), str(REPO)])}
    return subprocess.run([sys.executable, "-m", "solver", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


BIG = """name: big
backend: gpu
grid: {shape: [192, 192, 192], spacing: 1.0}
time: {end: 1.0}
model:
  parameters: {D: 1.0}
  species:
    u: {diffusion: D, reaction: "-u", initial: 1.0}
    v: {diffusion: D, reaction: "u - v", initial: 0.0}
"""


def test_a_large_grid_is_planned_for_a_stated_gpu_and_refused_where_it_does_not_fit(tmp_path) -> None:
    (tmp_path / "big.yaml").write_text(BIG)
    ok = _tumorsim("run", "big.yaml", "--dry-run", "--backend", "gpu", "--device", "H100", cwd=tmp_path, timeout=300)
    assert ok.returncode == 0, ok.stderr
    out = ok.stdout
    assert "grid (192, 192, 192) = 7077888 cells" in out
    # memory of a GPU run: fields 2 species x 2 buffers x 4 bytes, one map of 4 bytes, the
    # diagnostics' float64 temporaries (24 bytes) and stepping sets, against 80 GB
    assert "memory on H100, stated: 80 GB (no GPU queried) (cupy):" in out
    assert "fields 108.0 MiB (double-buffered)" in out
    assert "GPU memory stated: 74.5 GiB; the run needs" in out
    assert "steps to t = 1" in out and "dt = " in out
    assert not (tmp_path / "outputs").exists()
    no = _tumorsim("run", "big.yaml", "--dry-run", "--backend", "gpu", "--device-memory", "200MB", cwd=tmp_path,
                   timeout=300)
    assert no.returncode == 2, no.stderr
    assert no.stderr.count("\n") == 1 and "Traceback" not in no.stderr
    assert no.stderr.startswith("tumorsim: error: grid (192, 192, 192) with 2 species in float32 needs about ")
    assert "only 190.7 MiB free on a stated GPU: 0.2 GB" in no.stderr and "--device/--device-memory" in no.stderr


def test_no_gpu_and_none_stated_is_one_line_saying_how_to_state_one(tmp_path) -> None:
    (tmp_path / "big.yaml").write_text(BIG)
    proc = _tumorsim("run", "big.yaml", "--dry-run", "--backend", "gpu", cwd=tmp_path, timeout=120)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "--device NAME (A100-40GB, A100-80GB, H100, H200, L40S) or --device-memory SIZE" in proc.stderr
    for args, says in (((), "plan a GPU run with --dry-run"),
                       (("--dry-run", "--backend", "cpu"), "the backend here is cpu"),
                       (("--dry-run",), "--device-memory '80' is not a memory size")):
        extra = ("--device-memory", "80") if args == ("--dry-run",) else ("--device", "H100")
        proc = _tumorsim("run", "big.yaml", *args, *extra, cwd=tmp_path, timeout=120)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert says in proc.stderr
