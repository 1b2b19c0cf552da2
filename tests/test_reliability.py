"""Faults that take more than one command: two runs in one folder, a real full disk, bit
flips everywhere, live reading, batch-system signals and requeues, cgroup limits.

The run is the model of tests/test_checkpoint.py (the quickstart on 8^3 cells, one day,
a checkpoint at every record), whose uninterrupted run is the reference every continued
run must equal bit for bit (run.h5 and every shared checkpoint).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import yaml
from _cli_server import REPO
from test_checkpoint import assert_same_h5, assert_same_run, small_quickstart

from solver.config import parse_config
from solver.errors import CheckpointError, RunFileError
from solver.io.checkpoint import list_checkpoints, read_checkpoint
from solver.io.lock import LOCK_FILE
from solver.run import Simulation
from solver.run.resources import cgroup_memory_available

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(
    os.pathsep))]))


def tumorsim(*args: str, cwd: Path, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "solver", *args], cwd=cwd, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def finish(process: subprocess.Popen[str], timeout: float = 180) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def wait_until_stepping(process: subprocess.Popen[str]) -> None:
    """Read stderr up to the first progress line (the run holds its folder and steps)."""
    assert process.stderr is not None
    for line in process.stderr:
        if "steps/s" in line:
            return
    raise AssertionError("the run ended before stepping")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "run"
    Simulation(parse_config(small_quickstart()), out_dir=out).run()
    return out


def longer_quickstart(end: float = 7.0) -> dict[str, Any]:
    """The quickstart model on 16^3 cells for `end` days (seconds a day on the 2-core CI
    machine: long enough to overlap with other commands)."""
    data = small_quickstart()
    data["grid"].update(shape=[16, 16, 16], spacing=150.0)
    data["time"]["end"] = end
    data["output"].update(snapshot_every=1.0, series_every=0.05, checkpoint={"every_time": 1.0, "keep": 2})
    data["treatment"] = [{"agent": "chemo", "kind": "infusion", "dose_rate": 2.0, "duration": 1.0, "start": 0.0}]
    return data


# ----------------------------------------------------------------------- 1: one folder, two runs


def test_a_second_run_into_a_running_folder_is_refused_and_the_first_finishes_intact(tmp_path: Path) -> None:
    config = write(tmp_path / "c.yaml", longer_quickstart(12.0))
    first = tumorsim("run", "c.yaml", "--out", "out", "--progress-every", "0.5", cwd=tmp_path)
    wait_until_stepping(first)
    for extra, refusal in ((["--overwrite"], f"run in progress (pid {first.pid}, host "),
                           (["--resume"], f"run in progress (pid {first.pid}, host "),
                           (["--resume", "auto"], f"run in progress (pid {first.pid}, host "),
                           ([], "already holds a run (run.h5)")):
        status, _, err = finish(tumorsim("run", "c.yaml", "--out", "out", "--progress-every", "0", *extra,
                                         cwd=tmp_path))
        assert status == 1 and err.splitlines() == [err.strip()], err
        assert refusal in err, err
    assert first.poll() is None, "the first run ended before the others were refused"
    status, _, err = finish(first)
    assert status == 0, err
    assert not (tmp_path / "out" / LOCK_FILE).exists()
    alone = tmp_path / "alone"
    Simulation(parse_config(longer_quickstart(12.0)), out_dir=alone).run()
    assert_same_run(tmp_path / "out", alone)
    assert config.exists()


def test_two_runs_started_together_one_runs_the_other_is_refused(tmp_path: Path, reference: Path) -> None:
    write(tmp_path / "c.yaml", small_quickstart())
    both = [tumorsim("run", "c.yaml", "--out", "out", "--progress-every", "0", cwd=tmp_path) for _ in range(2)]
    results = sorted(finish(p) for p in both)
    (ok, _, _), (refused, _, err) = results
    assert (ok, refused) == (0, 1), results
    assert len(err.splitlines()) == 1 and ("run in progress (pid" in err or "already holds a run" in err), err
    assert_same_run(tmp_path / "out", reference)


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path, reference: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_FILE).write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename, "started": "then"}))
    write(tmp_path / "c.yaml", small_quickstart())
    status, _, err = finish(tumorsim("-v", "run", "c.yaml", "--out", "out", "--progress-every", "0", cwd=tmp_path))
    assert status == 0, err
    assert f"took over the lock left by pid {dead.pid}" in err
    assert not (out / LOCK_FILE).exists()
    assert_same_run(out, reference)


# ----------------------------------------------------------------------- 2: a real full disk


@pytest.fixture
def tmpfs(tmp_path: Path):
    """A mount point for a small tmpfs (skipped where mounting is not permitted); unmounted after."""
    point = tmp_path / "disk"
    point.mkdir()
    mounted: list[bool] = []

    def mount(size: int) -> Path:
        options = f"size={size},nr_inodes=1000"
        command = ["mount", "-t", "tmpfs", "-o", options if not mounted else f"remount,{options}", "tmpfs", str(point)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounted.append(True)
        return point

    yield mount
    if mounted:
        subprocess.run(["umount", str(point)], check=True)


def full_disk_config(where: str) -> dict[str, Any]:
    """Snapshots uncompressed; a checkpoint at every record (they fill the disk first) or
    every 20 steps (run.h5 fills it)."""
    data = longer_quickstart()
    data["time"]["end"] = 2.0
    data["output"].update(series_every=0.05, compression="none")
    if where == "checkpoint":
        data["output"].update(snapshot_every=0.1, checkpoint={"every_steps": 1, "keep": 2})
    else:
        data["output"].update(snapshot_every=0.02, checkpoint={"every_steps": 20, "keep": 1})
    return data


@pytest.mark.parametrize(("where", "size", "message"), [
    ("checkpoint", 2 << 20, "cannot write checkpoint '{out}/checkpoints/checkpoint-"),
    ("run file", 3 << 20, "writing {out}/run.h5 failed at t = "),
])
def test_a_real_full_disk_is_one_line_and_the_run_resumes_bit_identical(tmp_path: Path, tmpfs, where: str,
                                                                       size: int, message: str) -> None:
    disk = tmpfs(size)
    config = write(tmp_path / "c.yaml", full_disk_config(where))
    out = disk / "out"
    status, _, err = finish(tumorsim("run", str(config), "--out", str(out), "--progress-every", "0", cwd=tmp_path))
    assert status == 1, err  # not 139: no segfault at exit
    assert len(err.splitlines()) == 1, err
    line = err.strip()
    assert line.startswith("tumorsim: error: " + message.format(out=out)) and "No space left on device" in line
    assert "intact" in line or "last good checkpoint" in line
    kept = list_checkpoints(out / "checkpoints")
    assert kept
    for path in kept:
        read_checkpoint(path)  # every checkpoint under its name is whole
    tmpfs(64 << 20)  # space freed
    status, _, err = finish(tumorsim("run", str(config), "--out", str(out), "--progress-every", "0", "--resume",
                                     cwd=tmp_path))
    assert status == 0, err
    alone = tmp_path / "alone"
    Simulation(parse_config(full_disk_config(where)), out_dir=alone).run()
    assert_same_h5(out / "run.h5", alone / "run.h5")


# ----------------------------------------------------------------------- 4: bit flips everywhere


def _attribute_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    return np.asarray(value).tobytes()


def _regions(path: Path) -> dict[str, int]:
    """Offset of a byte inside every dataset and every attribute value of an HDF5 file."""
    data = path.read_bytes()
    found: dict[str, int] = {}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and obj.size:
            offset = obj.id.get_chunk_info(0).byte_offset if obj.chunks else obj.id.get_offset()
            found[f"/{name}"] = int(offset)
        for key, value in obj.attrs.items():
            pattern = _attribute_bytes(value)
            at = data.find(pattern)
            assert at >= 0, f"{name}@{key} not found in the file"
            found[f"/{name}@{key}"] = at + len(pattern) // 2

    with h5py.File(path, "r") as f:
        visit("", f)
        f.visititems(visit)
    return found


def test_every_bit_flip_in_a_checkpoint_is_refused(tmp_path: Path, reference: Path) -> None:
    original = list_checkpoints(reference / "checkpoints")[5]
    pristine = original.read_bytes()
    regions = _regions(original)
    names = {key.split("@")[0] for key in regions}
    assert {"/fields", "/systemic/y", "/systemic/pk/chemo", "/diagnostics/auc", "/diagnostics/last"} <= names
    assert {f"/@{a}" for a in ("t", "step", "next_event", "n_series", "n_snapshots", "guard_peak", "physics_json",
                               "run_hash", "config_hash", "maps_sha256")} <= set(regions)
    offsets = sorted(set(regions.values()) | set(range(0, len(pristine), 97)) | set(range(512)))
    path = tmp_path / original.name
    refused = 0
    for offset in offsets:
        for bit in (0, 7):
            damaged = bytearray(pristine)
            damaged[offset] ^= 1 << bit
            path.write_bytes(bytes(damaged))
            with pytest.raises(CheckpointError):
                read_checkpoint(path)
            refused += 1
    assert refused == 2 * len(offsets) > 400


FLIP_RUN_FILE = textwrap.dedent("""
    import json, sys, shutil
    from pathlib import Path
    import h5py, numpy as np
    sys.path.insert(0, sys.argv[4])
    from test_checkpoint import h5_contents
    from solver.errors import RunFileError
    from solver.io.run_resume import resume_run_file

    args = json.loads(sys.argv[1])
    pristine, work, offsets = Path(sys.argv[2]), Path(sys.argv[3]), json.loads(sys.argv[5])
    def resumed(data):
        target = work / "run.h5"
        target.write_bytes(data)
        try:
            writer = resume_run_file(target, tuple(args["species"]), tuple(args["series"]), args["n_series"],
                                     args["n_snapshots"], args["t"], {"t": args["t"]}, {}, args["run_hash"])
        except RunFileError:
            return None
        writer.close()
        return h5_contents(target)
    def same(a, b):
        if sorted(a) != sorted(b):
            return False
        return all(np.array_equal(np.asarray(a[k]), np.asarray(b[k]), equal_nan=np.asarray(a[k]).dtype.kind == "f")
                   for k in a)
    data = pristine.read_bytes()
    expected = resumed(data)
    results = {}
    for offset in offsets:
        damaged = bytearray(data)
        damaged[offset] ^= 1 << 4
        got = resumed(bytes(damaged))
        results[offset] = "refused" if got is None else ("identical" if same(got, expected) else "DIFFERENT")
        print(json.dumps([offset, results[offset]]), flush=True)
