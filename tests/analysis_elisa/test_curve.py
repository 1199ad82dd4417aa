"""4PL/5PL models, inverses and the weighted fit against an independent reference fit."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import curve_fit

from instrument.analysis.elisa import (
    CurveFitError,
    fit_curve,
    inverse_4pl,
    inverse_5pl,
    logistic_4pl,
    logistic_5pl,
)
from tests.analysis_elisa.synthetic import KIT_4PL, KIT_5PL, STANDARD_LEVELS, true_od

KIT = (KIT_4PL["a"], KIT_4PL["b"], KIT_4PL["c"], KIT_4PL["d"])
LEVELS_5PL = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)


def textbook_4pl(x: np.ndarray, a: float, b: float, c: float, d: float) -> np.ndarray:
    """The 4PL written out directly, independent of the module under test."""
    return d + (a - d) / (1.0 + (x / c) ** b)


def textbook_inverse_4pl(y: float, a: float, b: float, c: float, d: float) -> float:
    return float(c * ((a - d) / (y - d) - 1.0) ** (1.0 / b))


def noisy_standard_means(seed: int, cv: float = 0.03) -> tuple[np.ndarray, np.ndarray]:
    """Duplicate means of the kit curve with multiplicative noise (net of background a)."""
    rng = np.random.default_rng(seed)
    x = np.array(STANDARD_LEVELS)
    clean = np.array([true_od(c, KIT_4PL) for c in x]) - KIT_4PL["a"]
    reps = clean[:, None] * (1.0 + cv * rng.normal(size=(x.size, 2)))
    return x, reps.mean(axis=1)


def test_models_match_the_textbook_formulas() -> None:
    x = np.geomspace(0.1, 1000, 50)
    assert np.allclose(logistic_4pl(x, *KIT), textbook_4pl(x, *KIT), rtol=1e-12)
    p = KIT_5PL
    expected = p["d"] + (p["a"] - p["d"]) / (1 + (x / p["c"]) ** p["b"]) ** p["g"]
    assert np.allclose(logistic_5pl(x, *p.values()), expected, rtol=1e-12)
    assert logistic_4pl(0.0, *KIT) == pytest.approx(KIT[0])


def test_inverses_undo_the_models() -> None:
    x = np.geomspace(0.01, 5000, 80)
    assert np.allclose(inverse_4pl(logistic_4pl(x, *KIT), *KIT), x, rtol=1e-7)
    p = tuple(KIT_5PL.values())
    assert np.allclose(inverse_5pl(logistic_5pl(x, *p), *p), x, rtol=1e-7)
    y = 1.234
    assert float(inverse_4pl(y, *KIT)) == pytest.approx(textbook_inverse_4pl(y, *KIT), rel=1e-12)


def test_inverse_is_nan_outside_the_asymptotes_without_warnings() -> None:
    # filterwarnings=error turns any numpy RuntimeWarning into a failure here.
    ys = np.array([-1.0, 0.0, 0.05, 3.2, 3.3, 1e300, np.inf, -np.inf, np.nan])
    assert np.all(np.isnan(inverse_4pl(ys, *KIT)))
    assert np.all(np.isnan(inverse_5pl(ys, *KIT_5PL.values())))
    assert np.isnan(inverse_4pl(1.0, 1.0, 1.3, 25.0, 1.0))  # flat curve
    # Just inside the asymptotes: extreme but finite concentrations.
    tiny = float(inverse_4pl(0.05 + 1e-12, *KIT))
    huge = float(inverse_4pl(3.2 - 1e-12, *KIT))
    assert 0 < tiny < 1e-6 and huge > 1e6 and math.isfinite(huge)


def test_models_handle_extreme_inputs_without_warnings() -> None:
    x = np.array([0.0, 1e-300, 1e300, np.inf, np.nan, -1.0])
    y = logistic_5pl(x, 0.05, 10.0, 25.0, 3.2, 10.0)
    assert y[0] == 0.05 and y[1] == pytest.approx(0.05) and y[2] == pytest.approx(3.2)
    assert y[3] == pytest.approx(3.2) and np.isnan(y[4]) and np.isnan(y[5])


def test_noise_free_4pl_is_recovered_exactly() -> None:
    x = np.array(STANDARD_LEVELS)
    fit = fit_curve(x, textbook_4pl(x, *KIT), "4PL")
    for name, true in zip("abcd", KIT, strict=True):
        assert fit.params[name] == pytest.approx(true, rel=1e-4, abs=1e-6)
    assert fit.r_squared == pytest.approx(1.0, abs=1e-10)
    assert fit.weighting.startswith("1/y^2")


@pytest.mark.parametrize("seed", range(20))
def test_weighted_fit_agrees_with_an_independent_reference_fit(seed: int) -> None:
    x, y = noisy_standard_means(seed)
    fit = fit_curve(x, y, "4PL")

    # Same weighting (sigma ∝ y), different optimiser (Levenberg–Marquardt) and parametrisation.
    ref, _ = curve_fit(textbook_4pl, x, y, p0=[0.0, 1.0, 20.0, 3.0], sigma=y, maxfev=20000)
    for name, value in zip("abcd", ref, strict=True):
        assert fit.params[name] == pytest.approx(value, rel=0.02, abs=0.005), name
    for level, od in zip(x, y, strict=True):
        ours = fit.concentration(float(od))
        assert ours == pytest.approx(textbook_inverse_4pl(od, *ref), rel=0.01)
        assert ours == pytest.approx(level, rel=0.15)


def test_weighting_matters_at_the_low_end_only() -> None:
    """An unweighted reference fit agrees in the upper range but misreads the lowest standard."""
    ours_low, unweighted_low = [], []
    for seed in range(40):
        x, y = noisy_standard_means(seed)
        fit = fit_curve(x, y, "4PL")
        ref, _ = curve_fit(textbook_4pl, x, y, p0=[0.0, 1.0, 20.0, 3.0], maxfev=20000)
        for level, od in zip(x, y, strict=True):
            ours = fit.concentration(float(od))
            assert ours is not None
            if level >= 8:
                assert ours == pytest.approx(textbook_inverse_4pl(od, *ref), rel=0.05)
        ours_low.append(abs(float(fit.inverse(y[0])) / x[0] - 1))
        unweighted_low.append(abs(textbook_inverse_4pl(y[0], *ref) / x[0] - 1))
    assert np.mean(ours_low) < 0.02
    assert np.mean(ours_low) < 0.5 * np.mean(unweighted_low)


def test_5pl_recovers_an_asymmetric_curve_that_4pl_cannot() -> None:
    x = np.array(LEVELS_5PL)
    y = logistic_5pl(x, *KIT_5PL.values())
    fit5 = fit_curve(x, y, "5PL")
    for name, true in KIT_5PL.items():
        assert fit5.params[name] == pytest.approx(true, rel=1e-3, abs=1e-5), name
    fit4 = fit_curve(x, y, "4PL")
    worst4 = float(np.max(np.abs(fit4.inverse(y) / x - 1)))
    worst5 = float(np.max(np.abs(fit5.inverse(y) / x - 1)))
    assert worst5 < 1e-4 < 0.02 < worst4


def test_decreasing_curves_fit_too() -> None:
    x = np.array(STANDARD_LEVELS)
    y = textbook_4pl(x, 2.5, 1.1, 12.0, 0.1)  # competitive format: signal falls with analyte
    fit = fit_curve(x, y, "4PL")
    assert fit.params["a"] == pytest.approx(2.5, rel=1e-3)
    assert fit.concentration(float(y[2])) == pytest.approx(8.0, rel=1e-4)


@pytest.mark.parametrize(
    ("x", "y", "model", "message"),
    [
        ([1, 2, 4], [0.1, 0.2, 0.4], "4PL", "at least 4 distinct standard levels, got 3"),
        ([1, 2, 4, 8], [0.1, 0.2, 0.4, 0.8], "5PL", "at least 5 distinct"),
        ([0, 2, 4, 8, 16], [0.1, 0.2, 0.4, 0.8, 1.6], "4PL", "must be > 0"),
        ([1, 2, 4, 8, 16], [0.1, 0.2, float("nan"), 0.8, 1.6], "4PL", "finite"),
        ([1, 2, 4, 8, 16], [0.5] * 5, "4PL", "same response"),
        ([1, 2, 4, 8], [0.1, 0.2, 0.4], "4PL", "4 concentrations but 3 responses"),
        ([1, 2, 4, 8, 16], [0.1, 0.2, 0.4, 0.8, 1.6], "6PL", "unknown curve model"),
    ],
)
def test_fit_rejects_unusable_standards(
    x: list[float], y: list[float], model: str, message: str
) -> None:
    with pytest.raises(CurveFitError, match=message):
        fit_curve(x, y, model)  # type: ignore[arg-type]


def test_fit_reports_non_convergence(monkeypatch: pytest.MonkeyPatch) -> None:
    import scipy.optimize

    class NotConverged:
        success = False
        message = "The maximum number of function evaluations is exceeded."
        x = np.zeros(4)
        cost = math.inf

    monkeypatch.setattr(scipy.optimize, "least_squares", lambda *a, **k: NotConverged())
    x = np.array(STANDARD_LEVELS)
    with pytest.raises(
        CurveFitError, match=r"4PL fit of 6 standards did not converge \(The maximum"
    ):
        fit_curve(x, textbook_4pl(x, *KIT))


finite = st.floats(-1e6, 1e6, allow_nan=False)
positive = st.floats(1e-3, 1e3)


@settings(max_examples=300, deadline=None, database=None)
@given(
    y=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=8),
    a=finite,
    d=finite,
    b=st.floats(0.1, 10),
    c=positive,
    g=st.floats(0.1, 10),
)
def test_inverse_never_warns_and_round_trips(
    y: list[float], a: float, d: float, b: float, c: float, g: float
) -> None:
    x = inverse_5pl(y, a, b, c, d, g)
    assert x.shape == (len(y),)
    found = np.isfinite(x)
    assert np.all(x[found] >= 0)
    for yi, xi in zip(np.asarray(y)[found], x[found], strict=True):
        if 1e-6 < xi < 1e6 and abs(a - d) > 1e-6:
            back = float(logistic_5pl(xi, a, b, c, d, g))
            assert back == pytest.approx(yi, rel=1e-6, abs=1e-9 * max(1.0, abs(a), abs(d)))


def test_extreme_caller_parameters_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(inverse_4pl(1e300, 0.0, 1.0, 1.0, 1e-310))  # (y − d)/(a − d) overflows
        y = logistic_4pl([1e300, np.inf], 0.05, 0.0, 25.0, 3.2)  # b = 0: 0 · ∞
        assert y[0] == pytest.approx(1.625) and np.isnan(y[1])
        tiny = float(inverse_5pl(0.5, 0.0, 1.0, 1.0, 1.0, 1e300))
        assert 0 <= tiny < 1e-290
