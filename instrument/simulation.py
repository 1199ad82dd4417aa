"""Built-in simulated instruments for stations (or runs) that have no hardware.

The simulators serve real endpoints (a pty, a TCP port), so the run talks to them through
the same transports and drivers as to real instruments.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from instrument.errors import RunError
from protocols.model import ChannelSpec, LoopProtocol, TemProtocol


def tem_samples(channels: Sequence[ChannelSpec]) -> dict[int, Any]:
    """The virtual sample in each cup: blood donor, MSC lot (or none) and dose."""
    from simulators.physiology import TemSample, UnknownVirtualSample, VirtualLab

    lab = VirtualLab.load()
    out: dict[int, Any] = {}
    for spec in channels:
        lot = spec.lot_id if spec.contents == "lot" else None
        donor = spec.donor_id or ""
        try:
            lab.donor(donor)
            if lot is not None:
                lab.lot(lot)
        except UnknownVirtualSample as exc:
            raise RunError(
                f"channel {spec.channel}: {exc.args[0] if exc.args else exc} — a simulated run "
                "needs virtual lots and donors (choose them with --lot and --donor)"
            ) from None
        out[spec.channel] = TemSample(
            donor_id=donor, lot_id=lot, dose_cells_per_ml=spec.dose_cells_per_ml if lot else 0.0
        )
    return out


def start_tem4_simulator(
    protocol: TemProtocol,
    channels: Sequence[ChannelSpec],
    seed: int,
    speed: float,
    faults: str | None,
) -> Any:
    """Start a TEM-4 simulator measuring the protocol's virtual samples; return it running."""
    from simulators.tem4 import Tem4Simulator

    sim = Tem4Simulator(
        tem_samples(channels),
        seed=seed,
        speed=speed,
        faults=_fault_plan(faults),
        rate_hz=protocol.sample_rate_hz,
    )
    sim.start()
    return sim


def start_bath_simulator(
    protocol: LoopProtocol,
    seed: int,
    speed: float,
) -> Any:
    """A pre-warmed simulated JULABO bath at the protocol's setpoint (as a lab keeps it)."""
    from simulators.julabo import BathModel, BathSimulator

    setpoint = protocol.bath.setpoint_c
    model = BathModel(setpoint_c=setpoint, temperature_c=setpoint, running=True, seed=seed)
    # A thermal model needs a finite clock; "max" speed runs the bath at a high fixed factor.
    sim = BathSimulator(model, speed=speed if math.isfinite(speed) else 1000.0, seed=seed)
    sim.start()
    return sim


def loop_samples(protocol: LoopProtocol, channels: Sequence[ChannelSpec]) -> dict[int, Any]:
    """The virtual blood in each loop: donor, MSC lot (or none), dose, heparin, volume."""
    from simulators.physiology import LoopSample

    tem_like = tem_samples(channels)  # validates the virtual lot and donor IDs
    return {
        ch: LoopSample(
            donor_id=s.donor_id,
            lot_id=s.lot_id,
            dose_cells_per_ml=s.dose_cells_per_ml,
            heparin_iu_per_ml=protocol.loops.heparin_iu_per_ml,
            volume_ml=protocol.loops.volume_ml,
        )
        for ch, s in tem_like.items()
    }


def start_loop8_simulator(
    protocol: LoopProtocol,
    channels: Sequence[ChannelSpec],
    seed: int,
    speed: float,
    faults: str | None,
) -> Any:
    """Start a LOOP-8 simulator whose loops hold the protocol's virtual blood and cells."""
    from simulators.loop8 import Loop8Simulator

    sim = Loop8Simulator(
        loop_samples(protocol, channels),
        seed=seed,
        speed=speed,
        faults=_fault_plan(faults),
        rate_hz=protocol.sample_rate_hz,
    )
    sim.start()
    return sim


def _fault_plan(faults: str | None) -> Any:
    from simulators.faults import FaultPlan

    try:
        return FaultPlan.parse(faults) if faults else None
    except ValueError as exc:
        raise RunError(f"--faults: {exc}") from None
