"""% CD142+ and CD142 MFI of an MSC lot from flow-cytometry files (FCS 3.0/3.1, also 2.0).

The gate (docs/lab-integration.md): the positivity threshold is the 99th percentile of the
same channel in the isotype or unstained control file; % CD142+ is the share of the stained
sample's events above it (so the control itself is ≈ 1 % positive by construction, and that
1 % is not subtracted). The MFI stored on the lot is the median of the stained sample's
channel over all events; the median of the positive events is reported too. Values are the
file's channel values after the scaling its keywords define ($PnE log decades, $PnG gain).
Events that are not finite are left out.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from instrument.errors import HemocompatError
from instrument.storage import Store

__all__ = [
    "Cd142Gate",
    "Cd142Import",
    "FcsChannel",
    "FcsFile",
    "FcsImportError",
    "cd142_gate",
    "histogram_png",
    "import_cd142",
    "parse_fcs",
    "read_fcs",
]

#: Percentile of the control's events that sets the positivity threshold.
DEFAULT_PERCENTILE = 99.0


class FcsImportError(HemocompatError):
    """An FCS file that cannot be read or used; the message names the file."""


@dataclass(frozen=True, slots=True)
class FcsChannel:
    """A parameter of the file: its position (0-based), $PnN (short name) and $PnS (label)."""

    index: int
    pnn: str
    pns: str

    def describe(self) -> str:
        return f"{self.pnn} ({self.pns})" if self.pns else self.pnn


@dataclass(frozen=True, slots=True)
class FcsFile:
    """An FCS data set: its channels, events (one row per event) and provenance."""

    path: Path
    version: str
    channels: tuple[FcsChannel, ...]
    events: NDArray[np.float64]
    sha256: str
    keywords: dict[str, str]

    def channel(self, name: str) -> FcsChannel:
        """The channel named ``name`` by $PnN or $PnS (exact first, then ignoring case)."""
        folded = name.lower()
        for found in (
            [c for c in self.channels if c.pnn == name],
            [c for c in self.channels if c.pns == name],
            [c for c in self.channels if c.pnn.lower() == folded],
            [c for c in self.channels if c.pns.lower() == folded],
        ):
            if found:
                return found[0]
        listing = ", ".join(c.describe() for c in self.channels)
        raise FcsImportError(
            f"{self.path}: no channel {name!r} (by $PnN or $PnS). Channels in this file: "
            f"{listing}. Give one of them with --channel."
        )

    def values(self, channel: FcsChannel) -> NDArray[np.float64]:
        """The finite values of one channel."""
        column = self.events[:, channel.index]
        return column[np.isfinite(column)]


def read_fcs(path: Path | str) -> FcsFile:
    """Read an FCS file with flowio; any defect raises :class:`FcsImportError` naming it."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise FcsImportError(f"cannot read {p}: {exc.strerror or exc}") from None
    return parse_fcs(raw, p)


def parse_fcs(raw: bytes, path: Path | str = "<bytes>") -> FcsFile:
    """Decode the bytes of an FCS file (``path`` names it in messages and the result); any
    defect raises :class:`FcsImportError`."""
    import flowio

    p = Path(path)
    if not raw.startswith(b"FCS"):
        raise FcsImportError(
            f"{p} is not an FCS file (it does not start with 'FCS'); export the sample from the "
            f"cytometer software as FCS 3.0 or 3.1"
        )
    try:
        stream = io.BytesIO(raw)
        stream.name = p.name
        data = flowio.FlowData(stream)
        events = np.asarray(data.as_array(preprocess=True), dtype=np.float64)
        channels = tuple(
            FcsChannel(k - 1, str(data.channels[k]["pnn"]), str(data.channels[k]["pns"] or ""))
            for k in sorted(int(n) for n in data.channels)
        )
        expected = int(data.event_count)
    except Exception as exc:  # flowio raises many kinds on damaged files
        raise FcsImportError(
            f"{p} is not a readable FCS file ({type(exc).__name__}: {exc}); it may be truncated "
            f"or damaged. Export it again from the cytometer software."
        ) from None
    if events.ndim != 2 or events.shape[0] != expected or events.shape[1] != len(channels):
        raise FcsImportError(
            f"{p}: the file declares {expected} events × {len(channels)} channels but holds "
            f"{events.size} values; it may be truncated. Export it again."
        )
    if expected == 0:
        raise FcsImportError(f"{p} holds no events")
    keywords = {str(k): str(v) for k, v in data.text.items()}
    sha256 = hashlib.sha256(raw).hexdigest()
    return FcsFile(p, str(data.version), channels, events, sha256, keywords)


@dataclass(frozen=True, slots=True)
class Cd142Gate:
    """The gate and what it gives. ``pct_positive``: % of the sample's events above
    ``threshold``; ``mfi``: median of all the sample's events; ``positive_median``: median of
    the events above the threshold (None if there are none)."""

    threshold: float
    percentile: float
    pct_positive: float
    mfi: float
    positive_median: float | None
    control_pct_positive: float
    n_events: int
    n_control: int


