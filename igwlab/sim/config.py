"""Simulator settings (the same knobs as llm-d-inference-sim, in igwlab's units)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class SimConfig:
    model: str = "fake-llm"
    loras: tuple[str, ...] = ()
    pod_name: str | None = None
    namespace: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    time_to_first_token_ms: float = 0.0
    inter_token_latency_ms: float = 0.0
    max_num_seqs: int = 5
    max_waiting_queue_length: int = 1000
    max_loras: int = 2
    max_model_len: int = 1024
    mode: Literal["random", "echo"] = "random"
    enable_kvcache: bool = False
    kv_cache_size: int = 1024
    block_size: int = 16
    seed: int | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)

    def served_models(self) -> list[str]:
        return [self.model, *self.loras]
