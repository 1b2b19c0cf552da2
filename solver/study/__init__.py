"""Regimen studies: many runs from one study file, on Dask, with outcomes, tables and plots.

Public API:
    run_study(study, out=None, resume=False, scheduler=None, workers=None, progress=True)
        -> pandas.DataFrame             run a study (a file or a mapping); one row per member
    resolve_study(study) -> ResolvedStudy      the members and their configs, checked, nothing run
    load_summary(out) -> pandas.DataFrame      DIR/summary.parquet of a study folder
    make_report(out, ...) -> StudyReport       heatmap, Pareto scatter, time series, Markdown table
    load_study, StudySpec (spec.py); design_points, DesignPoint (design.py);
    compute_outcomes, pareto_front, study_outcomes (outcomes.py); Member, ResolvedStudy,
    run_member, member_id (members.py); execute, StudyResult, dry_run_lines (engine.py);
    open_client (cluster.py)

Modules: spec (the study file's schema), design (combining values into members),
outcomes (from a run's time series), members (one member = one run folder), cluster
(LocalCluster, GPU workers, an existing scheduler, SLURM), engine (submitting,
collecting, the summary, stops and resumes), report (pictures and the table), cohort
(virtual patients, response rates), optimise_spec / optimise / optimise_report
(`tumorsim optimise`: optuna over members), sensitivity (`tumorsim sensitivity`: SALib),
commands (the command-line side of all of them). docs/studies.md documents the study
file and `tumorsim study`; docs/optimisation.md the optimisation and sensitivity files,
cohorts and their commands.

Dask (distributed, dask-jobqueue), pandas, pyarrow, optuna and SALib come with the
`study` extra and are imported only when a study, an optimisation or a sensitivity
analysis runs or is reported.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from solver.study.members import Member, ResolvedStudy, member_id, resolve_members, run_member
from solver.study.spec import StudySpec, load_study

log = logging.getLogger(__name__)

__all__ = [
    "Member", "ResolvedStudy", "StudySpec", "load_study", "load_summary", "make_report", "member_id",
    "resolve_members", "resolve_study", "run_member", "run_study",
]


def resolve_study(study: str | Path | dict[str, Any], base_dir: str | Path | None = None) -> ResolvedStudy:
    """Load a study (file or mapping) and resolve every member's config; nothing is written.

    Raises:
        ConfigError: the study or its base config is invalid (one line).
    """
    return resolve_members(load_study(study, base_dir))


def run_study(
    study: str | Path | dict[str, Any] | ResolvedStudy,
    out: str | Path | None = None,
    resume: bool = False,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    stop: Any = None,
) -> Any:
    """Run a study and return its summary, one row per member (as DIR/summary.parquet).

    Args:
        study: a study file, an inline study mapping, or a ResolvedStudy.
        out: the study folder (default: the study's `output`, else outputs/studies/<name>).
        resume: continue the study in `out`: finished members are kept, interrupted ones
            continue from their checkpoints.
        scheduler: address of a running Dask scheduler to use instead of starting a cluster.
        workers: workers of the cluster the study starts (default: one per core or GPU).
        progress: a progress bar over members on stderr.
        stop: a solver.run.StopRequest; when set, running members checkpoint and stop.

    Returns:
        pandas.DataFrame: id, index, base, every varied value, every outcome, status,
        error, wall_seconds, steps, backend, folder.

    Raises:
        ConfigError: bad study file; SimulationError: the folder holds a study (without
        resume); RunInterrupted: stopped (the summary on disk says where each member is).
    """
    from solver.study.engine import execute

    resolved = study if isinstance(study, ResolvedStudy) else resolve_study(study)
    result = execute(resolved, out, resume=resume, scheduler=scheduler, workers=workers, progress=progress, stop=stop)
    return result.summary


def load_summary(out: str | Path) -> Any:
    """The summary of a study folder as a pandas.DataFrame (DIR/summary.parquet)."""
    from solver.study.engine import load_summary as _load

    return _load(out)


def make_report(out: str | Path, **options: Any) -> Any:
    """The study report of a folder (solver/study/report.py: make_report)."""
    from solver.study.report import make_report as _make

    return _make(out, **options)
