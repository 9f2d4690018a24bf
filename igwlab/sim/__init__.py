"""A local vLLM-compatible simulator, behaving like llm-d-inference-sim as clients and an EPP see it.

OpenAI completions and chat (with SSE streaming), /v1/models, /health, and vLLM's Prometheus
metrics (queue gauges, KV-cache use, LoRA adapters, prefix-cache counters). Every answer names
its pod in `x-inference-pod`, like the real simulator. Used by tests, benchmarks and demos of
`igwlab verify` without a cluster.
"""

from igwlab.sim.config import SimConfig
from igwlab.sim.process import RunningSim, running_sim

__all__ = ["RunningSim", "SimConfig", "running_sim"]
