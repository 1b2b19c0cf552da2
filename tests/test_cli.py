"""The command line (`python -m solver`, i.e. `tumorsim`) in a subprocess.

Every bad input must give exactly one line on stderr, `tumorsim: error: ...`, a
non-zero exit, no traceback, and must leave the --out folder alone. The bad inputs
run two at a time in one module fixture (each costs about a second of imports).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

# D = 1 on a 4x4x4 grid with h = 1: the explicit bound is h^2 / (6 D) = 1/6.
TINY: dict[str, Any] = {
    "name": "tiny",
    "backend": "numpy",
    "grid": {"shape": [4, 4, 4], "spacing": 1.0},
    "time": {"end": 0.1},
    "model": {
        "parameters": {"D": 1.0},
        "species": {"u": {"diffusion": "D", "reaction": "u*(1 - u)", "initial": 0.5}},
    },
}


def tumorsim(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "solver", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def species(change: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        data["model"]["species"]["u"].update(change)

    return mutate


@dataclass
class Case:
    """One bad input: how to write the config, the command, what stderr must say."""

    name: str
    mutate: Callable[[dict[str, Any]], None] | None = None
    fragments: tuple[str, ...] = ()
    raw: str | None = None  # config text written as is, instead of TINY mutated
    args: tuple[str, ...] = ()  # extra arguments after `run CONFIG --out OUT`
    command: str = "run"
    config: str | None = "config.yaml"  # None: no config argument; other: a path as given
    result: subprocess.CompletedProcess[str] | None = field(default=None, repr=False)


CASES = [
    Case(
        "unknown key",
        lambda d: d.update(gird={}),
        ("unknown key 'gird' (did you mean 'grid'?)", "valid keys: name, backend"),
    ),
    Case(
        "negative diffusion",
        species({"diffusion": -1}),
        ("model.species.u.diffusion", "-1", ">= 0"),
    ),
    Case(
        "unstable fixed dt",
        lambda d: d.update(time={"end": 1, "dt": 10, "integrator": "explicit"}),
        ("time.dt = 10", "stability bound 0.166667"),
    ),
    Case(
        "malformed expression",
        species({"reaction": "u*(1-"}),
        ("model.species.u.reaction: malformed expression",),
    ),
    Case(
        "__import__ call",
        species({"reaction": "__import__('os').system('touch pwned')"}),
        ("model.species.u.reaction", "not allowed"),
    ),
    Case(
        "bare __import__",
        species({"initial": "__import__('os')"}),
        ("model.species.u.initial", "'__import__' is not an allowed function"),
    ),
    Case(
        "attribute access",
        species({"reaction": "u.real"}),
        ("model.species.u.reaction: attribute access '.real' is not allowed",),
    ),
    Case(
        "unknown name in reaction",
        species({"reaction": "k*u"}),
        ("model.species.u.reaction: unknown name 'k'", "known names: D, cell_volume, domain_volume, t, u, x, y, z"),
    ),
    Case(
        "chemotaxis toward a non-species",
        species({"chemotaxis": {"signal": "v", "sensitivity": 1}}),
        ("model.species.u.chemotaxis.signal", "'v' is not a species"),
    ),
    Case(
        "division by zero in diffusion",
        species({"diffusion": "D/0"}),
        ("model.species.u.diffusion", "division by zero"),
    ),
    Case(
        "reserved species name",
        lambda d: d["model"].update(species={"t": {}}),
        ("model.species: species name 't' is reserved",),
    ),
    Case("zero spacing", lambda d: d["grid"].update(spacing=0), ("grid.spacing", "greater than 0")),
    Case(
        "yaml syntax error",
        raw="name: x\ngrid:\n  shape: [4, 4, 4]\n  spacing: 1: 2\n",
        fragments=("YAML syntax error at line 4",),
    ),
    Case(
        "yaml key twice",
        raw="time: {end: 1}\ntime: {end: 2}\n",
        fragments=("line 2", "key 'time' is written twice"),
    ),
    Case(
        "initial from a missing .npy",
        species({"initial": {"file": "missing.npy"}}),
        ("model.species.u.initial", "missing.npy does not exist"),
    ),
    Case(
        "initial .npy with the wrong shape",
        species({"initial": {"file": "wrong.npy"}}),
        ("model.species.u.initial", "has shape (3, 3, 3); the grid is (4, 4, 4)"),
    ),
    Case("missing config file", config="nowhere.yaml", fragments=("nowhere.yaml", "not found")),
    Case("config is a folder", config=".", fragments=("is a folder",)),
    Case(
        "unknown backend option",
        args=("--backend", "tpu"),
        fragments=("argument --backend: invalid choice: 'tpu'",),
    ),
    Case(
        "unknown option", args=("--colour", "red"), fragments=("unrecognized arguments: --colour",)
    ),
    Case("gpu backend without a GPU", args=("--backend", "gpu"), fragments=("backend 'gpu'",)),
    Case(
        "validate an unknown key",
        lambda d: d["time"].update(ends=1),
        command="validate",
        fragments=("unknown key 'time.ends' (did you mean 'end'?)",),
    ),
]
CASE_IDS = [case.name for case in CASES]


def run_case(case: Case, root: Path) -> Case:
    folder = root / case.name.replace(" ", "_")
    folder.mkdir()
    np.save(folder / "wrong.npy", np.zeros((3, 3, 3)))
    if case.config == "config.yaml":
        data = copy.deepcopy(TINY)
        if case.mutate:
            case.mutate(data)
        text = case.raw if case.raw is not None else yaml.safe_dump(data, sort_keys=False)
        (folder / "config.yaml").write_text(text, encoding="utf-8")
    args: list[str] = [case.command]
    if case.config is not None:
        args.append(case.config)
    if case.command == "run":
        args += ["--out", "out", *case.args]
    case.result = tumorsim(*args, cwd=folder)
    return case


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Case, Path]]:
    """Every bad input, run once (two at a time), with the folder it ran in."""
    root = tmp_path_factory.mktemp("bad_inputs")
    cases = [copy.copy(case) for case in CASES]
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = list(pool.map(lambda case: run_case(case, root), cases))
    return {case.name: (case, root / case.name.replace(" ", "_")) for case in done}


@functools.cache
def _gpu_present() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 (no CuPy, or no usable CUDA driver)
        return False


def _skip_if_it_would_run(name: str) -> None:
    if name == "gpu backend without a GPU" and _gpu_present():
        pytest.skip("this machine has a GPU: backend 'gpu' is not an error here")


@pytest.mark.parametrize("name", CASE_IDS)
def test_bad_input_gives_one_error_line_and_no_traceback(
    bad_runs: dict[str, tuple[Case, Path]], name: str
) -> None:
    _skip_if_it_would_run(name)
    case, _ = bad_runs[name]
    result = case.result
    assert result is not None
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tumorsim: error: ") and len(lines[0]) > len("tumorsim: error: ")
    assert "Traceback" not in result.stdout + result.stderr
    for fragment in case.fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("name", CASE_IDS)
def test_bad_input_leaves_the_output_folder_alone(
    bad_runs: dict[str, tuple[Case, Path]], name: str
) -> None:
    _skip_if_it_would_run(name)
    _, folder = bad_runs[name]
    assert not (folder / "out").exists()
    assert not (folder / "outputs").exists()
    assert not (folder / "pwned").exists()


def test_exit_status_says_whose_fault(bad_runs: dict[str, tuple[Case, Path]]) -> None:
    """2 for a bad config or bad arguments."""
    for name in (
        "unknown key",
        "unstable fixed dt",
        "malformed expression",
        "unknown backend option",
        "initial .npy with the wrong shape",
        "missing config file",
    ):
        case, _ = bad_runs[name]
        assert case.result is not None and case.result.returncode == 2, name


# --------------------------------------------------------------------------- good input


def test_validate_reports_dt_and_its_bound(tmp_path: Path) -> None:
    data = copy.deepcopy(TINY)
    data["time"] = {"end": 1.0, "dt": 0.1, "integrator": "explicit"}
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    result = tumorsim("validate", "ok.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "ok.yaml: valid" in result.stdout
    assert "integrator explicit, order 1; dt = 0.1; stability bound 0.166667" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.yaml"]  # validate writes nothing


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_quickstart_runs_and_is_never_overwritten_silently(tmp_path: Path) -> None:
    out = tmp_path / "qs"
    first = tumorsim("run", "--out", str(out), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stdout + first.stderr
    assert (out / "run.h5").is_file() and (out / "config.yaml").is_file()
    resolved = yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))
    assert resolved["name"] == "quickstart"
    assert resolved["time"]["dt"] == "auto" and resolved["output"]["check_every"] == 100
    before = {p.name: sha256(p) for p in out.iterdir() if p.is_file()}

    again = tumorsim("run", "--out", str(out), cwd=tmp_path)
    assert again.returncode != 0
    lines = again.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tumorsim: error: ")
    assert "already holds a run" in lines[0] and "--overwrite" in lines[0]
    assert "Traceback" not in again.stdout + again.stderr
    assert {p.name: sha256(p) for p in out.iterdir() if p.is_file()} == before

    # --overwrite replaces the run (1.5 days of it: the replacement, not the run, is tested)
    forced = tumorsim("run", "--out", str(out), "--overwrite", "--set", "time.end=1.5",
                      "--set", "treatment[il2].count=1", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert (out / "run.h5").is_file() and sha256(out / "run.h5") != before["run.h5"]
    replaced = yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))
    assert replaced["time"]["end"] == 1.5
    assert {k: v for k, v in replaced.items() if k not in ("time", "treatment")} == \
        {k: v for k, v in resolved.items() if k not in ("time", "treatment")}


# ------------------------------------------------------------- in process: the last guards


def test_usage_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from solver import cli

    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("tumorsim: error: the following arguments are required: COMMAND")


@pytest.mark.parametrize(
    ("raised", "status", "line"),
    [
        (OSError(28, "No space left on device"), 1, "tumorsim: error: [Errno 28] No space left"),
        (
            RuntimeError("boom\nsecond line"),
            70,
            "tumorsim: internal error: RuntimeError: boom second line (please report it",
        ),
    ],
)
def test_unexpected_failure_is_still_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    raised: Exception,
    status: int,
    line: str,
) -> None:
    from solver import cli

    def fail(args: object) -> int:
        raise raised

    monkeypatch.setattr(cli, "cmd_validate", fail)
    assert cli.main(["validate", "any.yaml"]) == status
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(line)
    assert "Traceback" not in captured.out + captured.err
