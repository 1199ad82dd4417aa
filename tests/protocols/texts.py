"""Protocol texts shared by the protocol tests."""

from __future__ import annotations

import textwrap

VALID = textwrap.dedent(
    """\
    format: 1
    id: test-protocol
    version: 3
    title: "Test protocol"
    assay: thromboelastometry
    reagent: NATEM
    style: rotem
    instruments:
      tem: TEM-4
    temperature_c: 37.0
    duration_min: 60
    sample_rate_hz: 10
    samples:
      lot: VL-UC-01
      donor: VD-HEALTHY-01
    channels:
      - channel: 1
        contents: vehicle
      - channel: 2
        contents: lot
        dose_cells_per_ml: 1.0e4
      - channel: 3
        contents: lot
        dose_cells_per_ml: 3.0e4
        lot: VL-BM-01
        donor: VD-HEALTHY-02
      - channel: 4
        contents: vehicle
        donor: VD-HEALTHY-02
    """
)
