"""The verify checks. Each takes the shared context and returns one CheckResult.

Check names are stable (scripts match on them): gateway-reachable, completion, chat-completion,
streaming, traffic-split, endpoint-spread, prefix-affinity, unknown-model, epp-in-path,
route-accepted, pool-accepted, epp-ready.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from igwlab.gates import Gate
from igwlab.labs import FailureMode, Lab
from igwlab.render import BASE_MODEL_HEADER
from igwlab.tools.kube import KubeApi, api_error_line
from igwlab.verify import stats
from igwlab.verify.engine import Engine, Observation
from igwlab.verify.evidence import EppRef, SplitCounts, read_split_async
from igwlab.verify.hints import (
    first_failure,
    hint_for,
    model_not_served,
    personalize,
    printable,
    summarize_outcomes,
    wrong_pool_hint,
)
from igwlab.verify.report import CheckResult
from igwlab.wording import counted

COMPLETIONS = "/v1/completions"
CHAT = "/v1/chat/completions"
CLUSTER_CHECKS = ("route-accepted", "pool-accepted", "epp-ready")
EPP_HEADER = "x-went-into-resp-headers"
BBR_BUFFERS_HINT = (
    "This lab's body-based router holds the response: BBR v1.5.0 collects each response body until it ends "
    "before passing it on, and its chart's Istio EnvoyFilter sends it response bodies (not configurable), "
    "so streams through it arrive in one burst. Single-pool labs stream; here it is the price of routing "
    "by the body at this GIE version."
)


@dataclass(frozen=True)
class ClusterAccess:
    """The lab's objects on the cluster `up` made, for the status checks."""

    kube: KubeApi
    gates: dict[str, list[Gate]]  # check name -> every gate it covers (one per pool for pools and EPPs)
    epps: tuple[EppRef, ...] = ()  # every pool's endpoint picker, whose counters show a split


@dataclass(frozen=True)
class LabFacts:
    """What the checks know of the lab's stack: how multi-pool requests pick a pool, and the pool failure
    mode the gateway applies."""

    header_routing: bool = True
    failure_mode: FailureMode = "FailClose"
    # Whether answers name the target model the EPP picked (GIE v0.x) or the name the client sent (v1.x
    # writes it back), and the EPP counter that shows the split either way (catalog: split_metric).
    answers_name_target: bool = True
    split_metric: str | None = None
    # Model name -> the header that selects its InferenceObjective (GIE v1.x; empty elsewhere).
    objective_headers: dict[str, dict[str, str]] = field(default_factory=dict)
    bbr_buffers_responses: bool = False  # the lab's body-based router holds each response to its end
    lora_affinity_filter: bool = False  # the EPP keeps a LoRA adapter on the pods running it (GIE v0.x)


@dataclass
class CheckContext:
    lab: Lab
    engine: Engine
    requests: int
    wait_s: float
    cluster: ClusterAccess | None = None
    cluster_skip_reason: str = ""
    litellm_url: str | None = None
    litellm_key: str | None = None
    facts: LabFacts = field(default_factory=LabFacts)  # what the checks know of the lab's stack
    max_tokens: int = 8
    reachable: bool = False
    seen: list[Observation] = field(default_factory=list)
    rewrite_observed: bool = False

    @property
    def model(self) -> str:
        return self.lab.models[0].name

    def hint(self, observation: Observation) -> str:
        """What a failed observation most likely means in this lab (its failure mode in force)."""
        return hint_for(observation, self.facts.failure_mode)

    def remember(self, observations: list[Observation]) -> list[Observation]:
        self.seen += observations
        return observations


Check = Callable[[CheckContext], Awaitable[CheckResult]]


def _prompt(tag: str) -> str:
    return f"igwlab verify {tag} {secrets.token_hex(4)}: say something about inference gateways"


def _completion_body(ctx: CheckContext, model: str | None = None, prompt: str | None = None) -> dict[str, Any]:
    return {
        "model": model or ctx.model,
        "prompt": prompt or _prompt("completion"),
        "max_tokens": ctx.max_tokens,
        "temperature": 0,
    }


def _chat_body(ctx: CheckContext) -> dict[str, Any]:
    return {
        "model": ctx.model,
        "messages": [{"role": "user", "content": _prompt("chat")}],
        "max_tokens": ctx.max_tokens,
        "temperature": 0,
    }


def _failed_request(name: str, observation: Observation, what: str, hint: str | None = None) -> CheckResult:
    detail = f"{what}: {observation.outcome()}"
    message = observation.error_detail or observation.error_message
    if message:
        detail += f" ({message[:160]})"
    return CheckResult(name, "fail", detail, hint or hint_for(observation), data={"status": observation.status})


