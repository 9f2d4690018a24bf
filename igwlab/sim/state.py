"""What the simulator keeps between requests: queue gauges, LoRA use, the KV-cache block model."""

from __future__ import annotations

import hashlib
import time
from collections import Counter, OrderedDict

from igwlab.sim.config import SimConfig


class KvCache:
    """Blocks of `block_size` tokens keyed by a chained hash, as in llm-d-inference-sim.

    Blocks held by running requests are in use; finished requests leave their blocks cached
    (hittable) until newer blocks evict them, oldest first.
    """

    def __init__(self, capacity: int, block_size: int) -> None:
        self.capacity = capacity
        self.block_size = block_size
        self._in_use: Counter[str] = Counter()
        self._cached: OrderedDict[str, None] = OrderedDict()
        self.queries = 0
        self.hits = 0

    def block_hashes(self, model: str, tokens: list[str]) -> list[str]:
        hashes: list[str] = []
        parent = model
        for start in range(0, len(tokens) - self.block_size + 1, self.block_size):
            chunk = "\x1f".join(tokens[start : start + self.block_size])
            parent = hashlib.blake2b(f"{parent}\x1e{chunk}".encode(), digest_size=12).hexdigest()
            hashes.append(parent)
        return hashes

    def acquire(self, blocks: list[str]) -> int:
        """Hold a request's blocks; return how many of its leading blocks were already cached."""
        hits = 0
        for block in blocks:
            if block in self._in_use or block in self._cached:
                hits += 1
            else:
                break
        self.queries += len(blocks)
        self.hits += hits
        for block in blocks:
            self._cached.pop(block, None)
            self._in_use[block] += 1
        return hits

    def release(self, blocks: list[str]) -> None:
        for block in blocks:
            self._in_use[block] -= 1
            if self._in_use[block] <= 0:
                del self._in_use[block]
                self._cached[block] = None
        while len(self._cached) + len(self._in_use) > self.capacity and self._cached:
            self._cached.popitem(last=False)

    @property
    def usage(self) -> float:
        return min(1.0, len(self._in_use) / self.capacity) if self.capacity else 0.0


# Bucket bounds of llm-d-inference-sim v0.10.2 (pkg/common/utils.go), in seconds.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
                40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
                80.0)  # fmt: skip
REQUEST_LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
                           240.0, 480.0, 960.0, 1920.0, 7680.0)  # fmt: skip


def buckets_125(max_value: int) -> tuple[float, ...]:
    """1, 2, 5, 10, 20, 50, ... up to `max_value` (the simulator's token-count buckets, Build125Buckets)."""
    bounds: list[float] = []
    decade = 1
    while True:
        for step in (1, 2, 5):
            value = step * decade
            if value > max_value:
                return tuple(bounds)
            bounds.append(float(value))
        decade *= 10


class Histogram:
    """A Prometheus histogram: cumulative bucket counts, sum and count."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.total += value
        self.count += 1
        for index, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[index] += 1


class SimState:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.running = 0
        self.waiting = 0
        self.running_loras: Counter[str] = Counter()
        self.waiting_loras: Counter[str] = Counter()
        self.lora_info_changed = time.time()
        self.kv = KvCache(config.kv_cache_size, config.block_size)
        self.successes: Counter[tuple[str, str]] = Counter()  # (finish reason, ) by the served model name
        self.served_total = 0
        self.prompt_tokens_total = 0
        self.generation_tokens_total = 0
        tokens = buckets_125(config.max_model_len)
        # vLLM's request histograms, as llm-d-inference-sim v0.10.2 exports them (pkg/llm-d-inference-sim/metrics.go).
        self.histograms: dict[str, Histogram] = {
            "vllm:time_to_first_token_seconds": Histogram(TTFT_BUCKETS),
            "vllm:time_per_output_token_seconds": Histogram(TPOT_BUCKETS),
            "vllm:inter_token_latency_seconds": Histogram(TPOT_BUCKETS),
            "vllm:e2e_request_latency_seconds": Histogram(REQUEST_LATENCY_BUCKETS),
            "vllm:request_queue_time_seconds": Histogram(REQUEST_LATENCY_BUCKETS),
            "vllm:request_inference_time_seconds": Histogram(REQUEST_LATENCY_BUCKETS),
            "vllm:request_prefill_time_seconds": Histogram(REQUEST_LATENCY_BUCKETS),
            "vllm:request_decode_time_seconds": Histogram(REQUEST_LATENCY_BUCKETS),
            "vllm:request_prompt_tokens": Histogram(tokens),
            "vllm:request_generation_tokens": Histogram(tokens),
            "vllm:request_params_max_tokens": Histogram(tokens),
            "vllm:max_num_generation_tokens": Histogram(tokens),
        }

    def record(
        self,
        *,
        queued_s: float,
        ttft_s: float,
        decode_s: float,
        prompt_tokens: int,
        output_tokens: int,
        max_tokens: int,
    ) -> None:
        """One finished request, into vLLM's request histograms and token counters."""
        observe = {
            "vllm:time_to_first_token_seconds": ttft_s,
            "vllm:e2e_request_latency_seconds": queued_s + ttft_s + decode_s,
            "vllm:request_queue_time_seconds": queued_s,
            "vllm:request_inference_time_seconds": ttft_s + decode_s,
            "vllm:request_prefill_time_seconds": ttft_s,
            "vllm:request_decode_time_seconds": decode_s,
            "vllm:request_prompt_tokens": prompt_tokens,
            "vllm:request_generation_tokens": output_tokens,
            "vllm:request_params_max_tokens": max_tokens,
            "vllm:max_num_generation_tokens": output_tokens,
        }
        if output_tokens > 1:
            observe["vllm:time_per_output_token_seconds"] = decode_s / (output_tokens - 1)
            self.histograms["vllm:inter_token_latency_seconds"].observe(decode_s / (output_tokens - 1))
        for name, value in observe.items():
            self.histograms[name].observe(float(value))
        self.prompt_tokens_total += prompt_tokens
        self.generation_tokens_total += output_tokens

    def lora_state_changed(self) -> None:
        self.lora_info_changed = time.time()
