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

LOOP_VALID = textwrap.dedent(
    """\
    format: 1
    id: test-loop
    version: 2
    title: "Test loop protocol"
    assay: chandler-loop
    instruments:
      bath: JULABO
      loop: LOOP-8
    bath:
      setpoint_c: 37.0
    loops:
      volume_ml: 5.0
      tubing: "PVC, ID 4 mm"
      rpm: 30
      heparin_iu_per_ml: 1.0
    duration_min: 60
    sample_rate_hz: 1
    samples:
      lot: VL-UC-01
      donor: VD-HEALTHY-01
    channels:
      - loop: 1
        contents: vehicle
      - loop: 3
        contents: lot
        dose_cells_per_ml: 1.0e4
      - loop: 5
        contents: lot
        dose_cells_per_ml: 3.0e4
        lot: VL-BM-01
    sampling:
      times_min: [0, 15, 60]
      tube: EDTA
      volume_ml: 1.0
    """
)

ELISA_VALID = textwrap.dedent(
    """\
    format: 1
    id: test-elisa
    version: 1
    title: "Test ELISA protocol"
    assay: elisa
    instruments:
      reader: ABS-96
    kit:
      name: "TAT test kit"
    wavelengths_nm:
      signal: 492
      reference: 650
    model: 4PL
    standards:
      - {conc_ug_per_l: 2, wells: [A1, A2]}
      - {conc_ug_per_l: 4, wells: [A3, A4]}
      - {conc_ug_per_l: 8, wells: [A5, A6]}
      - {conc_ug_per_l: 15, wells: [A7, A8]}
      - {conc_ug_per_l: 30, wells: [A9, A10]}
      - {conc_ug_per_l: 60, wells: [A11, A12]}
    blanks: [H11, H12]
    controls:
      - {name: low, range_ug_per_l: [3, 7], wells: [G1, G2]}
    samples:
      - {sample_id: S-000123, wells: [C1, C2], dilution: 10}
    sample_layout:
      first_well: C1
      last_well: D12
      replicates: 2
      dilution: 10
    """
)
