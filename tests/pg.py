"""A throwaway PostgreSQL server on loopback for the storage tests (Debian's package).

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user. When no
server can be started the tests that need it are skipped with the reason.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager


class PostgresUnavailableError(Exception):
    """No PostgreSQL server could be started here (the reason is the message)."""


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise PostgresUnavailableError(f"{name} not found (install Debian's postgresql package)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server on 127.0.0.1; yield a SQLAlchemy URL of an empty database."""
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    as_root = os.geteuid() == 0
    base = tempfile.mkdtemp(prefix="hemocompat-pg-")
    data = os.path.join(base, "data")
    port = _free_port()
    prefix: list[str] = []
    if as_root:
        try:
            import pwd

            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailableError(
                "running as root and there is no 'postgres' user"
            ) from None
        os.chown(base, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]

    def run(args: list[str], timeout: float = 60) -> None:
        result = subprocess.run(
            [*prefix, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            raise PostgresUnavailableError(f"{args[0]} failed: {result.stderr.strip()[-400:]}")

    try:
        run([initdb, "-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"])
        options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
        run([pg_ctl, "-D", data, "-o", options, "-l", os.path.join(base, "log"), "-w", "start"])
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        deadline = time.monotonic() + 20
        import psycopg

        while True:
            try:
                with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres"):
                    break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise PostgresUnavailableError(
                        "the server did not accept connections"
                    ) from None
                time.sleep(0.2)
        yield url
    finally:
        if os.path.exists(os.path.join(data, "postmaster.pid")):
            subprocess.run(
                [*prefix, pg_ctl, "-D", data, "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(base, ignore_errors=True)


def fresh_database(server_url: str, name: str) -> str:
    """Create an empty database on the server; return its URL."""
    import psycopg

    port = server_url.rsplit(":", 1)[1].split("/", maxsplit=1)[0]
    with psycopg.connect(
        f"host=127.0.0.1 port={port} user=postgres dbname=postgres", autocommit=True
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"
