"""Checkpoints and bit-exact restart (solver/io/checkpoint.py, Simulation.run(resume=...)).

The model is the built-in quickstart (de Pillis 2006, six species, systemic scalars,
an infusion that stops between two records and a bolus between two records) shrunk
to 8^3 cells and one simulated day: about 800 steps, half a second per run.

- Stopped after any step N (mid-interval, exactly at a dose time, at a record),
  then resumed: every later checkpoint (fields, systemic state, AUC accumulators) and
  the whole of run.h5 equal those of the uninterrupted run, bit for bit.
- A run killed with SIGKILL while it writes a checkpoint leaves the previous one
  readable, and resuming from it gives the uninterrupted answer.
- Killed at random moments, again and again, and resumed each time: same answer.
- A full disk while writing a checkpoint: one clear error, the previous one intact.
- Resuming with other physics is refused, naming the keys; output keys may change.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import yaml

from solver.config import builtin_config_path, load_config, parse_config
from solver.errors import CheckpointError, RunInterrupted, SimulationError
from solver.io import checkpoint as checkpoint_io
from solver.io.checkpoint import list_checkpoints, read_checkpoint
from solver.run import Simulation, StopRequest

END = 1.0
CHEMO_STOP = 0.55  # between the records at 0.5 and 0.6
IL2_BOLUS = 0.75  # between the records at 0.7 and 0.8


def small_quickstart(backend: str = "numpy", integrator: str = "auto", **output: Any) -> dict[str, Any]:
    """configs/quickstart.yaml on 8^3 cells of 300 um, to t = 1 day, checkpoint at every record.

    integrator auto: imex, order 2 with error control (the default; steps of varying size);
    equal-steps: imex with equal steps (no error control); imex-controlled: imex with the
    max_change guard; explicit: equal steps. The imex bound at 8^3 cells of 300 um is about
    a day, so equal-steps and imex-controlled take dt 0.04: three steps per record interval,
    and stops can fall inside one.
    """
    data = load_config(builtin_config_path("quickstart")).model_dump(mode="json")
    data["backend"] = backend
    if integrator == "imex-controlled":
        data["time"].update(integrator="imex", max_change=0.2, order=1, dt=0.04)
    elif integrator == "equal-steps":
        data["time"].update(integrator="imex", rtol=None, dt=0.04)
    else:
        data["time"]["integrator"] = integrator
    data["grid"].update(shape=[8, 8, 8], spacing=300.0)
    data["time"]["end"] = END
    data["model"]["species"]["T"]["initial"]["tumour"]["smooth"] = 300.0
    data["output"].update(
        snapshot_every=0.5,
        series_every=0.1,
        pictures=False,
        checkpoint={"every_steps": 1, "keep": 100},
        **output,
    )
    data["treatment"] = [
        {
            "agent": "chemo",
            "kind": "infusion",
            "dose_rate": 2.0,
            "duration": CHEMO_STOP,
            "start": 0.0,
        },
        {"agent": "il2", "kind": "bolus", "dose": 1.0e7, "start": IL2_BOLUS},
    ]
    return data


def h5_contents(path: Path) -> dict[str, Any]:
    """Every dataset (as an array) and root attribute of an HDF5 file, by path."""
    out: dict[str, Any] = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: (
                out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
            )
        )
        out.update({f"@{k}": v for k, v in f.attrs.items() if k != "resumed_json"})
    return out


def assert_same_h5(a: Path, b: Path) -> None:
    ca, cb = h5_contents(a), h5_contents(b)
    assert sorted(ca) == sorted(cb)
    for key in ca:
        if key.endswith("_json"):  # the same config read from YAML may order its keys otherwise
            assert json.loads(ca[key]) == json.loads(cb[key]), key
            continue
        va, vb = np.asarray(ca[key]), np.asarray(cb[key])
        if va.dtype.kind in "fc":
            assert np.array_equal(va, vb, equal_nan=True), key
        else:
            assert np.array_equal(va, vb), key


def assert_same_state(a: Path, b: Path) -> None:
    """Two checkpoints hold the same state, bit for bit."""
    x, y = read_checkpoint(a), read_checkpoint(b)
    assert (x.t, x.step, x.next_event, x.n_series, x.n_snapshots) == (
        y.t,
        y.step,
        y.next_event,
        y.n_series,
        y.n_snapshots,
    )
    assert x.fields.dtype == y.fields.dtype and np.array_equal(x.fields, y.fields)
    assert np.array_equal(x.systemic["y"], y.systemic["y"])
    assert x.systemic["pk"].keys() == y.systemic["pk"].keys()
    for agent in x.systemic["pk"]:
        assert np.array_equal(x.systemic["pk"][agent], y.systemic["pk"][agent])
    assert x.diagnostics == y.diagnostics
    assert x.dt_next == y.dt_next  # the step-size control's next step
    assert (x.guard_peak is None) == (y.guard_peak is None)  # and the blow-up guard's scale
    assert x.guard_peak is None or np.array_equal(x.guard_peak, y.guard_peak)


def assert_same_run(run: Path, reference: Path) -> None:
    """Same run.h5, and every checkpoint the two folders share is the same state."""
    assert_same_h5(run / "run.h5", reference / "run.h5")
    ours = {p.name: p for p in list_checkpoints(run / "checkpoints")}
    theirs = {p.name: p for p in list_checkpoints(reference / "checkpoints")}
    shared = sorted(set(ours) & set(theirs))
    assert shared, "no checkpoint to compare"
    for name in shared:
        assert_same_state(ours[name], theirs[name])
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory):
    """integrator -> the uninterrupted run (checkpoints at every record kept) and its summary."""
    runs: dict[str, tuple[Path, Any]] = {}

    def get(integrator: str = "auto") -> tuple[Path, Any]:
        if integrator not in runs:
            out = tmp_path_factory.mktemp("reference") / "run"
            runs[integrator] = out, Simulation(parse_config(small_quickstart(integrator=integrator)), out_dir=out).run()
        return runs[integrator]

    return get


@pytest.fixture(scope="module")
def reference(references) -> tuple[Path, Any]:
    """The uninterrupted run of the default integrator (auto: imex for the quickstart)."""
    return references("auto")


def stopped_at(out: Path, when, backend: str = "numpy", integrator: str = "auto") -> Path:
    """Run into `out`, requesting a stop after the first step for which when(fields) is true."""
    stop = StopRequest()

    def on_step(fields) -> None:
        if when(fields):
            stop.request(signal.SIGTERM)

    sim = Simulation(parse_config(small_quickstart(backend, integrator)), out_dir=out)
    with pytest.raises(RunInterrupted) as info:
        sim.run(stop=stop, on_step=on_step)
    assert info.value.signum == signal.SIGTERM
    return Path(info.value.checkpoint)


@pytest.mark.parametrize("integrator", ["auto", "equal-steps", "imex-controlled"])
@pytest.mark.parametrize(
    "where",
    ["mid-interval", "at the infusion stop", "at the bolus", "at a record"],
)
def test_stop_and_resume_is_bit_identical(tmp_path: Path, references, where: str, integrator: str) -> None:
    ref_dir, ref_summary = references(integrator)
    total = ref_summary.steps
    conditions = {
        # the first step past half way that ends between records and doses
        "mid-interval": lambda f: (f.step > total // 2 and abs(f.t * 10 - round(f.t * 10)) > 1e-6
                                   and f.t not in (CHEMO_STOP, IL2_BOLUS)),
        "at the infusion stop": lambda f: f.t >= CHEMO_STOP,
        "at the bolus": lambda f: f.t >= IL2_BOLUS,
        "at a record": lambda f: f.t >= 0.3,
    }
    out = tmp_path / "run"
    path = stopped_at(out, conditions[where], integrator=integrator)
    ck = read_checkpoint(path)
    assert ck.reason == "SIGTERM" and 0 < ck.step < total
    if where == "mid-interval" and integrator == "equal-steps":  # equal steps: the interval's split
        assert ck.segment is not None and 0 < ck.segment[3] < ck.segment[2]
    if where == "mid-interval" and integrator in ("auto", "imex-controlled"):  # the next step's size
        assert ck.segment is None and ck.dt_next is not None and ck.t not in (CHEMO_STOP, IL2_BOLUS)
    if where == "at the infusion stop":
        assert ck.t == CHEMO_STOP and ck.segment is None
    if where == "at the bolus":  # the bolus is in the checkpoint and must not be given twice
        assert ck.t == IL2_BOLUS and ck.segment is None
        assert ck.systemic["pk"]["il2"][0] > 0
    if where == "at a record":
        assert ck.segment is None and ck.t == pytest.approx(0.3, abs=1e-12)

    summary = Simulation(parse_config(small_quickstart(integrator=integrator)), out_dir=out).run(resume="latest")
    assert summary.resumed_from == path
    assert summary.steps == total and summary.steps_this_session == total - ck.step
    assert summary.final_diagnostics == ref_summary.final_diagnostics  # systemic scalars, AUCs
    assert summary.final_totals == ref_summary.final_totals
    assert_same_run(out, ref_dir)


def test_resume_from_an_older_checkpoint_drops_the_later_records(
    tmp_path: Path, reference: tuple[Path, Any]
) -> None:
    ref_dir, _ = reference
    out = tmp_path / "run"
    shutil.copytree(ref_dir, out)
    older = list_checkpoints(out / "checkpoints")[3]
    with h5py.File(out / "run.h5") as f:
        assert f["timeseries/time"].shape[0] == 11  # the finished run
    summary = Simulation(parse_config(small_quickstart()), out_dir=out).run(resume=older)
    assert summary.resumed_from == older
    assert_same_run(out, ref_dir)
    with h5py.File(out / "run.h5") as f:
        notes = json.loads(f.attrs["resumed_json"])
    assert [n["step"] for n in notes] == [read_checkpoint(older).step]


def test_checkpoints_are_kept_as_asked_and_taken_at_records(tmp_path: Path) -> None:
    data = small_quickstart()
    data["output"]["checkpoint"] = {"every_time": 0.25, "keep": 2}
    out = tmp_path / "run"
    Simulation(parse_config(data), out_dir=out).run()
    kept = [read_checkpoint(p) for p in list_checkpoints(out / "checkpoints")]
    assert [c.t for c in kept] == pytest.approx(
        [0.5, 0.8]
    )  # 0.3, 0.5, 0.8 written; the last 2 kept
    assert all(c.segment is None and c.reason == "periodic" for c in kept)
    # a checkpoint counts exactly the records written before it
    assert [(c.n_series, c.n_snapshots) for c in kept] == [(6, 2), (9, 2)]


def test_resume_refuses_other_physics_and_names_the_keys(
    tmp_path: Path, reference: tuple[Path, Any]
) -> None:
    ref_dir, _ = reference
    out = tmp_path / "run"
    shutil.copytree(ref_dir, out)
    before = h5_contents(out / "run.h5")
    data = small_quickstart()
    data["model"]["parameters"]["a"] = 0.5
    data["time"]["safety"] = 0.8
    with pytest.raises(CheckpointError) as info:
        Simulation(parse_config(data), out_dir=out).run(resume="latest")
    message = str(info.value)
    assert "model.parameters.a (checkpoint: " in message and "config: 0.5)" in message
    assert "time.safety (checkpoint: 0.9, config: 0.8)" in message and "\n" not in message
    assert_same_h5(out / "run.h5", ref_dir / "run.h5")
    assert h5_contents(out / "run.h5").keys() == before.keys()


def test_resume_accepts_output_keys_that_do_not_change_the_answer(
    tmp_path: Path, reference: tuple[Path, Any]
) -> None:
    ref_dir, _ = reference
    out = tmp_path / "run"
    shutil.copytree(ref_dir, out)
    data = small_quickstart(check_every=7, compression="lzf")
    data["name"] = "renamed"
    data["output"]["checkpoint"] = {"every_steps": 1, "keep": 100}
    Simulation(parse_config(data), out_dir=out).run(resume=list_checkpoints(out / "checkpoints")[4])
    assert_same_run(out, ref_dir)


def test_blow_up_names_the_last_good_checkpoint(tmp_path: Path) -> None:
    """du/dt = u^2 from u = 1 reaches infinity at t = 1 (forward Euler: a little later)."""
    data = {
        "name": "blowup",
        "backend": "numpy",
        "grid": {"shape": [2, 2, 2]},
        "time": {"end": 2.0, "dt": 0.01},
        "output": {
            "series_every": 0.1,
            "check_every": 1,
            "pictures": False,
            "checkpoint": {"every_steps": 1},
        },
        "model": {"species": {"u": {"reaction": "u*u", "initial": 1.0}}},
    }
    with pytest.raises(SimulationError) as info:
        Simulation(parse_config(data), out_dir=tmp_path / "run").run()
    message = str(info.value)
    assert "species u became NaN or infinite at cell (0, 0, 0)" in message
    last = list_checkpoints(tmp_path / "run" / "checkpoints")[-1]
    assert f"last good checkpoint: {last} (continue with --resume)" in message
    good = read_checkpoint(last)
    assert np.isfinite(good.fields).all() and good.fields.min() > 1e3
    assert f"at t={good.t + 0.1:.6g}" in message or f"at t={good.t + 0.01:.6g}" in message


def test_full_disk_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = []
    original = checkpoint_io._write_contents

    def fail_on_the_third(path: Path, checkpoint) -> None:
        written.append(path)
        if len(written) == 3:
            path.write_bytes(
                b"\x89HDF\r\n\x1a\n" + b"\0" * 100
            )  # a partial file, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        original(path, checkpoint)

    monkeypatch.setattr(checkpoint_io, "_write_contents", fail_on_the_third)
    out = tmp_path / "run"
    with pytest.raises(SimulationError) as info:
        Simulation(parse_config(small_quickstart()), out_dir=out).run()
    found = list_checkpoints(out / "checkpoints")
    assert len(found) == 2
    final = written[2].parent / (written[2].name[1:].split(".h5.")[0] + ".h5")  # .NAME.h5.PID.tmp
    assert str(info.value) == (
        f"cannot write checkpoint {str(final)!r}: "
        f"No space left on device; the previous checkpoint {str(found[-1])!r} is intact"
    )
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        p.name for p in found
    ]  # no temporary
    assert read_checkpoint(found[-1]).step > read_checkpoint(found[0]).step


def test_cli_reports_a_full_disk_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from solver import cli

    def no_space(path: Path, checkpoint) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint_io, "_write_contents", no_space)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(small_quickstart(), sort_keys=False), encoding="utf-8")
    assert (
        cli.main(["run", str(config), "--out", str(tmp_path / "run"), "--progress-every", "0"]) == 1
    )
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tumorsim: error: cannot write checkpoint ")
    assert lines[0].endswith("No space left on device")


# ------------------------------------------------------------------ SIGKILL (subprocesses)

SLOW_SECOND_CHECKPOINT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import solver.io.checkpoint as checkpoint_io
    from solver.cli import main

    original, calls = checkpoint_io._write_contents, []

    def slow(path, checkpoint):
        calls.append(path)
        if len(calls) == 2:  # half-written, then hang until killed
            with open(path, "wb") as f:
                f.write(b"\\x89HDF\\r\\n\\x1a\\n" + b"\\0" * 4096)
            Path(sys.argv[2]).write_text(str(path))
            time.sleep(120)
        original(path, checkpoint)

    checkpoint_io._write_contents = slow
    sys.exit(main(["run", sys.argv[1], "--out", sys.argv[3], "--progress-every", "0"]))
    """
)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def wait_for_a_new_checkpoint(folder: Path, before: set[Path], process: subprocess.Popen) -> bool:
    """True once a checkpoint not in `before` exists; False if the process ended first."""
    deadline = time.monotonic() + 60
    while set(list_checkpoints(folder)) <= before:
        if process.poll() is not None:
            return False
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)
    return True


