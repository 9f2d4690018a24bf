"""Render a resolved lab into the Kubernetes objects and Helm releases `up` applies.

One module per concern, so tests and other modules reuse the builders instead of retyping
arguments or values:

- `objects`: what a render produces (KubeObject, HelmRelease, CrdBundle, Rendered);
- `templates`: jinja2 rendering of manifests/ (StrictUndefined, values through the `q` filter) and YAML out;
- `epp`: the endpoint picker's arguments, resources and scheduling config, per GIE version;
- `model_servers`: llm-d-inference-sim and vLLM arguments and resources;
- `charts`: Helm releases and chart values (provider, inferencepool, body-based routing);
- `addons`: observability and LiteLLM;
- `lab`: the whole lab, pool by pool.
"""

from igwlab.render.addons import gateway_service_url, litellm_config, render_dashboard
from igwlab.render.epp import epp_args
from igwlab.render.lab import BASE_MODEL_HEADER, build_context, render_lab, route_rules
from igwlab.render.model_servers import simulator_args, vllm_args
from igwlab.render.objects import MANAGED_BY, CrdBundle, HelmRelease, KubeObject, Rendered
from igwlab.render.templates import render_template_text, to_multi_document_yaml, to_yaml

__all__ = [
    "BASE_MODEL_HEADER",
    "MANAGED_BY",
    "CrdBundle",
    "HelmRelease",
    "KubeObject",
    "Rendered",
    "build_context",
    "epp_args",
    "gateway_service_url",
    "litellm_config",
    "render_dashboard",
    "render_lab",
    "render_template_text",
    "route_rules",
    "simulator_args",
    "to_multi_document_yaml",
    "to_yaml",
    "vllm_args",
]
