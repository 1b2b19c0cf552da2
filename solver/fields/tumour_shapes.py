"""Initial tumour density fields: a sphere or an ellipsoid of uniform density.

Public API:
    tumour_density(shape, spacing, kind, density, centre=None, radius=None, radii=None,
                   smooth=0.0) -> ndarray (float64)            the Python API
    generate_tumour(grid, options) -> ndarray (float64)       from validated options
    TUMOUR_SHAPE_KINDS

Grid convention as in solver/fields/vessels.py. Lengths are in the unit of the spacing.
The options, defaults and ranges are the typed models SphereTumour and EllipsoidTumour
of solver/config/sources.py.

Without smoothing the field is exactly `density` at cells whose centre lies in the
closed shape, sum((x_i - c_i)^2 / r_i^2) <= 1, and exactly 0 elsewhere. With
`smooth` = eps > 0 it is density * 1/2 (1 - tanh(s / eps)), s the signed distance to the
surface (negative inside): the front goes from 88 % to 12 % of the density over 2 eps,
so choose eps >= the grid spacing to resolve it. For the ellipsoid s is the first-order
estimate (rho - 1) / |grad rho| with rho = sqrt(sum(x_i^2 / r_i^2)), exact on the surface
and for a sphere. Beyond 18 eps outside the surface the value is exactly 0. Smoothing
raises the total: for a sphere the integral is V (1 + pi^2 eps^2 / (4 R^2)) to second
order (Sommerfeld expansion).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from solver.config.sources import EllipsoidTumour, SphereTumour, tumour_options
from solver.errors import ConfigError
from solver.grid import Grid

log = logging.getLogger(__name__)

TUMOUR_SHAPE_KINDS: tuple[str, ...] = ("sphere", "ellipsoid")

# With smoothing, values further than this many edge widths outside the surface are
# set to exactly 0 (the tanh tail there is below 2.4e-16 of the density), so the far
# field is tumour-free rather than seeded with round-off that logistic growth amplifies.
_TAIL_EDGES = 18.0


def tumour_density(shape, spacing, kind: str = "sphere", density: float = 0.0, **options: Any) -> np.ndarray:
    """Uniform tumour density inside a sphere or an axis-aligned ellipsoid (see module doc).

    Raises:
        ConfigError: an unknown kind, an option of the other kind or out of range, or a
            shape that covers no cell of the grid.
    """
    given = {k: v for k, v in options.items() if v is not None}
    return generate_tumour(Grid(shape, spacing), tumour_options({"kind": kind, "density": density, **given}))


def generate_tumour(grid: Grid, options: Any) -> np.ndarray:
    """The tumour density of validated `options` on `grid` (float64)."""
    middle = grid.centre if options.centre is None else np.array(options.centre, dtype=np.float64)
    axes = _semi_axes(options, grid)
    if min(axes) < 2.0 * grid.h_max:
        log.warning(
            "tumour %s semi-axis %g spans fewer than 2 cells (spacing %g): poorly resolved",
            options.kind, min(axes), grid.h_max,
        )
    smooth = options.smooth
    if 0.0 < smooth < 0.5 * grid.h_max:
        log.warning(
            "tumour edge width smooth=%g is below half the grid spacing %g: the front is not resolved",
            smooth, grid.h_max,
        )
    dx, dy, dz = grid.offsets(middle)
    rx, ry, rz = axes
    rho2 = (dx / rx) ** 2 + (dy / ry) ** 2 + (dz / rz) ** 2
    if smooth == 0.0:
        field = np.where(rho2 <= 1.0, options.density, 0.0)
    else:
        field = _smoothed(rho2, (dx, dy, dz), axes, options.density, smooth)
    if not field.any() and options.density > 0.0:
        raise ConfigError(
            f"tumour {options.kind} with semi-axes {axes} at {tuple(float(c) for c in middle)} covers "
            f"no cell of the grid (domain {tuple(float(e) for e in grid.extent)}, spacing "
            f"{grid.spacing}); enlarge it, move the centre, or set smooth > 0"
        )
    return field


def _semi_axes(options: SphereTumour | EllipsoidTumour, grid: Grid) -> tuple[float, float, float]:
    if isinstance(options, EllipsoidTumour):
        return tuple(float(r) for r in options.radii)  # type: ignore[return-value]
    radius = options.radius
    if radius is None:
        radius = 0.25 * float(min(grid.extent))
        log.info("tumour sphere radius defaults to %g (1/4 of the domain)", radius)
    return (radius, radius, radius)


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
