"""The study family of commands: `tumorsim study`, `study report`, `optimise`, `sensitivity`.

Public API:
    run_command(command, argv, parser_class, verbose=False) -> int    exit status

solver/cli.py registers these commands with a line each and hands their arguments here,
so `tumorsim --help` imports neither this package nor Dask. Errors are raised as
solver.errors exceptions (ConfigError: exit status 2, one line; see solver/cli.py main);
a stop by SIGINT or SIGTERM prints the command that resumes and returns 128 + the
signal number. docs/studies.md and docs/optimisation.md document the commands.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import signal
import sys
from typing import Any

from solver import __version__
from solver.errors import ConfigError, RunInterrupted
from solver.text import one_line


def run_command(command: str, argv: list[str], parser_class: type[argparse.ArgumentParser], verbose: bool = False) -> int:
    """Parse `argv` for `command` (study, optimise, sensitivity) and run it."""
    if command == "study" and argv[:1] == ["report"]:
        return cmd_study_report(report_parser(parser_class).parse_args(argv[1:]))
    parser = {"study": study_parser, "optimise": optimise_parser, "sensitivity": sensitivity_parser}[command](parser_class)
    options = parser.parse_args(argv)
    if options.workers is not None and options.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {options.workers}")
    if options.dry_run and options.resume:
        what = {"study": "study", "optimise": "optimisation", "sensitivity": "sensitivity analysis"}[command]
        raise ConfigError(f"--dry-run says what a new {what} would run; it cannot be combined with --resume")
    import distributed  # noqa: F401  (its import sets its loggers to INFO: quiet them unless --verbose)

    logging.getLogger("distributed").setLevel(logging.INFO if verbose else logging.WARNING)
    run = {"study": cmd_study, "optimise": cmd_optimise, "sensitivity": cmd_sensitivity}[command]
    try:
        return run(options)
    except RunInterrupted as exc:
        print(f"tumorsim: {one_line(exc)}", file=sys.stderr)
        resume = ["tumorsim", command, options.file, "--resume"]
        resume += ["--out", options.out] if options.out else []
        print(f"tumorsim: resume with: {shlex.join(resume)}", file=sys.stderr)
        return 128 + (exc.signum or signal.SIGINT)


def _common(parser: argparse.ArgumentParser, what: str) -> argparse.ArgumentParser:
    parser.add_argument("--out", help=f"{what} folder (default: the file's output, else outputs/studies/NAME)")
    parser.add_argument("--resume", action="store_true",
                        help=f"continue the {what} in its folder: finished members are kept, interrupted ones continue")
    parser.add_argument("--dry-run", action="store_true", help="say what would run; run and write nothing")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="join a running Dask scheduler (tcp://host:8786)")
    parser.add_argument("--workers", type=int, metavar="N", help="workers of the cluster it starts")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return parser


def study_parser(parser_class: type[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = parser_class(prog="tumorsim study", description="run a regimen study (docs/studies.md); "
                          "`tumorsim study report DIR` draws its pictures and table")
    parser.add_argument("file", metavar="study", help="study file (YAML)")
    return _common(parser, "study")


def optimise_parser(parser_class: type[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = parser_class(prog="tumorsim optimise", description="optimise a regimen: optuna trials run as study "
                          "members (docs/optimisation.md)")
    parser.add_argument("file", metavar="optimisation", help="optimisation file (YAML)")
    parser.add_argument("--trials", type=int, metavar="N",
                        help="trials in all (default: the file's); with --resume, more extends a finished search")
    return _common(parser, "optimisation")


def sensitivity_parser(parser_class: type[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = parser_class(prog="tumorsim sensitivity", description="global sensitivity analysis: SALib Sobol or "
                          "Morris, members on the study engine (docs/optimisation.md)")
    parser.add_argument("file", metavar="sensitivity", help="sensitivity file (YAML)")
    return _common(parser, "sensitivity analysis")


def report_parser(parser_class: type[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = parser_class(prog="tumorsim study report", description="pictures and a Markdown table of a study folder")
    parser.add_argument("dir", help="the study folder")
    parser.add_argument("-o", "--output", help="folder for the report (default: DIR/report)")
    parser.add_argument("--x", help="varied key along the heatmap's x axis")
    parser.add_argument("--y", help="varied key along the heatmap's y axis")
    parser.add_argument("--value", help="outcome the heatmap shows (default: the efficacy outcome)")
    parser.add_argument("--efficacy", help="efficacy outcome of the Pareto scatter (default: final_burden)")
    parser.add_argument("--toxicity", help="toxicity outcome of the Pareto scatter (default: lymphocyte_nadir)")
    parser.add_argument("--members", help="comma-separated member ids to overlay besides the best and the base")
    parser.add_argument("--series", help="comma-separated series of the overlay (default: tumour_burden,C)")
    return parser


def _list_arg(text: str | None) -> list[str] | None:
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


def _run_stoppable(function: Any, *args: Any, **kwargs: Any) -> Any:
    """function(*args, stop=StopRequest, **kwargs) with SIGINT/SIGTERM setting the stop."""
    from solver.run import StopRequest, stop_on_signals

    stop = StopRequest()
    with stop_on_signals(stop):
        return function(*args, stop=stop, **kwargs)


def cmd_study(options: argparse.Namespace) -> int:
    from solver.study import resolve_study
    from solver.study.engine import SUMMARY_CSV, SUMMARY_PARQUET, dry_run_lines, execute

    resolved = resolve_study(options.file)
    if options.dry_run:
        for line in dry_run_lines(resolved, options.workers):
            print(line)
        return 0
    print(f"tumorsim {__version__}: study {resolved.study.name!r}, {len(resolved.members)} member(s) from "
          f"{options.file}" + (", resuming" if options.resume else ""))
    result = _run_stoppable(execute, resolved, options.out, resume=options.resume, scheduler=options.scheduler,
                            workers=options.workers, progress=not options.no_progress)
    counts = ", ".join(f"{n} {s}" for s, n in result.counts.items() if n)
    print(f"done: {counts}; {result.ran} run now, {result.skipped} found finished, in {result.wall_seconds:.1f} s"
          + (f" on {result.cluster}" if result.cluster else ""))
    failed = result.summary[result.summary["status"] == "failed"]
    for _, row in failed.head(5).iterrows():
        print(f"  failed: member {row['index']} ({row['id']}): {row['error']}")
    if len(failed) > 5:
        print(f"  ... and {len(failed) - 5} more failed (summary column `error`)")
    print(f"files: {result.out / SUMMARY_CSV}")
    print(f"       {result.out / SUMMARY_PARQUET}")
    print(f"       {result.out / 'members'}/<id>/ (one run folder per member)")
    return 1 if result.counts["failed"] and not result.counts["done"] else 0


def cmd_study_report(options: argparse.Namespace) -> int:
    from solver.study.report import make_report

    report = make_report(options.dir, output=options.output, x=options.x, y=options.y, value=options.value,
                         efficacy=options.efficacy, toxicity=options.toxicity,
                         members=_list_arg(options.members), series=_list_arg(options.series))
    for path in report.files:
        print(f"report: {path}")
    return 0


def cmd_optimise(options: argparse.Namespace) -> int:
    from solver.study.optimise import optimise, prepare
    from solver.study.optimise_report import dry_run_lines

    if options.trials is not None and options.trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {options.trials}")
    search = prepare(options.file)
    if options.dry_run:
        for line in dry_run_lines(search):
            print(line)
        return 0
    print(f"tumorsim {__version__}: optimisation {search.opt.name!r} from {options.file}, "
          f"{options.trials or search.spec.trials} trials" + (", resuming" if options.resume else ""))
    result = _run_stoppable(optimise, search, options.out, resume=options.resume, trials=options.trials,
                            scheduler=options.scheduler, workers=options.workers, progress=not options.no_progress)
    frame = result.trials
    counts = ", ".join(f"{n} {s.lower()}" for s, n in result.counts.items())
    print(f"done: {len(frame)} trials ({counts}), {result.ran} run now, {int(frame['feasible'].sum())} feasible, "
          f"{int(frame['pareto'].sum())} on the Pareto front, in {result.wall_seconds:.1f} s"
          + (f" on {result.cluster}" if result.cluster else ""))
    best = frame[frame["best"]]
    if len(best):
        row = best.iloc[0]
        shown = ", ".join(f"{c} {row[c]:.4g}" for c in search.objective_columns)
        print(f"  best feasible: trial {int(row['trial'])}: {shown}")
    files = [result.out / "trials.csv", *result.files]
    print(f"files: {files[0]}")
    for path in files[1:]:
        print(f"       {path}")
    complete = int((frame["state"] == "COMPLETE").sum())
    return 1 if len(frame) and not complete else 0


def cmd_sensitivity(options: argparse.Namespace) -> int:
    from solver.study.sensitivity import design, dry_run_lines, load_sensitivity, run_sensitivity

    d = design(load_sensitivity(options.file))
    if options.dry_run:
        for line in dry_run_lines(d):
            print(line)
        return 0
    print(f"tumorsim {__version__}: sensitivity {d.resolved.study.name!r} from {options.file}, "
          f"{len(d.resolved.members)} member(s)" + (", resuming" if options.resume else ""))
    result = _run_stoppable(run_sensitivity, d, options.out, resume=options.resume, scheduler=options.scheduler,
                            workers=options.workers, progress=not options.no_progress)
    done = int((result.summary["status"] == "done").sum())
    print(f"done: {done} of {len(result.summary)} members finished, {result.ran} run now, in "
          f"{result.wall_seconds:.1f} s; {len(result.indices)} indices")
    for path in result.files:
        print(f"files: {path}" if path == result.files[0] else f"       {path}")
    return 1 if not done else 0
