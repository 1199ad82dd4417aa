"""The virtual lab: simulated blood donors, MSC lots, the thromboelastometry trace model and
the whole-blood (Chandler) loop model.

Everything here produces SIMULATED data for testing the software, not predictions about real
cells or blood. Parameters and their sources live in ``simulators/data/virtual_lab.yaml``;
the model is described in docs/virtual-lab.md. Results are deterministic for a seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "CLOT_MOTION_PERMILLE",
    "AssayParameters",
    "CoagulabilityState",
    "Donor",
    "Loop8InstrumentParameters",
    "LoopCoagulability",
    "LoopModelParameters",
    "LoopSample",
    "LoopTruth",
    "MscLot",
    "Tem4InstrumentParameters",
    "TemSample",
    "TemTruth",
    "UnknownVirtualSample",
    "VirtualLab",
    "VirtualLabError",
    "ground_truth_parameters",
    "loop_truth",
    "tem_truth",
]

#: Amplitudes that define CT (first A >= 2 mm) and CFT (time from 2 mm to 20 mm).
CT_AMPLITUDE_MM = 2.0
CFT_AMPLITUDE_MM = 20.0
#: Below this MCF the kinetics are set by reaching 20/21 of MCF at CT + CFT (see docs).
_MCF_FULL_KINETICS_MM = 21.0
#: The trace stays flat for at least this fraction of CT before it starts rising.
_MIN_FLAT_FRACTION = 0.25
_MIN_SHAPE_N = 0.3
#: Stream identifiers mixed into the seed so truth draws and noise draws never overlap.
TRUTH_STREAM = 0x7E4A
NOISE_STREAM = 0x9015
LOOP_TRUTH_STREAM = 0x100B
#: A loop's ground-truth clot time is when its noise-free motion signal falls to this level.
CLOT_MOTION_PERMILLE = 300.0
_FREE_MOTION_PERMILLE = 1000.0

_FORMAT = "hemocompat-virtual-lab/1"
_DEFAULT_FILE = "virtual_lab.yaml"


class VirtualLabError(ValueError):
    """The virtual-lab data file is missing, unreadable or has a bad value."""

    def __init__(self, file: str, key: str, problem: str, line: int | None = None) -> None:
        where = f"{file}:{line}" if line is not None else file
        self.file, self.key, self.problem, self.line = file, key, problem, line
        super().__init__(
            f"{where}: {key}: {problem} (fix the value in the virtual-lab file; "
            "its format is described in docs/virtual-lab.md)"
        )


class UnknownVirtualSample(KeyError):  # noqa: N818 - the name says what it is to a user
    """A donor or lot ID that the virtual lab does not know."""

    def __init__(self, kind: str, requested: str, known: list[str]) -> None:
        self.kind, self.requested, self.known = kind, requested, known
        self.message = (
            f"unknown virtual {kind} {requested!r}; the virtual lab knows: {', '.join(known)}"
        )
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


# --------------------------------------------------------------------------- data classes


@dataclass(frozen=True, slots=True)
class AssayParameters:
    """Healthy reference ranges and response parameters of one thromboelastometry assay."""

    name: str
    description: str
    ct_range_s: tuple[float, float]
    cft_range_s: tuple[float, float]
    mcf_range_mm: tuple[float, float]
    ml60_fraction: float
    lysis_onset_min_after_ct: float
    ct_slope_s_per_decade: float
    load_ref_tfu_per_ml: float
    ct_min_s: float
    cft_fraction_per_decade: float
    cft_min_factor: float
    mcf_mm_per_decade: float
    mcf_max_mm: float
    heparin_ct_factor_per_iu_ml: float
    shape_n: float


@dataclass(frozen=True, slots=True)
class CoagulabilityState:
    """Multipliers a coagulability state applies to a donor's healthy baseline."""

    name: str
    ct_factor: float
    cft_factor: float
    mcf_factor: float
    lysis_factor: float


@dataclass(frozen=True, slots=True)
class Donor:
    """A virtual blood donor (SIMULATED)."""

    id: str
    description: str
    coagulability: str
    platelets_e9_per_l: float
    tat_ug_per_l: float
    heparin_iu_per_ml: float
    ct_position: float
    cft_position: float
    mcf_position: float


@dataclass(frozen=True, slots=True)
class MscLot:
    """A virtual MSC lot (SIMULATED); ``tf_per_cell_tfu`` is in arbitrary TF units per cell."""

    id: str
    description: str
    tissue_source: str
    passage: int
    cd142_positive_pct: float
    cd142_mfi_relative: float
    tf_per_cell_tfu: float
    viability_pct: float


@dataclass(frozen=True, slots=True)
class Tem4InstrumentParameters:
    """Behaviour of the simulated TEM-4 that is not physiology (noise, cup temperature)."""

    amplitude_noise_sd_mm: float
    initial_cup_temperature_c: float
    default_setpoint_c: float
    cup_time_constant_s: float
    reading_offset_c: float
    over_temperature_c: float


@dataclass(frozen=True, slots=True)
class LoopCoagulability:
    """Multipliers a coagulability state applies in the loop model."""

    name: str
    threshold_factor: float
    clot_time_factor: float


