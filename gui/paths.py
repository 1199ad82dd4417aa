"""Where the desktop app keeps its files: station, settings and the user's protocol folder."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from platformdirs import user_config_path, user_data_path

APP_NAME = "hemocompat"


@dataclass(frozen=True)
class AppPaths:
    """The app's folders; tests and screenshots pass temporary ones."""

    config_dir: Path
    protocol_dir: Path

    @classmethod
    def default(cls) -> AppPaths:
        """Platform folders (``HEMOCOMPAT_CONFIG_DIR`` overrides both, for kiosks and tests)."""
        override = os.environ.get("HEMOCOMPAT_CONFIG_DIR")
        if override:
            base = Path(override).expanduser()
            return cls(config_dir=base, protocol_dir=base / "protocols")
        return cls(
            config_dir=user_config_path(APP_NAME, appauthor=False),
            protocol_dir=user_data_path(APP_NAME, appauthor=False) / "protocols",
        )

    @classmethod
    def under(cls, base: Path) -> AppPaths:
        """Every folder below ``base`` (a temporary directory)."""
        return cls(config_dir=base / "config", protocol_dir=base / "protocols")

    @property
    def station_file(self) -> Path:
        """The station in the format of ``instrument.station`` (usable with ``--station``)."""
        return self.config_dir / "station.yaml"

    @property
    def settings_file(self) -> Path:
        return self.config_dir / "gui-settings.json"


def load_settings(paths: AppPaths) -> dict[str, Any]:
    """The app's remembered choices (simulated mode, operator, last protocol); {} if none."""
    try:
        data = json.loads(paths.settings_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_settings(paths: AppPaths, settings: dict[str, Any]) -> None:
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    tmp = paths.settings_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(paths.settings_file)
