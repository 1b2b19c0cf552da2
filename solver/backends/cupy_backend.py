"""CuPy backend: the fused explicit-step kernel generated per model, on a CUDA device.

Public API:
    CupyBackend            raises BackendError when CuPy or a device is missing
    CupyExplicitStepper(model, grid, dtype)
    CupyLineSolver, CupyTransportSolver   kernels/line_solve.cu, kernels/transport_solve.cu
    CupyEtdStages          kernels/etd_stage.cu: the second-order step's stages, one launch each

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
from solver.backends.cuda_codegen import (
    explicit_rates_source,
    explicit_step_source,
    kernel_template,
    launch_shape,
    nvrtc_options,
)
from solver.backends.lines import diffusion_lines, transport_lines
from solver.errors import BackendError
from solver.grid import Grid, line_layout
from solver.model import Model, Species

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


_module_cache: dict[tuple[str, tuple[str, ...], int], Any] = {}


def compiled_function(source: str, name: str, options: tuple[str, ...] = ("-std=c++17",)) -> Any:
    """Kernel `name` from `source`, compiled once per (source, NVRTC options, current device)."""
    import cupy

    key = (source, tuple(options), cupy.cuda.runtime.getDevice())
    module = _module_cache.get(key)
    if module is None:
        module = cupy.RawModule(code=source, options=tuple(options))
        _module_cache[key] = module
    return module.get_function(name)


class CupyExplicitStepper:
    """Launches the fused explicit step: one thread per cell, all species in one launch,
    in 3-D blocks of up to BLOCK_SIZE cells (cuda_codegen.launch_shape).

    fast_math (float32 only): the kernels' fast path (cuda_codegen.nvrtc_options and
    fast_math_step_bound); config key gpu.fast_math.
    """

    def __init__(
        self, model: Model, grid: Grid, dtype: np.dtype, implicit_sinks: bool = False,
        implicit_diffusion: frozenset[int] = frozenset(), implicit_chemotaxis: frozenset[int] = frozenset(),
        report_sinks: frozenset[int] = frozenset(), fast_math: bool = False,
    ) -> None:
        self.dtype = np.dtype(dtype)
        self.shape = (len(model.species),) + grid.shape
        self.maps_shape = (max(len(model.maps), 1),) + grid.shape
        self.report_sinks = frozenset(report_sinks)
        self.options = nvrtc_options(self.dtype, fast_math)
        self.source = explicit_step_source(model, grid, self.dtype, BLOCK_SIZE, implicit_sinks, implicit_diffusion,
                                           implicit_chemotaxis, report_sinks, fast_math=fast_math)
        self.kernel = compiled_function(self.source, "explicit_step", self.options)
        self._rates_source = lambda: explicit_rates_source(  # noqa: E731 (compiled on first use)
            model, grid, self.dtype, BLOCK_SIZE, implicit_sinks, implicit_diffusion, implicit_chemotaxis,
            report_sinks, fast_math=fast_math)
        self._rates_kernel = None
        self.block, self.blocks = launch_shape(grid.shape, BLOCK_SIZE)  # (z, y, x) tiles
        self.n_systemic = len(model.systemic_names)

    def _check(self, name: str, array: Any, shape: tuple[int, ...]) -> None:
        if array.dtype != self.dtype or tuple(array.shape) != shape or not array.flags.c_contiguous:
            raise TypeError(
                f"explicit_step: {name} must be a C-contiguous {self.dtype} array of shape {shape}, "
                f"got {array.dtype} {tuple(array.shape)}"
            )

    def step(self, u: Any, u_new: Any, maps: Any, t: float, dt: float, systemic: Any = (), sinks: Any = None) -> None:
        self._check("u", u, self.shape)
        self._check("u_new", u_new, self.shape)
        self._check("maps", maps, self.maps_shape)
        sinks = self._output("sinks", sinks, u_new)
        if len(systemic) != self.n_systemic:
            raise TypeError(f"explicit_step: expected {self.n_systemic} systemic scalars, got {len(systemic)}")
        cast = self.dtype.type
        scalars = tuple(cast(v) for v in systemic)
        self.kernel(self.blocks, self.block, (u, u_new, maps, sinks, cast(t), cast(dt)) + scalars)

    def _output(self, name: str, array: Any, dummy: Any) -> Any:
        """An optional output array; without report_sinks the kernel writes none (a dummy pointer)."""
        if not self.report_sinks:
            return dummy
        if array is None:
            raise TypeError(f"explicit kernels: {name} is required (species {sorted(self.report_sinks)} report it)")
        self._check(name, array, self.shape)
        return array

    def rates(self, u: Any, rate: Any, sink: Any, maps: Any, t: float, systemic: Any = (), diffusion: Any = None) -> None:
        """rate = F(u, t) and sink = lambda(u, t) of every species (kernels/explicit_rates.cu);
        `diffusion`: D lap u of the report_sinks species."""
        for name, array in (("u", u), ("rate", rate), ("sink", sink)):
            self._check(name, array, self.shape)
        self._check("maps", maps, self.maps_shape)
        diffusion = self._output("diffusion", diffusion, rate)
        if len(systemic) != self.n_systemic:
            raise TypeError(f"explicit_rates: expected {self.n_systemic} systemic scalars, got {len(systemic)}")
        if self._rates_kernel is None:
            self._rates_kernel = compiled_function(self._rates_source(), "explicit_rates", self.options)
        cast = self.dtype.type
        scalars = tuple(cast(v) for v in systemic)
        self._rates_kernel(self.blocks, self.block, (u, rate, sink, maps, diffusion, cast(t)) + scalars)


class CupyEtdStages:
    """The second-order step's stages (solver/backends/etd.py) fused: kernels/etd_stage.cu,
    one launch per stage instead of ~10 (predictor) and ~20 (corrector) elementwise
    kernels with their temporaries."""

    THREADS = 256

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, local: Any) -> None:
        import cupy

        self.dtype = np.dtype(dtype)
        self.shape = tuple(shape)
        ctype = "float" if self.dtype == np.float32 else "double"
        self.kernel = compiled_function(f"typedef {ctype} real;\n" + kernel_template("etd_stage.cu"), "etd_stage")
        self.species = cupy.asarray(np.asarray(list(local), dtype=np.int32))
        self.n_local = len(self.species)
        self.n_cells = int(np.prod(self.shape[1:]))
        self.blocks = (self.n_local * self.n_cells + self.THREADS - 1) // self.THREADS

    def _check(self, *arrays: Any) -> None:
        for a in arrays:
            if a.dtype != self.dtype or tuple(a.shape) != self.shape or not a.flags.c_contiguous:
                raise TypeError(f"etd_stage: arrays must be C-contiguous {self.dtype} of shape {self.shape}")

    def _launch(self, u: Any, stage_in: Any, r0: Any, s0: Any, r1: Any, s1: Any, out: Any, embedded: Any,
                h: Any, mode: int) -> None:
        if not self.n_local:
            return
        self.kernel((self.blocks,), (self.THREADS,), (
            u, stage_in, r0, s0, r1, s1, out, embedded, self.species, np.int32(self.n_local),
            np.int64(self.n_cells), self.dtype.type(h), np.int32(mode), np.int32(embedded is not out)))

    def predictor(self, u: Any, rate0: Any, sink0: Any, out: Any, h: Any) -> None:
        self._check(u, rate0, sink0, out)
        self._launch(u, u, rate0, sink0, rate0, sink0, out, out, h, 0)

    def trapezoid(self, u: Any, stage_in: Any, rate0: Any, sink0: Any, rate1: Any, sink1: Any, out: Any, h: Any,
                  embedded: Any = None) -> None:
        self._check(u, stage_in, rate0, sink0, rate1, sink1, out, *(() if embedded is None else (embedded,)))
        self._launch(u, stage_in, rate0, sink0, rate1, sink1, out, out if embedded is None else embedded, h, 1)


class _AxisLineSolve:
    """kernels/line_solve.cu for one axis: Thomas solves on every line, in place.

    The factors come from solver.backends.lines.ImplicitDiffusion1D (computed once per
    step size on the host) and are uploaded once.
    """

    THREADS = 128

    def __init__(self, line: Any, shape: tuple[int, int, int], axis: int, dtype: np.dtype) -> None:
        import cupy

        self.dtype = np.dtype(dtype)
        ctype = "float" if self.dtype == np.float32 else "double"
        self.kernel = compiled_function(f"typedef {ctype} real;\n" + kernel_template("line_solve.cu"), "line_solve")
        n = shape[axis]
        as_device = lambda a: cupy.asarray(np.asarray(a, dtype=self.dtype))  # noqa: E731
        self.lower = as_device(line.lower if n > 1 else [0.0])
        self.cprime = as_device(line.cprime if n > 1 else [0.0])
        self.inv_denom = as_device(line.inv_denom)
        self.z = as_device(line.z if line.periodic else np.zeros(n))
        self.layout = line_layout(shape, axis)
        self.rhs_low, self.rhs_high = line.boundary_rhs()
        self.cyclic = int(line.periodic)
        self.v_last = getattr(line, "v_last", 0.0)
        self.shape = shape
        self.r = line.r
        (self.alpha_low, self.beta_low), (self.alpha_high, self.beta_high) = line.ghosts
        self.scaled_kernel = compiled_function(f"typedef {ctype} real;\n" + kernel_template("line_solve_scaled.cu"),
                                               "line_solve_scaled")

    def __call__(self, field: Any, signal: Any = None, scale: Any = None, scratch: tuple = ()) -> None:
        n, stride, inner, outer, n_lines = self.layout
        cast = self.dtype.type
        blocks = (n_lines + self.THREADS - 1) // self.THREADS
        if scale is not None:  # kernels/line_solve_scaled.cu: factors computed in the sweep
            cprime, zline = scratch
            self.scaled_kernel((blocks,), (self.THREADS,), (
                field, scale, cprime, zline, np.int32(n), np.int64(stride), np.int64(inner), np.int64(outer),
                np.int64(n_lines), cast(self.r), cast(self.alpha_low), cast(self.beta_low), cast(self.alpha_high),
                cast(self.beta_high), np.int32(self.cyclic)))
            return
        self.kernel((blocks,), (self.THREADS,), (
            field, self.lower, self.cprime, self.inv_denom, self.z, np.int32(n), np.int64(stride),
            np.int64(inner), np.int64(outer), np.int64(n_lines), cast(self.rhs_low), cast(self.rhs_high),
            np.int32(self.cyclic), cast(self.v_last)))


class _AxisTransportSolve:
    """kernels/transport_solve.cu for one axis: implicit cell transport on every line.

    `line` is a solver.backends.lines.ImplicitTransport1D (its scalars); the signal is
    read from the device at each solve. `scratch` (one field, for the c' factors) is
    shared by every transport solve of a backend: the solves run one after another.
    """

    THREADS = 128

    def __init__(self, line: Any, shape: tuple[int, int, int], axis: int, dtype: np.dtype, scratch: Any) -> None:
        self.dtype = np.dtype(dtype)
        ctype = "float" if self.dtype == np.float32 else "double"
        self.kernel = compiled_function(f"typedef {ctype} real;\n" + kernel_template("transport_solve.cu"),
                                        "transport_solve")
        self.layout = line_layout(shape, axis)
        self.scalars = line.scalars()
        self.cprime = scratch

    def __call__(self, field: Any, signal: Any = None) -> None:
        n, stride, inner, outer, n_lines = self.layout
        cast = self.dtype.type
        blocks = (n_lines + self.THREADS - 1) // self.THREADS
        self.kernel((blocks,), (self.THREADS,), (
            field, signal, self.cprime, np.int32(n), np.int64(stride), np.int64(inner), np.int64(outer),
            np.int64(n_lines), *(cast(v) for v in self.scalars)))


class _CupyImplicitSolver:
    """One species' line solves along axes in turn, in place, in the field's dtype."""

    def __init__(self, axis_solves: tuple, shape: tuple[int, int, int], dtype: np.dtype, with_signal: bool,
                 scratch: tuple = ()) -> None:
        self.axis_solves = axis_solves
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.with_signal = with_signal
        self.scratch = scratch  # two fields for the scaled solves (c' and the cyclic vector)

    def _check(self, name: str, array: Any) -> None:
        if array.dtype != self.dtype or tuple(array.shape) != self.shape or not array.flags.c_contiguous:
            raise TypeError(f"line solve: {name} must be a C-contiguous {self.dtype} array of shape {self.shape}")

    def solve(self, field: Any, axes: tuple[int, ...], crank_nicolson: bool = False, signal: Any = None,
              scale: Any = None) -> None:
        self._check("field", field)
        if self.with_signal:
            self._check("signal", signal)
        import cupy

        extra = {}
        if scale is not None:
            scale = cupy.ascontiguousarray(cupy.broadcast_to(cupy.asarray(scale, dtype=self.dtype), self.shape))
            extra = {"scale": scale, "scratch": self.scratch}
        for a in axes:
            rhs = field.copy() if crank_nicolson else field
            self.axis_solves[a](rhs, signal, **extra)
            if crank_nicolson:  # (I - A/2)^-1 (I + A/2) u = 2 (I - A/2)^-1 u - u
                cupy.subtract(2 * rhs, field, out=field)


class CupyLineSolver(_CupyImplicitSolver):
    """Backward-Euler diffusion of one species: kernels/line_solve.cu per axis."""

    def __init__(self, species: Species, grid: Grid, tau: float, dtype: np.dtype, scratch: tuple = ()) -> None:
        lines = diffusion_lines(species, grid, tau)
        super().__init__(tuple(_AxisLineSolve(line, grid.shape, a, dtype) for a, line in enumerate(lines)),
                         grid.shape, dtype, with_signal=False, scratch=scratch)


class CupyTransportSolver(_CupyImplicitSolver):
    """Backward-Euler diffusion and chemotaxis of one species: kernels/transport_solve.cu per axis."""

    def __init__(self, species: Species, grid: Grid, tau: float, dtype: np.dtype, scratch: Any) -> None:
        lines = transport_lines(species, grid, tau)
        super().__init__(tuple(_AxisTransportSolve(line, grid.shape, a, dtype, scratch)
                               for a, line in enumerate(lines)), grid.shape, dtype, with_signal=True)


class CupyBackend(Backend):
    """Runs on the current CUDA device through CuPy."""

    name = "cupy"

    def __init__(self) -> None:
        cupy = import_cupy()
        self.xp = cupy
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.runtime.getDevice())
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        super().__init__(device=f"GPU: {name}")
        self._scratch: dict[tuple, Any] = {}
        self.fast_math = True  # gpu.fast_math (solver.config.sections.GpuConfig); set by configure()

    def configure(self, config: Any) -> None:
        """Take the run config's `gpu` section (fast_math) for the steppers made after this."""
        self.fast_math = bool(config.gpu.fast_math)

    def to_host(self, array: Any) -> np.ndarray:
        return self.xp.asnumpy(array)

    def synchronize(self) -> None:
        self.xp.cuda.get_current_stream().synchronize()

    def make_explicit_stepper(
        self, model: Model, grid: Grid, dtype: np.dtype, implicit_sinks: bool = False,
        implicit_diffusion: frozenset[int] = frozenset(), implicit_chemotaxis: frozenset[int] = frozenset(),
        report_sinks: frozenset[int] = frozenset(),
    ) -> CupyExplicitStepper:
        return CupyExplicitStepper(model, grid, dtype, implicit_sinks, implicit_diffusion, implicit_chemotaxis,
                                   report_sinks, fast_math=self.fast_math)

    def make_etd_stages(self, shape: tuple[int, ...], dtype: np.dtype, local: Any) -> CupyEtdStages:
        return CupyEtdStages(shape, dtype, local)

    def make_line_solver(self, species: Species, grid: Grid, tau: float, dtype: np.dtype) -> CupyLineSolver:
        """The scaled solves' two scratch fields are shared by every line solver of a shape."""
        scratch = (self._scratch_field(grid.shape, dtype, "line c'"), self._scratch_field(grid.shape, dtype, "line z"))
        return CupyLineSolver(species, grid, tau, dtype, scratch)

    def _scratch_field(self, shape: tuple[int, int, int], dtype: np.dtype, what: str) -> Any:
        key = (shape, np.dtype(dtype).str, what)
        if key not in self._scratch:
            self._scratch[key] = self.xp.empty(shape, dtype)
        return self._scratch[key]

    def make_transport_solver(self, species: Species, grid: Grid, tau: float, dtype: np.dtype) -> CupyTransportSolver:
        """The c' scratch of the transport solves is one field per (shape, dtype), shared."""
        return CupyTransportSolver(species, grid, tau, dtype, self._scratch_field(grid.shape, dtype, "transport c'"))
