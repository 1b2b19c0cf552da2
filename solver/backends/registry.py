"""Pick a backend by name: "cpu" (NumPy), "gpu" (CuPy), or "auto".

Public API:
    get_backend(name) -> Backend

"auto" uses the GPU when CuPy imports and a CUDA device is present, else NumPy,
and logs which it chose and why. "gpu" without a usable device is an error, never
a silent fallback. Backends are imported lazily: NumPy-only machines never import CuPy.
"""

from __future__ import annotations

import logging

from solver.backends.base import Backend
from solver.errors import BackendError, ConfigError

log = logging.getLogger(__name__)
BACKEND_NAMES = ("auto", "gpu", "cpu")


def get_backend(name: str) -> Backend:
    """Return a ready backend for "auto", "gpu" or "cpu"."""
    if name == "cpu":
        from solver.backends.numpy_backend import NumpyBackend

        return NumpyBackend()
    if name == "gpu":
        from solver.backends.cupy_backend import CupyBackend

        return CupyBackend()
    if name == "auto":
        try:
            from solver.backends.cupy_backend import CupyBackend

            backend: Backend = CupyBackend()
            log.info("backend auto: using the GPU (%s)", backend.device)
            return backend
        except BackendError as exc:
            from solver.backends.numpy_backend import NumpyBackend

            backend = NumpyBackend()
            log.info("backend auto: using NumPy on the CPU, because %s", exc)
            return backend
    raise ConfigError(f"unknown backend {name!r}; allowed: {', '.join(BACKEND_NAMES)}")
