"""Personal data (pseudonyms, consent, retention) and the production monitor (drift,
actions, segment contact rates)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from serving.settings.base import Section


class PrivacySettings(Section):
    """Personal data: keyed pseudonyms in every log, consent, erasure, retention
    (docs/operations.md, "Personal data")."""

    # 32 hex digits; unset: generated once into key_file (0600), like the admin token
    pseudonym_key: SecretStr | None = None
    key_file: Path | None = None  # default <data_dir>/privacy/pseudonym.key
    # how long decision and request data are kept (decision log, rewards, request log
    # files); a decision whose reward window is open is kept regardless
    retention_s: float = Field(30 * 24 * 3600, gt=0)
    consent_refresh_s: float = Field(
        0.25, gt=0, le=1.0, description="how often a replica checks consent for changes"
    )


class MonitorSettings(Section):
    """Drift, actions and segment contact rates in production (``/v1/monitor``,
    docs/operations.md)."""

    enabled: bool = True
    # each replica writes its per-second counts to the shared state this often
    flush_interval_s: float = Field(1.0, gt=0, le=60)
    retention_s: int = Field(3600, ge=60, description="seconds of per-second counts kept")
    window_s: int = Field(
        300, ge=1, description="the window /v1/monitor and the gauges cover by default"
    )
    psi_threshold: float = Field(0.2, gt=0, description="a PSI above it is drift")
    min_rows: int = Field(
        1000, ge=1, description="below it a window is insufficient_data, never ok"
    )
    queue_max: int = Field(
        10_000, ge=1, description="scored batches waiting to be binned; beyond, dropped and counted"
    )
    gauge_interval_s: float = Field(
        15.0, ge=0, description="how often a replica refreshes the PSI gauges (0: never)"
    )
