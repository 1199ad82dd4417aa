"""Byte transports for instrument drivers: serial lines (pyserial) and VISA resources (pyvisa).

A driver receives a transport object and never opens ports itself, so the same driver runs on
a USB-serial adapter, a simulator's pseudo-terminal, a ``socket://`` URL or a scripted test
transport (:mod:`drivers.testing`).
"""

from __future__ import annotations

import errno
import io
import logging
import os
import re
import select
import sys
import threading
import time
from typing import Any, Protocol

import serial

__all__ = [
    "LineTransport",
    "LinkLostError",
    "PortBusyError",
    "PortNotFoundError",
    "SerialTransport",
    "TransportError",
    "TransportTimeoutError",
    "VisaTransport",
    "available_serial_ports",
]

#: Bytes asked for in one non-blocking read; a burst larger than this is read in several calls.
_CHUNK = 65536
#: A fragment this long without a line terminator is handed on as a line of its own (the
#: driver then reports it as corrupt) instead of growing the buffer without bound.
_MAX_LINE = 4096
_DEBUG = logging.DEBUG


class TransportError(Exception):
    """A port or link problem: the message says what failed, on which resource, what to do."""

    def __init__(self, message: str, *, resource: str = "") -> None:
        super().__init__(message)
        self.resource = resource


class PortNotFoundError(TransportError):
    """The port, device path or network address does not exist or nothing answers there."""


class PortBusyError(TransportError):
    """Another program (or another connection of this one) holds the port."""


class LinkLostError(TransportError):
    """A read or write failed on an open link: cable pulled, adapter unplugged, peer closed."""


class TransportTimeoutError(TransportError):
    """A VISA read or query got no answer within the resource's timeout."""


class LineTransport(Protocol):
    """What a line-oriented driver needs from its transport (serial, socket, scripted)."""

    name: str
    resource: str
    lock: threading.Lock

    def write(self, data: bytes) -> None:
        """Send one command; the transport appends its line terminator."""
        ...

    def read_lines(self, timeout: float) -> list[bytes]:
        """Return the complete lines received so far (CR/LF stripped), waiting up to timeout."""
        ...

    def close(self) -> None:
        """Release the port."""
        ...


def available_serial_ports() -> list[str]:
    """Device names of the serial ports the operating system reports, sorted."""
    from serial.tools import list_ports

    return sorted(p.device for p in list_ports.comports())


def available_visa_resources(query: str = "?*::INSTR", backend: str = "@py") -> list[str]:
    """VISA resources the backend finds, sorted (pyvisa-py: serial ports, USB-TMC, VXI-11
    instruments on the local network, which takes about a second). Raw-socket instruments
    (``TCPIP::host::port::SOCKET``) announce nothing: type their address."""
    import warnings

    import pyvisa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyvisa-py names optional discovery packages
        try:
            manager = pyvisa.ResourceManager(backend)
        except (OSError, ValueError) as exc:
            raise TransportError(f"cannot start the VISA library {backend!r}: {exc}") from None
        try:
            return sorted(manager.list_resources(query))
        except (pyvisa.Error, OSError, ValueError) as exc:
            raise TransportError(f"listing VISA resources failed: {exc}") from None
        finally:
            manager.close()


def _ports_hint() -> str:
    ports = available_serial_ports()
    if not ports:
        return "No serial ports were found on this computer; check the adapter is plugged in."
    return "Serial ports that exist: " + ", ".join(ports) + "."


def _default_name(resource: str) -> str:
    """A logger-friendly name for a resource (``/dev/ttyUSB0`` → ``ttyUSB0``)."""
    tail = resource.rstrip("/").rsplit("/", 1)[-1] if "://" not in resource else resource
    return re.sub(r"[^A-Za-z0-9_-]+", "_", tail).strip("_") or "port"


def _is_pseudo_terminal(path: str) -> bool:
    """True for a pty slave (a simulator's endpoint), which has no baud-rate limit."""
    real = os.path.realpath(path)
    if real.startswith("/dev/pts/") or re.fullmatch(r"/dev/ttys\d+", real):
        return True
    if sys.platform.startswith("linux"):
        try:
            major = os.major(os.stat(real).st_rdev)
        except OSError:
            return False
        return 136 <= major <= 143  # Unix98 pty slaves
    return False


