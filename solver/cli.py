"""Command line: `tumorsim run | validate | view | animate | plot | compare` (also `python -m solver`).

Errors caused by the user's input are printed as ONE line, `tumorsim: error: ...`,
with exit status 2 (bad config or arguments) or 1 (the run failed: device, files,
blow-up); never a traceback. An unexpected exception is a bug in tumorsim: it is
reported as one line `tumorsim: internal error: ...` (exit status 70), with the
traceback logged only under --verbose.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING, NoReturn

from solver import __version__
from solver.errors import ConfigError, TumorsimError

if TYPE_CHECKING:
    from solver.config import RunConfig

log = logging.getLogger("solver")
DEFAULT_CONFIG = "quickstart"


def _load(path: str | None, backend: str | None, precision: str | None) -> RunConfig:
    """The config at `path` (the built-in quickstart when None), with command-line overrides."""
    from solver.config import builtin_config_path, load_config

    config = load_config(path if path else builtin_config_path(DEFAULT_CONFIG))
    changes = {k: v for k, v in (("backend", backend), ("precision", precision)) if v}
    return config.replace(**changes) if changes else config


def cmd_validate(args: argparse.Namespace) -> int:
    from solver.simulation import Simulation

    config = _load(args.config, None, None)
    sim = Simulation(config)
    plan = sim.plan
    print(f"{args.config}: valid")
    print(
        f"  species: {', '.join(sim.model.names)}; grid {sim.grid.shape}, spacing {sim.grid.spacing}"
    )
    print(f"  dt = {plan.dt:.6g} (stability bound {plan.dt_bound:.6g}, set by {plan.limited_by})")
    print(f"  about {plan.estimated_steps} steps, {len(plan.snapshot_times)} snapshots")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from solver.simulation import Simulation

    config = _load(args.config, args.backend, args.precision)
    sim = Simulation(config, out_dir=args.out, overwrite=args.overwrite)
    print(
        f"tumorsim {__version__}: run {config.name!r}, grid {sim.grid.shape}, "
        f"dt {sim.plan.dt:.4g} (set by {sim.plan.limited_by}), to t = {config.time.end:g}"
    )
    summary = sim.run()
    print(
        f"done: {summary.steps} steps in {summary.wall_seconds:.2f} s on {summary.device} ({summary.backend})"
    )
    width = max(len(n) for n in summary.final_totals)
    print(
        f"  {'species':<{width}}  {'total':>12}  {'min':>12}  {'max':>12}   at t = {summary.t_end:g}"
    )
    for n, total in summary.final_totals.items():
        print(
            f"  {n:<{width}}  {total:12.5g}  {summary.final_min[n]:12.5g}  {summary.final_max[n]:12.5g}"
        )
    if summary.final_diagnostics:
        print("  " + ", ".join(f"{k} = {v:.4g}" for k, v in summary.final_diagnostics.items()))
    print(f"files: {summary.run_file}")
    print(f"       {summary.run_file.with_suffix('.xdmf')} (open in ParaView)")
    print(f"       {summary.out_dir / 'config.yaml'} (resolved config)")
    if config.output.pictures:
        for path in _final_pictures(summary.run_file):
            print(f"       {path}")
    return 0


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
    from solver.viz import view

    out = view(args.run, field=args.field, time=_time_arg(args.time), screenshot=args.screenshot,
               window_size=tuple(args.size))
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

    out = plot_timeseries(args.run, args.output or _beside(args.run, "timeseries.png"),
                          series=_list_arg(args.series), logy=args.log or None)
    print(f"plot: {out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from solver.viz import compare_runs

    out = compare_runs(args.runs, args.output, series=_list_arg(args.series),
                       labels=_list_arg(args.labels), logy=args.log or None)
    print(f"plot: {out}")
    return 0


def _beside(run: str, name: str):
    from pathlib import Path

    path = Path(run)
    return (path if path.is_dir() else path.parent) / name


def _list_arg(text: str | None) -> list[str] | None:
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


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
        self.exit(2, f"tumorsim: error: {_one_line(message)}{hint}\n")


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
        "--backend", choices=("auto", "gpu", "cpu"), help="override the config's backend"
    )
    run.add_argument(
        "--precision", choices=("float32", "float64"), help="override the config's precision"
    )
    run.add_argument(
        "--overwrite", action="store_true", help="replace a run already in the output folder"
    )
    run.set_defaults(func=cmd_run)

    validate = sub.add_parser("validate", help="check a config without running it")
    validate.add_argument("config", help="YAML config")
    validate.set_defaults(func=cmd_validate)

    size = {"nargs": 2, "type": int, "default": [1024, 768], "metavar": ("W", "H"), "help": "picture size in pixels"}
    view = sub.add_parser("view", help="3D scene of one snapshot (window, or PNG when headless)")
    view.add_argument("run", help="run folder or its run.h5")
    view.add_argument("--field", help="field on the slices and the tumour surface (default: the tumour field)")
    view.add_argument("--time", default="last", help="snapshot: last, first or a simulated time")
    view.add_argument("--screenshot", help="write this PNG instead of opening a window")
    view.add_argument("--size", **size)
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
    plot.set_defaults(func=cmd_plot)

    compare = sub.add_parser("compare", help="overlay the time series of several runs (treatment arms)")
    compare.add_argument("runs", nargs="+", help="run folders or run.h5 files")
    compare.add_argument("-o", "--output", required=True, help="figure file")
    compare.add_argument("--series", help="comma-separated series names")
    compare.add_argument("--labels", help="comma-separated legend labels (default: each run's name)")
    compare.add_argument("--log", action="store_true", help="logarithmic y axes")
    compare.set_defaults(func=cmd_compare)
    return parser


def _one_line(text: object) -> str:
    """The message as one line (a multi-line message from a library is joined)."""
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())


def _error(message: object, status: int) -> int:
    print(f"tumorsim: error: {_one_line(message)}", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 the run failed, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except ConfigError as exc:
        return _error(exc, 2)
    except TumorsimError as exc:
        return _error(exc, 1)
    except KeyboardInterrupt:
        print("tumorsim: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        return _error("out of memory (is the grid too large for this machine?)", 1)
    except OSError as exc:  # disk full, permission denied... while writing the run
        return _error(exc, 1)
    except Exception as exc:  # a bug in tumorsim, not in the input: say so, in one line
        if args.verbose:
            log.exception("internal error")
        print(
            f"tumorsim: internal error: {type(exc).__name__}: {_one_line(exc)} "
            "(please report it; rerun with --verbose for the traceback)",
            file=sys.stderr,
        )
        return 70


if __name__ == "__main__":
    sys.exit(main())
