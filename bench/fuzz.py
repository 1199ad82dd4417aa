"""Fuzz every frame, reply and file parser: at least 100 000 inputs each, counting escapes.

An *escape* is an exception other than the parser's documented error type (``FrameError``
for instrument and ASTM frames, ``RecordError`` for ASTM records, ``ReplyFormatError`` for
bath and plate-reader replies, ``PlateFormatError`` for plate CSV exports, ``FcsImportError``
for FCS files, ``ProtocolValidationError`` for protocol and method files), or a result of
the wrong type.
Inputs are valid frames, replies and files mutated by a seeded random byte mutator (flip,
insert, delete, duplicate, splice, truncate, interesting tokens; for framed lines the
checksum is often recomputed so that the field decoding is reached, not just the checksum
check). The file parsers run on all cores. ``python bench/fuzz.py [--examples N]``.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import random
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EXAMPLES = 100_000
SEED = 20240601
_TOKENS = (
    b",",
    b"*",
    b"$",
    b"\r\n",
    b"\x00",
    b"\xff",
    b"-",
    b"+",
    b".",
    b" ",
    b"nan",
    b"inf",
    b"1e999",
    b"9.91E37",
    b"99999999999999999999",
    b"-0",
    b"ERR",
    b"OK",
    b'"',
    b";",
    b":",
    b"\t",
    b"#",
    b"[",
    b"{",
    b"- ",
    b"&a ",
    b"*a",
    b"!!binary ",
    b"\xc3\xa9",
    b"\xe2\x80\xa8",
)


@dataclass(frozen=True)
class Target:
    """One parser, the errors it may raise and valid inputs to mutate."""

    name: str
    parse: Callable[[bytes], object]
    allowed: tuple[type[BaseException], ...]
    seeds: tuple[bytes, ...]
    framed: bool = False  # NMEA-style ``$...*HH`` lines: recompute the checksum sometimes
    slow: bool = False  # file parsers: spread over processes


def _reframe(data: bytes) -> bytes:
    """Give a mutated ``$body*HH`` line a correct checksum again, if it still has the shape."""
    star = data.rfind(b"*")
    if not data.startswith(b"$") or star < 1:
        return data
    checksum = 0
    for b in data[1:star]:
        checksum ^= b
    return data[: star + 1] + b"%02X" % checksum


def mutate(rng: random.Random, seeds: Sequence[bytes], framed: bool) -> bytes:
    """A valid input with 1–4 random mutations (and, for frames, often a valid checksum)."""
    data = bytearray(rng.choice(seeds))
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:  # flip a byte
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op == 1:  # insert random bytes
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        elif op == 2 and data:  # delete a span
            del data[pos : pos + rng.randint(1, 8)]
        elif op == 3 and data:  # duplicate a span
            data[pos:pos] = data[pos : pos + rng.randint(1, 16)]
        elif op == 4:  # splice with another seed
            other = rng.choice(seeds)
            cut = rng.randrange(len(other) + 1)
            data = data[:pos] + bytearray(other[cut:])
        elif op == 5:  # truncate
            del data[pos:]
        else:  # an interesting token
            data[pos:pos] = rng.choice(_TOKENS)
    out = bytes(data)
    if framed and rng.random() < 0.6:
        out = _reframe(out)
    return out


def run_target(target: Target, examples: int, seed: int) -> tuple[int, list[str]]:
    """Feed ``examples`` mutated inputs to a parser; return the count and the escapes."""
    rng = random.Random(f"{target.name}-{seed}")
    parse, allowed, seeds, framed = target.parse, target.allowed, target.seeds, target.framed
    escapes: list[str] = []
    for _ in range(examples):
        data = mutate(rng, seeds, framed)
        try:
            parse(data)
        except allowed:
            pass
        except Exception as exc:
            if len(escapes) < 20:
                escapes.append(f"{type(exc).__name__}: {exc} <- {data[:120]!r}")
            else:
                escapes.append("")
    return examples, escapes


# ---------------------------------------------------------------------- the parsers


def _text(
    parser: Callable[[str], object], codec: str = "backslashreplace"
) -> Callable[[bytes], object]:
    """A reply parser fed the way its driver decodes a line (ASCII)."""

    def parse(data: bytes) -> object:
        return parser(data.decode("ascii", codec))

    return parse


def _checked(
    parse: Callable[[bytes], object], types: tuple[type, ...]
) -> Callable[[bytes], object]:
    def checked(data: bytes) -> object:
        result = parse(data)
        if not isinstance(result, types):
            raise TypeError(f"parser returned {type(result).__name__}")
        return result

    return checked


def _file(parser: Callable[[str, str], object]) -> Callable[[bytes], object]:
    def parse(data: bytes) -> object:
        return parser(data.decode("utf-8", "replace"), "fuzz.yaml")

    return parse


def _quiet(parse: Callable[[bytes], object]) -> Callable[[bytes], object]:
    """A parser whose library warns about damaged input (the result or error says it)."""

    def quiet(data: bytes) -> object:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return parse(data)

    return quiet


def _astm_transfer(data: bytes) -> object:
    """What the analyzer link does with received bytes: cut them into frames, check each,
    join the accepted ones into records, decode those and group them into messages."""
    from drivers.wire import astm

    tokens, _rest = astm.split_stream(data)
    assembler = astm.FrameAssembler()
    texts: list[str] = []
    for token in tokens:
        if len(token) == 1:
            continue  # ENQ, ACK, NAK, EOT
        try:
            frame = astm.parse_frame(token)
        except astm.FrameError:
            continue  # NAKed and sent again by a real analyzer
        texts += assembler.add(frame)
    return astm.group_messages(astm.decode_message(texts))


def _astm_texts() -> list[str]:
    """The records of one analyzer message (H, P, O, R per analyte, L)."""
    from datetime import UTC, datetime

    from simulators.hematology import cbc_message, default_results

    return cbc_message(default_results(1)[0], "M-1", datetime(2024, 6, 1, tzinfo=UTC))


def _astm_seeds() -> tuple[bytes, ...]:
    from drivers.wire import astm

    texts = _astm_texts()
    frames = astm.frames_for_records(texts)
    return (
        astm.ENQ + b"".join(frames) + astm.EOT,
        b"".join(frames[:3]),
        b"".join(astm.frames_for_records(texts, max_text=40)),
    )


def _fcs_seed() -> bytes:
    import io

    import flowio  # type: ignore[import-untyped]

    events = [float((i * 37) % 1000) for i in range(4 * 64)]
    out = io.BytesIO()
    flowio.create_fcs(
        out,
        events,
        ["FSC-A", "SSC-A", "FITC-A", "PE-A"],
        opt_channel_names=["", "", "CD90 FITC", "CD142 PE"],
    )
    return out.getvalue()


def _plate_grid(nm: int, sep: str = ",", decimal: str = ".") -> str:
    """One wavelength of a reader's grid CSV export."""
    header = sep.join(["", *map(str, range(1, 13))])
    rows = [
        sep.join([row, *(f"{0.05 + 0.01 * (r * 12 + c):.3f}" for c in range(12))])
        for r, row in enumerate("ABCDEFGH")
    ]
    return "\n".join(["", f"Wavelength: {nm}", header, *rows]).replace(".", decimal) + "\n"


