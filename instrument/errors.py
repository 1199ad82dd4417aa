"""User-facing error types of the controller core."""

from __future__ import annotations


class HemocompatError(Exception):
    """An error the user can act on; the CLI prints it without a traceback."""


class StationError(HemocompatError):
    """The station file is wrong or names an instrument that cannot be reached."""


class RunError(HemocompatError):
    """A run could not start or could not complete."""


class StorageError(HemocompatError):
    """The results database cannot be opened or written."""
