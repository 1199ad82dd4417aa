"""The `assay: thromboelastometry` section of a protocol file: its keys, ranges and rules."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import cast

from ruamel.yaml.nodes import MappingNode, Node

from protocols.assay import AssaySchema, Finish, Header, known
from protocols.checker import Checker, Fields, child_path, fmt_number, number_range, one_of, show
from protocols.model import (
    TEM_CHANNEL_NUMBERS,
    TEM_INSTRUMENT_MODELS,
    TEM_REAGENTS,
    TEM_STYLES,
    TemAnalysisSettings,
    TemProtocol,
    TemStyle,
)
from protocols.sections import (
    ChannelRules,
    check_channels,
    check_instruments,
    check_samples,
    increasing_numbers,
    value_of,
)

REQUIRED = (
    "reagent",
    "style",
    "instruments",
    "temperature_c",
    "duration_min",
    "sample_rate_hz",
    "samples",
    "channels",
)
OPTIONAL = ("temperature_tolerance_c", "equilibration_s", "analysis")

CHANNELS = ChannelRules(key="channel", numbers=TEM_CHANNEL_NUMBERS)

ANALYSIS_KEYS = (
    "ct_threshold_mm",
    "cft_threshold_mm",
    "amplitude_times_min",
    "lysis_index_time_min",
    "alpha_chart_mm_per_min",
)

TEMPERATURE_RANGE_C = (20.0, 45.0)
TOLERANCE_MAX_C = 2.0
TOLERANCE_DEFAULT_C = 0.5
EQUILIBRATION_MAX_S = 3600.0
DURATION_RANGE_MIN = (1.0, 240.0)
SAMPLE_RATE_RANGE_HZ = (1, 100)
CT_THRESHOLD_MAX_MM = 10.0
CFT_THRESHOLD_MAX_MM = 50.0
AMPLITUDE_TIMES_MAX = 8
ALPHA_CHART_MAX_MM_PER_MIN = 20.0

HINTS: Mapping[str, str] = {
    "reagent": one_of(TEM_REAGENTS),
    "style": one_of(TEM_STYLES),
    "instruments": "a mapping of role to model, e.g. `tem: TEM-4`",
    "temperature_c": number_range(*TEMPERATURE_RANGE_C),
    "duration_min": number_range(*DURATION_RANGE_MIN),
    "sample_rate_hz": number_range(*SAMPLE_RATE_RANGE_HZ, whole=True),
    "samples": "a mapping with `donor:` and optionally `lot:`",
    "channels": f"a list of 1 to {len(TEM_CHANNEL_NUMBERS)} channels",
}


def check_tem(ck: Checker, fields: Fields) -> Finish:
    """Check the thromboelastometry keys of a protocol file and return its builder."""
    reagent = style = None
    if (node := value_of(fields, "reagent")) is not None:
        reagent = ck.choice(node, "reagent", TEM_REAGENTS, "reagent")
    if (node := value_of(fields, "style")) is not None:
        style = ck.choice(node, "style", TEM_STYLES, "style")

    instruments = check_instruments(ck, fields, TEM_INSTRUMENT_MODELS)

    temperature_c = duration_min = None
    tolerance_c: float | None = TOLERANCE_DEFAULT_C
    equilibration_s: float | None = 0.0
    sample_rate_hz = None
    if (node := value_of(fields, "temperature_c")) is not None:
        temperature_c = ck.number(node, "temperature_c", *TEMPERATURE_RANGE_C)
    if (node := value_of(fields, "temperature_tolerance_c")) is not None:
        tolerance_c = ck.number(node, "temperature_tolerance_c", 0.0, TOLERANCE_MAX_C, lo_open=True)
    if (node := value_of(fields, "equilibration_s")) is not None:
        equilibration_s = ck.number(node, "equilibration_s", 0.0, EQUILIBRATION_MAX_S)
    if (node := value_of(fields, "duration_min")) is not None:
        duration_min = ck.number(node, "duration_min", *DURATION_RANGE_MIN)
    if (node := value_of(fields, "sample_rate_hz")) is not None:
        sample_rate_hz = ck.integer(node, "sample_rate_hz", *SAMPLE_RATE_RANGE_HZ)

    samples = check_samples(ck, fields)
    default_donor = samples.donor_id if samples is not None else None
    channels = check_channels(ck, fields, default_donor, CHANNELS)
    analysis = _check_analysis(ck, fields)

    if duration_min is not None and analysis is not None:
        _check_duration_covers_analysis(ck, fields, duration_min, analysis)

    def finish(header: Header) -> TemProtocol:
        return TemProtocol(
            format=header.format,
            id=header.id,
            version=header.version,
            title=header.title,
            description=header.description,
            assay="thromboelastometry",
            reagent=known(reagent),
            style=cast(TemStyle, known(style)),
            instruments=MappingProxyType(known(instruments)),
            temperature_c=known(temperature_c),
            temperature_tolerance_c=known(tolerance_c),
            equilibration_s=known(equilibration_s),
            duration_s=known(duration_min) * 60.0,
            sample_rate_hz=known(sample_rate_hz),
            samples=known(samples),
            channels=known(channels),
            analysis=known(analysis),
            text=header.text,
            sha256=header.sha256,
            source=header.source,
        )

    return finish


def _check_analysis(ck: Checker, fields: Fields) -> TemAnalysisSettings | None:
    node = value_of(fields, "analysis")
    defaults = TemAnalysisSettings()
    if node is None:
        return defaults
    entries = ck.mapping(node, "analysis", "a mapping of analysis settings")
    ck.keys(node, entries, "analysis", required=(), optional=ANALYSIS_KEYS)
    ok = isinstance(node, MappingNode)

    def number(key: str, default: float, hi: float) -> float:
        nonlocal ok
        if key not in entries:
            return default
        value = ck.number(entries[key].value, child_path("analysis", key), 0.0, hi, lo_open=True)
        if value is None:
            ok = False
            return default
        return value

    ct = number("ct_threshold_mm", defaults.ct_threshold_mm, CT_THRESHOLD_MAX_MM)
    cft = number("cft_threshold_mm", defaults.cft_threshold_mm, CFT_THRESHOLD_MAX_MM)
    lysis = number("lysis_index_time_min", defaults.lysis_index_time_min, DURATION_RANGE_MIN[1])
    alpha = number(
        "alpha_chart_mm_per_min", defaults.alpha_chart_mm_per_min, ALPHA_CHART_MAX_MM_PER_MIN
    )
    if ok and "cft_threshold_mm" in entries and cft <= ct:
        ck.report(
            entries["cft_threshold_mm"].value,
            "analysis.cft_threshold_mm",
            f"must be above ct_threshold_mm ({fmt_number(ct)} mm): CFT runs from the CT "
            "amplitude up to this one",
            got=show(entries["cft_threshold_mm"].value),
            allowed=f"a number > {fmt_number(ct)} and ≤ {fmt_number(CFT_THRESHOLD_MAX_MM)}",
        )
        ok = False
    times = defaults.amplitude_times_min
    if "amplitude_times_min" in entries:
        checked = _check_amplitude_times(ck, entries["amplitude_times_min"].value)
        if checked is None:
            ok = False
        else:
            times = checked
    if not ok:
        return None
    return TemAnalysisSettings(
        ct_threshold_mm=ct,
        cft_threshold_mm=cft,
        amplitude_times_min=times,
        lysis_index_time_min=lysis,
        alpha_chart_mm_per_min=alpha,
    )


def _check_amplitude_times(ck: Checker, node: Node) -> tuple[float, ...] | None:
    return increasing_numbers(
        ck,
        node,
        "analysis.amplitude_times_min",
        lo=0.0,
        hi=DURATION_RANGE_MIN[1],
        lo_open=True,
        max_items=AMPLITUDE_TIMES_MAX,
        what="minutes after CT",
    )


def _check_duration_covers_analysis(
    ck: Checker, fields: Fields, duration_min: float, analysis: TemAnalysisSettings
) -> None:
    """The measurement must last at least as long as the latest time point analysed after CT."""
    node = known(value_of(fields, "duration_min"))
    lysis = analysis.lysis_index_time_min
    if duration_min < lysis:
        ck.report(
            node,
            "duration_min",
            f"too short for the lysis index, read {fmt_number(lysis)} min after CT "
            "(analysis.lysis_index_time_min)",
            got=show(node),
            allowed=f"a number ≥ {fmt_number(lysis)}",
        )
    latest = max(analysis.amplitude_times_min)
    if duration_min < latest:
        ck.report(
            node,
            "duration_min",
            f"too short for the amplitude read {fmt_number(latest)} min after CT "
            "(analysis.amplitude_times_min)",
            got=show(node),
            allowed=f"a number ≥ {fmt_number(latest)}",
        )


SCHEMA = AssaySchema(required=REQUIRED, optional=OPTIONAL, hints=HINTS, check=check_tem)
