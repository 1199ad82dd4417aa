"""Plain-Python models of the desktop app (no Qt): station, protocol library, run feed."""
