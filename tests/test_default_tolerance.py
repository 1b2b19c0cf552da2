"""The default settings against a converged reference on a shipped arm: the stated
tolerance (solver/bench/accuracy.py) holds on the hardest arm's fields, not only its burden.

Its own file so that the parallel test workers can run it beside tests/test_treatment_arms.py.
"""

from __future__ import annotations

import pytest
from test_treatment_arms import coarse

from solver.bench.accuracy import compare_runs, within_tolerance
from solver.run import Simulation


@pytest.fixture(scope="module")
def combination_against_reference():
    """The combination arm over its first 8 days (doxorubicin on days 0 and 7, TIL and
    IL-2 from day 7) with its default settings (imex order 2, rtol 0.05, float32) stepped
    beside a converged reference (float64, rtol 5e-3: 0.6 % or closer to one at 2e-3),
    compared at every record."""
    reference = Simulation(coarse("chemoimmuno", precision="float64", integrator="imex", order=2, rtol=5e-3,
                                  end=8.0))
    return compare_runs({"default": Simulation(coarse("chemoimmuno", end=8.0))}, reference)


def test_default_settings_are_within_the_stated_tolerance(combination_against_reference) -> None:
    # Every species' field, at every record, within FIELD_TOLERANCE (8 %) of its largest
    # value, and the burden within BURDEN_TOLERANCE (2.5 %). Measured on this grid over
    # 8 days against rtol 5e-3: L 4.7 % (the TIL infusion from day 7 and the CD8 cells
    # primed where the drug kills), N 2.4 %, K 2.2 %, T 0.76 %, I 0.36 %, M 0.20 %, burden
    # 0.16 % (over 10 days: L 5.1 %, burden 0.13 %); this case is held to 6 % and 0.25 %,
    # so that a loss of accuracy here shows.
    comparison = combination_against_reference
    errors = comparison.errors["default"]
    assert within_tolerance(errors), errors
    assert errors["burden"] <= 0.0025 and max(errors.values()) <= 0.06, errors
    assert errors["I"] > 1e-4 and errors["M"] > 1e-4  # the drugs were given: the comparison saw them
    # the reference took far smaller steps than the defaults: it is a reference
    assert comparison.reference.steps > 3 * comparison.costs["default"].steps
