"""The one lookup of a served model by name that every plane shares (its 404 included)."""

from __future__ import annotations

from serving.components.api import Model
from serving.errors import ModelNotFound


def model_named(models: dict[str, Model], name: str) -> Model:
    """The model service serving ``name``; an unknown name is a 404 naming ``model_name``."""
    service = models.get(name)
    if service is None:
        raise ModelNotFound(f"model '{name}' is not in the repository", field="model_name")
    return service
