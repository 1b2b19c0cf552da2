"""Running a study on Dask: members submitted, results collected as they finish, the
summary written after each, stops and resumes handled.

Public API:
    execute(resolved, out, resume=False, scheduler=None, workers=None, progress=True, stop=None)
        -> StudyResult                  run every member that is not finished yet
    MemberRunner(client, resolved, members_dir).run(members, on_result, stop)
                                        members on Dask, each result handed back as it comes
    StudyResult                         the summary (pandas.DataFrame), counts, the folder
    summary_frame(resolved, results) -> pandas.DataFrame
    write_summary(frame, out)           DIR/summary.parquet and DIR/summary.csv, atomically
    load_summary(out) -> pandas.DataFrame
    read_meta(out) -> dict              DIR/study.json (columns, outcomes, report, base id)
    dry_run_lines(resolved, workers) -> list[str]
    study_folder(resolved, out) -> Path
    MEMBERS_DIR, SUMMARY_PARQUET, SUMMARY_CSV, META_FILE

The study folder:
    DIR/study.yaml          the study file as given
    DIR/study.json          what the report needs: value columns, outcomes, report keys, base id
    DIR/members/<id>/       one run folder per member (solver/study/members.py)
    DIR/summary.parquet, DIR/summary.csv   one row per member: id, index, base, every varied
                            value, every outcome, status, error, wall_seconds, steps, backend;
                            rewritten as members end (at most once a second) and at the end

Statuses: done, failed (its one-line error in `error`), interrupted (checkpointed by a
stop), pending (not run yet). A stop (StopRequest, set by SIGINT/SIGTERM through
solver.run.stop_on_signals) sets a distributed.Event that every running member watches:
each writes a checkpoint and returns; members not started return at once. `resume`
skips done and failed members (recognised by their id, the hash of their physics) and
continues interrupted ones from their latest checkpoint; nothing finished is run again.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time as wallclock
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solver.errors import ConfigError, RunInterrupted, SimulationError, TumorsimError
from solver.io.checkpoint import CHECKPOINT_DIR, list_checkpoints
from solver.run.signals import StopRequest, signal_name
from solver.study.members import Member, ResolvedStudy, read_result, run_member, task_for
from solver.text import duration, one_line

log = logging.getLogger(__name__)

MEMBERS_DIR = "members"
SUMMARY_PARQUET = "summary.parquet"
SUMMARY_CSV = "summary.csv"
META_FILE = "study.json"
STATUSES = ("done", "failed", "interrupted", "pending")
_RESULT_COLUMNS = ("status", "error", "wall_seconds", "steps", "backend", "folder")


@dataclass
class StudyResult:
    """What a study run reports."""

    out: Path
    summary: Any  # pandas.DataFrame
    counts: dict[str, int]
    ran: int  # members run (or continued) by this call
    skipped: int  # members found finished and not run again
    cluster: str = ""
    wall_seconds: float = 0.0  # this call, cluster start and shutdown included
    collect_seconds: float = 0.0  # from the first member submitted to the last result taken


def study_folder(resolved: ResolvedStudy, out: str | Path | None) -> Path:
    """The study's folder: --out, else the study's `output`, else outputs/studies/<name>."""
    spec = resolved.study
    if out is not None:
        return Path(out)
    if spec.spec.output is not None:
        path = Path(spec.spec.output).expanduser()
        return path if path.is_absolute() or spec.source == "<study>" else Path(spec.source).parent / path
    return Path("outputs") / "studies" / spec.name


def summary_frame(resolved: ResolvedStudy, results: dict[str, dict[str, Any]]) -> Any:
    """One row per member, in the study's order."""
    import pandas as pd

    rows = []
    for m in resolved.members:
        r = results.get(m.id) or {}
        row: dict[str, Any] = {"id": m.id, "index": m.index, "base": m.base}
        row.update({c: m.values.get(c) for c in resolved.columns})
        outcomes = r.get("outcomes") or {}
        row.update({name: _float(outcomes.get(name)) for name in resolved.outcomes})
        row["status"] = r.get("status", "pending")
        row["error"] = r.get("error") or ""
        row["wall_seconds"] = _float(r.get("wall_seconds"))
        row["steps"] = _float(r.get("steps"))
        row["backend"] = r.get("backend") or ""
        row["folder"] = f"{MEMBERS_DIR}/{m.id}" if m.config is not None else ""
        rows.append(row)
    columns = ["id", "index", "base", *resolved.columns, *resolved.outcomes, *_RESULT_COLUMNS]
    return pd.DataFrame(rows, columns=columns)


