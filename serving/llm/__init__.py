"""The LLM email writer.

prompts.py      prompt format, segments, slots (shared by training and serving)
engine.py       LLMEngine interface, SamplingParams
backends.py     resolve_backend, make_engine (backend choice)
transformers_engine.py, vllm_engine.py, remote.py   the three backends
guardrails.py   checks, templated fallback, unsubscribe footer
service.py      EmailWriter: write / write_many / complete / complete_stream

Training the writer (corpus, checkpoint, LoRA voices) lives in ``model_repo/training/``
(``corpus.py``, ``llm.py``, ``adapters.py``); its benchmark in ``loadtests/bench/llm.py``.

Nothing here imports torch, transformers or vllm at import time of the package.
"""
