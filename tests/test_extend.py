"""A finished run: `--resume` says so and touches nothing; `--extend-to T` continues it from
its end state (checkpoints/final-<step>.h5) to T, bit for bit the run that had end time T from the
start, or refuses in one line when the record times would not line up."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from solver import cli
from solver.config import builtin_config_path
from solver.io.checkpoint import final_checkpoint, list_checkpoints, read_checkpoint

SHAPE = "[8,8,8]"


def args(out: Path, end: float, *extra: str) -> list[str]:
    """The quickstart on 8^3 cells of 300 um, IL-2 moved inside the first day."""
    return ["run", str(builtin_config_path("quickstart")), "--out", str(out), "--progress-every", "0",
            "--set", f"grid.shape={SHAPE}", "--set", "grid.spacing=300.0", "--set", f"time.end={end}",
            "--set", "treatment[il2].start=0.5", "--set", "treatment[il2].count=2",
            "--set", "output.snapshot_every=0.5", "--set", "output.pictures=false", *extra]


def state(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under `folder`: its SHA-256 and modification time in ns."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("straight") / "run"
    assert cli.main(args(out, 1.5, "--set", "output.checkpoint.every_time=0.5")) == 0
    return out


@pytest.fixture(scope="module")
def short(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run to t = 1 with a periodic checkpoint before its end (t = 0.5)."""
    out = tmp_path_factory.mktemp("short") / "run"
    assert cli.main(args(out, 1.0, "--set", "output.checkpoint.every_time=0.5")) == 0
    return out


def test_a_finished_run_writes_its_end_state(short: Path) -> None:
    final = read_checkpoint(final_checkpoint(short / "checkpoints"))
    assert final.t == 1.0 and final.reason == "end" and final.segment is None
    with h5py.File(short / "run.h5", "r") as f:
        assert final.n_series == f["timeseries/time"].shape[0] and final.n_snapshots == f["fields/time"].shape[0]
        np.testing.assert_array_equal(final.fields[0], f["fields/T"][-1])
    assert [read_checkpoint(p).t for p in list_checkpoints(short / "checkpoints")] == [0.5]  # keep counts these


@pytest.mark.parametrize("periodic", [True, False])
def test_resume_of_a_finished_run_does_nothing_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], periodic: bool
) -> None:
    out = tmp_path / "run"
    extra = ("--set", "output.checkpoint.every_time=0.5") if periodic else ()
    assert cli.main(args(out, 1.0, *extra)) == 0
    capsys.readouterr()
    before = state(out)
    assert cli.main(args(out, 1.0, *extra, "--resume")) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == (f"run in {out} is finished at t=1 (time.end); nothing to do — use --extend-to T "
                                    "to continue it to a later end time T")
    assert state(out) == before  # nothing recomputed, nothing rewritten


def test_resume_of_a_finished_run_with_other_physics_is_still_refused(
    short: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = state(short)
    assert cli.main(args(short, 1.0, "--set", "model.parameters.a=0.5", "--resume")) == 2
    assert "physics differs: " in (err := capsys.readouterr().err)
    assert "model.parameters.a (checkpoint: 0.431, config: 0.5)" in err
    assert state(short) == before


def assert_same_datasets(ours: Path, theirs: Path) -> None:
    with h5py.File(ours, "r") as a, h5py.File(theirs, "r") as b:
        names: list[str] = []
        a.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        other: list[str] = []
        b.visititems(lambda name, obj: other.append(name) if isinstance(obj, h5py.Dataset) else None)
        assert names == other
        for name in names:
            x, y = a[name], b[name]
            assert x.shape == y.shape and x.dtype == y.dtype, name
            assert np.array_equal(x[()], y[()], equal_nan=True), name  # bit for bit
            assert same_attrs(x.attrs, y.attrs), name
        assert same_attrs({k: v for k, v in a.attrs.items() if k != "resumed_json"}, b.attrs)


def same_attrs(x, y) -> bool:
    return sorted(x) == sorted(y) and all(np.array_equal(x[k], y[k]) for k in x)


def test_extending_a_finished_run_is_bit_identical_to_a_straight_run(
    short: Path, straight: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    shutil.copytree(short, out)
    assert cli.main(args(out, 1.0, "--set", "output.checkpoint.every_time=0.5", "--extend-to", "1.5")) == 0
    assert f"after resuming from {final_checkpoint(short / 'checkpoints').name}" in capsys.readouterr().out.replace(
        str(out / "checkpoints") + "/", "")
    assert_same_datasets(out / "run.h5", straight / "run.h5")
    assert (out / "config.yaml").read_text() != (short / "config.yaml").read_text()
    assert "end: 1.5" in (out / "config.yaml").read_text()
    ours = read_checkpoint(final_checkpoint(out / "checkpoints"))
    theirs = read_checkpoint(final_checkpoint(straight / "checkpoints"))
    assert ours.t == theirs.t == 1.5 and ours.step == theirs.step
    np.testing.assert_array_equal(ours.fields, theirs.fields)
    with h5py.File(out / "run.h5", "r") as f:
        notes = json.loads(f.attrs["resumed_json"])
    assert [(n["t"], n["extended_to"]) for n in notes] == [(1.0, 1.5)]
    # the extended run is now a run to 1.5: finished there
    before = state(out)
    assert cli.main(args(out, 1.5, "--set", "output.checkpoint.every_time=0.5", "--resume")) == 0
    assert "is finished at t=1.5" in capsys.readouterr().out
    assert state(out) == before


@pytest.mark.parametrize("extra, fragment", [
    (("--extend-to", "0.9"), "--extend-to 0.9 is not after the end time of the run"),
    (("--extend-to", "1.0"), "is finished at t=1"),  # already there: nothing to do (stdout, status 0)
    (("--extend-to", "2.0", "--set", "output.snapshot_every=0.3"), "its snapshot times up to 1 differ"),
    (("--extend-to", "2.0", "--overwrite"), "cannot be combined with --overwrite"),
])
def test_extensions_that_cannot_be_bit_identical_are_refused(
    short: Path, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...], fragment: str
) -> None:
    before = state(short)
    status = cli.main(args(short, 1.0, "--set", "output.checkpoint.every_time=0.5", *extra))
    captured = capsys.readouterr()
    if fragment.startswith("is finished"):
        assert status == 0 and fragment in captured.out
    else:
        assert status == 2
        assert len(captured.err.strip().splitlines()) == 1 and captured.err.startswith("tumorsim: error: ")
        assert fragment in captured.err
    assert state(short) == before


def test_extend_to_must_be_a_number(short: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:  # argparse's usage error, in one line
        cli.main(args(short, 1.0, "--extend-to", "nan"))
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith("tumorsim: error: argument --extend-to: must be a finite number")


def test_a_default_snapshot_interval_cannot_be_extended(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """snapshot_every defaults to time.end / 10: the records of a run to 1 are not those of a run to 1.5."""
    out = tmp_path / "run"
    base = args(out, 1.0, "--set", "output.snapshot_every=null")
    assert cli.main(base) == 0
    capsys.readouterr()
    before = state(out)
    assert cli.main([*base, "--extend-to", "1.5"]) == 2
    assert "snapshot times up to 1 differ from those of a run to 1.5" in capsys.readouterr().err
    assert state(out) == before