def _float(value: Any) -> float:
    try:
        return float(value) if value is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def write_summary(frame: Any, out: Path) -> None:
    """summary.parquet and summary.csv, each written to a temporary file and renamed."""
    for name, write in ((SUMMARY_PARQUET, lambda p: frame.to_parquet(p, index=False)),
                        (SUMMARY_CSV, lambda p: frame.to_csv(p, index=False))):
        tmp = out / f".{name}.tmp"
        write(tmp)
        os.replace(tmp, out / name)


def load_summary(out: str | Path) -> Any:
    """DIR/summary.parquet as a pandas.DataFrame.

    Raises:
        ConfigError: the folder holds no summary.
    """
    import pandas as pd

    path = Path(out) / SUMMARY_PARQUET
    if not path.is_file():
        raise ConfigError(f"{str(out)!r} holds no study summary ({SUMMARY_PARQUET}); give a folder `tumorsim study` wrote")
    return pd.read_parquet(path)


def read_meta(out: str | Path) -> dict[str, Any]:
    """DIR/study.json.

    Raises:
        ConfigError: the folder holds no study.
    """
    path = Path(out) / META_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ConfigError(f"{str(out)!r} holds no study ({META_FILE} missing or unreadable); "
                          "give the folder a `tumorsim study` wrote") from None


def _write_meta(resolved: ResolvedStudy, out: Path) -> None:
    study = resolved.study
    meta = {
        "name": study.name, "source": study.source, "base": study.base_source,
        "columns": resolved.columns,
        "outcomes": {n: o.model_dump(mode="json", exclude_defaults=True) for n, o in resolved.outcomes.items()},
        "report": study.spec.report.model_dump(mode="json"),
        "base_id": next((m.id for m in resolved.members if m.base), None),
        "members": len(resolved.members),
        "design_members": resolved.design_size,
    }
    cohort = study.spec.cohort
    if cohort is not None:
        from solver.study.cohort import patient_columns

        cure = cohort.response.cure or ("cured" if "cured" in resolved.outcomes else None)
        meta["cohort"] = {"size": cohort.size, "seed": cohort.seed, "variants": cohort.variants,
                          "sigmas": cohort.sigmas(), "response": cohort.response.model_dump(mode="json"),
                          "cure_outcome": cure}
        meta["cohort_columns"] = patient_columns(cohort)
    tmp = out / f".{META_FILE}.tmp"
    tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    os.replace(tmp, out / META_FILE)
    text = study.text if study.text is not None else _dump_yaml(study)
    (out / "study.yaml").write_text(text, encoding="utf-8")


def _dump_yaml(study: Any) -> str:
    import yaml

    return yaml.safe_dump(study.spec.model_dump(mode="json", exclude_defaults=True), sort_keys=False)