""")


def test_bit_flips_in_run_h5_are_refused_or_change_nothing(tmp_path: Path, reference: Path) -> None:
    """A flipped bit anywhere in run.h5 (every dataset's data, every attribute, and a stride
    over the whole file) makes the resume refuse, or leaves what it continues bit-identical:
    the continuation itself comes from the checkpoint. Run in a subprocess, so that a crash
    of HDF5 on damaged metadata would show as such."""
    checkpoint = read_checkpoint(list_checkpoints(reference / "checkpoints")[5])
    sim = Simulation(parse_config(small_quickstart()), out_dir=tmp_path / "x")
    args = {"species": sim.model.names, "series": sim.record_names(), "n_series": checkpoint.n_series,
            "n_snapshots": checkpoint.n_snapshots, "t": checkpoint.t, "run_hash": checkpoint.run_hash}
    pristine = reference / "run.h5"
    size = pristine.stat().st_size
    offsets = sorted(set(_regions(pristine).values()) | set(range(0, size, max(1, size // 300))))
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run([sys.executable, "-c", FLIP_RUN_FILE, json.dumps(args), str(pristine), str(work),
                             str(REPO / "tests"), json.dumps(offsets)], capture_output=True, text=True, env=ENV,
                            timeout=600, check=False)
    outcomes = dict(json.loads(line) for line in result.stdout.splitlines())
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:], len(outcomes), len(offsets))
    assert len(outcomes) == len(offsets)
    assert "DIFFERENT" not in outcomes.values(), [o for o, r in outcomes.items() if r == "DIFFERENT"]
    counts = {r: list(outcomes.values()).count(r) for r in ("refused", "identical")}
    assert counts["refused"] > len(offsets) / 2, counts  # most of the file is checksummed data or metadata


# ----------------------------------------------------------------------- 10: live reading


def test_records_are_read_while_the_run_writes_them(tmp_path: Path) -> None:
    from solver.viz import load_run

    write(tmp_path / "c.yaml", longer_quickstart(7.0))
    run = tumorsim("run", "c.yaml", "--out", "out", "--progress-every", "1", cwd=tmp_path)
    wait_until_stepping(run)
    follow = tumorsim("plot", "out", "--follow", "--every", "0.3", "-o", "live.png", cwd=tmp_path)
    seen: list[tuple[int, int]] = []
    while run.poll() is None:
        try:
            data = load_run(tmp_path / "out")
            with h5py.File(tmp_path / "out" / "run.h5", "r", swmr=True) as f:
                raw = f["timeseries/time"].shape[0]
        except RunFileError:
            continue
        assert np.all(np.diff(data.series_time) > 0) and data.series["total_T"].size == data.series_time.size
        assert raw >= data.series_time.size
        if not seen or data.series_time.size > seen[-1][0]:
            seen.append((data.series_time.size, data.n_snapshots))
        time.sleep(0.2)
    status, _, err = finish(run)
    assert status == 0, err
    assert len(seen) >= 3 and seen[0][0] < seen[-2][0] < 141, seen  # several views of a run in progress
    status, out, err = finish(follow)
    assert status == 0, err
    lines = out.splitlines()
    assert len(lines) >= 2 and lines[-1].startswith("plot: live.png (141 records, t = 7)"), out
    assert any(line.endswith(", running)") for line in lines), out
    final = load_run(tmp_path / "out")
    assert final.series_time.size == 141 and final.n_snapshots == 8


# ----------------------------------------------------------------------- 9: batch systems


def test_sigusr1_checkpoints_and_the_requeued_command_line_resumes(tmp_path: Path, reference: Path) -> None:
    """SLURM's --signal=USR1@N, then the job requeued with the same command line (--resume auto)."""
    write(tmp_path / "c.yaml", small_quickstart())
    command = ("run", "c.yaml", "--out", "out", "--progress-every", "0.02", "--resume", "auto")
    first = tumorsim(*command, cwd=tmp_path)
    wait_until_stepping(first)
    first.send_signal(signal.SIGUSR1)
    status, _, err = finish(first)
    assert status == 138, err
    assert "tumorsim: stopped by SIGUSR1 at t = " in err
    checkpoint = read_checkpoint(list_checkpoints(tmp_path / "out" / "checkpoints")[-1])
    assert checkpoint.reason == "SIGUSR1"
    status, out, err = finish(tumorsim(*command, cwd=tmp_path))
    assert status == 0, err
    assert "resuming from latest" in out and "after resuming from" in out
    assert_same_run(tmp_path / "out", reference)