@dataclass(frozen=True, slots=True)
class LoopModelParameters:
    """Parameters of the whole-blood (Chandler) loop model; see docs/virtual-lab.md."""

    threshold_load_tfu_per_ml: float
    heparin_threshold_factor_per_iu_ml: float
    contact_load_tfu_per_ml: float
    reference_volume_ml: float
    clot_time_min_s: float
    clot_time_scale_s: float
    horizon_s: float
    threshold_log_sd: float
    clot_time_cv: float
    motion_floor_permille: float
    motion_fall_10_90_s: float
    drift_permille_per_ug_per_l_tat: float
    max_drift_permille: float
    tat_pre_clot_ug_per_l_at_1h: float
    tat_burst_ug_per_l: float
    tat_burst_lead_s: float
    tat_burst_width_s: float
    platelet_consumption_fraction_per_h: float
    platelet_max_pre_clot_fraction: float
    platelet_residual_fraction: float
    coagulability: Mapping[str, LoopCoagulability]


@dataclass(frozen=True, slots=True)
class Loop8InstrumentParameters:
    """Behaviour of the simulated LOOP-8 that is not physiology (noise, housing temperature)."""

    motion_noise_sd_permille: float
    housing_temperature_c: float
    over_temperature_c: float


@dataclass(frozen=True, slots=True)
class VirtualLab:
    """All virtual-lab parameters, loaded from one documented data file."""

    source: str
    assays: Mapping[str, AssayParameters]
    coagulability: Mapping[str, CoagulabilityState]
    donors: Mapping[str, Donor]
    lots: Mapping[str, MscLot]
    cv_ct: float
    cv_cft: float
    cv_mcf: float
    tfu_per_positive_cell_at_mfi_1: float
    tem4: Tem4InstrumentParameters
    references: Mapping[str, str] = field(default_factory=dict)
    loop: LoopModelParameters | None = None
    loop8: Loop8InstrumentParameters | None = None

    @classmethod
    def load(cls, path: str | Path | None = None) -> VirtualLab:
        """Load and check a virtual-lab file (default: the packaged ``virtual_lab.yaml``)."""
        if path is None:
            ref = resources.files("simulators").joinpath("data", _DEFAULT_FILE)
            name = f"simulators/data/{_DEFAULT_FILE}"
            text = ref.read_text(encoding="utf-8")
        else:
            name = str(path)
            try:
                text = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise VirtualLabError(name, "(file)", f"cannot read the file: {exc}") from None
        return _parse_lab(text, name)

    def donor(self, donor_id: str) -> Donor:
        """The donor with this ID; raises UnknownVirtualSample listing the known IDs."""
        try:
            return self.donors[donor_id]
        except KeyError:
            raise UnknownVirtualSample("donor", donor_id, sorted(self.donors)) from None

    def lot(self, lot_id: str) -> MscLot:
        """The MSC lot with this ID; raises UnknownVirtualSample listing the known IDs."""
        try:
            return self.lots[lot_id]
        except KeyError:
            raise UnknownVirtualSample("lot", lot_id, sorted(self.lots)) from None

    def loop_model(self) -> LoopModelParameters:
        """The loop-model parameters; VirtualLabError if the file has no ``loop`` section."""
        if self.loop is None:
            raise VirtualLabError(
                self.source,
                "loop",
                "the whole-blood loop model section is missing; copy it from the packaged "
                "simulators/data/virtual_lab.yaml",
            )
        return self.loop

    def loop8_instrument(self) -> Loop8InstrumentParameters:
        """The simulated LOOP-8's parameters; VirtualLabError if the file has none."""
        if self.loop8 is None:
            raise VirtualLabError(
                self.source,
                "instrument.loop8",
                "the LOOP-8 instrument section is missing; copy it from the packaged "
                "simulators/data/virtual_lab.yaml",
            )
        return self.loop8

    def assay(self, name: str) -> AssayParameters:
        """The parameters of an assay by its wire name (case-insensitive)."""
        try:
            return self.assays[name.upper()]
        except KeyError:
            raise ValueError(
                f"unknown assay {name!r}; the virtual lab knows: {', '.join(self.assays)}"
            ) from None


@dataclass(frozen=True, slots=True)
class TemSample:
    """What is in a cup: blood of a donor, optionally spiked with cells of a lot at a dose.

    ``lot_id=None`` or ``dose_cells_per_ml=0`` is the vehicle control.
    """

    donor_id: str
    lot_id: str | None = None
    dose_cells_per_ml: float = 0.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.dose_cells_per_ml) or self.dose_cells_per_ml < 0:
            raise ValueError(
                f"dose_cells_per_ml must be a finite number >= 0, got {self.dose_cells_per_ml!r}"
            )

    @property
    def is_vehicle(self) -> bool:
        return self.lot_id is None or self.dose_cells_per_ml == 0


