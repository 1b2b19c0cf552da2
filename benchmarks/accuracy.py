#!/usr/bin/env python3
"""Accuracy of each integrator and dt on the shipped arms, against a converged reference.

    python3 benchmarks/accuracy.py                         # the three arms and the quickstart, 16^3
    python3 benchmarks/accuracy.py --configs quickstart --n 8
    python3 benchmarks/accuracy.py --json accuracy.json

Each config runs as shipped (grid, precision, treatment) with the time settings of one
row; its fields are compared with the reference at every time-series record
(output.series_every). The reference is the same config in float64 with imex of order 2
at time.rtol = --reference-rtol (error controlled, so it resolves every dose); its own
error is shown by a second reference at 4x that rtol (the `reference, rtol x4` row: the
reference is at least that close to the exact solution of the discretised equations,
about a third of it for a second-order method), and on the quickstart by the explicit
order-2 integrator at equal steps of its stability bound (`explicit order 2`, a method
with no splitting at all).

Columns: steps, wall seconds on this machine, the largest relative error of the final
tumour burden, and per species the largest |u - u_ref| over cells and record times
relative to that species' largest reference value at those times (max-norm field error).
Spatial error is not part of it: every row uses the config's own grid.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from solver.backends.numpy_backend import cpu_name
from solver.bench.accuracy import BURDEN_TOLERANCE, FIELD_TOLERANCE, compare_runs
from solver.config import builtin_config_path, load_config
from solver.run import Simulation

# (row label, time settings): the defaults first, then each integrator and dt users pick
ROWS = (
    ("default (auto: imex order 2, rtol 0.05)", {}),
    ("imex order 2, rtol 0.01", {"integrator": "imex", "order": 2, "rtol": 0.01}),
    ("imex order 2, equal steps at the bound", {"integrator": "imex", "order": 2, "rtol": None}),
    ("imex order 1, equal steps at the bound", {"integrator": "imex", "order": 1}),
    ("imex order 2 + implicit chemotaxis, dt <= 0.025", {"integrator": "imex", "order": 2,
                                                         "implicit_chemotaxis": True, "dt": 0.025}),
    ("explicit order 1, equal steps at the bound", {"integrator": "explicit", "order": 1}),
)


def configured(name: str, n: int | None, precision: str | None, **time_update):
    cfg = load_config(builtin_config_path(name))
    grid = cfg.grid
    if n is not None:  # keep the physical cube: n cells of the shipped length / n
        spacing = cfg.grid.spacing if isinstance(cfg.grid.spacing, (int, float)) else cfg.grid.spacing[0]
        length = cfg.grid.shape[0] * spacing
        grid = grid.model_copy(update={"shape": (n,) * 3, "spacing": length / n})
    time_cfg = cfg.time.model_copy(update=time_update)
    return cfg.replace(backend="cpu", grid=grid, time=time_cfg, precision=precision or cfg.precision)


def percent(x: float) -> str:
    return f"{100 * x:.2g}" if x >= 1e-4 else "<0.01"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", nargs="+", default=["quickstart", "chemo_only", "immuno_only", "chemoimmuno"])
    p.add_argument("--n", type=int, default=None, help="cells per axis (default: the config's own grid)")
    p.add_argument("--reference-rtol", type=float, default=2.5e-4)
    p.add_argument("--no-explicit-reference", action="store_true",
                   help="skip the explicit order-2 check of the quickstart's reference (minutes)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    print(f"# accuracy against a converged reference: {cpu_name()} ({os.cpu_count()} cores), "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
    report = {}
    for name in args.configs:
        runs = {"reference, rtol x4": configured(name, args.n, "float64", integrator="imex", order=2,
                                                 rtol=4 * args.reference_rtol)}
        if name == "quickstart" and not args.no_explicit_reference:
            runs["explicit order 2, equal steps at the bound (float64)"] = configured(
                name, args.n, "float64", integrator="explicit", order=2)
        runs.update({label: configured(name, args.n, None, **time_update) for label, time_update in ROWS})
        reference = configured(name, args.n, "float64", integrator="imex", order=2, rtol=args.reference_rtol)
        result = compare_runs({label: Simulation(cfg) for label, cfg in runs.items()}, Simulation(reference))
        shape = reference.grid.shape
        print(f"\n## {name} ({shape[0]}^3, to day {reference.time.end:g}); reference "
              f"{result.reference.steps} steps, {result.reference.seconds:.0f} s; tolerance of the defaults: "
              f"fields {100 * FIELD_TOLERANCE:g} %, burden {100 * BURDEN_TOLERANCE:g} %\n")
        print("| settings | steps | s | burden % | " + " | ".join(f"{s} %" for s in result.names) + " |")
        print("|---|---:|---:|---:|" + "---:|" * len(result.names))
        table = []
        for label, e in result.errors.items():
            cost = result.costs[label]
            print(f"| {label} | {cost.steps} | {cost.seconds:.1f} | {percent(e['burden'])} | "
                  + " | ".join(percent(e[s]) for s in result.names) + " |", flush=True)
            table.append({"settings": label, "steps": cost.steps, "rejected": cost.rejected,
                          "seconds": cost.seconds, "max_error_estimate": cost.max_error, "errors": e})
        report[name] = {"grid": list(shape), "reference_steps": result.reference.steps, "rows": table}
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
