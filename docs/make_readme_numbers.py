#!/usr/bin/env python3
"""The README's run times, step counts, arm results and pictures, measured on this machine.

    python3 docs/make_readme_numbers.py             # every shipped config but the 256^3 one
    python3 docs/make_readme_numbers.py quickstart chemoimmuno

Each config runs end to end through the command line (`tumorsim run`, pictures
included) into a temporary folder, one after the other; printed: the machine, the
"Shipped configs" table rows (wall time), the arms' final tumour burdens with the
fraction of the untreated burden and the Bliss-independence prediction (the
combination is also run with `icd: 0`, without its synergy term), and the quickstart's
output as the README quotes it. Written: the quickstart's two pictures and the arms'
comparison into docs/images/. Paste the printed numbers into the README.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from solver.backends.numpy_backend import cpu_name  # noqa: E402

CONFIGS = ("quickstart", "untreated", "chemo_only", "immuno_only", "chemoimmuno", "chemoimmuno_no_icd",
           "checkpoint_chemo", "oxygen_hypoxia", "fisher_front", "spheroid_toy")
ARMS = ("untreated", "chemo_only", "immuno_only", "chemoimmuno", "chemoimmuno_no_icd")
VARIANTS = {"chemoimmuno_no_icd": ("chemoimmuno", ["--set", "model.parameters.icd=0"])}
IMAGES = REPO / "docs" / "images"


def run(name: str, out: Path) -> tuple[float, str]:
    config, extra = VARIANTS.get(name, (name, []))
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "solver", "run", str(REPO / "configs" / f"{config}.yaml"),
                           "--out", str(out), "--backend", "cpu", *extra], capture_output=True, text=True,
                          check=False, cwd=REPO)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{name}: tumorsim run failed ({proc.returncode}): {proc.stderr.strip()}")
    return wall, proc.stdout


def main(argv: list[str]) -> int:
    names = argv or list(CONFIGS)
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    outputs = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            wall, stdout = run(name, Path(scratch) / name)
            outputs[name] = stdout
            steps = re.search(r"^done: (\d+) steps", stdout, re.M).group(1)
            integrator = re.search(r", (explicit|imex) order (\d)", stdout)
            print(f"| `{name}.yaml` | ~{wall:.0f} s ({steps} {integrator.group(1)} steps, order {integrator.group(2)}) |",
                  flush=True)
            if name == "quickstart":
                for picture in ("final_state.png", "timeseries.png"):
                    shutil.copyfile(Path(scratch) / name / picture, IMAGES / f"quickstart_{picture}")
        burden = {n: float(m.group(1)) for n in ARMS if n in outputs
                  and (m := re.search(r"^\s+tumour_burden\s+(\S+)", outputs[n], re.M))}
        if burden:
            print("final tumour burden: " + ", ".join(f"{n} {b:.4g}" for n, b in burden.items()))
        if set(ARMS) <= set(burden):
            s = {n: burden[n] / burden["untreated"] for n in ARMS}
            print("fraction of untreated: " + ", ".join(f"{n} {v:.4f}" for n, v in s.items())
                  + f"; Bliss independence {s['chemo_only'] * s['immuno_only']:.4f}")
            folders = [str(Path(scratch) / n) for n in ARMS]
            subprocess.run([sys.executable, "-m", "solver", "compare", *folders, "-o", str(IMAGES / "arms.png"),
                            "--labels", "untreated,chemo,immuno,combination,combination without icd",
                            "--series", "tumour_burden,cd8_in_tumour,chemo_tumour_mean,C", "--log"],
                           check=True, cwd=REPO, capture_output=True)
    if "quickstart" in outputs:
        print("\nquickstart output:\n" + outputs["quickstart"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
