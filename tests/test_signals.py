"""SIGTERM / SIGINT: finish the step, write a checkpoint, exit 143 / 130, say how to resume.

The run is `tumorsim run` in a subprocess (the model of tests/test_checkpoint.py);
the signal is sent once the progress lines show it stepping. The printed resume
command is then run as printed, and the resumed run must equal the uninterrupted
one bit for bit. Also: a second signal aborts at once, and the progress display.
"""

from __future__ import annotations

import io
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from test_checkpoint import assert_same_run, small_quickstart

from solver.config import parse_config
from solver.errors import RunInterrupted
from solver.io.checkpoint import list_checkpoints, read_checkpoint
from solver.run import Simulation, StopRequest, stop_on_signals


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "run"
    Simulation(parse_config(small_quickstart()), out_dir=out).run()
    return out


def start_run(cwd: Path) -> subprocess.Popen[str]:
    (cwd / "c.yaml").write_text(
        yaml.safe_dump(small_quickstart(), sort_keys=False), encoding="utf-8"
    )
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "solver",
            "run",
            "c.yaml",
            "--out",
            "out",
            "--progress-every",
            "0.02",
        ],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until_stepping(process: subprocess.Popen[str]) -> list[str]:
    """stderr lines up to the first progress line (the run is stepping, handlers are set)."""
    assert process.stderr is not None
    lines = []
    for line in process.stderr:
        lines.append(line.rstrip("\n"))
        if line.startswith("tumorsim: ") and "steps/s" in line:
            return lines
    raise AssertionError(f"the run ended before stepping: {lines}")


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_writes_a_checkpoint_and_the_printed_command_resumes(
    tmp_path: Path, reference: Path, signum: int, status: int
) -> None:
    process = start_run(tmp_path)
    progress = wait_until_stepping(process)
    assert "ETA" in progress[-1] and "t = " in progress[-1]
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == status, err
    lines = [*progress, *err.splitlines()]
    assert "Traceback" not in out + err
    name = signal.Signals(signum).name
    stopped, resume = lines[-2], lines[-1]
    assert stopped.startswith(f"tumorsim: stopped by {name} at t = ")
    found = list_checkpoints(tmp_path / "out" / "checkpoints")
    assert found and stopped.endswith(
        f"; checkpoint {Path('out') / 'checkpoints' / found[-1].name}"
    )
    checkpoint = read_checkpoint(found[-1])
    assert checkpoint.reason == name and f"(step {checkpoint.step})" in stopped

    prefix = "tumorsim: resume with: "
    assert resume.startswith(prefix)
    command = shlex.split(resume[len(prefix) :])
    assert command == [
        "tumorsim",
        "run",
        "c.yaml",
        "--out",
        "out",
        "--resume",
        str(Path("out/checkpoints") / found[-1].name),
    ]
    again = subprocess.run(
        [sys.executable, "-m", "solver", *command[1:], "--progress-every", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert f"after resuming from {command[-1]}" in again.stdout
    assert_same_run(tmp_path / "out", reference)


def test_a_second_signal_aborts_at_once_and_handlers_are_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    stop = StopRequest()
    with stop_on_signals(stop):
        signal.raise_signal(signal.SIGTERM)
        assert stop and stop.signum == signal.SIGTERM
        with pytest.raises(RunInterrupted, match="aborted by a second SIGTERM") as info:
            signal.raise_signal(signal.SIGTERM)
        assert info.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before


def test_stop_request_before_the_end_names_the_checkpoint(tmp_path: Path) -> None:
    """A stop requested by the caller (no signal): the run stops after that very step."""
    stop = StopRequest()

    def on_step(fields: Any) -> None:
        if fields.step == 5:
            stop.request()

    with pytest.raises(RunInterrupted) as info:
        Simulation(parse_config(small_quickstart()), out_dir=tmp_path / "out").run(
            stop=stop, on_step=on_step
        )
    assert read_checkpoint(info.value.checkpoint).step == 5
    assert str(info.value).startswith("stopped by a stop request at t = ")


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_and_lines_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from solver import cli

    sim = SimpleNamespace(
        plan=SimpleNamespace(estimated_steps=100),
        config=SimpleNamespace(time=SimpleNamespace(end=10.0, unit="day")),
        model=SimpleNamespace(time_unit="day"),
    )
    clock = iter([0.0, 1.0, 2.0, 3.0])
    monkeypatch.setattr(cli.time, "perf_counter", lambda: next(clock))
    terminal, plain = FakeTerminal(), io.StringIO()
    bar, lines = (
        cli.Progress(sim, every=0.5, stream=terminal),
        cli.Progress(sim, every=0.5, stream=plain),
    )
    bar(SimpleNamespace(step=1, t=0.1))  # starts the clock
    bar(SimpleNamespace(step=41, t=4.0))  # 40 steps in 1 s
    bar.close()
    assert terminal.getvalue() == (
        "\r 41% [#########               ] t = 4 / 10 day, step 41 of 100, 40 steps/s, ETA 1.5 s\x1b[K\n"
    )
    lines(SimpleNamespace(step=1, t=0.1))
    lines(SimpleNamespace(step=51, t=5.0))
    assert (
        plain.getvalue()
        == "tumorsim: 51%, t = 5 / 10 day, step 51 of 100, 50 steps/s, ETA 0.98 s\n"
    )
