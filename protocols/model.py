"""Typed, immutable protocols as the rest of the application sees them after validation."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal, TypeAlias

from protocols.plate import LayoutOrder, block_wells

#: Protocol file formats this version of the software reads.
SUPPORTED_FORMATS: tuple[int, ...] = (1,)

#: Assays a protocol file can describe (the `assay` key).
ASSAYS: tuple[str, ...] = ("thromboelastometry", "chandler-loop", "elisa")

#: Reagent names as the TEM-4 thromboelastometer understands them on the wire (`CH<n>:START`).
TEM_REAGENTS: tuple[str, ...] = ("NATEM", "EXTEM", "INTEM", "FIBTEM", "HEPTEM", "TEGN", "TEGK")

#: Parameter naming conventions: ROTEM (CT, CFT, MCF, ...) or TEG (R, K, MA, ...).
TEM_STYLES: tuple[str, ...] = ("rotem", "teg")

#: Instrument roles of a thromboelastometry protocol and the models that can fill each role.
TEM_INSTRUMENT_MODELS: Mapping[str, tuple[str, ...]] = {"tem": ("TEM-4",)}

#: Channel numbers of the TEM-4.
TEM_CHANNEL_NUMBERS: tuple[int, ...] = (1, 2, 3, 4)

#: Instrument roles of a Chandler loop protocol and the models that can fill each role.
LOOP_INSTRUMENT_MODELS: Mapping[str, tuple[str, ...]] = {"bath": ("JULABO",), "loop": ("LOOP-8",)}

#: Loop numbers of the LOOP-8 rotator.
LOOP_NUMBERS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)

#: Anticoagulant tubes that blood drawn from a loop goes into.
LOOP_SAMPLE_TUBES: tuple[str, ...] = ("EDTA", "citrate")

#: Instrument roles of an ELISA protocol and the models that can fill each role.
ELISA_INSTRUMENT_MODELS: Mapping[str, tuple[str, ...]] = {"reader": ("ABS-96",)}

#: Standard-curve models: four- or five-parameter logistic.
ELISA_CURVE_MODELS: tuple[str, ...] = ("4PL", "5PL")

ChannelContents: TypeAlias = Literal["vehicle", "lot"]
TemStyle: TypeAlias = Literal["rotem", "teg"]
SampleTube: TypeAlias = Literal["EDTA", "citrate"]
CurveModel: TypeAlias = Literal["4PL", "5PL"]


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
        return _resolve_channels(self.id, "channel", self.channels, self.samples, lot, donor)


def _resolve_channels(
    protocol_id: str,
    noun: str,
    channels: tuple[ChannelSpec, ...],
    samples: SampleDefaults,
    lot: str | None,
    donor: str | None,
) -> tuple[ChannelSpec, ...]:
    """Fill in lot and donor IDs: per-channel IDs, else the run's, else the protocol defaults."""
    run_lot = lot if lot is not None else samples.lot_id
    run_donor = donor if donor is not None else samples.donor_id
    resolved: list[ChannelSpec] = []
    for spec in channels:
        lot_id = spec.lot_id
        if spec.contents == "lot" and lot_id is None:
            if run_lot is None:
                raise ValueError(
                    f"{noun} {spec.channel} holds the lot but protocol {protocol_id!r} names "
                    "no default lot: give the lot ID for this run"
                )
            lot_id = run_lot
        donor_id = spec.donor_id if spec.donor_id is not None else run_donor
        resolved.append(replace(spec, lot_id=lot_id, donor_id=donor_id))
    return tuple(resolved)


@dataclass(frozen=True)
class BathSettings:
    """Water-bath temperature the loops rotate in, its accepted band and the gate before start."""

    setpoint_c: float
    tolerance_c: float = 0.5
    equilibration_s: float = 0.0


@dataclass(frozen=True)
class LoopSettings:
    """How each loop is filled and turned: blood volume, tubing, rotation speed, heparin."""

    volume_ml: float
    tubing: str
    rpm: int
    heparin_iu_per_ml: float


@dataclass(frozen=True)
class SamplingPlan:
    """When blood is drawn from which loops, into which tube and how much each time.

    `times_s` are seconds after the loops start; `loops` lists the sampled loop numbers in
    ascending order. A prompt not acknowledged within `overdue_after_s` is flagged overdue.
    """

    times_s: tuple[float, ...]
    tube: SampleTube
    volume_ml: float
    overdue_after_s: float
    loops: tuple[int, ...]


@dataclass(frozen=True)
class ClotDetection:
    """A loop has clotted once its motion signal stays below the threshold for hold_s."""

    threshold_permille: int = 300
    hold_s: float = 30.0


@dataclass(frozen=True)
class LoopProtocol:
    """A validated Chandler loop protocol, with the exact file text and its hash.

    `channels` holds one entry per loop used; `ChannelSpec.channel` is the loop number.
    """

    format: int
    id: str
    version: int
    title: str
    description: str
    assay: Literal["chandler-loop"]
    instruments: Mapping[str, str]
    bath: BathSettings
    loops: LoopSettings
    duration_s: float
    sample_rate_hz: int
    samples: SampleDefaults
    channels: tuple[ChannelSpec, ...]
    sampling: SamplingPlan
    clot_detection: ClotDetection
    text: str
    sha256: str
    source: str

    @property
    def expected_duration_s(self) -> float:
        """Time in the bath's band plus rotating time (heating the bath up is not included)."""
        return self.bath.equilibration_s + self.duration_s

    def resolved_channels(
        self, lot: str | None = None, donor: str | None = None
    ) -> tuple[ChannelSpec, ...]:
        """Loops with lot and donor IDs filled in: per-loop IDs, else run-time, else defaults.

        Raises ValueError when a lot loop ends up with no lot ID at all.
        """
        return _resolve_channels(self.id, "loop", self.channels, self.samples, lot, donor)