def _prepare(out: Path, resume: bool) -> None:
    holds = (out / META_FILE).exists() or (out / MEMBERS_DIR).exists()
    if resume and not holds:
        raise ConfigError(f"--resume: {str(out)!r} holds no study to continue; run without --resume to start one")
    if not resume and holds:
        raise SimulationError(f"study folder {str(out)!r} already holds a study; pass --resume to continue it "
                              "or --out to choose another folder")
    if out.exists() and not out.is_dir():
        raise SimulationError(f"study folder {str(out)!r} exists and is not a folder")
    try:
        (out / MEMBERS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SimulationError(f"cannot create study folder {str(out)!r}: {exc.strerror or exc}") from None


def _known_results(resolved: ResolvedStudy, out: Path) -> tuple[dict[str, dict[str, Any]], list[Member], dict[str, float]]:
    """What is already known per member, the members still to run, and the wall time their
    earlier sessions took (interrupted members)."""
    results: dict[str, dict[str, Any]] = {}
    todo: list[Member] = []
    previous: dict[str, float] = {}
    for m in resolved.members:
        if m.config is None:
            results[m.id] = {"id": m.id, "status": "failed", "error": m.error}
            continue
        r = read_result(out / MEMBERS_DIR / m.id)
        if r is not None and r.get("id") == m.id and r.get("status") in ("done", "failed"):
            results[m.id] = r
            continue
        if r is not None and r.get("status") == "interrupted":
            results[m.id] = r
            previous[m.id] = float(r.get("wall_seconds") or 0.0)
        todo.append(m)
    return results, todo, previous


def execute(
    resolved: ResolvedStudy,
    out: str | Path | None = None,
    resume: bool = False,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    stop: StopRequest | None = None,
) -> StudyResult:
    """Run the members of a resolved study that are not finished; write the summary as they end.

    Raises:
        ConfigError: --resume of a folder without a study, --workers with --scheduler.
        SimulationError: the folder already holds a study (without resume), or cannot be written.
        RunInterrupted: stopped by `stop` (or a second signal); running members were
            checkpointed (not after a second signal) and the summary says where each is.
    """
    out = study_folder(resolved, out)
    _prepare(out, resume)
    _write_meta(resolved, out)
    results, todo, previous = _known_results(resolved, out)
    skipped = len(resolved.members) - len(todo)
    write_summary(summary_frame(resolved, results), out)
    stop = stop if stop is not None else StopRequest()
    started = wallclock.perf_counter()
    description, collect = "", 0.0
    if todo and not stop:
        from solver.study.cluster import open_client

        with open_client(resolved.study.spec.cluster, scheduler, workers, resolved.base_config.backend) as (client, description):
            collect = _collect(client, resolved, out, todo, previous, results, progress, stop)
    frame = summary_frame(resolved, results)
    write_summary(frame, out)
    counts = {s: int((frame["status"] == s).sum()) for s in STATUSES}
    result = StudyResult(out, frame, counts, len(todo), skipped, description, wallclock.perf_counter() - started,
                         collect)
    if stop:
        raise _stopped(stop.signum or 0, counts, out)
    return result


class MemberRunner:
    """Runs members on a Dask client: submits their tasks (solver.study.members.run_member),
    hands each result to a callback as it comes, and on a stop tells the running members to
    write a checkpoint and return (a distributed.Event each of them watches). One runner
    serves any number of `run` calls on its client (the batches of an optimisation)."""

    def __init__(self, client: Any, resolved: ResolvedStudy, members_dir: Path) -> None:
        from distributed import Event

        self.client = client
        self.resolved = resolved
        self.members_dir = members_dir
        self.event_name = f"tumorsim-stop-{uuid.uuid4().hex}"
        self.event = Event(self.event_name, client)
        self.stopping = False

    def run(self, members: list[Member], on_result: Any, stop: StopRequest, previous: dict[str, float] | None = None,
            known: dict[str, dict[str, Any]] | None = None) -> float:
        """Run `members`, calling on_result(member, result) as each ends (done, failed,
        interrupted, or pending when a stop came before it started: then `known[id]`, what
        was known of it before, is kept). previous: wall seconds of earlier sessions, by id.
        Returns the seconds from the first submission to the last result.

        Raises:
            RunInterrupted: a second signal (running members lose their steps since their
                last checkpoint).
        """
        from distributed import as_completed

        previous, known = previous or {}, known or {}
        futures: dict[str, Member] = {}
        first = wallclock.perf_counter()
        submitted = []  # the Future objects: held until the end, or Dask forgets the tasks
        for m in members:
            folder = self.members_dir / m.id
            resume = bool(list_checkpoints(folder / CHECKPOINT_DIR))
            task = task_for(m, folder, self.resolved, resume, self.event_name, previous.get(m.id, 0.0))
            future = self.client.submit(run_member, task, key=f"member-{m.id}-{uuid.uuid4().hex[:8]}", pure=False,
                                        priority=-m.index)
            futures[future.key] = m
            submitted.append(future)
        pending = as_completed(submitted)
        while not pending.is_empty():
            if stop and not self.stopping:
                self.stopping = True
                log.warning("stopping (%s): running members write a checkpoint", signal_name(stop.signum or 0))
                self.event.set()
            batch = pending.next_batch(block=False)
            if not batch:
                wallclock.sleep(0.05)
                continue
            for future in batch:
                m = futures[future.key]
                on_result(m, _result_of(future, m, known.get(m.id)))
        return wallclock.perf_counter() - first


_SUMMARY_EVERY = 1.0  # seconds: the summary is rewritten at most this often while members end


def _collect(client: Any, resolved: ResolvedStudy, out: Path, todo: list[Member], previous: dict[str, float],
             results: dict[str, dict[str, Any]], progress: bool, stop: StopRequest) -> float:
    """Run the members still to do, take results as they come, rewrite the summary (at most
    every _SUMMARY_EVERY seconds; execute writes it again at the end); on a stop, tell
    running members to checkpoint and wait for them. Returns the seconds from the first
    submission to the last result."""
    runner = MemberRunner(client, resolved, out / MEMBERS_DIR)
    bar = _progress_bar(len(resolved.members), len(resolved.members) - len(todo), resolved.study.name, progress)
    written = [wallclock.perf_counter()]

    def on_result(m: Member, result: dict[str, Any]) -> None:
        results[m.id] = result
        if result["status"] in ("done", "failed") and bar is not None:
            bar.update(1)
            failed = sum(1 for r in results.values() if r.get("status") == "failed")
            bar.set_postfix_str(f"{failed} failed" if failed else "", refresh=False)
        if wallclock.perf_counter() - written[0] >= _SUMMARY_EVERY:
            write_summary(summary_frame(resolved, results), out)
            written[0] = wallclock.perf_counter()

    try:
        return runner.run(todo, on_result, stop, previous, results)
    except RunInterrupted:  # a second signal: no more waiting for checkpoints
        log.warning("study aborted: members still running lose the steps since their last checkpoint")
        write_summary(summary_frame(resolved, results), out)
        raise
    finally:
        if bar is not None:
            bar.close()


def _result_of(future: Any, member: Member, before: dict[str, Any] | None) -> dict[str, Any]:
    """The member's result; a worker lost or a task cancelled is the member failing (or, if
    the study was stopping, pending)."""
    if future.status == "finished":
        result = future.result()
        if result.get("status") == "pending" and before is not None:
            return before  # not started this time: what was known stays
        return result
    if future.status == "cancelled":
        return before or {"id": member.id, "status": "pending"}
    try:
        error = future.exception()
    except Exception as exc:  # noqa: BLE001 (the exception itself could not be fetched)
        error = exc
    return {"id": member.id, "status": "failed", "error": f"{type(error).__name__}: {one_line(error)}"}


def _progress_bar(total: int, done: int, name: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    tty = bool(getattr(sys.stderr, "isatty", lambda: False)())
    return tqdm(total=total, initial=done, desc=f"study {name}", unit="member", file=sys.stderr,
                mininterval=0.5 if tty else 30.0, dynamic_ncols=True)


def _stopped(signum: int, counts: dict[str, int], out: Path) -> RunInterrupted:
    shown = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])
    return RunInterrupted(f"study stopped by {signal_name(signum)}: {shown}; summary {out / SUMMARY_CSV}", signum)


