"""Every CUDA kernel the solver generates for the shipped configs compiles for sm_90.

Runs without a GPU: NVRTC from the nvidia-cuda-nvrtc wheel, through CuPy's low-level
binding (both in the `gpu` extra, which CI installs). A broken template or a
code-generation bug fails CI here instead of on a user's GPU node. Without the extra the
tests are skipped with the reason; with TUMORSIM_REQUIRE_NVRTC=1 (set by .ci/run) they
fail instead, so CI cannot skip them unnoticed.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from _support import make_config


def _nvrtc_missing() -> str | None:
    """Why NVRTC cannot compile here (None: it can)."""
    try:
        from cupy_backends.cuda.libs import nvrtc

        nvrtc.getVersion()
    except Exception as exc:  # ImportError without CuPy; a missing libnvrtc at the first call
        return f"{type(exc).__name__}: {exc}"
    return None


_MISSING = _nvrtc_missing()
if _MISSING is not None:
    if os.environ.get("TUMORSIM_REQUIRE_NVRTC") == "1":
        raise RuntimeError(f"TUMORSIM_REQUIRE_NVRTC=1 but NVRTC is not usable ({_MISSING}): "
                           "install the `gpu` extra: pip install -e '.[gpu]'")
    pytest.skip(f"NVRTC compile check needs the `gpu` extra (CuPy + nvidia-cuda-nvrtc): pip install -e "
                f"'.[gpu]' ({_MISSING})", allow_module_level=True)

from solver.backends.cuda_codegen import (
    compile_for_arch,
    explicit_rates_source,
    explicit_step_source,
    nvrtc_options,
)
from solver.config import load_config
from solver.grid import Grid
from solver.model import build_model
from solver.package_data import data_dir

SHIPPED = sorted(data_dir("configs").glob("*.yaml"))


def source_for(config, dtype, fast_math: bool = False, rates: bool = False) -> str:
    model = build_model(config)
    grid = Grid(tuple(config.grid.shape), config.grid.spacing3)
    implicit = config.time.reactions == "linearly-implicit"
    build = explicit_rates_source if rates else explicit_step_source
    return build(model, grid, np.dtype(dtype), implicit_sinks=implicit, fast_math=fast_math)


def test_configs_are_shipped() -> None:
    assert {p.stem for p in SHIPPED} >= {"quickstart", "fisher_front"}


@pytest.mark.parametrize("fast", [False, True], ids=["exact", "fast"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_config_kernels_compile_for_sm90(path, dtype, fast) -> None:
    for rates, entry in ((False, "explicit_step"), (True, "explicit_rates")):
        source = source_for(load_config(path), dtype, fast, rates)
        ptx = compile_for_arch(source, arch="sm_90", options=nvrtc_options(np.dtype(dtype), fast))
        text = ptx.decode() if isinstance(ptx, bytes) else ptx
        assert f".entry {entry}" in text
        assert ".target sm_90" in text
        if dtype == "float32":
            # `real` arithmetic stays in single precision: no double-precision ops creep in
            # through unsuffixed literals or double math functions.
            assert ".f64" not in text
            if fast:  # no IEEE division left (div.rn), and --ftz=true reached the compiler
                assert "div.rn.f32" not in text and ".ftz.f32" in text


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_boundary_kind_and_chemotaxis_compile(dtype) -> None:
    cfg = make_config(
        {
            "u": {"diffusion": 1.0, "reaction": "r*u*(1-u)*w - min(u, v) + 0.1*heaviside(x - 3)",
                  "boundary": {"x": {"low": {"value": 1.0}, "high": "no-flux"}, "y": "periodic"},
                  "chemotaxis": {"signal": "v", "sensitivity": "chi"}},
            "v": {"diffusion": 0.5, "reaction": "-v*exp(-t) + sqrt(abs(u)) + pow(u, 3)/(1 + tanh(z))",
                  "boundary": {"x": {"low": {"permeable": {"permeability": 2.0, "value": 1.5}}},
                               "y": "periodic", "z": {"value": 0.5}}},
        },
        shape=(9, 7, 5), spacing=(1.0, 0.5, 2.0), parameters={"r": 1.0, "chi": 0.3},
        maps={"w": "1 + 0.5*cos(x)"}, precision=dtype,
    )
    ptx = compile_for_arch(source_for(cfg, dtype), arch="sm_90")
    assert b".entry explicit_step" in (ptx if isinstance(ptx, bytes) else ptx.encode())


def test_compile_error_is_reported_with_the_log() -> None:
    with pytest.raises(RuntimeError, match="NVRTC failed"):
        compile_for_arch('extern "C" __global__ void k() { undefined_thing(); }')


@pytest.mark.parametrize("ctype", ["float", "double"])
@pytest.mark.parametrize("kernel", ["line_solve", "line_solve_scaled", "transport_solve"])
def test_line_solve_kernel_compiles_for_sm90(ctype, kernel) -> None:
    from solver.backends.cuda_codegen import kernel_template

    ptx = compile_for_arch(f"typedef {ctype} real;\n" + kernel_template(f"{kernel}.cu"), arch="sm_90")
    text = ptx.decode() if isinstance(ptx, bytes) else ptx
    assert f".entry {kernel}" in text
    if ctype == "float":
        assert ".f64" not in text
