"""Where a study's members run: Dask clusters, from this machine to SLURM.

Public API:
    open_client(cluster, scheduler=None, workers=None, backend="auto") -> context manager
        yielding (distributed.Client, description): the cluster the study uses, closed after
    local_cluster(spec, workers, backend)   an embedded LocalCluster (CPU) or GPU cluster
    gpu_worker_specs(devices, members_per_gpu) -> dict   SpecCluster workers, one per GPU, pinned
    slurm_cluster(spec, workers=None)       dask-jobqueue's SLURMCluster from the study's section
    visible_gpus() -> list[str]             CUDA devices this process may use
    cpu_count() -> int                      cores this process may use
    PinGPUByWorkerIndex                     worker plugin: the i-th worker of a job takes the i-th GPU

CPU: one single-threaded worker process per core (numpy steps on one core each).
GPU: one worker per visible GPU with CUDA_VISIBLE_DEVICES pinned to its device, with
`members_per_gpu` threads (members sharing the device); dask-cuda's LocalCUDACluster
when it is installed, else a distributed.SpecCluster of Nannies with that variable in
their environment. `--scheduler ADDRESS` joins a running cluster instead (its workers
must see the study folder). SLURM: dask-jobqueue starts `jobs` batch jobs of `processes`
workers each; with `gpus_per_job` it asks for them with --gres and pins each worker of a
job to one of the job's GPUs (PinGPUByWorkerIndex). No scheduler of our own: Dask's.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from solver.errors import BackendError, ConfigError
from solver.study.spec import LocalClusterSpec, SlurmClusterSpec

log = logging.getLogger(__name__)


def cpu_count() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def visible_gpus() -> list[str]:
    """CUDA devices this process may use: CUDA_VISIBLE_DEVICES when set, else those CuPy counts."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        devices = [d.strip() for d in env.split(",") if d.strip()]
        return [] if devices[:1] == ["-1"] else devices
    try:
        import cupy

        return [str(i) for i in range(cupy.cuda.runtime.getDeviceCount())]
    except Exception:  # noqa: BLE001 (no CuPy, no driver, no device: CuPy raises several kinds)
        return []


def gpu_worker_specs(devices: list[str], members_per_gpu: int = 1) -> dict[str, dict[str, Any]]:
    """SpecCluster worker specs: one Nanny per device, CUDA_VISIBLE_DEVICES set to it before
    the worker process starts (so CuPy sees only that device, as device 0)."""
    from distributed import Nanny

    return {
        f"gpu-{device}": {
            "cls": Nanny,
            "options": {"nthreads": members_per_gpu, "env": {"CUDA_VISIBLE_DEVICES": device}, "name": f"gpu-{device}"},
        }
        for device in devices
    }


def local_cluster(spec: LocalClusterSpec, workers: int | None = None, backend: str = "auto") -> tuple[Any, str]:
    """An embedded cluster sized to this machine; returns it and a one-line description.

    Raises:
        BackendError: backend gpu where no GPU is visible.
    """
    from distributed import LocalCluster

    n = workers or spec.workers
    gpus = visible_gpus() if spec.gpus == "auto" and backend in ("auto", "gpu") else []
    if backend == "gpu" and not gpus:
        raise BackendError("the members' backend is gpu, but no GPU is visible here (CUDA_VISIBLE_DEVICES, CuPy)")
    if gpus:
        devices = gpus[: n or len(gpus)]
        per = spec.members_per_gpu
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError:
            from distributed import Scheduler, SpecCluster

            scheduler = {"cls": Scheduler, "options": {"dashboard_address": spec.dashboard, "host": "127.0.0.1"}}
            cluster = SpecCluster(workers=gpu_worker_specs(devices, per), scheduler=scheduler, silence_logs=logging.WARNING)
            return cluster, f"{len(devices)} GPU worker(s) (devices {','.join(devices)}), {per} member(s) each"
        cluster = LocalCUDACluster(CUDA_VISIBLE_DEVICES=devices, threads_per_worker=per,
                                   dashboard_address=spec.dashboard, host="127.0.0.1")
        return cluster, f"LocalCUDACluster: {len(devices)} GPU worker(s), {per} member(s) each"
    n = n or cpu_count()
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=spec.dashboard,
                           host="127.0.0.1", silence_logs=logging.WARNING)
    return cluster, f"LocalCluster: {n} single-threaded CPU worker(s)"


