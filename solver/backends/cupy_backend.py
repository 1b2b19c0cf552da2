"""CuPy backend: the fused explicit-step kernel generated per model, on a CUDA device.

Public API:
    CupyBackend            raises BackendError when CuPy or a device is missing
    CupyExplicitStepper(model, grid, dtype)

Kernels are compiled once per (source, device) with cupy.RawModule (CuPy also keeps
its own on-disk cache), never per step. Every launch goes through one function that
casts scalars to the kernel's C types and checks array dtype, shape and contiguity:
CuPy would otherwise pass Python floats as double without complaint.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from solver.backends.base import Backend
from solver.backends.cuda_codegen import explicit_rates_source, explicit_step_source
from solver.errors import BackendError
from solver.grid import Grid
from solver.model import Model

log = logging.getLogger(__name__)
BLOCK_SIZE = 256


def import_cupy() -> Any:
    """CuPy with at least one usable CUDA device, or BackendError saying why not."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install raising at import
        raise BackendError(f"backend 'gpu' needs CuPy (pip install 'tumorsim[gpu]'): {exc}") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError: no driver, insufficient driver...
        raise BackendError(f"backend 'gpu': no usable CUDA device ({exc})") from None
    if count < 1:
        raise BackendError("backend 'gpu': CuPy found no CUDA device")
    return cupy


_module_cache: dict[tuple[str, int], Any] = {}


def compiled_function(source: str, name: str) -> Any:
    """Kernel `name` from `source`, compiled once per (source, current device)."""
    import cupy

    key = (source, cupy.cuda.runtime.getDevice())
    module = _module_cache.get(key)
    if module is None:
        module = cupy.RawModule(code=source, options=("-std=c++17",))
        _module_cache[key] = module
    return module.get_function(name)


class CupyExplicitStepper:
    """Launches the fused explicit step: one thread per cell, all species in one launch."""

    def __init__(
        self, model: Model, grid: Grid, dtype: np.dtype, implicit_sinks: bool = False,
        implicit_diffusion: frozenset[int] = frozenset(), implicit_chemotaxis: frozenset[int] = frozenset(),
    ) -> None:
        self.dtype = np.dtype(dtype)
        self.shape = (len(model.species),) + grid.shape
        self.maps_shape = (max(len(model.maps), 1),) + grid.shape
        self.source = explicit_step_source(model, grid, self.dtype, BLOCK_SIZE, implicit_sinks, implicit_diffusion,
                                           implicit_chemotaxis)
        self.kernel = compiled_function(self.source, "explicit_step")
        self._rates_source = lambda: explicit_rates_source(  # noqa: E731 (compiled on first use)
            model, grid, self.dtype, BLOCK_SIZE, implicit_sinks, implicit_diffusion, implicit_chemotaxis)
        self._rates_kernel = None
        self.blocks = (grid.size + BLOCK_SIZE - 1) // BLOCK_SIZE
        self.n_systemic = len(model.systemic_names)

    def _check(self, name: str, array: Any, shape: tuple[int, ...]) -> None:
        if array.dtype != self.dtype or tuple(array.shape) != shape or not array.flags.c_contiguous:
            raise TypeError(
                f"explicit_step: {name} must be a C-contiguous {self.dtype} array of shape {shape}, "
                f"got {array.dtype} {tuple(array.shape)}"
            )

    def step(self, u: Any, u_new: Any, maps: Any, t: float, dt: float, systemic: Any = ()) -> None:
        self._check("u", u, self.shape)
        self._check("u_new", u_new, self.shape)
        self._check("maps", maps, self.maps_shape)
        if len(systemic) != self.n_systemic:
            raise TypeError(f"explicit_step: expected {self.n_systemic} systemic scalars, got {len(systemic)}")
        cast = self.dtype.type
        scalars = tuple(cast(v) for v in systemic)
        self.kernel((self.blocks,), (BLOCK_SIZE,), (u, u_new, maps, cast(t), cast(dt)) + scalars)

    def rates(self, u: Any, rate: Any, sink: Any, maps: Any, t: float, systemic: Any = ()) -> None:
        """rate = F(u, t) and sink = lambda(u, t) of every species (kernels/explicit_rates.cu)."""
        for name, array in (("u", u), ("rate", rate), ("sink", sink)):
            self._check(name, array, self.shape)
        self._check("maps", maps, self.maps_shape)
        if len(systemic) != self.n_systemic:
            raise TypeError(f"explicit_rates: expected {self.n_systemic} systemic scalars, got {len(systemic)}")
        if self._rates_kernel is None:
            self._rates_kernel = compiled_function(self._rates_source(), "explicit_rates")
        cast = self.dtype.type
        scalars = tuple(cast(v) for v in systemic)
        self._rates_kernel((self.blocks,), (BLOCK_SIZE,), (u, rate, sink, maps, cast(t)) + scalars)


