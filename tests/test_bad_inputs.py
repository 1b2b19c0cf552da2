"""Bad inputs to `tumorsim run`, table-driven: config, arguments, checkpoints, folders.

Each case runs in its own folder holding a config, a map file and a finished run
with checkpoints (`out/`). Every case must give exactly one line on stderr,
`tumorsim: error: ...`, naming the problem; the exit status of its kind (2: bad
config, arguments or checkpoint; 1: the run cannot go ahead: memory, folder, run
file); no traceback; and leave every file in the folder as it was (same names,
same SHA-256). The command line runs in process (cli.main is what the `tumorsim`
script calls); one case also runs as a real subprocess.
"""

from __future__ import annotations

import copy
import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import yaml

from solver import cli
from solver.io.checkpoint import list_checkpoints

TINY: dict[str, Any] = {
    "name": "tiny",
    "backend": "numpy",
    "grid": {"shape": [4, 4, 4], "spacing": 1.0},
    # explicit: its dt is set by diffusion alone, so a changed parameter or map is what
    # differs on resume (imex's dt would follow the reaction and differ too)
    "time": {"end": 0.5, "integrator": "explicit"},
    "output": {"series_every": 0.1, "pictures": False, "checkpoint": {"every_steps": 1, "keep": 3}},
    "model": {
        "parameters": {"D": 1.0, "k": 0.5},
        "maps": {"w": {"file": "w.npy"}},
        "species": {"u": {"diffusion": "D", "reaction": "k*w*u*(1 - u)", "initial": 0.5}},
    },
}
RUN = ("run", "{dir}/config.yaml", "--out", "{dir}/out", "--progress-every", "0")


def latest(folder: Path) -> Path:
    return list_checkpoints(folder / "out" / "checkpoints")[-1]


def newer_copy(folder: Path, data: bytes) -> Path:
    """`data` under a checkpoint name later than every real one, so `latest` picks it."""
    path = folder / "out" / "checkpoints" / "checkpoint-999999999999.h5"
    path.write_bytes(data)
    return path


def corrupt_fields(folder: Path) -> None:
    path = newer_copy(folder, latest(folder).read_bytes())
    with h5py.File(path, "r") as f:
        offset = f["fields"].id.get_chunk_info(0).byte_offset
    raw = bytearray(path.read_bytes())
    raw[offset + 8 : offset + 16] = b"\xff" * 8
    path.write_bytes(bytes(raw))


def newer_format(folder: Path) -> None:
    path = newer_copy(folder, latest(folder).read_bytes())
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 99


def cut_series_short(folder: Path) -> None:
    with h5py.File(folder / "out" / "run.h5", "r+") as f:
        for ds in f["timeseries"].values():
            ds.resize((1,))


