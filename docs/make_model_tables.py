"""Write the parameter tables of docs/model.md from the built-in model files.

    python docs/make_model_tables.py

Each parameter line of solver/builtin_models/*.yaml is `name: value  # unit, meaning
[source]`; the table between the markers `<!-- params NAME -->` and `<!-- /params -->`
of docs/model.md is replaced by name | value | unit (the model's `units.parameters`) |
meaning | source, in file order,
with the variants' values in a table of their own. The file is the one source of the
numbers: this script only copies them.
"""

from __future__ import annotations

import re
from pathlib import Path

from solver.yaml_loader import load_yaml



ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "model.md"
MODELS = ROOT / "solver" / "builtin_models"
MARK = re.compile(r"\[((?:dP06|phys|pk|choice)[^\]]*)\]")


def rows(name: str) -> list[str]:
    text = (MODELS / f"{name}.yaml").read_text(encoding="utf-8")
    declared = ((load_yaml(text).get("model") or {}).get("units") or {}).get("parameters") or {}
    lines = text.splitlines()
    out, inside, section = [], False, ""
    for i, line in enumerate(lines):
        if re.match(r"^  parameters:", line):
            inside = True
            continue
        if inside and re.match(r"^  \S", line):
            break
        if not inside:
            continue
        head = re.match(r"^    # --- (.*)$", line)
        if head:
            section = head.group(1)
            out.append(f"| **{section}** | | | | |")
            continue
        found = re.match(r"^    (\w+):\s*([^#]+?)\s*#\s*(.*)$", line)
        if not found:
            continue
        comment = found.group(3)
        for follow in lines[i + 1:]:
            more = re.match(r"^\s+#\s*(.*)$", follow)
            if not more or more.group(1).startswith("---"):
                break
            comment += " " + more.group(1)
        source = "; ".join(MARK.findall(comment))
        meaning = MARK.sub("", comment).strip().rstrip(",;")
        unit = declared.get(found.group(1), "")
        out.append(f"| `{found.group(1)}` | {found.group(2)} | {unit} | {meaning} | {source} |")
    return ["| parameter | value | unit (declared) | meaning | source |", "|---|---|---|---|---|", *out]


def variant_rows(name: str) -> list[str]:
    spec = load_yaml((MODELS / f"{name}.yaml").read_text(encoding="utf-8"))
    variants = spec.get("variants") or {}
    if not variants:
        return []
    keys = list(next(iter(variants.values()))["parameters"])
    head = "| parameter | " + " | ".join(variants) + " |"
    out = [head, "|---|" + "---|" * len(variants)]
    for k in keys:
        out.append(f"| `{k}` | " + " | ".join(f"{float(v['parameters'][k]):g}" for v in variants.values()) + " |")
    return out


def main() -> None:
    text = DOC.read_text(encoding="utf-8")

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        table = rows(name)
        variants = variant_rows(name)
        body = "\n".join(table + ([""] + ["Variants [dP06, Table 1]:", ""] + variants if variants else []))
        return f"<!-- params {name} -->\n{body}\n<!-- /params -->"

    new = re.sub(r"<!-- params (\w+) -->.*?<!-- /params -->", replace, text, flags=re.S)
    DOC.write_text(new, encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
