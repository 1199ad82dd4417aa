"""The content of a per-lot report, assembled from storage and rendered by instrument.reports.

Plain data, so the renderers (PDF, XLSX, CSV) are testable without a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Trace:
    """One stored signal: a TEM amplitude (mm) or a loop motion (‰) against time (s)."""

    channel: int
    label: str
    t_s: tuple[float, ...]
    values: tuple[float, ...]
    unit: str
    marker_s: float | None = None  # CT or loop clotting time


@dataclass(frozen=True)
class RunSection:
    run_id: int
    assay: str  # thromboelastometry | chandler-loop | elisa
    title: str
    protocol_id: str
    protocol_version: int
    protocol_sha256: str
    operator: str
    started_at: str | None
    status: str
    simulated: bool
    instruments: tuple[dict[str, Any], ...]
    donor_id: str | None
    parameters: tuple[dict[str, Any], ...]  # one row per channel: channel, label, parameters
    traces: tuple[Trace, ...] = ()
    #: loop runs: per loop, time point (s) → TAT µg/L (None if not measured)
    tat_courses: dict[int, dict[float, float | None]] = field(default_factory=dict)
    figure_png: str | None = None  # e.g. the ELISA standard curve
    qc_flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class LotReport:
    lot: dict[str, Any]  # lot registry record
    donors: tuple[dict[str, Any], ...]
    runs: tuple[RunSection, ...]
    assessment: dict[str, Any]  # LotAssessment.to_dict(): indices, class, explanation
    method: dict[str, Any]  # id, version, sha256, title
    software_version: str
    generated_at: str
    simulated: bool  # any input simulated → SIMULATED watermark on every page
    disclaimer: str = (
        "The hemocompatibility indices and classes in this report are hemocompat's documented "
        "construct for research use (docs/indices.md), not a clinical rule."
    )
    #: electronic signatures of the lot and its runs, each checked when the report was built:
    #: object, signer, role, meaning, signed_at, content_sha256, status (VALID | INVALID)
    signatures: tuple[dict[str, Any], ...] = ()
