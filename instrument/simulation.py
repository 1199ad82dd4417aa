"""Built-in simulated instruments for stations (or runs) that have no hardware.

The simulators serve real endpoints (a pty, a TCP port), so the run talks to them through
the same transports and drivers as to real instruments.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from instrument.errors import RunError
from protocols.model import ChannelSpec, TemProtocol


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
    from simulators.faults import FaultPlan
    from simulators.tem4 import Tem4Simulator

    try:
        plan = FaultPlan.parse(faults) if faults else None
    except ValueError as exc:
        raise RunError(f"--faults: {exc}") from None
    sim = Tem4Simulator(
        tem_samples(channels),
        seed=seed,
        speed=speed,
        faults=plan,
        rate_hz=protocol.sample_rate_hz,
    )
    sim.start()
    return sim
