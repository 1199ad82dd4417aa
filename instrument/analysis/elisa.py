"""TAT sandwich ELISA: weighted 4PL/5PL standard curve, QC and sample concentrations.

Pure analysis of one plate reading against a plate map (definitions: docs/elisa.md). Nothing
here reads files or talks to instruments; figures are drawn elsewhere from
`standard_curve_points`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from instrument.analysis.plate import PlateReading, parse_well
from instrument.errors import HemocompatError

FloatArray: TypeAlias = npt.NDArray[np.float64]
Model = Literal["4PL", "5PL"]
Severity = Literal["fail", "warning"]
SampleFlag = Literal["< LLOQ", "> ULOQ", "no curve", "no range"]

PARAMETER_NAMES: dict[str, tuple[str, ...]] = {
    "4PL": ("a", "b", "c", "d"),
    "5PL": ("a", "b", "c", "d", "g"),
}
WEIGHTING = "1/y^2 on replicate means"

# Search box of the fit, in the parameters the optimiser sees (see _bounds).
_SLOPE_BOUNDS = (0.1, 10.0)  # Hill slope b
_ASYMMETRY_BOUNDS = (0.1, 10.0)  # 5PL asymmetry g
_C_RANGE_FACTOR = 1000.0  # c within [min standard / 1000, max standard × 1000]
_ASYMPTOTE_SPAN_FACTOR = 10.0  # a, d within the standards' OD range ± 10 spans
_WEIGHT_FLOOR_FRACTION = 0.01  # weights use max(|ȳ|, 1 % of the largest |ȳ|)
_MAX_EXP = 700.0  # keeps exp() finite in float64
_MAX_EVALUATIONS = 400  # per start; good standards converge in < 100


# ---------------------------------------------------------------------------------------
# Errors


class ElisaInputError(HemocompatError, ValueError):
    """The plate map or reading cannot be analysed as given; the message says what to fix."""


class CurveFitError(HemocompatError):
    """The standard curve could not be fitted (no convergence, degenerate standards)."""


# ---------------------------------------------------------------------------------------
# Models


def logistic_4pl(x: npt.ArrayLike, a: float, b: float, c: float, d: float) -> FloatArray:
    """4PL response y = d + (a − d) / (1 + (x/c)^b); `a` at x = 0, `d` as x → ∞."""
    return _forward(x, a, b, c, d, 1.0)


def logistic_5pl(x: npt.ArrayLike, a: float, b: float, c: float, d: float, g: float) -> FloatArray:
    """5PL response y = d + (a − d) / (1 + (x/c)^b)^g (g = 1 is the 4PL)."""
    return _forward(x, a, b, c, d, g)


def inverse_4pl(y: npt.ArrayLike, a: float, b: float, c: float, d: float) -> FloatArray:
    """Concentration for response y; NaN where y is not strictly between a and d."""
    return _inverse(y, a, b, c, d, 1.0)


def inverse_5pl(y: npt.ArrayLike, a: float, b: float, c: float, d: float, g: float) -> FloatArray:
    """Concentration for response y under the 5PL; NaN outside the asymptotes."""
    return _inverse(y, a, b, c, d, g)


def _forward(x: npt.ArrayLike, a: float, b: float, c: float, d: float, g: float) -> FloatArray:
    xs = np.asarray(x, dtype=np.float64)
    out = np.full(xs.shape, np.nan)
    pos = xs > 0
    # Masks do the guarding; errstate only keeps extreme caller parameters from warning.
    with np.errstate(all="ignore"):
        if c > 0:
            z = b * (np.log(xs[pos]) - math.log(c))
            # (1 + e^z)^-g computed as exp(-g·log(1 + e^z)): no overflow for any z.
            out[pos] = d + (a - d) * np.exp(-g * np.logaddexp(0.0, z))
    out[xs == 0] = a
    return out


def _inverse(y: npt.ArrayLike, a: float, b: float, c: float, d: float, g: float) -> FloatArray:
    ys = np.asarray(y, dtype=np.float64)
    out = np.full(ys.shape, np.nan)
    if a == d or not all(math.isfinite(v) for v in (a, b, c, d, g)) or min(b, c, g) <= 0:
        return out
    with np.errstate(all="ignore"):
        frac = (ys - d) / (a - d)  # (1 + (x/c)^b)^-g, in (0, 1) between the asymptotes
        ok = np.isfinite(frac) & (frac > 0) & (frac < 1)
        log1p_ez = np.zeros(ys.shape)
        log1p_ez[ok] = -np.log(frac[ok]) / g  # log(1 + e^z)
        ok &= log1p_ez > 0
        big = ok & (log1p_ez > 30.0)
        small = ok & ~big
        z = np.zeros(ys.shape)
        z[big] = log1p_ez[big] + np.log1p(-np.exp(-log1p_ez[big]))
        z[small] = np.log(np.expm1(log1p_ez[small]))
        out[ok] = c * np.exp(np.clip(z[ok] / b, -_MAX_EXP, _MAX_EXP))
    return out


@dataclass(frozen=True)
class CurveFit:
    """A fitted standard curve: concentration (µg/L) → net OD."""

    model: Model
    params: dict[str, float]
    conc_ug_per_l: tuple[float, ...]
    od: tuple[float, ...]
    residuals: tuple[float, ...]  # observed − fitted OD, per point
    r_squared: float
    weighted_rss: float  # Σ ((observed − fitted) / max(|y|, floor))², what the fit minimises
    weighting: str = WEIGHTING
    at_bounds: tuple[str, ...] = ()  # parameters that ended on the search box

    def predict(self, conc_ug_per_l: npt.ArrayLike) -> FloatArray:
        p = self.params
        return _forward(conc_ug_per_l, p["a"], p["b"], p["c"], p["d"], p.get("g", 1.0))

    def inverse(self, od: npt.ArrayLike) -> FloatArray:
        """Concentration (µg/L in the well) for a net OD; NaN outside the asymptotes."""
        p = self.params
        return _inverse(od, p["a"], p["b"], p["c"], p["d"], p.get("g", 1.0))

    def concentration(self, od: float) -> float | None:
        """Scalar `inverse`: None where the OD lies outside the curve's asymptotes."""
        value = float(self.inverse(od))
        return value if math.isfinite(value) else None


