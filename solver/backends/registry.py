"""Pick a backend by name: "gpu" (CuPy), "cpu" (compiled, numba), "numpy" (the NumPy
reference) or "auto".

Public API:
    get_backend(name) -> Backend
    cpu_backend() -> Backend          the CPU backend "auto" would choose here
    BACKEND_NAMES, AUTO_BACKEND_ENV

"auto" uses the GPU when CuPy imports and a CUDA device is present, else the compiled CPU
backend when numba imports, else the NumPy reference, and logs which it chose and why.
$TUMORSIM_AUTO_BACKEND (one of gpu, cpu, numpy) makes "auto" mean that backend instead:
the test suite sets it to numpy, so that each of its many small models does not compile
kernels of its own (the compiled backend has its own tests). "gpu" or "cpu" without what
they need is an error, never a silent fallback. Backends are imported lazily: NumPy-only
machines never import CuPy or numba.
"""

from __future__ import annotations

import logging
import os

from solver.backends.base import Backend
from solver.errors import BackendError, ConfigError

log = logging.getLogger(__name__)
BACKEND_NAMES = ("auto", "gpu", "cpu", "numpy")
AUTO_BACKEND_ENV = "TUMORSIM_AUTO_BACKEND"


def get_backend(name: str) -> Backend:
    """Return a ready backend for "auto", "gpu", "cpu" or "numpy"."""
    if name == "numpy":
        from solver.backends.numpy_backend import NumpyBackend

        return NumpyBackend()
    if name == "cpu":
        from solver.backends.numba_backend import NumbaBackend

        return NumbaBackend()
    if name == "gpu":
        from solver.backends.cupy_backend import CupyBackend

        return CupyBackend()
    if name == "auto":
        forced = os.environ.get(AUTO_BACKEND_ENV, "")
        if forced:
            if forced not in BACKEND_NAMES[1:]:
                raise ConfigError(f"{AUTO_BACKEND_ENV}={forced!r}; allowed: {', '.join(BACKEND_NAMES[1:])}")
            log.info("backend auto: %s, as %s says", forced, AUTO_BACKEND_ENV)
            return get_backend(forced)
        try:
            from solver.backends.cupy_backend import CupyBackend

            backend: Backend = CupyBackend()
            log.info("backend auto: using the GPU (%s)", backend.device)
            return backend
        except BackendError as exc:
            backend = cpu_backend()
            log.info("backend auto: using %s, because %s", backend.device, exc)
            return backend
    raise ConfigError(f"unknown backend {name!r}; allowed: {', '.join(BACKEND_NAMES)}")


def cpu_backend() -> Backend:
    """The compiled CPU backend when numba imports, else the NumPy reference (saying why);
    $TUMORSIM_AUTO_BACKEND=numpy picks the reference."""
    if os.environ.get(AUTO_BACKEND_ENV) == "numpy":
        return get_backend("numpy")
    from solver.backends.numba_backend import numba_unavailable

    why = numba_unavailable()
    if why is None:
        return get_backend("cpu")
    log.info("the compiled CPU backend is unavailable (%s): using the NumPy reference", why)
    return get_backend("numpy")
