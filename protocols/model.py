"""Typed, immutable protocols as the rest of the application sees them after validation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal, TypeAlias

#: Protocol file formats this version of the software reads.
SUPPORTED_FORMATS: tuple[int, ...] = (1,)

#: Assays a protocol file can describe (the `assay` key).
ASSAYS: tuple[str, ...] = ("thromboelastometry",)

#: Reagent names as the TEM-4 thromboelastometer understands them on the wire (`CH<n>:START`).
TEM_REAGENTS: tuple[str, ...] = ("NATEM", "EXTEM", "INTEM", "FIBTEM", "HEPTEM", "TEGN", "TEGK")

#: Parameter naming conventions: ROTEM (CT, CFT, MCF, ...) or TEG (R, K, MA, ...).
TEM_STYLES: tuple[str, ...] = ("rotem", "teg")

#: Instrument roles of a thromboelastometry protocol and the models that can fill each role.
TEM_INSTRUMENT_MODELS: Mapping[str, tuple[str, ...]] = {"tem": ("TEM-4",)}

#: Channel numbers of the TEM-4.
TEM_CHANNEL_NUMBERS: tuple[int, ...] = (1, 2, 3, 4)

ChannelContents: TypeAlias = Literal["vehicle", "lot"]
TemStyle: TypeAlias = Literal["rotem", "teg"]


@dataclass(frozen=True)
class ChannelSpec:
    """What one measuring channel holds: the vehicle control, or the lot at a dose."""

    channel: int
    contents: ChannelContents
    dose_cells_per_ml: float
    lot_id: str | None = None
    donor_id: str | None = None

    @property
    def label(self) -> str:
        """Short human label, e.g. "vehicle" or "VL-UC-01 @ 1.0e+04 cells/mL"."""
        if self.contents == "vehicle":
            return "vehicle"
        lot = self.lot_id if self.lot_id is not None else "lot"
        return f"{lot} @ {self.dose_cells_per_ml:.1e} cells/mL"


@dataclass(frozen=True)
class SampleDefaults:
    """The lot under test and the blood donor used unless a channel or the run says otherwise."""

    lot_id: str | None
    donor_id: str


@dataclass(frozen=True)
class TemAnalysisSettings:
    """Thresholds and time points for deriving TEM parameters from an amplitude trace."""

    ct_threshold_mm: float = 2.0
    cft_threshold_mm: float = 20.0
    amplitude_times_min: tuple[float, ...] = (5.0, 10.0, 20.0)
    lysis_index_time_min: float = 30.0
    alpha_chart_mm_per_min: float = 2.0


@dataclass(frozen=True)
class TemProtocol:
    """A validated thromboelastometry protocol, with the exact file text and its hash."""

    format: int
    id: str
    version: int
    title: str
    description: str
    assay: Literal["thromboelastometry"]
    reagent: str
    style: TemStyle
    instruments: Mapping[str, str]
    temperature_c: float
    temperature_tolerance_c: float
    equilibration_s: float
    duration_s: float
    sample_rate_hz: int
    samples: SampleDefaults
    channels: tuple[ChannelSpec, ...]
    analysis: TemAnalysisSettings
    text: str
    sha256: str
    source: str

    @property
    def expected_duration_s(self) -> float:
        """Time at temperature plus measuring time (warming the instrument up is not included)."""
        return self.equilibration_s + self.duration_s

    def resolved_channels(
        self, lot: str | None = None, donor: str | None = None
    ) -> tuple[ChannelSpec, ...]:
        """Channels with lot and donor IDs filled in: per-channel IDs, else run-time, else defaults.

        Raises ValueError when a lot channel ends up with no lot ID at all.
        """
        run_lot = lot if lot is not None else self.samples.lot_id
        run_donor = donor if donor is not None else self.samples.donor_id
        resolved: list[ChannelSpec] = []
        for spec in self.channels:
            lot_id = spec.lot_id
            if spec.contents == "lot" and lot_id is None:
                if run_lot is None:
                    raise ValueError(
                        f"channel {spec.channel} holds the lot but protocol {self.id!r} names "
                        "no default lot: give the lot ID for this run"
                    )
                lot_id = run_lot
            donor_id = spec.donor_id if spec.donor_id is not None else run_donor
            resolved.append(replace(spec, lot_id=lot_id, donor_id=donor_id))
        return tuple(resolved)


#: Any protocol the loader can return (more assays join this union as formats grow).
Protocol: TypeAlias = TemProtocol
