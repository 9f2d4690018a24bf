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
from igwlab.labs import Lab
from igwlab.render import BASE_MODEL_HEADER
from igwlab.tools.kube import KubeApi
from igwlab.verify import stats
from igwlab.verify.engine import Engine, Observation
from igwlab.verify.hints import first_failure, hint_for, personalize, printable, summarize_outcomes
from igwlab.verify.report import CheckResult

COMPLETIONS = "/v1/completions"
CHAT = "/v1/chat/completions"
CLUSTER_CHECKS = ("route-accepted", "pool-accepted", "epp-ready")
EPP_HEADER = "x-went-into-resp-headers"


@dataclass(frozen=True)
class ClusterAccess:
    """The lab's objects on the cluster `up` made, for the status checks."""

    kube: KubeApi
    gates: dict[str, list[Gate]]  # check name -> every gate it covers (one per pool for pools and EPPs)


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
    # Multi-pool labs: True where clients must send the base-model header themselves (no body-based routing).
    header_routing: bool = True
    max_tokens: int = 8
    reachable: bool = False
    seen: list[Observation] = field(default_factory=list)
    rewrite_observed: bool = False

    @property
    def model(self) -> str:
        return self.lab.models[0].name

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
    if observation.error in ("dns", "connect", "timeout", "protocol"):
        waited = f" after {attempts} attempts in {ctx.wait_s:.0f}s" if attempts > 1 else ""
        hint = hint_for(observation)
        if ctx.wait_s == 0:
            hint += " If the lab is still starting, pass --wait 120."
        return CheckResult(
            "gateway-reachable", "fail", f"{observation.outcome()}{waited}: {observation.error_detail}", hint, data=data
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
        return _failed_request("completion", observation, f"POST {COMPLETIONS} for {ctx.model!r}")
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
        return _failed_request("chat-completion", observation, f"POST {CHAT} for {ctx.model!r}")
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


async def streaming(ctx: CheckContext) -> CheckResult:
    observation = await ctx.engine.stream(CHAT, _chat_body(ctx))
    ctx.remember([observation])
    if observation.status != 200 or observation.error in ("dns", "connect", "timeout", "protocol", "bad-json"):
        if not observation.stream_chunks:
            return _failed_request("streaming", observation, "streamed chat")
        stalled = (
            "Tokens arrived, then the stream stalled past --timeout: a slow model, or a proxy buffering "
            "the stream (check the route timeout)."
        )
        hint = stalled if observation.error == "timeout" else hint_for(observation)
        detail = f"stream stopped after {observation.stream_chunks} chunks: {observation.outcome()}"
        return CheckResult("streaming", "fail", detail, hint)
    if observation.error == "bad-stream":
        return CheckResult("streaming", "fail", observation.error_detail, hint_for(observation))
    if not observation.stream_done:
        return CheckResult(
            "streaming",
            "fail",
            f"{observation.stream_chunks} chunks but no `data: [DONE]`",
            "The stream ended early: the proxy may cut long-lived responses (route timeout).",
        )
    ttft = f"{observation.ttft_s * 1000:.0f} ms" if observation.ttft_s is not None else "n/a"
    return CheckResult(
        "streaming",
        "pass",
        f"{observation.stream_chunks} chunks then [DONE]; first token after {ttft}",
        data={"chunks": observation.stream_chunks, "ttft_s": observation.ttft_s},
    )


async def traffic_split(ctx: CheckContext) -> CheckResult:
    models = [model for model in ctx.lab.models if model.targets]
    if not models:
        return CheckResult("traffic-split", "skip", "the lab maps no model name to weighted targets")
    details: list[str] = []
    data: dict[str, Any] = {}
    for model in models:
        bodies = [_completion_body(ctx, model.name, _prompt(f"split {i}")) for i in range(ctx.requests)]
        observations = ctx.remember(await ctx.engine.post_many(COMPLETIONS, bodies))
        failed = first_failure(observations)
        if failed is not None:
            return CheckResult(
                "traffic-split", "fail", f"{model.name}: {summarize_outcomes(observations)}", hint_for(failed)
            )
        counts = Counter(o.model or "(no model field)" for o in observations)
        names = [target.name for target in model.targets]
        weights = [target.weight for target in model.targets]
        strays = {name: n for name, n in counts.items() if name not in names}
        data[model.name] = {"observed": dict(counts), "weights": dict(zip(names, weights, strict=True))}
        if strays:
            if set(strays) == {model.name}:
                return CheckResult(
                    "traffic-split",
                    "fail",
                    f"{model.name}: all {strays[model.name]} answers name {model.name!r} itself, none a target",
                    "No model rewrite happened: requests bypass the endpoint picker, or the InferenceModel "
                    f"(v1alpha2) / InferenceModelRewrite (v1) for {model.name!r} is missing. A single model "
                    "server with no gateway in front never splits. Check "
                    "`kubectl get inferencemodel,inferencemodelrewrite -A`.",
                    data=data,
                )
            return CheckResult(
                "traffic-split",
                "fail",
                f"{model.name}: unexpected models {dict(strays)}",
                "Answers name models that are not this lab's targets: another route or rewrite matches first.",
                data=data,
            )
        ctx.rewrite_observed = True
        observed = [counts.get(name, 0) for name in names]
        test = stats.split_test(observed, weights)
        shares = ", ".join(
            f"{name} {count / len(observations):.0%} (want {weight / sum(weights):.0%})"
            for name, count, weight in zip(names, observed, weights, strict=True)
        )
        data[model.name].update(p_value=test.p_value, n=len(observations))
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
                f"{model.name}: {shares}; chi-square p={test.p_value:.1e}",
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
                f"Rerun with --requests {4 * len(observations)} to tell a wrong split from chance.",
                data=data,
            )
        details.append(f"{model.name}: {shares}; p={test.p_value:.2f}, n={len(observations)}")
    return CheckResult("traffic-split", "pass", "; ".join(details), data=data)