def test_sigkill_while_writing_a_checkpoint_leaves_the_previous_one(
    tmp_path: Path, reference: tuple[Path, Any]
) -> None:
    ref_dir, _ = reference
    config, marker, out = tmp_path / "c.yaml", tmp_path / "writing", tmp_path / "run"
    config.write_text(yaml.safe_dump(small_quickstart(), sort_keys=False), encoding="utf-8")
    script = tmp_path / "slow.py"
    script.write_text(SLOW_SECOND_CHECKPOINT, encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, str(script), str(config), str(marker), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_for(marker, process)
    process.kill()
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    partial = Path(marker.read_text())
    assert partial.exists() and partial.name.endswith(".tmp")  # killed mid-write
    found = list_checkpoints(out / "checkpoints")
    assert len(found) == 1
    first = read_checkpoint(found[0])
    assert first.t == pytest.approx(0.1) and first.step > 0

    Simulation(parse_config(small_quickstart()), out_dir=out).run(resume="latest")
    assert not partial.exists()  # the resumed run cleared the temporary
    assert_same_run(out, ref_dir)


def test_killed_at_random_moments_and_resumed_gives_the_same_run(
    tmp_path: Path, reference: tuple[Path, Any]
) -> None:
    ref_dir, _ = reference
    config, out = tmp_path / "c.yaml", tmp_path / "run"
    config.write_text(yaml.safe_dump(small_quickstart(), sort_keys=False), encoding="utf-8")
    rng = random.Random(4)
    kills = 0
    for attempt in range(6):
        before = set(list_checkpoints(out / "checkpoints"))
        resume = ["--resume", "latest"] if before else ["--overwrite"]
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "solver",
                "run",
                str(config),
                "--out",
                str(out),
                "--progress-every",
                "0",
                *resume,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        if attempt < 3 and wait_for_a_new_checkpoint(out / "checkpoints", before, process):
            time.sleep(rng.uniform(0.0, 0.2))  # stepping, writing run.h5 or a checkpoint
            process.kill()
        _, err = process.communicate(timeout=120)
        if process.returncode == -signal.SIGKILL:
            kills += 1
            for path in list_checkpoints(out / "checkpoints"):
                read_checkpoint(path)  # every checkpoint under its name is whole
            continue
        assert process.returncode == 0, err.decode()
        break
    assert kills >= 1
    assert_same_run(out, ref_dir)


# ----------------------------------------------------------------------------- GPU


@pytest.mark.gpu
def test_stop_and_resume_is_bit_identical_on_the_gpu(tmp_path: Path, gpu: None) -> None:
    uninterrupted = Simulation(
        parse_config(small_quickstart("gpu")), out_dir=tmp_path / "reference"
    ).run()
    assert uninterrupted.backend == "cupy"
    out = tmp_path / "run"
    path = stopped_at(out, lambda f: f.step == uninterrupted.steps // 2 + 1, backend="gpu")
    assert read_checkpoint(path).backend == "cupy"
    summary = Simulation(parse_config(small_quickstart("gpu")), out_dir=out).run(resume="latest")
    assert summary.final_diagnostics == uninterrupted.final_diagnostics
    assert_same_run(out, tmp_path / "reference")
