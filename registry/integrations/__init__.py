"""Serving-engine integrations: plugins that run inside an engine and load adapters
from lorareg (``vllm``: vLLM's LoRA resolver)."""
