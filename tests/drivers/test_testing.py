"""The exact-bytes helper must itself fail loudly when a driver deviates from its script."""

from __future__ import annotations

from contextlib import suppress

import pytest

from drivers.tem4 import Tem4Driver
from drivers.testing import ScriptedTransport, expected_protocol
from drivers.transport import LinkLostError
from drivers.wire.tem4 import encode_data, encode_reply

TEMP = (b"TEMP?\r\n", encode_reply("TEMP?", "37.00"))


def test_wrong_bytes_show_expected_and_got() -> None:
    pairs = [(b"TEMP?\n", b"$R,TEMP?,37.00*..")]
    with pytest.raises(AssertionError) as info, expected_protocol(Tem4Driver, pairs) as tem:
        tem.temperature()
    expected = "exchange 1: expected the driver to write b'TEMP?\\n', got b'TEMP?\\r\\n'"
    assert expected in str(info.value)


def test_unused_exchange_fails_at_exit() -> None:
    with (
        pytest.raises(AssertionError, match=r"stopped after exchange 1 of 2; next expected write"),
        expected_protocol(Tem4Driver, [TEMP, TEMP]) as tem,
    ):
        tem.temperature()


def test_unread_unsolicited_lines_fail_at_exit() -> None:
    with (
        pytest.raises(AssertionError, match="were never read"),
        expected_protocol(Tem4Driver, [(None, encode_data(1, 1, 0, 0))]),
    ):
        pass  # the driver never reads


def test_extra_write_fails() -> None:
    with (
        pytest.raises(AssertionError, match="all 1 scripted exchanges were already used"),
        expected_protocol(Tem4Driver, [TEMP]) as tem,
    ):
        tem.temperature()
        tem.temperature()


def test_swallowed_mismatch_is_still_reported() -> None:
    with (
        pytest.raises(AssertionError, match="expected the driver to write b'CH1:STOP"),
        expected_protocol(Tem4Driver, [(b"CH1:STOP\r\n", None)]) as tem,
        suppress(AssertionError),  # a driver that swallowed the failure
    ):
        tem.stop_channel(2)


def test_errors_in_the_body_are_not_masked() -> None:
    with pytest.raises(ZeroDivisionError), expected_protocol(Tem4Driver, [TEMP]):
        _ = 1 / 0


def test_script_validation() -> None:
    with pytest.raises(ValueError, match="pair 1 is \\(None, None\\)"):
        ScriptedTransport([(None, None)])
    with pytest.raises(TypeError, match="must be bytes"):
        ScriptedTransport([("TEMP?", None)])  # type: ignore[list-item]


def test_reply_forms_and_disconnect() -> None:
    transport = ScriptedTransport(
        [(b"A\r\n", [b"one\r\n", b"two\r\nthree"]), (None, b"four\n\r\nfive\r\n")]
    )
    transport.write(b"A")
    assert transport.read_lines(0) == [b"one", b"two", b"three", b"four", b"five"]
    assert transport.read_lines(0.01) == []
    transport.disconnect()
    with pytest.raises(LinkLostError):
        transport.read_lines(0)
    transport.assert_done()
    transport.close()
    with pytest.raises(LinkLostError):
        transport.write(b"A")
