"""The `assay: chandler-loop` section of a protocol file: its keys, ranges and rules."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import cast

from ruamel.yaml.nodes import Node, ScalarNode, SequenceNode

from protocols.assay import AssaySchema, Finish, Header, known
from protocols.checker import (
    Checker,
    Fields,
    child_path,
    fmt_number,
    item_path,
    number_range,
    one_of,
    show,
    suggest,
)
from protocols.model import (
    LOOP_INSTRUMENT_MODELS,
    LOOP_NUMBERS,
    LOOP_SAMPLE_TUBES,
    BathSettings,
    ChannelSpec,
    ClotDetection,
    LoopProtocol,
    LoopSettings,
    SampleTube,
    SamplingPlan,
)
from protocols.sections import (
    ChannelRules,
    check_channels,
    check_instruments,
    check_samples,
    increasing_numbers,
    section,
    value_of,
)

REQUIRED = (
    "instruments",
    "bath",
    "loops",
    "duration_min",
    "sample_rate_hz",
    "samples",
    "channels",
    "sampling",
)
OPTIONAL = ("clot_detection",)

CHANNELS = ChannelRules(key="loop", numbers=LOOP_NUMBERS)

BATH_REQUIRED = ("setpoint_c",)
BATH_OPTIONAL = ("tolerance_c", "equilibration_s")
LOOPS_REQUIRED = ("volume_ml", "tubing", "rpm", "heparin_iu_per_ml")
SAMPLING_REQUIRED = ("times_min", "tube", "volume_ml")
SAMPLING_OPTIONAL = ("overdue_after_s", "loops")
CLOT_KEYS = ("threshold_permille", "hold_s")

SETPOINT_RANGE_C = (4.0, 45.0)
TOLERANCE_MAX_C = 2.0
TOLERANCE_DEFAULT_C = 0.5
EQUILIBRATION_MAX_S = 3600.0
LOOP_VOLUME_RANGE_ML = (0.5, 20.0)
TUBING_MAX = 200
RPM_RANGE = (1, 60)
HEPARIN_RANGE_IU_PER_ML = (0.0, 10.0)
DURATION_RANGE_MIN = (1.0, 240.0)
SAMPLE_RATE_RANGE_HZ = (1, 10)
SAMPLING_TIMES_MAX = 24
OVERDUE_MAX_S = 3600.0
OVERDUE_DEFAULT_S = 120.0
THRESHOLD_RANGE_PERMILLE = (1, 999)
HOLD_RANGE_S = (1.0, 600.0)

SAMPLED_LOOPS_ALLOWED = "all, or a list of loop numbers from channels such as [1, 3, 5]"

HINTS: Mapping[str, str] = {
    "instruments": "a mapping of role to model, e.g. `bath: JULABO` and `loop: LOOP-8`",
    "bath": "a mapping with `setpoint_c:` and optionally `tolerance_c:`, `equilibration_s:`",
    "loops": "a mapping with `volume_ml:`, `tubing:`, `rpm:` and `heparin_iu_per_ml:`",
    "duration_min": number_range(*DURATION_RANGE_MIN),
    "sample_rate_hz": number_range(*SAMPLE_RATE_RANGE_HZ, whole=True),
    "samples": "a mapping with `donor:` and optionally `lot:`",
    "channels": f"a list of 1 to {len(LOOP_NUMBERS)} loops",
    "sampling": "a mapping with `times_min:`, `tube:` and `volume_ml:`",
}
BATH_HINTS: Mapping[str, str] = {"setpoint_c": number_range(*SETPOINT_RANGE_C)}
LOOPS_HINTS: Mapping[str, str] = {
    "volume_ml": number_range(*LOOP_VOLUME_RANGE_ML),
    "tubing": "text describing the tubing, e.g. PVC, heparin-coated, ID 4 mm, 40 cm",
    "rpm": number_range(*RPM_RANGE, whole=True),
    "heparin_iu_per_ml": number_range(*HEPARIN_RANGE_IU_PER_ML),
}
SAMPLING_HINTS: Mapping[str, str] = {
    "times_min": f"a list of 1 to {SAMPLING_TIMES_MAX} increasing minutes, e.g. [0, 15, 60]",
    "tube": one_of(LOOP_SAMPLE_TUBES),
    "volume_ml": number_range(0.0, LOOP_VOLUME_RANGE_ML[1], lo_open=True),
}


def check_loop(ck: Checker, fields: Fields) -> Finish:
    """Check the Chandler loop keys of a protocol file and return its builder."""
    instruments = check_instruments(ck, fields, LOOP_INSTRUMENT_MODELS)
    bath = _check_bath(ck, fields)
    loops = _check_loops(ck, fields)

    duration_min = sample_rate_hz = None
    if (node := value_of(fields, "duration_min")) is not None:
        duration_min = ck.number(node, "duration_min", *DURATION_RANGE_MIN)
    if (node := value_of(fields, "sample_rate_hz")) is not None:
        sample_rate_hz = ck.integer(node, "sample_rate_hz", *SAMPLE_RATE_RANGE_HZ)

    samples = check_samples(ck, fields)
    default_donor = samples.donor_id if samples is not None else None
    channels = check_channels(ck, fields, default_donor, CHANNELS)
    sampling = _check_sampling(ck, fields, duration_min, loops, channels)
    clot_detection = _check_clot_detection(ck, fields)

    def finish(header: Header) -> LoopProtocol:
        return LoopProtocol(
            format=header.format,
            id=header.id,
            version=header.version,
            title=header.title,
            description=header.description,
            assay="chandler-loop",
            instruments=MappingProxyType(known(instruments)),
            bath=known(bath),
            loops=known(loops),
            duration_s=known(duration_min) * 60.0,
            sample_rate_hz=known(sample_rate_hz),
            samples=known(samples),
            channels=known(channels),
            sampling=known(sampling),
            clot_detection=known(clot_detection),
            text=header.text,
            sha256=header.sha256,
            source=header.source,
        )

    return finish


def _check_bath(ck: Checker, fields: Fields) -> BathSettings | None:
    entries = section(
        ck,
        fields,
        "bath",
        required=BATH_REQUIRED,
        optional=BATH_OPTIONAL,
        hints=BATH_HINTS,
        what="a mapping of water-bath settings",
    )
    if entries is None:
        return None
    setpoint = None
    tolerance: float | None = TOLERANCE_DEFAULT_C
    equilibration: float | None = 0.0
    if "setpoint_c" in entries:
        setpoint = ck.number(entries["setpoint_c"].value, "bath.setpoint_c", *SETPOINT_RANGE_C)
    if "tolerance_c" in entries:
        tolerance = ck.number(
            entries["tolerance_c"].value, "bath.tolerance_c", 0.0, TOLERANCE_MAX_C, lo_open=True
        )
    if "equilibration_s" in entries:
        equilibration = ck.number(
            entries["equilibration_s"].value, "bath.equilibration_s", 0.0, EQUILIBRATION_MAX_S
        )
    if setpoint is None or tolerance is None or equilibration is None:
        return None
    return BathSettings(setpoint_c=setpoint, tolerance_c=tolerance, equilibration_s=equilibration)


def _check_loops(ck: Checker, fields: Fields) -> LoopSettings | None:
    entries = section(
        ck,
        fields,
        "loops",
        required=LOOPS_REQUIRED,
        optional=(),
        hints=LOOPS_HINTS,
        what="a mapping of loop settings (volume_ml, tubing, rpm, heparin_iu_per_ml)",
    )
    if entries is None:
        return None
    volume = tubing = rpm = heparin = None
    if "volume_ml" in entries:
        volume = ck.number(entries["volume_ml"].value, "loops.volume_ml", *LOOP_VOLUME_RANGE_ML)
    if "tubing" in entries:
        tubing = ck.text(
            entries["tubing"].value,
            "loops.tubing",
            allowed=LOOPS_HINTS["tubing"],
            max_length=TUBING_MAX,
        )
    if "rpm" in entries:
        rpm = ck.integer(entries["rpm"].value, "loops.rpm", *RPM_RANGE)
    if "heparin_iu_per_ml" in entries:
        heparin = ck.number(
            entries["heparin_iu_per_ml"].value,
            "loops.heparin_iu_per_ml",
            *HEPARIN_RANGE_IU_PER_ML,
        )
    if volume is None or tubing is None or rpm is None or heparin is None:
        return None
    return LoopSettings(volume_ml=volume, tubing=tubing, rpm=rpm, heparin_iu_per_ml=heparin)


def _check_sampling(
    ck: Checker,
    fields: Fields,
    duration_min: float | None,
    loops: LoopSettings | None,
    channels: tuple[ChannelSpec, ...] | None,
) -> SamplingPlan | None:
    entries = section(
        ck,
        fields,
        "sampling",
        required=SAMPLING_REQUIRED,
        optional=SAMPLING_OPTIONAL,
        hints=SAMPLING_HINTS,
        what="a mapping of sampling settings (times_min, tube, volume_ml, ...)",
    )
    if entries is None:
        return None
    times = tube = volume = None
    overdue: float | None = OVERDUE_DEFAULT_S
    sampled: tuple[int, ...] | None = tuple(sorted(c.channel for c in channels or ()))
    draws = None
    if "times_min" in entries:
        times_node = entries["times_min"].value
        times = _check_times(ck, times_node, duration_min)
        if isinstance(times_node, SequenceNode) and times_node.value:
            draws = len(times_node.value)  # known even when a time itself is wrong
    if "tube" in entries:
        tube = ck.choice(entries["tube"].value, "sampling.tube", LOOP_SAMPLE_TUBES, "tube")
    if "volume_ml" in entries:
        volume_node = entries["volume_ml"].value
        volume = ck.number(
            volume_node, "sampling.volume_ml", 0.0, LOOP_VOLUME_RANGE_ML[1], lo_open=True
        )
        if volume is not None and draws is not None and loops is not None:
            volume = _check_drawn_volume(ck, volume_node, volume, draws, loops.volume_ml)
    if "overdue_after_s" in entries:
        overdue = ck.number(
            entries["overdue_after_s"].value,
            "sampling.overdue_after_s",
            0.0,
            OVERDUE_MAX_S,
            lo_open=True,
        )
    if "loops" in entries:
        sampled = _check_sampled_loops(ck, entries["loops"].value, channels)
    if times is None or tube is None or volume is None or overdue is None or sampled is None:
        return None
    return SamplingPlan(
        times_s=tuple(t * 60.0 for t in times),
        tube=cast(SampleTube, tube),
        volume_ml=volume,
        overdue_after_s=overdue,
        loops=sampled,
    )


def _check_times(ck: Checker, node: Node, duration_min: float | None) -> tuple[float, ...] | None:
    limit = None
    if duration_min is not None:
        end = f"after the end of the run at {fmt_number(duration_min)} min (duration_min)"
        limit = (duration_min, end)
    return increasing_numbers(
        ck,
        node,
        "sampling.times_min",
        lo=0.0,
        hi=DURATION_RANGE_MIN[1],
        lo_open=False,
        max_items=SAMPLING_TIMES_MAX,
        what="minutes after the loops start",
        limit=limit,
    )


def _check_drawn_volume(
    ck: Checker, node: Node, volume_ml: float, draws: int, loop_volume_ml: float
) -> float | None:
    """Every draw comes out of the same loop, so all of them together must fit in it."""
    total = volume_ml * draws
    if total <= loop_volume_ml * (1 + 1e-9):
        return volume_ml
    ck.report(
        node,
        "sampling.volume_ml",
        f"{draws} draws × {fmt_number(volume_ml)} mL take {fmt_number(total)} mL, more than "
        f"the {fmt_number(loop_volume_ml)} mL in each loop (loops.volume_ml); draw less, "
        "sample fewer times or fill the loops with more blood",
        got=show(node),
        allowed=f"a number > 0 and ≤ {fmt_number(loop_volume_ml / draws)}",
    )
    return None


def _check_sampled_loops(
    ck: Checker, node: Node, channels: tuple[ChannelSpec, ...] | None
) -> tuple[int, ...] | None:
    """`all`, or loop numbers that each have a channel; lot loops need a sampled vehicle loop."""
    path = "sampling.loops"
    if isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:str":
        if node.value == "all":
            return tuple(sorted(c.channel for c in channels)) if channels is not None else None
        hint = suggest(str(node.value), ["all"])
        what = "unknown value" + (f", did you mean {hint!r}?" if hint else "")
        ck.report(node, path, what, got=show(node), allowed=SAMPLED_LOOPS_ALLOWED)
        return None
    if not isinstance(node, SequenceNode):
        ck.report(node, path, "wrong type", got=show(node), allowed=SAMPLED_LOOPS_ALLOWED)
        return None
    items = ck.sequence(node, path, min_items=1, max_items=len(LOOP_NUMBERS), what="loop numbers")
    if items is None:
        return None
    by_number = {c.channel: c for c in channels} if channels is not None else None
    listed: dict[int, int] = {}
    ok = True
    for index, item in enumerate(items):
        item_at = item_path(path, index)
        number = ck.integer(item, item_at, min(LOOP_NUMBERS), max(LOOP_NUMBERS))
        if number is None:
            ok = False
        elif number in listed:
            ck.report(
                item,
                item_at,
                f"loop {number} is already listed as {item_path(path, listed[number])}",
                got=show(item),
                allowed="each loop number once",
            )
            ok = False
        elif by_number is not None and number not in by_number:
            ck.report(
                item,
                item_at,
                f"loop {number} has no entry in channels, so it holds no blood",
                got=show(item),
                allowed=one_of([str(n) for n in sorted(by_number)]),
            )
            ok = False
        else:
            listed[number] = index
    if not ok or by_number is None:
        return None
    contents = {by_number[n].contents for n in listed}
    if "lot" in contents and "vehicle" not in contents:
        vehicles = sorted(n for n, c in by_number.items() if c.contents == "vehicle")
        ck.report(
            node,
            path,
            "no vehicle loop is sampled: TAT and platelet changes of the lot loops are "
            "measured against a vehicle loop with the same blood, so sample one too",
            got=show(node),
            allowed=f"a list that includes a vehicle loop ({', '.join(map(str, vehicles))})",
        )
        return None
    return tuple(sorted(listed))


def _check_clot_detection(ck: Checker, fields: Fields) -> ClotDetection | None:
    defaults = ClotDetection()
    if value_of(fields, "clot_detection") is None:
        return defaults
    entries = section(
        ck,
        fields,
        "clot_detection",
        required=(),
        optional=CLOT_KEYS,
        what="a mapping of clot detection settings (threshold_permille, hold_s)",
    )
    if entries is None:
        return None
    threshold: int | None = defaults.threshold_permille
    hold: float | None = defaults.hold_s
    if "threshold_permille" in entries:
        threshold = ck.integer(
            entries["threshold_permille"].value,
            child_path("clot_detection", "threshold_permille"),
            *THRESHOLD_RANGE_PERMILLE,
        )
    if "hold_s" in entries:
        hold = ck.number(
            entries["hold_s"].value, child_path("clot_detection", "hold_s"), *HOLD_RANGE_S
        )
    if threshold is None or hold is None:
        return None
    return ClotDetection(threshold_permille=threshold, hold_s=hold)


SCHEMA = AssaySchema(required=REQUIRED, optional=OPTIONAL, hints=HINTS, check=check_loop)