_PLATE_CSV = ("Plate 1\n" + _plate_grid(492) + _plate_grid(650)).encode()


def targets() -> list[Target]:
    """Every frame, reply and file parser of the project, with valid inputs to start from."""
    from drivers.wire import astm, julabo, loop8, scpi, sequenced, tem4
    from drivers.wire.framing import FrameError, encode_frame, parse_frame
    from instrument.analysis.plate import PlateFormatError, parse_plate_csv
    from instrument.fcs_import import FcsImportError, parse_fcs
    from protocols import (
        MethodValidationError,
        ProtocolValidationError,
        bundled_methods,
        bundled_protocols,
        parse_method,
        parse_protocol,
    )

    tem_lines = tuple(
        line.rstrip(b"\r\n")  # the transport hands lines over without their terminator
        for line in (
            tem4.encode_data(1234, 2, 61_230, 5123),
            sequenced.encode_event(1235, 3, "START", "NATEM"),
            sequenced.encode_heartbeat(1235, 62_000, 3702, "RUN"),
            sequenced.encode_reply("*IDN?", "HEMOTEC", "TEM-4", "T4-0001", "1.4.2"),
            sequenced.encode_reply("STATUS?", "RUN", "RUN", "IDLE", "RUN", "IDLE"),
            sequenced.encode_error_reply("REPLAY 5", 4, "sequence number no longer buffered"),
        )
    )
    loop_lines = tuple(
        line.rstrip(b"\r\n")
        for line in (
            loop8.encode_loop(77, 5, 120_000, 998),
            sequenced.encode_event(78, 1, "STOP", "host"),
            sequenced.encode_heartbeat(78, 121_000, 3700, "RUN"),
            sequenced.encode_reply("STATUS?", "RUN", "30", *["RUN"] * 8),
            sequenced.encode_error_reply("START", 3, "the rotor is already turning"),
        )
    )
    message_types = (
        tem4.DataFrame,
        loop8.LoopFrame,
        sequenced.EventFrame,
        sequenced.HeartbeatFrame,
        sequenced.ReplyFrame,
        sequenced.ErrorReplyFrame,
    )
    plate = scpi.format_plate([0.05 + 0.01 * i for i in range(96)]).encode()
    protocol_texts = tuple(p.read_bytes() for p in bundled_protocols())
    method_texts = tuple(p.read_bytes() for p in bundled_methods())
    astm_seeds = _astm_seeds()
    return [
        Target(
            "framing.parse_frame",
            parse_frame,
            (FrameError,),
            (*tem_lines, encode_frame("X", "a", "b")),
            framed=True,
        ),
        Target(
            "tem4.parse_line",
            _checked(tem4.parse_line, message_types),
            (FrameError,),
            tem_lines,
            framed=True,
        ),
        Target(
            "loop8.parse_line",
            _checked(loop8.parse_line, message_types),
            (FrameError,),
            loop_lines,
            framed=True,
        ),
        Target(
            "julabo.parse_temperature",
            _text(julabo.parse_temperature),
            (julabo.ReplyFormatError,),
            (b"37.02", b" -5.50 ", b"+4"),
        ),
        Target(
            "julabo.parse_mode", _text(julabo.parse_mode), (julabo.ReplyFormatError,), (b"1", b"0 ")
        ),
        Target(
            "julabo.parse_status",
            _text(julabo.parse_status),
            (julabo.ReplyFormatError,),
            (b"03 REMOTE START", b"-01 LOW LEVEL ALARM", b"-08 INVALID COMMAND", b"00 MANUAL STOP"),
        ),
        Target(
            "julabo.parse_command",
            _text(julabo.parse_command),
            (),
            (b"OUT_SP_00 37.00", b"IN_PV_00", b"OUT_MODE_05 1", b"VERSION"),
        ),
        Target(
            "julabo.split_commands",
            julabo.split_commands,
            (),
            (b"IN_PV_00\r", b"OUT_SP_00 37.00\rIN_SP_00\r\n", b"STATUS\rIN_MO"),
        ),
        Target(
            "scpi.parse_number",
            _text(scpi.parse_number, "replace"),
            (scpi.ReplyFormatError,),
            (b"37.0", b"-1.5E-3", b"+4"),
        ),
        Target(
            "scpi.parse_int",
            _text(scpi.parse_int, "replace"),
            (scpi.ReplyFormatError,),
            (b"1", b"-113", b"+255"),
        ),
        Target(
            "scpi.parse_opc", _text(scpi.parse_opc, "replace"), (scpi.ReplyFormatError,), (b"1",)
        ),
        Target(
            "scpi.parse_idn",
            _text(scpi.parse_idn, "replace"),
            (scpi.ReplyFormatError,),
            (b"HEMOTEC,ABS-96,A96-0001,2.1.0",),
        ),
        Target(
            "scpi.parse_error_entry",
            _text(scpi.parse_error_entry, "replace"),
            (scpi.ReplyFormatError,),
            (b'-113,"Undefined header"', b'0,"No error"', b'-222,"Data out of range;""x"""'),
        ),
        Target(
            "scpi.parse_wavelengths",
            _text(scpi.parse_wavelengths, "replace"),
            (scpi.ReplyFormatError,),
            (b"492,650", b"450"),
        ),
        Target(
            "scpi.parse_plate",
            _text(scpi.parse_plate, "replace"),
            (scpi.ReplyFormatError,),
            (plate,),
        ),
        Target(
            "scpi.parse_program_message",
            _text(scpi.parse_program_message, "replace"),
            (),
            (b"*IDN?", b"CONF:WAV 492,650;:INIT;*OPC?", b'SYST:ERR?;:DISP:TEXT "a;b"'),
        ),
        Target("astm.split_stream", astm.split_stream, (), astm_seeds),
        Target(
            "astm.parse_frame",
            astm.parse_frame,
            (astm.FrameError,),
            tuple(t for s in astm_seeds for t in astm.split_stream(s)[0] if len(t) > 1),
        ),
        Target(
            "astm.decode_message",
            lambda data: astm.group_messages(
                astm.decode_message(data.decode(astm.ENCODING).split("\r"))
            ),
            (astm.RecordError,),
            ("\r".join(_astm_texts()).encode(astm.ENCODING),),
        ),
        Target("astm.transfer", _astm_transfer, (astm.RecordError,), astm_seeds),
        Target(
            "plate.parse_plate_csv",
            lambda data: parse_plate_csv(data.decode("utf-8", "replace"), "fuzz.csv"),
            (PlateFormatError,),
            (_PLATE_CSV, _plate_grid(450, ";", ",").encode()),
            slow=True,
        ),
        Target(
            "fcs.parse_fcs",
            _quiet(lambda data: parse_fcs(data, "fuzz.fcs")),
            (FcsImportError,),
            (_fcs_seed(),),
            slow=True,
        ),
        Target(
            "protocols.parse_protocol",
            _file(parse_protocol),
            (ProtocolValidationError,),
            protocol_texts,
            slow=True,
        ),
        Target(
            "protocols.parse_method",
            _file(parse_method),
            (MethodValidationError,),
            method_texts,
            slow=True,
        ),
    ]


