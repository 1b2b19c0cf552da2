"""Reading a config: a YAML file (or a parsed mapping) -> a validated RunConfig.

Public API:
    load_config(path, overrides=()) -> RunConfig    read a YAML file (safe loader) and validate it
    parse_config(data, source, overrides=()) -> RunConfig
    read_config_file(path) -> dict      the file's mapping as written (not yet validated)
    builtin_config_path(name) -> Path   a config shipped with the package (e.g. "quickstart")

`model: NAME` (or `model: {builtin: NAME, ...}`) is expanded into the built-in model
first (solver/builtin_models/), then `overrides` (`--set KEY=VALUE`,
solver/config/overrides.py) are applied, then the whole mapping is validated; any
error is ONE line naming the key, the value and what is allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from solver.builtin_models import with_builtin_model
from solver.config.messages import one_line_error
from solver.config.overrides import apply_overrides, as_override, resolved_key
from solver.config.sections import RunConfig
from solver.errors import ConfigError
from solver.limits import read_bounded_text
from solver.package_data import data_dir
from solver.text import first_line, shown
from solver.yaml_loader import YAMLLimitError, load_yaml


def load_config(path: str | Path, overrides: Sequence[Any] = ()) -> RunConfig:
    """Read and validate a YAML config (safe loader: no Python objects are built).

    Args:
        path: the YAML file.
        overrides: `--set` items ("KEY=VALUE" text, (key, value) pairs or Overrides),
            applied in order before validation.

    Raises:
        ConfigError: missing/unreadable file, YAML syntax error, an unknown override key,
            or invalid content.
    """
    path = Path(path)
    config = parse_config(read_config_file(path), source=str(path), overrides=overrides)
    config._base_dir = path.resolve().parent
    return config


def read_config_file(path: str | Path) -> Any:
    """The parsed YAML of a config file, as written (nothing expanded or validated).

    Raises:
        ConfigError: missing/unreadable file or a YAML syntax error.
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
    return data


def parse_config(data: Any, source: str = "<config>", overrides: Sequence[Any] = ()) -> RunConfig:
    """Validate an already-parsed mapping into a RunConfig, after applying `overrides`.

    Raises:
        ConfigError: one line naming the key, the value and what is allowed (and the
            `--set` that gave the value, when one did).
    """
    if not isinstance(data, dict):
        got = "an empty file" if data is None else shown(data)
        raise ConfigError(
            f"{source}: a config must be a mapping of keys ({', '.join(RunConfig.model_fields)}), "
            f"got {got}"
        )
    items = [as_override(o) for o in overrides]
    data = apply_overrides(data, items, source) if items else with_builtin_model(data, source)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        message = one_line_error(exc, RunConfig)
        raise ConfigError(f"{source}: {message}{_set_by(message, items, data)}") from None


def _set_by(message: str, items: list[Any], data: dict[str, Any]) -> str:
    """" (set by --set KEY=VALUE)" (or the study section that set it) when the error's key is one an override set (or lies under it)."""
    for o in reversed(items):
        try:
            key = resolved_key(data, o.path)
        except ConfigError:
            continue
        if message.startswith((f"{key}:", f"{key}.", f"{key}[")) or f"{key!r}" in message:
            return f" (set by {o.origin} {o})"
    return ""


def builtin_config_path(name: str) -> Path:
    """Path of a config shipped inside the package (configs/<name>.yaml)."""
    root = data_dir("configs")
    candidate = root / f"{name}.yaml"
    if not candidate.is_file():
        shipped = sorted(p.stem for p in root.glob("*.yaml"))
        raise ConfigError(f"no built-in config {name!r}; shipped configs: {', '.join(shipped)}")
    return candidate
