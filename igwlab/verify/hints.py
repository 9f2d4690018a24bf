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
    "timeout": "The gateway took the request but no answer came in time: the endpoint picker may be unready "
    "(FailClose holds requests), or the model server is overloaded or still loading (vLLM on CPU takes "
    "minutes). Check `kubectl get pods`, then the EPP logs; raise --timeout for slow models.",
    "protocol": "The connection broke mid-request: a proxy reset it or something other than HTTP answers at this port.",
    "400": "The server rejected the request body: the model server's context length or parameters may differ "
    "from what igwlab sends.",
    "401": "The gateway wants credentials: an auth policy sits in front of the route.",
    "404": "No route or no model: check the HTTPRoute's path match and parent listener "
    "(`kubectl get httproute -o yaml`), and that the model name is served or mapped "
    "(InferenceModel / InferenceModelRewrite).",
    "429": "The model server's queue is full (max-num-seqs and its waiting queue): lower --concurrency "
    "or add replicas.",
    "500": "The endpoint picker or model server failed the request: read the EPP logs "
    f"(`kubectl logs deploy/<pool>-epp`); {DIAGNOSE}.",
    "502": "The proxy could not reach the endpoint the picker chose: model-server pod not Ready, or "
    "the InferencePool's target port differs from the model server's port.",
    "503": "No healthy endpoint, or the endpoint picker is unavailable and the pool fails closed, or a "
    "sheddable request met a saturated pool: check the EPP Deployment is Available and the model pods Ready.",
    "504": "The proxy timed out upstream: the model is slow (raise the route timeout) or the picker hangs.",
    "bad-json": "The answer is not JSON: something other than an OpenAI-compatible server answered "
    "(a default backend, an HTML error page, or a wrong route).",
    "bad-stream": "The event stream holds a chunk that is not JSON: the proxy may be rewriting or buffering "
    "the stream.",
}


def hint_for(observation: Observation) -> str:
    outcome = observation.error if observation.error else str(observation.status)
    if outcome in OUTCOME_HINTS:
        return OUTCOME_HINTS[outcome]
    if observation.status is not None and observation.status >= 500:
        return OUTCOME_HINTS["500"]
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
