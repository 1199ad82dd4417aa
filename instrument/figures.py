"""Figures for reports (PNG through matplotlib's Agg backend; no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def standard_curve_png(result: Any, path: Path) -> Path:
    """The ELISA standard curve: standards, the fitted curve, samples on it, LLOQ/ULOQ."""
    from instrument.analysis.elisa import standard_curve_points

    plt = _pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    x, y = standard_curve_points(result, n=200)
    ax.plot(x, y, color="#1f4e79", lw=1.8, label=f"{result.model} fit")
    for std in result.standards:
        ax.scatter(
            [std.conc_ug_per_l] * len(std.od_net),
            std.od_net,
            color="#1f4e79" if std.backcalc_ok else "#c00000",
            zorder=3,
            s=22,
        )
    for s in result.samples.values():
        if s.value_ug_per_l is not None and s.dilution > 0:
            ax.scatter(
                [s.value_ug_per_l / s.dilution], [s.od_net_mean], marker="x", color="#7f7f7f"
            )
    for limit, name in ((result.lloq_ug_per_l, "LLOQ"), (result.uloq_ug_per_l, "ULOQ")):
        if limit:
            ax.axvline(limit, color="#999999", ls="--", lw=0.8)
            ax.text(limit, ax.get_ylim()[1] * 0.95, f" {name}", fontsize=8, color="#555555")
    ax.set_xscale("log")
    ax.set_xlabel("TAT (µg/L, in the well)")
    ax.set_ylabel("net OD")
    verdict = "QC passed" if result.passed else "QC FAILED"
    title = f"TAT standard curve — {verdict}"
    if result.simulated:
        title += " — SIMULATED"
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
