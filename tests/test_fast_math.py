"""gpu.fast_math: the config key, and the error bound the fast path is held to.

The fast kernels themselves are checked by tests/test_kernel_on_host.py (run on the host,
intrinsics exact), tests/test_kernel_compile.py (NVRTC, sm_90) and the `gpu`-marked
tests/test_gpu_parity.py (on a device, with the bound below).
"""

from __future__ import annotations

import numpy as np
import pytest
from _support import make_config

from solver.backends.cuda_codegen import ULP32, fast_math_step_bound, nvrtc_options, uses_fast_math
from solver.config import parse_config
from solver.errors import ConfigError


def _with_gpu(gpu: object) -> dict:
    cfg = make_config({"u": {"diffusion": 1.0, "reaction": "-u"}}, shape=(4, 4, 4))
    data = cfg.model_dump(mode="json")
    data["gpu"] = gpu
    return data


def test_fast_math_is_on_by_default_and_can_be_turned_off() -> None:
    assert make_config({"u": {"diffusion": 1.0}}, shape=(4, 4, 4)).gpu.fast_math is True
    assert parse_config(_with_gpu({"fast_math": False}), source="<test>").gpu.fast_math is False


@pytest.mark.parametrize(("gpu", "words"), [
    ({"fast_math": "yes"}, ["gpu.fast_math", "bool"]),
    ({"fast_math": 1}, ["gpu.fast_math", "bool"]),
    ({"fastmath": True}, ["gpu", "fastmath", "fast_math"]),
])
def test_bad_gpu_options_are_one_line_errors(gpu, words) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_with_gpu(gpu), source="<test>")
    message = str(info.value)
    assert "\n" not in message.strip() and all(w in message for w in words), message


def test_float64_never_takes_the_fast_path() -> None:
    assert not uses_fast_math(np.dtype("float64"), True) and uses_fast_math(np.dtype("float32"), True)
    assert nvrtc_options(np.dtype("float64"), True) == nvrtc_options(np.dtype("float32"), False) == ("-std=c++17",)
    assert nvrtc_options(np.dtype("float32"), True) == ("-std=c++17", "--ftz=true")


def test_step_bound_follows_the_documented_ulps() -> None:
    # one __fdividef in the chain, the step's own (2), the stencil's regrouping (4), x2
    assert fast_math_step_bound() == 2 * (2 + 2 + 4) * ULP32
    # __expf(x): 2 + floor(1.173 |x|) ulp
    assert fast_math_step_bound(exp_argument=10.0) - fast_math_step_bound() == 2 * (2 + 11) * ULP32
    # per step the bound times r, the relative increment; forward Euler's local error is
    # ~ r^2 / 2, held at rtol >= 1e-4 by the tolerance-driven dt: r = sqrt(2e-4)
    r = (2 * 1e-4) ** 0.5
    extreme = fast_math_step_bound(exp_argument=20.0, pow_exponent=2.09, pow_log2_result=20.0, divisions=3)
    assert extreme * r < 1e-4 / 300 and fast_math_step_bound(exp_argument=1.0, divisions=2) * r < 1e-4 / 1000
