"""Thromboelastometry parameters from one channel's amplitude trace, offline and live.

Definitions, formulas and the reasons behind each estimator are in docs/analysis.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

Style = Literal["rotem", "teg"]
STYLES: Final[tuple[str, ...]] = ("rotem", "teg")

CT_SMOOTHING_S: Final = 1.0
"""Trailing window of the mean that CT and the 20 mm crossing are read from."""
CT_MIN_WINDOW_SAMPLES: Final = 3
"""The CT window holds at least this many samples, so slow sampling is averaged too."""
CT_SUSTAIN_SAMPLES: Final = 3
"""A crossing counts only if the smoothed amplitude stays above for at least this many samples
(and until the window has slid past the first sample above the threshold)."""
AMPLITUDE_SMOOTHING_S: Final = 20.0
"""Window of the mean that MCF, A5/A10/A20, LI30, ML and LY30 are read from."""
LEVEL_STEP_S: Final = 0.5
"""Spacing of the windows that the smoothed amplitude is evaluated at."""
ALPHA_HALF_SPAN_MM: Final = 1.0
"""The alpha fit spans roughly threshold ± this amplitude, i.e. 1–3 mm for a 2 mm threshold."""
ALPHA_MIN_HALF_WINDOW_S: Final = 2.0
ALPHA_MAX_HALF_WINDOW_S: Final = 60.0
ALPHA_MIN_POINTS: Final = 5

MAX_ABS_AMPLITUDE_MM: Final = 1000.0
MAX_ABS_TIME_S: Final = 1.0e7

_UNITS_PER_MM: Final = 1_000_000
_UNITS_PER_S: Final = 1_000_000


class TemSettings(Protocol):
    """The protocol settings the TEM analysis reads; any object with these attributes fits."""

    @property
    def ct_threshold_mm(self) -> float: ...
    @property
    def cft_threshold_mm(self) -> float: ...
    @property
    def amplitude_times_min(self) -> Sequence[float]: ...
    @property
    def lysis_index_time_min(self) -> float: ...
    @property
    def alpha_chart_mm_per_min(self) -> float: ...


@dataclass(frozen=True)
class DefaultTemSettings:
    """The conventional ROTEM/TEG settings: CT at 2 mm, CFT to 20 mm, A5/A10/A20, LI30."""

    ct_threshold_mm: float = 2.0
    cft_threshold_mm: float = 20.0
    amplitude_times_min: tuple[float, ...] = (5, 10, 20)
    lysis_index_time_min: float = 30
    alpha_chart_mm_per_min: float = 2.0


def amplitude_key(minutes: float) -> str:
    """The result key of the amplitude x minutes after CT, e.g. ``A10_mm``."""
    return f"A{minutes:g}_mm"


@dataclass(frozen=True)
class TemParameters:
    """Every TEM parameter of one trace; None where undetermined, with the reason in notes.

    ``notes`` is keyed like :meth:`to_dict` output (both styles' keys, e.g. ``CFT_s`` and
    ``K_min``), so every None a caller shows can be explained next to it.
    """

    ct_s: float | None
    cft_s: float | None
    alpha_deg: float | None
    mcf_mm: float | None
    t_mcf_s: float | None
    amplitudes_mm: dict[float, float | None]
    lysis_index_pct: float | None
    ml_pct: float | None
    ly30_pct: float | None
    g_dyn_cm2: float | None
    lysis_index_time_min: float = 30
    style: Style = "rotem"
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def r_min(self) -> float | None:
        """TEG R: the clotting time in minutes."""
        return None if self.ct_s is None else self.ct_s / 60.0

    @property
    def k_min(self) -> float | None:
        """TEG K: the clot formation time in minutes."""
        return None if self.cft_s is None else self.cft_s / 60.0

    def to_dict(self, style: str | None = None) -> dict[str, float | None]:
        """The parameters under unit-suffixed names of a style (default: the computed style)."""
        chosen = _check_style(self.style if style is None else style)
        if chosen == "rotem":
            out: dict[str, float | None] = {
                "CT_s": _rounded(self.ct_s, 1),
                "CFT_s": _rounded(self.cft_s, 1),
                "alpha_deg": _rounded(self.alpha_deg, 1),
                "MCF_mm": _rounded(self.mcf_mm, 2),
            }
            for minutes, value in self.amplitudes_mm.items():
                out[amplitude_key(minutes)] = _rounded(value, 2)
            out[_li_key(self.lysis_index_time_min)] = _rounded(self.lysis_index_pct, 1)
            out["ML_pct"] = _rounded(self.ml_pct, 1)
            return out
        return {
            "R_min": _rounded(self.r_min, 2),
            "K_min": _rounded(self.k_min, 2),
            "angle_deg": _rounded(self.alpha_deg, 1),
            "MA_mm": _rounded(self.mcf_mm, 2),
            "LY30_pct": _rounded(self.ly30_pct, 1),
            "G_dyn_cm2": _rounded(self.g_dyn_cm2, 0),
        }


def _li_key(minutes: float) -> str:
    return f"LI{minutes:g}_pct"


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else float(round(value, digits))


def _check_style(style: str) -> Style:
    if style == "rotem":
        return "rotem"
    if style == "teg":
        return "teg"
    raise ValueError(f"unknown TEM result style {style!r}: use 'rotem' or 'teg'")


# --- input checks and fixed-point conversion -------------------------------------------------


def _as_trace(t_s: npt.ArrayLike, amp_mm: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Validate a trace and return it as float arrays, raising ValueError that says what to fix."""
    t = np.asarray(t_s, dtype=np.float64)
    a = np.asarray(amp_mm, dtype=np.float64)
    if t.ndim != 1 or a.ndim != 1:
        raise ValueError(
            f"t_s and amp_mm must be one-dimensional; got shapes {t.shape} and {a.shape}"
        )
    if t.size != a.size:
        raise ValueError(
            f"t_s has {t.size} samples but amp_mm has {a.size}: pass one amplitude per time"
        )
    for name, values, limit, unit in (
        ("t_s", t, MAX_ABS_TIME_S, "s"),
        ("amp_mm", a, MAX_ABS_AMPLITUDE_MM, "mm"),
    ):
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"{name}[{i}] is {values[i]}: every sample must be a finite number "
                "(drop missing samples rather than passing NaN)"
            )
        out = np.flatnonzero(np.abs(values) > limit)
        if out.size:
            i = int(out[0])
            raise ValueError(f"{name}[{i}] = {values[i]:g} {unit} is outside ±{limit:g} {unit}")
    steps = np.flatnonzero(np.diff(t) <= 0.0)
    if steps.size:
        i = int(steps[0])
        raise ValueError(
            f"t_s must increase strictly: t_s[{i + 1}] = {t[i + 1]:g} s follows "
            f"t_s[{i}] = {t[i]:g} s"
        )
    return t, a


