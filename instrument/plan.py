"""Compile a protocol into a list of steps the run engine executes.

A plan is plain data, so it can be listed (``hemocompat run --dry-run``), timed and tested
without instruments, in the spirit of bluesky plans.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from protocols.model import ChannelSpec, LoopProtocol, TemProtocol

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


#: Protocol seconds allowed for the bath to pass its equilibration gate.
BATH_TIMEOUT_S = 3600.0


def compile_loop_plan(protocol: LoopProtocol, resolved: Sequence[ChannelSpec]) -> list[Step]:
    """The steps of a Chandler-loop run, in order."""
    bath, loops, sampling = protocol.bath, protocol.loops, protocol.sampling
    numbers = [c.channel for c in resolved]
    per_loop = ", ".join(f"{c.channel}: {c.label}" for c in resolved)
    times = ", ".join(f"{t / 60:g}" for t in sampling.times_s)
    return [
        Step("connect", "bath", "Connect to the water bath and read its identity"),
        Step("connect", "loop", "Connect to the loop rotator and read its identity"),
        Step(
            "set_bath",
            "bath",
            f"Set the bath to {bath.setpoint_c:.2f} °C and start circulation",
            args={"celsius": bath.setpoint_c},
        ),
        Step(
            "wait_bath",
            "bath",
            f"Wait until the bath has been within ±{bath.tolerance_c:g} °C of "
            f"{bath.setpoint_c:.2f} °C for {bath.equilibration_s:g} s",
            expected_s=bath.equilibration_s,
            args={
                "celsius": bath.setpoint_c,
                "tolerance": bath.tolerance_c,
                "hold_s": bath.equilibration_s,
                "timeout_s": BATH_TIMEOUT_S,
            },
        ),
        Step(
            "prompt",
            "loop",
            "Operator fills and mounts the loops",
            args={
                "message": (
                    f"Fill loops {', '.join(map(str, numbers))} with {loops.volume_ml:g} mL of "
                    f"blood ({loops.heparin_iu_per_ml:g} IU/mL heparin, {loops.tubing}) and add "
                    f"the contents ({per_loop}); mount them on the rotor, then acknowledge"
                )
            },
        ),
        Step("set_rpm", "loop", f"Set rotation to {loops.rpm} rpm", args={"rpm": loops.rpm}),
        Step("start_rotation", "loop", "Start rotation (time zero)"),
        Step(
            "acquire",
            "loop",
            f"Record loops {', '.join(map(str, numbers))} for {protocol.duration_s / 60:g} min; "
            f"draw {sampling.volume_ml:g} mL into {sampling.tube} at {times} min",
            expected_s=protocol.duration_s,
            args={"duration_s": protocol.duration_s, "channels": numbers},
        ),
        Step("stop_rotation", "loop", "Stop rotation (the bath keeps running)"),
        Step("analyse", "loop", "Compute loop clotting times and platelet consumption"),
    ]
