"""Regimen optimisation on the study engine: optuna's ask-and-tell, each trial a study member
(one per patient with a cohort) run on the study's Dask cluster.

Public API:
    optimise(source, out=None, resume=False, trials=None, scheduler=None, workers=None,
             progress=True, stop=None) -> OptimisationResult
    prepare(source) -> Search              the file loaded, its base and arms resolved, checked
    Search                                 the search space: trial -> members, outcomes -> values
    OptimisationResult                     the folder, the trials table, counts
    JOURNAL, META_FILE

The search runs in batches of `batch` trials (default: the NSGA-II population, else 4):
a batch is asked of the sampler, its members run in parallel on the cluster, and its
trials are told in trial order once all have ended. So a seeded search gives the same
trials on any cluster, however many workers it has. Trials whose members have the same
physics share them (a member folder is named by the hash of its physics): nothing is run
twice. Each trial is told its objectives (an outcome, or over a cohort a statistic of
it over the patients) and, before that, its constraint values c (feasible when every c
<= 0: c = min - value for a lower bound, value - max for an upper one) as the user
attribute `constraints`, which the samplers' constraints_func reads. A trial whose member
fails (a blow-up, a value that does not validate) or whose objective is NaN is told FAIL.

Storage: optuna's JournalStorage in DIR/optuna.journal (an append-only file: a process
killed at any point leaves every told trial in it). `resume` loads it: trials already
told are kept, trials asked but not told (RUNNING: the process stopped or was killed)
are evaluated from their stored parameters, their finished members read back from their
result.json and their checkpointed members continued, and the search goes on until
`trials` trials have ended. The sampler is then seeded from (seed, trials in storage),
so the resumed session does not draw the first session's points again. A trial asked
and killed before all its parameters were stored is told FAIL as abandoned and not
counted. SIGINT/SIGTERM (`stop`): running members write a checkpoint, finished trials
are told, the rest stay RUNNING for --resume.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time as wallclock
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from solver.errors import ConfigError, RunInterrupted, SimulationError
from solver.run.signals import StopRequest, signal_name
from solver.study.cohort import aggregate, patient_overrides, patient_values
from solver.study.design import DesignPoint, evaluate_derived
from solver.study.engine import MEMBERS_DIR, MemberRunner
from solver.study.members import Member, ResolvedStudy, read_result, resolve_member, resolve_members
from solver.study.optimise_spec import Constraint, Optimisation, direction_of, load_optimisation
from solver.study.spec import is_config_key

log = logging.getLogger(__name__)

JOURNAL = "optuna.journal"
META_FILE = "optimise.json"
_FINISHED = ("done", "failed")


def _column(outcome: str, statistic: str, q: float | None, cohort: bool) -> str:
    """The table column of an objective or constraint value: the outcome, or over a cohort
    the outcome and its statistic (final_burden_mean, final_burden_q0.9)."""
    if not cohort:
        return outcome
    return f"{outcome}_q{q:g}" if statistic == "quantile" else f"{outcome}_{statistic}"


@dataclass
class Search:
    """An optimisation ready to run: its file, its base and arms resolved, its checks done.

    Attributes:
        opt: The loaded optimisation file.
        resolved: The base config resolved as a study (its members: the base regimen,
            once per patient with a cohort), the outcomes, the patients.
        directions: optuna's direction per objective.
        objective_columns, constraint_columns: the table columns of their values.
        arms: label -> members: "base", then each reference.
    """

    opt: Optimisation
    resolved: ResolvedStudy
    directions: list[str]
    objective_columns: list[str]
    constraint_columns: list[str]
    arms: dict[str, list[Member]] = field(default_factory=dict)
    _index: int = 0

    @property
    def spec(self) -> Any:
        return self.opt.spec

    @property
    def variables(self) -> dict[str, Any]:
        return self.spec.variables

    def suggest(self, trial: Any) -> dict[str, Any]:
        """The trial's parameters, asked of the sampler (optuna suggest_*), by variable name."""
        params: dict[str, Any] = {}
        for name, v in self.variables.items():
            if v.kind == "float":
                params[name] = trial.suggest_float(name, v.low, v.high, log=v.log, step=v.step)
            elif v.kind == "int":
                params[name] = trial.suggest_int(name, int(v.low), int(v.high), log=v.log, step=int(v.step or 1))
            elif v.kind == "categorical":
                params[name] = trial.suggest_categorical(name, list(v.choices))
            else:
                params[name] = trial.suggest_categorical(name, list(v.cases))
        return params

    def point(self, params: dict[str, Any], where: str) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
        """The summary values and the config changes (`--set` pairs, in order) of a regimen:
        the variables' keys, their cases' keys, then the derived keys.

        Raises:
            ConfigError: an expression with an unknown name or a text variable.
        """
        scope = {n: params[n] for n, v in self.variables.items() if v.numeric}
        values = dict(params)
        changes: list[tuple[str, Any]] = []
        for name, v in self.variables.items():
            if v.kind == "cases":
                for key, text in v.cases[params[name]].items():
                    value = evaluate_derived(text, scope, f"{where}: variables.{name}.cases.{params[name]}.{key}")
                    changes.append((key, value))
            elif is_config_key(name) or v.key:
                changes.append((v.key or name, params[name]))
        for key, text in self.spec.derive.items():
            values[key] = evaluate_derived(text, scope, f"{where}: derive.{key}")
            changes.append((key, values[key]))
        return values, changes

    def members_of(self, values: dict[str, Any], changes: list[tuple[str, Any]], origin: str) -> list[Member]:
        """The members of a regimen: one, or one per patient of the cohort (in patient order).

        Raises:
            ConfigError: a key that does not exist in the base config.
        """
        from solver.config.overrides import as_override

        study = self.opt.study
        fixed = [as_override(item, "set") for item in self.spec.set.items()]
        overrides = [*fixed, *(as_override(item, origin) for item in changes)]
        points = []
        for patient in self.resolved.patients or [None]:
            row, extra = dict(values), []
            if patient is not None:
                row.update(patient_values(patient, self.spec.cohort))
                extra = [as_override(item, "cohort") for item in patient_overrides(patient)]
            points.append(DesignPoint(self._next_index(), row, (*overrides, *extra)))
        return [resolve_member(p, study) for p in points]

    def regimen_config(self, values: dict[str, Any], changes: list[tuple[str, Any]], name: str) -> dict[str, Any] | None:
        """The resolved config of a regimen on the base config's own patient (ready to run)."""
        from solver.config.overrides import as_override

        overrides = [as_override(item, "set") for item in self.spec.set.items()]
        overrides += [as_override(item, "variables") for item in changes]
        member = resolve_member(DesignPoint(0, values, tuple(overrides)), self.opt.study)
        return None if member.config is None else {**member.config, "name": name}

    def _next_index(self) -> int:
        self._index += 1
        return self._index

    def scores(self, members: list[Member], results: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Objective and constraint values of a regimen from its members' results:
        {"values": {column: value}, "objectives": [...], "constraints": [c...], "error": str|None}."""
        failed = [m for m in members if m.config is None or results.get(m.id, {}).get("status") != "done"]
        if failed:
            m = failed[0]
            error = m.error if m.config is None else results.get(m.id, {}).get("error") or "did not finish"
            return {"values": {}, "objectives": None, "constraints": None, "error": f"member {m.id}: {error}"}

        def value(outcome: str, statistic: str, q: float | None) -> float:
            return aggregate([_number(results[m.id]["outcomes"].get(outcome)) for m in members], statistic, q)

        values: dict[str, float] = {}
        objectives = []
        for o, column in zip(self.spec.objectives, self.objective_columns):
            values[column] = value(o.outcome, o.statistic, o.q)
            objectives.append(values[column])
        constraints = []
        for c, column in zip(self.spec.constraints, self.constraint_columns):
            values[column] = value(c.outcome, c.resolved_statistic, c.q)
            constraints.append(_violation(c, values[column]))
        error = None
        bad = [col for col, x in zip(self.objective_columns, objectives) if not math.isfinite(x)]
        if bad:
            error = f"objective {bad[0]} is {values[bad[0]]} (an outcome this regimen's run does not give)"
        return {"values": values, "objectives": objectives, "constraints": constraints, "error": error}


def _number(value: Any) -> float:
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def _violation(c: Constraint, value: float) -> float:
    """optuna's constraint value: <= 0 when satisfied (NaN: infinitely violated)."""
    if not math.isfinite(value):
        return math.inf
    parts = []
    if c.min is not None:
        parts.append(c.min - value)
    if c.max is not None:
        parts.append(value - c.max)
    return max(parts)


def prepare(source: str | Path | dict[str, Any] | Optimisation, base_dir: str | Path | None = None) -> Search:
    """Load and check an optimisation: base config, outcomes, directions, every variable's
    keys and expressions (at the low end of each range and the first choice or case), the
    reference arms. Nothing is written.

    Raises:
        ConfigError: one line naming what is wrong and what is allowed.
    """
    opt = source if isinstance(source, Optimisation) else load_optimisation(source, base_dir)
    spec, where = opt.spec, opt.study.source
    resolved = resolve_members(opt.study)
    outcomes = resolved.outcomes
    for section, items in (("objectives", spec.objectives), ("constraints", spec.constraints)):
        for i, item in enumerate(items):
            if item.outcome not in outcomes:
                raise ConfigError(f"{where}: {section}[{i}]: no outcome {item.outcome!r}; outcomes: {', '.join(outcomes)}")
    directions = [direction_of(o, outcomes, f"{where}: objectives[{i}]") for i, o in enumerate(spec.objectives)]
    cohort = spec.cohort is not None
    objective_columns = [_column(o.outcome, o.statistic, o.q, cohort) for o in spec.objectives]
    constraint_columns = [_column(c.outcome, c.resolved_statistic, c.q, cohort) for c in spec.constraints]
    search = Search(opt, resolved, directions, objective_columns, constraint_columns)
    search.arms["base"] = list(resolved.members)
    probe = {name: _probe_value(v) for name, v in spec.variables.items()}
    values, changes = search.point(probe, where)
    for m in search.members_of(values, changes, "variables"):  # keys that do not exist raise here
        if m.config is None:
            log.info("the search space's first corner does not validate: %s", m.error)
    for label, changes in spec.references.items():
        search.arms[label] = search.members_of({}, list(changes.items()), f"references.{label}")
        invalid = next((m for m in search.arms[label] if m.config is None), None)
        if invalid is not None:  # a fixed arm of the file, not a point of the search: the file is wrong
            raise ConfigError(f"{where}: references.{label}: {invalid.error}")
    return search


def _probe_value(v: Any) -> Any:
    if v.kind in ("float", "int"):
        return int(v.low) if v.kind == "int" else float(v.low)
    return v.choices[0] if v.kind == "categorical" else next(iter(v.cases))


def folder_of(search: Search, out: str | Path | None) -> Path:
    """The optimisation's folder: --out, else its `output`, else outputs/studies/<name>."""
    if out is not None:
        return Path(out)
    spec = search.spec
    if spec.output is not None:
        path = Path(spec.output).expanduser()
        return path if path.is_absolute() or search.opt.study.source == "<study>" else Path(search.opt.study.source).parent / path
    return Path("outputs") / "studies" / search.opt.name


@dataclass
class OptimisationResult:
    """What an optimisation run reports."""

    out: Path
    trials: Any  # pandas.DataFrame: one row per trial (solver/study/optimise_report.py)
    counts: dict[str, int]
    ran: int  # trials evaluated by this call
    cluster: str = ""
    wall_seconds: float = 0.0
    files: list[Path] = field(default_factory=list)
    stopped: RunInterrupted | None = None  # set when a stop ended it (optimise raises it)


def optimise(
    source: str | Path | dict[str, Any] | Search,
    out: str | Path | None = None,
    resume: bool = False,
    trials: int | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    stop: StopRequest | None = None,
) -> OptimisationResult:
    """Run (or continue) an optimisation; write its tables, configs and pictures.

    Args:
        source: an optimisation file, a mapping, or a prepared Search.
        out: the folder (default: the file's `output`, else outputs/studies/<name>).
        resume: continue the search stored in `out`.
        trials: how many trials in all (default: the file's `trials`); with resume, more
            than before extends a finished search.
        scheduler, workers, progress, stop: as for a study (solver.study.run_study).

    Raises:
        ConfigError: bad file; --resume without a search in the folder; a file whose search
            space, objectives or constraints differ from the stored search's.
        SimulationError: the folder already holds a search (without resume).
        RunInterrupted: stopped; the trials not told stay RUNNING in the storage.
    """
    from solver.io.lock import FolderLock

    started = wallclock.perf_counter()
    search = source if isinstance(source, Search) else prepare(source)
    out = folder_of(search, out)
    _prepare_folder(out, resume)
    with FolderLock(out):  # one process searches a folder at a time
        _drop_stale_journal_lock(out)
        result = _optimise(search, out, resume, trials or search.spec.trials, scheduler, workers, progress,
                           stop if stop is not None else StopRequest())
    result.wall_seconds = wallclock.perf_counter() - started
    if result.stopped is not None:
        raise result.stopped
    return result


def _optimise(search: Search, out: Path, resume: bool, target: int, scheduler: str | None, workers: int | None,
              progress: bool, stop: StopRequest) -> OptimisationResult:
    from solver.study.cluster import open_client
    from solver.study.optimise_report import write_outputs, write_trials

    study = _optuna_study(search, out, resume)
    _write_meta(search, out)
    results: dict[str, dict[str, Any]] = {}
    ran, description = 0, ""
    if (_counted(study) < target or _open_trials(study) or _arms_todo(search, out)) and not stop:
        with open_client(search.spec.cluster, scheduler, workers, search.resolved.base_config.backend) as (client, description):
            runner = MemberRunner(client, search.resolved, out / MEMBERS_DIR)
            bar = _progress_bar(target, _counted(study), search.opt.name, progress)
            try:
                arms = [m for members in search.arms.values() for m in members]
                _run_members(runner, arms, results, out, stop)
                ran = _search(search, study, runner, results, out, target, stop, bar)
            finally:
                if bar is not None:
                    bar.close()
    for m in (m for members in search.arms.values() for m in members):
        results.setdefault(m.id, read_result(out / MEMBERS_DIR / m.id) or {})
    frame = write_trials(search, study, out)
    files = write_outputs(search, study, frame, results, out) if not stop else []
    counts = frame["state"].value_counts().to_dict() if len(frame) else {}
    result = OptimisationResult(out, frame, {str(k): int(v) for k, v in counts.items()}, ran, description, 0.0, files)
    if stop:
        shown = ", ".join(f"{n} {s}" for s, n in result.counts.items())
        result.stopped = RunInterrupted(f"optimisation stopped by {signal_name(stop.signum or 0)}: "
                                        f"{shown or 'no trials'}; trials {out / 'trials.csv'}", stop.signum)
    return result


def _drop_stale_journal_lock(out: Path) -> None:
    """optuna's journal lock (a symlink beside the journal) left by a process killed while it
    appended: stale, since this process holds the folder's lock (optuna would otherwise
    wait 30 s before breaking it)."""
    stale = out / f"{JOURNAL}.lock"
    if stale.is_symlink() or stale.exists():
        log.warning("removing %s, left by a process that was killed while writing the journal", stale)
        stale.unlink()


def _prepare_folder(out: Path, resume: bool) -> None:
    holds = (out / JOURNAL).exists()
    if resume and not holds:
        raise ConfigError(f"--resume: {str(out)!r} holds no optimisation to continue ({JOURNAL} missing); run "
                          "without --resume to start one")
    if not resume and (holds or (out / MEMBERS_DIR).exists()):
        raise SimulationError(f"folder {str(out)!r} already holds a study or an optimisation; pass --resume to "
                              "continue it or --out to choose another folder")
    if out.exists() and not out.is_dir():
        raise SimulationError(f"folder {str(out)!r} exists and is not a folder")
    try:
        (out / MEMBERS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SimulationError(f"cannot create folder {str(out)!r}: {exc.strerror or exc}") from None


def _fingerprint(search: Search) -> dict[str, Any]:
    """What a stored search must share with the file that resumes it."""
    spec = search.spec
    base = [m.id for m in search.arms["base"]]
    return {
        "variables": {n: v.model_dump(mode="json", exclude_defaults=True) for n, v in spec.variables.items()},
        "derive": dict(spec.derive),
        "objectives": [o.model_dump(mode="json", exclude_defaults=True) for o in spec.objectives],
        "constraints": [c.model_dump(mode="json", exclude_defaults=True) for c in spec.constraints],
        "cohort": spec.cohort.model_dump(mode="json") if spec.cohort is not None else None,
        "base": base,
    }


def _sampler(search: Search, stored: int) -> Any:
    import numpy as np
    import optuna

    spec = search.spec.sampler
    seed = spec.seed if stored == 0 else int(np.random.SeedSequence([spec.seed, stored]).generate_state(1)[0])
    # optuna >= 5 reads constraints set on the trial (_set_constraints); before, a constraints_func
    new_api = hasattr(optuna.trial.Trial, "set_constraint")
    constraints = (lambda t: t.user_attrs["constraints"]) if search.spec.constraints and not new_api else None
    kind = search.spec.sampler_kind
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if kind == "nsga2":
            return optuna.samplers.NSGAIISampler(population_size=spec.population, seed=seed, constraints_func=constraints)
        if kind == "tpe":
            return optuna.samplers.TPESampler(n_startup_trials=spec.startup_trials, seed=seed,
                                              constraints_func=constraints)
    return optuna.samplers.RandomSampler(seed=seed)


def _optuna_study(search: Search, out: Path, resume: bool) -> Any:
    """The optuna study in DIR/optuna.journal: created, or loaded and checked against the file."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING if not log.isEnabledFor(logging.INFO) else optuna.logging.INFO)
    storage = JournalStorage(JournalFileBackend(str(out / JOURNAL)))
    name = search.opt.name
    fingerprint = _fingerprint(search)
    if resume:
        try:
            stored = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            names = ", ".join(s.study_name for s in optuna.get_all_study_summaries(storage)) or "none"
            raise ConfigError(f"--resume: {str(out)!r} holds no optimisation named {name!r} (it holds: {names})") from None
        before = stored.user_attrs.get("tumorsim_search") or {}
        changed = [k for k in fingerprint if before.get(k) != json.loads(json.dumps(fingerprint[k]))]
        if changed:
            what = ", ".join("base config" if k == "base" else k for k in changed)
            raise ConfigError(f"--resume: the optimisation file's {what} differ from the search stored in "
                              f"{str(out)!r}; resume with the same file, or start a new folder with --out")
        n = len(stored.get_trials(deepcopy=False))
        return optuna.load_study(study_name=name, storage=storage, sampler=_sampler(search, n))
    study = optuna.create_study(study_name=name, storage=storage, directions=search.directions,
                                sampler=_sampler(search, 0))
    study.set_user_attr("tumorsim_search", fingerprint)
    return study


def _write_meta(search: Search, out: Path) -> None:
    spec = search.spec
    meta = {
        "name": search.opt.name, "source": search.opt.study.source, "base": search.opt.study.base_source,
        "variables": {n: v.kind for n, v in spec.variables.items()},
        "derived": list(spec.derive),
        "objectives": [{"column": c, "outcome": o.outcome, "direction": d, "statistic": o.statistic}
                       for c, o, d in zip(search.objective_columns, spec.objectives, search.directions)],
        "constraints": [{"column": col, "outcome": c.outcome, "min": c.min, "max": c.max,
                         "statistic": c.resolved_statistic} for col, c in zip(search.constraint_columns, spec.constraints)],
        "arms": {label: [m.id for m in members] for label, members in search.arms.items()},
        "sampler": search.spec.sampler_kind, "batch": spec.batch_size,
        "cohort": spec.cohort.size if spec.cohort is not None else None,
        "series": spec.report.series,
    }
    tmp = out / f".{META_FILE}.tmp"
    tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    os.replace(tmp, out / META_FILE)
    text = search.opt.study.text
    if text is not None:
        (out / "optimise.yaml").write_text(text, encoding="utf-8")


def _counted(study: Any) -> int:
    """Trials that count towards the budget: told COMPLETE or FAIL (abandoned ones not)."""
    from optuna.trial import TrialState

    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.state in (TrialState.COMPLETE, TrialState.FAIL) and not t.user_attrs.get("abandoned"))


def _open_trials(study: Any) -> list[Any]:
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]


def _arms_todo(search: Search, out: Path) -> bool:
    return any((read_result(out / MEMBERS_DIR / m.id) or {}).get("status") not in _FINISHED
               for members in search.arms.values() for m in members if m.config is not None)


def _run_members(runner: MemberRunner, members: list[Member], results: dict[str, dict[str, Any]], out: Path,
                 stop: StopRequest) -> int:
    """Run the members not finished yet (each once, however many trials share it); results
    of the others are read from their folders. Returns how many were run."""
    todo, seen = [], set()
    for m in members:
        if m.id in seen or m.config is None:
            continue
        seen.add(m.id)
        known = read_result(out / MEMBERS_DIR / m.id)
        if known is not None and known.get("id") == m.id and known.get("status") in _FINISHED:
            results[m.id] = known
        else:
            todo.append(m)
    if todo and not stop:
        runner.run(todo, lambda m, r: results.__setitem__(m.id, r), stop, known=results)
    return len(todo)


def _search(search: Search, study: Any, runner: MemberRunner, results: dict[str, dict[str, Any]], out: Path,
            target: int, stop: StopRequest, bar: Any) -> int:
    """Evaluate the trials left open by an earlier session, then ask and evaluate batches
    until `target` trials have ended or a stop. Returns the trials told by this call."""
    from optuna.trial import Trial

    from solver.study.optimise_report import write_trials

    told = 0
    reopened = []
    for frozen in _open_trials(study):
        trial = Trial(study, frozen._trial_id)
        if set(frozen.params) != set(search.variables):  # killed while its parameters were asked
            trial.set_user_attr("abandoned", True)
            study.tell(trial, state=_fail())
            continue
        reopened.append((trial, dict(frozen.params)))
    if reopened:
        told += _evaluate(search, study, reopened, runner, results, out, stop, bar)
        write_trials(search, study, out)
    while not stop and _counted(study) < target:
        size = min(search.spec.batch_size, target - _counted(study))
        batch = []
        for _ in range(size):
            trial = study.ask()
            batch.append((trial, search.suggest(trial)))
        told += _evaluate(search, study, batch, runner, results, out, stop, bar)
        write_trials(search, study, out)
    return told


def _fail() -> Any:
    from optuna.trial import TrialState

    return TrialState.FAIL


def _evaluate(search: Search, study: Any, batch: list[tuple[Any, dict[str, Any]]], runner: MemberRunner,
              results: dict[str, dict[str, Any]], out: Path, stop: StopRequest, bar: Any) -> int:
    """Run a batch's members together, then tell its trials in trial order (those whose
    members all finished: a stop leaves the others RUNNING). Returns the trials told."""
    where = search.opt.study.source
    plans = []
    for trial, params in batch:
        values, changes = search.point(params, where)
        members = search.members_of(values, changes, "variables")
        trial.set_user_attr("members", [m.id for m in members])
        plans.append((trial, members))
    _run_members(runner, [m for _, members in plans for m in members], results, out, stop)
    told = 0
    for trial, members in sorted(plans, key=lambda p: p[0].number):
        if any(m.config is not None and results.get(m.id, {}).get("status") not in _FINISHED for m in members):
            continue  # stopped before it finished: RUNNING, for --resume
        score = search.scores(members, results)
        trial.set_user_attr("values", score["values"])
        if score["error"] is not None:
            trial.set_user_attr("error", score["error"])
            study.tell(trial, state=_fail())
        else:
            _set_constraints(trial, search.constraint_columns, score["constraints"])
            study.tell(trial, score["objectives"])
        told += 1
        if bar is not None:
            bar.update(1)
    return told


def _set_constraints(trial: Any, columns: list[str], values: list[float]) -> None:
    """The trial's constraint values c (feasible when every c <= 0), before it is told: as
    optuna >= 5 constraints (Trial.set_constraint), and as the user attribute `constraints`
    (the trials table; optuna 4's constraints_func reads it)."""
    trial.set_user_attr("constraints", values)
    if hasattr(trial, "set_constraint"):
        for k, (column, value) in enumerate(zip(columns, values)):
            trial.set_constraint(f"{k}:{column}", value)


def _progress_bar(total: int, done: int, name: str, enabled: bool) -> Any:
    if not enabled:
        return None
    import sys

    from tqdm import tqdm

    tty = bool(getattr(sys.stderr, "isatty", lambda: False)())
    return tqdm(total=total, initial=min(done, total), desc=f"optimise {name}", unit="trial", file=sys.stderr,
                mininterval=0.5 if tty else 30.0, dynamic_ncols=True)