def _to_units(values: FloatArray, per_unit: int) -> IntArray:
    """Fixed-point integers, so window sums are exact and independent of how data was chunked."""
    return np.rint(values * per_unit).astype(np.int64)


def _check_settings(settings: TemSettings) -> None:
    ct = float(settings.ct_threshold_mm)
    cft = float(settings.cft_threshold_mm)
    if not 0.0 < ct < cft:
        raise ValueError(
            f"TEM thresholds must satisfy 0 < ct_threshold_mm < cft_threshold_mm; "
            f"got {ct:g} and {cft:g}"
        )
    if not float(settings.alpha_chart_mm_per_min) > 0.0:
        raise ValueError(
            f"alpha_chart_mm_per_min must be positive; got {settings.alpha_chart_mm_per_min}"
        )
    for name, minutes in [
        *(("amplitude_times_min", m) for m in settings.amplitude_times_min),
        ("lysis_index_time_min", settings.lysis_index_time_min),
    ]:
        if not float(minutes) > 0.0:
            raise ValueError(f"{name} must hold positive minutes; got {minutes}")


# --- smoothing and sustained crossings --------------------------------------------------------


@dataclass(frozen=True)
class _Smoothed:
    """Trailing-window means of a trace, each belonging to the mean time of its window."""

    sum_units: IntArray
    count: IntArray
    mean_mm: FloatArray
    t_ref_s: float
    lo: IntArray
    ends: IntArray
    _cum_t: IntArray

    def tau_s(self, which: IntArray | slice | int) -> FloatArray:
        """Centroid times of the selected windows (computed on demand: rarely all are needed)."""
        ends, lo = self.ends[which], self.lo[which]
        total = self._cum_t[ends + 1] - self._cum_t[lo]
        return np.asarray(total / ((ends + 1 - lo) * _UNITS_PER_S) + self.t_ref_s)


