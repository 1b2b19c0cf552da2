"""Command line: `tumorsim run | validate | view | animate | plot | compare | export | study |
optimise | sensitivity | bench`
(also `python -m solver`).

Errors caused by the user's input are printed as ONE line, `tumorsim: error: ...`,
with exit status 2 (bad config, arguments, or a checkpoint that cannot be resumed)
or 1 (the run failed: device, memory, files, blow-up); never a traceback. An
unexpected exception is a bug in tumorsim: it is reported as one line
`tumorsim: internal error: ...` (exit status 70), with the traceback logged only
under --verbose.

`run` stops cleanly on SIGINT, SIGTERM or SIGUSR1: it finishes the current step, writes a
checkpoint, prints the command that resumes it and exits with 128 + the signal
number (130, 143, 138). `run --resume [CHECKPOINT|latest|auto]` continues a run (auto:
from the latest checkpoint if there is one, else from the start: a batch job requeued
with its own command line); `run --dry-run` prints the plan, memory, output size and a
runtime estimate. `run --resume` on a finished run says so and does nothing; `run
--extend-to T` continues a finished run to a later end time T. `plot --follow` redraws a running run's time series as records arrive.
`run --set KEY=VALUE` changes a config key before validation. `study STUDY.yaml` runs a
regimen study on Dask (solver/study/); it stops the same way, with every running
member checkpointed, and `study --resume` continues it; `optimise` and `sensitivity` run
their members on the same engine (solver/study/commands.py parses their options).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from solver import __version__
from solver.errors import CheckpointError, ConfigError, RunInterrupted, TumorsimError
from solver.text import LogLine, duration, one_line

if TYPE_CHECKING:
    from solver.config import RunConfig

log = logging.getLogger("solver")
DEFAULT_CONFIG = "quickstart"
STUDY_COMMANDS = {
    "study": (("run a regimen study: many members from one study file, on Dask (study report DIR: its "
               "pictures and table)"), []),
    "optimise": ("optimise a regimen under toxicity constraints (optuna; trials run as study members)", ["optimize"]),
    "sensitivity": ("global sensitivity of outcomes to parameters (SALib Sobol or Morris; members on Dask)", []),
}
SET_HELP = ("change a config key before validation (repeatable): dotted keys, list items by index or "
            "treatment agent, e.g. treatment[il2].start=1.0, model.parameters.K_T=0.5, model.variant=patient10")


def _load(path: str | None, backend: str | None, precision: str | None, sets: list[str] | None = None) -> RunConfig:
    """The config at `path` (the built-in quickstart when None), with command-line overrides
    (`--set KEY=VALUE`, applied before validation; then --backend and --precision)."""
    from solver.config import builtin_config_path, load_config

    config = load_config(path if path else builtin_config_path(DEFAULT_CONFIG), overrides=sets or ())
    changes = {k: v for k, v in (("backend", backend), ("precision", precision)) if v}
    return config.replace(**changes) if changes else config


def cmd_validate(args: argparse.Namespace) -> int:
    from solver.run import Simulation

    config = _load(args.config, None, None, args.set)
    sim = Simulation(config)
    plan = sim.plan
    print(f"{args.config}: valid")
    print(f"  species: {', '.join(sim.model.names)}; grid {sim.grid.shape}, spacing {sim.grid.spacing}")
    print(f"  units: {sim.model.units.describe()}")
    print(f"  integrator {plan.integrator.name}, order {plan.order}; {plan.step_summary()}; "
          f"stability bound {plan.dt_bound:.6g}, set by {plan.limited_by}")
    print(f"  why {plan.integrator.name}: {'integrator auto: ' * (config.time.integrator == 'auto')}"
          f"{plan.integrator.reason}")
    print(f"  {'at least' if plan.controlled else 'about'} {plan.estimated_steps} steps, {len(plan.snapshot_times)} snapshots")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from solver.run import Simulation, StopRequest, stop_on_signals

    if args.config is None and args.resume is not None and args.resume.endswith((".yaml", ".yml")):
        args.config, args.resume = args.resume, "latest"  # `run --resume CONFIG` means the latest
    if args.resume is not None and args.overwrite:
        raise ConfigError("--resume continues the run in its folder; it cannot be combined with --overwrite")
    if args.resume is not None and args.dry_run:
        raise ConfigError("--dry-run plans a new run; it cannot be combined with --resume")
    if args.progress_every < 0:
        raise ConfigError(f"--progress-every must be >= 0 seconds (0: no progress), got {args.progress_every:g}")
    extend = args.extend_to is not None
    if extend and (args.overwrite or args.dry_run or args.resume == "auto"):
        raise ConfigError("--extend-to continues the finished run in --out; it cannot be combined with "
                          "--overwrite, --dry-run or --resume auto")
    sets = list(args.set or ())
    if extend:  # the run's config with the later end; check_extension compares it to the checkpoint's
        sets.append(f"time.end={args.extend_to!r}")
        args.resume = args.resume or "latest"
    config = _load(args.config, args.backend, args.precision, sets)
    stated = args.device is not None or args.device_memory is not None
    if stated and not args.dry_run:
        raise ConfigError("--device and --device-memory plan a GPU run with --dry-run; a run uses the GPU it finds")
    if args.dry_run:  # the device first: no GPU is a one-line answer before the grid is built
        from solver.run.dry_run import dry_run, dry_run_device

        device = dry_run_device(args.backend or config.backend, args.device, args.device_memory)
        print("\n".join(dry_run(Simulation(config, out_dir=args.out, overwrite=args.overwrite), device).lines()))
        return 0
    sim = Simulation(config, out_dir=args.out, overwrite=args.overwrite)
    if args.resume == "auto":
        args.resume = _resume_or_start(sim)
    if args.resume == "latest":
        finished = sim.finished_at("latest", extend)
        if finished is not None:  # nothing recomputed, nothing rewritten
            print(f"run in {sim.out_dir} is finished at t={finished:g} (time.end); nothing to do — use "
                  "--extend-to T to continue it to a later end time T")
            return 0
    print(
        f"tumorsim {__version__}: run {config.name!r}, grid {sim.grid.shape}, "
        f"{sim.plan.integrator.name} order {sim.plan.order}, {sim.plan.step_summary(4)}, bound set by "
        f"{sim.plan.limited_by}, to t = {config.time.end:g}"
        + (f", resuming from {args.resume}" if args.resume is not None and not extend else "")
        + (", extending the run in its folder" if extend else "")
    )
    progress = Progress(sim, args.progress_every) if args.progress_every > 0 else None
    stop = StopRequest()
    try:
        with stop_on_signals(stop):
            summary = sim.run(resume=args.resume, stop=stop, on_step=progress, extend=extend)
    except RunInterrupted as exc:
        if progress is not None:
            progress.close()
        return _interrupted(exc, args, sim.out_dir)
    if progress is not None:
        progress.close()
    session = (f" ({summary.steps_this_session} after resuming from {summary.resumed_from})"
               if summary.resumed_from is not None else "")
    print(
        f"done: {summary.steps} steps{session} in {summary.wall_seconds:.2f} s on {summary.device} "
        f"({summary.backend})"
    )
    if summary.max_error_estimate is not None:
        print(f"  error control (rtol {sim.plan.rtol:g}): {summary.rejected_steps} steps retaken smaller; the "
              f"largest accepted error estimate was {summary.max_error_estimate:.2f} of the tolerance")
    elif summary.rejected_steps:
        print(f"  step-size control: {summary.rejected_steps} steps retaken smaller")
    units = summary.units
    width = max(len(n) for n in (*summary.final_totals, *summary.final_diagnostics))
    time_unit = f" {units['time']}" if units.get("time") else ""
    print(f"  {'species':<{width}}  {'min':>12}  {'max':>12}  unit   (at t = {summary.t_end:g}{time_unit})")
    for n in summary.final_totals:
        print(f"  {n:<{width}}  {summary.final_min[n]:12.5g}  {summary.final_max[n]:12.5g}  {units.get(n, '-')}")
    if summary.final_diagnostics:  # systemic scalars, plasma levels and the model's diagnostics
        print(f"  {'':<{width}}  {'value':>12}  {'':>12}  unit")
        for n, value in summary.final_diagnostics.items():
            print(f"  {n:<{width}}  {value:12.5g}  {'':>12}  {units.get(n, '-')}")
    print(f"files: {summary.run_file}")
    print(f"       {summary.run_file.with_suffix('.xdmf')} (open in ParaView)")
    print(f"       {summary.out_dir / 'config.yaml'} (resolved config)")
    if summary.last_checkpoint is not None and summary.last_checkpoint.exists():
        print(f"       {summary.last_checkpoint} (last checkpoint)")
    if config.output.pictures:
        for path in _final_pictures(summary.run_file):
            print(f"       {path}")
    return 0


def _resume_or_start(sim) -> str | None:
    """--resume auto: "latest" when the folder holds a checkpoint; else None (start), and a
    run there without one (killed before its first checkpoint) is replaced."""
    from solver.io.checkpoint import CHECKPOINT_DIR, list_checkpoints

    if list_checkpoints(sim.out_dir / CHECKPOINT_DIR):
        return "latest"
    print(f"tumorsim: --resume auto: no checkpoint in {sim.out_dir}, starting the run", file=sys.stderr)
    sim.overwrite = True
    return None


def resume_command(args: argparse.Namespace, out_dir: Path, checkpoint: Path) -> str:
    """The command line that continues this run from `checkpoint`."""
    parts = ["tumorsim", "run"]
    if args.config:
        parts.append(args.config)
    parts += ["--out", str(out_dir)]
    for item in getattr(args, "set", None) or ():
        parts += ["--set", item]
    for option in ("backend", "precision"):
        if getattr(args, option):
            parts += [f"--{option}", getattr(args, option)]
    if getattr(args, "extend_to", None) is not None:
        parts += ["--extend-to", f"{args.extend_to!r}"]
    parts += ["--resume", str(checkpoint)]
    return shlex.join(parts)


def _interrupted(exc: RunInterrupted, args: argparse.Namespace, out_dir: Path) -> int:
    """Say where the run stopped and how to resume it; exit status 128 + signal number."""
    print(f"tumorsim: {one_line(exc)}", file=sys.stderr)
    if exc.checkpoint is not None:
        print(f"tumorsim: resume with: {resume_command(args, out_dir, Path(exc.checkpoint))}", file=sys.stderr)
    else:
        print("tumorsim: no checkpoint to resume from; run again to start over", file=sys.stderr)
    return 128 + (exc.signum or signal.SIGINT)


class Progress:
    """Progress of a run on stderr: simulated time, steps per second and ETA.

    On a terminal, a bar redrawn in place a few times a second; otherwise (CI, batch
    jobs) a plain line every `every` seconds of wall-clock time. Called after every step.
    """

    def __init__(self, sim, every: float, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.total = max(sim.plan.estimated_steps, 1)
        self.end = sim.config.time.end
        self.unit = f" {sim.model.time_unit}" if sim.model.time_unit else ""
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every = 0.25 if self.tty else every
        self.started: float | None = None
        self.step0 = 0
        self.next = 0.0
        self.drawn = False

    def __call__(self, fields) -> None:
        now = time.perf_counter()
        if self.started is None:
            self.started, self.step0, self.next = now, fields.step, now + self.every
            return
        if now < self.next:
            return
        self.next = now + self.every
        rate = (fields.step - self.step0) / (now - self.started)
        eta = duration((self.total - fields.step) / rate) if rate > 0 else "?"
        done = min(fields.step / self.total, 1.0)
        text = (f"t = {fields.t:.4g} / {self.end:g}{self.unit}, step {fields.step} of {self.total}, "
                f"{rate:.3g} steps/s, ETA {eta}")
        if self.tty:
            bar = "#" * int(done * 24)
            self.stream.write(f"\r{done:4.0%} [{bar:<24}] {text}\x1b[K")
            self.drawn = True
        else:
            self.stream.write(f"tumorsim: {done:.0%}, {text}\n")
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line (a no-op for plain lines)."""
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