@dataclass(frozen=True, slots=True)
class TemTruth:
    """The noiseless clot-firmness curve behind one simulated TEM channel run.

    ``cft_s`` is None when the curve never reaches 20 mm (MCF <= 20 mm). ``alpha_deg`` uses the
    TEG chart convention: tan(alpha) = slope at 2 mm in mm/min divided by 2 mm/min.
    ``mcf_mm`` is the lysis-free asymptote; the observed maximum is slightly lower once lysis
    starts (see :func:`ground_truth_parameters`).
    """

    assay: str
    ct_s: float
    cft_s: float | None
    mcf_mm: float
    alpha_deg: float
    lysis_onset_s: float
    ml60_fraction: float
    t0_s: float
    k_per_s: float
    shape_n: float
    tf_load_tfu_per_ml: float

    def amplitude_mm(self, t_s: ArrayLike) -> NDArray[np.float64]:
        """A(t) = MCF [1 - exp(-k (t - t0))]^n x lysis(t) for t > t0, else 0."""
        t = np.asarray(t_s, dtype=np.float64)
        dt = np.maximum(t - self.t0_s, 0.0)
        rise = self.mcf_mm * np.power(-np.expm1(-self.k_per_s * dt), self.shape_n)
        return rise * self.lysis_factor(t)

    def lysis_factor(self, t_s: ArrayLike) -> NDArray[np.float64]:
        """1 before the lysis onset, 1 - ML60 at CT + 60 min, never below 1 - 2 ML60."""
        t = np.asarray(t_s, dtype=np.float64)
        span = self.ct_s + 3600.0 - self.lysis_onset_s
        r = np.maximum(t - self.lysis_onset_s, 0.0) / span
        r2 = r * r
        return 1.0 - self.ml60_fraction * 2.0 * r2 / (1.0 + r2)


# --------------------------------------------------------------------------- the model


def _decade(load: float, load_ref: float) -> float:
    return math.log10(1.0 + load / load_ref)


def _shape(ct: float, cft: float, mcf: float, n: float) -> tuple[float, float]:
    """t0 and k so that A(CT) = 2 mm and A(CT + CFT) = 20 mm (or 20/21 MCF if MCF < 21 mm)."""
    target = CFT_AMPLITUDE_MM if mcf >= _MCF_FULL_KINETICS_MM else mcf * 20.0 / 21.0
    a1 = -math.log1p(-((CT_AMPLITUDE_MM / mcf) ** (1.0 / n)))
    a2 = -math.log1p(-((target / mcf) ** (1.0 / n)))
    k = (a2 - a1) / cft
    return ct - a1 / k, k


def _fit_shape(ct: float, cft: float, mcf: float, n_max: float) -> tuple[float, float, float]:
    """Largest n <= n_max that keeps the trace flat for a quarter of CT; returns (t0, k, n)."""
    floor_t0 = _MIN_FLAT_FRACTION * ct
    t0, k = _shape(ct, cft, mcf, n_max)
    if t0 >= floor_t0:
        return t0, k, n_max
    lo, hi = _MIN_SHAPE_N, n_max
    if _shape(ct, cft, mcf, lo)[0] < floor_t0:
        t0, k = _shape(ct, cft, mcf, lo)
        return max(t0, 0.0), k, lo
    for _ in range(60):  # t0 falls monotonically as n grows
        mid = 0.5 * (lo + hi)
        if _shape(ct, cft, mcf, mid)[0] >= floor_t0:
            lo = mid
        else:
            hi = mid
    t0, k = _shape(ct, cft, mcf, lo)
    return t0, k, lo


def _in_range(bounds: tuple[float, float], position: float) -> float:
    return bounds[0] + position * (bounds[1] - bounds[0])


def tem_truth(lab: VirtualLab, assay: str, sample: TemSample, seed: int, channel: int) -> TemTruth:
    """The true trace for ``sample`` measured with ``assay`` on ``channel`` (deterministic).

    The within-run variation is drawn from (seed, channel) only, so two samples measured with
    the same seed and channel differ exactly by their physiology.
    """
    params = lab.assay(assay)
    donor = lab.donor(sample.donor_id)
    state = lab.coagulability[donor.coagulability]
    tf_per_cell = lab.lot(sample.lot_id).tf_per_cell_tfu if sample.lot_id is not None else 0.0
    load = sample.dose_cells_per_ml * tf_per_cell
    x = _decade(load, params.load_ref_tfu_per_ml)

    ct0 = _in_range(params.ct_range_s, donor.ct_position) * state.ct_factor
    ct0 *= 1.0 + params.heparin_ct_factor_per_iu_ml * donor.heparin_iu_per_ml
    cft0 = _in_range(params.cft_range_s, donor.cft_position) * state.cft_factor
    mcf0 = _in_range(params.mcf_range_mm, donor.mcf_position) * state.mcf_factor

    ct_mean = min(ct0, max(params.ct_min_s, ct0 - params.ct_slope_s_per_decade * x))
    cft_mean = cft0 * max(params.cft_min_factor, 1.0 - params.cft_fraction_per_decade * x)
    mcf_mean = min(params.mcf_max_mm, mcf0 + params.mcf_mm_per_decade * x)

    rng = np.random.default_rng(np.random.SeedSequence([seed, channel, TRUTH_STREAM]))
    z = np.clip(rng.standard_normal(3), -3.0, 3.0)
    ct = ct_mean * (1.0 + lab.cv_ct * float(z[0]))
    cft = cft_mean * (1.0 + lab.cv_cft * float(z[1]))
    mcf = max(3.0 * CT_AMPLITUDE_MM, mcf_mean * (1.0 + lab.cv_mcf * float(z[2])))

    t0, k, n = _fit_shape(ct, cft, mcf, params.shape_n)
    t20: float | None = None
    if mcf > CFT_AMPLITUDE_MM:
        t20 = t0 - math.log1p(-((CFT_AMPLITUDE_MM / mcf) ** (1.0 / n))) / k
    u1 = (CT_AMPLITUDE_MM / mcf) ** (1.0 / n)
    slope_mm_per_min = 60.0 * mcf * n * u1 ** (n - 1.0) * k * (1.0 - u1)
    alpha = math.degrees(math.atan(slope_mm_per_min / 2.0))

    onset = ct + 60.0 * params.lysis_onset_min_after_ct
    if t20 is not None:
        onset = max(onset, t20 + 60.0)
    return TemTruth(
        assay=params.name,
        ct_s=ct,
        cft_s=None if t20 is None else t20 - ct,
        mcf_mm=mcf,
        alpha_deg=alpha,
        lysis_onset_s=onset,
        ml60_fraction=params.ml60_fraction * state.lysis_factor,
        t0_s=t0,
        k_per_s=k,
        shape_n=n,
        tf_load_tfu_per_ml=load,
    )