async def gateway_reachable(ctx: CheckContext) -> CheckResult:
    observation, attempts = await ctx.engine.wait_until_answering(COMPLETIONS, _completion_body(ctx), ctx.wait_s)
    ctx.remember([observation])
    data = {"attempts": attempts, "status": observation.status}
    waited = f" after {attempts} attempts in {ctx.wait_s:.0f}s" if attempts > 1 else ""
    if observation.error in ("dns", "connect", "timeout", "protocol"):
        hint = ctx.hint(observation)
        if ctx.wait_s == 0:
            hint += " If the lab is still starting, pass --wait 120."
        return CheckResult(
            "gateway-reachable", "fail", f"{observation.outcome()}{waited}: {observation.error_detail}", hint, data=data
        )
    if observation.status is not None and observation.status >= 500:
        # Something answers, but a gateway that fails every request is not one clients can reach.
        hint = ctx.hint(observation)
        if ctx.wait_s == 0:
            hint += " If the lab is still starting, pass --wait 120."
        message = observation.error_message.strip()
        return CheckResult(
            "gateway-reachable",
            "fail",
            f"HTTP {observation.status}{waited} from {ctx.engine.base_url}" + (f": {message[:120]}" if message else ""),
            hint,
            data=data,
        )
    ctx.reachable = True
    return CheckResult(
        "gateway-reachable",
        "pass",
        f"HTTP {observation.status} from {ctx.engine.base_url}"
        + (f" after {attempts} attempts" if attempts > 1 else ""),
        data=data,
    )


async def completion(ctx: CheckContext) -> CheckResult:
    observation = ctx.remember([await ctx.engine.post(COMPLETIONS, _completion_body(ctx))])[0]
    if not observation.ok:
        return _failed_request(
            "completion", observation, f"POST {COMPLETIONS} for {ctx.model!r}", ctx.hint(observation)
        )
    try:
        text = observation.body["choices"][0]["text"]
    except (KeyError, IndexError, TypeError):
        return CheckResult(
            "completion",
            "fail",
            "200 but no choices[0].text in the answer",
            "The answer is JSON but not an OpenAI completion: is the route pointing at a model server?",
        )
    return CheckResult(
        "completion",
        "pass",
        f"200 from model {observation.model!r}, {len(text.split())} words"
        + (f", pod {observation.pod}" if observation.pod else ""),
        data={"model": observation.model, "pod": observation.pod},
    )


async def chat_completion(ctx: CheckContext) -> CheckResult:
    observation = ctx.remember([await ctx.engine.post(CHAT, _chat_body(ctx))])[0]
    if not observation.ok:
        return _failed_request("chat-completion", observation, f"POST {CHAT} for {ctx.model!r}", ctx.hint(observation))
    try:
        content = observation.body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return CheckResult(
            "chat-completion",
            "fail",
            "200 but no choices[0].message.content in the answer",
            "The answer is JSON but not an OpenAI chat completion.",
        )
    return CheckResult(
        "chat-completion",
        "pass",
        f"200 from model {observation.model!r}, {len(content.split())} words",
        data={"model": observation.model, "pod": observation.pod},
    )


STREAM_TOKENS = 16  # enough events to tell a live stream from one held back and sent at once
BURST_S = 0.05  # every event within this of the first: looks like one burst


async def generation_pacing(ctx: CheckContext) -> float:
    """Seconds the model server needs for STREAM_TOKENS - 1 more tokens, seen through the gateway without
    streaming (so a buffering proxy cannot hide it): 16 tokens minus 1 token, EOS ignored."""
    short, long = [
        await ctx.engine.post(COMPLETIONS, {**_completion_body(ctx), "max_tokens": tokens, "ignore_eos": True})
        for tokens in (1, STREAM_TOKENS)
    ]
    ctx.remember([short, long])
    if not (short.ok and long.ok):
        return 0.0
    return max(0.0, long.elapsed_s - short.elapsed_s)