def test_resume_auto_starts_when_there_is_no_checkpoint(tmp_path: Path, reference: Path) -> None:
    data = small_quickstart()
    write(tmp_path / "c.yaml", data)
    out = tmp_path / "out"
    out.mkdir()
    (out / "run.h5").write_bytes(b"a run killed before its first checkpoint")
    status, _, err = finish(tumorsim("run", "c.yaml", "--out", "out", "--progress-every", "0", "--resume", "auto",
                                     cwd=tmp_path))
    assert status == 0, err
    assert err.splitlines() == ["tumorsim: --resume auto: no checkpoint in out, starting the run"]
    assert_same_run(out, reference)


def test_the_memory_check_reads_this_process_cgroup(tmp_path: Path) -> None:
    """A batch job's limit sits on the job's own cgroup, not at the root of the mount."""
    root = tmp_path / "cgroup"
    job = root / "slurm" / "uid_0" / "job_42"
    job.mkdir(parents=True)
    (root / "memory.max").write_text("max\n")
    (root / "slurm" / "memory.max").write_text(f"{64 << 30}\n")
    (root / "slurm" / "memory.current").write_text(f"{10 << 30}\n")
    (job / "memory.max").write_text(f"{4 << 30}\n")
    (job / "memory.current").write_text(f"{1 << 30}\n")
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text("0::/slurm/uid_0/job_42\n")
    (proc / "mountinfo").write_text(f"30 20 0:26 / {root} rw,nosuid - cgroup2 cgroup2 rw\n")
    assert cgroup_memory_available(str(proc)) == 3 << 30
    (proc / "cgroup").write_text("4:memory:/slurm/uid_0/job_42\n1:cpu:/\n")  # cgroup v1
    (proc / "mountinfo").write_text(f"35 31 0:32 / {root} rw,relatime - cgroup cgroup rw,memory\n")
    (job / "memory.limit_in_bytes").write_text(f"{2 << 30}\n")
    (job / "memory.usage_in_bytes").write_text(f"{1 << 29}\n")
    assert cgroup_memory_available(str(proc)) == (2 << 30) - (1 << 29)
    (proc / "cgroup").write_text("0::/\n")
    (proc / "mountinfo").write_text(f"30 20 0:26 / {root} rw,nosuid - cgroup2 cgroup2 rw\n")
    assert cgroup_memory_available(str(proc)) is None  # no limit set