def ground_truth_parameters(truth: TemTruth, duration_s: float) -> dict[str, float | None]:
    """Noiseless TEM parameters of the continuous model over a run of ``duration_s``.

    Uses the analysis definitions (docs/analysis.md) so measured results can be compared with
    them; a parameter whose time point lies beyond the run is None.
    """
    if duration_s <= 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s!r}")
    ct = truth.ct_s if truth.ct_s <= duration_s else None
    cft = None
    if ct is not None and truth.cft_s is not None and truth.ct_s + truth.cft_s <= duration_s:
        cft = truth.cft_s
    t = np.linspace(0.0, duration_s, max(2, int(duration_s * 20) + 1))
    a = truth.amplitude_mm(t)
    i_max = int(np.argmax(a))
    mcf = float(a[i_max])
    ml = (mcf - float(np.min(a[i_max:]))) / mcf * 100.0 if mcf > 0 else None

    def at(offset_s: float) -> float | None:
        if ct is None or ct + offset_s > duration_s:
            return None
        return float(truth.amplitude_mm(ct + offset_s))

    a30 = at(1800.0)
    return {
        "CT_s": ct,
        "CFT_s": cft,
        "MCF_mm": mcf,
        "alpha_deg": truth.alpha_deg if ct is not None else None,
        "A5_mm": at(300.0),
        "A10_mm": at(600.0),
        "A20_mm": at(1200.0),
        "LI30_pct": None if a30 is None or mcf <= 0 else a30 / mcf * 100.0,
        "ML_pct": ml,
    }


# --------------------------------------------------------------------------- the loop model


