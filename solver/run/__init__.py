"""A run: its plan, the resources it needs, its signals, its dry run and its loop.

Public API:
    Simulation, RunSummary, RunningState              (simulation.py)
    RunPlan, make_plan                                (plan.py)
    MemoryEstimate, estimate_memory, available_host_memory   (resources.py)
    StopRequest, stop_on_signals, signal_name         (signals.py)
    check_record, check_state                         (guard.py: systemic scalars, plasma, diagnostics)
    check_records, check_steps                        (sizes.py: the plan's limits)
    CheckpointClock                                   (clock.py)
    DryRunReport, dry_run                             (dry_run.py)
"""

from __future__ import annotations

from solver.run.dry_run import DryRunReport, dry_run
from solver.run.plan import RunPlan, make_plan
from solver.run.resources import MemoryEstimate, available_host_memory, estimate_memory
from solver.run.signals import StopRequest, signal_name, stop_on_signals
from solver.run.simulation import RunningState, RunSummary, Simulation

__all__ = [
    "DryRunReport", "MemoryEstimate", "RunPlan", "RunSummary", "RunningState", "Simulation", "StopRequest",
    "available_host_memory", "dry_run", "estimate_memory", "make_plan", "signal_name", "stop_on_signals",
]