async def streaming(ctx: CheckContext) -> CheckResult:
    stream_body = {**_chat_body(ctx), "max_tokens": max(ctx.max_tokens, STREAM_TOKENS), "ignore_eos": True}
    observation = await ctx.engine.stream(CHAT, stream_body)
    ctx.remember([observation])
    if observation.status != 200 or observation.error in ("dns", "connect", "timeout", "protocol", "bad-json"):
        if not observation.stream_chunks:
            return _failed_request("streaming", observation, "streamed chat", ctx.hint(observation))
        stalled = (
            "Tokens arrived, then the stream stalled past --timeout: a slow model, or a proxy buffering "
            "the stream (check the route timeout)."
        )
        hint = stalled if observation.error == "timeout" else ctx.hint(observation)
        detail = f"stream stopped after {observation.stream_chunks} chunks: {observation.outcome()}"
        return CheckResult("streaming", "fail", detail, hint)
    if observation.error == "bad-stream":
        return CheckResult("streaming", "fail", observation.error_detail, ctx.hint(observation))
    content_type = observation.headers.get("content-type", "")
    if not observation.stream_chunks and not content_type.startswith("text/event-stream"):
        return CheckResult(
            "streaming",
            "fail",
            f"200 {content_type or 'without a content type'} instead of server-sent events: the stream was ignored"
            + (f" ({observation.text.strip()[:100]})" if observation.text.strip() else ""),
            "The request asked for `stream: true` and got one whole answer back. Either the model server "
            "ignored the flag, or something between client and server dropped it from the body: a proxy or "
            "ext_proc filter that rewrites the request (LiteLLM, a body-mutating policy, the endpoint picker's "
            "model rewrite). Send the same request straight to a model server pod to tell which.",
            data={"content_type": content_type},
        )
    if not observation.stream_done:
        return CheckResult(
            "streaming",
            "fail",
            f"{observation.stream_chunks} chunks but no `data: [DONE]`",
            "The stream ended early: the proxy may cut long-lived responses (route timeout).",
        )
    ttft = f"{observation.ttft_s * 1000:.0f} ms" if observation.ttft_s is not None else "n/a"
    data = {
        "chunks": observation.stream_chunks,
        "ttft_s": observation.ttft_s,
        "chunk_times_s": observation.chunk_times_s,
    }
    times = observation.chunk_times_s
    spread = times[-1] - times[0] if times else 0.0
    if len(times) >= 4 and spread < BURST_S:
        # One burst: a buffering proxy, or a server that generates that fast. Its pace without streaming tells.
        pacing = await generation_pacing(ctx)
        data["generation_s"] = pacing
        if pacing >= 4 * BURST_S and spread < pacing / 4:
            return CheckResult(
                "streaming",
                "warn",
                f"all {observation.stream_chunks} chunks arrived within {spread * 1000:.0f} ms, after {ttft}, "
                f"though the model takes {pacing * 1000:.0f} ms to write them: the stream was buffered",
                BBR_BUFFERS_HINT
                if ctx.facts.bbr_buffers_responses
                else "A proxy or the ext_proc filter holds the response until it is complete, so clients see no "
                "token until the last one. The gateway must pass the response body through as it comes "
                "(ext_proc response body mode STREAMED or FULL_DUPLEX_STREAMED, no buffering filter or proxy "
                "in between).",
                data=data,
            )
    return CheckResult(
        "streaming", "pass", f"{observation.stream_chunks} chunks then [DONE]; first token after {ttft}", data=data
    )