def test_run_h5_is_on_the_disk_before_each_checkpoint_that_counts_it(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from solver.run import simulation

    events: list[Any] = []
    fsync, write_checkpoint = os.fsync, simulation.write_checkpoint
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(os.fstat(fd).st_ino), fsync(fd))[1])
    monkeypatch.setattr(simulation, "write_checkpoint",
                        lambda *a, **k: (events.append("checkpoint"), write_checkpoint(*a, **k))[1])
    out = tmp_path / "run"
    Simulation(parse_config(small_quickstart()), out_dir=out).run()
    run_file = (out / "run.h5").stat().st_ino
    assert events.count("checkpoint") == len(list_checkpoints(out / "checkpoints")) >= 5
    for i, event in enumerate(events):
        if event == "checkpoint":
            before = events[: i][::-1]
            since = before[: before.index("checkpoint")] if "checkpoint" in before else before
            assert run_file in since


# ----------------------------------------------------------------------- 6, 8: blow-ups, messages


def test_after_a_blow_up_the_run_resumes_with_a_lower_dt(tmp_path: Path) -> None:
    data = {"name": "blowup", "backend": "numpy", "grid": {"shape": [2, 2, 2]}, "time": {"end": 2.0, "dt": 0.02},
            "output": {"series_every": 0.1, "check_every": 1, "pictures": False, "checkpoint": {"every_steps": 1}},
            "model": {"species": {"u": {"reaction": "u*u", "initial": 1.0}}}}
    write(tmp_path / "c.yaml", data)
    command = ("run", "c.yaml", "--out", "out", "--progress-every", "0")
    status, _, err = finish(tumorsim(*command, cwd=tmp_path))
    assert status == 1 and "a resume may lower time.dt or time.safety" in err, err
    data["time"]["dt"] = 0.005
    write(tmp_path / "c.yaml", data)
    status, out, err = finish(tumorsim(*command, "--resume", cwd=tmp_path))
    assert "physics differs" not in err and "resuming from latest" in out, err
    assert "resuming with another step size (dt (checkpoint: 0.02, config: 0.005)" in err
    assert status == 1 and err.strip().splitlines()[-1].startswith("tumorsim: error: species u became")


