"""Tests of the static maps that seed a run: vessel maps (solver/fields/vessels.py), map
files (solver/fields/array_files.py) and initial tumour shapes (solver/fields/tumour_shapes.py)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest

from solver.config import NecroticCoreVessels, NetworkVessels
from solver.errors import ConfigError
from solver.fields.array_files import MAP_FILE_EXTENSIONS
from solver.fields.array_files import read_array as load_map
from solver.fields.tumour_shapes import tumour_density
from solver.fields.vessels import core_mask, deposit, normalise_map, vessel_map, vessel_points
from solver.grid import Grid

SHAPE = (32, 32, 32)
SPACING = (10.0, 10.0, 10.0)  # um

# Tubes resolved by the grid for the geometric checks: radius 3 cells.
RESOLVED = {"radius": 6.0, "segment_length": 30.0}
RESOLVED_SPACING = (2.0, 2.0, 2.0)


def one_line_error(excinfo: pytest.ExceptionInfo[ConfigError]) -> str:
    """The error message, asserting that it is one non-empty line."""
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


def tube_fraction(w: np.ndarray, region: np.ndarray | None = None) -> float:
    """Fraction of cells (of ``region``) at or above half the maximum of ``w``."""
    inside = w >= 0.5 * w.max()
    return float(inside.mean() if region is None else inside[region].mean())


def centre_distance(shape: tuple[int, int, int], spacing: tuple[float, ...], centre) -> np.ndarray:
    """Distance of every cell centre from ``centre``."""
    axes = [(np.arange(n) + 0.5) * h - c for n, h, c in zip(shape, spacing, centre, strict=True)]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    return np.sqrt(x * x + y * y + z * z)


# ------------------------------------------------------------------------ vessel maps


def test_uniform_map_is_all_ones() -> None:
    w = vessel_map(SHAPE, SPACING, "uniform")
    assert w.shape == SHAPE and w.dtype == np.float64
    assert np.array_equal(w, np.ones(SHAPE))


@pytest.mark.parametrize("kind", ["network", "necrotic_core"])
def test_same_seed_same_map_other_seed_other_map(kind: str) -> None:
    first = vessel_map(SHAPE, SPACING, kind, seed=7)
    again = vessel_map(SHAPE, SPACING, kind, seed=7)
    other = vessel_map(SHAPE, SPACING, kind, seed=8)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize(
    ("kind", "shape", "spacing", "options"),
    [
        ("uniform", (8, 9, 10), (1.0, 2.0, 3.0), {}),
        ("network", SHAPE, SPACING, {}),
        ("network", (40, 24, 16), (5.0, 8.0, 12.0), {"volume_fraction": 0.05}),
        ("network", (24, 24, 24), (4.0, 4.0, 4.0), {"tortuosity": 0.0, "pieces": 1}),
        ("necrotic_core", SHAPE, SPACING, {}),
        ("necrotic_core", (48, 32, 32), SPACING, {"rim_boost": 1.5, "centre": (100, 160, 160)}),
    ],
)
def test_map_has_mean_one_and_is_non_negative(kind, shape, spacing, options) -> None:
    w = vessel_map(shape, spacing, kind, seed=3, **options)
    assert w.shape == shape and w.dtype == np.float64 and w.flags.c_contiguous
    assert np.all(np.isfinite(w))
    assert w.min() >= 0.0
    assert abs(w.mean() - 1.0) < 1e-12


@pytest.mark.parametrize("target", [0.02, 0.05])
def test_network_reaches_requested_volume_fraction(target: float) -> None:
    # Vessels are added until the tube volume inside the domain reaches the target and no
    # further: the excess is at most one straight piece's volume pi r^2 L.
    grid = Grid((64, 64, 64), RESOLVED_SPACING)
    points, weights = vessel_points(grid, NetworkVessels(seed=1, volume_fraction=target, **RESOLVED))
    domain = math.prod(grid.extent)
    piece = math.pi * RESOLVED["radius"] ** 2 * RESOLVED["segment_length"]
    assert np.all((points >= 0) & (points < np.array(grid.extent)))
    assert target <= weights.sum() / domain <= target + piece / domain
    # and the map's cells hold that volume: the deposit conserves it exactly
    raw = deposit(grid, points, weights)
    assert raw.sum() * grid.cell_volume == pytest.approx(weights.sum(), rel=1e-12)


@pytest.mark.parametrize("kind", ["network", "necrotic_core"])
def test_a_finer_grid_of_the_same_domain_block_averages_to_the_coarser_map(kind: str) -> None:
    # The geometry is physical: one seed draws the same vessels on every grid, and each
    # grid holds cell averages of their volume, so 2x and 4x finer maps averaged over
    # blocks of 2^3 and 4^3 cells are the coarse map (to rounding).
    options = {"seed": 7, "volume_fraction": 0.04, **({"core_radius": 450.0, "rim_boost": 1.0}
                                                      if kind == "necrotic_core" else {})}
    coarse = vessel_map((12, 12, 12), (200.0,) * 3, kind, **options)
    for k in (2, 4):
        fine = vessel_map((12 * k,) * 3, (200.0 / k,) * 3, kind, **options)
        blocks = fine.reshape(12, k, 12, k, 12, k).mean(axis=(1, 3, 5))
        assert np.abs(blocks - coarse).max() <= 1e-12 * coarse.max()
        assert fine.max() > 1.5 * coarse.max()  # the finer grid resolves more: not a copy


def test_geometry_the_grid_cannot_resolve_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    # a core edge narrower than a cell, and a core smaller than a cell, are warnings
    with caplog.at_level(logging.INFO, logger="solver.fields.vessels"):
        vessel_map(SHAPE, SPACING, "necrotic_core", seed=4, core_radius=8.0, rim_width=5.0, radius=2.0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("rim_width 5 is below the grid spacing 10" in m for m in warnings)
    assert any("core_radius 8 is below the grid spacing 10" in m for m in warnings)
    # a vessel thinner than a cell changes nothing (cell averages): said at INFO
    assert any(r.levelno == logging.INFO and "below half the grid spacing" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="solver.fields.vessels"):
        vessel_map(SHAPE, SPACING, "necrotic_core", seed=4, core_radius=100.0, rim_width=30.0, radius=6.0)
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]


def test_a_network_built_again_is_the_same_map_and_warns_again(caplog: pytest.LogCaptureFixture) -> None:
    """The process keeps the last few maps (a study's members share their tissue): a second
    build of the same network on the same grid gives the same map, in an array of its own,
    with the same warnings; another seed or grid is a map of its own."""
    options = {"seed": 4, "core_radius": 8.0, "rim_width": 5.0, "radius": 2.0}
    maps = []
    for _ in range(2):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="solver.fields.vessels"):
            maps.append(vessel_map(SHAPE, SPACING, "necrotic_core", **options))
        assert any("core_radius 8 is below the grid spacing 10" in r.getMessage() for r in caplog.records)
    assert np.array_equal(maps[0], maps[1]) and maps[0] is not maps[1]
    maps[1] *= 2.0  # a caller's array is its own: the kept map is unchanged
    assert np.array_equal(vessel_map(SHAPE, SPACING, "necrotic_core", **options), maps[0])
    assert not np.array_equal(vessel_map(SHAPE, SPACING, "necrotic_core", **{**options, "seed": 5}), maps[0])


def test_necrotic_core_is_vessel_free_and_outside_is_the_network() -> None:
    shape = (40, 40, 40)
    centre, core_radius, rim_width = (190.0, 210.0, 200.0), 120.0, 30.0
    options = {"centre": centre, "core_radius": core_radius, "rim_width": rim_width}
    w = vessel_map(shape, SPACING, "necrotic_core", seed=5, **options)
    net = vessel_map(shape, SPACING, "network", seed=5)
    r = centre_distance(shape, SPACING, centre)
    half_diagonal = 0.5 * math.sqrt(3.0) * SPACING[0]

    # every cell wholly inside the mask's zero is empty
    core = r + half_diagonal <= core_radius - rim_width / 2
    assert core.sum() > 100
    assert np.all(w[core] == 0.0)
    # every cell wholly outside the ramp is the same network, rescaled
    outside = (r - half_diagonal >= core_radius + rim_width / 2) & (net > 0)
    ratio = w[outside] / net[outside]
    assert ratio[0] > 1.0  # the vessels removed from the core go to the mean
    assert np.allclose(ratio, ratio[0], rtol=1e-12)


def test_core_mask_ramp() -> None:
    r = np.array([0.0, 84.9, 85.0, 100.0, 115.0, 115.1, 500.0])
    m = core_mask(r, core_radius=100.0, rim_width=30.0)
    assert np.array_equal(m[[0, 1, 2]], [0.0, 0.0, 0.0])
    assert m[3] == 0.5
    assert np.array_equal(m[[4, 5, 6]], [1.0, 1.0, 1.0])
    fine = core_mask(np.linspace(80.0, 120.0, 401), 100.0, 30.0)
    assert np.all(np.diff(fine) >= 0.0)


def test_angiogenic_rim_is_denser() -> None:
    base, boost = 0.03, 2.0
    grid = Grid((64, 64, 64), RESOLVED_SPACING)
    opts = NecroticCoreVessels(kind="necrotic_core", seed=6, volume_fraction=base, core_radius=30.0,
                               rim_width=4.0, rim_boost=boost, boost_width=16.0, **RESOLVED)
    points, weights = vessel_points(grid, opts)
    r = np.linalg.norm(points - np.array(grid.centre), axis=1)
    outer = 30.0 + 2.0
    shell_volume = 4.0 / 3.0 * math.pi * ((outer + 16.0) ** 3 - outer**3)   # inside the domain
    in_shell = weights[(r >= outer) & (r <= outer + 16.0)].sum() / shell_volume
    far = r > outer + 16.0 + 10.0
    far_volume = math.prod(grid.extent) - 4.0 / 3.0 * math.pi * (outer + 26.0) ** 3
    assert in_shell >= (1.0 + boost) * base * 0.99  # the shell's volume is sampled (2^16 points)
    assert weights[far].sum() / far_volume < 1.5 * base


def test_map_that_is_zero_everywhere_is_an_error() -> None:
    with pytest.raises(ConfigError) as excinfo:
        vessel_map(SHAPE, SPACING, "necrotic_core", core_radius=1000.0)
    assert "zero everywhere" in one_line_error(excinfo)
    with pytest.raises(ConfigError) as excinfo:
        normalise_map(np.zeros(SHAPE))
    assert "zero everywhere" in one_line_error(excinfo)


@pytest.mark.parametrize(
    ("kind", "options", "expected"),
    [
        ("capillary", {}, "valid kinds: file, necrotic_core, network, uniform"),
        ("uniform", {"radius": 5.0}, "unknown key 'vessels.radius'; valid keys: kind, seed"),
        ("network", {"raduis": 5.0}, "raduis"),
        ("network", {"volume_fraction": 0.9}, "volume_fraction: 0.9 is out of range; allowed: (0, 0.5]"),
        ("network", {"radius": -1.0}, "radius: -1.0 is out of range"),
        ("network", {"pieces": 0}, "pieces: input should be greater than or equal to 1, got 0"),
        ("network", {"radius": float("nan")}, "radius: input should be a finite number, got nan"),
        ("network", {"radius": 100.0}, "length unit of spacing"),
        ("necrotic_core", {"rim_width": 0.0}, "rim_width: 0.0 is out of range"),
        ("necrotic_core", {"rim_boost": -1.0}, "rim_boost: -1.0 is out of range; allowed: [0, inf)"),
        ("necrotic_core", {"centre": (1.0, 2.0)}, "centre: expected 3 values [x, y, z], got (1.0, 2.0)"),
        ("file", {}, "missing required key 'vessels.path'"),
    ],
)
def test_bad_kind_or_option_is_a_config_error(kind, options, expected) -> None:
    with pytest.raises(ConfigError) as excinfo:
        vessel_map(SHAPE, SPACING, kind, **options)
    assert expected in one_line_error(excinfo)


def test_unknown_option_lists_valid_options() -> None:
    with pytest.raises(ConfigError) as excinfo:
        vessel_map(SHAPE, SPACING, "network", raduis=5.0)
    message = one_line_error(excinfo)
    for name in NetworkVessels.model_fields:
        assert name in message


@pytest.mark.parametrize(
    ("shape", "spacing", "seed"),
    [
        ((32, 32), SPACING, 0),
        ((32, 0, 32), SPACING, 0),
        (SHAPE, (1.0, -1.0, 1.0), 0),
        (SHAPE, SPACING, -1),
        (SHAPE, SPACING, 1.5),
    ],
)
def test_bad_grid_or_seed_is_a_config_error(shape, spacing, seed) -> None:
    with pytest.raises(ConfigError) as excinfo:
        vessel_map(shape, spacing, "network", seed=seed)
    one_line_error(excinfo)


# --------------------------------------------------------------------------- map files


def random_map(shape=SHAPE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 3.0, size=shape)


def test_load_map_round_trips_npy(tmp_path: Path) -> None:
    stored = random_map()
    np.save(tmp_path / "w.npy", stored)
    loaded = load_map(tmp_path / "w.npy", SHAPE)
    assert loaded.dtype == np.float64 and np.array_equal(loaded, stored)
    # Integer and float32 maps are accepted and converted.
    np.save(tmp_path / "i.npy", np.ones(SHAPE, dtype=np.int16))
    assert np.array_equal(load_map(str(tmp_path / "i.npy"), SHAPE), np.ones(SHAPE))


def test_load_map_round_trips_hdf5(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    stored = random_map()
    with h5py.File(tmp_path / "one.h5", "w") as f:
        f["vessels"] = stored.astype(np.float32)
    assert np.array_equal(load_map(tmp_path / "one.h5", SHAPE), stored.astype(np.float32))
    with h5py.File(tmp_path / "two.hdf5", "w") as f:
        f["maps/w"] = stored
        f["other"] = np.zeros(3)
    assert np.array_equal(load_map(tmp_path / "two.hdf5", SHAPE, dataset="maps/w"), stored)
    assert np.array_equal(load_map(tmp_path / "two.hdf5", SHAPE, dataset="/maps/w"), stored)


def test_file_kind_normalises_the_loaded_map(tmp_path: Path) -> None:
    stored = random_map()
    np.save(tmp_path / "w.npy", stored)
    w = vessel_map(SHAPE, SPACING, "file", path=tmp_path / "w.npy")
    assert abs(w.mean() - 1.0) < 1e-12
    assert np.allclose(w, stored / stored.mean(), rtol=1e-14)


def write_bad_files(tmp_path: Path) -> dict[str, tuple[Path, dict, str]]:
    """Each bad input: (path, load_map keywords, a phrase the message must hold)."""
    cases: dict[str, tuple[Path, dict, str]] = {}
    cases["missing"] = (tmp_path / "absent.npy", {}, "absent.npy does not exist")
    np.save(tmp_path / "x.npy", np.ones((10, 10, 10)))
    cases["shape"] = (
        tmp_path / "x.npy",
        {},
        "x.npy has shape (10, 10, 10); the grid is (32, 32, 32)",
    )
    nan = random_map()
    nan[1, 2, 3] = np.nan
    nan[4, 5, 6] = np.inf
    np.save(tmp_path / "nan.npy", nan)
    cases["non-finite"] = (tmp_path / "nan.npy", {}, "holds 2 non-finite value(s)")
    negative = random_map()
    negative[0, 0, 0] = -0.25
    np.save(tmp_path / "neg.npy", negative)
    cases["negative"] = (tmp_path / "neg.npy", {}, "holds 1 negative value(s) (min -0.25)")
    np.save(tmp_path / "complex.npy", random_map().astype(np.complex128))
    cases["complex"] = (tmp_path / "complex.npy", {}, "dtype complex128")
    (tmp_path / "junk.npy").write_bytes(b"not a numpy file\n at all\n")
    cases["junk npy"] = (tmp_path / "junk.npy", {}, "could not be read as a .npy array")
    (tmp_path / "w.csv").write_text("1,2,3\n")
    cases["extension"] = (
        tmp_path / "w.csv",
        {},
        "extension '.csv'; allowed extensions: " + ", ".join(MAP_FILE_EXTENSIONS),
    )
    (tmp_path / "noext").write_text("")
    cases["no extension"] = (tmp_path / "noext", {}, "has no extension; allowed extensions")
    np.save(tmp_path / "w.npy", random_map())
    cases["dataset on npy"] = (tmp_path / "w.npy", {"dataset": "w"}, "has no datasets")
    (tmp_path / "junk.h5").write_bytes(b"definitely not HDF5")
    cases["junk h5"] = (tmp_path / "junk.h5", {}, "could not be opened as HDF5")
    try:
        import h5py
    except ImportError:
        return cases
    with h5py.File(tmp_path / "many.h5", "w") as f:
        f["a"] = random_map()
        f["grp/b"] = random_map()
    cases["unknown dataset"] = (
        tmp_path / "many.h5",
        {"dataset": "c"},
        "has no dataset 'c'; datasets present: a, grp/b",
    )
    cases["ambiguous"] = (tmp_path / "many.h5", {}, "holds 2 datasets (a, grp/b)")
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f.create_group("nothing")
    cases["empty h5"] = (tmp_path / "empty.h5", {}, "contains no datasets")
    with h5py.File(tmp_path / "wrong.h5", "w") as f:
        f["w"] = np.ones((32, 32))
    cases["h5 shape"] = (tmp_path / "wrong.h5", {}, "dataset 'w' has shape (32, 32)")
    return cases


BAD_FILE_CASES = [
    "missing",
    "shape",
    "non-finite",
    "negative",
    "complex",
    "junk npy",
    "extension",
    "no extension",
    "dataset on npy",
    "junk h5",
    "unknown dataset",
    "ambiguous",
    "empty h5",
    "h5 shape",
]


@pytest.mark.parametrize("case", BAD_FILE_CASES)
def test_bad_map_file_is_a_one_line_config_error(tmp_path: Path, case: str) -> None:
    cases = write_bad_files(tmp_path)
    if case not in cases:
        pytest.skip("h5py is not installed")
    path, keywords, phrase = cases[case]
    with pytest.raises(ConfigError) as excinfo:
        load_map(path, SHAPE, **keywords)
    message = one_line_error(excinfo)
    assert message.startswith(f"vessel map file {path}")
    assert phrase in message


# ------------------------------------------------------------------------ tumour shapes


@pytest.mark.parametrize("radius", [6.3, 10.0, 12.7])
def test_sphere_cell_count_approximates_its_volume(radius: float) -> None:
    shape, h = (40, 40, 40), (1.0, 1.0, 1.0)
    centre = (19.3, 20.2, 20.9)
    field = tumour_density(shape, h, "sphere", 1.0, centre=centre, radius=radius)
    volume = 4.0 / 3.0 * math.pi * radius**3
    counted = np.count_nonzero(field) * math.prod(h)
    # Rigorous: every point of a cell whose centre is in the ball lies within
    # delta = half the cell diagonal of the ball, and every point of the ball at depth
    # >= delta lies in such a cell, so V (1 - delta/R)^3 <= N h^3 <= V (1 + delta/R)^3.
    delta = 0.5 * math.sqrt(3.0)
    assert volume * (1 - delta / radius) ** 3 <= counted <= volume * (1 + delta / radius) ** 3
    # Tighter: averaged over random shifts of the centre within a cell the count is
    # an unbiased estimate of V; the per-shift error (~0.5 % here) averages down.
    rng = np.random.default_rng(0)
    shifts = rng.uniform(-0.5, 0.5, size=(32, 3))
    mean_count = np.mean(
        [
            np.count_nonzero(
                tumour_density(shape, h, "sphere", 1.0, centre=centre + s, radius=radius)
            )
            for s in shifts
        ]
    )
    assert abs(mean_count / volume - 1.0) < 0.01


def test_ellipsoid_cell_count_and_orientation() -> None:
    shape, h = (60, 40, 30), (1.0, 2.0, 3.0)
    radii = (20.0, 25.0, 30.0)
    centre = (30.4, 39.3, 45.8)
    field = tumour_density(shape, h, "ellipsoid", 3.5, centre=centre, radii=radii)
    volume = 4.0 / 3.0 * math.pi * math.prod(radii)
    counted = np.count_nonzero(field) * math.prod(h)
    # The gauge function of the ellipsoid is Lipschitz with constant 1/min(radii), so
    # cell centres inside imply the cell lies in the ellipsoid scaled by
    # 1 + delta/min(radii) and contains it scaled by 1 - delta/min(radii).
    delta = 0.5 * math.sqrt(sum(x * x for x in h))
    grow = delta / min(radii)
    assert volume * (1 - grow) ** 3 <= counted <= volume * (1 + grow) ** 3
    # Extent along each axis line through the centre: 2 r_i / h_i cells, +- 1.
    i, j, k = (int(c // s) for c, s in zip(centre, h, strict=True))
    lines = [field[:, j, k], field[i, :, k], field[i, j, :]]
    for line, r, step in zip(lines, radii, h, strict=True):
        assert abs(np.count_nonzero(line) - 2 * r / step) <= 1.0


@pytest.mark.parametrize(
    ("kind", "size"), [("sphere", {"radius": 9.0}), ("ellipsoid", {"radii": (9.0, 6.0, 4.0)})]
)
def test_sharp_shape_is_density_inside_zero_outside(kind: str, size: dict) -> None:
    density = 7.25e8
    field = tumour_density((32, 32, 32), (1.0, 1.0, 1.0), kind, density, **size)
    assert field.dtype == np.float64 and field.shape == (32, 32, 32)
    assert set(np.unique(field)) == {0.0, density}
    # The default centre is the domain centre (16, 16, 16): the field is mirror-symmetric.
    for axis in range(3):
        assert np.array_equal(field, np.flip(field, axis=axis))
    # Membership is decided at cell centres.
    x = np.arange(32) + 0.5 - 16.0
    rx, ry, rz = (size["radius"],) * 3 if kind == "sphere" else size["radii"]
    inside = (x[:, None, None] / rx) ** 2 + (x[None, :, None] / ry) ** 2 + (
        x[None, None, :] / rz
    ) ** 2 <= 1.0
    assert np.array_equal(field == density, inside)


@pytest.mark.parametrize("eps", [1.0, 1.5])
def test_smoothed_sphere_integral_matches_sommerfeld(eps: float) -> None:
    # For a tanh edge 1/2 (1 - tanh((r - R)/eps)) the Sommerfeld expansion of
    # int 4 pi r^2 f dr terminates: V (1 + pi^2 eps^2 / (4 R^2)) up to terms of order
    # exp(-2R/eps). The midpoint rule on a profile at least one cell wide is accurate
    # to ~1e-6 here, so 1e-4 is a safe tolerance; the smoothing term itself is 2.5-5.6 %.
    radius, density = 10.0, 2.0
    field = tumour_density(
        (72, 72, 72),
        (1.0, 1.0, 1.0),
        "sphere",
        density,
        centre=(36.3, 35.77, 36.1),
        radius=radius,
        smooth=eps,
    )
    expected = 4.0 / 3.0 * math.pi * radius**3 * (1.0 + math.pi**2 * eps**2 / (4 * radius**2))
    assert abs(field.sum() / density / expected - 1.0) < 1e-4
    assert 0.0 < field.max() < density and field.min() == 0.0


def test_smoothed_edge_is_half_density_on_the_surface() -> None:
    # Ellipsoid with a cell centre exactly on the surface along each axis line.
    field = tumour_density(
        (41, 41, 41),
        (1.0, 1.0, 1.0),
        "ellipsoid",
        4.0,
        centre=(20.5, 20.5, 20.5),
        radii=(10.0, 8.0, 5.0),
        smooth=1.0,
    )
    assert field[30, 20, 20] == pytest.approx(2.0, rel=1e-12)
    assert field[20, 28, 20] == pytest.approx(2.0, rel=1e-12)
    assert field[20, 20, 15] == pytest.approx(2.0, rel=1e-12)
    assert field[20, 20, 20] > 3.99


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"kind": "cube", "radius": 5.0}, "valid kinds: ellipsoid, sphere"),
        ({"kind": "sphere", "radius": 0.0}, "tumour.radius: 0.0 is out of range; allowed: (0, inf)"),
        ({"kind": "sphere", "radius": -2.0}, "tumour.radius: -2.0 is out of range"),
        ({"kind": "sphere", "radii": (1.0, 2.0, 3.0)}, "unknown key 'tumour.radii' (did you mean 'radius'?); valid keys: kind, density, centre, radius, smooth"),
        ({"kind": "ellipsoid"}, "missing required key 'tumour.radii'"),
        ({"kind": "ellipsoid", "radii": (1.0, 0.0, 3.0)}, "tumour.radii[1]: 0.0 is out of range"),
        ({"kind": "ellipsoid", "radius": 3.0, "radii": (3, 3, 3)}, "unknown key 'tumour.radius' (did you mean 'radii'?)"),
        ({"kind": "sphere", "radius": 5.0, "density": -1.0}, "tumour.density: -1.0 is out of range"),
        ({"kind": "sphere", "radius": 5.0, "smooth": -1.0}, "tumour.smooth: -1.0 is out of range"),
        ({"kind": "sphere", "radius": 5.0, "centre": (1.0, 2.0)}, "tumour.centre: expected 3 values [x, y, z]"),
        ({"kind": "sphere", "radius": 0.2, "centre": (16.1, 16.1, 16.1)}, "covers no cell"),
        ({"kind": "sphere", "radius": 5.0, "centre": (100.0, 0.0, 0.0)}, "covers no cell"),
    ],
)
def test_bad_tumour_shape_is_a_config_error(kwargs: dict, expected: str) -> None:
    arguments = {"density": 1.0, **kwargs}
    with pytest.raises(ConfigError) as excinfo:
        tumour_density((32, 32, 32), (1.0, 1.0, 1.0), **arguments)
    assert expected in one_line_error(excinfo)


def test_quarter_tumour_at_a_corner() -> None:
    # A centre on the domain corner gives one octant of the sphere: 1/8 of its volume.
    radius = 12.0
    field = tumour_density(
        (32, 32, 32), (1.0, 1.0, 1.0), "sphere", 1.0, centre=(0.0, 0.0, 0.0), radius=radius
    )
    octant = 4.0 / 3.0 * math.pi * radius**3 / 8.0
    assert abs(np.count_nonzero(field) / octant - 1.0) < 0.1
    assert field[0, 0, 0] == 1.0 and field[-1, -1, -1] == 0.0