def fit_curve(
    conc_ug_per_l: Sequence[float] | FloatArray,
    od: Sequence[float] | FloatArray,
    model: Model = "4PL",
) -> CurveFit:
    """Fit a 4PL or 5PL to standard points by weighted least squares (weights 1/y²).

    Several starting points are tried (the plateaus are poorly determined when the standards
    stop short of them) and the lowest weighted residual wins.
    """
    from scipy.optimize import least_squares

    if model not in PARAMETER_NAMES:
        raise CurveFitError(f"unknown curve model {model!r}; use '4PL' or '5PL'")
    x = np.asarray(conc_ug_per_l, dtype=np.float64)
    y = np.asarray(od, dtype=np.float64)
    n_params = len(PARAMETER_NAMES[model])
    if x.shape != y.shape or x.ndim != 1:
        raise CurveFitError(f"{x.size} concentrations but {y.size} responses")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise CurveFitError("standard concentrations and responses must be finite numbers")
    if np.any(x <= 0):
        raise CurveFitError("standard concentrations must be > 0 µg/L (a zero is a blank)")
    if np.unique(x).size < n_params:
        raise CurveFitError(
            f"a {model} fit needs at least {n_params} distinct standard levels, got "
            f"{np.unique(x).size}"
        )
    span = float(np.ptp(y))
    if span <= 0:
        raise CurveFitError("all standards give the same response; there is no curve to fit")

    order = np.argsort(x)
    x, y = x[order], y[order]
    lx = np.log(x)
    scale = np.maximum(np.abs(y), _WEIGHT_FLOOR_FRACTION * float(np.max(np.abs(y))))
    lower, upper = _bounds(x, y, model)

    def terms(theta: FloatArray) -> tuple[float, float, float, float, FloatArray, FloatArray]:
        a, d, ln_c, ln_b = (float(v) for v in theta[:4])
        g = math.exp(theta[4]) if model == "5PL" else 1.0
        z = math.exp(ln_b) * (lx - ln_c)
        log1p_ez = np.logaddexp(0.0, z)
        return a, d, ln_b, g, z, log1p_ez

    def residuals(theta: FloatArray) -> FloatArray:
        a, d, _, g, _, log1p_ez = terms(theta)
        f = d + (a - d) * np.exp(-g * log1p_ez)
        result: FloatArray = (f - y) / scale
        return result

    def jacobian(theta: FloatArray) -> FloatArray:
        a, d, ln_b, g, z, log1p_ez = terms(theta)
        s = np.exp(-g * log1p_ez)  # (1 + e^z)^-g
        ds_dz = -g * s * np.exp(-np.logaddexp(0.0, -z))  # × logistic(z)
        columns = [s, 1.0 - s, (a - d) * ds_dz * -math.exp(ln_b), (a - d) * ds_dz * z]
        if model == "5PL":
            columns.append((a - d) * s * (-g * log1p_ez))
        jac: FloatArray = np.column_stack(columns) / scale[:, None]
        return jac

    best = None
    last_message = "no starting point"
    for theta0 in _starting_points(lx, y, model, lower, upper):
        res = least_squares(
            residuals,
            theta0,
            jac=jacobian,
            bounds=(lower, upper),
            method="trf",
            x_scale="jac",
            max_nfev=_MAX_EVALUATIONS,
        )
        if not res.success or not np.all(np.isfinite(res.x)) or not math.isfinite(res.cost):
            last_message = str(res.message)
            continue
        if best is None or res.cost < best.cost:
            best = res
    if best is None:
        raise CurveFitError(
            f"the {model} fit of {x.size} standards did not converge ({last_message}); check "
            f"the standards for pipetting errors or outliers"
        )

    theta = np.asarray(best.x, dtype=np.float64)
    params = {
        "a": float(theta[0]),
        "b": math.exp(theta[3]),
        "c": math.exp(theta[2]),
        "d": float(theta[1]),
    }
    if model == "5PL":
        params["g"] = math.exp(theta[4])
    names = ("a", "d", "c", "b", "g")
    width = upper - lower
    at_bounds = tuple(
        names[i]
        for i in range(theta.size)
        if min(theta[i] - lower[i], upper[i] - theta[i]) <= 1e-6 * width[i]
    )
    fitted = _forward(x, params["a"], params["b"], params["c"], params["d"], params.get("g", 1.0))
    resid = y - fitted
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r_squared = 1.0 - float(np.sum(resid**2)) / ss_tot
    return CurveFit(
        model=model,
        params=params,
        conc_ug_per_l=tuple(float(v) for v in x),
        od=tuple(float(v) for v in y),
        residuals=tuple(float(v) for v in resid),
        r_squared=r_squared,
        weighted_rss=float(np.sum((resid / scale) ** 2)),
        at_bounds=at_bounds,
    )


