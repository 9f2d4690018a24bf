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


class SimState:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.running = 0
        self.waiting = 0
        self.running_loras: Counter[str] = Counter()
        self.waiting_loras: Counter[str] = Counter()
        self.lora_info_changed = time.time()
        self.kv = KvCache(config.kv_cache_size, config.block_size)
        self.successes: Counter[tuple[str, str]] = Counter()
        self.served_total = 0

    def lora_state_changed(self) -> None:
        self.lora_info_changed = time.time()
