"""Systemic scalars advanced in lockstep with the grid, on the host.

Public API:
    SystemicRuntime(model, globals_evaluator=None, maps=None)
        .values(t, rate_time=t, fields=None) -> np.ndarray
                                       the scalars every kernel step receives, in
                                       model.systemic_names order (the model's globals
                                       reduced from `fields`, the stage's fields)
        .advance(t, h)                 plasma PK exactly, other systemic ODEs by RK4
        .apply_boluses(t)              doses given at exactly t
        .get_state() / .set_state()    for checkpoints

The step control lands on every dose start and stop (Schedule.event_times), so on
each step the infusion rates are constant: the linear plasma PK is advanced by its
exact solution (solver/systemic/pk.py), and the other systemic ODEs (e.g. dC/dt =
alpha - beta C - K_C (1 - e^-M) C) by classical RK4 with the plasma values at
t, t + h/2 and t + h taken from that exact solution. The grid step from t to t + h
sees the systemic values at t (forward Euler for the coupled system).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sympy as sp

from solver.model import TIME, Model


class SystemicRuntime:
    """Holds and advances the systemic state of one run."""

    def __init__(self, model: Model, globals_evaluator: Any = None, maps: Any = None) -> None:
        self.model = model
        self.globals_evaluator = globals_evaluator  # solver/integrators/globals.py, on the fields' backend
        self.maps = maps
        self.schedule = model.schedule
        self.y = np.array([v.initial for v in model.systemic], dtype=np.float64)
        self.pk_state = {a.name: a.pk.initial_state() for a in model.agents if a.pk is not None}
        args = [TIME, *(sp.Symbol(v.name, real=True) for v in model.systemic),
                *(sp.Symbol(a.name, real=True) for a in model.agents)]
        self._rhs = sp.lambdify(args, [v.rate for v in model.systemic], modules="math") if model.systemic else None

    def _rate(self, agent: str, t: float) -> float:
        return self.schedule.infusion_rate(agent, t) if self.schedule is not None else 0.0

    def _agent_values(self, t: float, states: dict[str, np.ndarray], rate_time: float) -> list[float]:
        out = []
        for a in self.model.agents:
            if a.pk is not None:
                out.append(a.pk.concentration(states[a.name]))
            else:
                out.append(self._rate(a.name, rate_time))
        return out

    def values(self, t: float, rate_time: float | None = None, fields: Any = None) -> np.ndarray:
        """Systemic ODE values, each agent's plasma concentration (or infusion rate), then
        the model's globals, at t.

        `rate_time`: when the infusion rates are looked up (default t); the end of a step
        ending on a dose stop uses its start, the rate it was stepped with. `fields`: the
        fields the globals are reduced from (needed when the model has globals).
        """
        rate_time = t if rate_time is None else rate_time
        base = [*self.y, *self._agent_values(t, self.pk_state, rate_time)]
        if self.model.globals:
            if fields is None or self.globals_evaluator is None:
                raise RuntimeError("this model's globals are reduced from the fields: pass fields= "
                                   "(and give SystemicRuntime a GlobalsEvaluator)")
            base += self.globals_evaluator.values(fields, self.maps, t, base)
        return np.array(base, dtype=np.float64)

    def apply_boluses(self, t: float) -> None:
        """Give every bolus scheduled at exactly t (value reported at t is the one after it)."""
        if self.schedule is None:
            return
        for a in self.model.agents:
            amount = self.schedule.boluses_at(a.name, t)
            if amount and a.pk is not None:
                self.pk_state[a.name] = a.pk.apply_bolus(self.pk_state[a.name], amount)

    def _pk_after(self, t: float, h: float) -> dict[str, np.ndarray]:
        return {
            a.name: a.pk.advance(self.pk_state[a.name], self._rate(a.name, t), h)
            for a in self.model.agents
            if a.pk is not None
        }

    def advance(self, t: float, h: float) -> None:
        """From t to t + h; the infusion rates are those on [t, t + h)."""
        if not self.model.agents and not self.model.systemic:
            return
        end = self._pk_after(t, h)
        if self._rhs is not None:
            mid = self._pk_after(t, h / 2)
            a0 = self._agent_values(t, self.pk_state, t)
            a_mid = self._agent_values(t + h / 2, mid, t)
            a1 = self._agent_values(t + h, end, t)
            f = self._rhs
            y = self.y
            k1 = np.asarray(f(t, *y, *a0))
            k2 = np.asarray(f(t + h / 2, *(y + h / 2 * k1), *a_mid))
            k3 = np.asarray(f(t + h / 2, *(y + h / 2 * k2), *a_mid))
            k4 = np.asarray(f(t + h, *(y + h * k3), *a1))
            self.y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        self.pk_state = end

    def get_state(self) -> dict[str, Any]:
        """Copies of everything that evolves: {"y": systemic ODE values, "pk": {agent: compartments}}.

        The schedule has no state of its own: doses are looked up by time, and a run
        resumed at t gives only the boluses after t (those at t are in this state).
        """
        return {"y": self.y.copy(), "pk": {k: v.copy() for k, v in self.pk_state.items()}}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what get_state() returned (float64, bit for bit).

        Raises:
            ValueError: the state has other systemic variables or agents than this model.
        """
        y = np.array(state["y"], dtype=np.float64)
        pk = {k: np.array(v, dtype=np.float64) for k, v in state["pk"].items()}
        if y.shape != self.y.shape or set(pk) != set(self.pk_state) or any(
            pk[k].shape != v.shape for k, v in self.pk_state.items()
        ):
            raise ValueError(
                f"systemic state for {y.size} variables and agents {sorted(pk)} does not fit this "
                f"model ({self.y.size} variables, agents {sorted(self.pk_state)})"
            )
        self.y = y
        self.pk_state = pk
