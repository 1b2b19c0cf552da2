"""Lines the command line prints: `validate` says which integrator and why, and log
warnings are `tumorsim: warning: ...` lines like the error lines (no timestamp)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = """name: lines
grid: {shape: [8, 4, 4], spacing: 1.0}
time: {end: 1.0%s}
model:
  species:
    u: {diffusion: 1.0, reaction: "-u", initial: 1.0}
    v: {diffusion: 0.01, reaction: "u - v"}
"""


def tumorsim(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "solver", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_validate_says_why_it_chose_the_integrator_and_warns_in_one_plain_line(tmp_path: Path) -> None:
    (tmp_path / "auto.yaml").write_text(CONFIG % "", encoding="utf-8")
    (tmp_path / "explicit.yaml").write_text(CONFIG % ", integrator: explicit", encoding="utf-8")
    auto = tumorsim("validate", "auto.yaml", cwd=tmp_path)
    assert auto.returncode == 0, auto.stderr
    why = [line for line in auto.stdout.splitlines() if line.startswith("  why ")]
    assert len(why) == 1, auto.stdout
    assert why[0].startswith("  why imex: integrator auto: the diffusion of u (D=1, h=1) bounds an explicit dt at ")
    assert "with the diffusion of u" in why[0]
    # the species without `initial` is a warning: one line, as the error lines are
    assert auto.stderr == ("tumorsim: warning: species v has no initial: starts at 0 "
                           "(initial: 0 says so and silences this)\n")
    explicit = tumorsim("validate", "explicit.yaml", cwd=tmp_path)
    assert "  why explicit: as configured\n" in explicit.stdout
    assert "  about " in explicit.stdout  # equal steps: an estimate; error control: "at least"
    assert "  at least " in auto.stdout
