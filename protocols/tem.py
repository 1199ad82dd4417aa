"""The `assay: thromboelastometry` section of a protocol file: its keys, ranges and rules."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import cast

from ruamel.yaml.nodes import MappingNode, Node

from protocols.assay import AssaySchema, Finish, Header, known
from protocols.checker import (
    Checker,
    Entry,
    Fields,
    child_path,
    fmt_number,
    item_path,
    number_range,
    one_of,
    show,
)
from protocols.model import (
    TEM_CHANNEL_NUMBERS,
    TEM_INSTRUMENT_MODELS,
    TEM_REAGENTS,
    TEM_STYLES,
    ChannelContents,
    ChannelSpec,
    SampleDefaults,
    TemAnalysisSettings,
    TemProtocol,
    TemStyle,
)

#: Lot and donor IDs: letters, digits, `.`, `_` and `-`, starting with a letter or digit.
SAMPLE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
SAMPLE_ID_ALLOWED = "an ID of letters, digits, '.', '_' and '-' (e.g. VL-UC-01)"
SAMPLE_ID_MAX = 64

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

CHANNEL_REQUIRED = ("channel", "contents")
CHANNEL_OPTIONAL = ("dose_cells_per_ml", "lot", "donor")
CONTENTS: tuple[ChannelContents, ...] = ("vehicle", "lot")

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
DOSE_MAX_CELLS_PER_ML = 1e7
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
CHANNEL_HINTS: Mapping[str, str] = {
    "channel": number_range(1, len(TEM_CHANNEL_NUMBERS), whole=True),
    "contents": one_of(CONTENTS),
}


def _value(fields: Fields, key: str) -> Node | None:
    entry = fields.get(key)
    return entry.value if entry is not None else None


def _sample_id(ck: Checker, node: Node, path: str) -> str | None:
    return ck.text(
        node, path, pattern=SAMPLE_ID, allowed=SAMPLE_ID_ALLOWED, max_length=SAMPLE_ID_MAX
    )


@dataclass(frozen=True)
class _Channel:
    """One channel entry as far as it could be read, kept with its nodes for cross-checks."""

    index: int
    node: Node
    contents: ChannelContents | None
    donor_id: str | None
    donor: Entry | None
    spec: ChannelSpec | None  # None when the entry has any error


def check_tem(ck: Checker, fields: Fields) -> Finish:
    """Check the thromboelastometry keys of a protocol file and return its builder."""
    reagent = style = None
    if (node := _value(fields, "reagent")) is not None:
        reagent = ck.choice(node, "reagent", TEM_REAGENTS, "reagent")
    if (node := _value(fields, "style")) is not None:
        style = ck.choice(node, "style", TEM_STYLES, "style")

    instruments = _check_instruments(ck, fields)

    temperature_c = duration_min = None
    tolerance_c: float | None = TOLERANCE_DEFAULT_C
    equilibration_s: float | None = 0.0
    sample_rate_hz = None
    if (node := _value(fields, "temperature_c")) is not None:
        temperature_c = ck.number(node, "temperature_c", *TEMPERATURE_RANGE_C)
    if (node := _value(fields, "temperature_tolerance_c")) is not None:
        tolerance_c = ck.number(node, "temperature_tolerance_c", 0.0, TOLERANCE_MAX_C, lo_open=True)
    if (node := _value(fields, "equilibration_s")) is not None:
        equilibration_s = ck.number(node, "equilibration_s", 0.0, EQUILIBRATION_MAX_S)
    if (node := _value(fields, "duration_min")) is not None:
        duration_min = ck.number(node, "duration_min", *DURATION_RANGE_MIN)
    if (node := _value(fields, "sample_rate_hz")) is not None:
        sample_rate_hz = ck.integer(node, "sample_rate_hz", *SAMPLE_RATE_RANGE_HZ)

    samples = _check_samples(ck, fields)
    channels = _check_channels(ck, fields, samples.donor_id if samples is not None else None)
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


def _check_instruments(ck: Checker, fields: Fields) -> dict[str, str] | None:
    node = _value(fields, "instruments")
    if node is None:
        return None
    roles = list(TEM_INSTRUMENT_MODELS)
    entries = ck.mapping(node, "instruments", "a mapping of instrument role to model")
    hints = {role: one_of(models) for role, models in TEM_INSTRUMENT_MODELS.items()}
    ck.keys(node, entries, "instruments", required=roles, optional=(), hints=hints)
    result: dict[str, str] = {}
    for role, models in TEM_INSTRUMENT_MODELS.items():
        if role in entries:
            path = child_path("instruments", role)
            model = ck.choice(entries[role].value, path, models, "instrument model")
            if model is not None:
                result[role] = model
    return result


def _check_samples(ck: Checker, fields: Fields) -> SampleDefaults | None:
    node = _value(fields, "samples")
    if node is None:
        return None
    entries = ck.mapping(node, "samples", "a mapping with the default donor and lot")
    hints = {"donor": SAMPLE_ID_ALLOWED}
    ck.keys(node, entries, "samples", required=("donor",), optional=("lot",), hints=hints)
    lot = donor = None
    if "lot" in entries:
        lot = _sample_id(ck, entries["lot"].value, "samples.lot")
    if "donor" in entries:
        donor = _sample_id(ck, entries["donor"].value, "samples.donor")
    if donor is None:
        return None
    return SampleDefaults(lot_id=lot, donor_id=donor)


def _check_channels(
    ck: Checker, fields: Fields, default_donor: str | None
) -> tuple[ChannelSpec, ...] | None:
    list_node = _value(fields, "channels")
    if list_node is None:
        return None
    count = len(TEM_CHANNEL_NUMBERS)
    items = ck.sequence(list_node, "channels", min_items=1, max_items=count, what="channels")
    if items is None:
        return None
    used: dict[int, int] = {}
    checked = [_check_channel(ck, item, index, used) for index, item in enumerate(items)]
    _check_vehicle_controls(ck, list_node, checked, default_donor)
    specs = [channel.spec for channel in checked]
    if any(spec is None for spec in specs):
        return None
    return tuple(spec for spec in specs if spec is not None)


def _check_channel(ck: Checker, node: Node, index: int, used: dict[int, int]) -> _Channel:
    """Check one channel entry; its spec is None when anything in it is wrong."""
    path = item_path("channels", index)
    entries = ck.mapping(node, path, "a channel mapping (channel, contents, ...)")
    ck.keys(
        node,
        entries,
        path,
        required=CHANNEL_REQUIRED,
        optional=CHANNEL_OPTIONAL,
        hints=CHANNEL_HINTS,
    )
    ok = isinstance(node, MappingNode) and all(key in entries for key in CHANNEL_REQUIRED)
    number: int | None = None
    contents: ChannelContents | None = None
    if "channel" in entries:
        value_node = entries["channel"].value
        number = ck.integer(value_node, child_path(path, "channel"), 1, len(TEM_CHANNEL_NUMBERS))
        if number is not None and number in used:
            ck.report(
                value_node,
                child_path(path, "channel"),
                f"channel {number} is already used by channels[{used[number]}]",
                got=show(value_node),
                allowed="each channel number once",
            )
            number = None
        elif number is not None:
            used[number] = index
    if "contents" in entries:
        choice = ck.choice(
            entries["contents"].value, child_path(path, "contents"), CONTENTS, "contents"
        )
        contents = cast(ChannelContents | None, choice)
    ok = ok and number is not None and contents is not None

    dose = 0.0
    dose_entry = entries.get("dose_cells_per_ml")
    if contents == "lot":
        if dose_entry is None:
            ck.report(
                node,
                child_path(path, "dose_cells_per_ml"),
                "required key is missing: a lot channel needs its dose",
                allowed=f"a number > 0 and ≤ {fmt_number(DOSE_MAX_CELLS_PER_ML)} cells/mL",
            )
            ok = False
        else:
            checked_dose = ck.number(
                dose_entry.value,
                child_path(path, "dose_cells_per_ml"),
                0.0,
                DOSE_MAX_CELLS_PER_ML,
                lo_open=True,
            )
            ok = ok and checked_dose is not None
            dose = checked_dose if checked_dose is not None else 0.0
    elif contents == "vehicle":
        for key in ("dose_cells_per_ml", "lot"):
            if key in entries:
                ck.report(
                    entries[key].key,
                    child_path(path, key),
                    "not allowed on a vehicle channel, which holds no cells",
                    got=show(entries[key].value),
                    allowed="no dose_cells_per_ml or lot on a vehicle channel",
                )
                ok = False

    lot = donor = None
    if "lot" in entries and contents != "vehicle":
        lot = _sample_id(ck, entries["lot"].value, child_path(path, "lot"))
        ok = ok and lot is not None
    donor_entry = entries.get("donor")
    if donor_entry is not None:
        donor = _sample_id(ck, donor_entry.value, child_path(path, "donor"))
        ok = ok and donor is not None
    spec = None
    if ok:
        spec = ChannelSpec(
            channel=known(number),
            contents=known(contents),
            dose_cells_per_ml=dose,
            lot_id=lot,
            donor_id=donor,
        )
    return _Channel(
        index=index,
        node=node,
        contents=contents,
        donor_id=donor,
        donor=donor_entry,
        spec=spec,
    )


def _check_vehicle_controls(
    ck: Checker, list_node: Node, channels: list[_Channel], default_donor: str | None
) -> None:
    """Every lot channel needs a vehicle channel measured with the same blood."""
    lots = [c for c in channels if c.contents == "lot"]
    vehicles = [c for c in channels if c.contents == "vehicle"]
    if not lots or any(c.contents is None for c in channels):
        return  # a channel of unreadable contents may be the control; that error is reported
    if not vehicles:
        ck.report(
            list_node,
            "channels",
            "no vehicle channel: the indices compare each lot channel with a vehicle control "
            "measured with the same blood, so add a channel with `contents: vehicle`",
            got="only lot channels",
            allowed="at least one vehicle channel when any channel holds the lot",
        )
        return
    if any(c.donor is not None and c.donor_id is None for c in channels):
        return  # an unreadable donor ID is reported already; matching donors would only guess
    # None stands for "the run's donor" (samples.donor unless overridden at run time).
    vehicle_donors = {c.donor_id for c in vehicles}
    for channel in lots:
        donor = channel.donor_id
        if donor in vehicle_donors:
            continue
        path = item_path("channels", channel.index)
        if donor is None or channel.donor is None:
            named = ", ".join(sorted(str(d) for d in vehicle_donors))
            ck.report(
                channel.node,
                path,
                "this lot channel uses the run's donor (samples.donor), but every vehicle "
                "channel names its own donor, so it has no control with the same blood",
                got=f"vehicle channels with donor {named}",
                allowed="a vehicle channel without `donor:`",
            )
            continue
        what = (
            f"no vehicle channel uses donor {donor}, so this lot channel has no control "
            "with the same blood; add a vehicle channel with this `donor:`"
        )
        if donor == default_donor:
            what += " or remove `donor:` here, since it repeats samples.donor"
        ck.report(
            channel.donor.value,
            child_path(path, "donor"),
            what,
            got=show(channel.donor.value),
            allowed="a donor that a vehicle channel also uses",
        )


def _check_analysis(ck: Checker, fields: Fields) -> TemAnalysisSettings | None:
    node = _value(fields, "analysis")
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
    path = "analysis.amplitude_times_min"
    items = ck.sequence(
        node, path, min_items=1, max_items=AMPLITUDE_TIMES_MAX, what="minutes after CT"
    )
    if items is None:
        return None
    times: list[float] = []
    ok = True
    previous: float | None = None
    for index, item in enumerate(items):
        value = ck.number(item, item_path(path, index), 0.0, DURATION_RANGE_MIN[1], lo_open=True)
        if value is None:
            ok = False
            continue
        if previous is not None and value <= previous:
            ck.report(
                item,
                item_path(path, index),
                f"times must increase, but this one does not come after {fmt_number(previous)}",
                got=show(item),
                allowed=f"a number > {fmt_number(previous)}",
            )
            ok = False
        previous = value
        times.append(value)
    return tuple(times) if ok else None


def _check_duration_covers_analysis(
    ck: Checker, fields: Fields, duration_min: float, analysis: TemAnalysisSettings
) -> None:
    """The measurement must last at least as long as the latest time point analysed after CT."""
    node = known(_value(fields, "duration_min"))
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
