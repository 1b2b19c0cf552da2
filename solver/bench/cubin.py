"""Compiling a kernel to a cubin without a GPU, and reading it: NVRTC, ptxas's log, cuobjdump.

Public API:
    compile_cubin(source, arch="sm_90", fast_math=False) -> (cubin, ptxas log)
    parse_ptxas_log(log, entry) -> dict          registers, spills, stack
    parse_resource_usage(text, entry) -> dict    REG, SHARED, LOCAL, CONSTANT[0], STACK
    parse_sass(text, entry) -> SassCounts
    find_cuobjdump() -> str | None, tools_missing() -> str | None
    cuobjdump(cubin, *flags) -> str

Part of the static GPU kernel report (solver/bench/kernel_report.py says what is counted
and why). Nothing here imports CuPy at module level.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path


@dataclass
class SassCounts:
    """Instruction counts of one function's SASS."""

    total: int  # without the padding after the end
    body: int  # without the called slow-path subroutines either
    opcodes: Counter
    loops: list[int]  # instructions in each loop body (backward branches)
    calls: int
    subroutines: int

    def slow_ops(self) -> dict[str, int]:
        """The notable slow instructions (module docstring)."""
        mufu = {k.split(".", 1)[1]: v for k, v in self.opcodes.items() if k.startswith("MUFU.")}
        fp64 = sum(v for k, v in self.opcodes.items() if k.split(".")[0] in _FP64_OPS or ".F64" in k)
        return {"FCHK": self.opcodes.get("FCHK", 0), "MUFU": sum(mufu.values()),
                **{f"MUFU.{k}": v for k, v in sorted(mufu.items())}, "CALL.REL": self.calls,
                "BSSY": self.opcodes.get("BSSY", 0), "FP64": fp64}


_FP64_OPS = {"DADD", "DMUL", "DFMA", "DSETP", "DMNMX", "DSET"}


def find_cuobjdump() -> str | None:
    """cuobjdump from the nvidia-cuda-cuobjdump wheel (nvidia/cu13/bin), else on PATH or CUDA_HOME."""
    spec = importlib.util.find_spec("nvidia")
    for root in (spec.submodule_search_locations or []) if spec else []:
        for candidate in sorted(Path(root).glob("cu*/bin/cuobjdump"), reverse=True):
            if os.access(candidate, os.X_OK):
                return str(candidate)
    found = shutil.which("cuobjdump")
    if found:
        return found
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if home and os.access(Path(home) / "bin" / "cuobjdump", os.X_OK):
        return str(Path(home) / "bin" / "cuobjdump")
    return None


def tools_missing() -> str | None:
    """Why the report cannot be made here (None: it can)."""
    try:
        from cupy_backends.cuda.libs import nvrtc

        nvrtc.getVersion()
    except Exception as exc:  # noqa: BLE001 (ImportError without CuPy; a missing libnvrtc at the first call)
        return f"NVRTC is not usable ({type(exc).__name__}: {exc})"
    if find_cuobjdump() is None:
        return "cuobjdump not found (the nvidia-cuda-cuobjdump wheel of the `gpu` extra)"
    return None


def compile_cubin(source: str, arch: str = "sm_90", fast_math: bool = False,
                  name: str = "tumorsim_kernel.cu", options: tuple[str, ...] = ("-std=c++17",)) -> tuple[bytes, str]:
    """NVRTC: source -> (cubin for `arch`, ptxas's -v log). Raises RuntimeError with the log.
    `options`: the backend's (cuda_codegen.nvrtc_options); fast_math adds --use_fast_math."""
    from cupy_backends.cuda.libs import nvrtc

    options = [f"--gpu-architecture={arch}", *options, "-Xptxas=-v"] + (["--use_fast_math"] if fast_math else [])
    prog = nvrtc.createProgram(source, name, [], [])
    try:
        try:
            nvrtc.compileProgram(prog, options)
        except nvrtc.NVRTCError as exc:
            raise RuntimeError(f"NVRTC failed for {arch}: {exc}\n{nvrtc.getProgramLog(prog)}") from None
        return _complete_elf(nvrtc.getCUBIN(prog)), nvrtc.getProgramLog(prog)
    finally:
        nvrtc.destroyProgram(prog)


def _complete_elf(image: bytes) -> bytes:
    """The cubin padded to the size its ELF header declares.

    CuPy's getCUBIN (14.2) drops the image's last byte, as it does the NUL terminator of
    PTX; cuobjdump then rejects the file. The ELF64 header gives where the program and
    section header tables end; the missing bytes are NUL padding.
    """
    image = bytes(image)
    if len(image) < 64 or image[:4] != b"\x7fELF" or image[4] != 2:
        raise ValueError("NVRTC returned no ELF64 cubin")
    phoff, shoff = int.from_bytes(image[32:40], "little"), int.from_bytes(image[40:48], "little")
    phentsize, phnum, shentsize, shnum = (int.from_bytes(image[o:o + 2], "little") for o in (54, 56, 58, 60))
    end = max(phoff + phentsize * phnum, shoff + shentsize * shnum, len(image))
    return image + b"\0" * (end - len(image))


