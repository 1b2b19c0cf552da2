"""Plasma pharmacokinetics of one agent: linear compartment ODEs advanced exactly.

The step control lands on every dose time (`Schedule.event_times`), so between two
steps the infusion rate R is constant and the linear ODEs below have an exact
solution; `PlasmaPK.advance` applies it, with no time-step error at any step size.

State and units (the state is concentrations, not amounts):
    one-compartment, state = [X]:
        dX/dt = -k X + R / V
        bolus of amount D:  X -> X + D / V
    two-compartment, state = [X1, X2] (central and peripheral concentrations):
        dX1/dt = -(k10 + k12) X1 + k21 (V2 / V1) X2 + R / V1
        dX2/dt =   k12 (V1 / V2) X1 - k21 X2
        bolus of amount D:  X1 -> X1 + D / V1
    three-compartment (mammillary), state = [X1, X2, X3]: the two-compartment
        equations plus a second peripheral compartment exchanging with the central one
        at k13, k31 (volume V3), as doxorubicin's disposition is described.
    k10 (`k_el`), k12 and k21 are the usual micro-constants (1/time) of the amount
    form dA1/dt = -(k10 + k12) A1 + k21 A2 + R, dA2/dt = k12 A1 - k21 A2 with
    A_i = V_i X_i (Gibaldi & Perrier, Pharmacokinetics, 2nd ed., ch. 2-3).
    R is an amount per unit time, D an amount, V a volume; the plasma concentration
    is X (or X1) in amount per volume.  With V = 1 the one-compartment model is the
    de Pillis et al. (2006) drug equation dM/dt = -gamma M + v_M(t), with v_M in
    concentration per time.

Exact update over a step h with constant R (A the matrix above, b = [R / V1, 0]):
    x(t + h) = exp(h A) x(t) + g(A) b,   g(z) = (exp(h z) - 1) / z,  g(0) = h.
One compartment: X e^{-kh} + (R / V) (1 - e^{-kh}) / k, or X + R h / V when k = 0.
Two compartments: A has real eigenvalues l1 > l2 (k12, k21 > 0), and any function of
A is f(A) = f(l1) P1 + f(l2) P2 with the spectral projectors P1 = (A - l2 I)/(l1 - l2),
P2 = (l1 I - A)/(l1 - l2) (Sylvester's formula).  g is evaluated with expm1, so
small h k and k = 0 lose no digits. Three compartments: the same formula with the
eigendecomposition of the 3 x 3 matrix (real, negative eigenvalues for a mammillary
model), A = W diag(l) W^-1.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from solver.errors import ConfigError
from solver.systemic.schedule import Schedule

log = logging.getLogger(__name__)


class PKModel(str, Enum):
    """Number of plasma compartments."""

    ONE = "one"
    TWO = "two"
    THREE = "three"


def half_life_to_rate(t_half: float) -> float:
    """First-order rate constant k = ln 2 / t_half of a half-life (inf gives 0)."""
    if not t_half > 0:
        raise ConfigError(f"half-life must be > 0, got {t_half!r}")
    return math.log(2.0) / t_half


def _phi_h(lam: float, h: float) -> float:
    """g(lam) = (exp(h lam) - 1) / lam, the integral of exp(s lam) over [0, h]; g(0) = h."""
    return h if lam == 0.0 else math.expm1(h * lam) / lam


@dataclass(frozen=True, kw_only=True)
class PlasmaPK:
    """Linear plasma PK of one agent (see the module docstring for the equations).

    Attributes:
        model: "one" or "two" compartments.
        volume: Central volume V (V1), > 0.
        k_el: Elimination rate k (k10) from the central compartment, >= 0, 1/time.
        k12: Central-to-peripheral rate, > 0 (two-compartment only), 1/time.
        k21: Peripheral-to-central rate, > 0 (two-compartment only), 1/time.
        volume_peripheral: Peripheral volume V2, > 0 (two-compartment only).
        label: Name used in error messages (e.g. the config key of this block).
    """

    model: str = "one"
    volume: float = 1.0
    k_el: float
    k12: float = 0.0
    k21: float = 0.0
    volume_peripheral: float | None = None
    k13: float = 0.0
    k31: float = 0.0
    volume_peripheral2: float | None = None
    label: str = "pk"
    _matrix: np.ndarray | None = field(init=False, repr=False, compare=False, default=None)
    _eigenvalues: tuple[float, float] = field(
        init=False, repr=False, compare=False, default=(0.0, 0.0)
    )
    _eigen: tuple | None = field(init=False, repr=False, compare=False, default=None)  # three compartments

    def __post_init__(self) -> None:
        try:
            model = PKModel(self.model)
        except ValueError:
            valid = ", ".join(m.value for m in PKModel)
            raise ConfigError(
                f"{self.label}: unknown model {self.model!r}; expected one of: {valid}"
            ) from None
        self._require("volume", self.volume, strict=True)
        self._require("k_el", self.k_el, strict=False)
        if model is PKModel.ONE:
            if self.k12 or self.k21 or self.volume_peripheral is not None or self.k13 or self.k31 \
                    or self.volume_peripheral2 is not None:
                raise ConfigError(
                    f"{self.label}: k12, k21, volume_peripheral (and k13, k31, volume_peripheral2) "
                    "apply to models 'two' and 'three' only"
                )
            return
        self._require("k12", self.k12, strict=True)
        self._require("k21", self.k21, strict=True)
        self._require("volume_peripheral", self.volume_peripheral, strict=True)
        v1, v2 = float(self.volume), float(self.volume_peripheral)
        if model is PKModel.THREE:
            self._require("k13", self.k13, strict=True)
            self._require("k31", self.k31, strict=True)
            self._require("volume_peripheral2", self.volume_peripheral2, strict=True)
            v3 = float(self.volume_peripheral2)
            a = np.array([
                [-(self.k_el + self.k12 + self.k13), self.k21 * v2 / v1, self.k31 * v3 / v1],
                [self.k12 * v1 / v2, -self.k21, 0.0],
                [self.k13 * v1 / v3, 0.0, -self.k31],
            ])
            values, vectors = np.linalg.eig(a)
            if np.max(np.abs(values.imag)) > 1e-9 * np.max(np.abs(values.real)):
                raise ConfigError(f"{self.label}: the three-compartment rates give complex eigenvalues")
            object.__setattr__(self, "_matrix", a)
            object.__setattr__(self, "_eigen", (values.real, vectors.real, np.linalg.inv(vectors.real)))
            return
        if self.k13 or self.k31 or self.volume_peripheral2 is not None:
            raise ConfigError(f"{self.label}: k13, k31 and volume_peripheral2 apply to model 'three' only")
        a = np.array(
            [
                [-(self.k_el + self.k12), self.k21 * v2 / v1],
                [self.k12 * v1 / v2, -self.k21],
            ]
        )
        # l2 = (tr - sqrt(disc)) / 2 < 0 has no cancellation; l1 = det / l2 keeps the
        # slow eigenvalue accurate when k10 k21 is small (det = k10 k21, exactly 0 if k10 = 0).
        diff = a[0, 0] - a[1, 1]
        sqrt_disc = math.sqrt(diff * diff + 4.0 * self.k12 * self.k21)
        l2 = 0.5 * (a[0, 0] + a[1, 1] - sqrt_disc)
        l1 = self.k_el * self.k21 / l2
        object.__setattr__(self, "_matrix", a)
        object.__setattr__(self, "_eigenvalues", (l1, l2))

    def _require(self, name: str, value: float | None, *, strict: bool) -> None:
        bound = "> 0" if strict else ">= 0"
        ok = (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and (value > 0 if strict else value >= 0)
        )
        if not ok:
            raise ConfigError(
                f"{self.label}: {name} must be a finite number {bound}, got {value!r}"
            )

    @property
    def n_compartments(self) -> int:
        """Length of the state vector: 1, 2 or 3."""
        return {PKModel.ONE: 1, PKModel.TWO: 2, PKModel.THREE: 3}[PKModel(self.model)]

    def initial_state(self) -> np.ndarray:
        """Drug-free state: zeros of length `n_compartments` (float64)."""
        return np.zeros(self.n_compartments)

    @staticmethod
    def concentration(state: np.ndarray) -> float:
        """Plasma (central) concentration of a state."""
        return float(state[0])

    def apply_bolus(self, state: np.ndarray, amount: float) -> np.ndarray:
        """State just after a bolus of `amount` into the central compartment: X1 += D / V1."""
        out = np.array(state, dtype=np.float64)
        out[0] += amount / self.volume
        return out

    def advance(self, state: np.ndarray, rate: float, h: float) -> np.ndarray:
        """Exact state after a time `h` >= 0 of constant infusion `rate` (amount/time).

        x(t + h) = exp(h A) x(t) + g(A) b with b = [R / V1, 0] (module docstring).
        """
        if h < 0:
            raise ValueError(f"advance needs h >= 0, got {h!r}")
        x = np.array(state, dtype=np.float64)
        inflow = rate / self.volume
        if self._matrix is None:
            k = float(self.k_el)
            return np.array([x[0] * math.exp(-k * h) + inflow * _phi_h(-k, h)])
        if self._eigen is not None:  # three compartments: x = W (e^{hl} W^-1 x + g(l) W^-1 b)
            values, w, w_inv = self._eigen
            b = np.zeros(3)
            b[0] = inflow
            growth = np.array([math.exp(h * v) for v in values])
            gain = np.array([_phi_h(v, h) for v in values])
            return w @ (growth * (w_inv @ x) + gain * (w_inv @ b))
        a = self._matrix
        l1, l2 = self._eigenvalues
        eye = np.eye(2)
        p1 = (a - l2 * eye) / (l1 - l2)
        p2 = eye - p1
        b = np.array([inflow, 0.0])
        return p1 @ (math.exp(h * l1) * x + _phi_h(l1, h) * b) + p2 @ (
            math.exp(h * l2) * x + _phi_h(l2, h) * b
        )


def integrate_plasma(
    pk: PlasmaPK,
    schedule: Schedule,
    agent: str,
    t_grid: Sequence[float] | np.ndarray,
    *,
    t_start: float = 0.0,
) -> np.ndarray:
    """Plasma concentration of `agent` at the times `t_grid`, from a drug-free start.

    Steps exactly from event to event (each step has a constant infusion rate, taken
    at its left end, and `PlasmaPK.advance` is exact), so the only error is round-off.
    A bolus at time t is applied before the value at t is reported: the value at a
    dose time is the one just after the dose (the peak).

    Args:
        pk: The agent's PK model.
        schedule: The expanded dosing schedule (`expand_schedule`).
        agent: Which agent of the schedule to follow.
        t_grid: Report times, non-decreasing, all >= t_start.
        t_start: Time of the drug-free initial state.

    Returns:
        Plasma (central) concentrations, shape (len(t_grid),), float64.
    """
    grid = np.asarray(t_grid, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0:
        return np.zeros(grid.shape if grid.ndim else (0,))
    if np.any(np.diff(grid) < 0) or grid[0] < t_start:
        raise ValueError(f"t_grid must be non-decreasing and >= t_start={t_start:g}")
    t_last = float(grid[-1])
    events = {t for t in schedule.event_times() if t_start <= t <= t_last}
    state = pk.initial_state()
    t = t_start
    values: dict[float, float] = {}
    for s in sorted(events | {float(v) for v in grid} | {t_start}):
        if s > t:
            state = pk.advance(state, schedule.infusion_rate(agent, t), s - t)
            t = s
        if s in events:
            state = pk.apply_bolus(state, schedule.boluses_at(agent, s))
        values[s] = pk.concentration(state)
    return np.array([values[float(v)] for v in grid])
