"""Prometheus text exposition of the simulator's state, with vLLM's metric names."""

from __future__ import annotations

from igwlab.sim.state import SimState


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(state: SimState) -> str:
    config = state.config
    model = _escape(config.model)
    usage = state.kv.usage if config.enable_kvcache else 0.0
    running = ",".join(sorted(state.running_loras))
    waiting = ",".join(sorted(state.waiting_loras))
    lines = [
        "# HELP vllm:num_requests_running Number of requests currently running on GPU.",
        "# TYPE vllm:num_requests_running gauge",
        f'vllm:num_requests_running{{model_name="{model}"}} {state.running}',
        "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
        "# TYPE vllm:num_requests_waiting gauge",
        f'vllm:num_requests_waiting{{model_name="{model}"}} {state.waiting}',
        "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.",
        "# TYPE vllm:kv_cache_usage_perc gauge",
        f'vllm:kv_cache_usage_perc{{model_name="{model}"}} {usage}',
        # The pre-v0.7 name, for endpoint pickers of GIE v1.2 and older.
        "# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.",
        "# TYPE vllm:gpu_cache_usage_perc gauge",
        f'vllm:gpu_cache_usage_perc{{model_name="{model}"}} {usage}',
        "# HELP vllm:lora_requests_info Running stats on lora requests.",
        "# TYPE vllm:lora_requests_info gauge",
        f'vllm:lora_requests_info{{max_lora="{config.max_loras}",running_lora_adapters="{_escape(running)}",'
        f'waiting_lora_adapters="{_escape(waiting)}"}} {state.lora_info_changed}',
        "# HELP vllm:prefix_cache_queries Prefix cache queries, in blocks.",
        "# TYPE vllm:prefix_cache_queries counter",
        f'vllm:prefix_cache_queries{{model_name="{model}"}} {state.kv.queries}',
        "# HELP vllm:prefix_cache_hits Prefix cache hits, in blocks.",
        "# TYPE vllm:prefix_cache_hits counter",
        f'vllm:prefix_cache_hits{{model_name="{model}"}} {state.kv.hits}',
        "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig.",
        "# TYPE vllm:cache_config_info gauge",
        f'vllm:cache_config_info{{block_size="{config.block_size}",num_gpu_blocks="{config.kv_cache_size}"}} 1',
        "# HELP vllm:request_success_total Count of successfully processed requests.",
        "# TYPE vllm:request_success_total counter",
    ]
    # Labelled by the base model, LoRA requests included, as vLLM and llm-d-inference-sim do.
    for (_served, reason), count in sorted(state.successes.items()):
        lines.append(f'vllm:request_success_total{{model_name="{model}",finish_reason="{reason}"}} {count}')
    lines += [
        "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
        "# TYPE vllm:prompt_tokens_total counter",
        f'vllm:prompt_tokens_total{{model_name="{model}"}} {state.prompt_tokens_total}',
        "# HELP vllm:generation_tokens_total Number of generation tokens processed.",
        "# TYPE vllm:generation_tokens_total counter",
        f'vllm:generation_tokens_total{{model_name="{model}"}} {state.generation_tokens_total}',
    ]
    for name, histogram in state.histograms.items():
        lines += [
            f"# HELP {name} Histogram of {name.removeprefix('vllm:').replace('_', ' ')}.",
            f"# TYPE {name} histogram",
        ]
        for bound, count in zip(histogram.bounds, histogram.counts, strict=True):
            lines.append(f'{name}_bucket{{model_name="{model}",le="{bound}"}} {count}')
        lines.append(f'{name}_bucket{{model_name="{model}",le="+Inf"}} {histogram.count}')
        lines.append(f'{name}_sum{{model_name="{model}"}} {histogram.total}')
        lines.append(f'{name}_count{{model_name="{model}"}} {histogram.count}')
    return "\n".join(lines) + "\n"