class CupyLineSolver:
    """Launches kernels/line_solve.cu: Thomas solves on every line of one axis, in place.

    The factors come from solver.integrators.line_solvers.ImplicitDiffusion1D (computed
    once per step size on the host) and are uploaded once.
    """

    THREADS = 128

    def __init__(self, solver: Any, shape: tuple[int, int, int], axis: int, dtype: np.dtype) -> None:
        import cupy

        from solver.backends.cuda_codegen import kernel_template
        from solver.integrators.line_solvers import line_layout

        self.dtype = np.dtype(dtype)
        ctype = "float" if self.dtype == np.float32 else "double"
        self.kernel = compiled_function(f"typedef {ctype} real;\n" + kernel_template("line_solve.cu"), "line_solve")
        n = shape[axis]
        as_device = lambda a: cupy.asarray(np.asarray(a, dtype=self.dtype))  # noqa: E731
        self.lower = as_device(solver.lower if n > 1 else [0.0])
        self.cprime = as_device(solver.cprime if n > 1 else [0.0])
        self.inv_denom = as_device(solver.inv_denom)
        self.z = as_device(solver.z if solver.periodic else np.zeros(n))
        self.layout = line_layout(shape, axis)
        self.rhs_low, self.rhs_high = solver.boundary_rhs()
        self.cyclic = int(solver.periodic)
        self.v_last = getattr(solver, "v_last", 0.0)
        self.shape = shape

    def solve(self, field: Any) -> None:
        """Solve in place on `field`, a C-contiguous (nx, ny, nz) device array."""
        if field.dtype != self.dtype or tuple(field.shape) != self.shape or not field.flags.c_contiguous:
            raise TypeError(f"line_solve: field must be a C-contiguous {self.dtype} array of shape {self.shape}")
        n, stride, inner, outer, n_lines = self.layout
        cast = self.dtype.type
        blocks = (n_lines + self.THREADS - 1) // self.THREADS
        self.kernel((blocks,), (self.THREADS,), (
            field, self.lower, self.cprime, self.inv_denom, self.z, np.int32(n), np.int64(stride),
            np.int64(inner), np.int64(outer), np.int64(n_lines), cast(self.rhs_low), cast(self.rhs_high),
            np.int32(self.cyclic), cast(self.v_last)))


class CupyTransportSolver:
    """Launches kernels/transport_solve.cu: implicit cell transport on every line of one axis.

    `solver` is a solver.integrators.transport_solvers.ImplicitTransport1D (its scalars);
    the signal is read from the device at each solve. `scratch` (one field, for the c'
    factors) is shared by every transport solver of a run: the solves run one after another.
    """

    THREADS = 128

    def __init__(self, solver: Any, shape: tuple[int, int, int], axis: int, dtype: np.dtype, scratch: Any) -> None:
        from solver.backends.cuda_codegen import kernel_template
        from solver.integrators.line_solvers import line_layout

        self.dtype = np.dtype(dtype)
        ctype = "float" if self.dtype == np.float32 else "double"
        self.kernel = compiled_function(f"typedef {ctype} real;\n" + kernel_template("transport_solve.cu"),
                                        "transport_solve")
        self.layout = line_layout(shape, axis)
        self.scalars = solver.scalars()
        self.shape = shape
        if scratch.dtype != self.dtype or tuple(scratch.shape) != shape:
            raise TypeError(f"transport_solve: scratch must be a {self.dtype} array of shape {shape}")
        self.cprime = scratch

    def solve(self, field: Any, signal: Any) -> None:
        """Solve in place on `field`; `signal` is the chemoattractant at the start of the step."""
        for name, array in (("field", field), ("signal", signal)):
            if array.dtype != self.dtype or tuple(array.shape) != self.shape or not array.flags.c_contiguous:
                raise TypeError(f"transport_solve: {name} must be a C-contiguous {self.dtype} array of shape {self.shape}")
        n, stride, inner, outer, n_lines = self.layout
        cast = self.dtype.type
        blocks = (n_lines + self.THREADS - 1) // self.THREADS
        self.kernel((blocks,), (self.THREADS,), (
            field, signal, self.cprime, np.int32(n), np.int64(stride), np.int64(inner), np.int64(outer),
            np.int64(n_lines), *(cast(v) for v in self.scalars)))


class CupyBackend(Backend):
    """Runs on the current CUDA device through CuPy."""

    name = "cupy"

    def __init__(self) -> None:
        cupy = import_cupy()
        self.xp = cupy
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.runtime.getDevice())
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        super().__init__(device=f"GPU: {name}")

    def to_host(self, array: Any) -> np.ndarray:
        return self.xp.asnumpy(array)

    def synchronize(self) -> None:
        self.xp.cuda.get_current_stream().synchronize()

    def make_explicit_stepper(
        self, model: Model, grid: Grid, dtype: np.dtype, implicit_sinks: bool = False,
        implicit_diffusion: frozenset[int] = frozenset(), implicit_chemotaxis: frozenset[int] = frozenset(),
    ) -> CupyExplicitStepper:
        return CupyExplicitStepper(model, grid, dtype, implicit_sinks, implicit_diffusion, implicit_chemotaxis)
