"""Tests of the XDMF sidecar: read back with VTK's XDMF reader and compared to the HDF5 data."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import numpy as np
import pytest

from solver.io.xdmf import RunFileError, write_xdmf

SHAPE = (7, 5, 4)  # all different, so a transposed axis cannot pass
SPACING = (2.0, 3.0, 5.0)
TIMES = (0.0, 0.5, 1.25)


def write_run(path: Path, *, maps: bool = True) -> dict[str, np.ndarray]:
    """A run file in the core writer's layout, with values that tell every cell apart."""
    rng = np.random.default_rng(7)
    n = len(TIMES)
    data = {
        "T": rng.random((n, *SHAPE)).astype(np.float32),
        "M": rng.random((n, *SHAPE)),  # float64
    }
    with h5py.File(path, "w") as fh:
        fh.attrs["name"] = "xdmf-demo"
        fh.attrs["grid_shape"] = np.array(SHAPE)
        fh.attrs["grid_spacing"] = np.array(SPACING)
        fh.attrs["length_unit"] = "um"
        fh.attrs["time_unit"] = "day"
        fh["fields/time"] = np.array(TIMES)
        for name, values in data.items():
            fh.create_dataset(
                f"fields/{name}",
                data=values,
                chunks=(1, *SHAPE),
                compression="gzip",
                maxshape=(None, *SHAPE),
            )
        if maps:
            data["w"] = (np.arange(np.prod(SHAPE)).reshape(SHAPE) % 3 == 0).astype(np.float32)
            fh["maps/w"] = data["w"]
        fh["timeseries/time"] = np.array(TIMES)
        fh["timeseries/total_T"] = data["T"].sum(axis=(1, 2, 3)).astype(np.float64)
    return data


def test_sidecar_sits_next_to_the_run_and_lists_every_snapshot(tmp_path: Path) -> None:
    h5 = tmp_path / "run.h5"
    write_run(h5)
    out = write_xdmf(h5)
    assert out == tmp_path / "run.xdmf"
    root = ET.parse(out).getroot()
    assert root.tag == "Xdmf" and root.get("Version") == "3.0"
    collection = root.find("Domain/Grid")
    assert collection is not None
    assert collection.get("CollectionType") == "Temporal"
    assert collection.get("Name") == "xdmf-demo"
    grids = collection.findall("Grid")
    assert [float(g.find("Time").get("Value")) for g in grids] == list(TIMES)
    for index, grid in enumerate(grids):
        assert grid.find("Topology").get("TopologyType") == "3DCoRectMesh"
        assert grid.find("Topology").get("Dimensions") == "7 5 4"
        assert grid.find("Geometry").get("GeometryType") == "ORIGIN_DXDYDZ"
        names = {a.get("Name"): a for a in grid.findall("Attribute")}
        assert set(names) == {"T", "M", "w"}
        slab = names["T"].find("DataItem")
        assert slab.get("ItemType") == "HyperSlab"
        selection, source = slab.findall("DataItem")
        assert selection.text.split()[:4] == [str(index), "0", "0", "0"]
        assert source.text == "run.h5:/fields/T"
        assert source.get("Precision") == "4"
        assert names["M"].find("DataItem").findall("DataItem")[1].get("Precision") == "8"
    assert not list(tmp_path.glob(".run.xdmf.*"))  # no temporary file left behind


def _read_all_steps(xdmf: Path) -> list[tuple[float, object]]:
    """Every time step through VTK's XDMF reader: (time, vtkImageData)."""
    reader_module = pytest.importorskip("vtkmodules.vtkIOXdmf2")
    from vtkmodules.vtkCommonExecutionModel import vtkStreamingDemandDrivenPipeline

    reader = reader_module.vtkXdmfReader()
    reader.SetFileName(str(xdmf))
    reader.UpdateInformation()
    info = reader.GetOutputInformation(0)
    times = info.Get(vtkStreamingDemandDrivenPipeline.TIME_STEPS()) or ()
    steps = []
    for t in times:
        reader.UpdateTimeStep(t)
        image = reader.GetOutputDataObject(0).NewInstance()
        image.DeepCopy(reader.GetOutputDataObject(0))
        steps.append((t, image))
    return steps


def test_vtk_xdmf_reader_reads_back_the_hdf5_datasets(tmp_path: Path) -> None:
    from_numpy = pytest.importorskip("vtkmodules.util.numpy_support")
    h5 = tmp_path / "run.h5"
    data = write_run(h5)
    steps = _read_all_steps(write_xdmf(h5))
    assert [t for t, _ in steps] == list(TIMES)
    for index, (_, image) in enumerate(steps):
        # XDMF's fastest axis (its X) is the run file's last index, z: dims and spacing reverse.
        assert image.GetDimensions() == SHAPE[::-1]
        np.testing.assert_allclose(image.GetSpacing(), SPACING[::-1])
        np.testing.assert_allclose(image.GetOrigin(), np.asarray(SPACING[::-1]) / 2)
        for name in ("T", "M"):
            array = image.GetPointData().GetArray(name)
            assert array is not None, f"{name} missing at step {index}"
            values = from_numpy.vtk_to_numpy(array)
            assert values.dtype == data[name].dtype
            # VTK stores points with X fastest, i.e. the run file's C order unchanged.
            np.testing.assert_array_equal(values.reshape(SHAPE), data[name][index])
        w = from_numpy.vtk_to_numpy(image.GetPointData().GetArray("w"))
        np.testing.assert_array_equal(w.reshape(SHAPE), data["w"])


