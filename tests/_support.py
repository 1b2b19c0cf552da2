"""Small builders shared by the numerical tests: a config from a few keywords."""

from __future__ import annotations

from typing import Any

from solver.config import RunConfig, parse_config


def make_config(
    species: dict[str, dict[str, Any]],
    shape: tuple[int, int, int],
    spacing: float | tuple[float, float, float] = 1.0,
    end: float = 1.0,
    parameters: dict[str, float] | None = None,
    maps: dict[str, Any] | None = None,
    precision: str = "float64",
    backend: str = "numpy",
    **time: Any,
) -> RunConfig:
    """A RunConfig for a user-defined model, as a YAML file would give it.

    The integrator is explicit unless `integrator=` says otherwise: most tests check the
    explicit discretisation, which `auto` would replace by imex for a fast diffuser.
    """
    time.setdefault("integrator", "explicit")
    return parse_config(
        {
            "name": "test",
            "backend": backend,
            "precision": precision,
            "grid": {"shape": list(shape), "spacing": spacing},
            "time": {"end": end, **time},
            "output": {"check_every": 50},
            "model": {"parameters": parameters or {}, "maps": maps or {}, "species": species},
        },
        source="<test>",
    )


# CUDA source compiled as C++ on the host (tests/test_kernel_on_host.py explains why):
# the CUDA keywords defined away; a wrapper after the source emulates the launch grid.
CUDA_ON_HOST = r"""
#include <cmath>
#include <cstdio>
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(n)
#define __restrict__ __restrict
struct Dim { unsigned x, y, z; };
static Dim blockIdx, threadIdx;
using std::exp; using std::expm1; using std::log; using std::sqrt; using std::tanh; using std::sin; using std::cos;
using std::fmin; using std::fmax; using std::pow; using std::fabs;
// The fast path's CUDA intrinsics (solver/backends/cuda_codegen.py), defined EXACTLY on the
// host: the host run checks the generated arithmetic and indexing; the intrinsics' own
// error (within cuda_codegen.fast_math_step_bound) is the `gpu` parity test's job.
// (Macros: glibc declares its own __expf, __logf, __powf.)
static inline float host_fdividef(float a, float b) { return a / b; }
#define __fdividef(a, b) host_fdividef((a), (b))
#define __expf(x) std::exp((float)(x))
#define __logf(x) std::log((float)(x))
#define __powf(x, y) std::pow((float)(x), (float)(y))
"""


def compile_on_host(code: str, tmp_path, function: str):
    """g++-compile CUDA_ON_HOST + code into a shared library; return `function` from it.

    -ffp-contract=off: no fused multiply-add, so rounding matches NumPy's separate ops.
    """
    import ctypes
    import subprocess

    src, lib = tmp_path / f"{function}.cpp", tmp_path / f"{function}.so"
    src.write_text(CUDA_ON_HOST + code)
    subprocess.run(["g++", "-O1", "-ffp-contract=off", "-shared", "-fPIC", "-o", str(lib), str(src)],
                   check=True, capture_output=True, text=True)
    return getattr(ctypes.CDLL(str(lib)), function)


def host_launch(signature: str, call: str) -> str:
    """C++ for after a kernel source: `extern "C" void <signature>` running `call` over the
    launch cupy_backend makes (cuda_codegen.launch_shape: tiles of BLOCK_Z x BLOCK_Y x
    BLOCK_X cells, from the source's defines; ceil(N / BLOCK) blocks per axis), as loops."""
    return f"""
extern "C" void {signature} {{
    const unsigned grid[3] = {{(NZ + BLOCK_Z - 1) / BLOCK_Z, (NY + BLOCK_Y - 1) / BLOCK_Y, (NX + BLOCK_X - 1) / BLOCK_X}};
    for (blockIdx.z = 0; blockIdx.z < grid[2]; ++blockIdx.z)
    for (blockIdx.y = 0; blockIdx.y < grid[1]; ++blockIdx.y)
    for (blockIdx.x = 0; blockIdx.x < grid[0]; ++blockIdx.x)
        for (threadIdx.z = 0; threadIdx.z < BLOCK_X; ++threadIdx.z)
        for (threadIdx.y = 0; threadIdx.y < BLOCK_Y; ++threadIdx.y)
        for (threadIdx.x = 0; threadIdx.x < BLOCK_Z; ++threadIdx.x)
            {call};
}}
"""
