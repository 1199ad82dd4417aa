"""The examples in docs/protocol-files.md are valid protocols."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from protocols import parse_protocol

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol-files.md"
EXAMPLES = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def test_every_assay_has_an_example() -> None:
    assert sorted(parse_protocol(text).assay for text in EXAMPLES) == [
        "chandler-loop",
        "elisa",
        "thromboelastometry",
    ]


@pytest.mark.parametrize("text", EXAMPLES, ids=lambda text: text.split("\n")[1])
def test_example_is_valid(text: str) -> None:
    parse_protocol(text, str(DOC))
