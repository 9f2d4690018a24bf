"""A Plan is the ordered list of Steps `up` runs for a lab; `plan` and `--dry-run` show it.

Steps name what they do, what they wait for and which steps they depend on. Steps whose
dependencies are all done may run concurrently: the plan groups them into numbered waves.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from igwlab import gates as g
from igwlab.labs import Backend
from igwlab.mirror import Origin, Sources, import_images_argv, resolve_sources
from igwlab.render import BASE_MODEL_HEADER, HelmRelease, Rendered
from igwlab.tools.k3d import create_cluster_argv

StepKind = Literal["cluster", "images", "crds", "helm", "apply", "probe"]


@dataclass(frozen=True)
class Step:
    id: str
    kind: StepKind
    title: str
    depends_on: tuple[str, ...]
    gates: tuple[g.Gate, ...]
    command: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    releases: tuple[dict[str, Any], ...] = ()
    objects: tuple[str, ...] = ()
    crds: tuple[str, ...] = ()
    # Where the step's CRD bundles, charts or images come from: their source, or a mirror file.
    artifacts: tuple[Origin, ...] = ()
    wave: int = 0

    @property
    def waits_for(self) -> tuple[str, ...]:
        done = "images imported into the cluster's nodes" if self.kind == "images" else "release deployed"
        return tuple(gate.describe() for gate in self.gates) or (done,)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "title": self.title,
            "wave": self.wave,
            "depends_on": list(self.depends_on),
            "waits_for": list(self.waits_for),
        }
        if self.command:
            data["command"] = list(self.command)
        if self.urls:
            data["urls"] = list(self.urls)
        if self.releases:
            data["releases"] = [dict(release) for release in self.releases]
        if self.objects:
            data["objects"] = list(self.objects)
        if self.crds:
            data["crds"] = list(self.crds)
        if self.artifacts:
            data["artifacts"] = [origin.as_dict() for origin in self.artifacts]
        return data


@dataclass(frozen=True)
class Plan:
    lab: str
    provider: str
    stack: str
    gie_version: str
    gateway_api: str
    workload: str
    steps: tuple[Step, ...]
    url: str
    overrides: tuple[str, ...] = field(default_factory=tuple)

    def waves(self) -> list[list[Step]]:
        grouped: dict[int, list[Step]] = {}
        for step in self.steps:
            grouped.setdefault(step.wave, []).append(step)
        return [grouped[wave] for wave in sorted(grouped)]

    def as_dict(self) -> dict[str, Any]:
        return {
            "lab": self.lab,
            "provider": self.provider,
            "stack": self.stack,
            "gie_version": self.gie_version,
            "gateway_api": self.gateway_api,
            "workload": self.workload,
            "url": self.url,
            "overrides": list(self.overrides),
            "steps": [step.as_dict() for step in self.steps],
            "concurrency": [[step.id for step in wave] for wave in self.waves()],
        }


def build_plan(rendered: Rendered, context: str | None = None, sources: Sources | None = None) -> Plan:
    """The steps for a rendered lab; with `context`, an existing cluster replaces the k3d one.

    `sources` says where each CRD bundle, chart and image comes from (`igwlab.mirror.resolve_sources`);
    without it, from their sources over the network. Mirrored images add an `images` step that
    imports them into the k3d cluster before anything that starts pods.
    """
    resolved = rendered.resolved
    lab, stack = resolved.lab, resolved.stack
    ns = lab.namespace
    sources = sources or resolve_sources(rendered, None)
    steps: list[Step] = []

    steps.append(
        Step(
            id="cluster",
            kind="cluster",
            title=f"create k3d cluster {lab.cluster.name!r} (traefik off, one server)"
            if context is None
            else f"use the existing cluster of context {context!r}",
            depends_on=(),
            gates=(g.NodesReady(),),
            command=tuple(create_cluster_argv(lab.cluster, lab.gateway.listeners, stack.kubernetes.k3s_image))
            if context is None
            else (),
        )
    )
    crd_steps: list[str] = []
    for bundle in rendered.crd_bundles:
        steps.append(
            Step(
                id=bundle.step,
                kind="crds",
                title=f"install {bundle.title} CRDs (server-side apply)",
                depends_on=("cluster",),
                gates=(g.CrdsEstablished(bundle.crds, bundle.version_annotation, bundle.version),),
                urls=(bundle.url,),
                crds=bundle.crds,
                artifacts=_origins(sources, "crds", bundle.url),
            )
        )
        crd_steps.append(bundle.step)

    previous: tuple[str, ...] = tuple(crd_steps)
    for release in rendered.releases:
        if not release.step.startswith("provider-"):
            continue
        steps.append(
            Step(
                id=release.step,
                kind="helm",
                title=f"helm install {release.name} {release.version} into {release.namespace}",
                depends_on=previous,
                gates=tuple(_deployment_gate(ref) for ref in release.wait_deployments),
                releases=(release.summary(),),
                artifacts=_chart_origins(sources, [release]),
            )
        )
        previous = (release.step,)
    provider_done = previous

    class_gate = g.GatewayClassAccepted(stack.gateway_class.name)
    if stack.gateway_class.created_by == "igwlab":
        steps.append(
            _apply_step(
                rendered,
                "gatewayclass",
                f"create GatewayClass {stack.gateway_class.name}",
                provider_done,
                (class_gate,),
            )
        )
        gateway_class_done: tuple[str, ...] = ("gatewayclass",)
    else:
        gateway_class_done = provider_done
        steps[-1] = replace(steps[-1], gates=(*steps[-1].gates, class_gate))

    steps.append(_apply_step(rendered, "namespace", f"create namespace {ns}", ("cluster",), (g.NamespaceActive(ns),)))
    pool_deps: tuple[str, ...] = ("namespace", "inference-crds")
    if stack.pool_chart_provider == "istio":
        # The chart renders an Istio DestinationRule: its CRD must exist first.
        pool_deps += provider_done
    backends = lab.backends()
    for backend in backends:
        steps += _backend_steps(rendered, backend, ns, pool_deps, resolved.gie.model_object, sources)
    bbr = rendered.releases_for("bbr")
    if bbr:
        steps.append(
            Step(
                id="bbr",
                kind="helm",
                title=f"helm install body-based routing {bbr[0].version} (sets {BASE_MODEL_HEADER} from the body)",
                depends_on=("namespace", *provider_done),
                gates=(),
                releases=tuple(release.summary() for release in bbr),
                artifacts=_chart_origins(sources, bbr),
            )
        )

    for release in rendered.releases:
        if release.step.startswith("addon-"):
            steps.append(
                Step(
                    id=release.step,
                    kind="helm",
                    title=f"helm install add-on {release.name} {release.version} into {release.namespace}",
                    depends_on=("namespace",),
                    gates=tuple(_deployment_gate(ref) for ref in release.wait_deployments),
                    releases=(release.summary(),),
                    artifacts=_chart_origins(sources, [release]),
                )
            )

    if "litellm" in lab.addons:
        steps.append(
            _apply_step(
                rendered,
                "addon-litellm",
                "deploy LiteLLM in front of the gateway",
                ("namespace",),
                (g.DeploymentAvailable(ns, "igwlab-litellm"),),
            )
        )

    gateway_deps = ["namespace", *gateway_class_done]
    if "gateway-api-crds" in crd_steps:
        gateway_deps.insert(1, "gateway-api-crds")
    listeners = ", ".join(f"{li.name}:{li.port}" for li in lab.gateway.listeners)
    proxy = stack.proxy
    proxy_gate = g.ProxyAvailable(
        gateway=lab.gateway.name,
        namespace=proxy.namespace or ns,
        name=proxy.deployment.format(gateway=lab.gateway.name) if proxy.deployment else None,
        label_selector=proxy.label_selector.format(gateway=lab.gateway.name) if proxy.label_selector else None,
    )
    steps.append(
        _apply_step(
            rendered,
            "gateway",
            f"create Gateway {lab.gateway.name} ({listeners})",
            tuple(dict.fromkeys(gateway_deps)),
            (g.GatewayProgrammed(ns, lab.gateway.name), proxy_gate),
        )
    )
    pools = ", ".join(backend.pool.name for backend in backends)
    route_deps = ("gateway", *(backend.step("pool") for backend in backends), *(["bbr"] if bbr else []))
    steps.append(
        _apply_step(
            rendered,
            "route",
            f"route {lab.route_listener.name} traffic to InferencePool {pools}",
            route_deps,
            (
                g.RouteAccepted(ns, lab.route.name),
                *(
                    g.PoolAccepted(ns, backend.pool.name, resolved.gie.pool_api, lab.gateway.name)
                    for backend in backends
                ),
            ),
        )
    )
    url = f"http://localhost:{lab.route_listener.effective_host_port}"
    model = lab.models[0].name
    steps.append(
        Step(
            id="warmup",
            kind="probe",
            title=f"send a completion for {model!r} through the gateway",
            depends_on=("route", *(b.step(base) for b in backends for base in ("models", "workload"))),
            gates=(g.Answers(url if context is None else ""),),
        )
    )
    if context is None and sources.images:
        steps = _with_image_import(steps, lab.cluster.name, sources.images)
    return Plan(
        lab=lab.name,
        provider=lab.provider,
        stack=stack.id,
        gie_version=stack.gie_version,
        gateway_api=f"{stack.gateway_api.version} {stack.gateway_api.channel}",
        workload=lab.workload.kind,
        steps=tuple(_assign_waves(steps)),
        url=url,
        overrides=resolved.overrides,
    )


def _backend_steps(
    rendered: Rendered,
    backend: Backend,
    ns: str,
    pool_deps: tuple[str, ...],
    model_object: str,
    sources: Sources,
) -> list[Step]:
    """A pool's steps: its model servers, its InferencePool and EPP, its model objects."""
    workload, pool = backend.workload, backend.pool
    server = "llm-d-inference-sim" if workload.kind == "sim" else "vLLM CPU"
    steps = [
        _apply_step(
            rendered,
            backend.step("workload"),
            f"deploy {workload.replicas} x {server} serving {', '.join(workload.served_names())}",
            ("namespace",),
            (g.DeploymentAvailable(ns, workload.name, workload.replicas, note=", readiness probe on /health"),),
        )
    ]
    pool_release = rendered.releases_for(backend.step("pool"))
    pool_title = f"InferencePool {pool.name} and its endpoint picker"
    pool_gates = (g.DeploymentAvailable(ns, f"{pool.name}-epp"),)
    if pool_release:
        steps.append(
            Step(
                id=backend.step("pool"),
                kind="helm",
                title=f"helm install {pool_title} (inferencepool chart {pool_release[0].version})",
                depends_on=pool_deps,
                gates=pool_gates,
                releases=tuple(release.summary() for release in pool_release),
                artifacts=_chart_origins(sources, pool_release),
            )
        )
    else:
        steps.append(_apply_step(rendered, backend.step("pool"), f"apply {pool_title}", pool_deps, pool_gates))
    model_objects = rendered.objects_for(backend.step("models"))
    steps.append(
        _apply_step(
            rendered,
            backend.step("models"),
            f"apply {model_object} objects for {', '.join(m.name for m in backend.models)}",
            (backend.step("pool"),),
            (g.ObjectsExist(tuple((o.api_version, o.kind, o.name, o.namespace) for o in model_objects)),),
        )
    )
    return steps


