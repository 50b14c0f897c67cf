"""The LLM email writer.

prompts.py      prompt format, segments, slots (shared by training and serving)
corpus.py       generated re-engagement email corpus
train.py        build_checkpoint: a small Llama from scratch, or full / LoRA fine-tune of a base
engine.py       LLMEngine interface, SamplingParams
backends.py     resolve_backend, make_engine (backend choice)
transformers_engine.py, vllm_engine.py, remote.py   the three backends
guardrails.py   checks, templated fallback, unsubscribe footer
service.py      EmailWriter: write / write_many / complete / complete_stream
adapters.py     brand voices (corpus styles) and their LoRA adapters (build_adapter)
bench.py        run_llm_bench: vLLM against transformers, tokens/s, TTFT and latency

Nothing here imports torch, transformers or vllm at import time of the package.
"""
