"""TEM-4 stream throughput: frames per second through parsing and the driver's sequencing,
compared with what a 115 200-baud line can carry (the target is at least 250×)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from drivers.tem4 import BITS_PER_BYTE, StreamItem, Tem4Driver
from drivers.testing import ScriptedTransport
from drivers.transport import SerialTransport
from drivers.wire.tem4 import BAUDRATE, CHANNELS, encode_data, encode_reply, parse_line

N_FRAMES = 200_000
CHUNK = 4096  # lines per feed, about what one bulk read returns on a busy link
TARGET_RATIO = 250.0


def make_stream(n: int) -> list[bytes]:
    """Encoded D frames as four channels at 100 Hz would send them an hour into a run."""
    first_seq = 1_000_000
    return [
        encode_data(
            first_seq + i,
            1 + i % CHANNELS,
            3_600_000 + (i // CHANNELS) * 10,
            5000 + (i * 37) % 1500,
        )
        for i in range(n)
    ]


def best_of(repeats: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(repeats))


def time_parse(lines: list[bytes]) -> float:
    started = time.perf_counter()
    for line in lines:
        parse_line(line)
    return time.perf_counter() - started


def time_driver(lines: list[bytes]) -> float:
    """parse_line + sequencing + handing the items out, as Tem4Driver.poll() does."""
    with Tem4Driver(ScriptedTransport([])) as tem:
        started = time.perf_counter()
        delivered = 0
        for i in range(0, len(lines), CHUNK):
            tem.feed_lines(lines[i : i + CHUNK])
            delivered += len(tem.poll())
        elapsed = time.perf_counter() - started
        stats = tem.stats
    if delivered != len(lines) or stats.frames_ok != len(lines):
        raise RuntimeError(f"driver delivered {delivered} of {len(lines)} frames: {stats}")
    return elapsed


def time_socket_stream(payload: bytes, n: int) -> float:
    """End to end: a socket:// SerialTransport and the driver's reader thread into a sink."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    done = threading.Event()
    count = 0

    def sink(item: StreamItem) -> None:
        nonlocal count
        count += 1
        if count == n:
            done.set()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            command = b""
            while not command.endswith(b"\n"):
                command += conn.recv(64)
            conn.sendall(encode_reply("CH1:START NATEM", "OK") + payload)
            done.wait(60)

    server = threading.Thread(target=serve, name="bench-tem4-server", daemon=True)
    server.start()
    try:
        with Tem4Driver(SerialTransport(f"socket://127.0.0.1:{port}")) as tem:
            tem.start_streaming(sink)
            started = time.perf_counter()
            tem.start_channel(1, "NATEM")  # the server streams once the command arrives
            if not done.wait(60):
                raise RuntimeError(f"only {count} of {n} frames arrived: {tem.stats}")
            elapsed = time.perf_counter() - started
    finally:
        done.set()
        server.join(5)
        listener.close()
    return elapsed


def main() -> dict[str, float]:
    """Run the benchmark, print a table, and return its figures."""
    encoded = make_stream(N_FRAMES)
    lines = [frame.rstrip(b"\r\n") for frame in encoded]
    bytes_per_frame = sum(map(len, encoded)) / len(encoded)
    line_rate = BAUDRATE / BITS_PER_BYTE / bytes_per_frame

    parse_fps = N_FRAMES / best_of(3, lambda: time_parse(lines))
    driver_fps = N_FRAMES / best_of(3, lambda: time_driver(lines))
    socket_fps = N_FRAMES / time_socket_stream(b"".join(encoded), N_FRAMES)

    figures = {
        "bytes_per_frame": bytes_per_frame,
        "line_rate_frames_per_s": line_rate,
        "parse_frames_per_s": parse_fps,
        "driver_frames_per_s": driver_fps,
        "socket_stream_frames_per_s": socket_fps,
        "parse_vs_line_rate": parse_fps / line_rate,
        "driver_vs_line_rate": driver_fps / line_rate,
        "socket_stream_vs_line_rate": socket_fps / line_rate,
    }
    print(f"TEM-4 frame throughput ({N_FRAMES} D frames, {bytes_per_frame:.1f} bytes each)")
    print(f"{'path':<44}{'frames/s':>12}{'× line':>10}")
    rows = [
        (f"{BAUDRATE}-baud line (8N1)", line_rate),
        ("parse_line", parse_fps),
        ("parse_line + driver sequencing", driver_fps),
        ("socket:// transport + reader thread + sink", socket_fps),
    ]
    for label, fps in rows:
        print(f"{label:<44}{fps:>12,.0f}{fps / line_rate:>9.0f}×")
    verdict = "meets" if figures["driver_vs_line_rate"] >= TARGET_RATIO else "MISSES"
    print(f"driver path {verdict} the {TARGET_RATIO:.0f}× target")
    return figures


if __name__ == "__main__":
    main()
