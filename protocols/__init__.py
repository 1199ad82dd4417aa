"""Protocol files: format, validation with file:line:column messages, and the bundled protocols."""

from protocols.errors import ProtocolValidationError, ValidationIssue
from protocols.loader import bundled_protocols, check_files, load_protocol, parse_protocol
from protocols.model import (
    ASSAYS,
    SUPPORTED_FORMATS,
    TEM_CHANNEL_NUMBERS,
    TEM_INSTRUMENT_MODELS,
    TEM_REAGENTS,
    TEM_STYLES,
    ChannelSpec,
    Protocol,
    SampleDefaults,
    TemAnalysisSettings,
    TemProtocol,
)

__all__ = [
    "ASSAYS",
    "SUPPORTED_FORMATS",
    "TEM_CHANNEL_NUMBERS",
    "TEM_INSTRUMENT_MODELS",
    "TEM_REAGENTS",
    "TEM_STYLES",
    "ChannelSpec",
    "Protocol",
    "ProtocolValidationError",
    "SampleDefaults",
    "TemAnalysisSettings",
    "TemProtocol",
    "ValidationIssue",
    "bundled_protocols",
    "check_files",
    "load_protocol",
    "parse_protocol",
]
