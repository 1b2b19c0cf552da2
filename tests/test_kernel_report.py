"""The static GPU kernel report (solver/bench/kernel_report.py): real numbers, loud parsers.

Compiling needs the `gpu` extra (NVRTC through CuPy's binding, and cuobjdump from the
nvidia-cuda-cuobjdump wheel), no GPU. Without it the compiling tests are skipped with the
reason; with TUMORSIM_REQUIRE_NVRTC=1 (set by .ci/run) they fail instead, as in
tests/test_kernel_compile.py. The parser tests run everywhere.
"""

from __future__ import annotations

import contextlib
import io
import json
import os

import pytest

from solver.bench import cubin
from solver.bench import kernel_report as kr
from solver.config import load_config
from solver.package_data import data_dir

QUICKSTART = data_dir("configs") / "quickstart.yaml"


@pytest.fixture(scope="module")
def tools() -> None:
    why = kr.tools_missing()
    if why is None:
        return
    if os.environ.get("TUMORSIM_REQUIRE_NVRTC") == "1":
        pytest.fail(f"TUMORSIM_REQUIRE_NVRTC=1 but the kernel report cannot run: {why}: pip install -e '.[gpu]'")
    pytest.skip(f"kernel report needs the `gpu` extra (NVRTC + nvidia-cuda-cuobjdump): {why}")


@pytest.fixture(scope="module")
def report(tools) -> dict:
    """The CLI's JSON for the quickstart config (every kernel compiled once)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert kr.main([str(QUICKSTART), "--json"]) == 0
    return json.loads(out.getvalue())


def test_every_kernel_has_real_numbers(report) -> None:
    rows = {r["entry"]: r for r in report["kernels"]}
    assert set(rows) == {"explicit_step", "explicit_rates", "line_solve", "line_solve_scaled", "transport_solve"}
    for r in rows.values():
        assert r["registers"] > 0 and r["sass_total"] > 0 and r["constant"] > 0, r
        assert r["spill_stores"] >= 0 and r["shared"] == 0
    step = rows["explicit_step"]
    # one thread per cell, no loop: the body counts per cell, and is within the function
    assert 0 < step["sass_per_cell"] <= step["sass_total"] and step["loop_bodies"] == []
    # quickstart: 7 species and 1 map read once, 7 species written once, float32
    assert step["bytes_floor"] == (7 + 1 + 7) * 4
    # gpu.fast_math (default, float32): every division an approximate one, no IEEE check
    assert step["slow_ops"]["FCHK"] == 0 and step["slow_ops"]["CALL.REL"] == 0 and "fast math" in step["variant"]
    # the line kernels loop over a line's cells: no per-cell count, loop bodies instead
    assert rows["transport_solve"]["sass_per_cell"] is None and rows["transport_solve"]["loop_bodies"]
    fast = report["explicit_step_fast_math"]
    assert fast["fast_math"] and fast["sass_per_cell"] <= step["sass_per_cell"]
    assert fast["slow_ops"]["FCHK"] == 0  # --use_fast_math divides approximately
    status = {t["name"]: t["status"] for t in report["targets"]}
    assert status[kr.target_name()] == "INFO"  # judged PASS/FAIL only on its own config
    assert all(s == "INFO" for s in status.values())


def test_exact_math_config_keeps_ieee_divisions(tools) -> None:
    """gpu.fast_math: false compiles the exact path: the model's IEEE divisions (FCHK) are
    back, and it takes more instructions than the fast path of the same config."""
    cfg = load_config(QUICKSTART)
    exact = next(k for k in kr.kernel_sources(cfg.replace(gpu={"fast_math": False})) if k.entry == "explicit_step")
    fast = next(k for k in kr.kernel_sources(cfg) if k.entry == "explicit_step")
    assert "exact math" in exact.variant and exact.options == ("-std=c++17",)
    assert "--ftz=true" in fast.options
    e, f = kr.measure(exact), kr.measure(fast)
    assert e.sass.slow_ops()["FCHK"] > 0 and f.sass.slow_ops()["FCHK"] == 0
    assert f.sass_per_cell() < e.sass_per_cell()


def test_identical_compiles_count_the_same(report) -> None:
    """A second compile of the same explicit step gives the CLI's numbers again."""
    step = next(k for k in kr.kernel_sources(load_config(QUICKSTART)) if k.entry == "explicit_step")
    again = kr.measure(step).as_dict()
    first = next(r for r in report["kernels"] if r["entry"] == "explicit_step")
    for key in ("registers", "sass_total", "sass_body", "slow_ops", "constant", "bytes_floor"):
        assert again[key] == first[key], key


