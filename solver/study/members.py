"""Study members: each one an ordinary run in its own folder, recognised by its physics.

Public API:
    Member                          one member: index, id, values, resolved config (or its error)
    ResolvedStudy                   the base config, the members, the outcomes, the value columns
    resolve_members(study) -> ResolvedStudy
    resolve_member(point, study) -> Member        one design point's member (its config or error)
    member_id(resolved) -> str      12 hex digits of the hash of a resolved config's physics
    seed_keys(resolved) -> dict     key -> value of every generated map's seed
    MemberTask, run_member(task) -> dict    run one member in its folder (on a Dask worker)
    read_result(folder) -> dict | None,  RESULT_FILE

A member's folder `DIR/members/<id>/` holds what `tumorsim run` writes (config.yaml, the
resolved config; run.h5; run.xdmf; checkpoints/) and result.json (status, outcomes,
wall time, written atomically when the member ends). The id is the first 12 hex digits
of solver.io.checkpoint.config_hash of the member's physics (the resolved config without
its name, backend and the output keys that change no value), so a study resumed with
the same file finds every member again, and two members with the same physics are
refused. Relative file paths of the base config are made absolute in the member's
config, so `tumorsim run DIR/members/<id>/config.yaml` repeats the member bit for bit.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time as wallclock
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from solver.config import RunConfig, apply_overrides, parse_config
from solver.config.overrides import get_value
from solver.errors import CheckpointError, ConfigError, RunInterrupted, TumorsimError
from solver.io.checkpoint import CHECKPOINT_DIR, config_hash, list_checkpoints, physics_config
from solver.study.design import DesignPoint, design_points
from solver.study.outcomes import FOLD_CHANGE, check_outcomes, series_names, study_outcomes
from solver.study.spec import OutcomeSpec, Study, is_config_key
from solver.text import one_line

log = logging.getLogger(__name__)
RESULT_FILE = "result.json"


@dataclass(frozen=True)
class Member:
    """One member of a study.

    Attributes:
        index: Its row in the summary.
        id: member_id of its resolved config (for a config that does not validate: "x" and
            11 hex digits of the hash of its overrides).
        values: Column -> value (solver.study.design.DesignPoint.values; for the base
            member, the base config's value at each varied key).
        config: The resolved config (JSON types), None when it does not validate.
        error: The one-line validation error when config is None.
        base: True for the member whose physics is the base config's.
        replicate: Its replicate number.
    """

    index: int
    id: str
    values: dict[str, Any]
    config: dict[str, Any] | None
    error: str | None = None
    base: bool = False
    replicate: int = 0


@dataclass
class ResolvedStudy:
    """A study with every member's config resolved, checked before anything runs."""

    study: Study
    base_config: RunConfig
    members: list[Member]
    outcomes: dict[str, OutcomeSpec]
    columns: list[str] = field(default_factory=list)  # the value columns, in order
    design_size: int = 0  # members from the design; a base member run besides them comes after
    patients: list[Any] = field(default_factory=list)  # the cohort's (solver.study.cohort.Patient)


def member_id(resolved: dict[str, Any]) -> str:
    """First 12 hex digits of the hash of the physics of a resolved config."""
    return config_hash(physics_config(resolved))[:12]


def seed_keys(resolved: dict[str, Any]) -> dict[str, int]:
    """Every random seed of a resolved config, by key: the seed of each generated vessel map
    (model.maps.<name>.vessels.seed, model.species.<name>.initial.vessels.seed)."""
    out: dict[str, int] = {}
    model = resolved.get("model") or {}
    for name, source in (model.get("maps") or {}).items():
        if isinstance(source, dict) and isinstance(source.get("vessels"), dict) and "seed" in source["vessels"]:
            out[f"model.maps.{name}.vessels.seed"] = int(source["vessels"]["seed"])
    for name, species in (model.get("species") or {}).items():
        source = species.get("initial") if isinstance(species, dict) else None
        if isinstance(source, dict) and isinstance(source.get("vessels"), dict) and "seed" in source["vessels"]:
            out[f"model.species.{name}.initial.vessels.seed"] = int(source["vessels"]["seed"])
    return out


def resolve_members(study: Study) -> ResolvedStudy:
    """Every member's resolved config and id, the base member, and the outcomes, checked.

    Raises:
        ConfigError: the base config (with `set`) does not validate; a varied, derived or
            replicate key does not exist; two members have the same physics; an outcome
            names a series or agent the model lacks. A member whose values do not
            validate is not an error here: it is kept with its error and fails alone.
    """
    from solver.model import build_model

    spec = study.spec
    try:
        base_config = parse_config(study.base, study.base_source, [(k, v) for k, v in spec.set.items()])
    except ConfigError as exc:
        raise ConfigError(f"{study.source}: base: {exc}") from None
    base_config._base_dir = study.base_dir
    base_resolved = _resolved(base_config, study)
    patients = []
    if spec.cohort is not None:
        from solver.study.cohort import cohort_medians, sample_cohort

        patients = sample_cohort(spec.cohort, cohort_medians(study, base_config))
    try:
        points = design_points(spec, seed_keys(base_resolved), patients)
    except ConfigError as exc:
        raise ConfigError(f"{study.source}: {exc}") from None
    members = [resolve_member(p, study) for p in points]
    _refuse_duplicates(members, study.source)
    base_id = member_id(base_resolved)
    columns = list(points[0].values) if points else []
    hit = next((m for m in members if m.id == base_id), None)
    if hit is not None:
        members[hit.index] = Member(hit.index, hit.id, hit.values, hit.config, hit.error, True, hit.replicate)
    elif spec.include_base and not patients:  # a cohort has no base patient to run
        values = {c: _base_value(c, spec, base_resolved) for c in columns}
        members.append(Member(len(members), base_id, values, _named(base_resolved, study.name, base_id), base=True))
    model = build_model(base_config)
    outcomes = study_outcomes(spec, base_config.model.builtin, model.units.label)
    if spec.cohort is not None and "series" not in spec.cohort.response.model_fields_set and \
            spec.cohort.response.series not in series_names(model) and FOLD_CHANGE not in spec.outcomes:
        outcomes.pop(FOLD_CHANGE, None)  # a model without a tumour burden: no response rates by default
    try:
        check_outcomes(outcomes, model)
    except ConfigError as exc:
        raise ConfigError(f"{study.source}: {exc}") from None
    cure = spec.cohort.response.cure if spec.cohort is not None else None
    if cure is not None and cure not in outcomes:
        raise ConfigError(f"{study.source}: cohort.response.cure: no outcome {cure!r}; outcomes: {', '.join(outcomes)}")
    return ResolvedStudy(study, base_config, members, outcomes, columns, len(points), patients)


def resolve_member(point: DesignPoint, study: Study) -> Member:
    """The member of one design point: its resolved config and id, or (for values that do
    not validate) its one-line error, kept so that the member fails alone.

    Raises:
        ConfigError: a key of the point's overrides does not exist (the study file is wrong).
    """
    try:
        data = apply_overrides(study.base, point.overrides, study.base_source)
    except ConfigError as exc:  # a key that does not exist: the study file is wrong
        raise ConfigError(f"{study.source}: {exc}") from None
    try:
        config = parse_config(data, f"member {point.index}")
    except ConfigError as exc:  # a value out of range: this member fails, the others run
        fake = config_hash({"overrides": [(o.key, o.value) for o in point.overrides], "base": study.base_source})
        return Member(point.index, "x" + fake[:11], point.values, None, one_line(exc), replicate=point.replicate)
    config._base_dir = study.base_dir
    resolved = _resolved(config, study)
    mid = member_id(resolved)
    return Member(point.index, mid, point.values, _named(resolved, study.name, mid), replicate=point.replicate)


def _resolved(config: RunConfig, study: Study) -> dict[str, Any]:
    """The config as plain data, file paths absolute, no output folder of its own."""
    resolved = config.model_dump(mode="json")
    resolved["output"]["dir"] = None
    model = resolved["model"]
    sources = list((model.get("maps") or {}).items())
    sources += [(f"{n}.initial", s.get("initial")) for n, s in (model.get("species") or {}).items()]
    for _, source in sources:
        if isinstance(source, dict) and isinstance(source.get("file"), str):
            source["file"] = str(config.resolve_path(source["file"]).resolve())
        vessels = source.get("vessels") if isinstance(source, dict) else None
        if isinstance(vessels, dict) and vessels.get("kind") == "file" and isinstance(vessels.get("path"), str):
            vessels["path"] = str(config.resolve_path(vessels["path"]).resolve())
    return resolved


def _named(resolved: dict[str, Any], study_name: str, mid: str) -> dict[str, Any]:
    return {**resolved, "name": f"{study_name}-{mid}"}


def _base_value(column: str, spec: Any, base: dict[str, Any]) -> Any:
    if column == "replicate":
        return 0
    if column in spec.vary:
        key = column if is_config_key(column) else spec.vary[column].key
        return get_value(base, key) if key else None
    return get_value(base, column)  # a derived key


def _refuse_duplicates(members: list[Member], source: str) -> None:
    seen: dict[str, Member] = {}
    for m in members:
        if m.id in seen:
            other = seen[m.id]
            raise ConfigError(
                f"{source}: members {other.index} ({_shown_values(other.values)}) and {m.index} "
                f"({_shown_values(m.values)}) have the same physics; vary something that changes the run"
            )
        seen[m.id] = m


def _shown_values(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "no varied values"


# ------------------------------------------------------------------------------ on a worker


@dataclass(frozen=True)
class MemberTask:
    """What a worker needs to run one member (plain data: it travels to the worker)."""

    id: str
    index: int
    folder: str  # absolute
    config: dict[str, Any]
    base_dir: str
    outcomes: dict[str, dict[str, Any]]
    resume: bool = False  # the folder held checkpoints when submitted (the worker looks again)
    stop_event: str | None = None  # the name of the distributed.Event that stops the study
    previous_wall: float = 0.0  # wall seconds of earlier sessions of this member


def read_result(folder: str | Path) -> dict[str, Any] | None:
    """The member's result.json, or None when there is none (or it is unreadable)."""
    path = Path(folder) / RESULT_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_result(folder: Path, result: dict[str, Any]) -> None:
    """result.json written atomically (temporary file, fsync, rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{RESULT_FILE}.tmp"
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, folder / RESULT_FILE)


def run_member(task: MemberTask) -> dict[str, Any]:
    """Run one member in its folder and return its result (also written to result.json).

    The run is solver.run.Simulation(config, folder).run(), as `tumorsim run` does it;
    a set `task.stop_event` makes it write a checkpoint and stop (status "interrupted").
    Never raises for a member's own failure: a blow-up or a bad value is status
    "failed" with its one-line error. A task that finds the study stopping before it
    starts returns status "pending" and writes nothing.
    """
    from solver.run import StopRequest

    folder = Path(task.folder)
    stop = StopRequest()
    watcher = _StopWatcher(task.stop_event, stop)
    result: dict[str, Any] = {"id": task.id, "index": task.index, "status": "pending", "error": None,
                              "outcomes": {}, "wall_seconds": task.previous_wall, "steps": None,
                              "backend": None, "device": None, "resumed": task.resume, "worker": _worker_name()}
    started = wallclock.perf_counter()
    try:
        if stop:
            return result
        _share_the_cores()
        result.update(_run(task, folder, stop))
    except RunInterrupted as exc:
        result.update(status="interrupted", error=one_line(exc),
                      checkpoint=str(exc.checkpoint) if exc.checkpoint is not None else None)
    except TumorsimError as exc:
        result.update(status="failed", error=one_line(exc))
    except Exception as exc:  # a bug, or a library failing: this member fails, the study goes on
        log.exception("member %s failed", task.id)
        result.update(status="failed", error=f"internal error: {type(exc).__name__}: {one_line(exc)}")
    finally:
        watcher.close()
    result["wall_seconds"] = task.previous_wall + (wallclock.perf_counter() - started)
    result["finished_at"] = wallclock.strftime("%Y-%m-%dT%H:%M:%S")
    _write_result(folder, result)
    return result


def _run(task: MemberTask, folder: Path, stop: Any) -> dict[str, Any]:
    from solver.io.run_file import load_run
    from solver.run import Simulation
    from solver.study.outcomes import compute_outcomes

    config = parse_config(task.config, source=f"member {task.id}")
    config._base_dir = Path(task.base_dir)
    # Checkpoints in the folder are this member's (the folder is named by its physics): continue
    # from the latest, whether the study was resumed or Dask moved the task off a lost worker.
    resume = bool(list_checkpoints(folder / CHECKPOINT_DIR))
    if not resume:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.yaml").write_text(yaml.safe_dump(task.config, sort_keys=False), encoding="utf-8")
    sim = Simulation(config, out_dir=folder, overwrite=not resume)
    try:
        summary = sim.run(resume="latest" if resume else None, stop=stop)
    except CheckpointError as exc:  # a checkpoint that cannot be used: start the member again
        log.warning("member %s: %s; running it again from the start", task.id, one_line(exc))
        summary = Simulation(config, out_dir=folder, overwrite=True).run(stop=stop)
    specs = {name: OutcomeSpec.model_validate(raw) for name, raw in task.outcomes.items()}
    outcomes = compute_outcomes(load_run(folder), specs, config)
    return {"status": "done", "outcomes": outcomes, "steps": summary.steps, "backend": summary.backend,
            "device": summary.device, "resumed": summary.resumed_from is not None or task.resume}


class _StopWatcher:
    """Sets `stop` when the study's distributed.Event is set (polled from a thread, so the
    run only reads a flag after each step). Without an event name, nothing is watched."""

    def __init__(self, name: str | None, stop: Any) -> None:
        self.done = threading.Event()
        self.thread: threading.Thread | None = None
        if name is None:
            return
        from distributed import Event

        self.event = Event(name)  # made in the task's thread, where the worker's client is found
        self.stop = stop
        if self.event.is_set():
            stop.request(0)
            return
        self.thread = threading.Thread(target=self._watch, name=f"stop-watch-{name}", daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while not self.done.is_set():
            try:
                if self.event.wait(timeout=0.5):
                    self.stop.request(0)
                    return
            except Exception:  # noqa: BLE001 (the scheduler is gone, however it fails: checkpoint and stop)
                if not self.done.is_set():
                    self.stop.request(0)
                return

    def close(self) -> None:
        """Stop watching. The thread ends at its next wake-up (within 0.5 s); the member's
        task does not wait for it."""
        self.done.set()


def _share_the_cores() -> None:
    """On a Dask worker, the compiled CPU backend gets the worker's threads, not every core:
    a machine's workers run members side by side, and numba's pool of every core in each of
    them would have the members wait on each other's threads (measured here: 2 members on 2
    cores, 13x slower with 2 threads each on a small grid)."""
    try:
        from distributed import get_worker

        threads = int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        return
    import numba

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


def _worker_name() -> str | None:
    try:
        from distributed import get_worker

        return str(get_worker().name)
    except (ImportError, ValueError):
        return None


def task_for(member: Member, folder: Path, resolved: ResolvedStudy, resume: bool, stop_event: str | None,
             previous_wall: float = 0.0) -> MemberTask:
    """The MemberTask of a member of a resolved study."""
    assert member.config is not None
    outcomes = {n: o.model_dump(mode="json", exclude_defaults=True) for n, o in resolved.outcomes.items()}
    return MemberTask(member.id, member.index, str(folder.resolve()), member.config, str(resolved.study.base_dir),
                      outcomes, resume, stop_event, previous_wall)


def as_dict(task: MemberTask) -> dict[str, Any]:
    return asdict(task)
