"""Branching: a species' `initial: {run: DIR, time: last | T}` starts from a snapshot of
another run, exactly; a time that is not a snapshot or a grid of another shape is refused
in one line naming what is allowed."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from solver import cli
from solver.config import builtin_config_path

SPECIES = ("T", "N", "L", "K", "M", "I", "A")


def args(out: Path, end: float, shape: str = "[6,5,4]", *extra: str) -> list[str]:
    return ["run", str(builtin_config_path("quickstart")), "--out", str(out), "--progress-every", "0",
            "--set", f"grid.shape={shape}", "--set", "grid.spacing=300.0", "--set", f"time.end={end}",
            "--set", "treatment[il2].start=0.5", "--set", "treatment[il2].count=2",
            "--set", "output.snapshot_every=0.5", "--set", "output.pictures=false", *extra]


def branch(source: Path, time: str, species=SPECIES) -> list[str]:
    out: list[str] = []
    for name in species:
        out += ["--set", f"model.species.{name}.initial={{run: {source}, time: {time}}}"]
    return out


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("source") / "run"
    assert cli.main(args(out, 1.0)) == 0
    return out


@pytest.mark.parametrize("time, index", [("last", -1), ("0.5", 1)])
def test_a_branch_starts_with_exactly_the_fields_of_the_snapshot(
    source: Path, tmp_path: Path, time: str, index: int
) -> None:
    out = tmp_path / "branch"
    # a short branch (no dose in it), every species from the source's snapshot
    assert cli.main(args(out, 0.25, "[6,5,4]", "--set", "treatment=[]", "--set", "output.snapshot_every=0.25",
                         *branch(source, time))) == 0
    with h5py.File(source / "run.h5", "r") as a, h5py.File(out / "run.h5", "r") as b:
        assert b["fields/time"][0] == 0.0
        for name in SPECIES:
            start, snapshot = b["fields"][name][0], a["fields"][name][index]
            assert start.dtype == snapshot.dtype
            np.testing.assert_array_equal(start, snapshot)  # bit for bit
        assert not np.array_equal(b["fields/T"][0], a["fields/T"][0])  # not the source's own start


def test_one_species_can_branch_and_another_field_can_be_named(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "branch"
    extra = ["--set", f"model.species.L.initial={{run: {source / 'run.h5'}, time: 1.0, field: N}}"]
    assert cli.main(args(out, 0.25, "[6,5,4]", "--set", "treatment=[]", "--set", "output.snapshot_every=0.25",
                         *extra)) == 0
    with h5py.File(source / "run.h5", "r") as a, h5py.File(out / "run.h5", "r") as b:
        np.testing.assert_array_equal(b["fields/L"][0], a["fields/N"][-1])
        np.testing.assert_array_equal(b["fields/T"][0], a["fields/T"][0])  # T from its own initial, as the source


@pytest.mark.parametrize("shape, extra, fragment", [
    ("[8,8,8]", branch("{src}", "last", ("T",)),
     "model.species.T.initial: the run in '{src}' has grid (6, 5, 4); this config's grid is (8, 8, 8)"),
    ("[6,5,4]", branch("{src}", "0.7", ("T",)),
     ("model.species.T.initial: the run in '{src}' has no snapshot at t = 0.7; its snapshots are at 0, 0.5, 1 "
      "(or time: last)")),
    ("[6,5,4]", ["--set", "model.species.T.initial={run: {src}, field: Q}"],
     "has no field 'Q'; its fields are T, N, L, K, M, I, A"),
    ("[6,5,4]", branch("{src}/nowhere", "last", ("T",)), "no run at '{src}/nowhere'"),
    ("[6,5,4]", ["--set", "model.maps.w={run: {src}}"], "model.maps.w: {run: ...} gives a species"),
])
def test_bad_branches_are_refused_in_one_line(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], shape: str, extra: list[str], fragment: str
) -> None:
    out = tmp_path / "branch"
    status = cli.main(args(out, 0.25, shape, "--set", "treatment=[]",
                           *(e.replace("{src}", str(source)) for e in extra)))
    err = capsys.readouterr().err
    assert status == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("tumorsim: error: ")
    assert fragment.replace("{src}", str(source)) in err
    assert not out.exists()
