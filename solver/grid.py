"""The Cartesian grid: shape, spacing, cell centres and face boundary conditions.

Public API:
    Grid(shape, spacing, length_unit)   cell-centred grid; cell (i, j, k) has centre
                                        ((i + 1/2) hx, (j + 1/2) hy, (k + 1/2) hz)
        .centres(axis, dtype)           cell centres along an axis, computed in dtype
        .offsets(point)                 centres minus a point, broadcastable
    FaceBC(kind, value, permeability)   one face's boundary condition
        .ghost_coefficients(D, h)       (alpha, beta): ghost = alpha * u_edge + beta
        .stops_advection                no advective (chemotactic) flux through the face
    BoundaryConditions                  the six faces of one species
    line_layout(shape, axis)            how a line solve walks the grid lines of one axis

Arrays on the grid have shape (nx, ny, nz) in C order: z is the contiguous axis.

Boundary conditions act through one ghost value outside each face (cell-centred
finite volumes, as in LeVeque, "Finite Volume Methods for Hyperbolic Problems", 2002,
ch. 7). Every non-periodic face is an affine rule u_ghost = alpha u_edge + beta, with
the face value u_f = (u_edge + u_ghost) / 2 and the inward diffusive flux through the
face J = D (u_ghost - u_edge) / h (h: spacing normal to the face):

    no-flux        J = 0                       alpha = 1,  beta = 0
    value g        u_f = g                     alpha = -1, beta = 2 g
    permeable P,g  J = P (g - u_f)  (Robin)    alpha = (1 - b/2) / (1 + b/2),
                                               beta  = b g / (1 + b/2),   b = P h / D

Permeable is an exchange with a reservoir at concentration g (e.g. plasma behind a
vessel wall of permeability P, length / time); it tends to no-flux as P -> 0 and to the
fixed value g as P -> inf. Periodic wraps around to the opposite edge cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from solver.errors import ConfigError

AXES = ("x", "y", "z")
SIDES = ("low", "high")


@dataclass(frozen=True)
class FaceBC:
    """Boundary condition on one face: "no-flux", "periodic", "value" (with `value`) or
    "permeable" (with `value`, the outside concentration g, and `permeability` P >= 0)."""

    kind: Literal["no-flux", "periodic", "value", "permeable"]
    value: float = 0.0
    permeability: float = 0.0

    def ghost_coefficients(self, diffusion: float, h: float) -> tuple[float, float]:
        """(alpha, beta) of the ghost rule u_ghost = alpha u_edge + beta (module docstring).

        `diffusion` is the species' D and `h` the grid spacing normal to the face. The
        permeable rule comes from D (u_ghost - u_edge) / h = P (g - (u_edge + u_ghost) / 2).
        A species with D = 0 has no diffusive flux to carry the exchange, so a permeable
        face passes nothing: (1, 0), as no-flux (the config refuses a permeable face on a
        species whose diffusion is written as 0; see solver.config).

        Raises:
            ValueError: for a periodic face, which has no ghost rule of this form.
        """
        if self.kind == "no-flux":
            return 1.0, 0.0
        if self.kind == "value":
            return -1.0, 2.0 * self.value
        if self.kind == "permeable":
            if diffusion <= 0.0:
                return 1.0, 0.0
            # NumPy (numpy_backend) and the generated CUDA (cuda_codegen._neighbour) both
            # use these two numbers, rounded to the field's dtype.
            b = self.permeability * h / diffusion
            half = 0.5 * b
            return (1.0 - half) / (1.0 + half), b * self.value / (1.0 + half)
        raise ValueError(f"a {self.kind} face has no affine ghost rule")

    @property
    def stops_advection(self) -> bool:
        """No advective (chemotactic) flux through this face: no-flux faces, and permeable
        ones, whose whole flux P (g - u_face) the diffusive ghost rule already carries
        (cells entering from the blood are a source term, not a boundary flux). Value and
        periodic faces let cells move across."""
        return self.kind in ("no-flux", "permeable")


@dataclass(frozen=True)
class BoundaryConditions:
    """Faces of one species, indexed as faces[axis][side] with axis 0..2, side 0 = low."""

    faces: tuple[tuple[FaceBC, FaceBC], tuple[FaceBC, FaceBC], tuple[FaceBC, FaceBC]]

    @classmethod
    def from_config(cls, spec: dict[str, dict[str, dict]]) -> BoundaryConditions:
        """Build from the normalised config form {axis: {side: {"kind": .., "value": .., ...}}}."""
        return cls(
            tuple(  # type: ignore[arg-type]
                tuple(FaceBC(**spec[axis][side]) for side in SIDES) for axis in AXES
            )
        )

    def face(self, axis: int, side: int) -> FaceBC:
        return self.faces[axis][side]

    def is_periodic(self, axis: int) -> bool:
        return self.faces[axis][0].kind == "periodic"


@dataclass(frozen=True)
class Grid:
    """A cell-centred grid of shape (nx, ny, nz) with spacing (hx, hy, hz).

    Raises (on construction):
        ConfigError: a shape that is not three positive integers, or a spacing that is
            not three positive finite numbers.
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    length_unit: str = ""

    def __post_init__(self) -> None:
        try:
            shape = tuple(self.shape)
        except TypeError:
            shape = ()
        if len(shape) != 3 or not all(
            isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0 for n in shape
        ):
            raise ConfigError(f"grid shape {self.shape!r} is invalid; expected three positive integers")
        try:
            spacing = tuple(float(h) for h in self.spacing)
        except (TypeError, ValueError):
            spacing = ()
        if len(spacing) != 3 or not all(math.isfinite(h) and h > 0 for h in spacing):
            raise ConfigError(f"grid spacing {self.spacing!r} is invalid; expected three positive finite numbers")
        object.__setattr__(self, "shape", tuple(int(n) for n in shape))
        object.__setattr__(self, "spacing", spacing)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def cell_volume(self) -> float:
        return float(np.prod(self.spacing))

    @property
    def extent(self) -> tuple[float, float, float]:
        return tuple(n * h for n, h in zip(self.shape, self.spacing))  # type: ignore[return-value]

    @property
    def centre(self) -> np.ndarray:
        """Centre of the domain [0, nx hx] x [0, ny hy] x [0, nz hz]."""
        return 0.5 * np.array(self.extent)

    @property
    def h_max(self) -> float:
        """Largest spacing: the length a feature must span to be resolved."""
        return max(self.spacing)

    def axis_centres(self, axis: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Cell-centre coordinates (i + 1/2) h along one axis for i in [start, stop), 1-D float64."""
        stop = self.shape[axis] if stop is None else stop
        return (np.arange(start, stop, dtype=np.float64) + 0.5) * self.spacing[axis]

    def centres(self, axis: int, dtype: np.dtype | type = np.float64) -> np.ndarray:
        """Cell centres along one axis, shaped to broadcast over (nx, ny, nz).

        Computed in `dtype` exactly as the generated kernels do, ((real) i + 1/2) * h, so
        an expression of x, y, z gives the same bits on every backend.
        """
        n = self.shape[axis]
        cast = np.dtype(dtype).type
        c = (np.arange(n, dtype=dtype) + cast(0.5)) * cast(self.spacing[axis])
        shape = [1, 1, 1]
        shape[axis] = n
        return c.reshape(shape)

    def coordinates(self, dtype: np.dtype | type = np.float64) -> dict[str, np.ndarray]:
        """x, y, z cell centres as broadcastable arrays."""
        return {name: self.centres(a, dtype) for a, name in enumerate(AXES)}

    def offsets(self, point) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cell-centre coordinates minus `point`, shaped to broadcast to the grid (float64)."""
        return (
            (self.axis_centres(0) - point[0])[:, None, None],
            (self.axis_centres(1) - point[1])[None, :, None],
            (self.axis_centres(2) - point[2])[None, None, :],
        )


def line_layout(shape: tuple[int, int, int], axis: int) -> tuple[int, int, int, int, int]:
    """(n, stride, inner, outer_stride, n_lines) of the lines along `axis` of a C-order array.

    Line l starts at (l // inner) * outer_stride + l % inner and its cells are `stride`
    apart: x lines (stride ny nz) are numbered along y, z; y lines along x, z; z lines
    along x, y. The line-solve kernels walk the grid this way.
    """
    nx, ny, nz = shape
    if axis == 0:
        return nx, ny * nz, ny * nz, 0, ny * nz
    if axis == 1:
        return ny, nz, nz, ny * nz, nx * nz
    return nz, 1, 1, nz, nx * ny
