"""The one ``Settings`` object and how it is loaded.

Precedence, highest first: explicit arguments (typer options, the ``args`` block of
``deploy/serve.yaml``), ``REENGAGE_*`` environment variables (nested with ``__``, e.g.
``REENGAGE_FEATURES__BACKEND=redis``), then the sections' defaults. Paths are resolved to
absolute ones in the driver, so Ray replicas (other processes, other working
directories) read the same files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from serving.settings.bandit import BanditSettings
from serving.settings.base import project_root
from serving.settings.features import DataSettings, FeatureSettings
from serving.settings.llm import LLMSettings
from serving.settings.models import ModelSettings
from serving.settings.privacy import MonitorSettings, PrivacySettings
from serving.settings.server import AuthSettings, ServerSettings


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REENGAGE_", env_nested_delimiter="__", extra="forbid", protected_namespaces=()
    )

    data_dir: Path = Field(default_factory=lambda: project_root() / "data")
    data: DataSettings = DataSettings()
    features: FeatureSettings = FeatureSettings()
    models: ModelSettings = ModelSettings()
    bandit: BanditSettings = BanditSettings()
    llm: LLMSettings = LLMSettings()
    monitor: MonitorSettings = MonitorSettings()
    server: ServerSettings = ServerSettings()
    auth: AuthSettings = AuthSettings()
    privacy: PrivacySettings = PrivacySettings()
    # One switch for all state (online features and bandit together): "redis" for
    # production and any multi-node cluster, "embedded" (local files) for one machine.
    # None: each section's own backend (features.backend, bandit.backend) applies.
    state: Literal["embedded", "redis"] | None = None
    redis_url: str | None = None  # when set: the one Redis both features and bandit use

    @model_validator(mode="after")
    def _one_state_switch(self) -> "Settings":
        if self.state is not None:
            self.features.backend = self.bandit.backend = self.state
        if self.redis_url is not None:
            self.features.redis_url = self.bandit.redis_url = self.redis_url
        return self

    @model_validator(mode="after")
    def _one_retention(self) -> "Settings":
        """``privacy.retention_s`` is the one retention setting; ``bandit.log_retention_s``,
        when given, still overrides it for the decision log alone."""
        if "log_retention_s" not in self.bandit.model_fields_set:
            if self.privacy.retention_s < self.bandit.reward_window_s:
                raise ValueError(
                    "privacy.retention_s must be at least bandit.reward_window_s: "
                    "a decision is kept while its reward can still arrive"
                )
            self.bandit.log_retention_s = self.privacy.retention_s
        return self

    @model_validator(mode="after")
    def _absolute_paths(self) -> "Settings":
        self.data_dir = self.data_dir.resolve()
        self.features.repo_path = self.features.repo_path.resolve()
        self.models.repo_path = self.models.repo_path.resolve()
        self.llm.model_path = self.llm.model_path.resolve()
        self.llm.lora_adapters = {k: Path(v).resolve() for k, v in self.llm.lora_adapters.items()}
        if self.bandit.state_path is None:
            self.bandit.state_path = self.data_dir / "bandit"
        self.bandit.dead_letter_file = (
            self.bandit.dead_letter_file or Path(self.bandit.state_path) / "dead_letters.jsonl"
        ).resolve()
        auth = self.auth
        auth.token_file = (auth.token_file or self.data_dir / "auth" / "tokens.json").resolve()
        auth.admin_token_file = (
            auth.admin_token_file or self.data_dir / "auth" / "admin.token"
        ).resolve()
        auth.audit_log = (auth.audit_log or self.data_dir / "audit.jsonl").resolve()
        self.privacy.key_file = (
            self.privacy.key_file or self.data_dir / "privacy" / "pseudonym.key"
        ).resolve()
        return self

    def redacted_dump(self) -> dict[str, Any]:
        """Every setting as JSON-able values, fit to print or log: URL credentials masked
        (``redis://***@h:6379/0``), tokens and API keys replaced by ``***``."""
        from feature_store.redact import redact_mapping

        return redact_mapping(self.model_dump(mode="json"))


def load_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """Settings from the environment with ``overrides`` (nested dicts) on top.

    pydantic-settings deep-merges init arguments over env sources, so an override of
    ``server.port`` keeps an env-given ``server.host``.
    """
    return Settings(**(overrides or {}))
