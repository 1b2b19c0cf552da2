"""Units that mean something (solver/units.py, solver/model_units.py).

A built-in model declares the units of time, length and every parameter; a config in
hours and millimetres gets the model converted into them, so it is the same run as one
in days and micrometres: every field and series agrees to rounding (float64), the time
axes and time integrals differing by exactly the factor 24. Units that cannot be
converted are refused in one line (exit 2). Integrals over the grid are amounts (cells),
and every series of run.h5 carries its unit.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import yaml

from solver import cli
from solver.builtin_models import builtin_model, builtin_model_names
from solver.config import parse_config
from solver.fields.vessels import capillary_radius
from solver.model import build_model
from solver.units import UnitConversion, check_unit, integral_unit, parses

# The quickstart's regimen on 8^3 for one day, in days and micrometres. Fixed dt and
# order 1 without error control, so both runs take the same steps at the same times.
DAY_UM: dict[str, Any] = {
    "name": "day-um",
    "backend": "numpy",
    "precision": "float64",
    "grid": {"shape": [8, 8, 8], "spacing": 300.0, "length_unit": "um"},
    "time": {"end": 1.0, "unit": "day", "dt": 0.02, "integrator": "imex", "order": 1},
    "output": {"snapshot_every": 0.5, "series_every": 0.1, "pictures": False},
    "model": {
        "builtin": "depillis2006",
        "parameters": {"domain_copies": 55},
        "maps": {"w": {"vessels": {"kind": "necrotic_core", "seed": 7, "core_radius": 300.0, "rim_width": 300.0,
                                   "volume_fraction": 0.04}}},
        "species": {
            "T": {"initial": {"tumour": {"kind": "sphere", "radius": 700.0, "density": 5.0e8, "smooth": 100.0}}},
            "N": {"initial": "e*alpha/(beta*f)*w/(domain_copies*domain_volume*mL_per_um3)"},
            "L": {"initial": 0.0},
        },
    },
    "treatment": [
        {"agent": "chemo", "kind": "infusion", "dose_rate": 36.0, "duration": 0.5, "start": 0.0},
        {"agent": "il2", "kind": "bolus", "dose": 4.2e7, "start": 0.5, "every": 0.25, "count": 2},
        {"agent": "pd1", "kind": "bolus", "dose": 200.0, "start": 0.2},
    ],
}


def hours_mm(data: dict[str, Any]) -> dict[str, Any]:
    """The same run written in hours and millimetres (every time x 24, every length / 1000)."""
    out = copy.deepcopy(data)
    out["name"] = "h-mm"
    out["grid"].update(spacing=0.3, length_unit="mm")
    out["time"].update(end=24.0, unit="h", dt=0.48)
    out["output"].update(snapshot_every=12.0, series_every=2.4)
    out["model"]["maps"]["w"]["vessels"].update(core_radius=0.3, rim_width=0.3)
    out["model"]["species"]["T"]["initial"]["tumour"].update(radius=0.7, smooth=0.1)
    out["treatment"] = [
        {"agent": "chemo", "kind": "infusion", "dose_rate": 1.5, "duration": 12.0, "start": 0.0},  # 36 mg/day
        {"agent": "il2", "kind": "bolus", "dose": 4.2e7, "start": 12.0, "every": 6.0, "count": 2},
        {"agent": "pd1", "kind": "bolus", "dose": 200.0, "start": 4.8},
    ]
    return out


def shortened(end: float) -> dict[str, Any]:
    """DAY_UM to `end`, with the chemo infusion alone (within it: doses after the end are refused)."""
    data = copy.deepcopy(DAY_UM)
    data["time"]["end"] = end
    data["treatment"] = [dict(data["treatment"][0], duration=end / 2)]
    return data


def run(data: dict[str, Any], folder: Path) -> Path:
    path = folder / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    assert cli.main(["run", str(path), "--out", str(folder / data["name"]), "--progress-every", "0"]) == 0
    return folder / data["name"] / "run.h5"


def text(value: Any) -> str:
    """An HDF5 string attribute as str (h5py gives bytes for fixed-length strings)."""
    return value.decode() if isinstance(value, bytes) else str(value)


TIGHT = 3e-12  # the days/um and hours/mm runs agree to float64 rounding (measured 2.9e-13)

# series that are time integrals (their unit holds the time): x 24 from days to hours
TIME_INTEGRALS = {"chemo_exposure", "il2_exposure", "pd1_exposure"}


def test_a_run_in_hours_and_mm_is_the_run_in_days_and_um(tmp_path: Path) -> None:
    a, b = run(DAY_UM, tmp_path), run(hours_mm(DAY_UM), tmp_path)
    with h5py.File(a) as fa, h5py.File(b) as fb:
        assert text(fa.attrs["time_unit"]) == "day" and text(fb.attrs["time_unit"]) == "h"
        assert text(fa.attrs["length_unit"]) == "um" and text(fb.attrs["length_unit"]) == "mm"
        np.testing.assert_allclose(fb["timeseries/time"][()], 24.0 * fa["timeseries/time"][()], rtol=1e-14)
        np.testing.assert_allclose(fb["fields/time"][()], 24.0 * fa["fields/time"][()], rtol=1e-14)
        for name in fa["timeseries"]:
            if name == "time":
                continue
            x, y = fa["timeseries"][name][()], fb["timeseries"][name][()]
            scale = 24.0 if name in TIME_INTEGRALS else 1.0
            # float64 rounding through 51 steps of line solves: the worst measured is 2.9e-13 of
            # the series' or field's largest value (N); 3e-12 is ten times that
            np.testing.assert_allclose(y, scale * x, rtol=TIGHT, atol=TIGHT * np.abs(x).max() + 1e-300, err_msg=name)
            unit_a = text(fa["timeseries"][name].attrs["units"])
            unit_b = text(fb["timeseries"][name].attrs["units"])
            assert (unit_b == unit_a.replace("day", "h")) if name in TIME_INTEGRALS | {"rate_til"} else (
                unit_b == unit_a), (name, unit_a, unit_b)
        for name in fa["fields"]:
            if name != "time":
                x, y = fa["fields"][name][()], fb["fields"][name][()]
                np.testing.assert_allclose(y, x, rtol=TIGHT, atol=TIGHT * np.abs(x).max() + 1e-300, err_msg=name)
        # the drug reached the tissue and the tumour moved: the comparison is not of zeros
        assert fa["timeseries/chemo_exposure"][-1] > 0 and fa["timeseries/pd1_tissue_mean"][-1] > 0
        assert fa["timeseries/tumour_burden"][-1] != fa["timeseries/tumour_burden"][0]


def test_integrals_are_amounts_and_every_series_has_a_unit(tmp_path: Path) -> None:
    """total_T of cells/mL over um^3 cells is in cells: the tumour burden of one domain copy."""
    path = run(shortened(0.2), tmp_path)
    with h5py.File(path) as f:
        series = f["timeseries"]
        assert text(series["total_T"].attrs["units"]) == "cells"
        assert text(series["total_M"].attrs["units"]) == "mg" and text(series["total_I"].attrs["units"]) == "IU"
        np.testing.assert_allclose(series["total_T"][()] * 55, series["tumour_burden"][()], rtol=1e-13)
        missing = [n for n in series if not series[n].attrs.get("units")]
        assert missing == [], missing
        missing = [n for n in f["fields"] if not f["fields"][n].attrs.get("units")]
        assert missing == [], missing


def test_the_end_of_run_table_shows_units(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(shortened(0.04), tmp_path)
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("  ") and line.split()}
    assert rows["T"][-1] == "cells/mL" and rows["tumour_burden"][-1] == "cells"
    assert rows["chemo_exposure"][-2:] == ["mg", "day/L"] and rows["C"][-1] == "cells"


def check_refused(tmp_path: Path, data: dict[str, Any], capsys: pytest.CaptureFixture[str], *fragments: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    capsys.readouterr()
    status = cli.main(["validate", str(path)])
    err = capsys.readouterr().err
    assert status == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tumorsim: error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def with_change(change) -> dict[str, Any]:
    data = copy.deepcopy(DAY_UM)
    change(data)
    return data


@pytest.mark.parametrize("change, fragments", [
    (lambda d: d["time"].update(unit="mm"), ("time.unit", "'mm' is not a unit of time", "[length]", "h, day")),
    (lambda d: d["time"].update(unit="ticks"), ("time.unit", "'ticks' is not a unit of time", "no unit pint knows")),
    (lambda d: d["grid"].update(length_unit="h"), ("grid.length_unit", "'h' is not a unit of length", "um, mm")),
    (lambda d: d["grid"].update(length_unit="cells"), ("grid.length_unit", "[cell_count]")),
    # a parameter the model does not declare cannot be converted ...
    (lambda d: (d["time"].update(unit="h"), d["model"]["parameters"].update(my_rate=2.0)),
     ("model.parameters.my_rate has no unit", "model.units.parameters", "day")),
    # ... nor a declared unit pint cannot read
    (lambda d: (d["time"].update(unit="h"), d["model"].update(units={"parameters": {"a": "per tick"}})),
     ("model.units.parameters.a", "not a unit pint understands")),
    # a species whose own unit holds the converted length
    (lambda d: (d["grid"].update(length_unit="mm", spacing=0.3), d["model"]["species"].update(K={"units": "ng/um^3"})),
     ("model.species.K.units", "'ng/um^3'", "length_unit: um")),
], ids=["time-as-length", "time-unknown", "length-as-time", "length-as-count", "undeclared-parameter",
        "unreadable-parameter-unit", "species-in-model-length"])
def test_units_that_cannot_be_converted_are_refused(tmp_path, capsys, change, fragments) -> None:
    check_refused(tmp_path, with_change(change), capsys, *fragments)


def test_validate_says_what_the_units_are(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "h.yaml"
    path.write_text(yaml.safe_dump(hours_mm(DAY_UM), sort_keys=False), encoding="utf-8")
    assert cli.main(["validate", str(path)]) == 0
    assert "units: time in h, lengths in mm (the model's day and um, every parameter converted)" in capsys.readouterr().out


def test_without_config_units_the_run_takes_the_models() -> None:
    data = copy.deepcopy(DAY_UM)
    data["time"].pop("unit")
    data["grid"].pop("length_unit")
    model = build_model(parse_config(data, source="<test>"))
    assert (model.time_unit, model.length_unit) == ("day", "um")


def test_a_model_without_declared_units_keeps_the_labels() -> None:
    """A user's model in its own units: the config's units label it, nothing is converted."""
    data = {"name": "toy", "grid": {"shape": [4, 4, 4], "spacing": 10.0, "length_unit": "mm"},
            "time": {"end": 1.0, "unit": "h"},
            "model": {"parameters": {"k": 0.5}, "species": {"u": {"reaction": "k*u", "initial": 1.0}}}}
    model = build_model(parse_config(data, source="<test>"))
    assert (model.time_unit, model.length_unit, model.parameters["k"]) == ("h", "mm", 0.5)


def test_conversions() -> None:
    c = UnitConversion("day", "h", "um", "mm")
    assert c.value(24.0, "1/day", "x") == pytest.approx(1.0, rel=1e-15)
    assert c.value(8.64e12, "um^2/day", "x") == pytest.approx(3.6e5, rel=1e-15)  # 1 cm^2/s = 3.6e5 mm^2/h
    assert c.value(1e-12, "mL/um^3", "x") == pytest.approx(1e-3, rel=1e-15)
    assert c.value(48.0, "L/day", "x") == pytest.approx(2.0, rel=1e-15)
    assert c.value(3.0, "mg/L", "x") == 3.0 and c.value(5.0, "1", "x") == 5.0  # densities stay per L / mL
    assert c.label("mg day/L") == "mg h/L" and c.label("cells/mL") == "cells/mL" and c.label("um^2/day") == "mm^2/h"
    assert UnitConversion("day", "d", "um", "micrometer").identity
    assert integral_unit("cells/mL", "um") == (1e-12, "cells") and integral_unit("mg/L", "mm") == (1e-6, "mg")
    assert integral_unit("1", "um") == (1.0, "1*um^3")  # not per volume: the product, unreduced
    assert check_unit("week", "time", "time.unit") == "week"
    assert capillary_radius("mm") == 0.005 and capillary_radius("um") == 5.0 and capillary_radius("") == 5.0
    assert capillary_radius("inch") == pytest.approx(5e-4 / 2.54, rel=1e-14)  # through pint


@pytest.mark.parametrize("name", builtin_model_names())
def test_every_builtin_parameter_has_a_readable_unit(name: str) -> None:
    model = builtin_model(name)
    units = model["units"]
    assert units["time"] == "day" and units["length"] == "um"
    assert sorted(units["parameters"]) == sorted(model["parameters"])
    unreadable = [p for p, u in units["parameters"].items() if not parses(u)]
    assert unreadable == []
    agents = model["agents"]
    assert all(a.get("dose_units") for a in agents.values()), agents


def test_integrals_without_pint_agree_with_pint(monkeypatch: pytest.MonkeyPatch) -> None:
    """integral_unit's table for amounts per mL/L on um/mm grids (pint not imported) is pint's."""
    import re

    from solver import units

    cases = [(u, length) for u in ("cells/mL", "ng/mL", "mg/L", "IU/L", "cells/uL", "mg/dL")
             for length in ("nm", "um", "mm", "cm", "m")]
    fast = [integral_unit(u, length) for u, length in cases]
    monkeypatch.setattr(units, "_PER_VOLUME", re.compile(r"(?!)"))  # matches nothing: pint for every case
    slow = [integral_unit(u, length) for u, length in cases]
    assert fast == slow


def test_a_run_in_the_models_units_does_not_import_pint() -> None:
    """pint costs most of a second to import; the shipped configs (in day and um) do not need it."""
    import subprocess
    import sys

    code = ("import sys; from solver.config import load_config; from solver.model import build_model; "
            "from solver.run.simulation import Simulation; "
            "c = load_config('configs/quickstart.yaml'); m = Simulation(c).model; "
            "print('pint' in sys.modules, m.time_unit, m.length_unit)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent).stdout.split()
    assert out == ["False", "day", "um"]
