"""Reading a config: a YAML file (or a parsed mapping) -> a validated RunConfig.

Public API:
    load_config(path) -> RunConfig      read a YAML file (safe loader) and validate it
    parse_config(data, source) -> RunConfig
    builtin_config_path(name) -> Path   a config shipped with the package (e.g. "quickstart")

`model: NAME` (or `model: {builtin: NAME, ...}`) is expanded into the built-in model
first (solver/builtin_models/), then the whole mapping is validated; any error is ONE
line naming the key, the value and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from solver.builtin_models import with_builtin_model
from solver.config.messages import one_line_error
from solver.config.sections import RunConfig
from solver.errors import ConfigError
from solver.limits import read_bounded_text
from solver.package_data import data_dir
from solver.text import first_line, shown
from solver.yaml_loader import YAMLLimitError, load_yaml


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a YAML config (safe loader: no Python objects are built).

    Raises:
        ConfigError: missing/unreadable file, YAML syntax error, or invalid content.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config {str(path)!r} is a folder; expected a YAML file")
    if not path.exists():  # a FIFO or /dev/stdin (`tumorsim run <(...)`) is read like a file
        raise ConfigError(f"config file {str(path)!r} not found")
    try:
        text = read_bounded_text(path, "config_bytes")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config {str(path)!r}: {first_line(str(exc))}") from None
    try:
        data = load_yaml(text)
    except YAMLLimitError as exc:
        raise ConfigError(f"{path}: the YAML {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: YAML syntax error{where}: {first_line(problem)}") from None
    config = parse_config(data, source=str(path))
    config._base_dir = path.resolve().parent
    return config


def parse_config(data: Any, source: str = "<config>") -> RunConfig:
    """Validate an already-parsed mapping into a RunConfig.

    Raises:
        ConfigError: one line naming the key, the value and what is allowed.
    """
    if not isinstance(data, dict):
        got = "an empty file" if data is None else shown(data)
        raise ConfigError(
            f"{source}: a config must be a mapping of keys ({', '.join(RunConfig.model_fields)}), "
            f"got {got}"
        )
    data = with_builtin_model(data, source)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {one_line_error(exc, RunConfig)}") from None


def builtin_config_path(name: str) -> Path:
    """Path of a config shipped inside the package (configs/<name>.yaml)."""
    root = data_dir("configs")
    candidate = root / f"{name}.yaml"
    if not candidate.is_file():
        shipped = sorted(p.stem for p in root.glob("*.yaml"))
        raise ConfigError(f"no built-in config {name!r}; shipped configs: {', '.join(shipped)}")
    return candidate
