"""Regenerate the optimisation, sensitivity and cohort pictures and tables of the README
and docs/optimisation.md.

Runs the three shipped examples (each a few minutes on 2 CPU cores) into
outputs/studies/<name> (or under --out):

    configs/studies/optimise_chemo_il2_pd1.yaml   tumorsim optimise
    configs/studies/sensitivity_quickstart.yaml   tumorsim sensitivity
    configs/studies/cohort_two_regimens.yaml      tumorsim study + tumorsim study report

copies their pictures here (opt_front.png, opt_best_timeseries.png,
sensitivity_indices.png, cohort_outcomes.png) and writes their tables (the Pareto table,
the indices, the cohort's response rates) between the `<!-- generated: NAME -->` and
`<!-- end generated: NAME -->` lines of README.md and docs/optimisation.md, with the
machine and the wall time of each run:

    python docs/images/make_optimisation_figures.py [--out DIR] [--only optimise,sensitivity,cohort] [--reuse]

Every run starts afresh (its folder is replaced) unless --reuse, which takes a finished
run already in the folder as it is (its time is then not known). The numbers depend on
the model and the seeds only; the times on the machine.
"""

from __future__ import annotations

import argparse
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
STUDIES = REPO / "configs" / "studies"
DOCS = [REPO / "README.md", REPO / "docs" / "optimisation.md"]
RUNS = {
    "optimise": ("optimise", STUDIES / "optimise_chemo_il2_pd1.yaml", "opt-chemo-il2-pd1",
                 {"front.png": "opt_front.png", "best_timeseries.png": "opt_best_timeseries.png"}, "pareto.md"),
    "sensitivity": ("sensitivity", STUDIES / "sensitivity_quickstart.yaml", "sensitivity-quickstart",
                    {"indices.png": "sensitivity_indices.png"}, "indices.md"),
    "cohort": ("study", STUDIES / "cohort_two_regimens.yaml", "cohort-two-regimens",
               {"report/cohort.png": "cohort_outcomes.png"}, "report/cohort.md"),
}


def tumorsim(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "solver", *args], cwd=REPO, check=True)


def cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def machine() -> str:
    """The CPU model and core count, as /proc/cpuinfo and os tell them."""
    name = platform.processor() or "CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {cores()} cores"


def table_of(markdown: str) -> str:
    """The Markdown's text without its first heading (the docs have their own)."""
    lines = markdown.strip().splitlines()
    return "\n".join(lines[1:] if lines and lines[0].startswith("# ") else lines).strip()


def replace_block(name: str, text: str) -> None:
    pattern = re.compile(rf"(<!-- generated: {name} -->\n).*?(\n<!-- end generated: {name} -->)", re.DOTALL)
    for path in DOCS:
        if not path.exists():
            continue
        old = path.read_text(encoding="utf-8")
        new, count = pattern.subn(lambda m: m.group(1) + text + m.group(2), old)
        if count:
            path.write_text(new, encoding="utf-8")
            print(f"updated {path.relative_to(REPO)} ({name})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "outputs" / "studies"), help="folder of the three runs")
    parser.add_argument("--only", default=",".join(RUNS), help="comma-separated: optimise, sensitivity, cohort")
    parser.add_argument("--reuse", action="store_true", help="take finished runs already in --out as they are")
    args = parser.parse_args()
    where = machine()
    for key in [k.strip() for k in args.only.split(",") if k.strip()]:
        command, config, name, pictures, table = RUNS[key]
        out = Path(args.out) / name
        seconds = None
        if not (args.reuse and (out / table).exists()):
            if out.exists():
                shutil.rmtree(out)
            started = time.perf_counter()
            tumorsim(command, str(config), "--out", str(out), "--no-progress")
            if key == "cohort":
                tumorsim("study", "report", str(out))
            seconds = time.perf_counter() - started
        for source, target in pictures.items():
            shutil.copyfile(out / source, HERE / target)
            print(f"wrote {HERE / target}")
        text = table_of((out / table).read_text(encoding="utf-8"))
        took = f"took {seconds:.0f} s" if seconds is not None else "ran"
        note = (f"\n\n`tumorsim {command} {config.relative_to(REPO)}` {took} on {where} (NumPy, float32, "
                f"{cores()} single-threaded workers{', report included' if key == 'cohort' else ''}).")
        replace_block(key, text + note)
        print(text + note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
