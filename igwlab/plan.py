"""A Plan is the ordered list of Steps `up` runs for a lab; `plan` and `--dry-run` show it.

Steps name what they do, what they wait for and which steps they depend on. Steps whose
dependencies are all done may run concurrently: the plan groups them into numbered waves.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from igwlab.render import Rendered
from igwlab.tools.k3d import create_cluster_argv

StepKind = Literal["cluster", "crds", "helm", "apply", "probe"]


@dataclass(frozen=True)
class Step:
    id: str
    kind: StepKind
    title: str
    depends_on: tuple[str, ...]
    waits_for: tuple[str, ...]
    command: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    releases: tuple[dict[str, Any], ...] = ()
    objects: tuple[str, ...] = ()
    crds: tuple[str, ...] = ()
    wave: int = 0

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


def build_plan(rendered: Rendered) -> Plan:
    resolved = rendered.resolved
    lab, stack = resolved.lab, resolved.stack
    ns = lab.namespace
    steps: list[Step] = []

    steps.append(
        Step(
            id="cluster",
            kind="cluster",
            title=f"create k3d cluster {lab.cluster.name!r} (traefik off, one server)",
            depends_on=(),
            waits_for=("node Ready", "kubeconfig stored in igwlab's state directory"),
            command=tuple(create_cluster_argv(lab.cluster, lab.gateway.listeners)),
        )
    )
    crd_steps: list[str] = []
    for bundle in rendered.crd_bundles:
        steps.append(
            Step(
                id=bundle.step,
                kind="crds",
                title=f"install {bundle.title} CRDs",
                depends_on=("cluster",),
                waits_for=(f"{len(bundle.crds)} CRDs Established ({_short_names(bundle.crds)})",),
                urls=(bundle.url,),
                crds=bundle.crds,
            )
        )
        crd_steps.append(bundle.step)

    previous: tuple[str, ...] = tuple(crd_steps)
    for release in rendered.releases:
        if release.step == "pool":
            continue
        steps.append(
            Step(
                id=release.step,
                kind="helm",
                title=f"helm install {release.name} {release.version} into {release.namespace}",
                depends_on=previous,
                waits_for=tuple(f"Deployment/{d} Available" for d in release.wait_deployments) or ("release deployed",),
                releases=(release.summary(),),
            )
        )
        previous = (release.step,)
    provider_done = previous

    class_waits = (f"GatewayClass/{stack.gateway_class.name} Accepted",)
    if stack.gateway_class.created_by == "igwlab":
        steps.append(
            _apply_step(
                rendered, "gatewayclass", f"create GatewayClass {stack.gateway_class.name}", provider_done, class_waits
            )
        )
        gateway_class_done: tuple[str, ...] = ("gatewayclass",)
    else:
        gateway_class_done = provider_done
        last = steps[-1]
        steps[-1] = replace(last, waits_for=last.waits_for + class_waits)

    steps.append(_apply_step(rendered, "namespace", f"create namespace {ns}", ("cluster",), ("Namespace Active",)))
    workload = lab.workload
    steps.append(
        _apply_step(
            rendered,
            "workload",
            f"deploy {workload.replicas} x {'llm-d-inference-sim' if workload.kind == 'sim' else 'vLLM CPU'} "
            f"serving {', '.join(workload.served_names())}",
            ("namespace",),
            (f"Deployment/{ns}/{workload.name} Available ({workload.replicas} ready)", "model port answers /health"),
        )
    )

    epp = f"{ns}/{lab.pool.name}-epp"
    pool_deps: tuple[str, ...] = ("namespace", "inference-crds")
    if stack.pool_chart_provider == "istio":
        # The chart renders an Istio DestinationRule: its CRD must exist first.
        pool_deps += provider_done
    pool_release = rendered.releases_for("pool")
    pool_title = f"InferencePool {lab.pool.name} and its endpoint picker"
    pool_waits = (f"Deployment/{epp} Available",)
    if pool_release:
        steps.append(
            Step(
                id="pool",
                kind="helm",
                title=f"helm install {pool_title} (inferencepool chart {pool_release[0].version})",
                depends_on=pool_deps,
                waits_for=pool_waits,
                releases=tuple(release.summary() for release in pool_release),
            )
        )
    else:
        steps.append(_apply_step(rendered, "pool", f"apply {pool_title}", pool_deps, pool_waits))

    steps.append(
        _apply_step(
            rendered,
            "models",
            f"apply {resolved.gie.model_object} objects for {', '.join(m.name for m in lab.models)}",
            ("pool",),
            ("accepted by the API server",),
        )
    )
    gateway_deps = ["namespace", *gateway_class_done]
    if "gateway-api-crds" in crd_steps:
        gateway_deps.insert(1, "gateway-api-crds")
    steps.append(
        _apply_step(
            rendered,
            "gateway",
            f"create Gateway {lab.gateway.name} ({', '.join(f'{li.name}:{li.port}' for li in lab.gateway.listeners)})",
            tuple(dict.fromkeys(gateway_deps)),
            (f"Gateway/{ns}/{lab.gateway.name} Programmed with an address", f"proxy for {lab.gateway.name} Available"),
        )
    )
    pool_status = "status.parent" if resolved.gie.era == "alpha" else "status.parents"
    steps.append(
        _apply_step(
            rendered,
            "route",
            f"route {lab.route_listener.name} traffic to InferencePool {lab.pool.name}",
            ("gateway", "pool"),
            (
                f"HTTPRoute/{ns}/{lab.route.name} Accepted and ResolvedRefs",
                f"InferencePool/{ns}/{lab.pool.name} {pool_status} Accepted and ResolvedRefs for the Gateway",
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
            depends_on=("route", "models", "workload"),
            waits_for=(f"POST {url}/v1/completions answers 200",),
        )
    )
    return Plan(
        lab=lab.name,
        provider=lab.provider,
        stack=stack.id,
        gie_version=stack.gie_version,
        gateway_api=f"{stack.gateway_api.version} {stack.gateway_api.channel}",
        workload=workload.kind,
        steps=tuple(_assign_waves(steps)),
        url=url,
        overrides=resolved.overrides,
    )


def _apply_step(
    rendered: Rendered, step_id: str, title: str, depends_on: tuple[str, ...], waits_for: tuple[str, ...]
) -> Step:
    return Step(
        id=step_id,
        kind="apply",
        title=title,
        depends_on=depends_on,
        waits_for=waits_for,
        objects=tuple(obj.ref for obj in rendered.objects_for(step_id)),
    )


def _short_names(crds: tuple[str, ...]) -> str:
    return ", ".join(crd.split(".", 1)[0] for crd in crds)


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