def cd142_gate(
    sample: NDArray[np.float64],
    control: NDArray[np.float64],
    percentile: float = DEFAULT_PERCENTILE,
) -> Cd142Gate:
    """Gate ``sample`` at the ``percentile`` of ``control`` (same channel)."""
    if not 50.0 <= percentile < 100.0:
        raise ValueError(f"percentile must be from 50 to < 100, got {percentile!r}")
    if sample.size == 0 or control.size == 0:
        raise ValueError("the sample and the control need events")
    threshold = float(np.percentile(control, percentile))
    positive = sample[sample > threshold]
    return Cd142Gate(
        threshold=threshold,
        percentile=percentile,
        pct_positive=100.0 * positive.size / sample.size,
        mfi=float(np.median(sample)),
        positive_median=float(np.median(positive)) if positive.size else None,
        control_pct_positive=100.0 * int(np.count_nonzero(control > threshold)) / control.size,
        n_events=int(sample.size),
        n_control=int(control.size),
    )


@dataclass(frozen=True, slots=True)
class Cd142Import:
    """A completed import: the gate, the channel, both files' provenance, the figure."""

    lot_id: str
    channel: FcsChannel
    gate: Cd142Gate
    sample_file: Path
    sample_sha256: str
    control_file: Path
    control_sha256: str
    png: Path | None
    note: str


def import_cd142(
    store: Store,
    lot_id: str,
    sample_path: Path | str,
    *,
    channel: str,
    control_path: Path | str,
    percentile: float = DEFAULT_PERCENTILE,
    png: Path | str | None = None,
) -> Cd142Import:
    """Gate the stained sample against the control, store % CD142+ and MFI on the lot (with
    both files' SHA-256 in the lot's notes) and draw the histogram overlay if ``png``."""
    from instrument import lots

    lots.get_lot(store, lot_id)  # fail before reading files if the lot is unknown
    sample = read_fcs(sample_path)
    control = read_fcs(control_path)
    chosen = sample.channel(channel)
    try:
        control_channel = control.channel(channel)
    except FcsImportError:
        try:
            control_channel = control.channel(chosen.pnn)
        except FcsImportError as exc:
            raise FcsImportError(
                f"the control file has no channel {channel!r} or {chosen.pnn!r}: {exc}"
            ) from None
    sample_values = sample.values(chosen)
    control_values = control.values(control_channel)
    if sample_values.size == 0 or control_values.size == 0:
        empty = sample.path if sample_values.size == 0 else control.path
        raise FcsImportError(f"{empty}: channel {chosen.describe()} has no finite values")
    gate = cd142_gate(sample_values, control_values, percentile)
    pos = "none" if gate.positive_median is None else f"{gate.positive_median:.6g}"
    when = datetime.now(UTC).isoformat(timespec="seconds")
    note = (
        f"CD142 by flow cytometry ({when}): {gate.pct_positive:.2f} % positive, MFI "
        f"{gate.mfi:.6g} (positive-population median {pos}); channel {chosen.describe()}, "
        f"gate > {gate.threshold:.6g} = control p{gate.percentile:g}; sample "
        f"{sample.path.name} ({gate.n_events} events, sha256 {sample.sha256}); control "
        f"{control.path.name} ({gate.n_control} events, sha256 {control.sha256})"
    )
    lots.record_cd142(
        store, lot_id, pct=round(gate.pct_positive, 2), mfi=round(gate.mfi, 4), note=note
    )
    figure = None
    if png is not None:
        figure = histogram_png(
            sample_values,
            control_values,
            gate,
            Path(png),
            title=f"{lot_id}: CD142 ({chosen.describe()})",
        )
    return Cd142Import(
        lot_id,
        chosen,
        gate,
        sample.path,
        sample.sha256,
        control.path,
        control.sha256,
        figure,
        note,
    )


def histogram_png(
    sample: NDArray[np.float64],
    control: NDArray[np.float64],
    gate: Cd142Gate,
    path: Path,
    *,
    title: str,
) -> Path:
    """Overlay of the control (grey) and stained sample histograms with the gate (Agg PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    both = np.concatenate([sample, control])
    positive = both[both > 0]
    low = float(np.percentile(positive, 0.1)) if positive.size else 1.0
    high = float(positive.max()) if positive.size else 10.0
    low = max(low, high / 1e6, 1e-9)
    log_axis = high / low > 50
    if log_axis:
        bins: Any = np.logspace(math.log10(low), math.log10(high * 1.05), 120)
    else:
        bins = np.linspace(float(both.min()), float(both.max()), 120)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    try:
        clip_low, clip_high = float(bins[0]), float(bins[-1])
        ax.hist(
            np.clip(control, clip_low, clip_high),
            bins=bins,
            color="#9e9e9e",
            alpha=0.6,
            label=f"control (n={gate.n_control})",
        )
        ax.hist(
            np.clip(sample, clip_low, clip_high),
            bins=bins,
            histtype="step",
            color="#c00000",
            lw=1.6,
            label=f"stained (n={gate.n_events})",
        )
        ax.axvline(gate.threshold, color="#1f4e79", ls="--", lw=1.2)
        ax.text(
            gate.threshold,
            ax.get_ylim()[1] * 0.92,
            f"  gate p{gate.percentile:g}: {gate.pct_positive:.1f} % CD142+",
            color="#1f4e79",
            va="top",
        )
        if log_axis:
            ax.set_xscale("log")
        ax.set_xlabel("fluorescence")
        ax.set_ylabel("events")
        ax.set_title(title)
        ax.legend(loc="upper left", frameon=False)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
