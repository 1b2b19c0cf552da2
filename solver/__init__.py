"""tumorsim: 3D reaction-diffusion for chemoimmunotherapy, on CuPy CUDA kernels or NumPy.

Public API (imported on first use, so `import solver` is light):
    load_config(path) -> RunConfig        (solver.config)
    parse_config(data) -> RunConfig       (solver.config)
    build_model(config) -> Model          (solver.model)
    Simulation(config, ...) -> .run()     (solver.run)
    load_run(path) -> RunData             (solver.io.run_file)

Data flows config -> model -> static fields -> backend -> integrator -> run -> writer ->
viz; README.md ("Layout") names the module of each step.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load_config": "solver.config",
    "parse_config": "solver.config",
    "build_model": "solver.model",
    "Simulation": "solver.run",
    "load_run": "solver.io.run_file",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    """The public names above, imported when first used (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'solver' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