def test_a_config_read_from_a_fifo(tmp_path: Path) -> None:
    """`tumorsim validate <(...)`: a process substitution is a FIFO, not a missing file."""
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    text = yaml.safe_dump(small_quickstart(), sort_keys=False)

    def feed() -> None:
        with open(fifo, "w", encoding="utf-8") as f:
            f.write(text)

    writer = threading.Thread(target=feed)
    writer.start()
    status, out, err = finish(tumorsim("validate", str(fifo), cwd=tmp_path))
    writer.join(timeout=10)
    assert status == 0 and f"{fifo}: valid" in out, err


def test_pictures_replace_a_planted_link_instead_of_writing_through_it(tmp_path: Path, reference: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    picture = tmp_path / "plot.png"
    picture.symlink_to(victim)
    status, _, err = finish(tumorsim("plot", str(reference), "-o", str(picture), cwd=tmp_path))
    assert status == 0, err
    assert victim.read_text() == "precious\n" and not picture.is_symlink()
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_raised_limit_lets_the_config_run(tmp_path: Path) -> None:
    write(tmp_path / "c.yaml", small_quickstart())
    env = dict(ENV, TUMORSIM_MAX_RECORDS="12")
    refused = subprocess.run([sys.executable, "-m", "solver", "validate", "c.yaml"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, check=False)
    assert refused.returncode == 2 and "TUMORSIM_MAX_RECORDS" in refused.stderr
    env["TUMORSIM_MAX_RECORDS"] = "14"
    allowed = subprocess.run([sys.executable, "-m", "solver", "validate", "c.yaml"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, check=False)
    assert allowed.returncode == 0, allowed.stderr
