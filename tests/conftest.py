"""Shared fixtures. Collecting the suite never needs CuPy or a GPU."""

from __future__ import annotations

import pytest


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
