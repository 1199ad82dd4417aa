"""Synthetic TAT ELISA plates with kit-like curves and multiplicative read noise."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from instrument.analysis.elisa import Blank, Control, PlateMap, Sample, Standard
from instrument.analysis.plate import PlateReading, well_names

# Kit-like 4PL of raw OD at 492 nm against TAT in the well (µg/L).
KIT_4PL = {"a": 0.05, "b": 1.3, "c": 25.0, "d": 3.2}
# A strongly asymmetric 5PL that a 4PL cannot follow.
KIT_5PL = {"a": 0.05, "b": 1.8, "c": 10.0, "d": 3.0, "g": 0.3}
STANDARD_LEVELS = (2.0, 4.0, 8.0, 15.0, 30.0, 60.0)
REFERENCE_OD = 0.04


def true_od(conc: float, params: Mapping[str, float]) -> float:
    """Noise-free 4PL/5PL absorbance (including the plate background `a`)."""
    a, b, c, d = params["a"], params["b"], params["c"], params["d"]
    g = params.get("g", 1.0)
    if conc <= 0:
        return a
    return float(d + (a - d) / (1.0 + (conc / c) ** b) ** g)


@dataclass
class PlateDesign:
    """Where things go on a simulated plate and what they truly contain."""

    standards: dict[float, tuple[str, ...]]
    blanks: tuple[str, ...]
    samples: dict[str, tuple[float, float, tuple[str, ...]]]  # id -> (true µg/L, dilution, wells)
    controls: dict[str, tuple[float, float, float, tuple[str, ...]]] = field(default_factory=dict)
    # name -> (true µg/L, low, high, wells)

    def plate_map(self) -> PlateMap:
        entries: list[Standard | Blank | Control | Sample] = [
            Standard(conc, wells) for conc, wells in self.standards.items()
        ]
        entries.append(Blank(self.blanks))
        for name, (_, low, high, wells) in self.controls.items():
            entries.append(Control(name, low, high, wells))
        for sid, (_, dilution, wells) in self.samples.items():
            entries.append(Sample(sid, dilution, wells))
        return PlateMap(tuple(entries))

    def well_conc(self) -> dict[str, float]:
        """True TAT in each used well (µg/L, after dilution); blanks 0."""
        conc: dict[str, float] = {w: 0.0 for w in self.blanks}
        for level, wells in self.standards.items():
            conc.update({w: level for w in wells})
        for true, _, _, wells in self.controls.values():
            conc.update({w: true for w in wells})
        for true, dilution, wells in self.samples.values():
            conc.update({w: true / dilution for w in wells})
        return conc


def default_design(
    samples: Mapping[str, tuple[float, float]] | None = None,
    levels: tuple[float, ...] = STANDARD_LEVELS,
) -> PlateDesign:
    """Standards in duplicate down columns 1–2, 4 blanks, two controls, samples in duplicate."""
    rows = "ABCDEFGH"
    standards: dict[float, tuple[str, ...]] = {
        level: (f"{rows[k % 8]}{1 + 2 * (k // 8)}", f"{rows[k % 8]}{2 + 2 * (k // 8)}")
        for k, level in enumerate(levels)
    }
    blanks = ("G11", "G12", "H11", "H12")
    controls: dict[str, tuple[float, float, float, tuple[str, ...]]] = {
        "Low": (5.0, 3.5, 6.5, ("A11", "A12")),
        "High": (40.0, 30.0, 50.0, ("B11", "B12")),
    }
    if samples is None:
        samples = {
            "S-3": (3.0, 1.0),
            "S-5": (5.0, 1.0),
            "S-10": (10.0, 1.0),
            "S-20": (20.0, 1.0),
            "S-35": (35.0, 1.0),
            "S-50": (50.0, 1.0),
            "S-120x5": (120.0, 5.0),
            "S-400x20": (400.0, 20.0),
        }
    free = [w for w in well_names() if w[1:] not in ("1", "2", "11", "12")]
    placed: dict[str, tuple[float, float, tuple[str, ...]]] = {}
    for k, (sid, (true, dilution)) in enumerate(samples.items()):
        placed[sid] = (true, dilution, (free[2 * k], free[2 * k + 1]))
    return PlateDesign(standards, blanks, placed, controls)


def simulate_reading(
    design: PlateDesign,
    seed: int,
    *,
    params: Mapping[str, float] = KIT_4PL,
    cv: float = 0.03,
    overrides: Mapping[str, float] | None = None,
) -> PlateReading:
    """Read every well at 492 and 650 nm: OD492 = (curve + reference) × (1 + cv·N(0, 1))."""
    rng = np.random.default_rng(seed)
    conc = design.well_conc()
    if overrides:
        conc.update(overrides)
    signal: dict[str, float] = {}
    reference: dict[str, float] = {}
    for well in well_names():
        ref = REFERENCE_OD + rng.normal(0.0, 0.003)
        od = true_od(conc.get(well, 0.0), params) + ref
        signal[well] = od * (1.0 + cv * rng.normal())
        reference[well] = ref * (1.0 + 0.01 * rng.normal())
    return PlateReading((492, 650), {492: signal, 650: reference}, f"simulated-{seed}", True)