def _bounds(x: FloatArray, y: FloatArray, model: Model) -> tuple[FloatArray, FloatArray]:
    """Box for θ = (a, d, ln c, ln b[, ln g])."""
    span = float(np.ptp(y))
    lo_y = float(y.min()) - _ASYMPTOTE_SPAN_FACTOR * span
    hi_y = float(y.max()) + _ASYMPTOTE_SPAN_FACTOR * span
    lower = [
        lo_y,
        lo_y,
        math.log(float(x.min()) / _C_RANGE_FACTOR),
        math.log(_SLOPE_BOUNDS[0]),
    ]
    upper = [
        hi_y,
        hi_y,
        math.log(float(x.max()) * _C_RANGE_FACTOR),
        math.log(_SLOPE_BOUNDS[1]),
    ]
    if model == "5PL":
        lower.append(math.log(_ASYMMETRY_BOUNDS[0]))
        upper.append(math.log(_ASYMMETRY_BOUNDS[1]))
    return np.array(lower), np.array(upper)


def _starting_points(
    lx: FloatArray, y: FloatArray, model: Model, lower: FloatArray, upper: FloatArray
) -> list[FloatArray]:
    """Starts from a grid of plateau guesses, slope and midpoint from the linearised logit."""
    span = float(np.ptp(y))
    # Direction of the response: sign of its covariance with log concentration.
    increasing = float(np.sum((lx - lx.mean()) * (y - y.mean()))) >= 0
    low_end, high_end = float(y.min()), float(y.max())
    starts: list[FloatArray] = []
    for lo_ext in (0.02, 0.3):
        for hi_ext in (0.05, 0.5, 2.0):
            if increasing:
                a0, d0 = low_end - lo_ext * span, high_end + hi_ext * span
            else:
                a0, d0 = high_end + hi_ext * span, low_end - lo_ext * span
            t = (y - a0) / (d0 - y)
            ok = t > 0
            b0, ln_c0 = 1.0, float(lx.mean())
            if np.count_nonzero(ok) >= 2 and np.ptp(lx[ok]) > 0:
                slope, intercept = np.polyfit(lx[ok], np.log(t[ok]), 1)
                if slope > 0:
                    b0, ln_c0 = float(slope), float(-intercept / slope)
            theta = [a0, d0, ln_c0, math.log(max(b0, 1e-3))]
            if model == "5PL":
                theta.append(0.0)
            margin = 1e-9 * (upper - lower)
            starts.append(np.clip(np.array(theta), lower + margin, upper - margin))
    return starts


# ---------------------------------------------------------------------------------------
# Plate map


def _wells(owner: str, wells: Iterable[str]) -> tuple[str, ...]:
    if isinstance(wells, str):
        raise ElisaInputError(
            f"{owner}: wells must be a list of well names such as ('A1', 'A2'), not the "
            f"string {wells!r}"
        )
    names: list[str] = []
    for well in wells:
        try:
            names.append(parse_well(well))
        except ValueError as exc:
            raise ElisaInputError(f"{owner}: {exc}") from None
    if not names:
        raise ElisaInputError(f"{owner} lists no wells")
    return tuple(names)


def _positive(owner: str, what: str, value: float) -> float:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ElisaInputError(f"{owner}: {what} must be a number > 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Standard:
    """A calibrator level: nominal TAT concentration (µg/L) in its replicate wells."""

    conc_ug_per_l: float
    wells: tuple[str, ...]

    def __post_init__(self) -> None:
        owner = f"standard {self.conc_ug_per_l!r} µg/L"
        if self.conc_ug_per_l == 0:
            raise ElisaInputError(f"{owner}: a 0 µg/L standard is a blank; declare it as Blank")
        object.__setattr__(
            self, "conc_ug_per_l", _positive(owner, "the concentration", self.conc_ug_per_l)
        )
        object.__setattr__(self, "wells", _wells(self.describe(), self.wells))

    def describe(self) -> str:
        return f"standard {self.conc_ug_per_l:g} µg/L"


@dataclass(frozen=True)
class Blank:
    """Wells with no analyte (diluent/zero standard); their mean is subtracted from every OD."""

    wells: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "wells", _wells("blank", self.wells))

    def describe(self) -> str:
        return "blank"


@dataclass(frozen=True)
class Control:
    """A kit or in-house control with its accepted range (µg/L, after dilution)."""

    name: str
    low_ug_per_l: float
    high_ug_per_l: float
    wells: tuple[str, ...]
    dilution: float = 1.0

    def __post_init__(self) -> None:
        owner = self.describe()
        if not self.name.strip():
            raise ElisaInputError("a control has an empty name")
        low = _positive(owner, "the lower limit", self.low_ug_per_l)
        high = _positive(owner, "the upper limit", self.high_ug_per_l)
        if low > high:
            raise ElisaInputError(f"{owner}: range {low:g}–{high:g} µg/L is reversed")
        object.__setattr__(self, "low_ug_per_l", low)
        object.__setattr__(self, "high_ug_per_l", high)
        object.__setattr__(self, "dilution", _positive(owner, "the dilution", self.dilution))
        object.__setattr__(self, "wells", _wells(owner, self.wells))

    def describe(self) -> str:
        return f"control {self.name!r}"