def _final_pictures(run_file) -> list:
    """PNG of the final state and of the time series; a missing `viz` extra is a note, not an error."""
    from solver.errors import MissingDependencyError

    try:
        from solver.viz import plot_timeseries, screenshot

        folder = run_file.parent
        return [
            screenshot(run_file, folder / "final_state.png"),
            plot_timeseries(run_file, folder / "timeseries.png"),
        ]
    except MissingDependencyError as exc:
        print(f"note: no pictures made ({exc})")
        return []


def cmd_view(args: argparse.Namespace) -> int:
    from solver.io.run_checks import checked_run, snapshot_time
    from solver.viz import view

    if args.clim is not None and not args.clim[0] < args.clim[1]:
        raise ConfigError(f"--clim must be LO HI with LO < HI, got {args.clim[0]:g} {args.clim[1]:g}")
    if args.clim is not None and args.log and args.clim[0] <= 0:
        raise ConfigError(f"--clim LO must be > 0 with --log, got {args.clim[0]:g}")
    run = checked_run(args.run, field=args.field)
    when, note = snapshot_time(run, _time_arg(args.time))
    if note:
        print(f"tumorsim: {note}", file=sys.stderr)
    out = view(args.run, field=args.field, time=when, screenshot=args.screenshot,
               window_size=tuple(args.size) if args.size else None, log_scale=args.log,
               clim=tuple(args.clim) if args.clim else None)
    if out is not None:
        print(f"picture: {out}")
    return 0


