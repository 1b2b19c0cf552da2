"""Regenerate the study pictures of the README and docs/studies.md.

Runs the shipped study configs/studies/timing_dose.yaml (about 2 minutes on 2 CPU cores)
into outputs/studies/timing-dose (or --out), draws its report with `tumorsim study
report`, and copies the heatmap and the Pareto scatter here:

    python docs/images/make_study_figures.py [--out DIR] [--reuse]

--reuse draws the report of a study already in DIR (resuming it if it is unfinished).
The Markdown table of the report is printed, to be quoted in docs/studies.md.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
STUDY = REPO / "configs" / "studies" / "timing_dose.yaml"
PICTURES = {"heatmap.png": "study_timing_dose_heatmap.png", "pareto.png": "study_timing_dose_pareto.png",
            "timeseries.png": "study_timing_dose_timeseries.png"}


def tumorsim(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "solver", *args], cwd=REPO, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "outputs" / "studies" / "timing-dose"))
    parser.add_argument("--reuse", action="store_true", help="use (or resume) the study already in --out")
    args = parser.parse_args()
    out = Path(args.out)
    if args.reuse and (out / "study.json").exists():
        tumorsim("study", str(STUDY), "--out", str(out), "--resume")
    else:
        if out.exists():
            shutil.rmtree(out)
        tumorsim("study", str(STUDY), "--out", str(out))
    tumorsim("study", "report", str(out))
    for name, target in PICTURES.items():
        shutil.copyfile(out / "report" / name, HERE / target)
        print(f"wrote {HERE / target}")
    print((out / "report" / "summary.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