@dataclass(frozen=True)
class Sample:
    """A test sample read at `dilution` (1:10 → 10) in its replicate wells."""

    sample_id: str
    dilution: float
    wells: tuple[str, ...]

    def __post_init__(self) -> None:
        owner = self.describe()
        if not self.sample_id.strip():
            raise ElisaInputError("a sample has an empty sample_id")
        object.__setattr__(self, "dilution", _positive(owner, "the dilution", self.dilution))
        object.__setattr__(self, "wells", _wells(owner, self.wells))

    def describe(self) -> str:
        return f"sample {self.sample_id!r}"


WellRole: TypeAlias = Standard | Blank | Control | Sample


@dataclass(frozen=True)
class PlateMap:
    """What each used well holds; every well appears at most once."""

    entries: tuple[WellRole, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "entries", tuple(self.entries))
        owner_of: dict[str, str] = {}
        for entry in self.entries:
            for well in entry.wells:
                if well in owner_of:
                    first = owner_of[well]
                    second = entry.describe()
                    where = f"by {first}" if first == second else f"by {first} and {second}"
                    raise ElisaInputError(
                        f"well {well} is used twice ({where}); each well holds one thing"
                    )
                owner_of[well] = entry.describe()
        _unique("standard level", [f"{s.conc_ug_per_l:g} µg/L" for s in self.standards])
        _unique("control name", [c.name for c in self.controls])
        _unique("sample_id", [s.sample_id for s in self.samples])

    @property
    def standards(self) -> list[Standard]:
        return sorted(
            (e for e in self.entries if isinstance(e, Standard)), key=lambda s: s.conc_ug_per_l
        )

    @property
    def blanks(self) -> list[Blank]:
        return [e for e in self.entries if isinstance(e, Blank)]

    @property
    def controls(self) -> list[Control]:
        return [e for e in self.entries if isinstance(e, Control)]

    @property
    def samples(self) -> list[Sample]:
        return [e for e in self.entries if isinstance(e, Sample)]


