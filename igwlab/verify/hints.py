"""What a failed observation most likely means, and the command that shows more.

Hints are written for any lab (`kubectl logs deploy/<pool>-epp`, `kubectl get pods -l app=...`);
`personalize` fills in the lab's namespace and names when verify reports them, and `printable`
escapes what servers sent, so a control character or a terminal escape prints as `\x1b`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from igwlab.verify.engine import Observation

if TYPE_CHECKING:
    from igwlab.labs import Lab

DIAGNOSE = "`igwlab diagnose` bundles events and logs"

OUTCOME_HINTS: dict[str, str] = {
    "connect": "Nothing accepts connections at this URL. Is the lab up (`igwlab status`)? On k3d the listener "
    "is mapped to a host port (see `igwlab plan`); on a cluster check `kubectl get gateway -A` for its address.",
    "dns": "The URL's host name does not resolve: check its spelling, or use the gateway's IP address "
    "(`kubectl get gateway -A` shows it).",
    "timeout": "The gateway took the request but no answer came in time: the pool fails closed (FailClose), "
    "so while its endpoint picker is unreachable requests wait or are refused; or the model server is "
    "overloaded or still loading (vLLM on CPU takes minutes). Check `kubectl get pods`, then the EPP logs; "
    "raise --timeout for slow models.",
    "protocol": "The connection broke mid-request: a proxy reset it or something other than HTTP answers at this port.",
    "400": "The server rejected the request body: the model server's context length or parameters may differ "
    "from what igwlab sends.",
    "401": "The gateway wants credentials: an auth policy sits in front of the route.",
    "404": "No route or no model: check the HTTPRoute's path match and parent listener "
    "(`kubectl get httproute -o yaml`), and that the model name is served or mapped "
    "(InferenceModel / InferenceModelRewrite).",
    "429": "The model server's queue is full (max-num-seqs and its waiting queue): lower --concurrency "
    "or add replicas.",
    "500": "The endpoint picker is down or unreachable and the pool fails closed (FailClose): Envoy-based "
    "gateways answer 500 when their ext_proc filter cannot reach the picker. Check the EPP Deployment is "
    "Available (`kubectl get deploy <pool>-epp`); if it is, the EPP or model server failed the request: read "
    f"the EPP logs (`kubectl logs deploy/<pool>-epp`); {DIAGNOSE}.",
    "502": "The proxy could not reach the endpoint the picker chose: model-server pod not Ready, or "
    "the InferencePool's target port differs from the model server's port.",
    "503": "No endpoint for the request: the pool fails closed (FailClose), so an endpoint picker that is "
    "down or not Ready means 503 for every request; or no model pod is Ready; or a sheddable request met "
    "a saturated pool. Check the EPP Deployment is Available and the model pods Ready.",
    "504": "The proxy timed out upstream: the model is slow (raise the route timeout) or the picker hangs.",
    "bad-json": "The answer is not JSON: something other than an OpenAI-compatible server answered "
    "(a default backend, an HTML error page, or a wrong route).",
    "bad-stream": "The event stream holds a chunk that is not JSON: the proxy may be rewriting or buffering "
    "the stream.",
}


# Where the pool's failure mode changes the likely cause: FailOpen labs (OUTCOME_HINTS speaks of FailClose).
FAIL_OPEN_HINTS: dict[str, str] = {
    "timeout": "The gateway took the request but no answer came in time: the model server is overloaded or "
    "still loading (vLLM on CPU takes minutes). The pool fails open (FailOpen), so an unreachable endpoint "
    "picker is not the cause: the gateway would send the request on without it. Check `kubectl get pods`; "
    "raise --timeout for slow models.",
    "500": "The endpoint picker or model server failed the request: read the EPP logs "
    f"(`kubectl logs deploy/<pool>-epp`); {DIAGNOSE}. The pool fails open (FailOpen), so a picker that is "
    "merely down would not cause this: the gateway would forward without it.",
    "503": "No endpoint for the request: no model pod is Ready, or a sheddable request met a saturated "
    "pool. The pool fails open (FailOpen): with its endpoint picker down the gateway still forwards, so "
    "answers keep coming but without the picker's choices (no model rewrite, no LoRA or KV-cache "
    "affinity). Check the model pods are Ready and the EPP logs.",
}


def hint_for(observation: Observation, failure_mode: str = "FailClose") -> str:
    """The likely cause of a failed observation; `failure_mode` is the pool's, as the gateway applies it."""
    outcome = observation.error if observation.error else str(observation.status)
    if model_not_served(observation):
        return (
            "A model server answered 404 for this model: the route works, but the request reached servers "
            "that do not serve the name. Check the model is served or rewritten (InferenceModel / "
            "InferenceModelRewrite) and, with several pools, that the request reached its own pool."
        )
    if failure_mode == "FailOpen" and outcome in FAIL_OPEN_HINTS:
        return FAIL_OPEN_HINTS[outcome]
    if outcome in OUTCOME_HINTS:
        return OUTCOME_HINTS[outcome]
    if observation.status is not None and observation.status >= 500:
        return FAIL_OPEN_HINTS["500"] if failure_mode == "FailOpen" else OUTCOME_HINTS["500"]
    return f"Unexpected answer ({outcome}); {DIAGNOSE}."


