"""User-facing errors: each carries a one-line message the CLI prints without a traceback."""

from __future__ import annotations


class TumorsimError(Exception):
    """Base of every error caused by what the user asked for (config, files, device)."""


class ConfigError(TumorsimError):
    """The config is malformed, names something unknown, or holds a value out of range."""


class ExpressionError(ConfigError):
    """An expression in the config is malformed or uses something outside the whitelist."""


class BackendError(TumorsimError):
    """The requested backend cannot run here (e.g. `gpu` without a CUDA device)."""


class SimulationError(TumorsimError):
    """The run itself failed (blow-up, unwritable output)."""


class RunFileError(TumorsimError):
    """A run's HDF5 file is missing, unreadable or not laid out as tumorsim writes it, or
    cannot answer the request (an unknown field, a time outside the snapshots)."""


class VizError(TumorsimError):
    """A picture cannot be made as asked (unknown file format, bad size, frame rate or level)."""


class MissingDependencyError(TumorsimError):
    """An optional package needed for pictures (PyVista, matplotlib, imageio) is not installed."""


class CheckpointError(TumorsimError):
    """A checkpoint asked for with --resume is missing, unreadable, or does not belong to
    this config (different physics, grid, species or static maps)."""


class RunInterrupted(TumorsimError):
    """The run stopped on a signal (SIGINT, SIGTERM); `checkpoint` is the file to resume
    from (the one just written, or an earlier one), None when there is none."""

    def __init__(self, message: str, signum: int, checkpoint: object | None = None) -> None:
        super().__init__(message)
        self.signum = signum
        self.checkpoint = checkpoint