def _unique(what: str, values: list[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ElisaInputError(
                f"{what} {value} appears twice in the plate map; list all its replicate wells "
                f"in one entry"
            )
        seen.add(value)


# ---------------------------------------------------------------------------------------
# QC settings and results


@dataclass(frozen=True)
class QcSettings:
    """Acceptance criteria of a TAT plate (defaults: DESIGN "Analysis definitions")."""

    backcalc_tolerance_pct: float = 20.0
    backcalc_tolerance_end_pct: float = 25.0  # lowest and highest standard
    max_cv_pct: float = 15.0
    min_r_squared: float = 0.98
    min_levels_4pl: int = 5
    min_levels_5pl: int = 6
    response: Literal["increasing", "decreasing"] = "increasing"
    min_dilution: float = 1.0  # smallest dilution a re-assay may suggest (1 = neat)

    def min_levels(self, model: Model) -> int:
        return self.min_levels_5pl if model == "5PL" else self.min_levels_4pl


@dataclass(frozen=True)
class QcFinding:
    """One QC failure (severity "fail": the plate fails) or a warning about one entry."""

    code: str
    where: str
    message: str
    severity: Severity = "fail"


@dataclass(frozen=True)
class StandardResult:
    """One calibrator level after the fit."""

    conc_ug_per_l: float
    wells: tuple[str, ...]
    od_net: tuple[float, ...]
    od_net_mean: float
    cv_pct: float | None
    back_calc_ug_per_l: float | None
    recovery_pct: float | None
    tolerance_pct: float
    backcalc_ok: bool
    cv_ok: bool


@dataclass(frozen=True)
class ControlResult:
    name: str
    wells: tuple[str, ...]
    low_ug_per_l: float
    high_ug_per_l: float
    dilution: float
    od_net: tuple[float, ...]
    od_net_mean: float
    value_ug_per_l: float | None
    cv_pct: float | None
    in_range: bool


@dataclass(frozen=True)
class SampleConcentration:
    """A sample's TAT (µg/L, dilution applied). Use only when `valid` is True."""

    sample_id: str
    value_ug_per_l: float | None  # None when flagged out of range or without a curve
    flag: SampleFlag | None
    cv_pct: float | None
    dilution: float
    wells: tuple[str, ...]
    valid: bool
    od_net: tuple[float, ...]
    od_net_mean: float
    limit_ug_per_l: float | None = None  # the LLOQ or ULOQ × dilution a flag refers to
    reassay: str | None = None  # e.g. "re-assay at a 1:20 dilution"
    suggested_dilution: float | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ElisaResult:
    passed: bool
    findings: tuple[QcFinding, ...]
    fit: CurveFit | None
    standards: tuple[StandardResult, ...]
    samples: dict[str, SampleConcentration]
    controls: dict[str, ControlResult]
    lloq_ug_per_l: float | None
    uloq_ug_per_l: float | None
    blank_od_mean: float
    blank_wells: tuple[str, ...]
    od_net: dict[str, float]
    model: Model
    signal_nm: int
    reference_nm: int | None
    qc: QcSettings = field(default_factory=QcSettings)
    source: str = ""
    simulated: bool = False

    @property
    def failures(self) -> tuple[QcFinding, ...]:
        return tuple(f for f in self.findings if f.severity == "fail")

    def findings_with(self, code: str) -> list[QcFinding]:
        return [f for f in self.findings if f.code == code]


# Finding codes (docs/elisa.md lists them with their rules).
FIT_FAILED = "FIT_FAILED"
FIT_R2 = "FIT_R2"
FIT_AT_BOUND = "FIT_AT_BOUND"
STD_TOO_FEW_LEVELS = "STD_TOO_FEW_LEVELS"
STD_NON_MONOTONIC = "STD_NON_MONOTONIC"
STD_BACKCALC = "STD_BACKCALC"
STD_CV = "STD_CV"
STD_OUTLIER = "STD_OUTLIER"
NO_RANGE = "NO_RANGE"
CONTROL_RANGE = "CONTROL_RANGE"
CONTROL_CV = "CONTROL_CV"
SAMPLE_CV = "SAMPLE_CV"
SAMPLE_BELOW_LLOQ = "SAMPLE_BELOW_LLOQ"
SAMPLE_ABOVE_ULOQ = "SAMPLE_ABOVE_ULOQ"


# ---------------------------------------------------------------------------------------
# Plate analysis


def analyse_plate(
    reading: PlateReading,
    plate_map: PlateMap,
    *,
    signal_nm: int = 492,
    reference_nm: int | None = 650,
    model: Model = "4PL",
    qc: QcSettings | None = None,
) -> ElisaResult:
    """Net OD, weighted standard-curve fit, QC and sample concentrations of one plate.

    A failed fit or QC rule does not raise: the result has `passed=False`, the findings say
    why, and every sample is `valid=False`. Only unusable input raises `ElisaInputError`.
    """
    qc = qc or QcSettings()
    if model not in PARAMETER_NAMES:
        raise ElisaInputError(f"unknown curve model {model!r}; use '4PL' or '5PL'")
    standards = plate_map.standards
    n_params = len(PARAMETER_NAMES[model])
    if not standards:
        raise ElisaInputError(
            "the plate map has no standards; add the calibrator levels (nominal µg/L and wells)"
        )
    if len(standards) < n_params:
        raise ElisaInputError(
            f"the plate map has {len(standards)} standard level(s); a {model} curve needs at "
            f"least {n_params} to be fitted and QC asks for {qc.min_levels(model)}"
        )
    corrected = _corrected_od(reading, plate_map, signal_nm, reference_nm)

    blank_wells = tuple(w for b in plate_map.blanks for w in b.wells)
    blank = float(np.mean([corrected[w] for w in blank_wells])) if blank_wells else 0.0
    net = {w: v - blank for w, v in corrected.items()}

    findings: list[QcFinding] = []
    x = np.array([s.conc_ug_per_l for s in standards])
    y = np.array([_mean(net, s.wells) for s in standards])

    if len(standards) < qc.min_levels(model):
        findings.append(
            QcFinding(
                STD_TOO_FEW_LEVELS,
                "standards",
                f"{len(standards)} standard levels; a {model} curve needs at least "
                f"{qc.min_levels(model)} for QC. Add levels to the plate layout",
            )
        )
    findings.extend(_monotonic_findings(standards, y, qc))

    fit: CurveFit | None = None
    try:
        fit = fit_curve(x, y, model)
    except CurveFitError as exc:
        findings.append(QcFinding(FIT_FAILED, "curve", str(exc)))
    if fit is not None:
        if not fit.r_squared >= qc.min_r_squared:
            findings.append(
                QcFinding(
                    FIT_R2,
                    "curve",
                    f"R² = {fit.r_squared:.4f} is below {qc.min_r_squared:g}; the {model} curve "
                    f"does not describe the standards",
                )
            )
        if fit.at_bounds:
            findings.append(
                QcFinding(
                    FIT_AT_BOUND,
                    "curve",
                    f"parameter(s) {', '.join(fit.at_bounds)} ended on the edge of the search "
                    f"range; the curve shape is poorly determined by these standards",
                    "warning",
                )
            )

    std_results = _standard_results(standards, net, y, fit, qc, findings)
    if fit is not None and not all(r.backcalc_ok for r in std_results):
        outlier = _likely_outlier(standards, y, [r.tolerance_pct for r in std_results], model)
        if outlier is not None:
            findings.append(outlier)
    passing = [s.conc_ug_per_l for s in std_results if s.backcalc_ok]
    lloq = min(passing) if passing else None
    uloq = max(passing) if passing else None
    if fit is not None and not passing:
        findings.append(
            QcFinding(NO_RANGE, "standards", "no standard back-calculates within tolerance")
        )

    controls = _control_results(plate_map.controls, net, fit, qc, findings)
    passed = not any(f.severity == "fail" for f in findings)
    samples = {
        s.sample_id: _sample_result(s, net, fit, lloq, uloq, qc, passed, findings)
        for s in plate_map.samples
    }
    return ElisaResult(
        passed=passed,
        findings=tuple(findings),
        fit=fit,
        standards=tuple(std_results),
        samples=samples,
        controls=controls,
        lloq_ug_per_l=lloq,
        uloq_ug_per_l=uloq,
        blank_od_mean=blank,
        blank_wells=blank_wells,
        od_net=net,
        model=model,
        signal_nm=signal_nm,
        reference_nm=reference_nm,
        qc=qc,
        source=reading.source,
        simulated=reading.simulated,
    )


def standard_curve_points(
    result: ElisaResult,
    n: int = 200,
    *,
    x_min: float | None = None,
    x_max: float | None = None,
) -> tuple[FloatArray, FloatArray]:
    """(conc µg/L, net OD) of the fitted curve, log-spaced from half the lowest standard to
    twice the highest (or `x_min`–`x_max`), for plotting."""
    if result.fit is None:
        raise CurveFitError("the plate has no fitted curve (see its FIT_FAILED finding)")
    if n < 2:
        raise ValueError(f"n = {n}: a curve needs at least 2 points")
    lo = x_min if x_min is not None else min(result.fit.conc_ug_per_l) / 2
    hi = x_max if x_max is not None else max(result.fit.conc_ug_per_l) * 2
    if not 0 < lo < hi:
        raise ValueError(f"curve range {lo!r}–{hi!r} µg/L must satisfy 0 < x_min < x_max")
    xs = np.geomspace(lo, hi, n)
    return xs, result.fit.predict(xs)


def _corrected_od(
    reading: PlateReading, plate_map: PlateMap, signal_nm: int, reference_nm: int | None
) -> dict[str, float]:
    """signal − reference per mapped well, after checking every well was read."""
    have = ", ".join(f"{nm} nm" for nm in reading.wavelengths_nm)
    if signal_nm not in reading.od:
        raise ElisaInputError(
            f"{reading.source}: no {signal_nm} nm reading (it has {have}); pass the signal "
            f"wavelength the plate was read at"
        )
    if reference_nm is not None and reference_nm not in reading.od:
        raise ElisaInputError(
            f"{reading.source}: no {reference_nm} nm reference reading (it has {have}); pass "
            f"reference_nm=None to analyse without reference correction"
        )
    wanted = [(nm, "signal") for nm in (signal_nm,)]
    if reference_nm is not None:
        wanted.append((reference_nm, "reference"))
    missing: list[str] = []
    corrected: dict[str, float] = {}
    for entry in plate_map.entries:
        for well in entry.wells:
            values: list[float] = []
            for nm, _ in wanted:
                value = reading.od[nm].get(well)
                if value is None:
                    missing.append(f"{well} ({entry.describe()}) at {nm} nm")
                    continue
                if not math.isfinite(value):
                    raise ElisaInputError(
                        f"{reading.source}: well {well} ({entry.describe()}) has absorbance "
                        f"{value!r} at {nm} nm; re-read the plate"
                    )
                values.append(value)
            if len(values) == len(wanted):
                corrected[well] = values[0] - (values[1] if len(values) > 1 else 0.0)
    if missing:
        shown = "; ".join(missing[:8]) + (
            f"; … {len(missing) - 8} more" if len(missing) > 8 else ""
        )
        raise ElisaInputError(
            f"{reading.source}: the plate map uses wells the reading does not have: {shown}. "
            f"Check the plate layout against the reader export"
        )
    return corrected


def _mean(net: dict[str, float], wells: Sequence[str]) -> float:
    return float(np.mean([net[w] for w in wells]))


def _cv_pct(values: Sequence[float]) -> float | None:
    """Replicate CV (%) = SD (n − 1) / mean; None for one replicate or a mean ≤ 0."""
    if len(values) < 2:
        return None
    arr = np.asarray(values, dtype=np.float64)
    mean = float(arr.mean())
    if mean <= 0:
        return None
    return float(arr.std(ddof=1)) / mean * 100.0


def _where(entry: WellRole) -> str:
    return f"{entry.describe()} (wells {', '.join(entry.wells)})"


def _monotonic_findings(
    standards: list[Standard], y: FloatArray, qc: QcSettings
) -> list[QcFinding]:
    findings: list[QcFinding] = []
    sign = 1.0 if qc.response == "increasing" else -1.0
    word = "higher" if qc.response == "increasing" else "lower"
    for k in range(1, len(standards)):
        if not sign * (y[k] - y[k - 1]) > 0:
            findings.append(
                QcFinding(
                    STD_NON_MONOTONIC,
                    _where(standards[k]),
                    f"non-monotonic standard curve: {standards[k].describe()} (mean net OD "
                    f"{y[k]:.3f}) reads no {word} than {standards[k - 1].describe()} "
                    f"({y[k - 1]:.3f}); check the dilution series and the plate layout",
                )
            )
    return findings


def _standard_results(
    standards: list[Standard],
    net: dict[str, float],
    y: FloatArray,
    fit: CurveFit | None,
    qc: QcSettings,
    findings: list[QcFinding],
) -> list[StandardResult]:
    results: list[StandardResult] = []
    last = len(standards) - 1
    for k, std in enumerate(standards):
        ods = tuple(net[w] for w in std.wells)
        cv = _cv_pct(ods)
        cv_ok = cv is None or cv <= qc.max_cv_pct
        if not cv_ok:
            findings.append(
                QcFinding(
                    STD_CV,
                    _where(std),
                    f"replicate CV {cv:.1f} % exceeds {qc.max_cv_pct:g} % (net OD "
                    f"{', '.join(f'{v:.3f}' for v in ods)}); re-pipette this level",
                )
            )
        tol = qc.backcalc_tolerance_end_pct if k in (0, last) else qc.backcalc_tolerance_pct
        back = fit.concentration(float(y[k])) if fit is not None else None
        recovery = back / std.conc_ug_per_l * 100.0 if back is not None else None
        ok = recovery is not None and abs(recovery - 100.0) <= tol
        if fit is not None and not ok:
            if back is None:
                detail = (
                    f"its mean net OD {y[k]:.3f} lies outside the fitted curve's asymptotes "
                    f"({fit.params['a']:.3f}–{fit.params['d']:.3f})"
                )
            else:
                detail = (
                    f"back-calculates to {back:.3g} µg/L ({recovery:.0f} % of nominal), "
                    f"outside ±{tol:g} %"
                )
            findings.append(
                QcFinding(
                    STD_BACKCALC,
                    _where(std),
                    f"{std.describe()} {detail}; check the pipetting of this level",
                )
            )
        results.append(
            StandardResult(
                conc_ug_per_l=std.conc_ug_per_l,
                wells=std.wells,
                od_net=ods,
                od_net_mean=float(y[k]),
                cv_pct=cv,
                back_calc_ug_per_l=back,
                recovery_pct=recovery,
                tolerance_pct=tol,
                backcalc_ok=ok,
                cv_ok=cv_ok,
            )
        )
    return results


def _likely_outlier(
    standards: list[Standard], y: FloatArray, tolerances: list[float], model: Model
) -> QcFinding | None:
    """Name the level whose removal lets every other level pass back-calculation.

    One bad level bends the whole curve, so the full fit often flags its neighbours instead.
    Each level is left out in turn; of those whose removal lets all others pass while the
    left-out level itself fails on their curve, the one leaving the best fit is named.
    """
    x = np.array([s.conc_ug_per_l for s in standards])
    if x.size - 1 <= len(PARAMETER_NAMES[model]):
        return None  # without a spare level the reduced fit passes through every point
    best: tuple[float, int, float | None] | None = None  # (weighted RSS without k, k, back)
    for k in range(x.size):
        keep = np.arange(x.size) != k
        try:
            reduced = fit_curve(x[keep], y[keep], model)
        except CurveFitError:
            continue
        others_pass = all(
            _within(reduced.concentration(float(y[i])), float(x[i]), tolerances[i])
            for i in np.flatnonzero(keep)
        )
        back = reduced.concentration(float(y[k]))
        if not others_pass or _within(back, float(x[k]), tolerances[k]):
            continue
        if best is None or reduced.weighted_rss < best[0]:
            best = (reduced.weighted_rss, k, back)
    if best is None:
        return None
    _, k, back = best
    std = standards[k]
    reads = (
        f"reads {back:.3g} µg/L ({back / std.conc_ug_per_l * 100:.0f} % of nominal)"
        if back is not None
        else "lies outside"
    )
    return QcFinding(
        STD_OUTLIER,
        _where(std),
        f"{std.describe()} is the likely pipetting error: without it every other level "
        f"back-calculates within tolerance, and it {reads} on their curve",
    )


def _within(back: float | None, nominal: float, tolerance_pct: float) -> bool:
    return back is not None and abs(back / nominal - 1.0) * 100.0 <= tolerance_pct


def _control_results(
    controls: list[Control],
    net: dict[str, float],
    fit: CurveFit | None,
    qc: QcSettings,
    findings: list[QcFinding],
) -> dict[str, ControlResult]:
    results: dict[str, ControlResult] = {}
    for ctl in controls:
        ods = tuple(net[w] for w in ctl.wells)
        mean = float(np.mean(ods))
        cv = _cv_pct(ods)
        well_conc = fit.concentration(mean) if fit is not None else None
        value = well_conc * ctl.dilution if well_conc is not None else None
        in_range = value is not None and ctl.low_ug_per_l <= value <= ctl.high_ug_per_l
        accepted = f"{ctl.low_ug_per_l:g}–{ctl.high_ug_per_l:g} µg/L"
        if fit is not None and not in_range:
            got = (
                f"{value:.3g} µg/L"
                if value is not None
                else f"no value (net OD {mean:.3f} outside the curve)"
            )
            findings.append(
                QcFinding(
                    CONTROL_RANGE,
                    _where(ctl),
                    f"{ctl.describe()} reads {got}, outside its accepted range {accepted}",
                )
            )
        if cv is not None and cv > qc.max_cv_pct:
            findings.append(
                QcFinding(
                    CONTROL_CV,
                    _where(ctl),
                    f"{ctl.describe()} replicate CV {cv:.1f} % exceeds {qc.max_cv_pct:g} %",
                )
            )
        results[ctl.name] = ControlResult(
            name=ctl.name,
            wells=ctl.wells,
            low_ug_per_l=ctl.low_ug_per_l,
            high_ug_per_l=ctl.high_ug_per_l,
            dilution=ctl.dilution,
            od_net=ods,
            od_net_mean=mean,
            value_ug_per_l=value,
            cv_pct=cv,
            in_range=in_range,
        )
    return results


def _sample_result(
    sample: Sample,
    net: dict[str, float],
    fit: CurveFit | None,
    lloq: float | None,
    uloq: float | None,
    qc: QcSettings,
    plate_passed: bool,
    findings: list[QcFinding],
) -> SampleConcentration:
    ods = tuple(net[w] for w in sample.wells)
    mean = float(np.mean(ods))
    cv = _cv_pct(ods)
    cv_ok = cv is None or cv <= qc.max_cv_pct
    notes: list[str] = []
    if not plate_passed:
        notes.append("the plate failed QC; do not use this value")
    if not cv_ok:
        message = (
            f"replicate CV {cv:.1f} % exceeds {qc.max_cv_pct:g} % (net OD "
            f"{', '.join(f'{v:.3f}' for v in ods)}); re-assay this sample"
        )
        notes.append(message)
        findings.append(QcFinding(SAMPLE_CV, _where(sample), message, "warning"))
    flag: SampleFlag | None = None
    value: float | None = None
    limit: float | None = None
    reassay: str | None = None
    suggested: float | None = None
    if fit is None:
        flag = "no curve"
        notes.append("no standard curve")
    elif lloq is None or uloq is None:
        flag = "no range"
        notes.append("no standard passed back-calculation")
    else:
        well_conc = float(fit.inverse(mean))
        od_lo, od_hi = float(fit.predict(lloq)), float(fit.predict(uloq))
        direction = od_hi - od_lo
        if (mean - od_lo) * direction < 0:
            flag, limit = "< LLOQ", lloq * sample.dilution
            suggested, text = _reassay_below(well_conc, sample.dilution, lloq, uloq, qc)
            reassay = text if suggested is not None else None
            message = f"below LLOQ (< {limit:.3g} µg/L at 1:{sample.dilution:g}); {text}"
            findings.append(QcFinding(SAMPLE_BELOW_LLOQ, _where(sample), message, "warning"))
            notes.append(message)
        elif (mean - od_hi) * direction > 0:
            flag, limit = "> ULOQ", uloq * sample.dilution
            suggested, reassay = _reassay_above(well_conc, sample.dilution, lloq, uloq)
            message = f"above ULOQ (> {limit:.3g} µg/L at 1:{sample.dilution:g}); {reassay}"
            findings.append(QcFinding(SAMPLE_ABOVE_ULOQ, _where(sample), message, "warning"))
            notes.append(message)
        else:
            value = well_conc * sample.dilution
    return SampleConcentration(
        sample_id=sample.sample_id,
        value_ug_per_l=value,
        flag=flag,
        cv_pct=cv,
        dilution=sample.dilution,
        wells=sample.wells,
        valid=plate_passed and cv_ok,
        od_net=ods,
        od_net_mean=mean,
        limit_ug_per_l=limit,
        reassay=reassay,
        suggested_dilution=suggested,
        notes=tuple(notes),
    )


_DILUTION_SERIES = tuple(m * 10.0**k for k in range(8) for m in (1, 2, 5))  # 1, 2, 5, 10, …
_MAX_EXTRAPOLATION = 20.0  # beyond 20 × ULOQ an extrapolated concentration is not trusted


def _nice_dilution(value: float) -> float:
    """Nearest dilution of the 1-2-5 series (1, 2, 5, 10, 20, …) on a log scale."""
    return min(_DILUTION_SERIES, key=lambda s: abs(math.log(s / value)))


def _reassay_above(
    well_conc: float, dilution: float, lloq: float, uloq: float
) -> tuple[float, str]:
    """Dilution that brings the sample to the middle (log scale) of the quantifiable range."""
    target = math.sqrt(lloq * uloq)
    ceiling = _MAX_EXTRAPOLATION * uloq
    estimated = math.isfinite(well_conc) and uloq < well_conc <= ceiling
    conc = well_conc if estimated else ceiling
    new = _nice_dilution(dilution * conc / target)
    if new <= dilution:
        new = min(s for s in _DILUTION_SERIES if s > dilution)
    text = f"re-assay at a 1:{new:g} dilution"
    if not estimated:
        text += (
            " or higher (the OD is near or at the curve's upper plateau, so the concentration "
            "cannot be estimated)"
        )
    return new, text


def _reassay_below(
    well_conc: float, dilution: float, lloq: float, uloq: float, qc: QcSettings
) -> tuple[float | None, str]:
    """A smaller dilution (never below `qc.min_dilution`), or None when there is none."""
    if dilution <= qc.min_dilution:
        return None, (
            f"already at the minimum dilution 1:{qc.min_dilution:g}; report as "
            f"< {lloq * dilution:.3g} µg/L"
        )
    target = math.sqrt(lloq * uloq)
    if math.isfinite(well_conc) and 0 < well_conc < lloq:
        new = _nice_dilution(dilution * well_conc / target)
        if new >= dilution:
            below = [s for s in _DILUTION_SERIES if s < dilution]
            new = max(below) if below else qc.min_dilution
    else:  # at or under the lower plateau: no estimate, go to the smallest dilution
        new = qc.min_dilution
    new = max(new, qc.min_dilution)
    where = "undiluted" if new == 1 else f"at a 1:{new:g} dilution"
    return new, f"re-assay {where}"