@dataclass(frozen=True)
class KitInfo:
    """The ELISA kit a method is written for."""

    name: str
    lot: str | None = None
    expires: datetime.date | None = None


@dataclass(frozen=True)
class StandardLevel:
    """A calibrator level: nominal concentration (µg/L) in its replicate wells."""

    conc_ug_per_l: float
    wells: tuple[str, ...]


@dataclass(frozen=True)
class ControlSpec:
    """A control and the range (µg/L) its measured concentration must fall in."""

    name: str
    low_ug_per_l: float
    high_ug_per_l: float
    wells: tuple[str, ...]


@dataclass(frozen=True)
class SampleWells:
    """A test sample in its replicate wells, read at a dilution (1:10 → 10)."""

    sample_id: str
    wells: tuple[str, ...]
    dilution: float


@dataclass(frozen=True)
class SampleLayout:
    """Where samples named at run time go: a block of wells filled in order, skipping used ones."""

    first_well: str
    last_well: str
    replicates: int
    dilution: float
    order: LayoutOrder = "row"

    @property
    def wells(self) -> tuple[str, ...]:
        """Every well of the block, in fill order (used or not)."""
        return block_wells(self.first_well, self.last_well, self.order)


@dataclass(frozen=True)
class ElisaQc:
    """Acceptance criteria of a plate: standard back-calculation, replicate CV, curve fit."""

    backcalc_tolerance_pct: float = 20.0
    backcalc_tolerance_edge_pct: float = 25.0
    max_cv_pct: float = 15.0
    min_r_squared: float = 0.98


@dataclass(frozen=True)
class ElisaProtocol:
    """A validated plate ELISA protocol (plate map, wavelengths, curve model, QC), with its text.

    `duration_s` is the time the reader needs for the plate.
    """

    format: int
    id: str
    version: int
    title: str
    description: str
    assay: Literal["elisa"]
    instruments: Mapping[str, str]
    kit: KitInfo
    signal_nm: int
    reference_nm: int | None
    model: CurveModel
    standards: tuple[StandardLevel, ...]
    blanks: tuple[str, ...]
    controls: tuple[ControlSpec, ...]
    samples: tuple[SampleWells, ...]
    sample_layout: SampleLayout | None
    qc: ElisaQc
    duration_s: float
    text: str
    sha256: str
    source: str

    @property
    def expected_duration_s(self) -> float:
        """Reading time of the plate."""
        return self.duration_s

    @property
    def used_wells(self) -> frozenset[str]:
        """Wells the protocol itself fills: standards, blanks, controls and explicit samples."""
        groups = (self.standards, self.controls, self.samples)
        used = {well for group in groups for entry in group for well in entry.wells}
        return frozenset(used | set(self.blanks))

    @property
    def free_layout_wells(self) -> tuple[str, ...]:
        """Wells of sample_layout still free for run-time samples, in fill order."""
        if self.sample_layout is None:
            return ()
        used = self.used_wells
        return tuple(well for well in self.sample_layout.wells if well not in used)

    def layout_samples(self, sample_ids: Sequence[str]) -> tuple[SampleWells, ...]:
        """The explicit samples, then each other sample ID in sample_layout's free wells.

        IDs that the protocol already places under `samples` keep their wells. Raises
        ValueError for empty or repeated IDs, and when the plate has no room for all samples.
        """
        seen: set[str] = set()
        for sample_id in sample_ids:
            if not sample_id.strip():
                raise ValueError("a sample ID is empty")
            if sample_id in seen:
                raise ValueError(f"sample {sample_id} is listed twice; each sample goes once")
            seen.add(sample_id)
        placed = {s.sample_id for s in self.samples}
        pending = [sample_id for sample_id in sample_ids if sample_id not in placed]
        if not pending:
            return self.samples
        layout = self.sample_layout
        if layout is None:
            raise ValueError(
                f"protocol {self.id!r} has no sample_layout, so samples "
                f"{', '.join(pending)} have no wells: add them under `samples:` or add a "
                "sample_layout to the protocol"
            )
        free = self.free_layout_wells
        need = len(pending) * layout.replicates
        if need > len(free):
            fits = len(free) // layout.replicates
            raise ValueError(
                f"{len(pending)} sample{'s' if len(pending) != 1 else ''} × "
                f"{layout.replicates} replicate{'s' if layout.replicates != 1 else ''} need "
                f"{need} wells; the layout {layout.first_well}–{layout.last_well} has "
                f"{len(free)} free (protocol {self.id!r}): run at most {fits} sample"
                f"{'s' if fits != 1 else ''} on this plate"
            )
        placed_now = tuple(
            SampleWells(
                sample_id=sample_id,
                wells=free[i * layout.replicates : (i + 1) * layout.replicates],
                dilution=layout.dilution,
            )
            for i, sample_id in enumerate(pending)
        )
        return self.samples + placed_now


#: Any protocol the loader can return; `assay` tells them apart.
Protocol: TypeAlias = TemProtocol | LoopProtocol | ElisaProtocol