async def endpoint_spread(ctx: CheckContext) -> CheckResult:
    replicas = ctx.lab.workload.replicas
    if replicas < 2:
        return CheckResult("endpoint-spread", "skip", "the pool has one replica")
    bodies = [_completion_body(ctx, prompt=_prompt(f"spread {i}")) for i in range(max(ctx.requests // 2, 20))]
    observations = ctx.remember(await ctx.engine.post_many(COMPLETIONS, bodies))
    answered = [o for o in observations if o.ok]
    if not answered:
        return CheckResult("endpoint-spread", "fail", summarize_outcomes(observations), hint_for(observations[0]))
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
        return CheckResult(
            "endpoint-spread",
            "fail",
            f"all {len(answered)} answers from one pod ({spread})",
            f"The pool has {replicas} replicas but one served everything: are the others Ready "
            "(`kubectl get pods -l app=...`), and does the InferencePool selector match them?",
            data=data,
        )
    return CheckResult("endpoint-spread", "pass", f"{len(pods)} of {replicas} pods served: {spread}", data=data)


async def model_routing(ctx: CheckContext) -> CheckResult:
    backends = ctx.lab.backends()
    if len(backends) < 2:
        return CheckResult("model-routing", "skip", "the lab has one pool")
    per_pool = max(10, ctx.requests // 10)
    data: dict[str, Any] = {}
    for backend in backends:
        model = backend.models[0].name
        headers = {BASE_MODEL_HEADER: backend.workload.served_model} if ctx.header_routing else None
        bodies = [_completion_body(ctx, model, _prompt(f"routing {i}")) for i in range(per_pool)]
        observations = ctx.remember(
            list(await asyncio.gather(*(ctx.engine.post(COMPLETIONS, body, headers=headers) for body in bodies)))
        )
        failed = first_failure(observations)
        if failed is not None:
            return CheckResult(
                "model-routing", "fail", f"{model}: {summarize_outcomes(observations)}", hint_for(failed)
            )
        pods = Counter(o.pod or "(no x-inference-pod)" for o in observations)
        data[model] = {"pool": backend.pool.name, "pods": dict(pods)}
        strays = {pod: n for pod, n in pods.items() if not pod.startswith(f"{backend.workload.name}-")}
        if strays:
            how = (
                "the client's " + BASE_MODEL_HEADER + " header"
                if ctx.header_routing
                else "body-based routing, which sets " + BASE_MODEL_HEADER
            )
            return CheckResult(
                "model-routing",
                "fail",
                f"{model}: {sum(strays.values())} of {len(observations)} answers from pods outside pool "
                f"{backend.pool.name} ({', '.join(strays)})",
                f"Requests for {model!r} should reach pool {backend.pool.name} through {how}: check the "
                "HTTPRoute's header rules (`igwlab render`) and that the body-based router is running.",
                data=data,
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
            return CheckResult("prefix-affinity", "fail", f"first request: {first.outcome()}", hint_for(first))
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
    bogus = f"igwlab-no-such-model-{secrets.token_hex(3)}"
    observation = ctx.remember([await ctx.engine.post(COMPLETIONS, _completion_body(ctx, model=bogus))])[0]
    data = {"status": observation.status, "model": bogus}
    if observation.status is not None and 400 <= observation.status < 500:
        return CheckResult(
            "unknown-model", "pass", f"{observation.status} for {bogus!r}: {observation.error_message[:120]}", data=data
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
            hint_for(observation),
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
            f"{len(marked)} answers carry {EPP_HEADER}, set by the EPP",
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
        hint = hint_for(observation)
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
            return CheckResult(name, "skip", f"cluster not reachable: {type(error).__name__}: {error}")
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
