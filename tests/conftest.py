"""Shared fixtures. Collecting the suite never needs CuPy or a GPU."""

from __future__ import annotations

import os

import pytest

# `backend: auto` means the NumPy reference in this suite (solver/backends/registry.py): each
# of its many small models would otherwise compile kernels of its own (seconds each). The
# compiled CPU backend is tested in test_cpu_backend.py, which asks for it by name. Subprocesses
# (the CLI tests) inherit this.
os.environ.setdefault("TUMORSIM_AUTO_BACKEND", "numpy")


def _gpu_available() -> tuple[bool, str]:
    try:
        import cupy
    except Exception as exc:  # ImportError, or a CUDA install that fails at import
        return False, f"CuPy does not import ({exc.__class__.__name__})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError: no driver / insufficient driver
        return False, f"no usable CUDA device ({exc.__class__.__name__})"
    return count > 0, "CuPy found no CUDA device"


@pytest.fixture(scope="session")
def gpu() -> None:
    """Skip the test unless CuPy imports and at least one CUDA device is present."""
    ok, why = _gpu_available()
    if not ok:
        pytest.skip(f"gpu test: {why}")


@pytest.fixture(scope="session")
def dask_scheduler():
    """The address of a 2-worker Dask LocalCluster shared by the optimisation, sensitivity and
    cohort tests (started once: a cluster costs seconds to start on a 2-core machine)."""
    pytest.importorskip("distributed", reason="the `study` extra is not installed")
    import logging

    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      host="127.0.0.1", silence_logs=logging.WARNING) as cluster:
        yield cluster.scheduler_address


# The parallel workers (pytest-xdist, one test file per worker at a time) take files in
# collection order; the heaviest files first keep one long file from running alone at the
# end of the suite. Measured heaviest first on the 2-core CI machine; the rest keep their
# order.
HEAVY_FIRST = (
    "test_treatment_arms.py", "test_default_tolerance.py", "test_imex.py", "test_study_resume.py", "test_notebook.py",
    "test_regimen_order.py", "test_reliability.py", "test_depillis_model.py", "test_oxygen_fractions.py",
    "test_cli.py", "test_study_engine.py", "test_benchmarks.py", "test_checkpoint.py",
    "test_spatial_biology.py", "test_sensitivity.py", "test_optimise.py", "test_faults.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(HEAVY_FIRST)))  # stable: file order kept
