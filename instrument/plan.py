"""Compile a protocol into a list of steps the run engine executes.

A plan is plain data, so it can be listed (``hemocompat run --dry-run``), timed and tested
without instruments, in the spirit of bluesky plans.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from protocols.model import ChannelSpec, TemProtocol

#: Protocol seconds assumed for reaching the setpoint when estimating a run's duration.
TEMPERATURE_SETTLE_ESTIMATE_S = 30.0
#: Protocol seconds allowed for reaching the setpoint before the run fails.
TEMPERATURE_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class Step:
    """One action of a run: what, on which instrument role, with which arguments."""

    kind: str
    role: str
    description: str
    expected_s: float = 0.0
    args: dict[str, Any] = field(default_factory=dict)


def compile_plan(
    protocol: TemProtocol, resolved: Sequence[ChannelSpec] | None = None
) -> list[Step]:
    """The steps of a thromboelastometry run, in order (``resolved``: channels with IDs)."""
    specs = list(resolved) if resolved is not None else list(protocol.channels)
    channels = [c.channel for c in specs]
    steps = [
        Step("connect", "tem", "Connect to the thromboelastometer and read its identity"),
        Step(
            "set_temperature",
            "tem",
            f"Set the cup temperature to {protocol.temperature_c:.2f} °C",
            args={"celsius": protocol.temperature_c},
        ),
        Step(
            "wait_temperature",
            "tem",
            f"Wait until the cups are within ±{protocol.temperature_tolerance_c:g} °C "
            f"of {protocol.temperature_c:.2f} °C",
            expected_s=TEMPERATURE_SETTLE_ESTIMATE_S,
            args={
                "celsius": protocol.temperature_c,
                "tolerance": protocol.temperature_tolerance_c,
                "timeout_s": TEMPERATURE_TIMEOUT_S,
            },
        ),
    ]
    if protocol.equilibration_s > 0:
        steps.append(
            Step(
                "equilibrate",
                "tem",
                f"Equilibrate at temperature for {protocol.equilibration_s:g} s",
                expected_s=float(protocol.equilibration_s),
                args={"seconds": float(protocol.equilibration_s)},
            )
        )
    steps.append(
        Step(
            "set_rate",
            "tem",
            f"Set the sample rate to {protocol.sample_rate_hz} Hz",
            args={"hz": protocol.sample_rate_hz},
        )
    )
    for spec in specs:
        steps.append(
            Step(
                "start_channel",
                "tem",
                f"Start channel {spec.channel} ({protocol.reagent}): {spec.label}",
                args={"channel": spec.channel, "assay": protocol.reagent},
            )
        )
    steps.append(
        Step(
            "acquire",
            "tem",
            f"Record channels {', '.join(map(str, channels))} for "
            f"{protocol.duration_s / 60:g} min at {protocol.sample_rate_hz} Hz",
            expected_s=protocol.duration_s,
            args={"duration_s": protocol.duration_s, "channels": channels},
        )
    )
    for ch in channels:
        steps.append(Step("stop_channel", "tem", f"Stop channel {ch}", args={"channel": ch}))
    steps.append(
        Step(
            "analyse", "tem", "Compute clot parameters and store them", args={"channels": channels}
        )
    )
    return steps


def expected_duration_s(steps: list[Step]) -> float:
    return sum(s.expected_s for s in steps)