def slurm_cluster(spec: SlurmClusterSpec, workers: int | None = None, start: bool = True) -> tuple[Any, str]:
    """dask-jobqueue's SLURMCluster for the study's `cluster: {kind: slurm}` section.

    Each job has `cores` cores and `memory`, runs `processes` workers (default:
    gpus_per_job, else 1) and asks for `gpus_per_job` GPUs with --gres. With start, the
    cluster is scaled to `workers` workers (default: jobs x processes): sbatch is called.
    """
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise ConfigError("cluster: kind slurm needs dask-jobqueue (pip install -e '.[study]')") from None
    processes = spec.processes or max(spec.gpus_per_job, 1)
    if spec.cores % processes:
        raise ConfigError(f"cluster.cores ({spec.cores}) must be a multiple of cluster.processes ({processes}): "
                          "each worker of a job gets cores / processes threads")
    directives = list(spec.job_extra_directives)
    if spec.gpus_per_job:
        directives.append(f"--gres=gpu:{spec.gpus_per_job}")
    options: dict[str, Any] = {
        "queue": spec.queue, "account": spec.account, "walltime": spec.walltime, "cores": spec.cores,
        "memory": spec.memory, "processes": processes, "job_extra_directives": directives,
        "job_script_prologue": list(spec.job_script_prologue), "worker_extra_args": list(spec.worker_extra_args),
        "job_name": spec.job_name,
    }
    for key in ("local_directory", "log_directory", "interface", "python"):
        if getattr(spec, key) is not None:
            options[key] = getattr(spec, key)
    cluster = SLURMCluster(**options)
    n = workers or spec.jobs * processes
    if start:
        cluster.scale(n=n)
    gpus = f", {spec.gpus_per_job} GPU(s) per job" if spec.gpus_per_job else ""
    return cluster, f"SLURMCluster: {n} worker(s) in jobs of {processes} worker(s){gpus}, queue {spec.queue or '(default)'}"


class PinGPUByWorkerIndex(WorkerPlugin):
    """Worker plugin: worker i of a job (named NAME-i by `dask worker --nworkers`) takes the
    i-th of the job's CUDA_VISIBLE_DEVICES, before any member imports CuPy."""

    name = "tumorsim-pin-gpu"

    def setup(self, worker: Any) -> None:
        devices = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        match = re.search(r"-(\d+)$", str(worker.name))
        if len(devices) > 1 and match:
            os.environ["CUDA_VISIBLE_DEVICES"] = devices[int(match.group(1)) % len(devices)]
            log.info("worker %s pinned to GPU %s", worker.name, os.environ["CUDA_VISIBLE_DEVICES"])


def _prepare_worker(ignore_sigint: bool) -> bool:
    """On each worker: import what a member needs (so the first member does not pay for it)
    and, on workers this study started, ignore SIGINT: Ctrl-C reaches the whole process
    group, and the study (not each worker) decides how to stop."""
    if ignore_sigint:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    for module in ("solver.run", "solver.study.members", "solver.study.outcomes"):
        importlib.import_module(module)
    return True


@contextmanager
def open_client(
    cluster: LocalClusterSpec | SlurmClusterSpec, scheduler: str | None = None, workers: int | None = None,
    backend: str = "auto",
) -> Iterator[tuple[Any, str]]:
    """The Dask client of a study, with its cluster; both closed on exit.

    Args:
        cluster: the study's `cluster:` section.
        scheduler: the address of a running scheduler to join instead (tcp://host:8786).
        workers: how many workers to start (embedded or SLURM clusters).
        backend: the members' backend (auto/gpu/cpu): whether GPU workers are wanted.
    """
    from distributed import Client

    own = None
    if scheduler is not None:
        if workers is not None:
            raise ConfigError("--workers sizes a cluster the study starts; with --scheduler the cluster's own workers run")
        client = Client(scheduler, timeout="30s")
        description = f"scheduler {scheduler}: {len(client.scheduler_info().get('workers', {}))} worker(s)"
    elif isinstance(cluster, SlurmClusterSpec):
        own, description = slurm_cluster(cluster, workers)
        client = Client(own)
        if cluster.gpus_per_job > 1:
            client.register_plugin(PinGPUByWorkerIndex())
    else:
        own, description = local_cluster(cluster, workers, backend)
        client = Client(own)
        client.run(_prepare_worker, True)
    log.info("study cluster: %s", description)
    try:
        yield client, description
    finally:
        client.close()
        if own is not None:
            own.close()