class SerialTransport:
    """A serial line or pyserial URL read in bulk and split into CR LF terminated lines.

    ``url`` is a device path (``/dev/ttyUSB0``, ``COM3``, a simulator's ``/dev/pts/N``) or a
    pyserial URL (``socket://127.0.0.1:PORT``). Ports are opened for exclusive use. Ports
    that select() can wait on are read without blocking, in bursts; on the others (Windows COM
    ports, ``loop://``, ``rfc2217://``) each read waits at most ``timeout`` seconds.
    """

    def __init__(
        self,
        url: str,
        *,
        baudrate: int = 115200,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: float = 1,
        rtscts: bool = False,
        timeout: float = 0.05,
        write_timeout: float = 2.0,
        write_terminator: bytes = b"\r\n",
        name: str | None = None,
    ) -> None:
        self.resource = url
        self.name = name or _default_name(url)
        self.lock = threading.Lock()
        self.write_terminator = write_terminator
        self._log = logging.getLogger(f"hemocompat.io.{self.name}")
        self._write_lock = threading.Lock()
        self._buf = b""
        self._closed = False
        self._timeout = timeout
        self._write_timeout = write_timeout
        is_url = "://" in url
        #: The line rate that limits throughput; None for sockets and pseudo-terminals.
        self.baudrate: int | None = None if is_url or _is_pseudo_terminal(url) else baudrate
        try:
            self._serial: serial.Serial = serial.serial_for_url(
                url,
                baudrate=baudrate,
                bytesize=bytesize,
                parity=parity,
                stopbits=stopbits,
                rtscts=rtscts,
                timeout=timeout,
                write_timeout=write_timeout,
                exclusive=True,
                do_not_open=True,
            )
            selectable = self._selectable()
            if selectable:
                # Poll with select() ourselves and read whatever is there without blocking:
                # one read returns a whole burst, even on sockets where in_waiting is 0 or 1.
                # Set before opening: changing it later re-applies every line setting.
                self._serial.timeout = 0
            self._serial.open()
        except serial.SerialException as exc:
            raise self._open_error(exc) from exc
        except ValueError as exc:
            raise TransportError(
                f"Cannot open {url}: invalid port settings ({exc}). Check the port name or URL "
                f"and the line settings (baud rate, data bits, parity N/E/O, stop bits).",
                resource=url,
            ) from exc
        self._fd: int | None = self._serial.fileno() if selectable else None
        self._log.debug("opened %s", url)

    def _selectable(self) -> bool:
        """True when the port has a file descriptor that select() can wait on."""
        if os.name != "posix" and "://" not in self.resource:
            return False  # Windows COM ports cannot be polled with select()
        return getattr(type(self._serial), "fileno", None) is not io.RawIOBase.fileno

    def _open_error(self, exc: Exception) -> TransportError:
        url = self.resource
        code = getattr(exc, "errno", None)
        text = str(exc)
        if "://" in url:
            if code == errno.ECONNREFUSED or "refused" in text.lower():
                return PortNotFoundError(
                    f"Nothing is listening at {url} (connection refused). Start the simulator "
                    f"or instrument server first and check the host and port number.",
                    resource=url,
                )
            return PortNotFoundError(
                f"Cannot open {url}: {text}. Check the host and port number.", resource=url
            )
        if "exclusively lock" in text or code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK):
            return PortBusyError(
                f"{url} is in use by another program. Close the other program (a terminal, "
                f"another hemocompat window or simulator client) or choose another port.",
                resource=url,
            )
        if sys.platform == "win32" and ("Access is denied" in text or code == errno.EACCES):
            return PortBusyError(
                f"{url} is in use by another program (Windows reports 'access denied'). "
                f"Close the other program or choose another port.",
                resource=url,
            )
        if code == errno.EACCES or "Permission denied" in text:
            return TransportError(
                f"Permission denied opening {url}. Add your user to the group that owns the "
                f"port (often 'dialout' or 'uucp') and log in again.",
                resource=url,
            )
        if (
            code in (errno.ENOENT, errno.ENODEV, errno.ENXIO)
            or "No such file" in text
            or "FileNotFoundError" in text
            or "cannot find" in text
        ):
            return PortNotFoundError(
                f"Serial port {url} does not exist. {_ports_hint()} Check the port name in "
                f"the station settings and that the adapter is plugged in.",
                resource=url,
            )
        return TransportError(f"Cannot open {url}: {text}.", resource=url)

    def _lost(self, action: str, exc: BaseException) -> LinkLostError:
        return LinkLostError(
            f"Lost the link to {self.resource} while {action}: {exc}. Check the cable and "
            f"that the instrument or simulator is still running, then reconnect.",
            resource=self.resource,
        )

    def write(self, data: bytes) -> None:
        """Send ``data`` followed by the write terminator, as one atomic write."""
        if self._closed:
            raise LinkLostError(
                f"Cannot write to {self.resource}: the port was closed.", resource=self.resource
            )
        if self._log.isEnabledFor(_DEBUG):
            self._log.debug("> %r", data)
        payload = data + self.write_terminator
        with self._write_lock:
            try:
                self._serial.write(payload)
            except serial.SerialTimeoutException as exc:
                raise TransportError(
                    f"Writing to {self.resource} did not finish within "
                    f"{self._write_timeout:g} s: the device is not accepting data. Check "
                    f"RTS/CTS flow-control wiring and the rtscts setting.",
                    resource=self.resource,
                ) from exc
            except (serial.SerialException, OSError, TypeError, ValueError) as exc:
                raise self._lost("writing", exc) from exc

    def read_lines(self, timeout: float) -> list[bytes]:
        """Return the complete lines received (CR/LF stripped, blank lines skipped).

        Waits up to ``timeout`` seconds for at least one complete line; returns ``[]`` if none
        arrived. A partial line stays buffered for the next call.
        """
        deadline = time.monotonic() + timeout
        while True:
            chunk = self._read_chunk(deadline)
            if chunk:
                lines = self._split(chunk)
                if lines:
                    if self._log.isEnabledFor(_DEBUG):
                        for line in lines:
                            self._log.debug("< %r", line)
                    return lines
            elif time.monotonic() >= deadline:
                return []

    def _read_chunk(self, deadline: float) -> bytes:
        if self._closed:
            raise LinkLostError(
                f"Cannot read from {self.resource}: the port was closed.", resource=self.resource
            )
        ser = self._serial
        try:
            if self._fd is not None:
                data: bytes = ser.read(_CHUNK)
                if data:
                    return data
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    ready, _, _ = select.select([self._fd], [], [], remaining)
                    if ready:
                        return bytes(ser.read(_CHUNK))
                return b""
            waiting = ser.in_waiting
            return bytes(ser.read(waiting if waiting else 1))
        except (serial.SerialException, OSError, TypeError, ValueError) as exc:
            if self._closed:
                raise LinkLostError(
                    f"Reading from {self.resource} stopped: the port was closed.",
                    resource=self.resource,
                ) from exc
            raise self._lost("reading", exc) from exc

    def _split(self, chunk: bytes) -> list[bytes]:
        data = self._buf + chunk if self._buf else chunk
        if b"\n" not in chunk:
            if len(data) > _MAX_LINE:
                self._buf = b""
                self._log.warning(
                    "%s: %d bytes without a line terminator; passing them on as one line",
                    self.resource,
                    len(data),
                )
                return [data]
            self._buf = data
            return []
        parts = data.split(b"\n")
        self._buf = parts.pop()
        return [p[:-1] if p[-1:] == b"\r" else p for p in parts if p and p != b"\r"]

    def close(self) -> None:
        """Close the port (idempotent); a read under way in another thread then fails."""
        if self._closed:
            return
        self._closed = True
        try:
            self._serial.close()
        except Exception as exc:  # closing must never raise; the port is gone either way
            self._log.debug("error closing %s: %s", self.resource, exc)
        self._log.debug("closed %s", self.resource)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> SerialTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SerialTransport({self.resource!r}, name={self.name!r})"


