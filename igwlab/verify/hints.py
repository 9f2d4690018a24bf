"""What a failed observation most likely means, and the command that shows more."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from igwlab.verify.engine import Observation

DIAGNOSE = "`igwlab diagnose` bundles events and logs"

OUTCOME_HINTS: dict[str, str] = {
    "connect": "Nothing accepts connections at this URL. Is the lab up (`igwlab status`)? On k3d the listener "
    "is mapped to a host port (see `igwlab plan`); on a cluster check `kubectl get gateway -A` for its address.",
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


def summarize_outcomes(observations: Iterable[Observation]) -> str:
    counts = Counter(observation.outcome() for observation in observations)
    return ", ".join(f"{count}x {outcome}" for outcome, count in counts.most_common())


def first_failure(observations: Iterable[Observation]) -> Observation | None:
    return next((o for o in observations if not o.ok), None)