def cuobjdump(cubin: bytes, *flags: str) -> str:
    tool = find_cuobjdump()
    if tool is None:
        raise RuntimeError("cuobjdump not found: pip install -e '.[gpu]' (nvidia-cuda-cuobjdump)")
    with tempfile.TemporaryDirectory(prefix="tumorsim-kreport-") as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(cubin)
        done = subprocess.run([tool, *flags, str(path)], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"cuobjdump {' '.join(flags)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


# --- parsers: each raises ValueError on output it does not recognise ------------------------

def parse_ptxas_log(text: str, entry: str) -> dict[str, int]:
    """Registers, spill stores/loads and stack frame of `entry` from ptxas -v output."""
    start = text.find(f"Function properties for {entry}")
    if start < 0:
        raise ValueError(f"ptxas log has no 'Function properties for {entry}': {text[:200]!r}")
    part = text[start:]
    frame = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", part)
    regs = re.search(r"Used (\d+) registers", part)
    if frame is None or regs is None:
        raise ValueError(f"ptxas log for {entry} lacks the stack/spill or register line: {part[:300]!r}")
    return {"registers": int(regs.group(1)), "stack": int(frame.group(1)), "spill_stores": int(frame.group(2)),
            "spill_loads": int(frame.group(3))}


def parse_resource_usage(text: str, entry: str) -> dict[str, int]:
    """`cuobjdump --dump-resource-usage`: the KEY:value pairs of `entry`."""
    match = re.search(rf"Function {re.escape(entry)}:\s*\n\s*(.+)", text)
    if match is None:
        raise ValueError(f"cuobjdump resource usage has no function {entry}: {text[:200]!r}")
    pairs = dict(re.findall(r"([A-Z]+(?:\[\d+\])?):(\d+)", match.group(1)))
    need = ("REG", "STACK", "SHARED", "LOCAL", "CONSTANT[0]")
    if any(k not in pairs for k in need):
        raise ValueError(f"cuobjdump resource usage of {entry} lacks one of {need}: {match.group(1)!r}")
    return {k: int(v) for k, v in pairs.items()}


_SASS_LINE = re.compile(r"^\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;?\s*/\*\s*0x[0-9a-f]+\s*\*/\s*$")


def parse_sass(text: str, entry: str) -> SassCounts:
    """Count `entry`'s instructions in `cuobjdump -sass` output (module docstring)."""
    start = text.find(f"Function : {entry}\n")
    if start < 0:
        raise ValueError(f"cuobjdump -sass output has no 'Function : {entry}': {text[:200]!r}")
    end = text.find("Function : ", start + 1)
    instructions: list[tuple[int, str]] = []
    for line in text[start:end if end > 0 else None].splitlines():
        m = _SASS_LINE.match(line)
        if m:
            instructions.append((int(m.group(1), 16), m.group(2).rstrip(" ;")))
    if not instructions:
        raise ValueError(f"no SASS instructions found for {entry}")
    while instructions and (_opcode(instructions[-1][1]) == "NOP" or _is_self_branch(*instructions[-1])):
        instructions.pop()  # padding after the end
    calls = [int(m.group(1), 16) for _, ins in instructions
             if (m := re.match(r"CALL\.REL(?:\.NOINC)?\s+0x([0-9a-f]+)", _strip_guard(ins)))]
    first_sub = min(calls, default=None)
    body = [(a, i) for a, i in instructions if first_sub is None or a < first_sub]
    while body and (_opcode(body[-1][1]) == "NOP" or _is_self_branch(*body[-1])):
        body.pop()
    loops = []
    for address, ins in body:
        m = re.match(r"BRA(?:\.[A-Z.]+)?\s+(?:\S+,\s*)?0x([0-9a-f]+)", _strip_guard(ins))
        if m and int(m.group(1), 16) < address:
            loops.append((address - int(m.group(1), 16)) // 16 + 1)
    return SassCounts(total=len(instructions), body=len(body), opcodes=Counter(_opcode(i) for _, i in instructions),
                      loops=loops, calls=len(calls), subroutines=len(set(calls)))


def _strip_guard(instruction: str) -> str:
    return re.sub(r"^@!?U?P[T0-9]+\s+", "", instruction)


def _opcode(instruction: str) -> str:
    return _strip_guard(instruction).split(" ", 1)[0].rstrip(";")


def _is_self_branch(address: int, instruction: str) -> bool:
    m = re.match(r"BRA\s+0x([0-9a-f]+)", _strip_guard(instruction))
    return bool(m) and int(m.group(1), 16) == address


# --- the kernels of a config --------------------------------------------------------------
