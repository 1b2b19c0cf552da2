"""Resources a run needs and has: memory estimates, and the host's and device's free memory.

Public API:
    MemoryEstimate(fields, maps, scratch, setup, host_output)   .device = fields + maps + scratch
    estimate_memory(n_species, n_maps, shape, dtype, backend="numpy", stepping_sets=0)
    available_host_memory() -> int | None      MemAvailable, capped by this process's cgroup limits
    cgroup_memory_available(proc_self="/proc/self") -> int | None   what those limits leave
    free_device_memory(backend) -> int | None  free memory of the backend's device (or a stated one's)
    check_fits(need, available, what, where, grid, n_species, dtype)   SimulationError if not
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from solver.errors import SimulationError
from solver.text import format_bytes


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a run needs, estimated from the grid, species, maps and precision.

    On the device: the fields double-buffered (u, u_new), the static maps, and scratch
    (NumPy: each species copied with one ghost layer, plus the temporaries of the
    reaction and stencil expressions; CuPy: one fused kernel, so only the diagnostics'
    float64 temporaries). On the host: the static fields the Simulation keeps (initial
    fields in the run's dtype, maps in float64 and in the run's dtype), the float64
    temporaries the stability bound is evaluated on (freed before stepping), and two
    copies of the fields while a snapshot or checkpoint is written (the host copy, and the
    checkpoint's HDF5 image, built in memory: solver/io/checkpoint.py).
    """

    fields: int
    maps: int
    scratch: int
    setup: int  # host, while the Simulation is built (before any backend is chosen)
    host_output: int  # host copies of the fields: the snapshot buffers, a checkpoint's

    @property
    def device(self) -> int:
        return self.fields + self.maps + self.scratch


def estimate_memory(
    n_species: int, n_maps: int, shape: tuple[int, int, int], dtype: np.dtype, backend: str = "numpy",
    stepping_sets: int = 0,
) -> MemoryEstimate:
    """MemoryEstimate for a grid of `shape` cells (see MemoryEstimate); `backend` numpy or cupy.

    `stepping_sets`: extra arrays of all species the time stepping needs (second-order
    stages and, on the CPU, the stages' array temporaries (solver/backends/etd.py
    ARRAY_TEMPORARY_SETS; the GPU fuses them into kernels/etd_stage.cu), step-size control
    temporaries; Simulation.memory_for counts them).
    """
    cells = math.prod(shape)
    padded = math.prod(n + 2 for n in shape)
    size = np.dtype(dtype).itemsize
    fields = 2 * n_species * cells * size
    maps = max(n_maps, 1) * cells * size
    diagnostics = 3 * cells * 8
    stepping = stepping_sets * n_species * cells * size
    if backend == "cupy":
        scratch = diagnostics + stepping
    else:
        scratch = n_species * padded * size + (2 * n_species + 8) * cells * size + diagnostics + stepping
    # Setup, measured with tracemalloc on the de Pillis model (6 species, 1 map): about 200
    # bytes per cell in float32; this errs on the safe side by about a quarter.
    kept = (n_species + n_maps) * cells * size + n_maps * cells * 8
    bound = (2 * n_species + 2 * n_maps + 14) * cells * 8
    # The run writer's two snapshot buffers (solver/io/run_writer.py); on the GPU also the
    # host copy that to_host makes before a snapshot or a checkpoint takes it.
    host_output = (3 if backend == "cupy" else 2) * n_species * cells * size
    return MemoryEstimate(fields, maps, scratch, kept + bound, host_output)


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as f:
            text = f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def available_host_memory() -> int | None:
    """Bytes of RAM this process can still use: MemAvailable, capped by a cgroup limit.

    None when the system does not say (the memory check is then skipped).
    """
    candidates: list[int] = []
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    candidates.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError):
        pass
    if not candidates:
        try:
            candidates.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            pass
    cgroup = cgroup_memory_available()
    if cgroup is not None:
        candidates.append(cgroup)
    return min(candidates) if candidates else None


_CGROUP_FILES = {"cgroup2": ("memory.max", "memory.current"),
                 "cgroup": ("memory.limit_in_bytes", "memory.usage_in_bytes")}


def _own_cgroup_folders(proc_self: str) -> list[tuple[str, str, str]]:
    """(kind, folder of this process's cgroup, folder of the mount) for the memory controller,
    from /proc/self/cgroup and /proc/self/mountinfo; a batch job's limit is set on the job's
    own cgroup (or one above it), not at the root of the cgroup mount."""
    try:
        with open(os.path.join(proc_self, "cgroup"), encoding="utf-8") as f:
            own = [line.rstrip("\n").split(":", 2) for line in f if line.count(":") >= 2]
        with open(os.path.join(proc_self, "mountinfo"), encoding="utf-8") as f:
            mounts = [line.split() for line in f]
    except OSError:
        return []
    out = []
    for fields in mounts:
        if "-" not in fields:
            continue
        sep = fields.index("-")
        kind, root, point = fields[sep + 1], fields[3], fields[4]
        options = fields[sep + 3].split(",") if len(fields) > sep + 3 else []
        for _, controllers, path in own:
            v2 = kind == "cgroup2" and controllers == ""
            v1 = kind == "cgroup" and "memory" in controllers.split(",") and "memory" in options
            if not (v1 or v2):
                continue
            relative = os.path.relpath(path, root) if root != "/" else path.lstrip("/")
            if relative.startswith(".."):
                continue  # this cgroup is not below the mount's root: not visible here
            out.append((kind, os.path.normpath(os.path.join(point, relative)), point))
    return out


def cgroup_memory_available(proc_self: str = "/proc/self") -> int | None:
    """Bytes the memory limits of this process's cgroup (and every cgroup above it, up to
    the mount) leave free: min over them of limit - usage; None when none is set."""
    found: list[int] = []
    for kind, folder, top in _own_cgroup_folders(proc_self):
        limit_name, usage_name = _CGROUP_FILES[kind]
        while True:
            limit, usage = _read_int(os.path.join(folder, limit_name)), _read_int(os.path.join(folder, usage_name))
            if limit is not None and usage is not None and limit < 1 << 60:
                found.append(max(limit - usage, 0))
            if os.path.normpath(folder) == os.path.normpath(top) or len(folder) <= len(top):
                break
            folder = os.path.dirname(folder)
    return min(found) if found else None


def free_device_memory(backend) -> int | None:
    """Free memory of the backend's device now (the GPU's; the host's RAM for the CPU); for
    a device stated on the command line (solver/run/devices.py), its stated memory, with no
    CUDA call."""
    from solver.run.devices import StatedDevice

    if isinstance(backend, StatedDevice):
        return backend.memory
    if backend.name == "cupy":
        return int(backend.xp.cuda.runtime.memGetInfo()[0])
    return available_host_memory()


def check_fits(need: int, available: int | None, what: str, where: str, shape: tuple[int, ...],
               n_species: int, dtype: np.dtype) -> None:
    """Refuse (before allocating) what does not fit; `available` None: unknown, not checked.

    Raises:
        SimulationError: need > available; the message says how to make it fit.
    """
    if available is not None and need > available:
        raise SimulationError(
            f"grid {tuple(shape)} with {n_species} species in {np.dtype(dtype)} needs about "
            f"{format_bytes(need)} {what}; only {format_bytes(available)} {where}: use a smaller grid"
            + (" or float32" if np.dtype(dtype) == np.float64 else "")
        )