def test_parsers_fail_loudly_on_garbage() -> None:
    garbage = "nvcc fatal: something went wrong\n"
    with pytest.raises(ValueError, match="Function properties"):
        kr.parse_ptxas_log(garbage, "explicit_step")
    with pytest.raises(ValueError, match="register"):
        kr.parse_ptxas_log("Function properties for explicit_step\n nothing here", "explicit_step")
    with pytest.raises(ValueError, match="no function"):
        kr.parse_resource_usage(garbage, "explicit_step")
    with pytest.raises(ValueError, match="lacks"):
        kr.parse_resource_usage(" Function explicit_step:\n  REG:12 STACK:0\n", "explicit_step")
    with pytest.raises(ValueError, match="Function : explicit_step"):
        kr.parse_sass(garbage, "explicit_step")
    with pytest.raises(ValueError, match="no SASS"):
        kr.parse_sass("\t\tFunction : explicit_step\n garbage\n", "explicit_step")
    with pytest.raises(ValueError, match="ELF64"):
        cubin._complete_elf(b"not an elf image")


SASS = """
\t\tFunction : k
        /*0000*/                   LDC R1, c[0x0][0x28] ;                 /* 0x00000a00ff017b82 */
                                                                          /* 0x000fe20000000800 */
        /*0010*/                   MUFU.RCP R4, R5 ;                      /* 0x0000000500047308 */
        /*0020*/                   FCHK P0, R0, R5 ;                      /* 0x0000000500007302 */
        /*0030*/              @!P0 BRA 0x10 ;                             /* 0x0000000500007302 */
        /*0040*/                   BSSY B2, 0x70 ;                        /* 0x000000d000027945 */
        /*0050*/               @P0 CALL.REL.NOINC 0x90 ;                  /* 0x0000003400a47944 */
        /*0060*/                   EXIT ;                                 /* 0x000000000000794d */
        /*0070*/                   BRA 0x70;                              /* 0x000fc0000383ffff */
        /*0080*/                   NOP;                                   /* 0x0000000000007918 */
        /*0090*/                   DADD R2, R2, R4 ;                      /* 0x0000000000007918 */
        /*00a0*/                   RET.REL.NODEC R2 0x0 ;                 /* 0x0000000000007918 */
        /*00b0*/                   BRA 0xb0;                              /* 0x000fc0000383ffff */
        /*00c0*/                   NOP;                                   /* 0x0000000000007918 */
"""


def test_sass_counting_rules() -> None:
    c = kr.parse_sass(SASS, "k")
    assert c.total == 11  # without the trailing BRA-to-self and NOP
    assert c.body == 7  # without the subroutine at 0x90 and the padding before it
    assert c.loops == [3]  # 0x30 branches back to 0x10
    ops = c.slow_ops()
    assert (ops["FCHK"], ops["MUFU.RCP"], ops["CALL.REL"], ops["BSSY"], ops["FP64"]) == (1, 1, 1, 1, 1)


def test_truncated_cubin_is_padded_to_its_declared_size() -> None:
    header = bytearray(64)
    header[:5] = b"\x7fELF\x02"
    header[32:40] = (64).to_bytes(8, "little")  # program headers at 64: 2 of 56 bytes
    header[54:56], header[56:58] = (56).to_bytes(2, "little"), (2).to_bytes(2, "little")
    image = bytes(header) + b"\1" * 111  # one byte short of 64 + 112
    assert len(cubin._complete_elf(image)) == 176 and cubin._complete_elf(image)[-1] == 0


def test_tile_traffic_model() -> None:
    """Sectors a tile reads of one species with its 6 neighbours: a 1-D block of 256 cells
    along z reads 5 rows per row written (20 B/cell in float32), a 32 x 8 tile 3.75."""
    assert kr.tile_bytes_per_cell((256, 1, 1), (256, 256, 256), 4) == 20.0
    assert kr.tile_bytes_per_cell((32, 8, 1), (256, 256, 256), 4) == 15.0
