"""The Cartesian grid: shape, spacing, cell centres and face boundary conditions.

Public API:
    Grid(shape, spacing, length_unit)   cell-centred grid; cell (i, j, k) has centre
                                        ((i + 1/2) hx, (j + 1/2) hy, (k + 1/2) hz)
    FaceBC(kind, value)                 one face's boundary condition
    BoundaryConditions                  the six faces of one species

Arrays on the grid have shape (nx, ny, nz) in C order: z is the contiguous axis.

Boundary conditions act through one ghost value outside each face (cell-centred
finite volumes, as in LeVeque, "Finite Volume Methods for Hyperbolic Problems", 2002,
ch. 7): no-flux copies the edge cell (zero gradient at the face), a fixed value g sets
the ghost to 2 g - u_edge (so the face value is g), periodic wraps around.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

AXES = ("x", "y", "z")
SIDES = ("low", "high")


@dataclass(frozen=True)
class FaceBC:
    """Boundary condition on one face: "no-flux", "periodic" or "value" (with `value`)."""

    kind: Literal["no-flux", "periodic", "value"]
    value: float = 0.0


@dataclass(frozen=True)
class BoundaryConditions:
    """Faces of one species, indexed as faces[axis][side] with axis 0..2, side 0 = low."""

    faces: tuple[tuple[FaceBC, FaceBC], tuple[FaceBC, FaceBC], tuple[FaceBC, FaceBC]]

    @classmethod
    def from_config(cls, spec: dict[str, dict[str, dict]]) -> BoundaryConditions:
        """Build from the normalised config form {axis: {side: {"kind": .., "value": ..}}}."""
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
    """A cell-centred grid of shape (nx, ny, nz) with spacing (hx, hy, hz)."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    length_unit: str = ""

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def cell_volume(self) -> float:
        return float(np.prod(self.spacing))

    @property
    def extent(self) -> tuple[float, float, float]:
        return tuple(n * h for n, h in zip(self.shape, self.spacing))  # type: ignore[return-value]

    def centres(self, axis: int) -> np.ndarray:
        """Cell-centre coordinates along one axis, shaped to broadcast over (nx, ny, nz)."""
        n, h = self.shape[axis], self.spacing[axis]
        c = (np.arange(n, dtype=np.float64) + 0.5) * h
        shape = [1, 1, 1]
        shape[axis] = n
        return c.reshape(shape)

    def coordinates(self) -> dict[str, np.ndarray]:
        """x, y, z cell centres as broadcastable arrays."""
        return {name: self.centres(a) for a, name in enumerate(AXES)}
