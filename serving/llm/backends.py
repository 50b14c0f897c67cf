"""Which engine serves the email writer: the backend choice and the factory.

Apart from ``engine.py`` (the interface) so the backends can import the interface
without the interface importing them back.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from serving.llm.engine import LLMEngine
from serving.llm.remote import RemoteEngine
from serving.llm.transformers_engine import TransformersEngine

if TYPE_CHECKING:
    from serving.settings import LLMSettings


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def gpu_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_backend(settings: "LLMSettings") -> str:
    """``auto`` is vLLM when it is installed and a GPU is present, else transformers."""
    if settings.backend != "auto":
        return settings.backend
    return "vllm" if vllm_available() and gpu_available() else "transformers"


def make_engine(settings: "LLMSettings") -> LLMEngine:
    """The engine the settings ask for (not started)."""
    backend = resolve_backend(settings)
    if backend == "vllm":
        from serving.llm.vllm_engine import VLLMEngine

        return VLLMEngine(settings)
    if backend == "remote":
        return RemoteEngine(settings)
    return TransformersEngine.from_settings(settings)
