"""Errors of the compliance layer: each says what was refused and what to do instead."""

from __future__ import annotations

from instrument.errors import HemocompatError


class ComplianceError(HemocompatError):
    """An action refused by a compliance rule; nothing was written."""


class AccessDeniedError(ComplianceError):
    """The user is not logged in, or lacks the role the action needs."""


class LoginError(ComplianceError):
    """A login or password re-entry was refused (wrong password, locked, disabled, expired)."""


class ReasonRequiredError(ComplianceError):
    """A change to an existing record was attempted without a reason."""
