"""What README.md shows is what the code does: every YAML block in it is a valid config
(or a fragment of one, completed with a small grid), and CI's last line is the README's
test command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from solver.config import parse_config
from solver.errors import ConfigError
from solver.model import build_model

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```yaml\n(.*?)```", README, re.S)
# A fragment (no `name:`) is completed with this: a small grid, a week, the built-in model.
BASE = {"name": "readme", "grid": {"shape": [4, 4, 4], "spacing": 150.0, "length_unit": "um"},
        "time": {"end": 7.0, "unit": "day"}, "model": {"builtin": "depillis2006"}}


def test_the_readme_has_yaml_blocks() -> None:
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.splitlines()[0].split(":")[0])
def test_every_yaml_block_of_the_readme_is_a_valid_config(block: str) -> None:
    data = yaml.safe_load(block)
    assert isinstance(data, dict)
    if "name" not in data:  # a fragment: its keys replace the base's
        data = {**BASE, **data}
    config = parse_config(data, source="README.md")
    build_model(config)  # the treatment schedule, expressions and sources are checked here


def test_the_treatment_example_runs_to_its_own_end_time() -> None:
    block = next(b for b in BLOCKS if "treatment:" in b)
    data = {**BASE, **yaml.safe_load(block)}
    assert data["time"]["end"] == 84.0
    short = {**data, "time": {"end": 63.0, "unit": "day"}}  # the last chemo dose is on day 63
    with pytest.raises(ConfigError, match="at or after the end time 63"):
        build_model(parse_config(short, source="README.md"))


def test_ci_runs_the_readme_test_command() -> None:
    quickstart = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", quickstart, re.S)
    assert len(commands) >= 2
    readme_tests = commands[1].strip()
    last = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line.strip()][-1]
    # CI spells the same command with python3 -m and quiet flags
    ci = last.replace("python3 -m pip", "pip").replace("python3", "python").replace(" -q", "")
    assert ci == readme_tests == 'pip install -e ".[test,viz,study,gpu]" && python -m pytest'