def test_sidecar_follows_a_growing_file_through_the_writers_open_handle(tmp_path: Path) -> None:
    h5 = tmp_path / "run.h5"
    write_run(h5, maps=False)
    with h5py.File(h5, "a") as fh:
        times = np.append(fh["fields/time"][...], 2.0)
        del fh["fields/time"]
        fh["fields/time"] = times
        for name in ("T", "M"):
            ds = fh[f"fields/{name}"]
            ds.resize(len(times), axis=0)
            ds[-1] = 42.0
        out = write_xdmf(fh)  # mid-run, as the writer calls it
        assert fh.id.valid  # an open file is read, not closed
    assert out == tmp_path / "run.xdmf"
    steps = _read_all_steps(out)
    assert len(steps) == len(TIMES) + 1
    from vtkmodules.util.numpy_support import vtk_to_numpy

    last = vtk_to_numpy(steps[-1][1].GetPointData().GetArray("T"))
    assert np.all(last == 42.0)
    assert steps[-1][1].GetPointData().GetArray("w") is None


def test_sidecar_elsewhere_points_back_by_absolute_path(tmp_path: Path) -> None:
    h5 = tmp_path / "runs" / "run.h5"
    h5.parent.mkdir()
    write_run(h5)
    out = write_xdmf(h5, tmp_path / "elsewhere" / "view.xdmf")
    sources = ET.parse(out).getroot().findall(".//Attribute[@Name='T']//DataItem[@Format='HDF']")
    assert {s.text for s in sources} == {f"{h5.resolve().as_posix()}:/fields/T"}
    inside = write_xdmf(h5, tmp_path / "above.xdmf")
    sources = ET.parse(inside).getroot().findall(".//Attribute[@Name='w']/DataItem")
    assert {s.text for s in sources} == {"runs/run.h5:/maps/w"}
    assert len(_read_all_steps(out)) == len(TIMES)


def test_missing_or_malformed_run_file(tmp_path: Path) -> None:
    with pytest.raises(RunFileError, match="run file not found"):
        write_xdmf(tmp_path / "none.h5")
    with h5py.File(tmp_path / "bad.h5", "w") as fh:
        fh.attrs["grid_shape"] = np.array(SHAPE)
        fh.attrs["grid_spacing"] = np.array(SPACING)
        fh["fields/time"] = np.array([0.0])
        fh["fields/T"] = np.zeros((1, 3, 3, 3))
    with pytest.raises(RunFileError, match=r"grid \(3, 3, 3\) differs from grid_shape \(7, 5, 4\)"):
        write_xdmf(tmp_path / "bad.h5")
    assert not (tmp_path / "bad.xdmf").exists()


def test_a_real_run_on_a_non_cubic_grid_opens_in_vtk_with_the_axes_the_sidecar_states(tmp_path: Path) -> None:
    """The sidecar of a run the solver wrote (RunWriter's HDF5 format, not h5py's default): its
    Dimensions, Origin and Spacing are listed slowest axis first (the file's x, y, z), and
    VTK's XDMF reader, as ParaView's, reads every field and map of it exactly, with its X axis
    the solver's z. (HDF5 2.0's newest format made VTK's HDF5 1.14 read garbage.)"""
    from_numpy = pytest.importorskip("vtkmodules.util.numpy_support")
    from solver import cli

    config = tmp_path / "c.yaml"
    config.write_text(
        "name: axes\nprecision: float32\n"
        "grid: {shape: [6, 5, 4], spacing: [1.0, 2.0, 3.0]}\n"
        "time: {end: 0.2, integrator: explicit}\noutput: {snapshot_every: 0.1, pictures: false}\n"
        "model:\n  parameters: {D: 0.1}\n  maps: {w: 'x + 10*y + 100*z'}\n"
        "  species:\n    u: {diffusion: D, reaction: '0.0', initial: 'x + 10*y + 100*z'}\n",
        encoding="utf-8")
    out = tmp_path / "out"
    assert cli.main(["run", str(config), "--out", str(out), "--progress-every", "0"]) == 0
    grid = ET.parse(out / "run.xdmf").getroot().find("Domain/Grid/Grid")
    assert grid.find("Topology").get("Dimensions") == "6 5 4"  # slowest first: x, y, z as stored
    origin, spacing = (item.text.split() for item in grid.find("Geometry").findall("DataItem"))
    assert [float(v) for v in origin] == [0.5, 1.0, 1.5] and [float(v) for v in spacing] == [1.0, 2.0, 3.0]
    with h5py.File(out / "run.h5", "r") as fh:
        snapshots, w = fh["fields/u"][()], fh["maps/w"][()]
    steps = _read_all_steps(out / "run.xdmf")
    assert len(steps) == len(snapshots) == 3
    for index, (_, image) in enumerate(steps):
        assert image.GetDimensions() == (4, 5, 6)  # VTK's X is the fastest index: the solver's z
        assert image.GetOrigin() == (1.5, 1.0, 0.5) and image.GetSpacing() == (3.0, 2.0, 1.0)
        values = from_numpy.vtk_to_numpy(image.GetPointData().GetArray("u"))
        np.testing.assert_array_equal(values.reshape(6, 5, 4), snapshots[index])
        # the point at VTK (X, Y, Z) holds the solver's value at x = Z, y = Y, z = X
        x, y, z = image.GetPoint(1)[::-1]
        assert abs(values[1] - (x + 10 * y + 100 * z)) < 1e-3 * (x + 10 * y + 100 * z)
        np.testing.assert_array_equal(from_numpy.vtk_to_numpy(image.GetPointData().GetArray("w")).reshape(6, 5, 4), w)
