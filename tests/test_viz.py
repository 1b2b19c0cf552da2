"""Tests of solver.viz on small synthetic run files: loading, 3D scenes off-screen, plots.

Rendering runs headless (no DISPLAY): VTK draws through EGL or OSMesa with Mesa's software
rasteriser. The PyVista tests skip when PyVista is missing; CI installs it (see the README).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from solver.errors import TumorsimError
from solver.viz import RunFileError, VizError, load_run
from solver.viz.image_data import to_image_data

SHAPE = (30, 26, 22)
SPACING = (10.0, 12.0, 8.0)  # um; unequal, so that a swapped axis shows
CENTRE = (150.0, 156.0, 88.0)
RADII = (60.0, 70.0, 80.0)  # tumour radius at each snapshot
TIMES = (0.0, 10.0, 20.0)
TUMOUR_MAX = 1.0e6
DOSES = {"chemo": [0.0, 21.0], "il2": [8.0]}


def cell_centres(
    shape: tuple[int, int, int], spacing: tuple[float, float, float]
) -> list[np.ndarray]:
    """Coordinates of every cell centre, each (nx, ny, nz)."""
    axes = [(np.arange(n) + 0.5) * h for n, h in zip(shape, spacing)]
    return list(np.meshgrid(*axes, indexing="ij"))


def tumour_profile(radius: float) -> np.ndarray:
    """A ball of radius ``radius`` about CENTRE: exactly TUMOUR_MAX/2 on its surface."""
    x, y, z = cell_centres(SHAPE, SPACING)
    r = np.sqrt((x - CENTRE[0]) ** 2 + (y - CENTRE[1]) ** 2 + (z - CENTRE[2]) ** 2)
    return TUMOUR_MAX * 0.5 * (1.0 - np.tanh((r - radius) / 10.0))


def write_run(
    path: Path,
    name: str = "demo",
    *,
    growth: float = 0.05,
    species: str = "TM",
    vessels: bool = True,
    units: bool = True,
) -> Path:
    """A run file in exactly the layout the core writer produces."""
    x, y, z = cell_centres(SHAPE, SPACING)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as fh:
        fh.attrs["tumorsim_version"] = "0.1.0"
        fh.attrs["backend"] = "numpy"
        fh.attrs["device"] = "cpu"
        fh.attrs["name"] = name
        fh.attrs["config_json"] = json.dumps({"name": name})
        fh.attrs["grid_shape"] = np.array(SHAPE)
        fh.attrs["grid_spacing"] = np.array(SPACING)
        fh.attrs["length_unit"] = "um" if units else ""
        fh.attrs["time_unit"] = "day" if units else ""
        fh.attrs["dose_times_json"] = json.dumps(DOSES)
        fh["fields/time"] = np.array(TIMES)
        fields = {
            "T": np.stack([tumour_profile(r) for r in RADII]).astype(np.float32),
            "M": np.stack([(1.0 + k) * np.exp(-x / 100.0) for k in range(len(TIMES))]),
        }
        if species == "u":
            fields = {"u": fields["T"]}
        for key, data in fields.items():
            fh.create_dataset(f"fields/{key}", data=data, chunks=(1, *SHAPE), compression="gzip")
        if vessels:
            tube = np.sqrt((y - 60.0) ** 2 + (z - 40.0) ** 2) < 15.0
            fh["maps/w"] = tube.astype(np.float32)
        t = np.linspace(0.0, 28.0, 57)
        fh["timeseries/time"] = t
        fh["timeseries/tumour_burden"] = 1e9 * np.exp(growth * t)
        fh["timeseries/total_T"] = 1e9 * np.exp(growth * t)
        fh["timeseries/immune_in_tumour"] = 1e7 * (1.0 + 0.01 * t)
        fh["timeseries/plasma_chemo"] = np.exp(-(t % 21.0))
        fh["timeseries/tissue_chemo"] = 0.5 * np.exp(-(t % 21.0))
    return path


@pytest.fixture
def run_path(tmp_path: Path) -> Path:
    return write_run(tmp_path / "demo" / "run.h5")


@pytest.fixture
def headless(monkeypatch: pytest.MonkeyPatch) -> object:
    """PyVista off-screen with no display, as in CI."""
    pyvista = pytest.importorskip("pyvista")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(pyvista, "OFF_SCREEN", True)
    return pyvista


# ----------------------------------------------------------------------------- run files


def test_import_needs_neither_pyvista_nor_matplotlib(run_path: Path) -> None:
    code = (
        "import sys\n"
        "for m in ('pyvista', 'vtk', 'vtkmodules', 'matplotlib'): sys.modules[m] = None\n"
        "import solver.viz as v\n"
        f"run = v.load_run({str(run_path)!r})\n"
        "assert run.tumour_field == 'T'\n"
        "try:\n"
        "    v.to_image_data(run)\n"
        "except v.MissingDependencyError as exc:\n"
        "    print('missing:', exc)\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "missing:" in done.stdout and "pyvista" in done.stdout


def test_load_run_reads_metadata_and_series(run_path: Path) -> None:
    run = load_run(run_path.parent)  # the output folder finds run.h5
    assert run.path == run_path
    assert run.name == "demo"
    assert run.species == ("M", "T")  # h5py's order (alphabetical here)
    assert run.tumour_field == "T"
    assert run.grid_shape == SHAPE
    assert run.spacing == SPACING
    assert (run.length_unit, run.time_unit) == ("um", "day")
    np.testing.assert_array_equal(run.times, TIMES)
    assert run.map_names == ("w",)
    assert set(run.series) == {
        "tumour_burden",
        "total_T",
        "immune_in_tumour",
        "plasma_chemo",
        "tissue_chemo",
    }
    assert run.series["tumour_burden"].shape == run.series_time.shape == (57,)
    assert run.dose_times == {"chemo": (0.0, 21.0), "il2": (8.0,)}
    assert run.attrs["backend"] == "numpy"
    np.testing.assert_allclose(run.field("T", 1), tumour_profile(RADII[1]), rtol=1e-6)
    assert run.field("w").shape == SHAPE


def test_tumour_field_is_first_species_without_t(tmp_path: Path) -> None:
    run = load_run(write_run(tmp_path / "u.h5", species="u", vessels=False, units=False))
    assert run.species == ("u",)
    assert run.tumour_field == "u"
    assert run.map_names == ()
    assert run.time_label(0) == "t = 0"


def test_time_index_picks_nearest_snapshot_and_refuses_outside(run_path: Path) -> None:
    run = load_run(run_path)
    assert run.time_index("last") == 2
    assert run.time_index(None) == 2
    assert run.time_index("first") == 0
    assert run.time_index(0) == 0
    assert run.time_index("9") == 1
    assert run.time_index(14.0) == 1
    with pytest.raises(RunFileError, match=r"outside the snapshots.*0 to 20 day"):
        run.time_index(25.0)
    with pytest.raises(RunFileError, match="'last', 'first' or a number"):
        run.time_index("soon")


def test_unknown_field_lists_the_fields_present(run_path: Path) -> None:
    run = load_run(run_path)
    with pytest.raises(TumorsimError) as err:
        run.field("oxygen", 0)
    message = str(err.value)
    assert isinstance(err.value, RunFileError)
    assert "'oxygen'" in message and "M, T" in message and "w" in message
    assert "\n" not in message


def test_missing_or_foreign_file_is_a_tumorsim_error(tmp_path: Path) -> None:
    with pytest.raises(RunFileError, match="run file not found"):
        load_run(tmp_path / "nope.h5")
    with pytest.raises(RunFileError, match=r"no run file \(\*\.h5\)"):
        load_run(tmp_path)
    (tmp_path / "bad.h5").write_text("not hdf5")
    with pytest.raises(RunFileError, match="cannot open"):
        load_run(tmp_path / "bad.h5")
    with h5py.File(tmp_path / "other.h5", "w") as fh:
        fh["x"] = 1.0
    with pytest.raises(RunFileError, match="not a tumorsim run file"):
        load_run(tmp_path / "other.h5")


def test_to_image_data_puts_cell_values_at_cell_centres(run_path: Path) -> None:
    pytest.importorskip("pyvista")
    run = load_run(run_path)
    grid = to_image_data(run, time=10.0)
    assert tuple(grid.dimensions) == SHAPE
    np.testing.assert_allclose(grid.spacing, SPACING)
    np.testing.assert_allclose(grid.origin, np.asarray(SPACING) / 2)
    assert set(grid.point_data.keys()) == {"T", "M", "w"}
    values = run.field("T", 1)
    for i, j, k in [(0, 0, 0), (29, 3, 7), (4, 25, 21), (15, 13, 11)]:
        centre = ((i + 0.5) * SPACING[0], (j + 0.5) * SPACING[1], (k + 0.5) * SPACING[2])
        point = grid.find_closest_point(centre)
        np.testing.assert_allclose(grid.points[point], centre)
        assert grid.point_data["T"][point] == values[i, j, k]
    assert grid.field_data["time"][0] == 10.0


# ----------------------------------------------------------------------------- 3D scene


def test_isosurface_lies_on_the_tumour_sphere(run_path: Path, headless: object) -> None:
    from solver.viz.scene import tumour_isosurface

    run = load_run(run_path)
    for index, radius in enumerate(RADII):
        grid = to_image_data(run, index=index)
        surface = tumour_isosurface(grid, "T", 0.5 * TUMOUR_MAX)
        assert surface.n_points > 100
        bounds = np.asarray(surface.bounds).reshape(3, 2)
        expected = np.array([[c - radius, c + radius] for c in CENTRE])
        np.testing.assert_allclose(bounds, expected, atol=0.5 * max(SPACING))
        distance = np.linalg.norm(surface.points - np.asarray(CENTRE), axis=1)
        assert np.abs(distance - radius).max() < 0.05 * radius
        # other fields ride along on the surface, for colouring
        assert "M" in surface.point_data


def test_screenshot_has_requested_size_and_is_not_blank(
    run_path: Path, tmp_path: Path, headless: object
) -> None:
    from PIL import Image

    from solver.viz import screenshot

    out = screenshot(run_path, tmp_path / "pics" / "shot.png", field="M", window_size=(400, 300))
    assert out == tmp_path / "pics" / "shot.png"
    with Image.open(out) as img:
        assert img.size == (400, 300)
        pixels = np.asarray(img.convert("RGB")).reshape(-1, 3)
    colours = np.unique(pixels, axis=0)
    assert len(colours) > 500, f"only {len(colours)} colours: blank picture?"
    not_white = np.any(pixels < 250, axis=1).mean()
    assert 0.1 < not_white < 0.95


def test_scene_draws_boundary_slices_vessels_and_outline(run_path: Path, headless: object) -> None:
    from solver.viz.scene import SceneOptions, build_scene, tumour_centre

    centre = tumour_centre(tumour_profile(RADII[2]), SPACING, 0.5 * TUMOUR_MAX)
    np.testing.assert_allclose(centre, CENTRE, atol=0.5 * max(SPACING))  # where slices cross
    run = load_run(run_path)
    plotter = build_scene(run, 2, SceneOptions(field="M", window_size=(200, 160)))
    try:
        assert {"slices", "boundary", "vessels", "outline", "title"} <= set(plotter.actors)
        assert "M" in plotter.scalar_bars
        boundary = plotter.actors["boundary"].mapper.dataset
        assert boundary.active_scalars_name == "M"
        width = boundary.bounds[1] - boundary.bounds[0]
        assert abs(width - 2 * RADII[2]) < max(SPACING)
    finally:
        plotter.close()


def test_scene_rejects_unknown_field(run_path: Path, headless: object) -> None:
    from solver.viz import screenshot

    with pytest.raises(RunFileError, match="unknown field 'Q'.*fields are M, T"):
        screenshot(run_path, run_path.parent / "x.png", field="Q")


def test_view_without_display_writes_png_next_to_run(run_path: Path, headless: object) -> None:
    from PIL import Image

    from solver.viz import view

    out = view(run_path, time="first", window_size=(240, 180))
    assert out is not None and out.parent == run_path.parent
    assert out.name == "run_T_0000.png"
    with Image.open(out) as img:
        assert img.size == (240, 180)


def test_user_model_without_maps_or_units_renders(tmp_path: Path, headless: object) -> None:
    from PIL import Image

    from solver.viz import screenshot

    path = write_run(tmp_path / "u.h5", species="u", vessels=False, units=False)
    out = screenshot(path, tmp_path / "u.png", window_size=(160, 128))
    with Image.open(out) as img:
        assert len(np.unique(np.asarray(img.convert("RGB")).reshape(-1, 3), axis=0)) > 100


def test_animate_gif_has_one_frame_per_snapshot(
    run_path: Path, tmp_path: Path, headless: object
) -> None:
    pytest.importorskip("imageio")
    from PIL import Image

    from solver.viz import animate

    out = animate(run_path, tmp_path / "movie.gif", window_size=(160, 128), fps=2)
    with Image.open(out) as gif:
        assert gif.n_frames == len(TIMES)
        assert gif.size == (160, 128)
        first = np.asarray(gif.convert("RGB"))
        gif.seek(len(TIMES) - 1)
        last = np.asarray(gif.convert("RGB"))
    assert np.any(first != last)  # the tumour grew and the time stamp changed


def test_animate_mp4(run_path: Path, tmp_path: Path, headless: object) -> None:
    pytest.importorskip("imageio_ffmpeg")
    import imageio.v2 as imageio

    from solver.viz import animate

    out = animate(run_path, tmp_path / "movie.mp4", field="M", window_size=(160, 128))
    reader = imageio.get_reader(out)
    try:
        assert reader.count_frames() == len(TIMES)
        assert tuple(reader.get_meta_data()["size"]) == (160, 128)
    finally:
        reader.close()


def test_animate_refuses_unknown_format(run_path: Path, tmp_path: Path, headless: object) -> None:
    from solver.viz import animate

    with pytest.raises(VizError, match=r"\.gif or \.mp4"):
        animate(run_path, tmp_path / "movie.avi")


# ----------------------------------------------------------------------------- plots


def _series_lines(fig: object) -> dict[str, list[str]]:
    """Series name -> run labels of the data lines in each panel, read back from the gids."""
    found: dict[str, list[str]] = {}
    for ax in fig.axes:  # type: ignore[attr-defined]
        for line in ax.get_lines():
            gid = line.get_gid() or ""
            if gid.startswith("series:"):
                _, name, label = gid.split(":", 2)
                found.setdefault(name, []).append(label)
    return found


def test_plot_draws_one_line_per_series_asked_for(run_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from PIL import Image

    from solver.viz import plot_timeseries, timeseries_figure

    run = load_run(run_path)
    fig = timeseries_figure([run], ["tumour_burden", "plasma_chemo"])
    assert _series_lines(fig) == {"tumour_burden": ["demo"], "plasma_chemo": ["demo"]}
    assert len(fig.axes) == 3  # two series and the doses under them
    top, doses = fig.axes[0], fig.axes[-1]
    np.testing.assert_array_equal(top.get_lines()[0].get_ydata(), run.series["tumour_burden"])
    marks = {line.get_gid(): list(line.get_xdata()) for line in doses.get_lines()}
    assert marks == {"dose:chemo:demo": [0.0, 21.0], "dose:il2:demo": [8.0]}
    assert [t.get_text() for t in doses.get_yticklabels()] == ["chemo", "il2"]
    assert doses.get_xlabel() == "time [day]"
    assert top.get_ylabel() == "tumour burden"  # the fixture records no unit for it

    out = plot_timeseries(run_path, tmp_path / "series.png", series=["tumour_burden"])
    with Image.open(out) as img:
        assert img.size[0] > 500 and img.size[1] > 200


def test_plot_default_series_and_svg_ids(run_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from solver.viz import default_series, plot_timeseries

    run = load_run(run_path)
    names = default_series(run)
    assert names == ["tumour_burden", "immune_in_tumour", "plasma_chemo", "tissue_chemo"]
    svg = plot_timeseries(run, tmp_path / "series.svg").read_text()
    for name in names:
        assert svg.count(f'id="series:{name}:demo"') == 1
    assert 'id="series:total_T' not in svg
    assert 'id="dose:chemo:demo"' in svg


def test_plot_unknown_series_lists_the_series_present(run_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from solver.viz import plot_timeseries

    with pytest.raises(RunFileError, match=r"unknown time series 'volume'.*tumour_burden"):
        plot_timeseries(run_path, tmp_path / "x.png", series=["volume"])
    with pytest.raises(VizError, match="figure must end in"):
        plot_timeseries(run_path, tmp_path / "x.gif")


def test_compare_overlays_every_run_with_its_name(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from solver.viz import compare_runs, timeseries_figure

    names = ["control", "chemo", "chemo+IL-2"]
    paths = [
        write_run(tmp_path / n / "run.h5", n, growth=g) for n, g in zip(names, (0.05, 0.02, -0.03))
    ]
    runs = [load_run(p) for p in paths]
    fig = timeseries_figure(runs, ["tumour_burden", "immune_in_tumour"])
    lines = _series_lines(fig)
    assert lines == {"tumour_burden": names, "immune_in_tumour": names}
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[:3] == names
    finals = [
        ln.get_ydata()[-1] for ln in fig.axes[0].get_lines() if ln.get_gid().startswith("series:")
    ]
    assert finals[0] > finals[1] > finals[2]

    out = compare_runs(paths, tmp_path / "compare.svg", series=["tumour_burden"])
    svg = out.read_text()
    assert all(f'id="series:tumour_burden:{n}"' in svg for n in names)


def test_compare_makes_clashing_names_unique(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from solver.viz import timeseries_figure

    runs = [load_run(write_run(tmp_path / d / "run.h5", "same")) for d in ("a", "b")]
    fig = timeseries_figure(runs, ["tumour_burden"])
    assert _series_lines(fig) == {"tumour_burden": ["same (a)", "same (b)"]}
    with pytest.raises(VizError, match="1 labels for 2 runs"):
        timeseries_figure(runs, ["tumour_burden"], labels=["x"])


# ----------------------------------------------------------------------------- what the pictures show
# Tiny real runs through the command line (seconds each): a 1-D front, a 2-D model whose
# tumour field never falls to 0, and the quickstart on 8^3 cells.

ROOT = Path(__file__).resolve().parents[1]
FLAT_MODEL = """\
name: flat
grid: {shape: [8, 8, 1], spacing: 100.0, length_unit: um}
time: {end: 0.2, unit: day}
output: {snapshot_every: 0.1, series_every: 0.05, pictures: false, checkpoint: null}
model:
  parameters: {D: 1000.0, P: 5.0}
  maps: {w: "1.0 if x < 200 else 0.0"}
  species:
    T: {diffusion: D, reaction: "T*(1 - T)", units: cells/mL,
        initial: "0.5 + 0.4*exp(-((x - 400)**2 + (y - 400)**2)/40000)"}
    M: {diffusion: D, reaction: "P*w*(1 - M) - M", initial: 0.0, units: mg/L}
