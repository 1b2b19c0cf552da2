"""The SLURM path (solver/study/cluster.py): dask-jobqueue's SLURMCluster made from a study's
`cluster:` section writes a valid job script, without a SLURM cluster (nothing is submitted)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("dask_jobqueue", reason="the `study` extra is not installed")

from solver.errors import ConfigError
from solver.study.cluster import PinGPUByWorkerIndex, slurm_cluster
from solver.study.spec import SlurmClusterSpec, load_study

REPO = Path(__file__).resolve().parent.parent


def job_script(spec: SlurmClusterSpec) -> str:
    cluster, _ = slurm_cluster(spec, start=False)
    try:
        return cluster.job_script()
    finally:
        cluster.close()


def test_the_shipped_slurm_study_gives_a_gpu_job_script(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # log_directory is created where the study runs
    spec = load_study(REPO / "configs" / "studies" / "slurm_gpu.yaml").spec.cluster
    assert isinstance(spec, SlurmClusterSpec)
    script = job_script(spec)
    directives = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    for expected in ("#SBATCH -p gpu", "#SBATCH -A my_project", "#SBATCH -t 04:00:00", "#SBATCH -n 1",
                     "#SBATCH --cpus-per-task=8", "#SBATCH --mem=60G", "#SBATCH --gres=gpu:2",
                     "#SBATCH --constraint=h100", "#SBATCH --qos=normal", "#SBATCH -J tumorsim"):
        assert expected in directives, (expected, directives)
    assert "module load cuda/12.4" in script and "source $HOME/venvs/tumorsim/bin/activate" in script
    worker = next(line for line in script.splitlines() if "distributed.cli.dask_worker" in line)
    assert "--nworkers 2" in worker and "--nthreads 4" in worker and "--local-directory $TMPDIR" in worker
    assert (tmp_path / "logs" / "dask").is_dir()
    if shutil.which("bash"):
        checked = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True, check=False)
        assert checked.returncode == 0, checked.stderr


def test_a_cpu_partition_needs_no_gres_and_one_worker_per_job() -> None:
    script = job_script(SlurmClusterSpec(kind="slurm", queue="cpu", cores=4, memory="8GB", walltime="00:30:00"))
    assert "#SBATCH -p cpu" in script and "--gres" not in script
    assert "--nthreads 4" in script and "--nworkers" not in script


def test_cores_must_split_evenly_between_the_workers_of_a_job() -> None:
    with pytest.raises(ConfigError, match=r"cluster.cores \(6\) must be a multiple of cluster.processes \(4\)"):
        slurm_cluster(SlurmClusterSpec(kind="slurm", cores=6, gpus_per_job=4), start=False)


def test_each_worker_of_a_gpu_job_takes_its_own_device(monkeypatch) -> None:
    from types import SimpleNamespace

    plugin = PinGPUByWorkerIndex()
    for name, expected in (("SLURMCluster-3-0", "4"), ("SLURMCluster-3-1", "6")):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
        plugin.setup(SimpleNamespace(name=name))
        import os

        assert os.environ["CUDA_VISIBLE_DEVICES"] == expected