def species(change: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["model"]["species"]["u"].update(change)


@dataclass
class Case:
    """One bad input: the command (after `tumorsim`), what stderr must say, the status."""

    name: str
    status: int
    fragments: tuple[str, ...]
    mutate: Callable[[dict[str, Any]], None] | None = None
    args: tuple[str, ...] = RUN
    raw: str | None = None  # config text written as is
    setup: Callable[[Path], Any] | None = None  # changes the folder before it is hashed


RESUME = (*RUN, "--resume")
CASES = [
    Case("bad yaml", 2, ("YAML syntax error at line 3",), raw="name: x\ngrid: [4, 4\n"),
    Case(
        "grid shape of the wrong type", 2, ("grid.shape",), lambda d: d["grid"].update(shape="big")
    ),
    Case(
        "end time of the wrong type",
        2,
        ("time.end", "'soon'"),
        lambda d: d["time"].update(end="soon"),
    ),
    Case(
        "unknown species in an expression",
        2,
        ("model.species.u.reaction: unknown name 'v'",),
        species({"reaction": "k*v*u"}),
    ),
    Case(
        "division by a zero parameter",
        2,
        ("model.species.u.reaction", "division by zero"),
        lambda d: (d["model"]["parameters"].update(k=0.0), species({"reaction": "u/k"})(d)),
    ),
    Case(
        "parameter that is not a number",
        2,
        ("model.parameters.k", "'1/0'"),
        lambda d: d["model"]["parameters"].update(k="1/0"),
    ),
    Case(
        "grid too large for memory",
        1,
        ("grid (60000, 60000, 60000)", "needs about", "use a smaller grid"),
        lambda d: d["grid"].update(shape=[60000] * 3),
    ),
    Case(
        "dry run of a grid too large",
        1,
        ("grid (60000, 60000, 60000)", "RAM available"),
        lambda d: d["grid"].update(shape=[60000] * 3),
        args=(*RUN, "--dry-run"),
    ),
    Case(
        "misspelt checkpoint key",
        2,
        ("unknown key 'output.checkpoint.every_step' (did you mean 'every_steps'?)",),
        lambda d: d["output"].update(checkpoint={"every_step": 1}),
    ),
    Case(
        "keep no checkpoint",
        2,
        ("output.checkpoint.keep", "greater than or equal to 1"),
        lambda d: d["output"].update(checkpoint={"keep": 0}),
    ),
    Case(
        "negative checkpoint interval",
        2,
        ("output.checkpoint.every_seconds", "greater than 0"),
        lambda d: d["output"].update(checkpoint={"every_seconds": -5}),
    ),
    Case(
        "negative progress interval", 2, ("--progress-every must be >= 0",), args=(*RUN[:-1], "-1")
    ),
    Case(
        "resume from a corrupt checkpoint",
        2,
        ("not a readable HDF5 file (truncated or corrupt?)",),
        args=(*RESUME, "latest"),
        setup=lambda f: newer_copy(f, bytes(range(256)) * 40),
    ),
    Case(
        "resume from a truncated checkpoint",
        2,
        ("not a readable HDF5 file (truncated or corrupt?)",),
        args=RESUME,
        setup=lambda f: newer_copy(f, latest(f).read_bytes()[:3000]),
    ),
    Case(
        "resume from a checkpoint with damaged fields",
        2,
        ("is damaged or incomplete",),
        args=RESUME,
        setup=corrupt_fields,
    ),
    Case(
        "resume from a newer checkpoint format",
        2,
        ("format version 99",),
        args=RESUME,
        setup=newer_format,
    ),
    Case(
        "resume with other physics",
        2,
        (
            "physics differs: model.parameters.k (checkpoint: 0.5, config: 0.7)",
            "resume with the config",
        ),
        lambda d: d["model"]["parameters"].update(k=0.7),
        args=RESUME,
    ),
    Case(
        "resume on another grid",
        2,
        ("grid.shape (checkpoint: [4, 4, 4], config: [5, 4, 4])",),
        lambda d: (d["grid"].update(shape=[5, 4, 4]), d["model"]["maps"].update(w="1")),
        args=RESUME,
    ),
    Case(
        "resume in another precision",
        2,
        ('precision (checkpoint: "float32", config: "float64")',),
        args=(*RUN, "--precision", "float64", "--resume"),
    ),
    Case(
        "resume after the map file changed",
        2,
        ("static maps (w) differ",),
        args=RESUME,
        setup=lambda f: np.save(f / "w.npy", np.full((4, 4, 4), 2.0)),
    ),
    Case(
        "resume without checkpoints",
        2,
        ("--resume latest: no checkpoint in",),
        args=RESUME,
        setup=lambda f: shutil.rmtree(f / "out" / "checkpoints"),
    ),
    Case(
        "resume into a missing folder",
        2,
        ("output folder", "nowhere' does not exist"),
        args=(*RUN[:3], "{dir}/nowhere", *RUN[4:], "--resume"),
    ),
    Case(
        "resume from a missing file",
        2,
        ("missing.h5' not found",),
        args=(*RESUME, "{dir}/missing.h5"),
    ),
    Case(
        "resume from a folder",
        2,
        ("is a folder, not a checkpoint file",),
        args=(*RESUME, "{dir}/out/checkpoints"),
    ),
    Case(
        "resume from the run file",
        2,
        ("is not a tumorsim checkpoint",),
        args=(*RESUME, "{dir}/out/run.h5"),
    ),
    Case(
        "resume and overwrite",
        2,
        ("cannot be combined with --overwrite",),
        args=(*RESUME, "latest", "--overwrite"),
    ),
    Case(
        "dry run and resume",
        2,
        ("--dry-run plans a new run",),
        args=(*RESUME, "latest", "--dry-run"),
    ),
    Case(
        "resume with the run file missing",
        1,
        ("run.h5' is missing",),
        args=RESUME,
        setup=lambda f: (f / "out" / "run.h5").unlink(),
    ),
    Case(
        "resume with the run file cut short",
        1,
        ("holds 1 time-series records, not the",),
        args=RESUME,
        setup=cut_series_short,
    ),
    Case("run into a folder holding a run", 1, ("already holds a run (run.h5)", "--overwrite")),
    Case(
        "output path is a file",
        1,
        ("exists and is not a folder",),
        args=(*RUN[:3], "{dir}/config.yaml", *RUN[4:]),
    ),
    Case(
        "output folder cannot be created",
        1,
        ("cannot create output folder",),
        args=(*RUN[:3], "{dir}/config.yaml/sub", *RUN[4:]),
    ),
]


def file_hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with config.yaml, w.npy and out/ (a finished run with three checkpoints)."""
    folder = tmp_path_factory.mktemp("base")
    np.save(folder / "w.npy", np.linspace(0.5, 1.5, 64).reshape(4, 4, 4))
    (folder / "config.yaml").write_text(yaml.safe_dump(TINY, sort_keys=False), encoding="utf-8")
    assert cli.main([a.format(dir=folder) for a in RUN]) == 0
    assert len(list_checkpoints(folder / "out" / "checkpoints")) == 3
    return folder


def prepare(case: Case, base: Path, folder: Path) -> list[str]:
    shutil.copytree(base, folder)
    if case.mutate is not None or case.raw is not None:
        data = copy.deepcopy(TINY)
        if case.mutate is not None:
            case.mutate(data)
        text = case.raw if case.raw is not None else yaml.safe_dump(data, sort_keys=False)
        (folder / "config.yaml").write_text(text, encoding="utf-8")
    if case.setup is not None:
        case.setup(folder)
    return [a.format(dir=folder) for a in case.args]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_clear_line_and_damages_nothing(
    case: Case, finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "case"
    argv = prepare(case, finished_run, folder)
    before = file_hashes(folder)
    capsys.readouterr()
    status = cli.main(argv)
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert (
        lines[0].startswith("tumorsim: error: ") and "Traceback" not in captured.out + captured.err
    )
    for fragment in case.fragments:
        assert fragment in lines[0], lines[0]
    assert status == case.status, lines[0]
    assert file_hashes(folder) == before


def test_enough_cases() -> None:
    assert len(CASES) >= 20


def test_a_corrupt_checkpoint_in_a_real_process(finished_run: Path, tmp_path: Path) -> None:
    folder = tmp_path / "case"
    shutil.copytree(finished_run, folder)
    newer_copy(folder, b"\x89HDF\r\n\x1a\n" + bytes(5000))
    before = file_hashes(folder)
    result = subprocess.run(
        [sys.executable, "-m", "solver", "run", "config.yaml", "--out", "out", "--resume"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "tumorsim: error: cannot read checkpoint 'out/checkpoints/checkpoint-999999999999.h5': not a "
        "readable HDF5 file (truncated or corrupt?): "
        + result.stderr.split("corrupt?): ", 1)[1].strip()
    ]
    assert file_hashes(folder) == before


def test_dry_run_reports_the_plan_and_writes_nothing(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "case"
    shutil.copytree(finished_run, folder)
    shutil.rmtree(folder / "out")
    before = file_hashes(folder)
    capsys.readouterr()
    assert (
        cli.main(["run", "--dry-run", str(folder / "config.yaml"), "--out", str(folder / "out")])
        == 0
    )
    out = capsys.readouterr().out
    assert "grid (4, 4, 4) = 64 cells of 1 x 1 x 1; 1 species (u), 1 map(s), float32" in out
    assert "integrator explicit, order 1 (as configured)" in out
    assert "dt = 0.15: time.safety 0.9 x the stability bound 0.166667, set by diffusion of u" in out
    assert "10 steps to t = 0.5; 11 snapshots, 6 time-series records" in out
    assert "integrator explicit (this run): dt = 0.15, 10 steps" in out
    assert "memory on CPU" in out and "fields 512 B (double-buffered) + maps 256 B + scratch" in out
    assert "runtime: about " in out and "ms per step, measured on 3 steps" in out
    assert file_hashes(folder) == before and not (folder / "out").exists()
