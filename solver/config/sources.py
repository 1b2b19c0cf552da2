"""Static sources in the config: where a map or an initial field comes from.

Public API:
    Source                 an expression, or one of the three source sections below
    FileSource             {file: PATH, dataset: NAME}: an array read from .npy or .h5
    VesselSource           {vessels: {kind: ..., options}}: a generated vessel map
    TumourSource           {tumour: {kind: ..., options}}: an initial tumour shape
    RunSource              {run: DIR, time: last | T, field: NAME}: a snapshot of another run
    VesselOptions          UniformVessels | NetworkVessels | NecroticCoreVessels | FileVessels
    TumourOptions          SphereTumour | EllipsoidTumour
    vessel_options(data), tumour_options(data)   validate options given as a mapping

Each option model carries its defaults and allowed ranges; solver/fields/ builds the
arrays from them. Options that depend on the grid (a radius larger than the domain, a
shape that covers no cell) are checked there, when the grid is known.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

from solver.config.messages import one_line_error
from solver.config.types import Count, Expression, Number, Seed, in_range
from solver.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


Triple = tuple[Number, Number, Number]
PositiveTriple = tuple[in_range(0.0), in_range(0.0), in_range(0.0)]


class FileSource(_Section):
    """An array read from a file: .npy, or .h5/.hdf5 with a dataset name."""

    file: str
    dataset: str | None = None


class RunSource(_Section):
    """A species' field from a snapshot of an earlier run: {run: DIR, time: last | T} (a branch).

    `field` names the run's field to read (default: the species' own name); `time` must be
    a snapshot time of that run exactly, or `last`."""

    run: str
    time: Literal["last"] | Number = "last"
    field: str | None = None


class UniformVessels(_Section):
    """w = 1 everywhere: well-perfused tissue (the ODE limit)."""

    kind: Literal["uniform"]
    seed: Seed = 0


class NetworkVessels(_Section):
    """A random network of gently curving capillary tubes, defined in physical space
    (lengths in the grid's unit): the same seed gives the same vessels on every grid."""

    kind: Literal["network"] = "network"
    seed: Seed = 0  # of numpy.random.default_rng: the same seed gives the same map
    volume_fraction: in_range(0.0, 0.5) = 0.03  # fraction of the domain inside vessel tubes
    # tube radius; None: 5 um capillaries in the grid's length unit (5 when it has none)
    radius: in_range(0.0) | None = None
    segment_length: in_range(0.0) | None = None  # one straight piece; None: 20 x radius
    pieces: Count = 4  # straight pieces per vessel (a polyline)
    tortuosity: in_range(0.0, math.pi, low_open=False) = 0.3  # random turn between pieces, radians


class NecroticCoreVessels(NetworkVessels):
    """The network switched off inside a sphere (avascular core), optionally denser in a
    shell around it (angiogenic rim)."""

    kind: Literal["necrotic_core"]  # type: ignore[assignment]
    centre: Triple | None = None  # core centre; None: the domain centre
    core_radius: in_range(0.0) | None = None  # where the mask is 1/2; None: 1/4 of the smallest extent
    rim_width: in_range(0.0) | None = None  # width of the 0 -> 1 ramp; None: core_radius / 5
    rim_boost: in_range(0.0, low_open=False) = 0.0  # extra vessel fraction in the rim (1 = 2x)
    boost_width: in_range(0.0) | None = None  # thickness of the rim shell; None: core_radius / 2


class FileVessels(_Section):
    """A map read from a .npy or .h5 file and normalised to mean 1."""

    kind: Literal["file"]
    path: str
    dataset: str | None = None
    seed: Seed = 0


def _kind_tag(default: str):
    def tag(value: Any) -> str:
        kind = value.get("kind", default) if isinstance(value, dict) else getattr(value, "kind", default)
        return f"<{kind}>"
    return tag


VesselOptions = Annotated[
    Annotated[UniformVessels, Tag("<uniform>")]
    | Annotated[NetworkVessels, Tag("<network>")]
    | Annotated[NecroticCoreVessels, Tag("<necrotic_core>")]
    | Annotated[FileVessels, Tag("<file>")],
    Discriminator(_kind_tag("network")),
]


class SphereTumour(_Section):
    """Uniform density inside a sphere (a tanh edge of width `smooth` when > 0)."""

    kind: Literal["sphere"] = "sphere"
    density: in_range(0.0, low_open=False)  # value inside (e.g. cells/mL)
    centre: Triple | None = None  # None: the domain centre; may lie outside the domain
    radius: in_range(0.0) | None = None  # None: 1/4 of the smallest domain extent
    smooth: in_range(0.0, low_open=False) = 0.0  # width of the tanh edge; 0: sharp


class EllipsoidTumour(_Section):
    """Uniform density inside an axis-aligned ellipsoid of semi-axes `radii`."""

    kind: Literal["ellipsoid"]
    density: in_range(0.0, low_open=False)
    radii: PositiveTriple
    centre: Triple | None = None
    smooth: in_range(0.0, low_open=False) = 0.0


TumourOptions = Annotated[
    Annotated[SphereTumour, Tag("<sphere>")] | Annotated[EllipsoidTumour, Tag("<ellipsoid>")],
    Discriminator(_kind_tag("sphere")),
]


class VesselSource(_Section):
    """A generated vessel map: {vessels: {kind: network, seed: 1, ...}} (solver/fields/vessels.py)."""

    vessels: VesselOptions = Field(default_factory=NetworkVessels)


class TumourSource(_Section):
    """An initial tumour: {tumour: {kind: sphere, radius: 300, density: 1e8}} (solver/fields/tumour_shapes.py)."""

    tumour: TumourOptions


_SOURCE_KEYS = {"file": "<file>", "vessels": "<vessels>", "tumour": "<tumour>", "run": "<run>"}


def _source_kind(value: Any) -> str:
    if isinstance(value, FileSource):
        return "<file>"
    if isinstance(value, (VesselSource, TumourSource)):
        return "<vessels>" if isinstance(value, VesselSource) else "<tumour>"
    if isinstance(value, RunSource):
        return "<run>"
    if isinstance(value, dict):
        for key, tag in _SOURCE_KEYS.items():
            if key in value:
                return tag
        return "<file>"  # reports the missing `file` key and the valid keys
    return "<expression>"


# Union members are tagged with names that cannot be config keys, so that error
# locations can drop them (solver/config/messages.py).
Source = Annotated[
    Annotated[Expression, Tag("<expression>")]
    | Annotated[FileSource, Tag("<file>")]
    | Annotated[VesselSource, Tag("<vessels>")]
    | Annotated[TumourSource, Tag("<tumour>")]
    | Annotated[RunSource, Tag("<run>")],
    Discriminator(_source_kind),
]


def vessel_options(data: dict[str, Any]) -> Any:
    """Validate vessel-map options given as a mapping (the Python API of solver.fields).

    Raises:
        ConfigError: one line naming the option, the value and what is allowed.
    """
    return _validated(VesselSource, {"vessels": data}).vessels


def tumour_options(data: dict[str, Any]) -> Any:
    """Validate tumour-shape options given as a mapping (see vessel_options)."""
    return _validated(TumourSource, {"tumour": data}).tumour


def _validated(cls: type[BaseModel], data: dict[str, Any]) -> Any:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(one_line_error(exc, cls)) from None