class VisaTransport:
    """A VISA message-based resource (SCPI instruments) through pyvisa, pyvisa-py by default.

    ``resource`` is a VISA address such as ``TCPIP::192.168.1.20::5025::SOCKET`` or
    ``ASRL/dev/ttyUSB0::INSTR``.
    """

    def __init__(
        self,
        resource: str,
        *,
        backend: str = "@py",
        timeout_ms: int = 2000,
        read_termination: str = "\n",
        write_termination: str = "\n",
        name: str | None = None,
    ) -> None:
        import pyvisa
        import pyvisa.rname

        self.resource = resource
        self.name = name or _default_name(resource.replace("::", "_"))
        self.lock = threading.Lock()
        self.baudrate: int | None = None
        self._log = logging.getLogger(f"hemocompat.io.{self.name}")
        self._io_lock = threading.RLock()
        self._closed = False
        self._timeout_ms = timeout_ms
        self._write_termination = write_termination
        try:
            self._rm = pyvisa.ResourceManager(backend)
        except (OSError, ValueError, pyvisa.errors.Error) as exc:
            raise TransportError(
                f"Cannot load the VISA backend {backend!r} for {resource}: {exc}. Install "
                f"pyvisa-py (backend '@py') or a vendor VISA library.",
                resource=resource,
            ) from exc
        try:
            self._inst: Any = self._rm.open_resource(
                resource,
                timeout=timeout_ms,
                read_termination=read_termination,
                write_termination=write_termination,
            )
        except Exception as exc:
            self._rm.close()
            try:
                pyvisa.rname.parse_resource_name(resource)
            except pyvisa.rname.InvalidResourceName as name_exc:
                raise PortNotFoundError(
                    f"{resource!r} is not a VISA address ({name_exc}). Write it like "
                    f"TCPIP::192.168.1.20::5025::SOCKET or ASRL/dev/ttyUSB0::INSTR.",
                    resource=resource,
                ) from exc
            raise self._map_error("opening", exc) from exc
        self._log.debug("opened %s", resource)

    def _map_error(self, action: str, exc: BaseException) -> TransportError:
        import pyvisa
        from pyvisa import constants

        res = self.resource
        code = exc.error_code if isinstance(exc, pyvisa.errors.VisaIOError) else None
        if isinstance(exc, ConnectionRefusedError):
            return PortNotFoundError(
                f"Nothing is listening at {res} (connection refused). Check the instrument is "
                f"on and its IP address and port, or start the simulator.",
                resource=res,
            )
        if code in (constants.VI_ERROR_RSRC_NFOUND, constants.VI_ERROR_INV_RSRC_NAME):
            return PortNotFoundError(
                f"VISA resource {res} was not found ({exc}). Check the address format "
                f"(e.g. TCPIP::192.168.1.20::5025::SOCKET) and that the instrument is connected.",
                resource=res,
            )
        if code in (constants.VI_ERROR_RSRC_BUSY, constants.VI_ERROR_RSRC_LOCKED):
            return PortBusyError(
                f"VISA resource {res} is in use by another program. Close the other program "
                f"or session and try again.",
                resource=res,
            )
        if code == constants.VI_ERROR_TMO:
            return TransportTimeoutError(
                f"No answer from {res} within {self._timeout_ms} ms while {action}. Check the "
                f"instrument is on, the cable, and the line termination settings.",
                resource=res,
            )
        if isinstance(exc, OSError | pyvisa.errors.VisaIOError):
            return self._lost(action, exc)
        return TransportError(f"VISA error on {res} while {action}: {exc}.", resource=res)

    def _lost(self, action: str, exc: BaseException) -> LinkLostError:
        return LinkLostError(
            f"Lost the link to {self.resource} while {action}: {exc}. Check the cable or "
            f"network and that the instrument is on, then reconnect.",
            resource=self.resource,
        )

    def _check_open(self, action: str) -> None:
        if self._closed:
            raise LinkLostError(
                f"Cannot {action} {self.resource}: the resource was closed.",
                resource=self.resource,
            )

    def write(self, data: str | bytes) -> None:
        """Send one command; the write termination is appended."""
        self._check_open("write to")
        if self._log.isEnabledFor(_DEBUG):
            self._log.debug("> %r", data)
        with self._io_lock:
            try:
                if isinstance(data, bytes):
                    self._inst.write_raw(data + self._write_termination.encode("ascii"))
                else:
                    self._inst.write(data)
            except Exception as exc:
                raise self._map_error("writing", exc) from exc

    def read(self) -> str:
        """Read one response (termination stripped)."""
        self._check_open("read from")
        with self._io_lock:
            try:
                text: str = self._inst.read()
            except Exception as exc:
                raise self._map_error("reading", exc) from exc
        if self._log.isEnabledFor(_DEBUG):
            self._log.debug("< %r", text)
        return text

    def query(self, command: str) -> str:
        """Write ``command`` and read its response."""
        with self._io_lock:
            self.write(command)
            return self.read()

    def read_lines(self, timeout: float) -> list[bytes]:
        """Read at most one response, waiting up to ``timeout`` s; ``[]`` if none arrived."""
        import pyvisa
        from pyvisa import constants

        self._check_open("read from")
        with self._io_lock:
            self._inst.timeout = max(0, round(timeout * 1000))
            try:
                text: str = self._inst.read()
            except pyvisa.errors.VisaIOError as exc:
                if exc.error_code == constants.VI_ERROR_TMO:
                    return []
                raise self._map_error("reading", exc) from exc
            except Exception as exc:
                raise self._map_error("reading", exc) from exc
            finally:
                self._inst.timeout = self._timeout_ms
        if self._log.isEnabledFor(_DEBUG):
            self._log.debug("< %r", text)
        line = text.rstrip("\r\n").encode("ascii", "backslashreplace")
        return [line] if line else []

    def close(self) -> None:
        """Close the resource and its resource manager (idempotent)."""
        if self._closed:
            return
        self._closed = True
        with self._io_lock:
            for closer in (self._inst.close, self._rm.close):
                try:
                    closer()
                except Exception as exc:  # closing must never raise
                    self._log.debug("error closing %s: %s", self.resource, exc)
        self._log.debug("closed %s", self.resource)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> VisaTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VisaTransport({self.resource!r}, name={self.name!r})"
