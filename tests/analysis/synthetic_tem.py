"""Synthetic thromboelastometry traces with exact ground truth from the continuous model.

A(t) = 0 before t0, then MCF·[1 − exp(−k(t − t0))]^n · lysis(t). With u = (A/MCF)^(1/n), the
time after t0 to reach A is −ln(1 − u)/k, so t0 and k follow in closed form from CT and CFT.
lysis(t) = 1 − L·(1 − exp(−((t − t_L)/τ_L)²)) after the onset t_L: smooth, so the peak is too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize_scalar

FloatArray = npt.NDArray[np.float64]

NOISE_SD_MM = 0.05
QUANTUM_MM = 0.01
CT_THRESHOLD_MM = 2.0
CFT_THRESHOLD_MM = 20.0


def _rise_time(amplitude_mm: float, mcf_mm: float, n: float, k_per_s: float) -> float:
    """Time after t0 at which the un-lysed curve reaches ``amplitude_mm``."""
    u = (amplitude_mm / mcf_mm) ** (1.0 / n)
    return -math.log1p(-u) / k_per_s


@dataclass(frozen=True)
class TraceSpec:
    """One continuous TEM curve and how long it is recorded."""

    ct_s: float
    mcf_mm: float
    n: float
    k_per_s: float
    duration_s: float = 3600.0
    lysis_fraction: float = 0.0
    lysis_onset_s: float = math.inf
    lysis_tau_s: float = 900.0

    @classmethod
    def from_cft(cls, ct_s: float, cft_s: float, mcf_mm: float, n: float, **kw: float) -> TraceSpec:
        """A curve that reaches 2 mm at ``ct_s`` and 20 mm ``cft_s`` later (needs MCF > 20)."""
        u2 = (CT_THRESHOLD_MM / mcf_mm) ** (1.0 / n)
        u20 = (CFT_THRESHOLD_MM / mcf_mm) ** (1.0 / n)
        k = (math.log1p(-u2) - math.log1p(-u20)) / cft_s
        return cls(ct_s=ct_s, mcf_mm=mcf_mm, n=n, k_per_s=k, **kw)

    @property
    def t0_s(self) -> float:
        if self.mcf_mm <= CT_THRESHOLD_MM:
            return self.ct_s
        return self.ct_s - _rise_time(CT_THRESHOLD_MM, self.mcf_mm, self.n, self.k_per_s)

    def amplitude(self, t_s: FloatArray | float) -> FloatArray:
        """Noise-free amplitude (mm) at the given times."""
        t = np.asarray(t_s, dtype=np.float64)
        tau = np.maximum(t - self.t0_s, 0.0)
        rise = self.mcf_mm * (-np.expm1(-self.k_per_s * tau)) ** self.n
        return rise * self.lysis(t)

    def lysis(self, t_s: FloatArray) -> FloatArray:
        x = np.maximum(t_s - self.lysis_onset_s, 0.0) / self.lysis_tau_s
        return 1.0 - self.lysis_fraction * (-np.expm1(-(x**2)))

    def slope_at_ct(self) -> float:
        """dA/dt (mm/s) at CT, where no lysis has started."""
        u = float((CT_THRESHOLD_MM / self.mcf_mm) ** (1.0 / self.n))
        return self.mcf_mm * self.n * float(u ** (self.n - 1.0)) * self.k_per_s * (1.0 - u)


@dataclass(frozen=True)
class Truth:
    """Parameters of the continuous curve, None where the definition is not reached."""

    ct_s: float | None
    cft_s: float | None
    alpha_deg: float | None
    slope_mm_s: float | None
    mcf_mm: float | None
    t_mcf_s: float | None
    amplitudes_mm: dict[float, float | None]
    li30_pct: float | None
    ml_pct: float | None
    ly30_pct: float | None


def truth_of(spec: TraceSpec, amplitude_times_min: tuple[float, ...] = (5, 10, 20)) -> Truth:
    """Exact parameters of ``spec`` over its recorded duration."""
    end = spec.duration_s
    none_amps: dict[float, float | None] = {float(m): None for m in amplitude_times_min}
    if spec.mcf_mm <= CT_THRESHOLD_MM or spec.ct_s > end:
        return Truth(None, None, None, None, None, None, none_amps, None, None, None)

    def a(t: float) -> float:
        return float(spec.amplitude(t))

    grid = np.arange(spec.ct_s, end, 0.5)
    grid = np.append(grid, end)
    values = spec.amplitude(grid)
    i = int(np.argmax(values))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    if hi > lo:
        best = minimize_scalar(lambda x: -a(x), bounds=(lo, hi), method="bounded")
        t_mcf = float(best.x) if -best.fun >= values[i] else float(grid[i])
    else:
        t_mcf = float(grid[i])
    mcf = max(a(t_mcf), float(values[i]))
    after = grid >= t_mcf
    minimum = min(float(np.min(values[after])), mcf) if after.any() else mcf

    cft: float | None = None
    if spec.mcf_mm > CFT_THRESHOLD_MM:
        t20 = spec.t0_s + _rise_time(CFT_THRESHOLD_MM, spec.mcf_mm, spec.n, spec.k_per_s)
        assert t20 < spec.lysis_onset_s, "lysis before 20 mm is outside this model's use"
        if t20 <= end:
            cft = t20 - spec.ct_s
    slope = spec.slope_at_ct()
    alpha = math.degrees(math.atan(slope * 60.0 / 2.0))
    amps = {
        float(m): (a(spec.ct_s + 60.0 * m) if spec.ct_s + 60.0 * m <= end else None)
        for m in amplitude_times_min
    }
    li30 = a(spec.ct_s + 1800.0) / mcf * 100.0 if spec.ct_s + 1800.0 <= end else None
    ly30 = (mcf - a(t_mcf + 1800.0)) / mcf * 100.0 if t_mcf + 1800.0 <= end else None
    return Truth(
        ct_s=spec.ct_s,
        cft_s=cft,
        alpha_deg=alpha,
        slope_mm_s=slope,
        mcf_mm=mcf,
        t_mcf_s=t_mcf,
        amplitudes_mm=amps,
        li30_pct=li30,
        ml_pct=(mcf - minimum) / mcf * 100.0,
        ly30_pct=ly30,
    )


def sample(
    spec: TraceSpec,
    rate_hz: float,
    seed: int,
    noise_sd_mm: float = NOISE_SD_MM,
    quantum_mm: float | None = QUANTUM_MM,
    missing: int = 0,
) -> tuple[FloatArray, FloatArray]:
    """Sample ``spec`` at ``rate_hz`` from t = 0 with Gaussian noise, quantisation and gaps."""
    rng = np.random.default_rng(seed)
    n = math.floor(spec.duration_s * rate_hz + 1e-9) + 1
    t = np.arange(n, dtype=np.float64) / rate_hz
    amp = spec.amplitude(t)
    if noise_sd_mm > 0.0:
        amp = amp + rng.normal(0.0, noise_sd_mm, size=n)
    if quantum_mm is not None:
        amp = np.round(amp / quantum_mm) * quantum_mm
    if missing:
        drop = rng.choice(np.arange(1, n - 1), size=missing, replace=False)
        keep = np.ones(n, dtype=bool)
        keep[drop] = False
        t, amp = t[keep], amp[keep]
    return t, amp


CATEGORIES = ("normal", "extem", "hypo", "hypo_weak", "hyper", "lysis", "short", "no_clot")


def random_spec(category: str, seed: int) -> TraceSpec:
    """A curve typical of a clinical category, drawn deterministically from ``seed``."""
    rng = np.random.default_rng(10_000 + seed)

    def u(lo: float, hi: float) -> float:
        return float(rng.uniform(lo, hi))

    n = u(1.0, 3.5)
    if category == "normal":  # recalcified whole blood (NATEM-like), a little lysis at most
        spec = TraceSpec.from_cft(u(256, 767), u(58, 285), u(49, 73), n)
        return replace(spec, lysis_fraction=u(0.0, 0.08), lysis_onset_s=spec.ct_s + u(900, 1500))
    if category == "extem":  # tissue-factor activated: short CT
        return TraceSpec.from_cft(u(42, 74), u(45, 160), u(50, 72), n)
    if category == "hypo":  # long CT, weak clot that still reaches 20 mm
        return TraceSpec.from_cft(u(800, 1500), u(300, 700), u(28, 45), n)
    if category == "hypo_weak":  # MCF below 20 mm: CFT is not reached
        return TraceSpec(ct_s=u(700, 1500), mcf_mm=u(6, 17), n=n, k_per_s=u(0.002, 0.006))
    if category == "hyper":  # short CT, firm clot
        return TraceSpec.from_cft(u(30, 200), u(30, 60), u(70, 82), n)
    if category == "lysis":  # fibrinolysis: ML > 15 %, LI30 < 85 %
        spec = TraceSpec.from_cft(u(60, 600), u(50, 200), u(50, 70), n)
        return replace(
            spec,
            lysis_fraction=u(0.35, 0.8),
            lysis_onset_s=spec.ct_s + u(300, 700),
            lysis_tau_s=u(500, 1000),
        )
    if category == "short":  # recording stopped early: A20/LI30/LY30 not reached
        spec = TraceSpec.from_cft(u(300, 700), u(80, 250), u(45, 70), n)
        return replace(spec, duration_s=spec.ct_s + u(480, 1100))
    if category == "no_clot":  # nothing, or a weak rise that stays below 2 mm
        return TraceSpec(ct_s=u(300, 900), mcf_mm=u(0.0, 1.5), n=n, k_per_s=0.003)
    raise ValueError(f"unknown category {category!r}")
