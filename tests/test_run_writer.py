"""The run writer's thread (solver/io/run_writer.py): snapshots written while the caller
goes on, records appended in blocks and seen by readers within about a second, and a write
that fails in the thread (a real full tmpfs) raised in the caller's thread with nothing
on disk lost."""

from __future__ import annotations

import errno
import os
import subprocess
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from solver.grid import Grid
from solver.io.run_file import load_run
from solver.io.run_writer import RunWriter

SPECIES = ("T", "N")
SHAPE = (32, 32, 32)  # 256 KiB a snapshot in float32, uncompressed


def new_writer(path: Path, compression: str = "none") -> RunWriter:
    grid = Grid(SHAPE, (1.0, 1.0, 1.0), "um")
    attrs = {"name": "w", "grid_shape": np.array(SHAPE), "grid_spacing": np.array([1.0, 1.0, 1.0])}
    return RunWriter(path, grid, SPECIES, np.dtype("float32"), attrs, compression, series=("total_T",))


def fields(i: int) -> np.ndarray:
    return np.full((len(SPECIES), *SHAPE), float(i), dtype=np.float32) + np.arange(SHAPE[2], dtype=np.float32)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real tmpfs of 1 MiB (skipped where mounting is not permitted)."""
    point = tmp_path / "disk"
    point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,nr_inodes=100", "tmpfs", str(point)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    yield point
    subprocess.run(["umount", str(point)], check=True)


def test_a_snapshot_is_written_by_the_writer_thread_after_the_caller_has_gone_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, int]] = []
    returned = threading.Event()
    write_now = RunWriter._write_snapshot_now

    def held_until_the_caller_returned(self: RunWriter, t: float, data: np.ndarray) -> None:
        returned.wait(30)  # a write in the caller's thread would never see it set
        events.append(("written", threading.get_ident()))
        write_now(self, t, data)

    monkeypatch.setattr(RunWriter, "_write_snapshot_now", held_until_the_caller_returned)
    with new_writer(tmp_path / "run.h5") as writer:
        source = fields(1)
        writer.write_snapshot(0.5, source)
        source[...] = -1.0  # the caller steps on: the writer holds its own copy
        events.append(("returned", threading.get_ident()))
        returned.set()
        writer.flush()
        assert writer.counts == (0, 1)
    assert [kind for kind, _ in events] == ["returned", "written"]
    assert events[0][1] == threading.main_thread().ident != events[1][1]
    run = load_run(tmp_path / "run.h5")
    assert run.times.tolist() == [0.5]
    np.testing.assert_array_equal(run.field("T", 0), fields(1)[0])


def test_records_are_appended_in_blocks_and_readers_see_them_within_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    resizes: list[str] = []
    resize = h5py.Dataset.resize
    monkeypatch.setattr(h5py.Dataset, "resize", lambda ds, *a, **k: (resizes.append(ds.name), resize(ds, *a, **k))[1])
    path = tmp_path / "run.h5"
    with new_writer(path) as writer:
        for i in range(200):
            writer.write_series(0.01 * i, {"total_T": float(i)})
        writer.flush()
        assert resizes.count("/timeseries/time") <= 2  # one resize per block, not 200
        writer.write_series(2.0, {"total_T": 200.0})  # no flush: the writer publishes it by itself
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with h5py.File(path, "r", swmr=True) as reader:
                if reader["timeseries/time"].shape[0] == 201:
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("a reader did not see the last record without a flush")
    run = load_run(path)
    np.testing.assert_array_equal(run.series["total_T"], np.arange(201.0))
    np.testing.assert_allclose(run.series_time[:200], 0.01 * np.arange(200))


def test_a_full_disk_in_the_writer_thread_is_raised_by_a_later_call_with_nothing_lost(small_disk: Path) -> None:
    path = small_disk / "run.h5"
    writer = new_writer(path)
    raised_at, failure = None, None
    for i in range(10):  # 10 snapshots of 256 KiB on a disk of 1 MiB
        try:
            writer.write_series(float(i), {"total_T": float(i)})
            writer.write_snapshot(float(i), fields(i))
        except OSError as exc:
            raised_at, failure = i, exc
            break
    else:
        with pytest.raises(OSError) as info:
            writer.close()
        raised_at, failure = 10, info.value
    assert failure.errno == errno.ENOSPC and "No space left on device" in str(failure), failure
    assert writer.abandoned
    with pytest.raises(OSError, match="abandoned after a failed write"):
        writer.write_series(99.0, {"total_T": 0.0})
    run = load_run(path)  # what was published before the failure, readable
    kept = run.n_snapshots
    assert raised_at > kept  # the step loop went on after handing over the snapshot that failed
    assert failure.failed_at >= kept and failure.failed_at not in run.times.tolist()
    assert run.times.tolist() == [float(i) for i in range(kept)]
    for i in range(kept):
        np.testing.assert_array_equal(run.field("N", i), fields(i)[1])
    assert run.series_time.tolist() == [float(i) for i in range(run.series_time.size)]
    writer.close()  # after abandon: nothing more to do, no second error


def test_a_failed_last_snapshot_is_raised_by_close(small_disk: Path) -> None:
    path = small_disk / "run.h5"
    writer = new_writer(path)
    writer.flush()
    room = max(0, os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize - (64 << 10))
    (small_disk / "filler").write_bytes(b"\0" * room)  # less than one snapshot left
    writer.write_snapshot(1.0, fields(1))
    with pytest.raises(OSError) as info:
        writer.close()
    assert info.value.errno == errno.ENOSPC and info.value.failed_at == 1.0
    assert load_run(path).n_snapshots == 0
