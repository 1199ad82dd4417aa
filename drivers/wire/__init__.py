"""Pure wire codecs (framing, checksums, message types): no I/O, shared with the simulators."""
