"""A study stopped by real signals and resumed (`tumorsim study` in a subprocess): SIGTERM to
the study process, then SIGINT to its whole process group (what Ctrl-C sends: workers
included), then --resume to the end. The summary equals an uninterrupted study's, every
member stopped mid-way continues from its checkpoint, and no finished member is run again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
import yaml

pytest.importorskip("distributed", reason="the `study` extra is not installed")
pd = pytest.importorskip("pandas", reason="the `study` extra is not installed")

from test_study_engine import tiny_study

from solver.study import run_study


def resume_study() -> dict:
    """8 members of a few seconds each on 2 workers, none failing."""
    return tiny_study(end=2.5, vary={"offset": {"values": [0.0, 0.25, 0.5, 0.75]},
                                     "treatment[chemo].dose_rate": {"values": [1.0, 2.0]}})


def start(cwd: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "solver", "study", "s.yaml", "--out", "out", "--no-progress", *extra],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def results(out: Path) -> dict[str, dict]:
    found = {}
    for path in (out / "members").glob("*/result.json"):
        try:
            found[path.parent.name] = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:  # being replaced right now: read it next time
            continue
    return found


def wait_for_done(process: subprocess.Popen[str], out: Path, at_least: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(r["status"] == "done" for r in results(out).values()) >= at_least:
            return
        if process.poll() is not None:
            raise AssertionError(f"the study ended before {at_least} members were done: {process.communicate()}")
        time.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} members done after {timeout} s")


def finished_files(out: Path) -> dict[str, tuple[bytes, int]]:
    """For every done member: its result.json as bytes and its run.h5's modification time."""
    return {mid: ((out / "members" / mid / "result.json").read_bytes(),
                  (out / "members" / mid / "run.h5").stat().st_mtime_ns)
            for mid, r in results(out).items() if r["status"] == "done"}


def assert_group_gone(process: subprocess.Popen[str]) -> None:
    """The study's workers ended with it (its process group is empty)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError("processes of the stopped study are still running")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return run_study(resume_study(), out=tmp_path_factory.mktemp("reference") / "out", progress=False)


def test_a_study_stopped_by_sigterm_then_sigint_resumes_to_the_same_summary(tmp_path: Path, reference) -> None:
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(resume_study(), sort_keys=False), encoding="utf-8")
    out = tmp_path / "out"

    first = start(tmp_path)
    wait_for_done(first, out, 2)
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=90)
    assert first.returncode == 143, err
    assert "study stopped by SIGTERM" in err and "resume with: tumorsim study s.yaml --resume --out out" in err
    assert "Traceback" not in err
    assert_group_gone(first)
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 8 and set(summary["status"]) <= {"done", "interrupted", "pending"}
    interrupted = list(summary["id"][summary["status"] == "interrupted"])
    assert interrupted, "no member was running when the signal came"
    for mid in interrupted:
        assert list((out / "members" / mid / "checkpoints").glob("checkpoint-*.h5"))
    kept = finished_files(out)
    assert len(kept) >= 2

    second = start(tmp_path, "--resume")
    wait_for_done(second, out, len(kept) + 1)
    os.killpg(second.pid, signal.SIGINT)  # Ctrl-C: the study and its workers get it
    _, err = second.communicate(timeout=90)
    assert second.returncode == 130, err
    assert "study stopped by SIGINT" in err and "Traceback" not in err
    assert_group_gone(second)
    after_second = finished_files(out)
    assert {k: after_second[k] for k in kept} == kept  # finished members were not run again
    assert len(after_second) > len(kept)

    third = start(tmp_path, "--resume")
    stdout, err = third.communicate(timeout=180)
    assert third.returncode == 0, err
    assert f"{len(after_second)} found finished" in stdout
    final = finished_files(out)
    assert len(final) == 8 and {k: final[k] for k in after_second} == after_second

    resumed = [mid for mid, r in results(out).items() if r.get("resumed")]
    assert set(interrupted) <= set(resumed)
    for mid in interrupted:  # continued from the checkpoint, not started again
        with h5py.File(out / "members" / mid / "run.h5") as f:
            assert json.loads(f.attrs["resumed_json"])
    summary = pd.read_parquet(out / "summary.parquet")
    same = [c for c in reference.columns if c not in ("wall_seconds", "error")]
    pd.testing.assert_frame_equal(summary[same], reference[same])
    assert (summary["status"] == "done").all()