async def traffic_split(ctx: CheckContext) -> CheckResult:
    """Send --requests completions per split model name and test the targets' shares against the lab's
    weights (chi-square). Which target served comes from the answers where they name it (GIE v0.x), else
    from the endpoint picker's own counter (GIE v1.x writes the requested name back into answers)."""
    models = [model for model in ctx.lab.models if model.targets]
    if not models:
        return CheckResult("traffic-split", "skip", "the lab maps no model name to weighted targets")
    details: list[str] = []
    data: dict[str, Any] = {}
    for model in models:
        before = await _split_counters(ctx, model.name)
        bodies = [_completion_body(ctx, model.name, _prompt(f"split {i}")) for i in range(ctx.requests)]
        observations = ctx.remember(await ctx.engine.post_many(COMPLETIONS, bodies))
        failed = first_failure(observations)
        if failed is not None:
            return CheckResult(
                "traffic-split", "fail", f"{model.name}: {summarize_outcomes(observations)}", ctx.hint(failed)
            )
        names = [target.name for target in model.targets]
        weights = [target.weight for target in model.targets]
        answered = Counter(o.model or "(no model field)" for o in observations)
        data[model.name] = {"answers": dict(answered), "weights": dict(zip(names, weights, strict=True))}
        counts, source = answered, "answers"
        if set(answered) == {model.name} and not ctx.facts.answers_name_target:
            verdict = await _split_from_counters(ctx, model.name, before, len(observations), data[model.name])
            if isinstance(verdict, CheckResult):
                return verdict
            counts, source = verdict, f"the endpoint picker's {ctx.facts.split_metric}"
        data[model.name].update(observed=dict(counts), source=source)
        strays = {name: n for name, n in counts.items() if name not in names}
        if strays:
            if set(strays) == {model.name}:
                return CheckResult(
                    "traffic-split",
                    "fail",
                    f"{model.name}: all {strays[model.name]} requests served as {model.name!r} itself, none as a "
                    f"target (counted from {source})",
                    "No model rewrite happened: requests bypass the endpoint picker, or the InferenceModel "
                    f"(v1alpha2) / InferenceModelRewrite (v1) for {model.name!r} is missing. A single model "
                    "server with no gateway in front never splits. Check "
                    "`kubectl get inferencemodel,inferencemodelrewrite -A`.",
                    data=data,
                )
            return CheckResult(
                "traffic-split",
                "fail",
                f"{model.name}: unexpected models {dict(strays)} (counted from {source})",
                "Requests went to models that are not this lab's targets: another route or rewrite matches first.",
                data=data,
            )
        ctx.rewrite_observed = True
        observed = [counts.get(name, 0) for name in names]
        total = sum(observed)
        test = stats.split_test(observed, weights)
        shares = ", ".join(
            f"{name} {count / total:.0%} (want {weight / sum(weights):.0%})"
            for name, count, weight in zip(names, observed, weights, strict=True)
        )
        data[model.name].update(p_value=test.p_value, n=total)
        if not test.enough_data:
            return CheckResult(
                "traffic-split",
                "warn",
                f"{model.name}: {shares} — too few requests to test",
                f"Use --requests {stats.requests_needed_for_split(weights)} or more.",
                data=data,
            )
        if test.p_value < stats.ALPHA:
            return CheckResult(
                "traffic-split",
                "fail",
                f"{model.name}: {shares}; chi-square p={test.p_value:.1e} (counted from {source})",
                "The observed split is not the configured one: check the weights the gateway has "
                "(`kubectl get inferencemodel,inferencemodelrewrite -o yaml`) and that no second rewrite or route "
                "also matches this model name.",
                data=data,
            )
        deviation = stats.largest_share_deviation(observed, weights)
        if deviation > stats.MAX_UNFLAGGED_SHARE_DEVIATION:
            return CheckResult(
                "traffic-split",
                "warn",
                f"{model.name}: {shares}; off by {deviation:.0%} but p={test.p_value:.3f}: inconclusive",
                f"Rerun with --requests {4 * total} to tell a wrong split from chance.",
                data=data,
            )
        counted = "" if source == "answers" else f", counted by {source}"
        details.append(f"{model.name}: {shares}; p={test.p_value:.2f}, n={total}{counted}")
    return CheckResult("traffic-split", "pass", "; ".join(details), data=data)


async def _split_counters(ctx: CheckContext, model: str) -> SplitCounts | None:
    """The EPP counters for `model` now, where the lab's cluster and the stack's counter are known."""
    if ctx.cluster is None or not ctx.cluster.epps or not ctx.facts.split_metric:
        return None
    return await read_split_async(ctx.cluster.kube, list(ctx.cluster.epps), ctx.facts.split_metric, model)


async def _split_from_counters(
    ctx: CheckContext, model: str, before: SplitCounts | None, sent: int, data: dict[str, Any]
) -> Counter[str] | CheckResult:
    """Every answer names `model` itself: on a stack whose EPP writes the requested name back (GIE v1.x)
    that says nothing of the split, so count what the EPP routed during the batch instead."""
    why = "answers carry the name the client sent: this stack's endpoint picker writes it back into every answer"
    after = await _split_counters(ctx, model)
    if before is None or after is None:
        reason = ctx.cluster_skip_reason if ctx.cluster is None else "the stack names no EPP counter"
        return CheckResult(
            "traffic-split",
            "warn",
            f"{model}: cannot tell the split: {why}, and its counters cannot be read ({reason})",
            "Run verify where `igwlab up` ran: it then reads the endpoint picker's request counter "
            f"({ctx.facts.split_metric or 'inference_objective_request_total'}) through the cluster.",
            data=data,
        )
    if not (before.readable and after.readable):
        problems = "; ".join(dict.fromkeys(before.errors + after.errors)) or "no EPP pod answered"
        return CheckResult(
            "traffic-split",
            "warn",
            f"{model}: cannot tell the split: {why}, and its counters could not be read: {problems}",
            "The EPP's /metrics must answer without a token (igwlab renders --metrics-endpoint-auth=false); "
            "`igwlab status` shows whether the EPP is Available.",
            data=data,
        )
    delta = after.since(before)
    data["epp_counted"] = dict(delta)
    if sum(delta.values()) < sent:
        return CheckResult(
            "traffic-split",
            "fail",
            f"{model}: the endpoint picker counted {sum(delta.values())} of {sent} requests",
            "Requests that the EPP does not see bypass it: the route's backendRef must be the InferencePool "
            "(not its Service), and the gateway must run the pool's ext_proc filter. `igwlab verify` epp-in-path "
            "tells whether answers went through an EPP.",
            data=data,
        )
    return delta


