"""Whatever text it is given, the parser answers with a protocol or a ProtocolValidationError."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols import (
    ElisaProtocol,
    LoopProtocol,
    ProtocolValidationError,
    TemProtocol,
    parse_protocol,
)
from tests.protocols.texts import ELISA_VALID, LOOP_VALID, VALID

# Values and fragments that exercise YAML features and edge cases of the checks.
TOKENS = [
    "",
    "~",
    "-1",
    "0",
    "1e400",
    ".nan",
    "-.inf",
    "0x1F",
    "0o17",
    "1_000",
    "true",
    "2024-01-01",
    "'quoted'",
    '"esc\\u0041"',
    "[1, 2]",
    "{a: 1}",
    "[",
    "{",
    "!!binary aGk=",
    "!!python/object:os.system x",
    "!custom x",
    "&a 5",
    "*a",
    "*undefined",
    "<<: *a",
    "? complex",
    "|\n  block",
    "\t",
    ": :",
    "- item",
    "%YAML 1.1",
    "---",
    "...",
    "#",
    "\x00",
    "\ufeff",
    "\u2028",
    "vehicle",
    "lot",
    "NATEM",
    "teg",
    "all",
    "[1, 9]",
    "A1",
    "A01",
    "I13",
    "[A1, A1]",
    "4PL",
    "EDTA",
    "2027-06-30",
    "2027-02-30",
    "2027-06-30 10:00",
    "chandler-loop",
    "elisa",
]

FUZZ = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])


def _parse(text: str) -> None:
    try:
        protocol = parse_protocol(text, "fuzz.yaml")
    except ProtocolValidationError as exc:
        assert exc.issues
        for issue in exc.issues:
            assert issue.source == "fuzz.yaml"
            assert issue.line >= 1
            assert issue.column >= 1
            assert str(issue).startswith("fuzz.yaml:")
    else:
        assert isinstance(protocol, TemProtocol | LoopProtocol | ElisaProtocol)


@FUZZ
@given(st.text())
def test_arbitrary_text(text: str) -> None:
    _parse(text)


@st.composite
def mutated_protocols(draw: st.DrawFn, valid: str) -> str:
    lines = valid.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["delete", "duplicate", "value", "insert", "indent"]))
        line = lines[index]
        if action == "delete":
            del lines[index]
        elif action == "duplicate":
            lines.insert(index, line)
        elif action == "value":
            key, sep, _ = line.partition(":")
            token = draw(st.sampled_from(TOKENS))
            lines[index] = f"{key}{sep} {token}\n" if sep else f"{token}\n"
        elif action == "insert":
            position = draw(st.integers(0, len(line)))
            fragment = draw(st.sampled_from(TOKENS) | st.text(max_size=5))
            lines[index] = line[:position] + fragment + line[position:]
        else:
            lines[index] = draw(st.sampled_from(["", " ", "  ", "\t"])) + line.lstrip(" ")
        if not lines:
            break
    return "".join(lines)


@FUZZ
@given(mutated_protocols(VALID))
def test_mutated_valid_protocol(text: str) -> None:
    _parse(text)


@FUZZ
@given(mutated_protocols(LOOP_VALID))
def test_mutated_valid_loop_protocol(text: str) -> None:
    _parse(text)


@FUZZ
@given(mutated_protocols(ELISA_VALID))
def test_mutated_valid_elisa_protocol(text: str) -> None:
    _parse(text)