_PROBE_STEPS = 20
_PROBE_VALUES = 1 << 22


def _time_member(member: Member, base_dir: Path) -> float | str:
    """Seconds one member would take on the CPU: its set-up plus its steps at the rate of
    _PROBE_STEPS steps taken with Simulation.advance (the whole step: implicit solves,
    systemic scalars), after two warm-up steps; or why it cannot be timed here."""
    from solver.backends.registry import get_backend
    from solver.config import parse_config
    from solver.run import Simulation

    config = parse_config(member.config, f"member {member.index}")
    config._base_dir = base_dir
    if config.backend == "gpu":
        return "runs on the GPU: not timed here (time one with `tumorsim run --dry-run` on a GPU node)"
    n_species = len(config.model.species)
    cells = config.grid.shape[0] * config.grid.shape[1] * config.grid.shape[2]
    if cells * n_species > _PROBE_VALUES:
        return f"{cells} cells x {n_species} species: too large to time on this CPU"
    t0 = wallclock.perf_counter()
    try:
        sim = Simulation(config)
    except TumorsimError as exc:
        return f"would fail: {one_line(exc)}"
    setup = wallclock.perf_counter() - t0
    state = sim.start(get_backend("cpu"))
    sim.advance(state, min(config.time.end, 2 * sim.plan.dt))
    step0, t1 = state.fields.step, wallclock.perf_counter()
    sim.advance(state, min(config.time.end, (2 + _PROBE_STEPS) * sim.plan.dt))
    taken = state.fields.step - step0
    per_step = (wallclock.perf_counter() - t1) / taken if taken else 0.0
    from solver.diagnostics import DiagnosticsEvaluator

    diagnostics = DiagnosticsEvaluator(sim.model, sim.grid, state.backend, sim.dtype)
    t2 = wallclock.perf_counter()
    for _ in range(3):  # a time-series record: reductions, systemic values, diagnostics
        sim.record(state, state.integrator.check(state.fields), diagnostics)
    per_record = (wallclock.perf_counter() - t2) / 3
    return setup + per_step * sim.plan.estimated_steps + per_record * len(sim.plan.series_times)