async def endpoint_spread(ctx: CheckContext) -> CheckResult:
    replicas = ctx.lab.workload.replicas
    if replicas < 2:
        return CheckResult("endpoint-spread", "skip", "the pool has one replica")
    bodies = [_completion_body(ctx, prompt=_prompt(f"spread {i}")) for i in range(max(ctx.requests // 2, 20))]
    observations = ctx.remember(await ctx.engine.post_many(COMPLETIONS, bodies))
    answered = [o for o in observations if o.ok]
    if not answered:
        return CheckResult("endpoint-spread", "fail", summarize_outcomes(observations), ctx.hint(observations[0]))
    pods = Counter(o.pod for o in answered if o.pod)
    if not pods:
        if ctx.lab.workload.kind != "sim":
            return CheckResult("endpoint-spread", "skip", "vLLM does not name its pod in responses")
        return CheckResult(
            "endpoint-spread",
            "warn",
            "no x-inference-pod header in any answer",
            "llm-d-inference-sim sets x-inference-pod from its POD_NAME env; a proxy may strip response headers.",
        )
    spread = ", ".join(f"{pod} {count}" for pod, count in pods.most_common())
    data = {"pods": dict(pods), "replicas": replicas}
    if len(pods) == 1:
        adapters = _adapter_targets(ctx)
        if ctx.facts.lora_affinity_filter and adapters:
            return await _one_pod_under_lora_affinity(ctx, adapters, len(answered), spread, data)
        return CheckResult(
            "endpoint-spread",
            "fail",
            f"all {counted(len(answered), 'answer')} from one pod ({spread})",
            f"The pool has {replicas} replicas but one served everything: are the others Ready "
            f"(`kubectl get pods -n {ctx.lab.namespace} -l {_label_selector(ctx)}`), and does the InferencePool "
            "selector match them?",
            data=data,
        )
    return CheckResult(
        "endpoint-spread", "pass", f"{len(pods)} of {counted(replicas, 'pod')} served: {spread}", data=data
    )


def _label_selector(ctx: CheckContext) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(ctx.lab.workload.selector_labels.items()))


def _adapter_targets(ctx: CheckContext) -> list[str]:
    """The LoRA adapters requests for the checked model end up asking for (its targets, or itself)."""
    adapters = {lora.name for lora in ctx.lab.workload.loras}
    model = ctx.lab.models[0]
    names = [target.name for target in model.targets] or [model.name]
    return [name for name in names if name in adapters]


def _ready_pool_pods(ctx: CheckContext) -> tuple[int | None, str]:
    """How many of the pool's pods are Ready on the lab's cluster, or None and why it cannot be told."""
    if ctx.cluster is None:
        return None, ctx.cluster_skip_reason or "no cluster to read"
    try:
        pods = ctx.cluster.kube.list_objects("v1", "Pod", ctx.lab.namespace, _label_selector(ctx))
    except Exception as error:
        return None, f"listing the pool's pods failed: {type(error).__name__}"
    ready = 0
    for pod in pods:
        conditions = (pod.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            ready += 1
    return ready, ""


async def _one_pod_under_lora_affinity(
    ctx: CheckContext, adapters: list[str], answered: int, spread: str, data: dict[str, Any]
) -> CheckResult:
    """One pod served every request for LoRA adapters on a GIE v0.x endpoint picker, which keeps an adapter
    on the pods already running it (LoraAffinityFilter, 999 times in 1000): spread proves nothing there,
    so ask the cluster whether the other replicas are Ready instead."""
    replicas = ctx.lab.workload.replicas
    why = (
        f"this stack's endpoint picker keeps a LoRA adapter's requests ({', '.join(adapters)}) on the pods "
        "already running it (GIE v0.x LoRA affinity filter), so one pod may serve them all"
    )
    ready, reason = await asyncio.to_thread(_ready_pool_pods, ctx)
    data.update({"lora_affinity": True, "ready_pods": ready})
    if ready is None:
        return CheckResult(
            "endpoint-spread",
            "warn",
            f"all {answered} answers from one pod ({spread}): {why}; cannot count the Ready pods ({reason})",
            "Run verify where `igwlab up` ran: it then counts the pool's Ready pods through the cluster.",
            data=data,
        )
    if ready < 2:
        return CheckResult(
            "endpoint-spread",
            "fail",
            f"all {answered} answers from one pod ({spread}), and {ready} of {replicas} pool pods are Ready",
            f"The pool has {replicas} replicas but only {ready} is Ready: `kubectl get pods -n {ctx.lab.namespace} "
            f"-l {_label_selector(ctx)}` and `igwlab status` say why.",
            data=data,
        )
    return CheckResult(
        "endpoint-spread",
        "pass",
        f"all {answered} answers from one pod ({spread}): {why}; {ready} of {replicas} pool pods are Ready",
        data=data,
    )


async def model_routing(ctx: CheckContext) -> CheckResult:
    """Every name each pool answers to (its models, base model and LoRA adapters) reaches that pool's pods."""
    backends = ctx.lab.backends()
    if len(backends) < 2:
        return CheckResult("model-routing", "skip", "the lab has one pool")
    per_pool = max(10, ctx.requests // 10)
    data: dict[str, Any] = {}
    for backend in backends:
        names = list(dict.fromkeys([*(m.name for m in backend.models), *backend.workload.served_names()]))
        per_name = max(5, per_pool // len(names))
        headers = {BASE_MODEL_HEADER: backend.workload.served_model} if ctx.facts.header_routing else None
        for model in names:
            bodies = [_completion_body(ctx, model, _prompt(f"routing {i}")) for i in range(per_name)]
            observations = ctx.remember(
                list(await asyncio.gather(*(ctx.engine.post(COMPLETIONS, body, headers=headers) for body in bodies)))
            )
            pods = Counter(o.pod or "(no x-inference-pod)" for o in observations if o.ok)
            data[model] = {"pool": backend.pool.name, "pods": dict(pods)}
            strays = {pod: n for pod, n in pods.items() if not pod.startswith(f"{backend.workload.name}-")}
            unserved = [o for o in observations if model_not_served(o)]
            if strays or unserved:
                where = (
                    f"{sum(strays.values())} of {len(observations)} answers from pods outside pool "
                    f"{backend.pool.name} ({', '.join(strays)})"
                    if strays
                    else f"{len(unserved)} of {len(observations)} answered 404 by a model server that does not "
                    f"serve it ({unserved[0].error_message[:80]})"
                )
                return CheckResult(
                    "model-routing",
                    "fail",
                    f"{model}: {where}",
                    wrong_pool_hint(model, backend.pool.name, backend.workload.served_model, ctx.facts.header_routing),
                    data=data,
                )
            failed = first_failure(observations)
            if failed is not None:
                return CheckResult(
                    "model-routing", "fail", f"{model}: {summarize_outcomes(observations)}", ctx.hint(failed)
                )
    summary = "; ".join(f"{model} -> {info['pool']}" for model, info in data.items())
    return CheckResult("model-routing", "pass", f"each model reached its own pool: {summary}", data=data)


async def prefix_affinity(ctx: CheckContext) -> CheckResult:
    replicas = ctx.lab.workload.replicas
    if replicas < 2:
        return CheckResult("prefix-affinity", "skip", "the pool has one replica")
    groups, per_group = 4, max(4, min(16, ctx.requests // 8))
    same, trials, per_prefix = 0, 0, {}
    for group in range(groups):
        prefix = " ".join(f"shared-{group}-{secrets.token_hex(2)}-{word}" for word in range(160))
        first = ctx.remember([await ctx.engine.post(COMPLETIONS, _completion_body(ctx, prompt=f"{prefix} first"))])[0]
        if not first.ok:
            return CheckResult("prefix-affinity", "fail", f"first request: {first.outcome()}", ctx.hint(first))
        if first.pod is None:
            return CheckResult(
                "prefix-affinity",
                "warn",
                "no x-inference-pod header; cannot tell pods apart",
                "llm-d-inference-sim sets x-inference-pod from POD_NAME.",
            )
        bodies = [_completion_body(ctx, prompt=f"{prefix} question {i}") for i in range(per_group - 1)]
        rest = ctx.remember(await ctx.engine.post_many(COMPLETIONS, bodies))
        hits = sum(1 for o in rest if o.ok and o.pod == first.pod)
        same += hits
        trials += len(rest)
        per_prefix[f"prefix-{group}"] = {"pod": first.pod, "same_pod": hits, "of": len(rest)}
    share = same / trials if trials else 0.0
    p_value = stats.above_chance(same, trials, 1 / replicas)
    data = {"share": share, "chance": 1 / replicas, "p_value": p_value, "prefixes": per_prefix}
    detail = f"{share:.0%} of repeat-prefix requests hit the pod of their first request (chance {1 / replicas:.0%})"
    if p_value < stats.ALPHA and share >= 0.6:
        return CheckResult("prefix-affinity", "pass", detail + f"; p={p_value:.1e}", data=data)
    return CheckResult(
        "prefix-affinity",
        "fail",
        detail,
        "The endpoint picker does not keep a prefix on the pod that cached it: is the "
        "prefix-cache scorer in its scheduling profile with a high weight "
        "(`igwlab render` shows the EPP config), and is KV-cache simulation on?",
        data=data,
    )


async def unknown_model(ctx: CheckContext) -> CheckResult:
    """A model nobody serves gets a clean 4xx, while the lab's own model still answers 200: a gateway
    that refuses everything proves nothing about unknown models."""
    bogus = f"igwlab-no-such-model-{secrets.token_hex(3)}"
    known, observation = ctx.remember(
        list(
            await asyncio.gather(
                ctx.engine.post(COMPLETIONS, _completion_body(ctx)),
                ctx.engine.post(COMPLETIONS, _completion_body(ctx, model=bogus)),
            )
        )
    )
    data = {"status": observation.status, "model": bogus, "lab_model_status": known.status}
    if not known.ok:
        return CheckResult(
            "unknown-model",
            "fail",
            f"the lab's own model {ctx.model!r} gets {known.outcome()} too, so a {observation.outcome()} for "
            f"{bogus!r} proves nothing",
            ctx.hint(known),
            data=data,
        )
    if observation.status is not None and 400 <= observation.status < 500:
        return CheckResult(
            "unknown-model",
            "pass",
            f"{observation.status} for {bogus!r} ({observation.error_message[:100]}), 200 for {ctx.model!r}",
            data=data,
        )
    if observation.status == 200:
        return CheckResult(
            "unknown-model",
            "fail",
            f"200 for a model nobody serves ({bogus!r})",
            "Something answers any model name: a catch-all rewrite, or a server that ignores `model`.",
            data=data,
        )
    if observation.error in ("timeout", "dns", "connect", "protocol"):
        return CheckResult(
            "unknown-model",
            "fail",
            f"{observation.outcome()} for {bogus!r}: no clean answer",
            ctx.hint(observation),
            data=data,
        )
    return CheckResult(
        "unknown-model",
        "fail",
        f"{observation.status} for {bogus!r}; a 4xx was expected",
        "Unknown models should get a clean 4xx (404 from the model server). A 5xx here often means "
        "the endpoint picker failed the request instead of passing it through: read its logs.",
        data=data,
    )


async def epp_in_path(ctx: CheckContext) -> CheckResult:
    marked = [o for o in ctx.seen if EPP_HEADER in o.headers]
    if marked:
        return CheckResult(
            "epp-in-path",
            "pass",
            f"{counted(len(marked), 'answer')} carry {EPP_HEADER}, set by the EPP",
            data={"header": EPP_HEADER},
        )
    if ctx.rewrite_observed:
        return CheckResult(
            "epp-in-path", "pass", "answers name the model's targets: only the endpoint picker rewrites model names"
        )
    if not ctx.seen:
        return CheckResult("epp-in-path", "skip", "no answers to inspect")
    return CheckResult(
        "epp-in-path",
        "warn",
        f"no evidence the endpoint picker ran (no {EPP_HEADER} header)",
        "Some providers drop the EPP's response headers. Confirm in the EPP logs at --v=4 that it picks endpoints.",
    )


async def litellm_route(ctx: CheckContext) -> CheckResult:
    if ctx.litellm_url is None:
        reason = "no LiteLLM URL: pass --litellm-url"
        if "litellm" in ctx.lab.addons:
            reason += (
                " (the lab's LiteLLM: kubectl port-forward -n "
                + ctx.lab.namespace
                + " svc/igwlab-litellm 4000, then --litellm-url http://127.0.0.1:4000)"
            )
        return CheckResult("litellm-route", "skip", reason)
    if not ctx.litellm_key:
        return CheckResult(
            "litellm-route",
            "fail",
            "no LiteLLM master key",
            "Pass --litellm-key, set LITELLM_MASTER_KEY, or let verify read Secret igwlab-litellm "
            "from the lab that is up.",
        )
    model = ctx.lab.models[0]
    body = _chat_body(ctx)
    async with Engine(ctx.litellm_url, concurrency=1, timeout_s=ctx.engine.timeout_s) as litellm:
        observation = await litellm.post(CHAT, body, headers={"Authorization": f"Bearer {ctx.litellm_key}"})
    if not observation.ok:
        hint = ctx.hint(observation)
        message = observation.error_message.lower()
        if observation.status in (400, 401, 403) and any(w in message for w in ("auth", "key", "token", "db")):
            # Without a database LiteLLM answers any key but its master key with "No connected db".
            hint = "LiteLLM refused the key: use the master key from Secret igwlab-litellm (key master-key)."
        elif observation.status is not None and observation.status >= 500:
            hint = (
                "LiteLLM could not reach the gateway or the gateway failed: check api_base in its config "
                "(`igwlab render --with litellm`) points at the gateway's Service and listener port."
            )
        return _failed_request("litellm-route", observation, f"POST {ctx.litellm_url}{CHAT} via LiteLLM", hint)
    answered = observation.model or "?"
    targets = {t.name for t in model.targets}
    if targets and answered not in targets and answered != model.name:
        return CheckResult(
            "litellm-route",
            "fail",
            f"LiteLLM answered from {answered!r}, not a target of {model.name!r}",
            "LiteLLM's model_list maps this name somewhere else than the gateway.",
            data={"model": answered},
        )
    via = f"target {answered!r}" if answered in targets else f"model {answered!r}"
    return CheckResult("litellm-route", "pass", f"LiteLLM -> gateway -> {via}", data={"model": answered})


CLUSTER_HINTS = {
    "route-accepted": "A route that is not Accepted has no matching Gateway listener; ResolvedRefs=False with "
    "BackendNotFound usually means the provider's inference flag is off or the backendRef group does not match the "
    "InferencePool's API (inference.networking.x-k8s.io for v1alpha2, inference.networking.k8s.io for v1).",
    "pool-accepted": "The gateway has not taken the InferencePool: check the provider supports this pool API "
    "version, and `kubectl describe inferencepool`.",
    "epp-ready": "The endpoint picker is not Available: Pending pods often ask for more CPU or memory than the "
    "node has (the chart's default is 4 CPU / 8Gi), or its image cannot be pulled; `kubectl describe pod`.",
}


async def cluster_check(ctx: CheckContext, name: str) -> CheckResult:
    if ctx.cluster is None:
        return CheckResult(name, "skip", ctx.cluster_skip_reason or "no cluster access")
    kube = ctx.cluster.kube
    details = []
    for gate in ctx.cluster.gates[name]:
        try:
            state = await asyncio.to_thread(gate.check, kube)
        except Exception as error:  # the API server is gone or refuses: not this check's verdict
            return CheckResult(name, "skip", f"cluster not reachable: {api_error_line(error)}")
        if not state.ok:
            return CheckResult(name, "fail", f"{gate.describe()}: {state.detail}", CLUSTER_HINTS[name])
        details.append(state.detail)
    return CheckResult(name, "pass", " | ".join(details))


HTTP_CHECKS: list[tuple[str, Check]] = [
    ("completion", completion),
    ("chat-completion", chat_completion),
    ("streaming", streaming),
    ("traffic-split", traffic_split),
    ("endpoint-spread", endpoint_spread),
    ("model-routing", model_routing),
    ("prefix-affinity", prefix_affinity),
    ("unknown-model", unknown_model),
    ("epp-in-path", epp_in_path),
]


async def run_checks(ctx: CheckContext) -> list[CheckResult]:
    results = [await _timed(gateway_reachable, ctx)]
    for name, check in HTTP_CHECKS:
        if name not in ctx.lab.checks:
            results.append(CheckResult(name, "skip", f"not one of lab {ctx.lab.name}'s checks"))
        elif not ctx.reachable:
            results.append(CheckResult(name, "skip", "the gateway is not reachable"))
        else:
            results.append(await _timed(check, ctx))
    if ctx.litellm_url is not None or "litellm" in ctx.lab.addons:
        results.append(await _timed(litellm_route, ctx))
    for name in CLUSTER_CHECKS:
        results.append(await cluster_check(ctx, name))
    for result in results:  # the lab's own names in hints; server bytes escaped
        result.detail, result.hint = printable(result.detail), personalize(result.hint, ctx.lab)
    return results


async def _timed(check: Check, ctx: CheckContext) -> CheckResult:
    start = time.perf_counter()
    result = await check(ctx)
    result.duration_s = time.perf_counter() - start
    return result
