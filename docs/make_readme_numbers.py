#!/usr/bin/env python3
"""The README's run times, step counts and arm results, measured on this machine.

    python3 docs/make_readme_numbers.py             # every shipped config but the 256^3 one
    python3 docs/make_readme_numbers.py quickstart chemoimmuno

Each config runs end to end through the command line (`tumorsim run`, pictures
included) into a temporary folder, one after the other; printed: the machine, the
"Shipped configs" table rows (wall time), the arms' final tumour burdens, and the
quickstart's output as the README quotes it. Nothing in the repository is changed:
paste what it prints.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from solver.backends.numpy_backend import cpu_name  # noqa: E402

CONFIGS = ("quickstart", "chemo_only", "immuno_only", "chemoimmuno", "checkpoint_chemo", "oxygen_hypoxia",
           "fisher_front", "spheroid_toy")
ARMS = ("chemo_only", "immuno_only", "chemoimmuno")


def run(name: str, out: Path) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "solver", "run", str(REPO / "configs" / f"{name}.yaml"),
                           "--out", str(out), "--backend", "cpu"], capture_output=True, text=True, check=False,
                          cwd=REPO)
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
    burden = {n: re.search(r"^\s+tumour_burden\s+(\S+)", outputs[n], re.M) for n in ARMS if n in outputs}
    if burden:
        print("final tumour burden: " + ", ".join(f"{n} {m.group(1)}" for n, m in burden.items() if m))
    if "quickstart" in outputs:
        print("\nquickstart output:\n" + outputs["quickstart"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