def cmd_animate(args: argparse.Namespace) -> int:
    from solver.viz import animate

    out = animate(args.run, args.output, field=args.field, fps=args.fps, window_size=tuple(args.size))
    print(f"movie: {out}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from solver.viz import plot_timeseries

    if args.follow:
        return _follow(args)
    from solver.io.run_checks import checked_run

    checked_run(args.run, series=_list_arg(args.series))
    out = plot_timeseries(args.run, args.output or _beside(args.run, "timeseries.png"),
                          series=_list_arg(args.series), logy=args.log or None)
    print(f"plot: {out}")
    return 0


def _follow(args: argparse.Namespace) -> int:
    """Redraw the plot every --every seconds while the run's folder is locked by a live run
    (solver/io/lock.py), and once more after it ends; Ctrl-C stops following."""
    from solver.errors import RunFileError
    from solver.io.lock import lock_holder
    from solver.viz import load_run, plot_timeseries

    if args.every <= 0:
        raise ConfigError(f"--every must be > 0 seconds, got {args.every:g}")
    path = Path(args.run)
    folder = path if path.is_dir() else path.parent
    out = args.output or _beside(args.run, "timeseries.png")
    shown_records = -1
    while True:
        running = lock_holder(folder) is not None
        try:
            run = load_run(args.run)
        except RunFileError:
            if not running:
                raise
            run = None  # not written yet
        if run is not None and run.series_time.size and run.series_time.size != shown_records:
            plot_timeseries(run, out, series=_list_arg(args.series), logy=args.log or None)
            shown_records = run.series_time.size
            print(f"plot: {out} ({shown_records} records, t = {run.series_time[-1]:g}"
                  f"{', running' if running else ''})", flush=True)
        if not running:
            if shown_records < 0:
                raise RunFileError(f"{args.run} holds no time-series records")
            return 0
        time.sleep(args.every)


def cmd_compare(args: argparse.Namespace) -> int:
    from solver.io.run_checks import checked_run
    from solver.viz import compare_runs

    labels = _list_arg(args.labels)
    if labels is not None and len(labels) != len(args.runs):
        raise ConfigError(f"--labels gives {len(labels)} label(s) for {len(args.runs)} run(s): give one per run, "
                          f"in their order (e.g. --labels {','.join(f'arm{i + 1}' for i in range(len(args.runs)))}), "
                          "or none for each run's name")
    for run in args.runs:
        checked_run(run, series=_list_arg(args.series))
    out = compare_runs(args.runs, args.output, series=_list_arg(args.series),
                       labels=labels, logy=args.log or None)
    print(f"plot: {out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from solver.io.export import export_run

    for line in export_run(args.run, args.csv, args.vti, args.overwrite):
        print(line)
    return 0


def _beside(run: str, name: str):
    path = Path(run)
    return (path if path.is_dir() else path.parent) / name


def _list_arg(text: str | None) -> list[str] | None:
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


def _end_time(text: str) -> float:
    """--extend-to: a finite number (else a one-line usage error)."""
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number (a simulated time), got {text!r}")
    return value


def _time_arg(text: str):
    """'last', 'first' or a number (simulated time)."""
    if text in ("last", "first"):
        return text
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"--time must be last, first or a number, got {text!r}") from None


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is the one line `tumorsim: error: ...` (exit 2) like any other."""

    def error(self, message: str) -> NoReturn:
        hint = f"; see '{self.prog} --help'"
        self.exit(2, f"tumorsim: error: {one_line(message)}{hint}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tumorsim", description="3D reaction-diffusion for chemoimmunotherapy")
    parser.add_argument("--version", action="version", version=f"tumorsim {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and choices")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    run = sub.add_parser("run", help="run a config (the built-in quickstart when none is given)")
    run.add_argument("config", nargs="?", help="YAML config; default: the built-in quickstart")
    run.add_argument(
        "--out", help="output folder (default: output.dir of the config, else outputs/NAME)"
    )
    run.add_argument(
        "--backend", choices=("auto", "gpu", "cpu", "numpy"), help="override the config's backend"
    )
    run.add_argument(
        "--precision", choices=("float32", "float64"), help="override the config's precision"
    )
    run.add_argument(
        "--overwrite", action="store_true", help="replace a run already in the output folder"
    )
    run.add_argument(
        "--resume", nargs="?", const="latest", metavar="CHECKPOINT",
        help="continue the run in the output folder from a checkpoint file, 'latest' (the default), or "
             "'auto' (the latest checkpoint if there is one, else start: for batch jobs that are requeued)",
    )
    run.add_argument(
        "--extend-to", type=_end_time, metavar="T",
        help="continue the finished run in --out (from its end state) to the later end time T, as if T had "
             "been time.end from the start; refused where the record times would not line up",
    )
    run.add_argument(
        "--dry-run", action="store_true",
        help="print grid, dt, steps, memory, output size and a runtime estimate; run nothing",
    )
    run.add_argument("--device", metavar="NAME", help="with --dry-run --backend gpu: plan for this GPU, not "
                     "queried (A100-40GB, A100-80GB, H100, H200, L40S)")
    run.add_argument("--device-memory", metavar="SIZE", help="with --dry-run --backend gpu: plan for a GPU with "
                     "this much memory, e.g. 80GB or 80GiB (not queried)")
    run.add_argument(
        "--progress-every", type=float, default=30.0, metavar="SECONDS",
        help="progress line interval when stderr is not a terminal (default 30; 0: no progress)",
    )
    run.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
    run.set_defaults(func=cmd_run)

    validate = sub.add_parser("validate", help="check a config without running it")
    validate.add_argument("config", help="YAML config")
    validate.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
    validate.set_defaults(func=cmd_validate)

    size = {"nargs": 2, "type": int, "default": [1024, 768], "metavar": ("W", "H"), "help": "picture size in pixels"}
    view = sub.add_parser("view", help="3D scene of one snapshot (window, or PNG when headless)")
    view.add_argument("run", help="run folder or its run.h5")
    view.add_argument("--field", help="field on the slices and the tumour surface (default: the tumour field)")
    view.add_argument("--time", default="last", help="snapshot: last, first or a simulated time")
    view.add_argument("--screenshot", help="write this PNG instead of opening a window")
    view.add_argument("--size", **{**size, "default": None, "help": "picture size in pixels (default: by its panels)"})
    view.add_argument("--log", action="store_true", help="logarithmic colour scale of --field (default: the tumour field)")
    view.add_argument("--clim", nargs=2, type=float, metavar=("LO", "HI"), help="colour limits of --field, in its units")
    view.set_defaults(func=cmd_view)

    anim = sub.add_parser("animate", help="the 3D scene over all snapshots, as .mp4 or .gif")
    anim.add_argument("run", help="run folder or its run.h5")
    anim.add_argument("-o", "--output", required=True, help="movie file, .mp4 or .gif")
    anim.add_argument("--field", help="field on the slices and the tumour surface")
    anim.add_argument("--fps", type=float, default=4.0, help="frames per second")
    anim.add_argument("--size", **size)
    anim.set_defaults(func=cmd_animate)

    plot = sub.add_parser("plot", help="time series of a run (PNG, SVG or PDF)")
    plot.add_argument("run", help="run folder or its run.h5")
    plot.add_argument("-o", "--output", help="figure file (default: timeseries.png beside the run)")
    plot.add_argument("--series", help="comma-separated series names (default: the key diagnostics)")
    plot.add_argument("--log", action="store_true", help="logarithmic y axes")
    plot.add_argument("--follow", action="store_true",
                      help="redraw as the run records (while it runs), then exit when it ends")
    plot.add_argument("--every", type=float, default=10.0, metavar="SECONDS",
                      help="with --follow: seconds between redraws (default 10)")
    plot.set_defaults(func=cmd_plot)

    compare = sub.add_parser("compare", help="overlay the time series of several runs (treatment arms)")
    compare.add_argument("runs", nargs="+", help="run folders or run.h5 files")
    compare.add_argument("-o", "--output", required=True, help="figure file")
    compare.add_argument("--series", help="comma-separated series names")
    compare.add_argument("--labels", help="comma-separated legend labels (default: each run's name)")
    compare.add_argument("--log", action="store_true", help="logarithmic y axes")
    compare.set_defaults(func=cmd_compare)

    export = sub.add_parser("export", help="a run's time series as CSV, its snapshots as VTK ImageData (.vti)")
    export.add_argument("run", help="run folder or its run.h5")
    export.add_argument("--csv", metavar="FILE", help="the time series: one row per record, a column per series")
    export.add_argument("--vti", metavar="DIR", help="one .vti per snapshot (and run.pvd) in this folder")
    export.add_argument("--overwrite", action="store_true", help="replace files of an earlier export")
    export.set_defaults(func=cmd_export)

    # Studies, optimisation and sensitivity (solver/study/commands.py, Dask) are imported only
    # when one runs; their options (and those of `study report DIR`) are parsed there.
    for name, (text, aliases) in STUDY_COMMANDS.items():
        entry = sub.add_parser(name, help=text, aliases=aliases, add_help=False, prefix_chars="\0")
        entry.add_argument("study_args", nargs=argparse.REMAINDER, help=f"options of {name} ({name} --help)")
        entry.set_defaults(func=cmd_study, study_command=name)

    # The benchmark harness (solver/bench/) is imported only when `bench` runs: its options
    # are parsed there, so `tumorsim --help` stays light (no sympy, no pydantic).
    bench = sub.add_parser("bench", help="benchmark the explicit step (GPU; --small on the CPU)",
                           add_help=False, prefix_chars="\0")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER, help="options of the benchmark (bench --help)")
    bench.set_defaults(func=cmd_bench)
    return parser


def cmd_bench(args: argparse.Namespace) -> int:
    from solver.bench import add_arguments, run_from_args

    parser = _Parser(prog="tumorsim bench", description="benchmark the explicit step (benchmarks/README.md)")
    add_arguments(parser)
    report = run_from_args(parser.parse_args(args.bench_args))
    print(report.summary())
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from solver.study.commands import run_command

    return run_command(args.study_command, args.study_args, _Parser, args.verbose)


def _error(message: object, status: int) -> int:
    text = one_line(message)
    if len(text) > 2000:  # a message never echoes a huge value whole
        text = text[:1000] + " ... " + text[-200:]
    print(f"tumorsim: error: {text}", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 the run failed, 2 bad input,
    70 internal error, 130 / 143 stopped by SIGINT / SIGTERM)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()  # stderr, lines like the error lines: `tumorsim: warning: ...`
    handler.setFormatter(LogLine())
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, handlers=[handler])
    # NumPy's RuntimeWarnings (overflow, invalid value) are symptoms: the guards and checks
    # report their cause in one line (a non-finite initial value, a blow-up with its cell).
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.INFO if args.verbose else logging.ERROR)
    try:
        return args.func(args)
    except (ConfigError, CheckpointError) as exc:
        return _error(exc, 2)
    except RunInterrupted as exc:  # a second signal outside the run loop
        print(f"tumorsim: {one_line(exc)}", file=sys.stderr)
        return 128 + (exc.signum or signal.SIGINT)
    except TumorsimError as exc:
        return _error(exc, 1)
    except KeyboardInterrupt:
        print("tumorsim: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        return _error("out of memory: this machine cannot hold what the config asks for ('tumorsim run --dry-run "
                      "CONFIG' estimates a run's memory)", 1)
    except RecursionError:
        return _error("the input is nested too deeply to be processed (RecursionError)", 2)
    except (OverflowError, ZeroDivisionError, FloatingPointError) as exc:  # arithmetic on the config's numbers
        if args.verbose:
            log.exception("arithmetic error")
        return _error(f"a number of the config overflows or is divided by zero ({type(exc).__name__}: "
                      f"{one_line(exc)}); check its magnitudes (time.end, output intervals, grid, parameters)", 2)
    except OSError as exc:  # disk full, permission denied... while writing the run
        return _error(exc, 1)
    except Exception as exc:  # a bug in tumorsim, not in the input: say so, in one line
        if args.verbose:
            log.exception("internal error")
        print(
            f"tumorsim: internal error: {type(exc).__name__}: {one_line(exc)} "
            "(please report it; rerun with --verbose for the traceback)",
            file=sys.stderr,
        )
        return 70


if __name__ == "__main__":
    sys.exit(main())
