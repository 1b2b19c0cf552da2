"""Treatment arms of the shipped configs, and bad schedules given on the command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from solver.config import load_config, parse_config
from solver.diagnostics import DiagnosticsEvaluator
from solver.package_data import data_dir
from solver.run import Simulation

ARMS = ("chemo_only", "immuno_only", "chemoimmuno")


def final_tumour_burden(name: str) -> float:
    """Final tumour burden of a shipped arm, on a coarse 8^3 grid (same treatment, model, time)."""
    data = load_config(data_dir("configs") / f"{name}.yaml").model_dump(mode="json")
    data["grid"].update(shape=[8, 8, 8], spacing=300.0)
    data["backend"] = "cpu"
    sim = Simulation(parse_config(data))
    state = sim.start()
    end = sim.config.time.end
    sim.advance(state, end)
    evaluator = DiagnosticsEvaluator(sim.model, sim.grid, state.backend, sim.dtype)
    return evaluator.evaluate(state.fields.u, state.fields.maps, end, state.systemic.values(end))["tumour_burden"]


def test_combination_beats_each_monotherapy() -> None:
    burden = {arm: final_tumour_burden(arm) for arm in ARMS}
    assert burden["chemoimmuno"] < burden["chemo_only"]
    assert burden["chemoimmuno"] < burden["immuno_only"]


BAD_SCHEDULES = [
    ("{agent: chemo, kind: bolus, dose: -1.0}", "dose must be > 0"),
    ("{agent: chemo, kind: bolus, dose: 1.0, start: 5.0}", "end time"),
    ("{agent: aspirin, kind: bolus, dose: 1.0}", "not an agent of the model"),
    ("{agent: chemo, kind: infusion, dose_rate: 1.0, duration: 2.0, start: 0.0, every: 1.0, count: 2}", "treatment[0]"),
    ("{agent: chemo, kind: sip, dose: 1.0}", "treatment[0].kind: input should be 'bolus' or 'infusion'"),
]


@pytest.mark.parametrize("entry, expected", BAD_SCHEDULES)
def test_bad_schedule_is_one_line_error(tmp_path, entry: str, expected: str) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "name: bad\ngrid: {shape: [2, 2, 2], spacing: 100.0}\ntime: {end: 3.0}\n"
        f"model: depillis2006\ntreatment:\n  - {entry}\n"
    )
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "solver", "run", str(cfg), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tumorsim: error:"), proc.stderr
    assert expected in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not out.exists()