@dataclass(frozen=True, slots=True)
class LoopSample:
    """What is in a Chandler loop: blood of a donor with heparin, optionally spiked with cells.

    ``lot_id=None`` or ``dose_cells_per_ml=0`` is the vehicle control. ``heparin_iu_per_ml``
    is the heparin added to the loop's blood (1 IU/mL is the usual loop set-up); the donor's
    own heparin, if any, adds to it.
    """

    donor_id: str
    lot_id: str | None = None
    dose_cells_per_ml: float = 0.0
    heparin_iu_per_ml: float = 1.0
    volume_ml: float = 5.0

    def __post_init__(self) -> None:
        for name in ("dose_cells_per_ml", "heparin_iu_per_ml"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not math.isfinite(self.volume_ml) or not 0 < self.volume_ml <= 50:
            raise ValueError(
                f"volume_ml must be a blood volume above 0 and up to 50 mL, got {self.volume_ml!r}"
            )

    @property
    def is_vehicle(self) -> bool:
        return self.lot_id is None or self.dose_cells_per_ml == 0


def _logistic(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """1 / (1 + exp(-x)) without overflow (x may be +-inf)."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclass(frozen=True, slots=True)
class LoopTruth:
    """The noise-free signals behind one simulated Chandler loop, as functions of time.

    ``clot_time_s`` is the time the noise-free motion signal falls to
    :data:`CLOT_MOTION_PERMILLE` (300 ‰), or None when the loop does not clot within
    ``horizon_s``. ``crossing_time_s(level)`` gives the same for any other level.
    """

    clot_time_s: float | None
    tf_load_tfu_per_ml: float
    contact_load_tfu_per_ml: float
    threshold_load_tfu_per_ml: float
    heparin_iu_per_ml: float
    horizon_s: float
    baseline_tat_ug_per_l: float
    baseline_platelets_e9_per_l: float
    floor_permille: float
    fall_center_s: float
    fall_width_s: float
    drift_permille_per_ug_per_l_tat: float
    max_drift_permille: float
    tat_pre_clot_ug_per_l_at_1h: float
    tat_burst_ug_per_l: float
    tat_burst_center_s: float
    tat_burst_width_s: float
    platelet_consumption_fraction_per_h: float
    platelet_max_pre_clot_fraction: float
    platelet_residual_fraction: float

    @property
    def load_ratio(self) -> float:
        """(cell TF load + contact load) / the load needed to clot; the loop can clot above 1."""
        return (self.tf_load_tfu_per_ml + self.contact_load_tfu_per_ml) / (
            self.threshold_load_tfu_per_ml
        )

    def _pre_clot_h(self, t: NDArray[np.float64]) -> NDArray[np.float64]:
        """Hours of pre-clot generation: time, frozen at the clot time (or the horizon)."""
        end = self.horizon_s if self.clot_time_s is None else self.clot_time_s
        return np.clip(t, 0.0, end) / 3600.0

    def _pre_clot_tat(self, t: NDArray[np.float64]) -> NDArray[np.float64]:
        h = self._pre_clot_h(t)
        return self.tat_pre_clot_ug_per_l_at_1h * self.load_ratio * h * h

    def clotted_fraction(self, t_s: ArrayLike) -> NDArray[np.float64]:
        """0 while the blood moves freely, rising to 1 as the occlusive clot forms."""
        t = np.asarray(t_s, dtype=np.float64)
        return _logistic((t - self.fall_center_s) / self.fall_width_s)

    def motion_permille(self, t_s: ArrayLike) -> NDArray[np.float64]:
        """Noise-free clot-sensor motion: ~1000 ‰, a small drift as fibrin forms, then the
        fall to ``floor_permille`` over a minute or two around the clot time."""
        t = np.asarray(t_s, dtype=np.float64)
        drift = np.minimum(
            self.max_drift_permille, self.drift_permille_per_ug_per_l_tat * self._pre_clot_tat(t)
        )
        free = _FREE_MOTION_PERMILLE - drift
        floor = self.floor_permille
        return floor + (free - floor) * (1.0 - self.clotted_fraction(t))

    def tat_ug_per_l(self, t_s: ArrayLike) -> NDArray[np.float64]:
        """Thrombin-antithrombin: the donor's baseline, a rise with the TF load, and a burst of
        ``tat_burst_ug_per_l`` around clotting."""
        t = np.asarray(t_s, dtype=np.float64)
        burst = _logistic((t - self.tat_burst_center_s) / self.tat_burst_width_s)
        return self.baseline_tat_ug_per_l + self._pre_clot_tat(t) + self.tat_burst_ug_per_l * burst

    def platelets_e9_per_l(self, t_s: ArrayLike) -> NDArray[np.float64]:
        """Free platelet count: consumed slowly with the TF load, then trapped in the clot
        (``platelet_residual_fraction`` of baseline left once it has formed)."""
        t = np.asarray(t_s, dtype=np.float64)
        pre = np.minimum(
            self.platelet_max_pre_clot_fraction,
            self.platelet_consumption_fraction_per_h * self.load_ratio * self._pre_clot_h(t),
        )
        trapped = (1.0 - self.platelet_residual_fraction) * self.clotted_fraction(t)
        return self.baseline_platelets_e9_per_l * (1.0 - pre) * (1.0 - trapped)

    def crossing_time_s(self, threshold_permille: float) -> float | None:
        """First time the noise-free motion is at or below ``threshold_permille``; None if it
        never gets there (no clot within the horizon, or a level below the floor)."""
        if float(self.motion_permille(0.0)) <= threshold_permille:
            return 0.0
        end = self.horizon_s
        if self.clot_time_s is not None:
            end = max(end, self.fall_center_s + 40.0 * self.fall_width_s)
        if float(self.motion_permille(end)) > threshold_permille:
            return None
        lo, hi = 0.0, end  # the motion falls monotonically: bisect
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            if float(self.motion_permille(mid)) <= threshold_permille:
                hi = mid
            else:
                lo = mid
        return hi


def loop_truth(lab: VirtualLab, sample: LoopSample, seed: int, loop: int) -> LoopTruth:
    """The true signals of ``sample`` rotating in loop ``loop`` (deterministic).

    The within-run variation is drawn from (seed, loop) only, so two samples run with the same
    seed and loop differ exactly by their physiology.
    """
    p = lab.loop_model()
    donor = lab.donor(sample.donor_id)
    state = p.coagulability[donor.coagulability]
    tf_per_cell = lab.lot(sample.lot_id).tf_per_cell_tfu if sample.lot_id is not None else 0.0
    load = sample.dose_cells_per_ml * tf_per_cell
    contact = p.contact_load_tfu_per_ml * p.reference_volume_ml / sample.volume_ml
    heparin = donor.heparin_iu_per_ml + sample.heparin_iu_per_ml

    rng = np.random.default_rng(np.random.SeedSequence([seed, loop, LOOP_TRUTH_STREAM]))
    z = np.clip(rng.standard_normal(2), -3.0, 3.0)
    threshold = (
        p.threshold_load_tfu_per_ml
        * state.threshold_factor
        * (1.0 + p.heparin_threshold_factor_per_iu_ml * heparin)
        * math.exp(p.threshold_log_sd * float(z[0]))
    )
    ratio = (load + contact) / threshold
    clot: float | None = None
    if ratio > 1.0:
        t_clot = p.clot_time_min_s + p.clot_time_scale_s / math.log10(ratio)
        t_clot *= state.clot_time_factor * (1.0 + p.clot_time_cv * float(z[1]))
        if t_clot <= p.horizon_s:
            clot = t_clot

    width = p.motion_fall_10_90_s / (2.0 * math.log(9.0))
    truth = LoopTruth(
        clot_time_s=clot,
        tf_load_tfu_per_ml=load,
        contact_load_tfu_per_ml=contact,
        threshold_load_tfu_per_ml=threshold,
        heparin_iu_per_ml=heparin,
        horizon_s=p.horizon_s,
        baseline_tat_ug_per_l=donor.tat_ug_per_l,
        baseline_platelets_e9_per_l=donor.platelets_e9_per_l,
        floor_permille=p.motion_floor_permille,
        fall_center_s=math.inf,
        fall_width_s=width,
        drift_permille_per_ug_per_l_tat=p.drift_permille_per_ug_per_l_tat,
        max_drift_permille=p.max_drift_permille,
        tat_pre_clot_ug_per_l_at_1h=p.tat_pre_clot_ug_per_l_at_1h,
        tat_burst_ug_per_l=p.tat_burst_ug_per_l,
        tat_burst_center_s=math.inf,
        tat_burst_width_s=p.tat_burst_width_s,
        platelet_consumption_fraction_per_h=p.platelet_consumption_fraction_per_h,
        platelet_max_pre_clot_fraction=p.platelet_max_pre_clot_fraction,
        platelet_residual_fraction=p.platelet_residual_fraction,
    )
    if clot is None:
        return truth
    # Centre the fall so that the noise-free motion is exactly CLOT_MOTION_PERMILLE at clot.
    free_at_clot = float(truth.motion_permille(clot))  # no fall yet: the centre is at inf
    floor = p.motion_floor_permille
    q = (CLOT_MOTION_PERMILLE - floor) / (free_at_clot - floor)  # 1 - clotted fraction at clot
    center = clot - width * math.log((1.0 - q) / q)
    return replace(truth, fall_center_s=center, tat_burst_center_s=clot - p.tat_burst_lead_s)


# --------------------------------------------------------------------------- file parsing


class _Node:
    """A mapping of the data file with its key path, for errors that say where."""

    def __init__(self, data: Any, path: str, file: str, line: int | None = None) -> None:
        self.file, self.path, self.line = file, path, line
        if not isinstance(data, Mapping):
            self.fail(f"expected a mapping of keys, got {type(data).__name__}")
        self.data: Mapping[str, Any] = data

    def _key_line(self, key: str) -> int | None:
        lc = getattr(self.data, "lc", None)
        if lc is not None:
            try:
                return int(lc.key(key)[0]) + 1
            except (KeyError, TypeError, AttributeError):
                pass
        return self.line

    def fail(self, problem: str, key: str | None = None) -> None:
        path = f"{self.path}.{key}" if key and self.path else (key or self.path or "(top)")
        line = self._key_line(key) if key is not None else self.line
        raise VirtualLabError(self.file, path, problem, line)

    def raw(self, key: str) -> Any:
        if key not in self.data:
            self.fail("required key is missing", key)
        return self.data[key]

    def sub(self, key: str) -> _Node:
        path = f"{self.path}.{key}" if self.path else key
        return _Node(self.raw(key), path, self.file, self._key_line(key))

    def items(self) -> Iterator[tuple[str, _Node]]:
        for key in self.data:
            yield str(key), self.sub(key)

    def number(self, key: str, lo: float | None = None, hi: float | None = None) -> float:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(f"expected a number, got {value!r}", key)
        number = float(value)
        if not math.isfinite(number):
            self.fail(f"expected a finite number, got {value!r}", key)
        if lo is not None and number < lo:
            self.fail(f"must be >= {lo:g}, got {value!r}", key)
        if hi is not None and number > hi:
            self.fail(f"must be <= {hi:g}, got {value!r}", key)
        return number

    def text(self, key: str) -> str:
        value = self.raw(key)
        if not isinstance(value, str) or not value.strip():
            self.fail(f"expected non-empty text, got {value!r}", key)
        return str(value)

    def span(self, key: str) -> tuple[float, float]:
        value = self.raw(key)
        ok = isinstance(value, list | tuple) and len(value) == 2
        ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        if not ok or not 0 <= value[0] < value[1]:
            self.fail(f"expected [low, high] with 0 <= low < high, got {value!r}", key)
        return float(value[0]), float(value[1])

    def documented(self, references: Mapping[str, str]) -> None:
        """Every parameter group names its sources or is marked illustrative."""
        illustrative = self.data.get("illustrative", False)
        if illustrative not in (True, False):
            self.fail(f"expected true or false, got {illustrative!r}", "illustrative")
        sources = self.data.get("sources")
        if sources is not None:
            if not isinstance(sources, list) or not sources:
                self.fail("expected a non-empty list of reference keys", "sources")
            for ref in sources:
                if ref not in references:
                    self.fail(
                        f"unknown reference {ref!r}; add it under 'references' "
                        f"(known: {', '.join(sorted(references))})",
                        "sources",
                    )
        if sources is None and illustrative is not True:
            self.fail("give 'sources: [reference keys]' or mark the values 'illustrative: true'")


def _parse_lab(text: str, file: str) -> VirtualLab:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        data = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        raise VirtualLabError(file, "(syntax)", f"not valid YAML: {exc.problem}", line) from None
    except YAMLError as exc:
        raise VirtualLabError(file, "(syntax)", f"not valid YAML: {exc}") from None
    root = _Node(data, "", file, 1)
    if root.raw("format") != _FORMAT:
        root.fail(f"expected {_FORMAT!r}, got {root.raw('format')!r}", "format")

    refs_node = root.sub("references")
    references = {key: refs_node.text(key) for key, _ in _plain_items(refs_node)}

    assays = {
        name: _parse_assay(name, node, references) for name, node in root.sub("assays").items()
    }

    model = root.sub("model")
    cv = model.sub("within_run_cv")
    cv.documented(references)
    tf = model.sub("tissue_factor")
    tf.documented(references)
    tfu_unit = tf.number("tfu_per_positive_cell_at_mfi_1", lo=0.0)

    states: dict[str, CoagulabilityState] = {}
    for name, node in root.sub("coagulability").items():
        node.documented(references)
        states[name] = CoagulabilityState(
            name,
            ct_factor=node.number("ct_factor", lo=0.1, hi=10.0),
            cft_factor=node.number("cft_factor", lo=0.1, hi=10.0),
            mcf_factor=node.number("mcf_factor", lo=0.1, hi=3.0),
            lysis_factor=node.number("lysis_factor", lo=0.0, hi=10.0),
        )

    instruments = root.sub("instrument")
    inst = instruments.sub("tem4")
    inst.documented(references)
    tem4 = Tem4InstrumentParameters(
        amplitude_noise_sd_mm=inst.number("amplitude_noise_sd_mm", lo=0.0, hi=5.0),
        initial_cup_temperature_c=inst.number("initial_cup_temperature_c", lo=0.0, hi=60.0),
        default_setpoint_c=inst.number("default_setpoint_c", lo=20.0, hi=45.0),
        cup_time_constant_s=inst.number("cup_time_constant_s", lo=1.0),
        reading_offset_c=inst.number("reading_offset_c", lo=-1.0, hi=1.0),
        over_temperature_c=inst.number("over_temperature_c", lo=40.0, hi=99.0),
    )
    loop8: Loop8InstrumentParameters | None = None
    if "loop8" in instruments.data:
        node8 = instruments.sub("loop8")
        node8.documented(references)
        loop8 = Loop8InstrumentParameters(
            motion_noise_sd_permille=node8.number("motion_noise_sd_permille", lo=0.0, hi=100.0),
            housing_temperature_c=node8.number("housing_temperature_c", lo=0.0, hi=60.0),
            over_temperature_c=node8.number("over_temperature_c", lo=40.0, hi=99.0),
        )
    loop = _parse_loop(root.sub("loop"), references, states) if "loop" in root.data else None

    donors: dict[str, Donor] = {}
    for donor_id, node in root.sub("donors").items():
        node.documented(references)
        state = node.text("coagulability")
        if state not in states:
            node.fail(f"unknown state {state!r} (known: {', '.join(states)})", "coagulability")
        pos = node.sub("range_position")
        donors[donor_id] = Donor(
            id=donor_id,
            description=node.text("description"),
            coagulability=state,
            platelets_e9_per_l=node.number("platelets_e9_per_l", lo=0.0),
            tat_ug_per_l=node.number("tat_ug_per_l", lo=0.0),
            heparin_iu_per_ml=node.number("heparin_iu_per_ml", lo=0.0, hi=10.0),
            ct_position=pos.number("ct", lo=-1.0, hi=2.0),
            cft_position=pos.number("cft", lo=-1.0, hi=2.0),
            mcf_position=pos.number("mcf", lo=-1.0, hi=2.0),
        )

    lots: dict[str, MscLot] = {}
    for lot_id, node in root.sub("lots").items():
        node.documented(references)
        pct = node.number("cd142_positive_pct", lo=0.0, hi=100.0)
        mfi = node.number("cd142_mfi_relative", lo=0.0)
        passage = node.number("passage", lo=0.0)
        if passage != int(passage):
            node.fail(f"expected a whole number, got {passage!r}", "passage")
        lots[lot_id] = MscLot(
            id=lot_id,
            description=node.text("description"),
            tissue_source=node.text("tissue_source"),
            passage=int(passage),
            cd142_positive_pct=pct,
            cd142_mfi_relative=mfi,
            tf_per_cell_tfu=pct / 100.0 * mfi * tfu_unit,
            viability_pct=node.number("viability_pct", lo=0.0, hi=100.0),
        )
    if not donors:
        root.fail("at least one donor is needed", "donors")

    return VirtualLab(
        source=file,
        assays=assays,
        coagulability=states,
        donors=donors,
        lots=lots,
        cv_ct=cv.number("ct", lo=0.0, hi=0.3),
        cv_cft=cv.number("cft", lo=0.0, hi=0.3),
        cv_mcf=cv.number("mcf", lo=0.0, hi=0.3),
        tfu_per_positive_cell_at_mfi_1=tfu_unit,
        tem4=tem4,
        references=references,
        loop=loop,
        loop8=loop8,
    )


def _plain_items(node: _Node) -> Iterator[tuple[str, Any]]:
    for key in node.data:
        yield str(key), node.data[key]


def _parse_loop(
    node: _Node, references: Mapping[str, str], states: Mapping[str, CoagulabilityState]
) -> LoopModelParameters:
    clotting, within = node.sub("clotting"), node.sub("within_run_variation")
    motion, tat, platelets = node.sub("motion"), node.sub("tat"), node.sub("platelets")
    for group in (clotting, within, motion, tat, platelets):
        group.documented(references)
    by_state = node.sub("coagulability")
    coagulability: dict[str, LoopCoagulability] = {}
    for name, sub in by_state.items():
        sub.documented(references)
        if name not in states:
            sub.fail(f"unknown coagulability state {name!r} (known: {', '.join(states)})")
        coagulability[name] = LoopCoagulability(
            name,
            threshold_factor=sub.number("threshold_factor", lo=0.01, hi=100.0),
            clot_time_factor=sub.number("clot_time_factor", lo=0.1, hi=10.0),
        )
    missing = [name for name in states if name not in coagulability]
    if missing:
        by_state.fail(f"no loop parameters for the coagulability state(s) {', '.join(missing)}")
    return LoopModelParameters(
        threshold_load_tfu_per_ml=clotting.number("threshold_load_tfu_per_ml", lo=1e-9),
        heparin_threshold_factor_per_iu_ml=clotting.number(
            "heparin_threshold_factor_per_iu_ml", lo=0.0
        ),
        contact_load_tfu_per_ml=clotting.number("contact_load_tfu_per_ml", lo=0.0),
        reference_volume_ml=clotting.number("reference_volume_ml", lo=0.1, hi=50.0),
        clot_time_min_s=clotting.number("clot_time_min_s", lo=0.0),
        clot_time_scale_s=clotting.number("clot_time_scale_s", lo=1.0),
        horizon_s=clotting.number("horizon_s", lo=60.0),
        threshold_log_sd=within.number("threshold_log_sd", lo=0.0, hi=1.0),
        clot_time_cv=within.number("clot_time_cv", lo=0.0, hi=0.3),
        motion_floor_permille=motion.number("floor_permille", lo=0.0, hi=200.0),
        motion_fall_10_90_s=motion.number("fall_10_90_s", lo=1.0, hi=1800.0),
        drift_permille_per_ug_per_l_tat=motion.number("drift_permille_per_ug_per_l_tat", lo=0.0),
        max_drift_permille=motion.number("max_drift_permille", lo=0.0, hi=300.0),
        tat_pre_clot_ug_per_l_at_1h=tat.number("pre_clot_ug_per_l_at_1h", lo=0.0),
        tat_burst_ug_per_l=tat.number("burst_ug_per_l", lo=0.0),
        tat_burst_lead_s=tat.number("burst_lead_s", lo=0.0),
        tat_burst_width_s=tat.number("burst_width_s", lo=1.0),
        platelet_consumption_fraction_per_h=platelets.number("consumption_fraction_per_h", lo=0.0),
        platelet_max_pre_clot_fraction=platelets.number("max_pre_clot_fraction", lo=0.0, hi=0.9),
        platelet_residual_fraction=platelets.number("residual_fraction", lo=0.0, hi=1.0),
        coagulability=coagulability,
    )


def _parse_assay(name: str, node: _Node, references: Mapping[str, str]) -> AssayParameters:
    if name != name.upper():
        node.fail("assay names are upper-case wire names such as NATEM")
    ranges, lysis = node.sub("reference_ranges"), node.sub("lysis")
    tf, heparin, trace = node.sub("tf_response"), node.sub("heparin"), node.sub("trace")
    for group in (ranges, lysis, tf, heparin, trace):
        group.documented(references)
    mcf_range = ranges.span("mcf_mm")
    if mcf_range[0] <= CT_AMPLITUDE_MM * 2:
        ranges.fail(f"low end must exceed {CT_AMPLITUDE_MM * 2:g} mm", "mcf_mm")
    return AssayParameters(
        name=name,
        description=node.text("description"),
        ct_range_s=ranges.span("ct_s"),
        cft_range_s=ranges.span("cft_s"),
        mcf_range_mm=mcf_range,
        ml60_fraction=lysis.number("ml60_fraction", lo=0.0, hi=0.45),
        lysis_onset_min_after_ct=lysis.number("onset_min_after_ct", lo=15.0),
        ct_slope_s_per_decade=tf.number("ct_slope_s_per_decade", lo=0.0),
        load_ref_tfu_per_ml=tf.number("load_ref_tfu_per_ml", lo=1e-9),
        ct_min_s=tf.number("ct_min_s", lo=1.0),
        cft_fraction_per_decade=tf.number("cft_fraction_per_decade", lo=0.0, hi=1.0),
        cft_min_factor=tf.number("cft_min_factor", lo=0.05, hi=1.0),
        mcf_mm_per_decade=tf.number("mcf_mm_per_decade", lo=0.0),
        mcf_max_mm=tf.number("mcf_max_mm", lo=mcf_range[1]),
        heparin_ct_factor_per_iu_ml=heparin.number("ct_factor_per_iu_ml", lo=0.0),
        shape_n=trace.number("shape_n", lo=_MIN_SHAPE_N, hi=6.0),
    )
