"""Initial tumour density fields: a sphere or an ellipsoid of uniform density.

Grid convention as in :mod:`solver.vasculature`: arrays of shape (nx, ny, nz),
C order, cell (i, j, k) centred at ((i + 0.5) hx, (j + 0.5) hy, (k + 0.5) hz).
Lengths are in the unit of ``spacing``.

Public API:
    tumour_density(shape, spacing, kind, density, centre=None, radius=None,
                   radii=None, smooth=0.0) -> ndarray (float64)
    TUMOUR_SHAPE_KINDS: the valid kinds
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from solver.errors import ConfigError
from solver.vasculature import MapGrid, check_grid, check_number, check_triple

logger = logging.getLogger(__name__)

__all__ = ["TUMOUR_SHAPE_KINDS", "tumour_density"]

TUMOUR_SHAPE_KINDS: tuple[str, ...] = ("sphere", "ellipsoid")
"""Shapes :func:`tumour_density` draws."""

# With smoothing, values further than this many edge widths outside the surface are
# set to exactly 0 (the tanh tail there is below 2.4e-16 of the density), so the far
# field is tumour-free rather than seeded with round-off that logistic growth amplifies.
_TAIL_EDGES = 18.0


def tumour_density(
    shape: Sequence[int],
    spacing: Sequence[float],
    kind: str,
    density: float,
    centre: Sequence[float] | None = None,
    radius: float | None = None,
    radii: Sequence[float] | None = None,
    smooth: float = 0.0,
) -> np.ndarray:
    """Uniform tumour density inside a sphere or an axis-aligned ellipsoid.

    Without smoothing the field is exactly ``density`` at cells whose centre lies in
    the closed shape, sum((x_i - c_i)^2 / r_i^2) <= 1, and exactly 0 elsewhere.
    With ``smooth`` = eps > 0 it is ``density * 1/2 (1 - tanh(s / eps))``, s the signed
    distance to the surface (negative inside): the front goes from 88 % to 12 % of
    the density over 2 eps, so choose eps >= the grid spacing to resolve it. For the
    ellipsoid s is the first-order estimate (rho - 1) / |grad rho| with
    rho = sqrt(sum(x_i^2 / r_i^2)), exact on the surface and for a sphere. Beyond
    18 eps outside the surface the value is exactly 0. Smoothing raises the total:
    for a sphere the integral is V (1 + pi^2 eps^2 / (4 R^2)) to second order
    (Sommerfeld expansion).

    Args:
        shape: Cells per axis (nx, ny, nz).
        spacing: Cell widths (hx, hy, hz).
        kind: "sphere" or "ellipsoid".
        density: Value inside (e.g. cells per volume); finite, >= 0.
        centre: Centre (x, y, z); None -> the domain centre. It may lie outside the
            domain (e.g. a quarter tumour at a symmetry corner).
        radius: Sphere radius; None -> 1/4 of the smallest domain extent.
            Sphere only.
        radii: Ellipsoid semi-axes (rx, ry, rz) along x, y, z. Ellipsoid only,
            required.
        smooth: Width of the tanh edge; 0 gives a sharp edge.

    Returns:
        float64 array of ``shape``.

    Raises:
        ConfigError: On an unknown kind, a non-positive radius, options of the
            other kind, a negative or non-finite density or smooth, or a shape
            that covers no cell of the grid.
    """
    grid = check_grid(shape, spacing)
    if not isinstance(kind, str) or kind not in TUMOUR_SHAPE_KINDS:
        raise ConfigError(
            f"unknown tumour shape {kind!r}; valid shapes: {', '.join(TUMOUR_SHAPE_KINDS)}"
        )
    density = check_number(density, "tumour density", low=0.0, low_open=False)
    smooth = check_number(smooth, "tumour smooth", low=0.0, low_open=False)
    middle = grid.centre if centre is None else np.array(check_triple(centre, "tumour centre"))
    axes = _semi_axes(kind, radius, radii, grid)
    if min(axes) < 2.0 * grid.h_max:
        logger.warning(
            "tumour %s semi-axis %g spans fewer than 2 cells (spacing %g): poorly resolved",
            kind,
            min(axes),
            grid.h_max,
        )
    if 0.0 < smooth < 0.5 * grid.h_max:
        logger.warning(
            "tumour edge width smooth=%g is below half the grid spacing %g: the front "
            "is not resolved",
            smooth,
            grid.h_max,
        )

    dx, dy, dz = grid.offsets(middle)
    rx, ry, rz = axes
    rho2 = (dx / rx) ** 2 + (dy / ry) ** 2 + (dz / rz) ** 2
    if smooth == 0.0:
        field = np.where(rho2 <= 1.0, density, 0.0)
    else:
        field = _smoothed(rho2, (dx, dy, dz), axes, density, smooth)
    if not field.any() and density > 0.0:
        raise ConfigError(
            f"tumour {kind} with semi-axes {axes} at {tuple(float(c) for c in middle)} covers "
            f"no cell of the grid (domain {tuple(float(e) for e in grid.extent)}, spacing "
            f"{grid.spacing}); enlarge it, move the centre, or set smooth > 0"
        )
    return field


def _semi_axes(
    kind: str,
    radius: float | None,
    radii: Sequence[float] | None,
    grid: MapGrid,
) -> tuple[float, float, float]:
    """Check the size options of ``kind`` and return its three semi-axes."""
    if kind == "sphere":
        if radii is not None:
            raise ConfigError("tumour radii apply to kind 'ellipsoid'; a sphere takes radius")
        if radius is None:
            radius = 0.25 * float(grid.extent.min())
            logger.info("tumour sphere radius defaults to %g (1/4 of the domain)", radius)
        r = check_number(radius, "tumour radius", low=0.0)
        return (r, r, r)
    if radius is not None:
        raise ConfigError("tumour radius applies to kind 'sphere'; an ellipsoid takes radii")
    if radii is None:
        raise ConfigError("tumour kind 'ellipsoid' needs radii (rx, ry, rz)")
    return check_triple(radii, "tumour radii", positive=True)


def _smoothed(
    rho2: np.ndarray,
    offsets: tuple[np.ndarray, np.ndarray, np.ndarray],
    axes: tuple[float, float, float],
    density: float,
    smooth: float,
) -> np.ndarray:
    """density * 1/2 (1 - tanh(s / smooth)) with s = (rho - 1) rho / |sum x_i / r_i^2|.

    (rho - 1) / |grad rho| with grad rho = (x_i / r_i^2) / rho; for a sphere of radius
    R this is exactly r - R. At the centre (0/0) s is set to -min(axes).
    """
    rho = np.sqrt(rho2)
    gx, gy, gz = (o / (a * a) for o, a in zip(offsets, axes, strict=True))
    grad = np.sqrt(gx * gx + gy * gy + gz * gz)
    scale = np.divide(rho, grad, out=np.full(rho.shape, min(axes)), where=grad > 0.0)
    s = (rho - 1.0) * scale
    x = np.minimum(s / smooth, 300.0)
    field = density / (1.0 + np.exp(2.0 * x))  # = density/2 (1 - tanh(x))
    field[s > _TAIL_EDGES * smooth] = 0.0
    return field
