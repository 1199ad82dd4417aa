"""Read YAML into position-carrying nodes and check them, collecting every issue found.

The YAML is composed, not loaded: nodes keep duplicate keys and the line and column of every
key and value, so each problem can be reported where it is in the file.
"""

from __future__ import annotations

import datetime
import difflib
import hashlib
import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from protocols.errors import ProtocolValidationError, ValidationIssue

_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_SHOW_MAX = 40


def compose(text: str, source: str) -> tuple[Node | None, list[ValidationIssue]]:
    """Compose YAML text into a node tree, or return the syntax error as a positioned issue."""
    yaml = YAML(typ="safe", pure=True)
    try:
        with warnings.catch_warnings():
            # Parser warnings (a reused anchor name, YAML 1.1 number forms) are not errors here.
            warnings.simplefilter("ignore")
            node = yaml.compose(text)
    except MarkedYAMLError as exc:
        return None, [_syntax_issue(exc, source)]
    except ReaderError as exc:
        line, column = position_of_index(text, exc.position)
        code = exc.character if isinstance(exc.character, int) else ord(str(exc.character))
        what = f"character U+{code:04X} is not allowed in a YAML file"
        return None, [ValidationIssue(source, line, column, "", what)]
    except YAMLError as exc:
        return None, [ValidationIssue(source, 1, 1, "", f"YAML syntax error: {exc}")]
    except RecursionError:
        what = "YAML syntax error: lists or mappings are nested too deeply to read"
        return None, [ValidationIssue(source, 1, 1, "", what)]
    except Exception as exc:
        # The parser's internal errors on malformed input are still errors in the input.
        what = f"YAML syntax error: the file cannot be read as YAML ({type(exc).__name__}: {exc})"
        return None, [ValidationIssue(source, 1, 1, "", what)]
    return node, []


def position_of_index(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of a character index in text."""
    index = max(0, min(index, len(text)))
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, column


def read_source(
    path: str | Path, what: str, error: type[ProtocolValidationError]
) -> tuple[str, str]:
    """The UTF-8 text of the ``what`` file at ``path`` and the SHA-256 of its bytes; an
    unreadable or non-UTF-8 file raises ``error`` saying where and what to do."""
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        reason = "no such file"
    except IsADirectoryError:
        reason = "it is a directory"
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
    else:
        try:
            return data.decode("utf-8"), hashlib.sha256(data).hexdigest()
        except UnicodeDecodeError as exc:
            prefix = data[: exc.start].decode("utf-8", "replace")
            line, column = position_of_index(prefix, len(prefix))
            message = (
                f"the file is not UTF-8 text (byte 0x{data[exc.start]:02X}); "
                "save it with UTF-8 encoding"
            )
            raise error([ValidationIssue(source, line, column, "", message)]) from None
    raise error([ValidationIssue(source, 0, 0, "", f"cannot read the {what} file: {reason}")])


def _syntax_issue(exc: MarkedYAMLError, source: str) -> ValidationIssue:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = exc.problem or exc.context or "malformed YAML"
    what = f"YAML syntax error: {problem}"
    if exc.context and exc.problem and exc.problem.startswith("but "):
        what = f"YAML syntax error: {exc.context}, {exc.problem}"
    elif exc.context and exc.problem:
        context_mark = exc.context_mark
        if context_mark is not None and (context_mark.line, context_mark.column) != (
            line - 1,
            column - 1,
        ):
            where = f" at line {context_mark.line + 1}, column {context_mark.column + 1}"
        else:
            where = ""
        what += f" ({exc.context}{where})"
    if "'\\t'" in what:
        what += "; indent with spaces, not tabs"
    elif "mapping values are not allowed" in what:
        what += "; check this line's indentation, or quote a value that contains ': '"
    return ValidationIssue(source, line, column, "", what)


def child_path(path: str, key: str) -> str:
    """Path of a key inside the mapping at path, e.g. `analysis.ct_threshold_mm`."""
    return f"{path}.{key}" if path else key


def item_path(path: str, index: int) -> str:
    """Path of a list item (0-based), e.g. `channels[2]`."""
    return f"{path}[{index}]"


def show(node: Node) -> str:
    """How an offending value is quoted back to the user: as written, with its kind if unclear."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return f"a list of {len(node.value)} item{'s' if len(node.value) != 1 else ''}"
    value = str(node.value)
    if node.tag == _NULL_TAG:
        return "an empty value" if value in ("", "~") else f"{value} (null)"
    if len(value) > _SHOW_MAX:
        value = value[: _SHOW_MAX - 1] + "…"
    if node.tag == _STR_TAG:
        return f'"{value}"' if "\n" not in value else f'"{value.splitlines()[0]}…"'
    return value


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """The closest allowed spelling of word, if one is close enough to be a likely typo."""
    options = list(choices)
    by_lower = {option.lower(): option for option in options}
    if word.lower() in by_lower:
        return by_lower[word.lower()]
    match = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[match[0]] if match else None


def number_range(
    lo: float | None, hi: float | None, *, lo_open: bool = False, whole: bool = False
) -> str:
    """Human wording of a numeric range, e.g. "a number > 0 and ≤ 2"."""
    kind = "a whole number" if whole else "a number"
    if lo is not None and hi is not None and not lo_open:
        return f"{kind} from {fmt_number(lo)} to {fmt_number(hi)}"
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '≥'} {fmt_number(lo)}")
    if hi is not None:
        parts.append(f"≤ {fmt_number(hi)}")
    return f"{kind} {' and '.join(parts)}" if parts else kind


