"""Limits on the work a config can cause, set by whoever runs tumorsim (never by the config).

Public API:
    LIMITS                          name -> Limit (default, environment variable, what it bounds)
    limit(name) -> int              the limit in force: TUMORSIM_MAX_<NAME> if set, else the default
    refuse(name) -> str             the end of a refusal: "at most N allowed (raise the limit with ...)"
    read_bounded_text(path, name) -> str   a file's text, refused past limit(name) bytes

A config is data from anyone (a shared YAML file, a study's generated variants); without
limits, a few lines of it could ask for 1e13 time-series records, 1e300 steps, a YAML alias
bomb or a symbolic derivative that takes hours. Each limit below is far above what a real
run needs; a config past one is refused before the work starts, with one line naming the
key, the value and the limit. The limits are read from the environment, not from the
config, so a config cannot raise its own: `TUMORSIM_MAX_STEPS=1e10 tumorsim run big.yaml`.

A leaf module: the YAML loader, the expression parser, the schedule and the run plan use it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from solver.errors import ConfigError


@dataclass(frozen=True)
class Limit:
    default: int
    bounds: str  # what the limit bounds, for the README and messages

    def variable(self, name: str) -> str:
        return f"TUMORSIM_MAX_{name.upper()}"


LIMITS: dict[str, Limit] = {
    "config_bytes": Limit(8 << 20, "size of a config file in bytes"),
    "yaml_values": Limit(100_000, "values in a config after YAML aliases are expanded"),
    "yaml_depth": Limit(64, "nesting depth of a config's YAML"),
    "expression_nodes": Limit(20_000, "nodes of one expression (as written, and with definitions substituted)"),
    "minmax_operands": Limit(16, "operands of min() and max() in one expression (their derivatives cost most)"),
    "expanded_terms": Limit(10_000, "terms of one reaction multiplied out (the loss-rate split expands products)"),
    "records": Limit(1_000_000, "time-series records plus snapshots of a run"),
    "doses": Limit(100_000, "doses of all treatment entries together"),
    "steps": Limit(1_000_000_000, "time steps of a run"),
}


def limit(name: str) -> int:
    """The limit in force for `name`: the environment variable TUMORSIM_MAX_<NAME> if set
    (a positive number, "1e9" accepted), else the default.

    Raises:
        ConfigError: the environment variable is set to something that is not a positive number.
    """
    spec = LIMITS[name]
    text = os.environ.get(spec.variable(name), "").strip()
    if not text:
        return spec.default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 1):
        raise ConfigError(f"{spec.variable(name)}={text[:40]!r} must be a number >= 1 (the limit on the "
                          f"{spec.bounds})")
    return int(value)


def refuse(name: str) -> str:
    """'at most N allowed (raise the limit with TUMORSIM_MAX_<NAME>)', the end of a refusal."""
    most = limit(name)
    shown = str(most) if most < 10**7 else f"{most:.6g}"
    return f"at most {shown} allowed (raise the limit with {LIMITS[name].variable(name)})"


def read_bounded_text(path: str | os.PathLike[str], name: str) -> str:
    """The UTF-8 text of a file (or a FIFO, /dev/stdin), refused past limit(name) bytes.

    Raises:
        OSError, UnicodeDecodeError: as reading the file raises them.
        ConfigError: the file is larger than the limit (only that much is read).
    """
    most = limit(name)
    with open(path, "rb") as f:
        data = f.read(most + 1)
    if len(data) > most:
        raise ConfigError(f"{str(path)!r} is larger than {most} bytes; {refuse(name)}")
    return data.decode("utf-8")
