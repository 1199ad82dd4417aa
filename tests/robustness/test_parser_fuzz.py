"""Property tests: whatever bytes arrive, every frame, reply and file parser either returns
a well-formed value or raises its own documented error type — nothing else escapes.

The parsers and their valid inputs come from bench/fuzz.py, which runs the same parsers on
100 000 mutated inputs each; here hypothesis explores arbitrary and mutated inputs.
"""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.fuzz import Target, mutate, targets

TARGETS = {t.name: t for t in targets()}
FAST = settings(database=None, max_examples=300, deadline=None)
SLOW = settings(
    database=None, max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _parse(target: Target, data: bytes) -> None:
    with contextlib.suppress(*target.allowed):
        target.parse(data)


def test_every_wire_and_file_parser_is_covered() -> None:
    from drivers.wire import julabo, scpi

    names = set(TARGETS)
    assert {"tem4.parse_line", "loop8.parse_line", "framing.parse_frame"} <= names
    assert {"protocols.parse_protocol", "protocols.parse_method"} <= names
    assert {"astm.parse_frame", "astm.decode_message", "astm.transfer"} <= names
    assert {"scpi.parse_plate", "plate.parse_plate_csv", "fcs.parse_fcs"} <= names
    for module, prefix in ((julabo, "julabo"), (scpi, "scpi")):
        parsers = {n for n in module.__all__ if n.startswith(("parse_", "split_"))}
        assert {f"{prefix}.{n}" for n in parsers} <= names


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_arbitrary_bytes(name: str) -> None:
    target = TARGETS[name]

    @(SLOW if target.slow else FAST)
    @given(st.binary(max_size=400))
    def check(data: bytes) -> None:
        _parse(target, data)

    check()


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_mutated_valid_inputs(name: str) -> None:
    target = TARGETS[name]

    @(SLOW if target.slow else FAST)
    @given(st.randoms(use_true_random=False))
    def check(rng: random.Random) -> None:
        _parse(target, mutate(rng, target.seeds, target.framed))

    check()


def test_valid_inputs_parse() -> None:
    for target in TARGETS.values():
        for seed in target.seeds:
            target.parse(seed)  # the starting points are valid: no error at all
