"""What every settings section shares: the project root, the section base, log rotation."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


def project_root() -> Path:
    """The checkout this package runs from (editable install), else the working dir."""
    here = Path(__file__).resolve().parents[2]
    return (
        here if (here / "feature_store").is_dir() and (here / "model_repo").is_dir() else Path.cwd()
    )


class Section(BaseModel):
    """A settings section: unknown keys are refused, so a typo names its field."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class RotationSettings(Section):
    """When an append-only log file (audit, request log, dead letters) rotates: like
    ``logging.handlers.RotatingFileHandler`` (``f`` -> ``f.1`` ... ``f.<backups>``, the
    oldest dropped), by size or by age, whichever comes first."""

    max_mb: float = Field(
        100.0, ge=0, description="rotate once the file holds this many MB (0: never by size)"
    )
    max_age_h: float = Field(
        24.0 * 7, ge=0, description="rotate once the file is this many hours old (0: never by age)"
    )
    backups: int = Field(5, ge=1, le=1000, description="rotated files kept beside the current one")

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * 2**20)

    @property
    def max_age_s(self) -> float:
        return self.max_age_h * 3600.0
