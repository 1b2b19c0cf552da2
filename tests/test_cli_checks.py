"""Small command-line checks: unknown fields, series and a --labels count are bad input
(exit 2, one line listing what is allowed); `view --time` between snapshots says which one
it shows; `^` in an expression points to `**`; a species without `initial` is warned about;
`from solver import load_config` works as the package docstring says."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from solver import cli

TINY = ("name: tiny\nprecision: float64\ngrid: {shape: [4, 3, 2], spacing: 1.0}\n"
        "time: {end: 0.2, integrator: explicit}\noutput: {snapshot_every: 0.1, pictures: false}\n"
        "model:\n  parameters: {D: 0.1}\n  species:\n"
        "    u: {diffusion: D, reaction: 'REACTION', initial: 'x'}\n")


def config(folder: Path, reaction: str = "-u", extra: str = "") -> Path:
    path = folder / "c.yaml"
    path.write_text(TINY.replace("REACTION", reaction) + extra, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny")
    assert cli.main(["run", str(config(folder)), "--out", str(folder / "out"), "--progress-every", "0"]) == 0
    return folder / "out"


def one_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("tumorsim: error: "), err
    return err


def test_view_of_an_unknown_field_lists_the_fields(run_dir: Path, tmp_path: Path, capsys) -> None:
    shot = tmp_path / "v.png"
    assert cli.main(["view", str(run_dir), "--field", "X", "--screenshot", str(shot)]) == 2
    assert one_error(capsys).endswith("unknown field 'X' in run.h5: fields are u; maps are none")
    assert not shot.exists()


def test_plot_of_an_unknown_series_lists_the_series(run_dir: Path, tmp_path: Path, capsys) -> None:
    assert cli.main(["plot", str(run_dir), "--series", "total_u,foo", "-o", str(tmp_path / "p.png")]) == 2
    assert "unknown time series 'foo' in run.h5: series are total_u, min_u, max_u" in one_error(capsys)
    assert not (tmp_path / "p.png").exists()


def test_compare_needs_one_label_per_run(run_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "c.png"
    assert cli.main(["compare", str(run_dir), str(run_dir), "-o", str(out), "--labels", "a,b,c"]) == 2
    assert "--labels gives 3 label(s) for 2 run(s): give one per run" in one_error(capsys)
    assert not out.exists()


def test_view_between_snapshots_says_which_it_shows(
    run_dir: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    import solver.viz

    shown = {}
    monkeypatch.setattr(solver.viz, "view", lambda run, **kw: shown.update(kw) or None)
    assert cli.main(["view", str(run_dir), "--time", "0.13", "--screenshot", str(tmp_path / "v.png")]) == 0
    assert shown["time"] == 0.1
    assert capsys.readouterr().err.strip() == ("tumorsim: no snapshot at t = 0.13; showing the nearest, t = 0.1 "
                                               "(snapshots at 0, 0.1, 0.2)")
    assert cli.main(["view", str(run_dir), "--time", "0.2", "--screenshot", str(tmp_path / "v.png")]) == 0
    assert shown["time"] == 0.2 and capsys.readouterr().err == ""  # a snapshot time: no note


def test_caret_is_refused_with_a_hint_at_the_power_operator(tmp_path: Path, capsys) -> None:
    assert cli.main(["validate", str(config(tmp_path, "-u^2"))]) == 2
    assert one_error(capsys).endswith("model.species.u.reaction: '^' is not a power here in '-u^2'; write powers "
                                      "with '**' (u**2, not u^2)")


def test_a_species_without_initial_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    extra = "    v: {diffusion: D, reaction: '-v'}\n"
    with caplog.at_level(logging.WARNING, logger="solver.model"):
        assert cli.main(["validate", str(config(tmp_path, extra=extra))]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["species v has no initial: starts at 0 (initial: 0 says so and silences this)"]


def test_load_config_is_public_as_the_docstring_says(tmp_path: Path) -> None:
    import solver
    from solver import load_config

    assert "load_config(path) -> RunConfig" in solver.__doc__
    config_ = load_config(config(tmp_path))
    assert type(config_).__name__ == "RunConfig" and config_.grid.shape == (4, 3, 2)
