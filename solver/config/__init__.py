"""Run configuration: YAML -> validated, frozen, typed config objects.

Public API:
    load_config(path, overrides=()) -> RunConfig   read a YAML file (safe loader) and validate it
    parse_config(data, source, overrides=()) -> RunConfig
    read_config_file(path) -> dict      a config file's mapping as written
    Override, parse_override(text), apply_overrides(data, overrides, source)
                                        `--set KEY=VALUE` (solver/config/overrides.py)
    builtin_config_path(name) -> Path   a config shipped with the package (e.g. "quickstart")
    RunConfig and its sections (solver/config/sections.py): GridConfig, TimeConfig,
        OutputConfig, CheckpointConfig, ModelConfig, SpeciesConfig, ChemotaxisConfig,
        SystemicConfig, PKConfig, AgentConfig, DiagnosticConfig, DoseConfig
    Static sources (solver/config/sources.py): Source, FileSource, VesselSource,
        TumourSource, RunSource and their typed options
    normalise_boundary(spec)            (solver/config/boundary.py)

Modules: types (value types), sources, boundary, sections (the schema), messages
(one-line errors), overrides (`--set`), loading (files and mappings).
"""

from __future__ import annotations

from solver.config.boundary import FACE_KINDS, normalise_boundary
from solver.config.loading import builtin_config_path, load_config, parse_config, read_config_file
from solver.config.overrides import Override, apply_overrides, parse_key, parse_override
from solver.config.sections import (
    DEFAULT_CHECKPOINTS,
    RESERVED_NAMES,
    AgentConfig,
    CheckpointConfig,
    ChemotaxisConfig,
    DiagnosticConfig,
    DoseConfig,
    GridConfig,
    ModelConfig,
    OutputConfig,
    PKConfig,
    RunConfig,
    SpeciesConfig,
    SystemicConfig,
    TimeConfig,
    check_name,
)
from solver.config.sources import (
    EllipsoidTumour,
    FileSource,
    FileVessels,
    NecroticCoreVessels,
    NetworkVessels,
    RunSource,
    Source,
    SphereTumour,
    TumourSource,
    UniformVessels,
    VesselSource,
    tumour_options,
    vessel_options,
)

__all__ = [
    "DEFAULT_CHECKPOINTS", "FACE_KINDS", "RESERVED_NAMES", "AgentConfig", "CheckpointConfig",
    "ChemotaxisConfig", "DiagnosticConfig", "DoseConfig", "EllipsoidTumour", "FileSource",
    "FileVessels", "GridConfig", "ModelConfig", "NecroticCoreVessels", "NetworkVessels",
    "OutputConfig", "Override", "PKConfig", "RunConfig", "RunSource", "Source", "SpeciesConfig", "SphereTumour",
    "SystemicConfig", "TimeConfig", "TumourSource", "UniformVessels", "VesselSource",
    "apply_overrides", "builtin_config_path", "check_name", "load_config", "normalise_boundary",
    "parse_config", "parse_key", "parse_override", "read_config_file", "tumour_options", "vessel_options",
]