"""
TINY_SETS = {
    "1d": ["grid.shape=[16,2,2]", "time.end=2.0", "output.snapshot_every=0.5"],
    "3d": ["grid.shape=[8,8,8]", "grid.spacing=300", "time.end=1.5", "treatment[il2].count=2",
           "output.snapshot_every=0.5", "output.series_every=0.05"],
}


def _tiny_run(folder: Path, config: str, sets: list[str]) -> Path:
    from solver.cli import main

    args = ["run", config, "--out", str(folder), "--progress-every", "0",
            "--set", "output.pictures=false", "--set", "output.checkpoint=null"]
    for item in sets:
        args += ["--set", item]
    assert main(args) == 0
    return folder / "run.h5"


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("tiny")
    (base / "flat.yaml").write_text(FLAT_MODEL)
    return {
        "1d": _tiny_run(base / "1d", str(ROOT / "configs" / "fisher_front.yaml"), TINY_SETS["1d"]),
        "2d": _tiny_run(base / "2d", str(base / "flat.yaml"), []),
        "3d": _tiny_run(base / "3d", str(ROOT / "configs" / "quickstart.yaml"), TINY_SETS["3d"]),
    }


def _titles(fig: object) -> list[str]:
    return [ax.get_title() for ax in fig.axes if ax.get_visible() and ax.get_title()]  # type: ignore[attr-defined]


def _with_gid(ax: object, gid: str) -> list[object]:
    return [a for a in ax.get_children() if a.get_gid() == gid]  # type: ignore[attr-defined]


def test_plan_follows_the_grid_and_the_model(tiny_runs: dict[str, Path]) -> None:
    from solver.viz.pictures import picture_plan

    one, two, three = (picture_plan(load_run(tiny_runs[k])) for k in ("1d", "2d", "3d"))
    assert (one.layout, one.fields) == ("profile", ("u",))
    assert (two.layout, two.fields, two.vessel_map) == ("map", ("T", "M"), "w")
    # quickstart: tumour, immune cells, doxorubicin and IL-2 from the vessels; no
    # pembrolizumab (A) and no chemokine (K, not supplied from the vessels)
    assert (three.layout, three.fields) == ("orthogonal", ("T", "N", "L", "M", "I"))
    run = load_run(tiny_runs["3d"])
    assert set(run.dose_times) == {"chemo", "il2"}
    assert "plasma_pd1" in run.series and "rate_til" in run.series
    assert "plasma_pd1" not in three.series and "rate_til" not in three.series
    assert {"tumour_burden", "plasma_chemo", "plasma_il2", "chemo_tumour_mean"} <= set(three.series)


def test_1d_run_gets_a_profile_over_time(tiny_runs: dict[str, Path]) -> None:
    pytest.importorskip("matplotlib")
    from solver.viz import final_state_figure, picture_plan

    run = load_run(tiny_runs["1d"])
    fig = final_state_figure(run, run.n_snapshots - 1, picture_plan(run))
    profile = next(ax for ax in fig.axes if ax.get_title() == "u along x")
    lines = [ln for ln in profile.get_lines() if str(ln.get_gid()).startswith("profile:u:")]
    assert len(lines) == run.n_snapshots == 5
    assert len(lines[0].get_xdata()) == 16
    front = [np.argmin(np.abs(ln.get_ydata() - 0.5)) for ln in lines]
    assert front == sorted(front) and front[-1] > front[0]  # the front moves along x
    assert profile.get_xlabel() == "x"  # fisher_front gives no length unit
    assert any(ax.get_ylabel() == "time [day]" or ax.get_ylabel() == "time" for ax in fig.axes)
    assert not [t for t in _titles(fig) if t.startswith("3D")]


def test_2d_run_gets_heat_maps_and_a_boundary_inside_the_range(tiny_runs: dict[str, Path]) -> None:
    pytest.importorskip("matplotlib")
    from solver.viz import final_state_figure, picture_plan

    run = load_run(tiny_runs["2d"])
    fig = final_state_figure(run, 1, picture_plan(run))
    assert _titles(fig)[:2] == ["T at z = 50 µm", "M at z = 50 µm"]
    assert "radial profiles (vessels dashed)" in _titles(fig)
    t_axes = fig.axes[0]
    (image,) = _with_gid(t_axes, "map:T")
    np.testing.assert_allclose(image.get_array(), run.field("T", 1)[:, :, 0].T, rtol=1e-6)
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert "T [cells/mL]" in labels and "M [mg/L]" in labels  # colour bars in the model's units
    assert t_axes.get_xlabel() == "x [µm]" and t_axes.get_ylabel() == "y [µm]"
    (boundary,) = _with_gid(t_axes, "boundary")
    level = boundary.levels[0]
    values = run.field("T", 1)
    assert values.min() > 0.45  # half the maximum lies below the field: the old empty picture
    assert values.min() < level < values.max()
    legend = [t.get_text() for t in t_axes.get_legend().get_texts()]
    assert legend[0].startswith("vessels (w") and legend[1].startswith("tumour boundary (T = ")
    assert _with_gid(fig.axes[1], "vessels")  # the vessel contour on the drug's map too


def test_2d_scene_isosurface_lies_inside_the_range(tiny_runs: dict[str, Path], headless: object) -> None:
    from solver.viz.scene import SceneOptions, build_scene, default_iso_value

    run = load_run(tiny_runs["2d"])
    low, high = float(run.field("T", 1).min()), float(run.field("T", 1).max())
    assert low < default_iso_value(run, "T", 1, 0.5) < high
    plotter = build_scene(run, 1, SceneOptions(window_size=(160, 120)))
    try:
        assert plotter.actors["boundary"].mapper.dataset.n_points > 0
    finally:
        plotter.close()


def test_3d_run_shows_scene_slices_drug_and_vessel_legend(
    tiny_runs: dict[str, Path], tmp_path: Path, headless: object
) -> None:
    pytest.importorskip("matplotlib")
    from PIL import Image

    from solver.viz import final_state_figure, picture_plan, screenshot
    from solver.viz.scene import SceneOptions, build_scene

    run = load_run(tiny_runs["3d"])
    plan = picture_plan(run)
    fig = final_state_figure(run, 3, plan, scene_image=np.zeros((10, 10, 3), np.uint8))
    titles = _titles(fig)
    assert titles[0].startswith("3D: T isosurface")
    assert [t.split(" at ")[0] for t in titles[1:6]] == ["T", "N", "L", "M", "I"]
    radial = next(ax for ax in fig.axes if ax.get_title().startswith("radial"))
    gids = {ln.get_gid() for ln in radial.get_lines()}
    assert {"radial:M", "radial:w"} <= gids and "radial:A" not in gids
    assert radial.get_xlabel() == "distance from the tumour centre [µm]"
    # the drug falls off from the vessels into the avascular core
    m = next(ln for ln in radial.get_lines() if ln.get_gid() == "radial:M").get_ydata()
    assert m[0] < 0.9 * m.max()
    plotter = build_scene(run, 3, SceneOptions(window_size=(200, 160)))
    try:
        legend = plotter.actors["legend"]
        entries = [legend.GetEntryString(i) for i in range(legend.GetNumberOfEntries())]
        assert entries[0].startswith("tumour boundary: T = ") and entries[1].startswith("vessels: w")
    finally:
        plotter.close()
    out = screenshot(run, tmp_path / "final_state.png")
    with Image.open(out) as img:
        pixels = np.asarray(img.convert("RGB"))
    assert pixels.shape[1] > 1000 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 500


def test_time_series_leave_out_agents_never_given(tiny_runs: dict[str, Path]) -> None:
    pytest.importorskip("matplotlib")
    from solver.viz import timeseries_figure

    fig = timeseries_figure([load_run(tiny_runs["3d"])])
    panels = _series_lines(fig)
    assert "plasma_pd1" not in panels and "rate_til" not in panels and "pd1_occupancy" not in panels
    assert "plasma_chemo" in panels
    doses = fig.axes[-1]
    assert [t.get_text() for t in doses.get_yticklabels()] == ["chemo", "il2"]
    for ax in fig.axes[:-1]:  # every series panel names its unit
        assert ax.get_ylabel().endswith("]"), ax.get_ylabel()


def test_doses_at_the_same_time_stay_visible_and_compare_colours_each_arm(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from solver.viz import timeseries_figure

    paths = [write_run(tmp_path / n / "run.h5", n) for n in ("control", "chemo")]
    with h5py.File(paths[1], "a") as fh:  # the second arm: both agents on day 0
        fh.attrs["dose_times_json"] = json.dumps({"chemo": [0.0], "il2": [0.0]})
    runs = [load_run(p) for p in paths]
    fig = timeseries_figure(runs, ["tumour_burden"])
    doses = fig.axes[-1]
    marks = {ln.get_gid(): ln for ln in doses.get_lines()}
    assert set(marks) == {"dose:chemo:control", "dose:il2:control", "dose:chemo:chemo", "dose:il2:chemo"}
    # same time, different rows: neither hides the other
    assert marks["dose:chemo:chemo"].get_ydata()[0] != marks["dose:il2:chemo"].get_ydata()[0]
    series_colour = {ln.get_gid(): ln.get_color() for ln in fig.axes[0].get_lines()}
    for arm in ("control", "chemo"):
        assert marks[f"dose:chemo:{arm}"].get_color() == series_colour[f"series:tumour_burden:{arm}"]
    assert marks["dose:chemo:control"].get_color() != marks["dose:chemo:chemo"].get_color()
    assert [t.get_text() for t in doses.get_yticklabels()] == [
        "chemo (control)", "il2 (control)", "chemo (chemo)", "il2 (chemo)"]


def test_config_mapping_chooses_fields_series_and_log(tiny_runs: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from solver.viz import final_state_figure, picture_plan, timeseries_figure

    path = _tiny_run(tmp_path / "chosen", str(ROOT / "configs" / "quickstart.yaml"), [
        *TINY_SETS["3d"], "time.end=1.1", "treatment[il2].count=1", "output.snapshot_every=1.1",
        "output.pictures={fields: [T, M], series: [tumour_burden, plasma_chemo], slices: map, log: [M, plasma_chemo]}",
    ])
    run = load_run(path)
    plan = picture_plan(run)
    assert (plan.fields, plan.series, plan.layout) == (("T", "M"), ("tumour_burden", "plasma_chemo"), "map")
    fig = final_state_figure(run, 1, plan)
    (image,) = _with_gid(fig.axes[1], "map:M")
    assert type(image.norm).__name__ == "LogNorm"
    series = timeseries_figure([run])
    assert _series_lines(series) == {"tumour_burden": ["quickstart"], "plasma_chemo": ["quickstart"]}
    assert series.axes[1].get_yscale() == "log" and series.axes[0].get_yscale() == "linear"


@pytest.mark.parametrize(
    ("pictures", "message"),
    [
        ("{fields: [T, Q]}", "output.pictures.fields: unknown field 'Q'; allowed: T, N, L, K, M, I, A, w"),
        ("{series: [volume]}", "output.pictures.series: unknown time series 'volume'; allowed: total_T, "),
        ("{log: [nope]}", "output.pictures.log: unknown field or time series 'nope'; allowed: T, "),
        ("{slices: cube}", "output.pictures.slices: input should be 'auto', 'profile', 'map' or 'orthogonal'"),
        ("{colour: red}", "unknown key 'output.pictures.colour'; valid keys: fields, series, slices, log"),
        ("maybe", "output.pictures: expected true, false or a mapping with keys fields, series, slices, log"),
    ],
)
def test_pictures_mapping_errors_are_one_line(
    pictures: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from solver.cli import main

    config = str(ROOT / "configs" / "quickstart.yaml")
    assert main(["validate", config, "--set", f"output.pictures={pictures}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_view_log_and_clim(tiny_runs: dict[str, Path], tmp_path: Path, headless: object,
                           capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    from solver.cli import main
    from solver.viz.scene import SceneOptions, build_scene

    run3 = tiny_runs["3d"]
    assert main(["view", str(run3), "--field", "M", "--clim", "0.001", "0.004", "--log",
                 "--screenshot", str(tmp_path / "m.png"), "--size", "200", "160"]) == 0
    assert (tmp_path / "m.png").stat().st_size > 0
    plotter = build_scene(load_run(run3), 3, SceneOptions(field="M", log_scale=True, clim=(1e-3, 4e-3),
                                                          window_size=(160, 120)))
    try:
        mapper = plotter.actors["slices"].mapper
        assert tuple(mapper.scalar_range) == pytest.approx((1e-3, 4e-3))
        assert mapper.lookup_table.log_scale
    finally:
        plotter.close()
    # on a 2-D run the limits and the log scale reach the field's heat map
    assert main(["view", str(tiny_runs["2d"]), "--field", "T", "--clim", "0.4", "1.0", "--log",
                 "--screenshot", str(tmp_path / "t.png")]) == 0
    from solver.viz.final_state import _plan_for

    plan = _plan_for(load_run(tiny_runs["2d"]), "T", True, (0.4, 1.0))
    assert plan.fields == ("T",) and plan.log == {"T"} and plan.clim == {"T": (0.4, 1.0)}
    capsys.readouterr()
    for bad, text in ((["--clim", "2", "1"], "--clim must be LO HI with LO < HI"),
                      (["--log", "--clim", "0", "1"], "--clim LO must be > 0 with --log")):
        assert main(["view", str(run3), *bad, "--screenshot", str(tmp_path / "x.png")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and text in err
    assert not (tmp_path / "x.png").exists()
