"""Compiled CPU backend: the generated kernels of solver/backends/cpu_codegen.py, compiled
by numba, parallel over x-planes.

Public API:
    NumbaBackend                  `backend: cpu`
    NumbaExplicitStepper(model, grid, dtype, ...)   the ExplicitStepper of solver/backends/base.py
    kernel_module(source) -> module                 compile (or load from the disk cache)
    cache_dir() -> Path

The kernels are written once per model structure (cpu_codegen: the numbers are run-time
constants), into `cache_dir()/kernels/tumorsim_<sha256 of the source>.py`, and compiled
with numba's `cache=True`, which keeps the machine code beside that file: the second run
of a model (in this process, another process, or a later session) loads it instead of
compiling. Threads: numba's pool, NUMBA_NUM_THREADS (default: every core); grids below
numba_lines.PARALLEL_MIN_CELLS run on one thread (numba_lines.threads_for).

The implicit line solves (IMEX) are solver/backends/numba_lines.py: the reference's algebra
(solver/backends/lines.py), compiled, parallel over lines.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from solver.backends.base import Backend
from solver.backends.cpu_codegen import cpu_kernel_source
from solver.backends.lines import diffusion_lines, transport_lines
from solver.backends.numpy_backend import cpu_name
from solver.errors import BackendError
from solver.grid import Grid
from solver.model import Model, Species

log = logging.getLogger(__name__)
_MODULES: dict[str, ModuleType] = {}
_LOCK = threading.Lock()


def cache_dir() -> Path:
    """Where compiled kernels are kept: $TUMORSIM_CACHE_DIR, else $XDG_CACHE_HOME/tumorsim,
    else ~/.cache/tumorsim."""
    if os.environ.get("TUMORSIM_CACHE_DIR"):
        return Path(os.environ["TUMORSIM_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tumorsim"


def _writable_kernel_dir() -> Path:
    """cache_dir()/kernels, or a private temporary folder (no reuse across processes) when
    that cannot be written."""
    folder = cache_dir() / "kernels"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return folder
    except OSError as exc:
        fallback = Path(tempfile.mkdtemp(prefix="tumorsim-kernels-"))
        log.warning("kernel cache %s is not writable (%s): compiling into %s, kept for this process only",
                    folder, exc.strerror or exc, fallback)
        return fallback


def kernel_module(source: str) -> ModuleType:
    """The module of generated kernel source: imported from its file in the cache (written
    there first, atomically, when new), memoised in this process by the source's hash."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:24]
    with _LOCK:
        if digest in _MODULES:
            return _MODULES[digest]
        folder = _writable_kernel_dir()
        path = folder / f"tumorsim_{digest}.py"
        # written once: numba's cache entry is keyed by the file's time stamp as well
        if not path.exists() or path.read_text(encoding="utf-8") != source:
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(source, encoding="utf-8")
            os.replace(tmp, path)
        name = f"tumorsim_kernels_{digest}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # numba's cache locates functions through their module
        spec.loader.exec_module(module)
        _MODULES[digest] = module
        return module


