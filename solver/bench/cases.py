"""The benchmarked models, grids and implementations, and the targets the benchmark judges.

Part of the benchmark harness (solver/bench/__init__.py explains what is measured).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from solver.config import RunConfig, parse_config

log = logging.getLogger(__name__)


# Targets (on an H100 or H200; the benchmark prints PASS/FAIL against them; benchmarks/README.md
# gives the reason for each).
TARGET_FRACTION_OF_COPY = 0.85  # fused step, 256^3 and 384^3 float32
TARGET_OVER_CUPY = 25.0  # fused step over the plain CuPy array expressions
TARGET_OVER_JAX = 3.0  # fused step over jax.jit
TARGET_OUTSIDE_KERNELS = 0.05  # share of wall time outside the stepping kernels
TARGET_COMPILED_OVER_NUMPY = 8.0  # compiled CPU step over the NumPy reference, one thread, 128^3 float32
TARGET_COMPILED_OF_COPY = 0.25  # compiled CPU step, all threads, of the host copy bandwidth
TARGET_IMEX_OVER_EXPLICIT = 1.5  # IMEX order-1 step over the explicit step, compiled CPU backend
TARGET_LARGEST_CUBE = 1024  # chemoimmunotherapy model on one 80 GB GPU
TARGET_GRIDS = (256, 384)  # where the GPU targets are judged (float32)
CPU_TARGET_GRID = 128

# "80 GB" taken as 80e9 bytes: conservative, since an H100 80GB reports 81559 MiB
# (85.5e9 bytes) of which the CUDA context keeps about half a GB.
GPU_MEMORY_80GB = 80 * 10**9
# Host memory of a typical single-GPU H100/H200 node: 128 GiB.
DEVICE_HOST_MEMORY = 128 * 2**30

GPU_GRIDS = ((128, "float32"), (256, "float32"), (384, "float32"), (256, "float64"))
GPU_CPU_PEER_GRIDS = ((128, "float32"),)  # the NumPy peers on the GPU machine's CPU
SMALL_GRIDS = ((32, "float32"), (32, "float64"))
E2E_STEPS, E2E_SNAPSHOT_EVERY = 1000, 100  # full mode: 10 snapshots (+ the initial one)
E2E_CHECKPOINT_EVERY = 500  # two checkpoints in the full-mode runs
E2E_GRID_FULL, E2E_GRID_SMALL, E2E_STEPS_SMALL = 128, 32, 200
SCRATCH_GRIDS_CPU = (24, 40)  # two sizes: bytes per cell is the slope between them
SCRATCH_GRID_GPU = 256

MAP_RANGES = {"w": (0.5, 1.5)}  # the vessel map: random around its mean of 1

IMPLEMENTATIONS = {
    "fused": "solver: fused CUDA kernel (CupyExplicitStepper)",
    "cupy-expr": "CuPy array expressions",
    "jax-jit": "jax.jit of the array expressions",
    "compiled": "solver: compiled CPU backend, every thread (NumbaExplicitStepper)",
    "compiled-1t": "solver: compiled CPU backend, one thread",
    "numpy-reference": "solver: NumPy reference (NumpyExplicitStepper)",
    "numpy-expr": "straightforward NumPy array expressions",
    "compiled-explicit1": "a whole explicit integrator step, compiled CPU backend",
    "compiled-imex1": "a whole IMEX order-1 integrator step, compiled CPU backend",
}


@dataclass(frozen=True)
class ModelCase:
    """A benchmarked model: its config `model:` section and the ranges of its random fields."""

    name: str
    model: dict[str, Any]
    spacing: float
    reactions: str  # time.reactions: "explicit" or "linearly-implicit"
    ranges: dict[str, tuple[float, float]]  # species -> (low, high) of the uniform random fields
    length_unit: str = ""
    time_unit: str = ""


# The built-in chemoimmunotherapy model: 6 species (T, N, L, M, I, A), 1 static map (w),
# chemotaxis of N and L up the tumour gradient, systemic C and plasma levels. Random
# fields span the biologically plausible ranges (cells/mL, mg/L, IU/L), so the
# saturating terms take both regimes. Sinks linearly implicit, as the shipped configs do.
DEPILLIS = ModelCase(
    name="depillis2006",
    model={"builtin": "depillis2006", "variant": "patient9"},
    spacing=20.0,
    reactions="linearly-implicit",
    ranges={"T": (1e6, 1e9), "N": (1e4, 1e6), "L": (1e3, 1e6), "M": (0.1, 2.0), "I": (1e4, 1e7),
            "A": (0.1, 10.0)},
    length_unit="um",
    time_unit="day",
)

# A 4-species model written as data, as a user would in a config: tumour T, effector
# cells E, a drug D and oxygen O, with uniform supply (no static map), so its minimal
# traffic is the 8 x 4 = 32 bytes per cell of the 4-species reference kernel (benchmarks/README.md).
FOUR_SPECIES = ModelCase(
    name="four-species",
    model={
        "parameters": {"r": 0.5, "k_E": 0.8, "k_D": 0.6, "s_E": 0.05, "a_E": 0.3, "d_E": 0.1,
                       "P_D": 1.0, "g_D": 0.3, "P_O": 2.0, "q_O": 0.4},
        "species": {
            "T": {"diffusion": 0.01, "reaction": "r*T*(1 - T)*O/(0.1 + O) - k_E*E*T - k_D*D*T"},
            "E": {"diffusion": 0.05, "reaction": "s_E + a_E*T*E/(0.5 + T) - d_E*E"},
            "D": {"diffusion": 1.0, "reaction": "P_D*(1 - D) - g_D*D - 0.1*k_D*D*T"},
            "O": {"diffusion": 2.0, "reaction": "P_O*(1 - O) - q_O*T*O/(0.05 + O)"},
        },
    },
    spacing=1.0,
    reactions="explicit",
    ranges={"T": (0.05, 1.0), "E": (0.05, 1.0), "D": (0.05, 1.0), "O": (0.05, 1.0)},
)

MODEL_CASES = {c.name: c for c in (DEPILLIS, FOUR_SPECIES)}


def case_config(case: ModelCase, n: int, precision: str = "float32", backend: str = "cpu",
                **time: Any) -> RunConfig:
    """A validated RunConfig of `case` on an n^3 grid (constant initial fields)."""
    return parse_config(
        {
            "name": f"bench-{case.name}",
            "backend": backend,
            "precision": precision,
            "grid": {"shape": [n, n, n], "spacing": case.spacing, "length_unit": case.length_unit},
            "time": {"end": 1.0, "unit": case.time_unit, "reactions": case.reactions, "integrator": "explicit",
                     **time},
            "output": {"pictures": False},
            "model": case.model,
        },
        source=f"<benchmark {case.name}>",
    )
