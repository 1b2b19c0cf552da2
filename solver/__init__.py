"""tumorsim: 3D reaction-diffusion for chemoimmunotherapy, on CuPy CUDA kernels or NumPy.

Public API:
    load_config(path)        -> RunConfig   (solver.config)
    build_model(config)      -> Model       (solver.model)
    Simulation(config, ...)  -> run()       (solver.simulation)
"""

from __future__ import annotations

__version__ = "0.1.0"