def _slow_chunk(args: tuple[str, int, int]) -> tuple[int, list[str]]:
    name, examples, seed = args
    target = next(t for t in targets() if t.name == name)
    return run_target(target, examples, seed)


def fuzz(examples: int = EXAMPLES, workers: int | None = None) -> dict[str, tuple[int, list[str]]]:
    """Run every target; file parsers in ``workers`` processes (default: all cores)."""
    results: dict[str, tuple[int, list[str]]] = {}
    all_targets = targets()
    for target in all_targets:
        if not target.slow:
            results[target.name] = run_target(target, examples, SEED)
    slow = [t for t in all_targets if t.slow]
    if slow:
        workers = workers or multiprocessing.cpu_count()
        chunks = max(1, workers * 4)
        per = math.ceil(examples / chunks)
        jobs = [(t.name, per, SEED + i) for t in slow for i in range(chunks)]
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(workers) as pool:
            outcomes = pool.map(_slow_chunk, jobs)
        for (name, _per, _seed), (count, escapes) in zip(jobs, outcomes, strict=True):
            total, found = results.get(name, (0, []))
            results[name] = (total + count, found + escapes)
    return results


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=EXAMPLES, help="Inputs per parser.")
    args = parser.parse_args(argv if argv is not None else [])
    started = time.perf_counter()
    results = fuzz(args.examples)
    wall = time.perf_counter() - started
    print(f"Parser fuzzing: {args.examples:,} mutated inputs per parser (seed {SEED})")
    print(f"  {'parser':<30} {'inputs':>10} {'escapes':>8}")
    figures: dict[str, float] = {}
    total_escapes = 0
    for name, (count, escapes) in results.items():
        print(f"  {name:<30} {count:>10,} {len(escapes):>8}")
        for line in escapes[:5]:
            if line:
                print(f"      {line}")
        total_escapes += len(escapes)
        figures[f"{name} inputs"] = float(count)
    figures["parsers fuzzed"] = float(len(results))
    figures["escapes (all parsers)"] = float(total_escapes)
    figures["fuzzing wall time (s)"] = wall
    print(f"  {len(results)} parsers, {total_escapes} escapes, {wall:.1f} s")
    return figures


if __name__ == "__main__":
    found = main(sys.argv[1:])
    sys.exit(1 if found["escapes (all parsers)"] else 0)
