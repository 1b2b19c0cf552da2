"""`tumorsim export RUN --csv FILE --vti DIR`: the time series and snapshots of run.h5 read
back exactly, with units in the CSV headers and the solver's x, y, z as VTK's X, Y, Z (a
6x5x4 grid, so any axis swap changes a shape)."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import numpy as np
import pytest

from solver import cli
from solver.config import builtin_config_path

SHAPE = (6, 5, 4)
SPACING = 300.0


def small_run_args(out: Path, shape=SHAPE, end: float = 1.0) -> list[str]:
    """The quickstart on a small non-cubic grid, one IL-2 dose pair inside [0, end)."""
    return ["run", str(builtin_config_path("quickstart")), "--out", str(out), "--progress-every", "0",
            "--set", f"grid.shape=[{','.join(map(str, shape))}]", "--set", f"grid.spacing={SPACING}",
            "--set", f"time.end={end}", "--set", "treatment[il2].start=0.5", "--set", "treatment[il2].count=2",
            "--set", "output.snapshot_every=0.5", "--set", "output.pictures=false"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "run"
    assert cli.main(small_run_args(out)) == 0
    return out


def one_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("tumorsim: error: "), err
    return err


def test_csv_holds_every_series_exactly_with_its_unit(run_dir: Path, tmp_path: Path) -> None:
    pandas = pytest.importorskip("pandas")
    out = tmp_path / "series.csv"
    assert cli.main(["export", str(run_dir), "--csv", str(out)]) == 0
    table = pandas.read_csv(out, float_precision="round_trip")
    with h5py.File(run_dir / "run.h5", "r") as f:
        group = f["timeseries"]
        names = [n for n in group if n != "time"]
        units = {n: group[n].attrs.get("units", b"").decode() for n in names}
        expected = ["time [day]"] + [f"{n} [{units[n]}]" if units[n] else n for n in names]
        assert list(table.columns) == expected
        assert len(table) == group["time"].shape[0] == 11
        np.testing.assert_array_equal(table["time [day]"].to_numpy(), group["time"][()])
        for name, header in zip(names, expected[1:]):
            np.testing.assert_array_equal(table[header].to_numpy(), group[name][()])  # bit for bit
    assert "tumour_burden [cells]" in table.columns
    assert "total_T [cells]" in table.columns  # an integral over the domain: an amount (cells/mL x um^3)


def read_vti(path: Path):
    """(dimensions, origin, spacing, {name: array in VTK point order}, field time)."""
    try:
        import vtk
        from vtk.util.numpy_support import vtk_to_numpy
    except ImportError:
        pyvista = pytest.importorskip("pyvista")
        grid = pyvista.read(path)
        arrays = {n: np.asarray(grid.point_data[n]) for n in grid.point_data}
        return grid.dimensions, grid.origin, grid.spacing, arrays, float(grid.field_data["time"][0])
    reader = vtk.vtkXMLImageDataReader()
    reader.SetFileName(str(path))
    reader.Update()
    image = reader.GetOutput()
    data = image.GetPointData()
    arrays = {data.GetArrayName(i): vtk_to_numpy(data.GetArray(i)) for i in range(data.GetNumberOfArrays())}
    t = float(vtk_to_numpy(image.GetFieldData().GetArray("time"))[0])
    return image.GetDimensions(), image.GetOrigin(), image.GetSpacing(), arrays, t


def test_vti_snapshots_read_back_as_run_h5_with_x_y_z_in_order(run_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "vti"
    assert cli.main(["export", str(run_dir), "--vti", str(folder)]) == 0
    with h5py.File(run_dir / "run.h5", "r") as f:
        times = f["fields/time"][()]
        species = [n for n in f["fields"] if n != "time"]
        assert len(times) == 3
        for index, t in enumerate(times):
            dims, origin, spacing, arrays, t_read = read_vti(folder / f"snapshot_{index:05d}.vti")
            assert tuple(dims) == SHAPE  # VTK's X, Y, Z = the solver's x, y, z
            assert tuple(origin) == (SPACING / 2,) * 3 and tuple(spacing) == (SPACING,) * 3
            assert t_read == t
            assert set(arrays) == {*species, "w"}
            for name in species:
                snapshot = f["fields"][name][index]
                assert arrays[name].dtype == snapshot.dtype
                # VTK points run x fastest: index (i, j, k) sits at i + nx (j + ny k)
                np.testing.assert_array_equal(arrays[name].reshape(SHAPE[::-1]).transpose(2, 1, 0), snapshot)
            np.testing.assert_array_equal(arrays["w"].reshape(SHAPE[::-1]).transpose(2, 1, 0), f["maps/w"][()])
    collection = ET.parse(folder / "run.pvd").getroot()
    entries = [(float(d.get("timestep")), d.get("file")) for d in collection.iter("DataSet")]
    assert entries == [(float(t), f"snapshot_{i:05d}.vti") for i, t in enumerate(times)]


def test_vti_arrays_are_not_transposed_on_a_known_field(tmp_path: Path) -> None:
    """A field that varies along x only reads back varying along VTK's X only."""
    from solver.io.export import image_data_xml

    vtk = pytest.importorskip("vtk")
    from vtk.util.numpy_support import vtk_to_numpy

    u = np.broadcast_to(np.arange(6.0)[:, None, None], SHAPE).copy()
    path = tmp_path / "x.vti"
    path.write_bytes(image_data_xml({"u": u}, (1.0, 2.0, 3.0), 0.0))
    reader = vtk.vtkXMLImageDataReader()
    reader.SetFileName(str(path))
    reader.Update()
    image = reader.GetOutput()
    assert image.GetDimensions() == SHAPE and image.GetSpacing() == (1.0, 2.0, 3.0)
    values = vtk_to_numpy(image.GetPointData().GetArray("u"))
    for point in (0, 7, 35, 119):
        x, _, _ = image.GetPoint(point)
        assert values[point] == (x - 0.5) / 1.0  # the value is the x index of the point


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case, args, fragment", [
    ("existing csv", ["--csv", "{tmp}/taken.csv"], "exists; choose another file or pass --overwrite"),
    ("csv in a missing folder", ["--csv", "{tmp}/no/such/x.csv"], "does not exist"),
    ("csv is a folder", ["--csv", "{tmp}"], "is a folder"),
    ("vti is a file", ["--vti", "{tmp}/taken.csv"], "exists and is not a folder"),
    ("vti folder holds an export", ["--vti", "{tmp}/done"], "already holds an export (run.pvd)"),
    ("nothing asked", [], "export needs --csv FILE"),
])
def test_bad_export_paths_are_refused_with_nothing_written(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, args: list[str], fragment: str
) -> None:
    (tmp_path / "taken.csv").write_text("mine\n")
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "run.pvd").write_text("mine\n")
    before = digest(tmp_path)
    assert cli.main(["export", str(run_dir), *(a.format(tmp=tmp_path) for a in args)]) == 2, case
    assert fragment in one_error(capsys)
    assert digest(tmp_path) == before


def test_a_missing_run_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["export", str(tmp_path / "nowhere"), "--csv", str(tmp_path / "x.csv")]) == 2
    assert "nowhere" in one_error(capsys)
    assert not (tmp_path / "x.csv").exists()


def test_overwrite_replaces_an_earlier_export(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "series.csv"
    out.write_text("old\n")
    assert cli.main(["export", str(run_dir), "--csv", str(out), "--overwrite"]) == 0
    assert out.read_text().startswith("time [day],")
