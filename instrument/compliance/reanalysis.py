"""Re-analysis: recompute a run's results from its stored raw samples, as a new result version.

Raw samples are never changed. The thresholds come from the run's own stored protocol text, or
from another protocol file of the same assay (alternative thresholds); that file's text and
SHA-256 are stored with the re-analysis, every new result version names the version it
supersedes, and the whole re-analysis is one transaction with its audit entries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from instrument.analysis.loop import loop_clot_time, platelet_consumption_pct
from instrument.analysis.tem import compute_tem_parameters
from instrument.compliance.audit import current_actor, os_login, record, require_reason
from instrument.compliance.errors import ComplianceError
from instrument.compliance.schema import reanalyses
from instrument.storage import Store, results, software_version, utcnow
from protocols import load_protocol, parse_protocol
from protocols.model import LoopProtocol, TemProtocol

ASSAY_SOURCES = {"thromboelastometry": "tem", "chandler-loop": "loop"}


@dataclass(frozen=True)
class Reanalysis:
    id: int
    run_id: int
    protocol: dict[str, Any]
    #: channel → (previous result version, new result version)
    versions: dict[int, tuple[int, int]]
    parameters: dict[int, dict[str, Any]]


def _protocol_for(run: dict[str, Any], protocol_file: Path | None) -> TemProtocol | LoopProtocol:
    if protocol_file is None:
        protocol = parse_protocol(run["protocol_text"], f"run {run['id']} (stored protocol)")
    else:
        protocol = load_protocol(protocol_file)
    wanted = TemProtocol if run["assay"] == "thromboelastometry" else LoopProtocol
    if not isinstance(protocol, wanted):
        raise ComplianceError(
            f"{protocol.source}: a {protocol.assay} protocol cannot re-analyse run {run['id']} "
            f"({run['assay']}); give a {run['assay']} protocol file"
        )
    return protocol


def _tem(store: Store, run_id: int, channel: int, protocol: TemProtocol) -> dict[str, Any]:
    _seq, t_ms, values = store.channel_samples(run_id, "tem", channel)
    t = np.asarray(t_ms, dtype=np.float64)
    a = np.asarray(values, dtype=np.float64)
    keep = t <= protocol.duration_s * 1000
    params = compute_tem_parameters(t[keep] / 1000.0, a[keep], protocol.analysis, protocol.style)
    parameters: dict[str, Any] = dict(params.to_dict(protocol.style))
    a_settings = protocol.analysis
    return {
        "parameters": parameters,
        "notes": {k: v for k, v in params.notes.items() if k in parameters},
        "settings": {
            "style": protocol.style,
            "ct_threshold_mm": a_settings.ct_threshold_mm,
            "cft_threshold_mm": a_settings.cft_threshold_mm,
            "amplitude_times_min": list(a_settings.amplitude_times_min),
            "lysis_index_time_min": a_settings.lysis_index_time_min,
            "alpha_chart_mm_per_min": a_settings.alpha_chart_mm_per_min,
            "duration_s": protocol.duration_s,
        },
    }


def _loop(
    store: Store,
    run_id: int,
    channel: int,
    protocol: LoopProtocol,
    previous: dict[str, Any] | None,
) -> dict[str, Any]:
    _seq, t_ms, values = store.channel_samples(run_id, "loop", channel)
    t_s = np.asarray(t_ms, dtype=np.float64) / 1000.0
    end_s = (previous or {}).get("settings", {}).get("analysed_until_s")
    if end_s is None:
        end_s = float(t_s[-1]) if len(t_s) else 0.0
    detection = protocol.clot_detection
    clot = loop_clot_time(
        t_s,
        np.asarray(values, dtype=np.float64),
        detection.threshold_permille,
        detection.hold_s,
        end_s,
    )
    parameters: dict[str, Any] = {
        "clotted": clot.clot_time_s is not None,
        "clot_time_s": None if clot.clot_time_s is None else round(clot.clot_time_s, 1),
    }
    notes = {"clot_time_s": clot.note} if clot.note else {}
    counts = sorted(
        (v["time_point_s"], v["value"])
        for v in store.sample_values(run_id, "PLT")
        if v["channel"] == channel and v["value"] is not None
    )
    if len(counts) >= 2:
        parameters["PLT_baseline_e9_per_l"] = counts[0][1]
        parameters["PLT_end_e9_per_l"] = counts[-1][1]
        parameters["PLT_consumption_pct"] = round(
            platelet_consumption_pct(counts[0][1], counts[-1][1]), 1
        )
    else:
        notes["PLT_consumption_pct"] = (
            f"platelet consumption needs counts at two time points (this loop has {len(counts)})"
        )
    return {
        "parameters": parameters,
        "notes": notes,
        "settings": {
            "threshold_permille": detection.threshold_permille,
            "hold_s": detection.hold_s,
            "analysed_until_s": end_s,
        },
    }


def reanalyse(
    store: Store, run_id: int, *, reason: str | None, protocol_file: Path | None = None
) -> Reanalysis:
    """Recompute a TEM or loop run from its raw samples; store a new version of every result."""
    run = store.get_run(run_id)
    source = ASSAY_SOURCES.get(run["assay"])
    if source is None:
        raise ComplianceError(
            f"run {run_id} is a {run['assay']} run; re-analysis covers thromboelastometry and "
            "Chandler-loop runs (an ELISA plate is analysed again with `hemocompat elisa import`)"
        )
    if run["status"] in ("created", "running"):
        raise ComplianceError(f"run {run_id} is still {run['status']}; re-analyse it once ended")
    why = require_reason(reason, f"re-analysis of run {run_id} supersedes its results")
    protocol = _protocol_for(run, protocol_file)
    latest = {r["channel"]: r for r in store.latest_results(run_id) if r["source"] == source}
    channels = [c["channel"] for c in run["channels"] if c["source"] == source]
    computed: dict[int, dict[str, Any]] = {}
    for channel in channels:
        if isinstance(protocol, TemProtocol):
            computed[channel] = _tem(store, run_id, channel, protocol)
        else:
            computed[channel] = _loop(store, run_id, channel, protocol, latest.get(channel))
    described = {
        "id": protocol.id,
        "version": protocol.version,
        "sha256": protocol.sha256,
        "source": "stored with the run" if protocol_file is None else str(protocol_file),
    }
    versions: dict[int, tuple[int, int]] = {}
    actor = current_actor()
    with store.engine.begin() as conn:
        for channel, body in computed.items():
            previous = int(
                conn.execute(
                    sa.select(sa.func.max(results.c.version)).where(
                        results.c.run_id == run_id,
                        results.c.source == source,
                        results.c.channel == channel,
                    )
                ).scalar()
                or 0
            )
            settings = {
                **body["settings"],
                "reanalysis": {"previous_version": previous, "protocol": described, "reason": why},
            }
            conn.execute(
                results.insert().values(
                    run_id=run_id,
                    version=previous + 1,
                    source=source,
                    channel=channel,
                    parameters=json.dumps(body["parameters"]),
                    notes=json.dumps(body["notes"], sort_keys=True),
                    settings=json.dumps(settings, sort_keys=True),
                    software_version=software_version(),
                    created_at=utcnow(),
                )
            )
            old = latest.get(channel)
            record(
                conn,
                "result.create",
                "result",
                f"{run_id}/{source}/{channel}/v{previous + 1}",
                old=None if old is None else {"version": previous, "parameters": old["parameters"]},
                new={"version": previous + 1, "parameters": body["parameters"]},
                reason=why,
                run_id=run_id,
            )
            versions[channel] = (previous, previous + 1)
        result = conn.execute(
            reanalyses.insert().values(
                run_id=run_id,
                protocol_id=protocol.id,
                protocol_version=protocol.version,
                protocol_sha256=protocol.sha256,
                protocol_text=protocol.text,
                reason=why,
                versions=json.dumps({str(k): list(v) for k, v in versions.items()}),
                created_by=actor.name if actor else os_login(),
                created_at=utcnow(),
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        reanalysis_id = int(key[0])
        record(
            conn,
            "reanalysis.create",
            "run",
            run_id,
            new={"reanalysis_id": reanalysis_id, "protocol": described, "versions": versions},
            reason=why,
            run_id=run_id,
        )
    return Reanalysis(
        reanalysis_id,
        run_id,
        described,
        versions,
        {ch: body["parameters"] for ch, body in computed.items()},
    )