def fmt_number(value: float) -> str:
    """Compact number for messages: 45, 0.5, 1e7."""
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    if abs(value) >= 1e6:
        mantissa, exponent = f"{value:e}".split("e")
        return f"{float(mantissa):g}e{int(exponent)}"
    return f"{value:g}"


def one_of(choices: Sequence[str]) -> str:
    """Wording for an enumeration of allowed values."""
    return "one of " + ", ".join(choices)


@dataclass(frozen=True)
class Entry:
    """A key of a mapping and its value node, as first written in the file."""

    key: ScalarNode
    value: Node


Fields = dict[str, Entry]


class Checker:
    """Collects issues for one file; each check reports what is wrong and returns None."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.issues: list[ValidationIssue] = []
        self._yaml = YAML(typ="safe", pure=True)  # its constructor turns scalar nodes into values

    def report(
        self,
        node: Node,
        path: str,
        what: str,
        *,
        got: str | None = None,
        allowed: str | None = None,
    ) -> None:
        """Record an issue at node's position."""
        message = what
        if got is not None:
            message += f"; got {got}"
        if allowed is not None:
            message += f"; allowed: {allowed}"
        mark = node.start_mark
        self.issues.append(
            ValidationIssue(self.source, mark.line + 1, mark.column + 1, path, message)
        )

    def sorted_issues(self) -> list[ValidationIssue]:
        """Issues in file order (line, column), duplicates removed."""
        return sorted(set(self.issues), key=lambda i: (i.line, i.column, i.path, i.message))

    # -- mappings -------------------------------------------------------------------------

    def mapping(self, node: Node, path: str, what: str = "a mapping of keys to values") -> Fields:
        """Entries of a mapping node, reporting duplicate and non-text keys; {} if not a mapping."""
        if not isinstance(node, MappingNode) or node.tag != _MAP_TAG:
            self._wrong_kind(node, path, what)
            return {}
        fields: Fields = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                self.report(
                    key_node,
                    path,
                    "keys must be plain names (merge keys and complex keys are not supported)",
                    got=show(key_node) if key_node.tag != _MERGE_TAG else "<<",
                )
                continue
            name = str(key_node.value)
            if name in fields:
                first = fields[name].key.start_mark
                self.report(
                    key_node,
                    child_path(path, name),
                    f"duplicate key, already given at line {first.line + 1}, "
                    f"column {first.column + 1}",
                    got=show(key_node),
                    allowed="each key once",
                )
                continue
            fields[name] = Entry(key_node, value_node)
        return fields

    def keys(
        self,
        node: Node,
        fields: Fields,
        path: str,
        *,
        required: Sequence[str],
        optional: Sequence[str],
        hints: Mapping[str, str] | None = None,
    ) -> None:
        """Report unknown keys (with a did-you-mean) and missing required keys.

        hints says, per required key, what value it takes, for the "missing" message.
        """
        allowed = [*required, *optional]
        for name, entry in fields.items():
            if name in allowed:
                continue
            hint = suggest(name, allowed)
            what = "unknown key" + (f", did you mean {hint!r}?" if hint else "")
            self.report(
                entry.key,
                child_path(path, name),
                what,
                got=show(entry.key),
                allowed=", ".join(allowed) if allowed else "no keys",
            )
        if not isinstance(node, MappingNode):
            return
        for name in required:
            if name not in fields:
                allowed_value = (hints or {}).get(name)
                self.report(
                    node, child_path(path, name), "required key is missing", allowed=allowed_value
                )

    # -- scalar values --------------------------------------------------------------------

    def _wrong_kind(self, node: Node, path: str, expected: str) -> None:
        if isinstance(node, MappingNode | SequenceNode) and node.tag not in (_MAP_TAG, _SEQ_TAG):
            what = f"YAML tag {node.tag} is not supported"
        else:
            what = "wrong type"
        self.report(node, path, what, got=show(node), allowed=expected)

    def _scalar(self, node: Node, path: str, expected: str) -> Any:
        """The Python value of a scalar node; reports and returns None for anything else."""
        if not isinstance(node, ScalarNode):
            self._wrong_kind(node, path, expected)
            return None
        if node.tag == _NULL_TAG:
            self.report(node, path, "value is empty", got=show(node), allowed=expected)
            return None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return self._yaml.constructor.construct_object(node, deep=True)
        except Exception:  # an unknown tag, or a standard tag on text it cannot convert
            if node.tag in type(self._yaml.constructor).yaml_constructors:
                what = f"value cannot be read as {node.tag}"
            else:
                what = f"YAML tag {node.tag} is not supported"
        self.report(node, path, what, got=show(node), allowed=expected)
        return None

    def text(
        self,
        node: Node,
        path: str,
        *,
        pattern: re.Pattern[str] | None = None,
        allowed: str = "text",
        max_length: int | None = None,
    ) -> str | None:
        """A non-empty string value, optionally matching a pattern."""
        value = self._scalar(node, path, allowed)
        if value is None:
            return None
        if not isinstance(value, str):
            self.report(node, path, "wrong type", got=show(node), allowed=allowed)
            return None
        if not value.strip():
            self.report(node, path, "text is empty", got=show(node), allowed=allowed)
            return None
        if max_length is not None and len(value) > max_length:
            self.report(
                node,
                path,
                f"text is too long ({len(value)} characters)",
                got=show(node),
                allowed=f"{allowed}, at most {max_length} characters",
            )
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.report(node, path, "invalid value", got=show(node), allowed=allowed)
            return None
        return value

    def choice(self, node: Node, path: str, choices: Sequence[str], what: str) -> str | None:
        """One of a fixed set of names, with a did-you-mean on a near miss."""
        value = self._scalar(node, path, one_of(choices))
        if value is None:
            return None
        if isinstance(value, str) and value in choices:
            return value
        hint = suggest(str(value), choices) if isinstance(value, str) else None
        message = f"unknown {what}" + (f", did you mean {hint!r}?" if hint else "")
        self.report(node, path, message, got=show(node), allowed=one_of(choices))
        return None

    def integer(
        self, node: Node, path: str, lo: int, hi: int | None, *, allowed: str | None = None
    ) -> int | None:
        """A whole number within [lo, hi]; allowed overrides the wording of the range."""
        allowed = allowed or number_range(lo, hi, whole=True)
        value = self._scalar(node, path, allowed)
        if value is None:
            return None
        if isinstance(value, float) and math.isfinite(value):
            self.report(node, path, "not a whole number", got=show(node), allowed=allowed)
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.report(node, path, "wrong type", got=show(node), allowed=allowed)
            return None
        if value < lo or (hi is not None and value > hi):
            self.report(node, path, "out of range", got=show(node), allowed=allowed)
            return None
        return value

    def number(
        self,
        node: Node,
        path: str,
        lo: float | None,
        hi: float | None,
        *,
        lo_open: bool = False,
    ) -> float | None:
        """A finite number within the range; lo is excluded when lo_open."""
        allowed = number_range(lo, hi, lo_open=lo_open)
        value = self._scalar(node, path, allowed)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.report(node, path, "wrong type", got=show(node), allowed=allowed)
            return None
        number = float(value)
        if not math.isfinite(number):
            self.report(node, path, "not a finite number", got=show(node), allowed=allowed)
            return None
        too_low = lo is not None and (number <= lo if lo_open else number < lo)
        too_high = hi is not None and number > hi
        if too_low or too_high:
            self.report(node, path, "out of range", got=show(node), allowed=allowed)
            return None
        return number

    def date(
        self,
        node: Node,
        path: str,
        *,
        allowed: str = "a date written YYYY-MM-DD without quotes, e.g. 2027-06-30",
    ) -> datetime.date | None:
        """A calendar date (an unquoted YAML date, without a time of day)."""
        value = self._scalar(node, path, allowed)
        if value is None:
            return None
        if isinstance(value, datetime.datetime) or not isinstance(value, datetime.date):
            self.report(node, path, "wrong type", got=show(node), allowed=allowed)
            return None
        return value

    def sequence(
        self, node: Node, path: str, *, min_items: int, max_items: int, what: str
    ) -> list[Node] | None:
        """Items of a list node with a length check; None if not a list or of the wrong length."""
        if min_items == max_items:
            allowed = f"a list of {min_items} {what}"
        else:
            allowed = f"a list of {min_items} to {max_items} {what}"
        if not isinstance(node, SequenceNode) or node.tag != _SEQ_TAG:
            self._wrong_kind(node, path, allowed)
            return None
        items: list[Node] = list(node.value)
        if not min_items <= len(items) <= max_items:
            self.report(
                node,
                path,
                f"{'too few' if len(items) < min_items else 'too many'} entries",
                got=show(node),
                allowed=allowed,
            )
            return None
        return items
