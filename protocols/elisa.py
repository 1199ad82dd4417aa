"""The `assay: elisa` section of a protocol file: plate map, wavelengths, curve model and QC."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import cast

from ruamel.yaml.nodes import Node

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
)
from protocols.model import (
    ELISA_CURVE_MODELS,
    ELISA_INSTRUMENT_MODELS,
    ControlSpec,
    CurveModel,
    ElisaProtocol,
    ElisaQc,
    KitInfo,
    SampleLayout,
    SampleWells,
    StandardLevel,
)
from protocols.plate import (
    LAYOUT_ORDERS,
    LayoutOrder,
    block_wells,
    normalise_well,
    well_position,
)
from protocols.sections import check_instruments, sample_id, section, value_of

REQUIRED = ("instruments", "kit", "wavelengths_nm", "model", "standards", "blanks")
OPTIONAL = ("read_time_s", "controls", "samples", "sample_layout", "qc")

KIT_REQUIRED = ("name",)
KIT_OPTIONAL = ("lot", "expires")
WAVELENGTHS_REQUIRED = ("signal",)
WAVELENGTHS_OPTIONAL = ("reference",)
STANDARD_KEYS = ("conc_ug_per_l", "wells")
CONTROL_KEYS = ("name", "range_ug_per_l", "wells")
SAMPLE_KEYS = ("sample_id", "wells", "dilution")
LAYOUT_REQUIRED = ("first_well", "last_well", "replicates", "dilution")
LAYOUT_OPTIONAL = ("order",)
QC_KEYS = ("backcalc_tolerance_pct", "backcalc_tolerance_edge_pct", "max_cv_pct", "min_r_squared")

KIT_NAME_MAX = 200
KIT_LOT_MAX = 64
CONTROL_NAME_MAX = 40
WAVELENGTH_RANGE_NM = (340, 1000)
READ_TIME_MAX_S = 3600.0
READ_TIME_DEFAULT_S = 60.0
CONC_MAX_UG_PER_L = 1e5
STANDARDS_MAX = 16
MIN_LEVELS: Mapping[str, int] = {"4PL": 5, "5PL": 6}
REPLICATES_MAX = 8
BLANKS_MAX = 16
CONTROLS_MAX = 8
SAMPLES_MAX = 96
DILUTION_RANGE = (1.0, 1e6)
PERCENT_MAX = 100.0

WELL_ALLOWED = "a well of a 96-well plate: row A to H and column 1 to 12, e.g. A1 or A01"
KIT_LOT_ALLOWED = 'text (quote a lot number made of digits, e.g. "0001")'

HINTS: Mapping[str, str] = {
    "instruments": "a mapping of role to model, e.g. `reader: ABS-96`",
    "kit": "a mapping with the kit's `name:` and optionally `lot:` and `expires:`",
    "wavelengths_nm": "a mapping with `signal:` and optionally `reference:` in nm",
    "model": one_of(ELISA_CURVE_MODELS),
    "standards": f"a list of at least {MIN_LEVELS['4PL']} standard levels",
    "blanks": f"a list of 1 to {BLANKS_MAX} wells",
}
KIT_HINTS: Mapping[str, str] = {"name": "text"}
WAVELENGTHS_HINTS: Mapping[str, str] = {"signal": number_range(*WAVELENGTH_RANGE_NM, whole=True)}
STANDARD_HINTS: Mapping[str, str] = {
    "conc_ug_per_l": number_range(0.0, CONC_MAX_UG_PER_L, lo_open=True),
    "wells": f"a list of 1 to {REPLICATES_MAX} wells",
}
CONTROL_HINTS: Mapping[str, str] = {
    "name": "text, e.g. low",
    "range_ug_per_l": "a list of two numbers [low, high] in µg/L, e.g. [3, 7]",
    "wells": f"a list of 1 to {REPLICATES_MAX} wells",
}
SAMPLE_HINTS: Mapping[str, str] = {
    "sample_id": "an ID of letters, digits, '.', '_' and '-' (e.g. S-000123)",
    "wells": f"a list of 1 to {REPLICATES_MAX} wells",
    "dilution": number_range(*DILUTION_RANGE),
}
LAYOUT_HINTS: Mapping[str, str] = {
    "first_well": "the top-left well of the block, e.g. C1",
    "last_well": "the bottom-right well of the block, e.g. G12",
    "replicates": number_range(1, REPLICATES_MAX, whole=True),
    "dilution": number_range(*DILUTION_RANGE),
}


@dataclass(frozen=True)
class _WellUse:
    """A well named somewhere in the plate map, with the node and path that name it."""

    well: str
    node: Node
    path: str


@dataclass
class _Replicates:
    """The replicate count set by the first entry of a group, which the others must match."""

    noun: str
    first: tuple[str, int] | None = None

    def check(self, ck: Checker, node: Node, path: str, count: int) -> bool:
        if self.first is None:
            self.first = (path, count)
            return True
        first_path, first_count = self.first
        if count == first_count:
            return True
        ck.report(
            node,
            path,
            f"{count} replicate well{'s' if count != 1 else ''}, but {first_path} has "
            f"{first_count}; give every {self.noun} the same number of replicates",
            got=show(node),
            allowed=f"{first_count} well{'s' if first_count != 1 else ''}",
        )
        return False


def check_elisa(ck: Checker, fields: Fields) -> Finish:
    """Check the ELISA keys of a protocol file and return its builder."""
    instruments = check_instruments(ck, fields, ELISA_INSTRUMENT_MODELS)
    kit = _check_kit(ck, fields)
    wavelengths = _check_wavelengths(ck, fields)
    model = None
    if (node := value_of(fields, "model")) is not None:
        model = cast(CurveModel | None, ck.choice(node, "model", ELISA_CURVE_MODELS, "model"))
    read_time_s: float | None = READ_TIME_DEFAULT_S
    if (node := value_of(fields, "read_time_s")) is not None:
        read_time_s = ck.number(node, "read_time_s", 0.0, READ_TIME_MAX_S, lo_open=True)

    uses: list[_WellUse] = []
    standards = _check_standards(ck, fields, model, uses)
    blanks: tuple[str, ...] | None = None
    if (node := value_of(fields, "blanks")) is not None:
        blanks = _check_wells(ck, node, "blanks", uses, max_items=BLANKS_MAX)
    controls = _check_controls(ck, fields, uses)
    sample_replicates = _Replicates("sample")
    samples = _check_samples(ck, fields, uses, sample_replicates)
    layout = _check_layout(ck, fields, sample_replicates)
    used = _check_wells_used_once(ck, uses)
    if layout is not None:
        layout = _check_layout_capacity(ck, fields, layout, used)
    qc = _check_qc(ck, fields)

    def finish(header: Header) -> ElisaProtocol:
        signal_nm, reference_nm = known(wavelengths)
        return ElisaProtocol(
            format=header.format,
            id=header.id,
            version=header.version,
            title=header.title,
            description=header.description,
            assay="elisa",
            instruments=MappingProxyType(known(instruments)),
            kit=known(kit),
            signal_nm=signal_nm,
            reference_nm=reference_nm,
            model=known(model),
            standards=known(standards),
            blanks=known(blanks),
            controls=known(controls),
            samples=known(samples),
            sample_layout=layout,
            qc=known(qc),
            duration_s=known(read_time_s),
            text=header.text,
            sha256=header.sha256,
            source=header.source,
        )

    return finish


def _check_kit(ck: Checker, fields: Fields) -> KitInfo | None:
    entries = section(
        ck,
        fields,
        "kit",
        required=KIT_REQUIRED,
        optional=KIT_OPTIONAL,
        hints=KIT_HINTS,
        what="a mapping describing the kit (name, lot, expires)",
    )
    if entries is None:
        return None
    ok = True
    name = lot = None
    expires: datetime.date | None = None
    if "name" in entries:
        name = ck.text(entries["name"].value, "kit.name", max_length=KIT_NAME_MAX)
    if "lot" in entries:
        lot = ck.text(
            entries["lot"].value, "kit.lot", allowed=KIT_LOT_ALLOWED, max_length=KIT_LOT_MAX
        )
        ok = lot is not None
    if "expires" in entries:
        expires = ck.date(entries["expires"].value, "kit.expires")
        ok = ok and expires is not None
    if name is None or not ok:
        return None
    return KitInfo(name=name, lot=lot, expires=expires)


def _check_wavelengths(ck: Checker, fields: Fields) -> tuple[int, int | None] | None:
    entries = section(
        ck,
        fields,
        "wavelengths_nm",
        required=WAVELENGTHS_REQUIRED,
        optional=WAVELENGTHS_OPTIONAL,
        hints=WAVELENGTHS_HINTS,
        what="a mapping with the signal and reference wavelengths in nm",
    )
    if entries is None:
        return None
    signal = reference = None
    if "signal" in entries:
        signal = ck.integer(entries["signal"].value, "wavelengths_nm.signal", *WAVELENGTH_RANGE_NM)
    if "reference" in entries:
        node = entries["reference"].value
        reference = ck.integer(node, "wavelengths_nm.reference", *WAVELENGTH_RANGE_NM)
        if reference is None:
            return None
        if reference == signal:
            ck.report(
                node,
                "wavelengths_nm.reference",
                "the reference wavelength must differ from the signal wavelength; leave "
                "`reference:` out to read without a reference",
                got=show(node),
                allowed=f"a whole number from {WAVELENGTH_RANGE_NM[0]} to "
                f"{WAVELENGTH_RANGE_NM[1]} other than {signal}",
            )
            return None
    if signal is None:
        return None
    return signal, reference


def _check_well(ck: Checker, node: Node, path: str) -> str | None:
    text = ck.text(node, path, allowed=WELL_ALLOWED)
    if text is None:
        return None
    well = normalise_well(text)
    if well is None:
        hint = normalise_well(text.strip().upper().replace(" ", ""))
        what = "not a well of a 96-well plate" + (f", did you mean {hint!r}?" if hint else "")
        ck.report(node, path, what, got=show(node), allowed=WELL_ALLOWED)
    return well


def _check_wells(
    ck: Checker,
    node: Node,
    path: str,
    uses: list[_WellUse],
    *,
    max_items: int = REPLICATES_MAX,
    replicates: _Replicates | None = None,
) -> tuple[str, ...] | None:
    """A list of wells; each valid well is recorded in uses for the plate-wide check."""
    items = ck.sequence(node, path, min_items=1, max_items=max_items, what="wells")
    if items is None:
        return None
    ok = replicates.check(ck, node, path, len(items)) if replicates is not None else True
    wells: list[str] = []
    for index, item in enumerate(items):
        well_path = item_path(path, index)
        well = _check_well(ck, item, well_path)
        if well is None:
            ok = False
            continue
        uses.append(_WellUse(well, item, well_path))
        wells.append(well)
    return tuple(wells) if ok else None


def _entries(
    ck: Checker,
    node: Node,
    path: str,
    keys: tuple[str, ...],
    hints: Mapping[str, str],
    what: str,
) -> Fields:
    entries = ck.mapping(node, path, what)
    ck.keys(node, entries, path, required=keys, optional=(), hints=hints)
    return entries


def _check_standards(
    ck: Checker, fields: Fields, model: str | None, uses: list[_WellUse]
) -> tuple[StandardLevel, ...] | None:
    list_node = value_of(fields, "standards")
    if list_node is None:
        return None
    items = ck.sequence(
        list_node, "standards", min_items=1, max_items=STANDARDS_MAX, what="standard levels"
    )
    if items is None:
        return None
    levels: list[StandardLevel] = []
    ok = True
    concentrations: dict[float, int] = {}
    replicates = _Replicates("standard level")
    for index, item in enumerate(items):
        path = item_path("standards", index)
        entries = _entries(
            ck, item, path, STANDARD_KEYS, STANDARD_HINTS, "a standard level (conc_ug_per_l, wells)"
        )
        conc = wells = None
        if "conc_ug_per_l" in entries:
            conc_node = entries["conc_ug_per_l"].value
            conc_path = child_path(path, "conc_ug_per_l")
            conc = ck.number(conc_node, conc_path, 0.0, CONC_MAX_UG_PER_L, lo_open=True)
            if conc is not None and conc in concentrations:
                ck.report(
                    conc_node,
                    conc_path,
                    f"standards[{concentrations[conc]}] has this concentration already; list "
                    "all replicate wells of a level in one entry",
                    got=show(conc_node),
                    allowed="each concentration once",
                )
                conc = None
            elif conc is not None:
                concentrations[conc] = index
        if "wells" in entries:
            wells = _check_wells(
                ck, entries["wells"].value, child_path(path, "wells"), uses, replicates=replicates
            )
        if conc is None or wells is None:
            ok = False
        else:
            levels.append(StandardLevel(conc_ug_per_l=conc, wells=wells))
    needed = MIN_LEVELS.get(model or "", min(MIN_LEVELS.values()))
    if len(items) < needed:
        fit = f"a {model} fit" if model is not None else "a curve fit"
        ck.report(
            list_node,
            "standards",
            f"too few standard levels for {fit}",
            got=show(list_node),
            allowed=", ".join(f"at least {n} levels for {m}" for m, n in MIN_LEVELS.items()),
        )
        ok = False
    return tuple(levels) if ok else None


def _check_controls(
    ck: Checker, fields: Fields, uses: list[_WellUse]
) -> tuple[ControlSpec, ...] | None:
    list_node = value_of(fields, "controls")
    if list_node is None:
        return ()
    items = ck.sequence(list_node, "controls", min_items=1, max_items=CONTROLS_MAX, what="controls")
    if items is None:
        return None
    controls: list[ControlSpec] = []
    ok = True
    names: dict[str, int] = {}
    for index, item in enumerate(items):
        path = item_path("controls", index)
        entries = _entries(
            ck, item, path, CONTROL_KEYS, CONTROL_HINTS, "a control (name, range_ug_per_l, wells)"
        )
        name = limits = wells = None
        if "name" in entries:
            name_node = entries["name"].value
            name = ck.text(
                name_node, child_path(path, "name"), allowed="text", max_length=CONTROL_NAME_MAX
            )
            if name is not None and name in names:
                ck.report(
                    name_node,
                    child_path(path, "name"),
                    f"controls[{names[name]}] has this name already",
                    got=show(name_node),
                    allowed="a name no other control has",
                )
                name = None
            elif name is not None:
                names[name] = index
        if "range_ug_per_l" in entries:
            limits = _check_range(ck, entries["range_ug_per_l"].value, path)
        if "wells" in entries:
            wells = _check_wells(ck, entries["wells"].value, child_path(path, "wells"), uses)
        if name is None or limits is None or wells is None:
            ok = False
        else:
            controls.append(ControlSpec(name, limits[0], limits[1], wells))
    return tuple(controls) if ok else None


def _check_range(ck: Checker, node: Node, control_path: str) -> tuple[float, float] | None:
    path = child_path(control_path, "range_ug_per_l")
    items = ck.sequence(node, path, min_items=2, max_items=2, what="numbers [low, high] in µg/L")
    if items is None:
        return None
    low = ck.number(items[0], item_path(path, 0), 0.0, CONC_MAX_UG_PER_L)
    high = ck.number(items[1], item_path(path, 1), 0.0, CONC_MAX_UG_PER_L)
    if low is None or high is None:
        return None
    if high <= low:
        ck.report(
            items[1],
            item_path(path, 1),
            f"the upper limit must be above the lower limit ({fmt_number(low)} µg/L)",
            got=show(items[1]),
            allowed=f"a number > {fmt_number(low)}",
        )
        return None
    return low, high


def _check_samples(
    ck: Checker, fields: Fields, uses: list[_WellUse], replicates: _Replicates
) -> tuple[SampleWells, ...] | None:
    list_node = value_of(fields, "samples")
    if list_node is None:
        return ()
    items = ck.sequence(list_node, "samples", min_items=1, max_items=SAMPLES_MAX, what="samples")
    if items is None:
        return None
    samples: list[SampleWells] = []
    ok = True
    ids: dict[str, int] = {}
    for index, item in enumerate(items):
        path = item_path("samples", index)
        entries = _entries(
            ck, item, path, SAMPLE_KEYS, SAMPLE_HINTS, "a sample (sample_id, wells, dilution)"
        )
        sid = wells = dilution = None
        if "sample_id" in entries:
            id_node = entries["sample_id"].value
            sid = sample_id(ck, id_node, child_path(path, "sample_id"))
            if sid is not None and sid in ids:
                ck.report(
                    id_node,
                    child_path(path, "sample_id"),
                    f"samples[{ids[sid]}] is this sample already; list all its replicate wells "
                    "in one entry",
                    got=show(id_node),
                    allowed="each sample_id once",
                )
                sid = None
            elif sid is not None:
                ids[sid] = index
        if "wells" in entries:
            wells = _check_wells(
                ck, entries["wells"].value, child_path(path, "wells"), uses, replicates=replicates
            )
        if "dilution" in entries:
            dilution = ck.number(
                entries["dilution"].value, child_path(path, "dilution"), *DILUTION_RANGE
            )
        if sid is None or wells is None or dilution is None:
            ok = False
        else:
            samples.append(SampleWells(sample_id=sid, wells=wells, dilution=dilution))
    return tuple(samples) if ok else None


def _check_layout(ck: Checker, fields: Fields, replicates: _Replicates) -> SampleLayout | None:
    entries = section(
        ck,
        fields,
        "sample_layout",
        required=LAYOUT_REQUIRED,
        optional=LAYOUT_OPTIONAL,
        hints=LAYOUT_HINTS,
        what="a mapping (first_well, last_well, replicates, dilution, order)",
    )
    if entries is None:
        return None
    first = last = count = dilution = None
    order: str | None = "row"
    if "first_well" in entries:
        first = _check_well(ck, entries["first_well"].value, "sample_layout.first_well")
    if "last_well" in entries:
        last_node = entries["last_well"].value
        last = _check_well(ck, last_node, "sample_layout.last_well")
        if first is not None and last is not None:
            (row0, col0), (row1, col1) = well_position(first), well_position(last)
            if row1 < row0 or col1 < col0:
                ck.report(
                    last_node,
                    "sample_layout.last_well",
                    f"the block runs from first_well {first} at its top left to last_well at "
                    "its bottom right, so last_well cannot be above or left of first_well",
                    got=show(last_node),
                    allowed=f"a well in row {first[0]} to H and column {col0 + 1} to 12",
                )
                last = None
    if "replicates" in entries:
        count_node = entries["replicates"].value
        count = ck.integer(count_node, "sample_layout.replicates", 1, REPLICATES_MAX)
        if count is not None and not replicates.check(
            ck, count_node, "sample_layout.replicates", count
        ):
            count = None
    if "dilution" in entries:
        dilution = ck.number(entries["dilution"].value, "sample_layout.dilution", *DILUTION_RANGE)
    if "order" in entries:
        order = ck.choice(entries["order"].value, "sample_layout.order", LAYOUT_ORDERS, "order")
    if first is None or last is None or count is None or dilution is None or order is None:
        return None
    return SampleLayout(
        first_well=first,
        last_well=last,
        replicates=count,
        dilution=dilution,
        order=cast(LayoutOrder, order),
    )


def _check_wells_used_once(ck: Checker, uses: list[_WellUse]) -> set[str]:
    """Each well holds one thing: report every later use of a well, naming the first."""
    first_use: dict[str, _WellUse] = {}
    for use in sorted(uses, key=lambda u: (u.node.start_mark.line, u.node.start_mark.column)):
        first = first_use.get(use.well)
        if first is None:
            first_use[use.well] = use
            continue
        mark = first.node.start_mark
        ck.report(
            use.node,
            use.path,
            f"well {use.well} is used twice: by {first.path} (line {mark.line + 1}, column "
            f"{mark.column + 1}) and by {use.path}; each well holds one thing",
            got=show(use.node),
            allowed="a well that nothing else on the plate uses",
        )
    return set(first_use)


def _check_layout_capacity(
    ck: Checker, fields: Fields, layout: SampleLayout, used: set[str]
) -> SampleLayout | None:
    """The layout must have room for at least one sample besides what the protocol places."""
    block_of_wells = block_wells(layout.first_well, layout.last_well, layout.order)
    free = [well for well in block_of_wells if well not in used]
    if len(free) >= layout.replicates:
        return layout
    node = known(value_of(fields, "sample_layout"))
    block = f"{layout.first_well}–{layout.last_well}"
    ck.report(
        node,
        "sample_layout",
        f"the block {block} has {len(free)} free well{'s' if len(free) != 1 else ''} (the "
        "others hold standards, blanks, controls or samples), too few for one sample in "
        f"{layout.replicates} replicates",
        got=f"{len(free)} free",
        allowed=f"a block with at least {layout.replicates} free wells",
    )
    return None


def _check_qc(ck: Checker, fields: Fields) -> ElisaQc | None:
    defaults = ElisaQc()
    if value_of(fields, "qc") is None:
        return defaults
    entries = section(
        ck, fields, "qc", required=(), optional=QC_KEYS, what="a mapping of QC settings"
    )
    if entries is None:
        return None
    values: dict[str, float] = {}
    ok = True
    for key in QC_KEYS:
        if key not in entries:
            continue
        hi = 1.0 if key == "min_r_squared" else PERCENT_MAX
        number = ck.number(entries[key].value, child_path("qc", key), 0.0, hi, lo_open=True)
        if number is None:
            ok = False
        else:
            values[key] = number
    if not ok:
        return None
    return ElisaQc(
        backcalc_tolerance_pct=values.get(
            "backcalc_tolerance_pct", defaults.backcalc_tolerance_pct
        ),
        backcalc_tolerance_edge_pct=values.get(
            "backcalc_tolerance_edge_pct", defaults.backcalc_tolerance_edge_pct
        ),
        max_cv_pct=values.get("max_cv_pct", defaults.max_cv_pct),
        min_r_squared=values.get("min_r_squared", defaults.min_r_squared),
    )


SCHEMA = AssaySchema(required=REQUIRED, optional=OPTIONAL, hints=HINTS, check=check_elisa)