def _window_starts(
    t_units: IntArray, ends: IntArray, window_units: int, min_samples: int = 1
) -> IntArray:
    """First index of each window: the samples in (t[end] − window, t[end]], widened back to
    ``min_samples`` samples where fewer lie there (never before index 0)."""
    if ends.size == 0:
        return ends.copy()
    lo = _time_window_starts(t_units, ends, window_units)
    if min_samples > 1:
        np.minimum(lo, np.maximum(ends - (min_samples - 1), 0), out=lo)
    return lo


def _time_window_starts(t_units: IntArray, ends: IntArray, window_units: int) -> IntArray:
    """First index inside (t[end] − window, t[end]] for each end: ``np.searchsorted`` results,
    computed by guessing a constant sample count and searching only where the guess fails."""
    bounds = t_units[ends] - window_units
    middle = int(ends[ends.size // 2])
    span = middle - int(np.searchsorted(t_units, t_units[middle] - window_units, side="right"))
    lo = np.maximum(ends - span, 0)
    fits = t_units[lo] > bounds
    fits &= (lo == 0) | (t_units[np.maximum(lo - 1, 0)] <= bounds)
    wrong = np.flatnonzero(~fits)
    if wrong.size:
        lo[wrong] = np.searchsorted(t_units, bounds[wrong], side="right")
    return lo


def _smooth(
    t_units: IntArray,
    a_units: IntArray,
    t_ref_s: float,
    window_s: float,
    ends: IntArray | None = None,
    min_samples: int = 1,
) -> _Smoothed:
    """Mean over the samples of the ``window_s`` seconds (at least ``min_samples`` samples)
    ending at each index of ``ends``.

    Placing each mean at its window's centroid time makes it lag-free for a locally linear
    curve. Sums are integer, so identical samples give bit-identical results in any chunking;
    cumulative sums may wrap for absurdly long traces but window differences stay exact.
    """
    if ends is None:
        ends = np.arange(t_units.size, dtype=np.int64)
    lo = _window_starts(t_units, ends, round(window_s * _UNITS_PER_S), min_samples)
    cum_a = np.empty(t_units.size + 1, dtype=np.int64)
    cum_t = np.empty(t_units.size + 1, dtype=np.int64)
    cum_a[0] = cum_t[0] = 0
    np.cumsum(a_units, out=cum_a[1:])
    np.cumsum(t_units, out=cum_t[1:])
    count = ends + 1 - lo
    sum_a = cum_a[ends + 1] - cum_a[lo]
    mean = sum_a / (count * _UNITS_PER_MM)
    return _Smoothed(sum_a, count, mean, t_ref_s, lo, ends, cum_t)


@dataclass(frozen=True)
class _Crossing:
    """Outcome of a search for a sustained upward threshold crossing."""

    confirmed: int | None
    pending: int | None


def _first_sustained_crossing(
    above: BoolArray, window_lo: IntArray, first: int, sustain_samples: int
) -> _Crossing:
    """First index c ≥ first where ``above`` starts a run that lasts long enough to count.

    ``window_lo[i]`` is the first raw sample in the window of mean i, in the index space of
    ``above``. The run must hold from c through e: at least ``sustain_samples`` samples, and
    up to the first mean whose window no longer holds sample c, so one outlying sample, which
    lifts the means of the windows containing it, can never make a sustained run by itself.
    A run still open at the end of the data is returned as ``pending``. Index ``first`` counts
    as a run start when it is above.
    """
    n = above.size
    region = above[first:]
    starts = np.flatnonzero(region[1:] & ~region[:-1]) + first + 1
    if region.size and region[0]:
        starts = np.concatenate((np.array([first], dtype=np.int64), starts))
    if starts.size == 0:
        return _Crossing(None, None)
    # Each run ends at the first sample below the threshold after its start (n if none).
    below = np.append(np.flatnonzero(~region) + first, n)
    run_end = below[np.searchsorted(below, starts, side="right")]
    window_passed = np.searchsorted(window_lo, starts, side="right")
    needed = np.maximum(starts + (sustain_samples - 1), window_passed)
    ok = (needed < run_end) & (needed < n)
    hits = np.flatnonzero(ok)
    if hits.size:
        return _Crossing(int(starts[hits[0]]), None)
    last = int(starts[-1])
    return _Crossing(None, last if run_end[-1] == n else None)


def _interpolated_crossing(smoothed: _Smoothed, index: int, threshold_mm: float) -> float:
    """Time at which the smoothed amplitude passes the threshold between index-1 and index."""
    means = smoothed.mean_mm
    s0, s1 = float(means[index - 1]), float(means[index])
    t0, t1 = (float(x) for x in smoothed.tau_s(slice(index - 1, index + 1)))
    return t0 + (threshold_mm - s0) * (t1 - t0) / (s1 - s0)


# --- live clotting time -----------------------------------------------------------------------


CtStatus = Literal["searching", "found", "clotted_at_start"]


class CtDetector:
    """Live clotting-time detection that reports CT once, as soon as the crossing is sustained.

    Feed successive chunks of one channel's samples in any sizes: the result equals the CT of
    :func:`compute_tem_parameters` on the same data (the defaults are the ones it uses). The
    CT is reported about 1.5 × ``smoothing_s`` after the crossing (three to five samples at
    sampling rates below 3 Hz), when the sustain rule of docs/analysis.md is met.
    """

    def __init__(
        self,
        threshold_mm: float = 2.0,
        sustain_samples: int = CT_SUSTAIN_SAMPLES,
        smoothing_s: float = CT_SMOOTHING_S,
    ) -> None:
        if not threshold_mm > 0.0:
            raise ValueError(f"threshold_mm must be positive; got {threshold_mm}")
        if sustain_samples < 1:
            raise ValueError(f"sustain_samples must be at least 1; got {sustain_samples}")
        if not smoothing_s > 0.0:
            raise ValueError(f"smoothing_s must be positive; got {smoothing_s}")
        self.threshold_mm = float(threshold_mm)
        self.sustain_samples = int(sustain_samples)
        self.smoothing_s = float(smoothing_s)
        self._threshold_units = round(self.threshold_mm * _UNITS_PER_MM)
        self._t_ref_s: float | None = None
        self._last_t_s = -math.inf
        self._t_units: IntArray = np.empty(0, dtype=np.int64)
        self._a_units: IntArray = np.empty(0, dtype=np.int64)
        self._offset = 0
        self._valid_from = 0
        self._status: CtStatus = "searching"
        self._ct_s: float | None = None

    @property
    def status(self) -> CtStatus:
        """``searching``, ``found``, or ``clotted_at_start`` (already ≥ threshold at the start)."""
        return self._status

    @property
    def ct_s(self) -> float | None:
        """The clotting time once found, else None."""
        return self._ct_s

    def feed(self, t_s: npt.ArrayLike, amp_mm: npt.ArrayLike) -> float | None:
        """Add the next samples; return the CT in seconds on the call that detects it, else None."""
        t, a = _as_trace(t_s, amp_mm)
        if t.size == 0:
            return None
        if t[0] <= self._last_t_s:
            raise ValueError(
                f"t_s must continue to increase across chunks: {t[0]:g} s follows "
                f"{self._last_t_s:g} s"
            )
        self._last_t_s = float(t[-1])
        if self._status != "searching":
            return None
        if self._t_ref_s is None:
            self._t_ref_s = float(t[0])
        self._t_units = np.concatenate((self._t_units, _to_units(t - self._t_ref_s, _UNITS_PER_S)))
        self._a_units = np.concatenate((self._a_units, _to_units(a, _UNITS_PER_MM)))
        return self._scan()

    def _scan(self) -> float | None:
        start = self._valid_from
        ends = np.arange(start, self._t_units.size, dtype=np.int64)
        smoothed = _smooth(
            self._t_units,
            self._a_units,
            self._ref(),
            self.smoothing_s,
            ends,
            CT_MIN_WINDOW_SAMPLES,
        )
        above = smoothed.sum_units >= self._threshold_units * smoothed.count
        crossing = _first_sustained_crossing(above, smoothed.lo - start, 0, self.sustain_samples)
        if crossing.confirmed is not None:
            c = crossing.confirmed
            if self._offset + start + c == 0:
                self._status = "clotted_at_start"
            else:
                self._status = "found"
                self._ct_s = _interpolated_crossing(smoothed, c, self.threshold_mm)
            self._drop_buffers()
            return self._ct_s
        # Keep what the next call needs: the mean before a pending run (or the last mean, which
        # precedes any new run) and the raw samples of its window.
        last = above.size - 1
        needed = last if crossing.pending is None else max(crossing.pending - 1, 0)
        keep = int(smoothed.lo[needed])
        self._t_units = self._t_units[keep:]
        self._a_units = self._a_units[keep:]
        self._offset += keep
        self._valid_from = start + needed - keep
        return None

    def _ref(self) -> float:
        return 0.0 if self._t_ref_s is None else self._t_ref_s

    def _drop_buffers(self) -> None:
        self._t_units = np.empty(0, dtype=np.int64)
        self._a_units = np.empty(0, dtype=np.int64)


# --- offline analysis -------------------------------------------------------------------------


def _fit_slope(
    t: FloatArray, a: FloatArray, t_c: float, half_s: float, degree: int
) -> float | None:
    """dA/dt at t_c (mm/s) from a least-squares polynomial over t_c ± half_s, or None if too
    few samples lie there to fit it (fewer than ALPHA_MIN_POINTS, or fewer than two after t_c)."""
    lo = int(np.searchsorted(t, t_c - half_s, side="left"))
    hi = int(np.searchsorted(t, t_c + half_s, side="right"))
    x = (t[lo:hi] - t_c) / half_s
    if x.size < max(ALPHA_MIN_POINTS, degree + 2) or np.count_nonzero(x > 0.0) < 2:
        return None
    design = np.vander(x, degree + 1, increasing=True)
    coef = np.linalg.lstsq(design, a[lo:hi], rcond=None)[0]
    return float(coef[1]) / half_s


def _alpha_slope(t: FloatArray, a: FloatArray, ct_s: float, threshold_mm: float) -> float | None:
    """Slope at the CT point from a local quadratic fit whose window spans about ±1 mm."""
    at = int(np.searchsorted(t, ct_s))
    nearby = t[max(at - 10, 0) : at + 10]
    period = float(np.median(np.diff(nearby))) if nearby.size > 1 else 1.0
    min_half = max(ALPHA_MIN_HALF_WINDOW_S, 3.0 * period)
    rough = _fit_slope(t, a, ct_s, max(5.0, 5.0 * period), 1)
    if rough is None:
        return None
    span = min(ALPHA_HALF_SPAN_MM, 0.5 * threshold_mm)
    half = ALPHA_MAX_HALF_WINDOW_S if rough <= 0.0 else span / rough
    half = min(max(half, min_half), ALPHA_MAX_HALF_WINDOW_S)
    return _fit_slope(t, a, ct_s, half, 2)


def _level(
    t: FloatArray, t_units: IntArray, a_units: IntArray, t_ref: float
) -> tuple[FloatArray, FloatArray]:
    """The clot amplitude with noise averaged out: AMPLITUDE_SMOOTHING_S means at their centroid
    times, plus the end of a straight-line fit over the last window so the curve reaches t_end."""
    # Windows ending every LEVEL_STEP_S suffice for a curve already averaged over 20 s.
    grid = np.arange(0, int(t_units[-1]) + 1, round(LEVEL_STEP_S * _UNITS_PER_S))
    ends = np.unique(np.searchsorted(t_units, grid, side="left"))
    slow = _smooth(t_units, a_units, t_ref, AMPLITUDE_SMOOTHING_S, ends)
    times, means = slow.tau_s(slice(None)), slow.mean_mm
    t_end = float(t[-1])
    if t_end > float(times[-1]):
        lo = int(np.searchsorted(t, t_end - AMPLITUDE_SMOOTHING_S, side="right"))
        x = t[lo:] - t_end
        y = a_units[lo:] / _UNITS_PER_MM
        if x.size >= 3:
            end_value = float(np.polynomial.polynomial.polyfit(x, y, 1)[0])
        else:
            end_value = float(y[-1])
        times = np.append(times, t_end)
        means = np.append(means, end_value)
    return times, means


def _no_clot(duration_min: float, settings: TemSettings, style: Style) -> TemParameters:
    reason = (
        f"no clot: amplitude never reached {settings.ct_threshold_mm:g} mm "
        f"within {duration_min:.1f} min"
    )
    keys = (
        *_rotem_keys(settings),
        *("R_min", "K_min", "angle_deg", "MA_mm", "LY30_pct", "G_dyn_cm2"),
    )
    return TemParameters(
        ct_s=None,
        cft_s=None,
        alpha_deg=None,
        mcf_mm=None,
        t_mcf_s=None,
        amplitudes_mm={float(m): None for m in settings.amplitude_times_min},
        lysis_index_pct=None,
        ml_pct=None,
        ly30_pct=None,
        g_dyn_cm2=None,
        lysis_index_time_min=float(settings.lysis_index_time_min),
        style=style,
        notes=dict.fromkeys(keys, reason),
    )


def _rotem_keys(settings: TemSettings) -> list[str]:
    return [
        "CT_s",
        "CFT_s",
        "alpha_deg",
        "MCF_mm",
        *(amplitude_key(m) for m in settings.amplitude_times_min),
        _li_key(settings.lysis_index_time_min),
        "ML_pct",
    ]


def compute_tem_parameters(
    t_s: npt.ArrayLike,
    amp_mm: npt.ArrayLike,
    settings: TemSettings | None = None,
    style: str = "rotem",
) -> TemParameters:
    """All TEM parameters of one channel's trace (seconds from channel start, amplitude in mm).

    Raises ValueError for unusable input (mismatched lengths, non-increasing time, NaN).
    """
    chosen = _check_style(style)
    cfg: TemSettings = DefaultTemSettings() if settings is None else settings
    _check_settings(cfg)
    t, a = _as_trace(t_s, amp_mm)
    duration_min = float(t[-1]) / 60.0 if t.size else 0.0
    if t.size == 0:
        return _no_clot(duration_min, cfg, chosen)

    ct_thr = float(cfg.ct_threshold_mm)
    cft_thr = float(cfg.cft_threshold_mm)
    t_ref = float(t[0])
    t_units = _to_units(t - t_ref, _UNITS_PER_S)
    a_units = _to_units(a, _UNITS_PER_MM)
    fast = _smooth(t_units, a_units, t_ref, CT_SMOOTHING_S, None, CT_MIN_WINDOW_SAMPLES)
    above_ct = fast.sum_units >= round(ct_thr * _UNITS_PER_MM) * fast.count
    ct_cross = _first_sustained_crossing(above_ct, fast.lo, 0, CT_SUSTAIN_SAMPLES)
    if ct_cross.confirmed is None:
        return _no_clot(duration_min, cfg, chosen)

    notes: dict[str, str] = {}

    def note(rotem_key: str | None, teg_key: str | None, text: str) -> None:
        for key in (rotem_key, teg_key):
            if key is not None:
                notes[key] = text.replace("{name}", _display_name(key))

    c = ct_cross.confirmed
    ct_s: float | None = None
    cft_s: float | None = None
    alpha_deg: float | None = None
    if c == 0:
        text = (
            f"{{name}} undetermined: amplitude was already ≥ {ct_thr:g} mm "
            "at the start of the trace"
        )
        for rk, tk in (("CT_s", "R_min"), ("CFT_s", "K_min"), ("alpha_deg", "angle_deg")):
            note(rk, tk, text)
    else:
        ct_s = _interpolated_crossing(fast, c, ct_thr)
        above_cft = fast.sum_units >= round(cft_thr * _UNITS_PER_MM) * fast.count
        cft_cross = _first_sustained_crossing(above_cft, fast.lo, c, CT_SUSTAIN_SAMPLES)
        if cft_cross.confirmed is None:
            note(
                "CFT_s",
                "K_min",
                f"{{name}} not reached: amplitude never reached {cft_thr:g} mm "
                f"within {duration_min:.1f} min",
            )
        else:
            cft_s = _interpolated_crossing(fast, cft_cross.confirmed, cft_thr) - ct_s
        slope = _alpha_slope(t, a, ct_s, ct_thr)
        if slope is None:
            note("alpha_deg", "angle_deg", "{name} undetermined: too few samples around CT")
        else:
            tan_alpha = slope * 60.0 / float(cfg.alpha_chart_mm_per_min)
            alpha_deg = math.degrees(math.atan(tan_alpha))

    level_t, level = _level(t, t_units, a_units, t_ref)
    peak = int(np.argmax(level))
    mcf = float(level[peak])
    t_mcf = float(level_t[peak])
    t_end = float(t[-1])

    def amplitude_at(when_s: float) -> float:
        return float(np.interp(when_s, level_t, level))

    amplitudes: dict[float, float | None] = {}
    lysis_index: float | None = None
    li_minutes = float(cfg.lysis_index_time_min)
    for minutes in cfg.amplitude_times_min:
        key = amplitude_key(minutes)
        if ct_s is None:
            amplitudes[float(minutes)] = None
            note(key, None, f"{{name}} undetermined: no CT, amplitude was already ≥ {ct_thr:g} mm")
        elif ct_s + 60.0 * float(minutes) > t_end:
            amplitudes[float(minutes)] = None
            note(key, None, _too_short(minutes, "CT", (t_end - ct_s) / 60.0))
        else:
            amplitudes[float(minutes)] = amplitude_at(ct_s + 60.0 * float(minutes))
    li_key = _li_key(li_minutes)
    if ct_s is None:
        note(li_key, None, f"{{name}} undetermined: no CT, amplitude was already ≥ {ct_thr:g} mm")
    elif ct_s + 60.0 * li_minutes > t_end:
        note(li_key, None, _too_short(li_minutes, "CT", (t_end - ct_s) / 60.0))
    elif mcf > 0.0:
        lysis_index = amplitude_at(ct_s + 60.0 * li_minutes) / mcf * 100.0

    ml: float | None = None
    ly30: float | None = None
    if mcf <= 0.0:
        text = f"{{name}} undefined: MCF = {mcf:.2f} mm is not positive"
        for key in (li_key, "ML_pct", "LY30_pct"):
            note(key, None, text)
    else:
        ml = (mcf - float(np.min(level[peak:]))) / mcf * 100.0
        if t_mcf + 1800.0 > t_end:
            note(None, "LY30_pct", _too_short(30.0, "MA", (t_end - t_mcf) / 60.0))
        else:
            ly30 = (mcf - amplitude_at(t_mcf + 1800.0)) / mcf * 100.0
    g: float | None = None
    if 0.0 < mcf < 100.0:
        g = 5000.0 * mcf / (100.0 - mcf)
    else:
        note(None, "G_dyn_cm2", f"{{name}} undefined: MA = {mcf:.2f} mm is outside (0, 100) mm")

    return TemParameters(
        ct_s=ct_s,
        cft_s=cft_s,
        alpha_deg=alpha_deg,
        mcf_mm=mcf,
        t_mcf_s=t_mcf,
        amplitudes_mm=amplitudes,
        lysis_index_pct=lysis_index,
        ml_pct=ml,
        ly30_pct=ly30,
        g_dyn_cm2=g,
        lysis_index_time_min=li_minutes,
        style=chosen,
        notes=notes,
    )


def _display_name(key: str) -> str:
    return key.split("_", 1)[0]


def _too_short(minutes: float, anchor: str, available_min: float) -> str:
    return (
        f"{{name}} not reached: the trace ends {available_min:.1f} min after {anchor} "
        f"(needs {minutes:g} min)"
    )