def _origins(
    sources: Sources, kind: Literal["crds", "chart"], source: str, repo: str | None = None
) -> tuple[Origin, ...]:
    origin = sources.find(kind, source, repo)
    return (origin,) if origin is not None else ()


def _chart_origins(sources: Sources, releases: list[HelmRelease]) -> tuple[Origin, ...]:
    return tuple(o for release in releases for o in _origins(sources, "chart", release.chart, release.repo))


def _with_image_import(steps: list[Step], cluster: str, images: tuple[Origin, ...]) -> list[Step]:
    """Mirrored images go into the new cluster before any step that may start a pod: every step that
    needed only the cluster now needs the images too."""
    files = [origin.file for origin in images if origin.file is not None]
    step = Step(
        id="images",
        kind="images",
        title=f"import {len(images)} mirrored images into k3d cluster {cluster!r} (no pod pulls)",
        depends_on=("cluster",),
        gates=(),
        command=tuple(import_images_argv(cluster, files)),
        artifacts=images,
    )
    rewired = [
        replace(s, depends_on=tuple("images" if dep == "cluster" else dep for dep in s.depends_on)) for s in steps
    ]
    return [rewired[0], step, *rewired[1:]]


def _deployment_gate(ref: str) -> g.DeploymentAvailable:
    namespace, name = ref.split("/", 1)
    return g.DeploymentAvailable(namespace, name)


def _apply_step(
    rendered: Rendered, step_id: str, title: str, depends_on: tuple[str, ...], gates: tuple[g.Gate, ...]
) -> Step:
    return Step(
        id=step_id,
        kind="apply",
        title=title,
        depends_on=depends_on,
        gates=gates,
        objects=tuple(obj.ref for obj in rendered.objects_for(step_id)),
    )


def _assign_waves(steps: list[Step]) -> list[Step]:
    """Wave = 1 + the latest wave among a step's dependencies; steps of one wave may run together."""
    waves: dict[str, int] = {}
    result: list[Step] = []
    for step in steps:
        missing = [dep for dep in step.depends_on if dep not in waves]
        if missing:
            raise ValueError(f"step {step.id} depends on {missing}, which come later or not at all")
        wave = 1 + max((waves[dep] for dep in step.depends_on), default=0)
        waves[step.id] = wave
        result.append(replace(step, wave=wave))
    return sorted(result, key=lambda step: step.wave)
