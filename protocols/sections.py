"""Checks of sections that several assays share: instruments, samples, channels, time lists."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from ruamel.yaml.nodes import MappingNode, Node

from protocols.assay import known
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
from protocols.model import ChannelContents, ChannelSpec, SampleDefaults

#: Lot, donor and sample IDs: letters, digits, `.`, `_` and `-`, starting with a letter or digit.
SAMPLE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
SAMPLE_ID_ALLOWED = "an ID of letters, digits, '.', '_' and '-' (e.g. VL-UC-01)"
SAMPLE_ID_MAX = 64

CHANNEL_OPTIONAL = ("dose_cells_per_ml", "lot", "donor")
CONTENTS: tuple[ChannelContents, ...] = ("vehicle", "lot")
DOSE_MAX_CELLS_PER_ML = 1e7


def value_of(fields: Fields, key: str) -> Node | None:
    """The value node of key, or None when the key is absent."""
    entry = fields.get(key)
    return entry.value if entry is not None else None


def sample_id(ck: Checker, node: Node, path: str) -> str | None:
    """A lot, donor or sample ID."""
    return ck.text(
        node, path, pattern=SAMPLE_ID, allowed=SAMPLE_ID_ALLOWED, max_length=SAMPLE_ID_MAX
    )


def check_instruments(
    ck: Checker, fields: Fields, models_by_role: Mapping[str, tuple[str, ...]]
) -> dict[str, str] | None:
    """The `instruments` mapping: every role of the assay, each filled by a known model."""
    node = value_of(fields, "instruments")
    if node is None:
        return None
    roles = list(models_by_role)
    entries = ck.mapping(node, "instruments", "a mapping of instrument role to model")
    hints = {role: one_of(models) for role, models in models_by_role.items()}
    ck.keys(node, entries, "instruments", required=roles, optional=(), hints=hints)
    result: dict[str, str] = {}
    for role, models in models_by_role.items():
        if role in entries:
            path = child_path("instruments", role)
            model = ck.choice(entries[role].value, path, models, "instrument model")
            if model is not None:
                result[role] = model
    return result


def check_samples(ck: Checker, fields: Fields) -> SampleDefaults | None:
    """The `samples` mapping: the default donor and, optionally, the default lot."""
    node = value_of(fields, "samples")
    if node is None:
        return None
    entries = ck.mapping(node, "samples", "a mapping with the default donor and lot")
    hints = {"donor": SAMPLE_ID_ALLOWED}
    ck.keys(node, entries, "samples", required=("donor",), optional=("lot",), hints=hints)
    lot = donor = None
    if "lot" in entries:
        lot = sample_id(ck, entries["lot"].value, "samples.lot")
    if "donor" in entries:
        donor = sample_id(ck, entries["donor"].value, "samples.donor")
    if donor is None:
        return None
    return SampleDefaults(lot_id=lot, donor_id=donor)


@dataclass(frozen=True)
class ChannelRules:
    """How an assay numbers its `channels` entries: the key (`channel`, `loop`) and the numbers.

    The key is also the noun in messages ("loop 3 is already used by channels[1]").
    """

    key: str
    numbers: tuple[int, ...]

    @property
    def hints(self) -> Mapping[str, str]:
        return {
            self.key: number_range(min(self.numbers), max(self.numbers), whole=True),
            "contents": one_of(CONTENTS),
        }


@dataclass(frozen=True)
class _Channel:
    """One channel entry as far as it could be read, kept with its nodes for cross-checks."""

    index: int
    node: Node
    contents: ChannelContents | None
    donor_id: str | None
    donor: Entry | None
    spec: ChannelSpec | None  # None when the entry has any error


def check_channels(
    ck: Checker, fields: Fields, default_donor: str | None, rules: ChannelRules
) -> tuple[ChannelSpec, ...] | None:
    """The `channels` list: numbered entries, each number once, with vehicle controls."""
    list_node = value_of(fields, "channels")
    if list_node is None:
        return None
    items = ck.sequence(
        list_node,
        "channels",
        min_items=1,
        max_items=len(rules.numbers),
        what=f"{rules.key}s",
    )
    if items is None:
        return None
    used: dict[int, int] = {}
    checked = [_check_channel(ck, item, index, used, rules) for index, item in enumerate(items)]
    _check_vehicle_controls(ck, list_node, checked, default_donor, rules.key)
    specs = [channel.spec for channel in checked]
    if any(spec is None for spec in specs):
        return None
    return tuple(spec for spec in specs if spec is not None)


def _check_channel(
    ck: Checker, node: Node, index: int, used: dict[int, int], rules: ChannelRules
) -> _Channel:
    """Check one channel entry; its spec is None when anything in it is wrong."""
    noun = rules.key
    required = (noun, "contents")
    path = item_path("channels", index)
    entries = ck.mapping(node, path, f"a {noun} mapping ({noun}, contents, ...)")
    ck.keys(
        node,
        entries,
        path,
        required=required,
        optional=CHANNEL_OPTIONAL,
        hints=rules.hints,
    )
    ok = isinstance(node, MappingNode) and all(key in entries for key in required)
    number: int | None = None
    contents: ChannelContents | None = None
    if noun in entries:
        value_node = entries[noun].value
        number_path = child_path(path, noun)
        number = ck.integer(value_node, number_path, min(rules.numbers), max(rules.numbers))
        if number is not None and number in used:
            ck.report(
                value_node,
                number_path,
                f"{noun} {number} is already used by channels[{used[number]}]",
                got=show(value_node),
                allowed=f"each {noun} number once",
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
                f"required key is missing: a lot {noun} needs its dose",
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
                    f"not allowed on a vehicle {noun}, which holds no cells",
                    got=show(entries[key].value),
                    allowed=f"no dose_cells_per_ml or lot on a vehicle {noun}",
                )
                ok = False

    lot = donor = None
    if "lot" in entries and contents != "vehicle":
        lot = sample_id(ck, entries["lot"].value, child_path(path, "lot"))
        ok = ok and lot is not None
    donor_entry = entries.get("donor")
    if donor_entry is not None:
        donor = sample_id(ck, donor_entry.value, child_path(path, "donor"))
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
    ck: Checker,
    list_node: Node,
    channels: list[_Channel],
    default_donor: str | None,
    noun: str,
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
            f"no vehicle {noun}: the indices compare each lot {noun} with a vehicle control "
            f"measured with the same blood, so add a {noun} with `contents: vehicle`",
            got=f"only lot {noun}s",
            allowed=f"at least one vehicle {noun} when any {noun} holds the lot",
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
                f"this lot {noun} uses the run's donor (samples.donor), but every vehicle "
                f"{noun} names its own donor, so it has no control with the same blood",
                got=f"vehicle {noun}s with donor {named}",
                allowed=f"a vehicle {noun} without `donor:`",
            )
            continue
        what = (
            f"no vehicle {noun} uses donor {donor}, so this lot {noun} has no control "
            f"with the same blood; add a vehicle {noun} with this `donor:`"
        )
        if donor == default_donor:
            what += " or remove `donor:` here, since it repeats samples.donor"
        ck.report(
            channel.donor.value,
            child_path(path, "donor"),
            what,
            got=show(channel.donor.value),
            allowed=f"a donor that a vehicle {noun} also uses",
        )


def increasing_numbers(
    ck: Checker,
    node: Node,
    path: str,
    *,
    lo: float,
    hi: float,
    lo_open: bool,
    max_items: int,
    what: str,
    limit: tuple[float, str] | None = None,
) -> tuple[float, ...] | None:
    """1 to max_items numbers in [lo, hi] (lo excluded when lo_open), each above the last.

    limit is a tighter upper bound that depends on another setting, and what it is, e.g.
    `(60.0, "after the end of the run at 60 min (duration_min)")`.
    """
    items = ck.sequence(node, path, min_items=1, max_items=max_items, what=what)
    if items is None:
        return None
    numbers: list[float] = []
    ok = True
    previous: float | None = None
    for index, item in enumerate(items):
        number = ck.number(item, item_path(path, index), lo, hi, lo_open=lo_open)
        if number is None:
            ok = False
            continue
        if previous is not None and number <= previous:
            ck.report(
                item,
                item_path(path, index),
                f"times must increase, but this one does not come after {fmt_number(previous)}",
                got=show(item),
                allowed=f"a number > {fmt_number(previous)}",
            )
            ok = False
        if limit is not None and number > limit[0]:
            ck.report(
                item,
                item_path(path, index),
                limit[1],
                got=show(item),
                allowed=number_range(lo, limit[0], lo_open=lo_open),
            )
            ok = False
        previous = number
        numbers.append(number)
    return tuple(numbers) if ok else None


def section(
    ck: Checker,
    fields: Fields,
    key: str,
    *,
    required: tuple[str, ...],
    optional: tuple[str, ...],
    hints: Mapping[str, str] | None = None,
    what: str,
) -> Fields | None:
    """Entries of a nested mapping such as `bath`; None when it is absent or not a mapping."""
    node = value_of(fields, key)
    if node is None:
        return None
    entries = ck.mapping(node, key, what)
    ck.keys(node, entries, key, required=required, optional=optional, hints=hints)
    return entries if isinstance(node, MappingNode) else None