def dry_run_lines(resolved: ResolvedStudy, workers: int | None = None, sample: int = 5) -> list[str]:
    """What the study would run: the member count, a sample of resolved values, and a time
    estimate from a few timed CPU steps of up to three members. Writes nothing."""
    from solver.study.cluster import cpu_count

    members = resolved.members
    invalid = [m for m in members if m.config is None]
    lines = [(f"study {resolved.study.name!r}: {len(members)} member(s) from {resolved.study.source} "
              f"(base {resolved.study.base_source}; combine {resolved.study.spec.combine})")]
    if invalid:
        lines.append(f"  {len(invalid)} member(s) do not validate and would fail: e.g. member {invalid[0].index}: "
                     f"{invalid[0].error}")
    shown = members[:sample] + ([members[-1]] if len(members) > sample else [])
    for m in shown:
        values = ", ".join(f"{k}={v}" for k, v in m.values.items()) or "(the base config)"
        lines.append(f"  [{m.index}] {m.id}{' (base)' if m.base else ''}: {values}")
    if len(members) > sample + 1:
        lines.insert(len(lines) - 1, f"  ... {len(members) - sample - 1} more")
    lines.append(f"  outcomes: {', '.join(resolved.outcomes) or '(none)'}")
    valid = [m for m in members if m.config is not None]
    probes = [valid[i] for i in sorted({0, len(valid) // 2, len(valid) - 1})] if valid else []
    seconds = []
    for m in probes:
        estimate = _time_member(m, resolved.study.base_dir)
        if isinstance(estimate, str):
            lines.append(f"  member {m.index} ({m.id}): {estimate}")
        else:
            seconds.append(estimate)
    cluster = resolved.study.spec.cluster
    n = workers or getattr(cluster, "workers", None) or (cluster.jobs * (cluster.processes or max(cluster.gpus_per_job, 1))
                                                          if cluster.kind == "slurm" else cpu_count())
    if seconds:
        each = sum(seconds) / len(seconds)
        total = each * len(valid)
        lines.append(f"  estimate: about {duration(each)} per member (set-up, {_PROBE_STEPS} steps and 3 records timed on "
                     f"the CPU for {len(seconds)} member(s); file writes not counted), {duration(total)} in all, "
                     f"about {duration(total / n)} on {n} worker(s)")
    else:
        lines.append("  estimate: none (members are timed on the CPU backend only, on grids of at most "
                     f"{_PROBE_VALUES:.3g} values)")
    return lines
