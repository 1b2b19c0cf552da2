"""A study on a 2-worker Dask LocalCluster (solver/study/engine.py): one summary row per
member with its values, a failing member isolated, a member's run.h5 equal bit for bit to
`tumorsim run` of its resolved config, the report, and the command line's refusals."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import pytest

pytest.importorskip("distributed", reason="the `study` extra is not installed")
pd = pytest.importorskip("pandas", reason="the `study` extra is not installed")

from solver.study import load_summary, make_report, run_study
from solver.study.engine import execute
from solver.study.members import read_result
from solver.study.spec import load_study

REPO = Path(__file__).resolve().parent.parent


def tiny_study(end: float = 1.0, **changes: Any) -> dict[str, Any]:
    """The quickstart on 8^3 cells of 300 um to t = `end`, one IL-2 bolus, on 2 CPU workers."""
    data: dict[str, Any] = {
        "name": "tiny",
        "base": "quickstart",
        "set": {"grid.shape": [8, 8, 8], "grid.spacing": 300.0, "time.end": end, "backend": "numpy",
                "output.pictures": False, "output.snapshot_every": 0.5, "output.series_every": 0.1,
                "model.species.T.initial.tumour.smooth": 300.0, "treatment[il2].count": 1,
                "treatment[chemo].dose_rate": 2.0,
                "treatment[il2].start": 0.5},
        "vary": {"offset": {"values": [0.0, 0.25]},
                 "treatment[chemo].dose_rate": {"values": [1.0, 2.0, -1.0]}},
        "derive": {"treatment[il2].start": "0.5 + offset"},
        "cluster": {"kind": "local", "workers": 2},
    }
    data.update(changes)
    return data


def tumorsim(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "solver", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)


def dataset_hashes(path: Path) -> dict[str, str]:
    """SHA-256 of every dataset of an HDF5 file (dtype, shape and bytes), by path."""
    out: dict[str, str] = {}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            value = obj[()]
            digest = hashlib.sha256(f"{getattr(value, 'dtype', '')}{getattr(value, 'shape', '')}".encode())
            digest.update(value.tobytes() if hasattr(value, "tobytes") else repr(value).encode())
            out[name] = digest.hexdigest()

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return out


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("study") / "tiny"
    frame = run_study(tiny_study(), out=out, progress=False)
    return out, frame


def test_the_summary_has_one_row_per_member_with_its_values(study_dir) -> None:
    out, frame = study_dir
    assert len(frame) == 6 and list(frame["index"]) == list(range(6))
    assert list(frame["offset"]) == [0.0, 0.0, 0.0, 0.25, 0.25, 0.25]
    assert list(frame["treatment[chemo].dose_rate"]) == [1.0, 2.0, -1.0] * 2
    assert list(frame["treatment[il2].start"]) == [0.5] * 3 + [0.75] * 3
    assert frame["id"].is_unique
    for column in ("final_burden", "lymphocyte_nadir", "chemo_dose", "status", "error", "wall_seconds"):
        assert column in frame.columns
    on_disk = load_summary(out)
    pd.testing.assert_frame_equal(on_disk, frame)
    csv = pd.read_csv(out / "summary.csv")
    assert list(csv["id"]) == list(frame["id"]) and list(csv["status"]) == list(frame["status"])


def test_a_failing_member_is_recorded_and_the_others_finish(study_dir) -> None:
    _, frame = study_dir
    failed = frame[frame["treatment[chemo].dose_rate"] < 0]
    assert list(failed["status"]) == ["failed", "failed"]
    for error in failed["error"]:
        assert "\n" not in error and "dose_rate must be > 0" in error
    done = frame[frame["treatment[chemo].dose_rate"] > 0]
    assert list(done["status"]) == ["done"] * 4
    assert done["final_burden"].notna().all() and (done["error"] == "").all()


def test_outcomes_say_what_the_regimen_did(study_dir) -> None:
    _, frame = study_dir
    done = frame[frame["status"] == "done"]
    assert (done["chemo_dose"] == done["treatment[chemo].dose_rate"]).all()  # one day of infusion
    assert (done["il2_dose"] == 4.2e7).all()  # one bolus of the quickstart's 4.2e7 IU
    assert ((done["lymphocyte_nadir"] > 0) & (done["lymphocyte_nadir"] < 1)).all()  # chemo kills lymphocytes
    low, high = done[done["treatment[chemo].dose_rate"] == 1.0], done[done["treatment[chemo].dose_rate"] == 2.0]
    assert (high["lymphocyte_nadir"].to_numpy() < low["lymphocyte_nadir"].to_numpy()).all()  # more drug, more toxic
    assert (high["final_burden"].to_numpy() < low["final_burden"].to_numpy()).all()  # and more kill (the
    # minimum is the day-0 burden: over one day the tumour outgrows the small doses here)
    assert frame["base"].sum() == 1 and bool(frame.loc[frame["base"], "treatment[chemo].dose_rate"].iloc[0] == 2.0)


def test_a_member_equals_a_standalone_run_of_its_resolved_config_bit_for_bit(study_dir, tmp_path: Path) -> None:
    out, frame = study_dir
    member = out / frame[frame["status"] == "done"]["folder"].iloc[1]
    assert {p.name for p in member.iterdir()} >= {"config.yaml", "run.h5", "run.xdmf", "result.json"}
    solo = tumorsim("run", str(member / "config.yaml"), "--out", "solo", "--progress-every", "0", cwd=tmp_path)
    assert solo.returncode == 0, solo.stderr
    ours, theirs = dataset_hashes(member / "run.h5"), dataset_hashes(tmp_path / "solo" / "run.h5")
    assert len(ours) > 30 and ours == theirs
    with h5py.File(member / "run.h5") as a, h5py.File(tmp_path / "solo" / "run.h5") as b:
        assert json.loads(a.attrs["config_json"]) == json.loads(b.attrs["config_json"])
        # text attributes are fixed-length UTF-8 bytes (checksummed header), whatever h5py returns for them
        assert bytes(a.attrs["backend"]) == bytes(b.attrs["backend"]) == b"numpy"


def test_resuming_a_finished_study_runs_nothing_and_a_new_run_refuses_the_folder(study_dir) -> None:
    from solver.errors import SimulationError
    from solver.study import resolve_study

    out, frame = study_dir
    before = {p: p.stat().st_mtime_ns for p in out.glob("members/*/*")}
    result = execute(resolve_study(tiny_study()), out, resume=True, progress=False)
    assert result.ran == 0 and result.skipped == 6 and result.cluster == ""
    assert {p: p.stat().st_mtime_ns for p in out.glob("members/*/*")} == before
    pd.testing.assert_frame_equal(result.summary, frame)
    with pytest.raises(SimulationError, match="already holds a study; pass --resume"):
        execute(resolve_study(tiny_study()), out, progress=False)


def test_the_report_draws_the_heatmap_pareto_front_and_table(study_dir, tmp_path: Path) -> None:
    out, frame = study_dir
    report = make_report(out, output=tmp_path / "report")
    names = sorted(p.name for p in report.files)
    assert names == ["heatmap.png", "pareto.png", "summary.md", "timeseries.png"]
    for p in report.files:
        assert p.stat().st_size > 1000
    assert report.heatmap == ("offset", "treatment[chemo].dose_rate", "final_burden")
    assert report.efficacy == "final_burden" and report.toxicity == "lymphocyte_nadir"
    done = set(frame["id"][frame["status"] == "done"])
    assert report.front and set(report.front) <= done and report.best in done
    table = (tmp_path / "report" / "summary.md").read_text(encoding="utf-8")
    assert all(f"`{i}`" in table for i in frame["id"]) and "★" in table and "dose_rate must be > 0" in table


def test_results_are_kept_in_each_member_folder(study_dir) -> None:
    out, frame = study_dir
    for _, row in frame[frame["status"] == "done"].iterrows():
        result = read_result(out / row["folder"])
        assert result["id"] == row["id"] and result["status"] == "done"
        assert result["outcomes"]["final_burden"] == row["final_burden"]


def test_bad_study_input_is_one_line_exit_2_and_creates_nothing(tmp_path: Path) -> None:
    import yaml

    data = tiny_study()
    data["vary"]["treatment[pd1].start"] = {"values": [1.0]}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    bad = tumorsim("study", "bad.yaml", "--out", "out", cwd=tmp_path)
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "no entry for agent 'pd1'" in lines[0] and lines[0].startswith("tumorsim: error: bad.yaml")
    (tmp_path / "good.yaml").write_text(yaml.safe_dump(tiny_study()), encoding="utf-8")
    dry = tumorsim("study", "good.yaml", "--out", "out", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "6 member(s)" in dry.stdout and "estimate: about" in dry.stdout and "offset=0.25" in dry.stdout
    assert not (tmp_path / "out").exists()


def test_the_gpu_fallback_pins_one_device_per_worker() -> None:
    """Without dask-cuda: a SpecCluster of Nannies, CUDA_VISIBLE_DEVICES set per worker
    (the devices here are names only: no GPU is needed to check the pinning)."""
    import os

    from distributed import Client, Scheduler, SpecCluster

    from solver.study.cluster import gpu_worker_specs

    specs = gpu_worker_specs(["3", "5"], members_per_gpu=2)
    assert sorted(specs) == ["gpu-3", "gpu-5"] and specs["gpu-3"]["options"]["nthreads"] == 2
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": None, "host": "127.0.0.1"}}
    with SpecCluster(workers=specs, scheduler=scheduler) as cluster, Client(cluster) as client:
        seen = client.run(lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))
    assert sorted(seen.values()) == ["3", "5"]


def test_a_study_file_takes_its_base_relative_to_itself(tmp_path: Path) -> None:
    import yaml

    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "base.yaml").write_text(
        (REPO / "configs" / "quickstart.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "studies").mkdir()
    data = {"base": "../configs/base.yaml", "vary": {"treatment[chemo].dose_rate": {"values": [1.0]}}}
    (tmp_path / "studies" / "s.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    study = load_study(tmp_path / "studies" / "s.yaml")
    assert study.base_source == str(tmp_path / "configs" / "base.yaml") and study.name == "s"
