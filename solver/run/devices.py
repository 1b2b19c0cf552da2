"""A GPU stated on the command line, for planning a GPU run on a machine without one.

Public API:
    DEVICE_MEMORY                     named devices and their memory in bytes
    parse_memory(text) -> int         "80GB", "80 GiB", "81920MiB", "512MB" -> bytes
    StatedDevice(device, memory)      stands in for the CuPy backend in a dry run: name
                                      "cupy", no CUDA call; its memory is what is "free"
    stated_device(name, memory) -> StatedDevice

`tumorsim run CONFIG --dry-run --backend gpu --device H100` (or `--device-memory 80GB`)
plans the run for that device: the memory a GPU run needs is checked against the stated
memory instead of the free memory the CUDA driver reports.

The named devices' memory is the datasheet capacity in decimal gigabytes (1 GB = 1e9
bytes), which is at most what the boards have (an H100's "80 GB" is 80 GiB of HBM3); a
CUDA context and the driver take a few hundred MiB of it at run time, and a real run
checks the free memory the driver reports before it allocates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from solver.errors import ConfigError

GB = 10**9
DEVICE_MEMORY: dict[str, int] = {
    "A100-40GB": 40 * GB,
    "A100-80GB": 80 * GB,
    "H100": 80 * GB,
    "H200": 141 * GB,
    "L40S": 48 * GB,
}
_UNITS = {
    "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
    "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40,
}
_MEMORY = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?\s*([A-Za-z]+)\s*")


def parse_memory(text: str) -> int:
    """Bytes of a memory size with its unit: 80GB, 80 GiB, 81920MiB, 0.5TB (B, KB, MB, GB,
    TB in powers of 1000; KiB, MiB, GiB, TiB in powers of 1024; case does not matter).

    Raises:
        ConfigError: no number, no unit or an unknown one, or a size that is not positive.
    """
    allowed = "a number and a unit, e.g. 80GB or 80GiB (units: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
    match = _MEMORY.fullmatch(text)
    if match is None:
        raise ConfigError(f"--device-memory {text!r} is not a memory size; give {allowed}")
    number, exponent, unit = match.groups()
    factor = _UNITS.get(unit.upper())
    if factor is None:
        raise ConfigError(f"--device-memory {text!r}: unknown unit {unit!r}; give {allowed}")
    value = float(number) * 10 ** int(exponent or 0) * factor
    if not 1 <= value < 2**63:
        raise ConfigError(f"--device-memory {text!r} must be at least 1 byte (and below 8 EiB); give {allowed}")
    return int(value)


@dataclass(frozen=True)
class StatedDevice:
    """A GPU named on the command line: the dry run plans for it without touching CUDA."""

    device: str  # as the dry run names it
    memory: int  # bytes taken as free on it
    name: str = "cupy"  # the kind of backend it stands for (MemoryEstimate, the report)


def stated_device(name: str | None, memory: str | None) -> StatedDevice:
    """The device of `--device NAME` and/or `--device-memory SIZE` (the size wins over the
    name's; at least one is given).

    Raises:
        ConfigError: an unknown device name or a bad size, naming what is allowed.
    """
    known = None
    if name is not None:
        known = next((k for k in DEVICE_MEMORY if k.lower() == name.strip().lower()), None)
        if known is None:
            listed = ", ".join(f"{k} ({DEVICE_MEMORY[k] // GB} GB)" for k in DEVICE_MEMORY)
            raise ConfigError(f"--device {name!r} is not a device this knows; known: {listed}; "
                              "or give its memory with --device-memory, e.g. 80GB")
    size = parse_memory(memory) if memory is not None else DEVICE_MEMORY[known]  # type: ignore[index]
    label = f"{known}, stated" if known else "a stated GPU"
    return StatedDevice(f"{label}: {size / GB:.4g} GB (no GPU queried)", size)


__all__ = ["DEVICE_MEMORY", "StatedDevice", "parse_memory", "stated_device"]