def personalize(hint: str, lab: Lab) -> str:
    """`hint` with the lab's names: its namespace on every kubectl command, its pool, workload, gateway, route."""
    backends = lab.backends()
    pool, workload = backends[0].pool.name, backends[0].workload.name
    workloads = [backend.workload.name for backend in backends]
    selector = f"app={workload}" if len(workloads) == 1 else f"'app in ({','.join(workloads)})'"
    for generic, concrete in (
        ("<pool>", pool),
        ("app=...", selector),
        ("describe inferencepool`", f"describe inferencepool {' '.join(b.pool.name for b in backends)}`"),
        ("describe pod`", f"describe pod -l app={pool}-epp`"),
        ("get httproute -o yaml`", f"get httproute {lab.route.name} -o yaml`"),
        ("get gateway -A`", f"get gateway {lab.gateway.name}`"),
    ):
        hint = hint.replace(generic, concrete)

    def namespaced(match: re.Match[str]) -> str:
        command = match.group(1)
        if re.search(r"(^| )(-n|--namespace)[ =]", command):
            return match.group(0)
        command = re.sub(r" (-A|--all-namespaces)\b", "", command)
        return f"`{command} -n {lab.namespace}`"

    return re.sub(r"`(kubectl [^`]*)`", namespaced, hint)


def printable(text: str, limit: int = 2000) -> str:
    """Server-sent text safe to print: non-printable characters escaped (`\\n`, `\\x1b`), at most `limit` chars."""
    if text.isprintable():
        return text[:limit]
    escaped = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
    return escaped[:limit]


def summarize_outcomes(observations: Iterable[Observation]) -> str:
    counts = Counter(observation.outcome() for observation in observations)
    return ", ".join(f"{count}x {outcome}" for outcome, count in counts.most_common())


def first_failure(observations: Iterable[Observation]) -> Observation | None:
    return next((o for o in observations if not o.ok), None)


BBR_LABEL_SELECTOR = "inference.networking.k8s.io/bbr-managed=true"


def model_not_served(observation: Observation) -> bool:
    """A 404 from a model server itself ("The model `X` does not exist." from vLLM and
    llm-d-inference-sim): the request was routed, to servers that do not serve that model."""
    return observation.status == 404 and "does not exist" in observation.error_message


def wrong_pool_hint(model: str, pool: str, base_model: str, header_routing: bool) -> str:
    """Why a multi-pool lab sends a model to the wrong pool's servers, and what to look at."""
    if header_routing:
        return (
            f"Requests for {model!r} reached model servers that do not serve it: on this stack the client "
            f"picks the pool, so it must send the header X-Gateway-Base-Model-Name: {base_model}, which the "
            f"HTTPRoute's rule for pool {pool} matches (`igwlab render` shows the rules)."
        )
    return (
        f"Requests for {model!r} reached model servers that do not serve it: body-based routing sets "
        f"X-Gateway-Base-Model-Name only for models listed in its ConfigMaps (`kubectl get configmap -l "
        f"{BBR_LABEL_SELECTOR} -o yaml`: baseModel {base_model!r} with {model!r} among its adapters), and sets it "
        f"empty otherwise, so the request falls to the catch-all rule. Check those ConfigMaps, that the "
        f"body-based router runs, and the HTTPRoute's rule for pool {pool}."
    )