class NumbaExplicitStepper:
    """Forward-Euler step (and the rates of the second-order step) of every species, in one
    pass over the cells, with numba. Same flags and results as NumpyExplicitStepper."""

    def __init__(
        self, model: Model, grid: Grid, dtype: np.dtype, implicit_sinks: bool = False,
        implicit_diffusion: frozenset[int] = frozenset(), implicit_chemotaxis: frozenset[int] = frozenset(),
        report_sinks: frozenset[int] = frozenset(),
    ) -> None:
        self.model, self.grid, self.dtype = model, grid, np.dtype(dtype)
        self.report_sinks = frozenset(report_sinks)
        source = cpu_kernel_source(model, grid, implicit_sinks, frozenset(implicit_diffusion),
                                   frozenset(implicit_chemotaxis), self.report_sinks)
        self.source = source.text
        self.module = kernel_module(source.text)
        from solver.backends.numba_lines import (
            threads_for,  # imports numba: only once it is known to
        )

        self.threads = threads_for(grid.size)
        self.constants = source.constants(self.dtype)
        self.centres = [np.ascontiguousarray(grid.centres(a, self.dtype).ravel()) for a in range(3)]
        self._none = np.zeros((1, 1, 1, 1), dtype=self.dtype)  # for an output no species writes
        self._no_maps = np.zeros((0, *grid.shape), dtype=self.dtype)

    def _maps(self, maps: Any) -> np.ndarray:
        n = len(self.model.maps)
        return self._checked("maps", maps[:n], n) if n else self._no_maps

    def _checked(self, what: str, array: np.ndarray, rows: int | None = None) -> np.ndarray:
        """`array` as the kernels index it: C-contiguous (rows, nx, ny, nz) in the state's
        dtype. The compiled loops do not check bounds, so a wrong array is refused here."""
        rows = len(self.model.species) if rows is None else rows
        shape = (rows, *self.grid.shape)
        if array.shape != shape or array.dtype != self.dtype or not array.flags.c_contiguous:
            raise ValueError(f"compiled CPU kernel: {what} must be a C-contiguous {self.dtype} array of shape "
                             f"{shape}, got {array.dtype} {array.shape}")
        return array

    def _optional(self, what: str, array: np.ndarray | None) -> np.ndarray:
        if array is None:
            if self.report_sinks:
                raise ValueError(f"compiled CPU kernel: {what} is needed (species {sorted(self.report_sinks)} "
                                 "report to it)")
            return self._none
        return self._checked(what, array)

    def _systemic(self, systemic) -> np.ndarray:
        return np.array([*systemic, 0.0], dtype=self.dtype)  # never empty: one array type

    def step(self, u: np.ndarray, u_new: np.ndarray, maps: np.ndarray, t: float, dt: float, systemic=(),
             sinks: np.ndarray | None = None) -> None:
        """u_new = u + dt F(u, t) (u + dt F / (1 + dt lambda) with a sink); `sinks`: where to
        write lambda of the species in `report_sinks`."""
        cast = self.dtype.type
        with np.errstate(all="ignore"), self.threads:
            self.module.explicit_step(self._checked("u", u), self._checked("u_new", u_new), self._maps(maps),
                                      self._optional("sinks", sinks), cast(t), cast(dt), self._systemic(systemic),
                                      self.constants, *self.centres)

    def rates(self, u: np.ndarray, rate: np.ndarray, sink: np.ndarray, maps: np.ndarray, t: float, systemic=(),
              diffusion: np.ndarray | None = None) -> None:
        """rate = F(u, t), sink = lambda(u, t); `diffusion`: D lap u of the species in report_sinks."""
        cast = self.dtype.type
        with np.errstate(all="ignore"), self.threads:
            self.module.explicit_rates(self._checked("u", u), self._checked("rate", rate), self._checked("sink", sink),
                                       self._maps(maps), self._optional("diffusion", diffusion), cast(t),
                                       self._systemic(systemic), self.constants, *self.centres)


def numba_unavailable() -> str | None:
    """Why the compiled backend cannot run here, or None when it can."""
    try:
        import numba  # noqa: F401
    except ImportError as exc:
        return f"numba does not import ({exc})"
    return None


class NumbaBackend(Backend):
    """Runs on the CPU with kernels compiled by numba."""

    name = "numba"
    xp = np

    def __init__(self) -> None:
        why = numba_unavailable()
        if why:
            raise BackendError(f"backend cpu: {why}; install it (pip install numba) or use backend: numpy")
        import numba

        super().__init__(device=f"CPU: {cpu_name()}, {numba.config.NUMBA_NUM_THREADS} threads")

    def make_explicit_stepper(
        self, model: Model, grid: Grid, dtype: np.dtype, implicit_sinks: bool = False,
        implicit_diffusion: frozenset[int] = frozenset(), implicit_chemotaxis: frozenset[int] = frozenset(),
        report_sinks: frozenset[int] = frozenset(),
    ) -> NumbaExplicitStepper:
        start = time.perf_counter()
        stepper = NumbaExplicitStepper(model, grid, dtype, implicit_sinks, implicit_diffusion, implicit_chemotaxis,
                                       report_sinks)
        log.debug("compiled CPU kernels ready in %.2f s", time.perf_counter() - start)
        return stepper

    def make_line_solver(self, species: Species, grid: Grid, tau: float, dtype: np.dtype):
        from solver.backends.numba_lines import NumbaImplicitSolver

        return NumbaImplicitSolver(diffusion_lines(species, grid, tau), with_signal=False)

    def make_transport_solver(self, species: Species, grid: Grid, tau: float, dtype: np.dtype):
        from solver.backends.numba_lines import NumbaImplicitSolver

        return NumbaImplicitSolver(transport_lines(species, grid, tau), with_signal=True)
