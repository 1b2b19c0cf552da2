"""Every default of the built-in model files cites its source.

A parameter line carries one of the marks the files' headers define: [dP06] (de Pillis
et al. 2006, Table 1), [phys: source], [pk: source] or [choice: reason]; a bare [phys] or
[choice] without its source or reason does not count. Variants take their values from
the paper, so their lines carry [dP06] too.
"""

from __future__ import annotations

import re

import pytest
import yaml

from solver.builtin_models import builtin_model_names
from solver.package_data import data_dir

MARK = re.compile(r"\[(dP06|phys: [^\]]+|pk: [^\]]+|choice: [^\]]+)\]")


def parameter_lines(text: str) -> list[tuple[str, str]]:
    """(name, the line and its continuation comments) of each parameter of model.parameters."""
    lines = text.splitlines()
    out, inside = [], False
    for i, line in enumerate(lines):
        if re.match(r"^  parameters:", line):
            inside = True
            continue
        if inside and re.match(r"^  \S", line):
            inside = False
        found = re.match(r"^    (\w+):\s", line) if inside else None
        if found:
            block = [line]
            for follow in lines[i + 1:]:
                if re.match(r"^\s+#", follow) and not re.match(r"^\s+# ---", follow):
                    block.append(follow)
                else:
                    break
            out.append((found.group(1), "\n".join(block)))
    return out


@pytest.mark.parametrize("name", builtin_model_names())
def test_every_parameter_cites_its_source(name: str) -> None:
    text = (data_dir("builtin_models") / f"{name}.yaml").read_text(encoding="utf-8")
    params = parameter_lines(text)
    declared = yaml.safe_load(text)["model"].get("parameters", {})
    assert {p for p, _ in params} == set(declared)  # the reader found every parameter
    missing = [p for p, block in params if not MARK.search(block)]
    assert missing == []


@pytest.mark.parametrize("name", builtin_model_names())
def test_every_variant_line_cites_the_paper(name: str) -> None:
    text = (data_dir("builtin_models") / f"{name}.yaml").read_text(encoding="utf-8")
    variants = re.findall(r"^  (\w+):\s+#(.*)$", text.split("variants:")[1].split("\nmodel:")[0], re.M) \
        if "\nvariants:" in text else []
    for variant, comment in variants:
        assert MARK.search(comment), variant
