"""Lab definitions: the pydantic model of labs/*.yaml, and loading presets or user files.

A lab says *what* to build (provider, workload, pool, models, gateway, route, checks); the
catalog says *which versions* build it. A bad file is reported with its path, the field and
the problem, never with a traceback.
"""

from __future__ import annotations

import errno
import json
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationError,
    model_validator,
)

from igwlab import yamlio
from igwlab.errors import LabFileError, LabNotFoundError, UsageError
from igwlab.resources import data_dir

DEFAULT_PROVIDER = "agentgateway"
PRESET_SUFFIX = "-fake-llm"

# RFC 1123 label: what Kubernetes accepts for names of Services, Deployments, labels values...
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DnsLabel = Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN, min_length=1, max_length=63)]
# Gateway API Duration (GEP-2257), as HTTPRoute timeouts accept it.
DURATION_PATTERN = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"
Duration = Annotated[str, StringConstraints(pattern=DURATION_PATTERN)]
_PATTERN_MEANING = {
    DNS_LABEL_PATTERN: "must be a Kubernetes name: lowercase letters, digits and '-', "
    "starting and ending with a letter or digit",
    DURATION_PATTERN: "must be a Gateway API duration such as 300s, 5m or 1h30m",
}
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=256)]
VERSION_PATTERN = r"^v?[0-9]+\.[0-9]+\.[0-9]+$"
_PATTERN_MEANING[VERSION_PATTERN] = "must be a release version such as v1.5.0"
Version = Annotated[str, StringConstraints(pattern=VERSION_PATTERN)]

# Names igwlab and the charts derive from lab fields, and the limits they impose (Kubernetes names are
# at most 63 characters; Service names must start with a letter, RFC 1035).
EPP_SUFFIX = "-epp"
POOL_NAME_MAX = 40  # the inferencepool chart names its EPP `{trunc 40 .Release.Name}-epp` (_helpers.tpl, v1.5.0)
CLUSTER_NAME_MAX = 32  # k3d refuses longer cluster names (pkg/types DefaultClusterNameMaxLength)
GATEWAY_NAME_MAX = 57  # providers name the proxy `{gateway}-istio` / `{gateway}-nginx` (catalog: proxy)
RESERVED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def _service_name(value: str) -> str:
    if not value[:1].isalpha():
        raise ValueError(f"{value!r} must start with a letter: a Service is named after it (RFC 1035)")
    return value


def _pool_name(value: str) -> str:
    _service_name(value)
    if len(value) > POOL_NAME_MAX:
        raise ValueError(
            f"{value!r} is {len(value)} characters; at most {POOL_NAME_MAX}, because the endpoint picker is "
            f"named NAME{EPP_SUFFIX} and the inferencepool chart cuts NAME at {POOL_NAME_MAX}"
        )
    return value


def _cluster_name(value: str) -> str:
    if len(value) > CLUSTER_NAME_MAX:
        raise ValueError(f"{value!r} is {len(value)} characters; k3d takes cluster names of at most {CLUSTER_NAME_MAX}")
    return value


def _gateway_name(value: str) -> str:
    _service_name(value)
    if len(value) > GATEWAY_NAME_MAX:
        raise ValueError(
            f"{value!r} is {len(value)} characters; at most {GATEWAY_NAME_MAX}, because gateway implementations "
            "name their proxy NAME-istio or NAME-nginx, which must fit in 63"
        )
    return value


def _namespace(value: str) -> str:
    if value in RESERVED_NAMESPACES:
        raise ValueError(f"{value!r} is not allowed: teardown deletes the lab's namespace; pick one of the lab's own")
    return value


PoolName = Annotated[DnsLabel, AfterValidator(_pool_name)]
ClusterName = Annotated[DnsLabel, AfterValidator(_cluster_name)]
GatewayName = Annotated[DnsLabel, AfterValidator(_gateway_name)]
Namespace = Annotated[DnsLabel, AfterValidator(_namespace)]

CheckName = Literal[
    "gateway-reachable",
    "completion",
    "chat-completion",
    "streaming",
    "traffic-split",
    "endpoint-spread",
    "prefix-affinity",
    "unknown-model",
    "epp-in-path",
    "route-accepted",
    "pool-accepted",
    "epp-ready",
    "litellm-route",
    "model-routing",
]
Criticality = Literal["Critical", "Standard", "Sheddable"]
WorkloadKind = Literal["sim", "vllm-cpu"]
AddonName = Literal["observability", "litellm"]
# What the gateway does with a request when the pool's endpoint picker is unreachable (InferencePool
# failureMode): FailClose refuses it, FailOpen sends it to some model server without the picker.
FailureMode = Literal["FailOpen", "FailClose"]

# InferenceObjective has only a priority; negative means sheddable (GIE v1 API docs).
PRIORITY_FOR_CRITICALITY: dict[str, int] = {"Critical": 2, "Standard": 1, "Sheddable": -1}


Int = Annotated[int, Strict()]
"""An integer as written in the lab file: `true`, `"3"` or `3.0` are refused, not read as numbers."""
Number = Annotated[float, Strict()]
"""A number as written in the lab file (an integer is one too); `true` and `"0.8"` are refused."""
Bool = Annotated[bool, Strict()]
"""true or false as written in the lab file; `1` and `"yes"` are refused."""


def _duplicates(values: list[Any]) -> list[str]:
    return sorted({str(value) for value in values if values.count(value) > 1})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ClusterSpec(_Strict):
    name: ClusterName = "igwlab"
    api_port: Int = Field(6550, ge=1024, le=65535)


class LoraAdapter(_Strict):
    name: ModelName
    # Hugging Face repository of the adapter weights; used by vLLM, ignored by the simulator.
    source: str = "SriSanth2345/Qwen-1.5B-Tweet-Generations"
    base_model: str | None = None


class Latency(_Strict):
    time_to_first_token_ms: Int = Field(200, ge=0, le=60_000)
    inter_token_latency_ms: Int = Field(50, ge=0, le=10_000)


class Resources(_Strict):
    cpu: str
    memory: str


class WorkloadSpec(_Strict):
    kind: WorkloadKind = "sim"
    name: DnsLabel
    replicas: Int = Field(3, ge=1, le=32)
    served_model: ModelName
    # The weights vLLM loads; the simulator only answers to served_model.
    base_model: str = "Qwen/Qwen2.5-1.5B-Instruct"
    loras: list[LoraAdapter] = Field(default_factory=list)
    kv_cache: Bool = False
    latency: Latency = Field(default_factory=Latency)
    resources: Resources | None = None

    def served_names(self) -> list[str]:
        return [self.served_model, *(lora.name for lora in self.loras)]

    @model_validator(mode="after")
    def _unique_names(self) -> WorkloadSpec:
        duplicates = _duplicates([lora.name for lora in self.loras])
        if duplicates:
            raise ValueError(f"loras: each LoRA adapter name must be unique; given more than once: {duplicates}")
        if self.served_model in [lora.name for lora in self.loras]:
            raise ValueError(f"loras: {self.served_model!r} is served_model already; a LoRA adapter needs its own name")
        return self

    @property
    def selector_labels(self) -> dict[str, str]:
        """The labels the InferencePool selects this workload's pods by (and its Deployment's selector)."""
        return {"app": self.name}


class Target(_Strict):
    name: ModelName
    weight: Int = Field(ge=1, le=1_000_000)


class ObjectiveSpec(_Strict):
    """An InferenceObjective requests pick by name in the `x-gateway-inference-objective` header, whatever
    model they ask for (GIE v1.x): e.g. `sheddable` with a negative priority, which `igwlab load
    --sheddable` sends and which the EPP sheds first when the pool is saturated."""

    name: DnsLabel
    priority: Int = Field(ge=-1_000_000, le=1_000_000)

    @property
    def object_name(self) -> str:
        return self.name

    @property
    def effective_priority(self) -> int:
        return self.priority


class ModelSpec(_Strict):
    """A model name clients send, and how the pool serves it."""

    name: ModelName
    objective: DnsLabel | None = None
    criticality: Criticality = "Standard"
    priority: Int | None = None
    targets: list[Target] = Field(default_factory=list, max_length=10)

    @model_validator(mode="after")
    def _unique_targets(self) -> ModelSpec:
        duplicates = _duplicates([target.name for target in self.targets])
        if duplicates:
            raise ValueError(
                f"targets: model {self.name!r} names each target once (give it one weight); "
                f"given more than once: {duplicates}"
            )
        return self

    @property
    def object_name(self) -> str:
        return self.objective or slugify(self.name)

    @property
    def effective_priority(self) -> int:
        return self.priority if self.priority is not None else PRIORITY_FOR_CRITICALITY[self.criticality]


class SaturationSpec(_Strict):
    queue_depth: Int = Field(5, ge=1)
    kv_cache_util: Number = Field(0.8, gt=0, le=1)


class SchedulingSpec(_Strict):
    """An explicit EPP scheduling profile: scorer weights, picker and saturation thresholds."""

    scorers: dict[Literal["prefix-cache", "kv-cache-utilization", "queue", "lora-affinity"], Int]
    picker: Literal["max-score", "random", "weighted-random"] = "max-score"
    saturation: SaturationSpec = Field(default_factory=SaturationSpec)

    @model_validator(mode="after")
    def _weights_positive(self) -> SchedulingSpec:
        if not self.scorers:
            raise ValueError("scorers must name at least one scorer")
        for scorer, weight in self.scorers.items():
            if weight < 1:
                raise ValueError(f"scorer {scorer!r} needs a weight of at least 1")
        return self


class EppSpec(_Strict):
    scheduling: SchedulingSpec | None = None
    resources: Resources | None = None


class PoolSpec(_Strict):
    name: PoolName
    target_port: Int = Field(8000, ge=1, le=65535)
    # The CRD's default; the inferencepool chart's own default (v1.4+) is FailOpen, so igwlab always sets it.
    failure_mode: FailureMode = "FailClose"
    epp: EppSpec = Field(default_factory=EppSpec)


class Listener(_Strict):
    name: DnsLabel
    port: Int = Field(ge=1, le=65535)
    # Host port k3d maps to this listener; unprivileged by default so no root is needed.
    host_port: Int | None = Field(None, ge=1024, le=65535)

    @property
    def effective_host_port(self) -> int:
        if self.host_port is not None:
            return self.host_port
        return self.port if self.port >= 1024 else 8000 + self.port


class GatewaySpec(_Strict):
    name: GatewayName = "inference-gateway"
    listeners: list[Listener] = Field(default_factory=lambda: [Listener(name="http", port=80)], min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> GatewaySpec:
        for attribute in ("name", "port", "effective_host_port"):
            values = [getattr(listener, attribute) for listener in self.listeners]
            duplicates = sorted({str(v) for v in values if values.count(v) > 1})
            if duplicates:
                raise ValueError(f"listener {attribute.replace('effective_', '')}s must be unique: {duplicates}")
        return self


class RouteSpec(_Strict):
    name: DnsLabel = "llm-route"
    listener: DnsLabel | None = None
    timeout: Duration | None = None


class ExtraPool(_Strict):
    """Another model-server pool with its own endpoint picker behind the same Gateway."""

    workload: WorkloadSpec
    pool: PoolSpec
    models: list[ModelSpec] = Field(min_length=1)


@dataclass(frozen=True)
class Backend:
    """One pool of a lab: its model servers, InferencePool + EPP and model objects.

    The lab's own pool has suffix "" (its steps are `workload`, `pool`, `models`); each extra pool
    adds `-<pool name>` to those step ids.
    """

    suffix: str
    workload: WorkloadSpec
    pool: PoolSpec
    models: list[ModelSpec]

    def step(self, base: str) -> str:
        return base + self.suffix


class Lab(_Strict):
    name: DnsLabel
    title: str
    description: str = ""
    provider: Annotated[str, StringConstraints(min_length=1)]
    gie_version: Version | None = None
    namespace: Namespace = "igwlab"
    cluster: ClusterSpec = Field(default_factory=ClusterSpec)
    workload: WorkloadSpec
    pool: PoolSpec
    models: list[ModelSpec] = Field(min_length=1)
    # More InferenceObjectives for the lab's pool, picked by header (e.g. a sheddable one for `load`).
    objectives: list[ObjectiveSpec] = Field(default_factory=list)
    gateway: GatewaySpec = Field(default_factory=GatewaySpec)
    route: RouteSpec = Field(default_factory=RouteSpec)
    checks: list[CheckName] = Field(default_factory=list)
    addons: list[AddonName] = Field(default_factory=list)
    extra_pools: list[ExtraPool] = Field(default_factory=list)

    def backends(self) -> list[Backend]:
        first = Backend("", self.workload, self.pool, self.models)
        return [
            first,
            *(Backend(f"-{extra.pool.name}", extra.workload, extra.pool, extra.models) for extra in self.extra_pools),
        ]

    @model_validator(mode="after")
    def _cross_references(self) -> Lab:
        listener_names = [listener.name for listener in self.gateway.listeners]
        if self.route.listener is not None and self.route.listener not in listener_names:
            raise ValueError(
                f"route.listener {self.route.listener!r} is not a gateway listener ({', '.join(listener_names)})"
            )
        for backend in self.backends():
            served = backend.workload.served_names()
            for model in backend.models:
                for target in model.targets:
                    if target.name not in served:
                        raise ValueError(
                            f"model {model.name!r} targets {target.name!r}, which pool {backend.pool.name}'s "
                            f"workload does not serve (served: {', '.join(served)})"
                        )
        all_models = [model for backend in self.backends() for model in backend.models]
        names = [model.name for model in all_models]
        objects = [model.object_name for model in all_models] + [o.name for o in self.objectives]
        pools = [backend.pool.name for backend in self.backends()]
        workloads = [backend.workload.name for backend in self.backends()]
        for label, values in (
            ("model names", names),
            ("model object names", objects),
            ("pool names", pools),
            ("workload names", workloads),
            ("addons", list(self.addons)),
            ("checks", list(self.checks)),
        ):
            if len(set(values)) != len(values):
                raise ValueError(f"{label} must be unique: {values}")
        problems = host_port_clashes(self) + name_clashes(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def route_listener(self) -> Listener:
        wanted = self.route.listener or self.gateway.listeners[0].name
        return next(listener for listener in self.gateway.listeners if listener.name == wanted)


def host_port_clashes(lab: Lab) -> list[str]:
    """Host ports k3d would map twice: two listeners on one host port, or a listener on the API port.

    Docker refuses the second mapping of a host port, so such a lab fails only when the cluster is
    created; this names the fields instead, when the lab is loaded.
    """
    problems: list[str] = []
    seen: dict[int, str] = {lab.cluster.api_port: "cluster.api_port (the Kubernetes API)"}
    for index, listener in enumerate(lab.gateway.listeners):
        field = f"gateway.listeners.{index}"
        if listener.host_port is None:
            field += f" (port {listener.port}, mapped to host port {listener.effective_host_port} by default)"
        else:
            field += ".host_port"
        port = listener.effective_host_port
        if port in seen:
            problems.append(f"{field} takes host port {port}, which {seen[port]} already uses")
        else:
            seen[port] = field
    return problems


def derived_names(lab: Lab) -> list[tuple[str, str, str]]:
    """(kind, name, lab field) of the objects in the lab's namespace that its fields name.

    Each pool's endpoint picker is the Deployment and Service `POOL-epp` (pods labelled
    `app: POOL-epp`); its model servers the Deployment `WORKLOAD` (pods labelled `app: WORKLOAD`).
    """
    names: list[tuple[str, str, str]] = []
    for index, backend in enumerate(lab.backends()):
        prefix = "" if index == 0 else f"extra_pools.{index - 1}."
        epp = backend.pool.name + EPP_SUFFIX
        names.append(("Deployment", backend.workload.name, f"{prefix}workload.name"))
        names.append(("Deployment", epp, f"{prefix}pool.name (its endpoint picker {epp})"))
        names.append(("Service", epp, f"{prefix}pool.name (its endpoint picker {epp})"))
    return names


def name_clashes(lab: Lab, more: list[tuple[str, str, str]] | None = None) -> list[str]:
    """Objects that would be created twice in the lab's namespace, each named with the fields behind it.

    A workload named like a pool's endpoint picker would fight it for the Deployment, and the pool
    would select the picker's pods. `more` adds names from elsewhere (the provider's proxy, add-ons).
    """
    owners: dict[tuple[str, str], str] = {}
    problems: list[str] = []
    for kind, name, owner in [*derived_names(lab), *(more or [])]:
        first = owners.setdefault((kind, name), owner)
        if first != owner:
            problems.append(f"{owner} and {first} both make {kind} {lab.namespace}/{name}")
    return problems


def with_cluster_name(lab: Lab, name: str, flag: str = "--cluster") -> Lab:
    """`lab` on the k3d cluster `name`, checked like the lab file's `cluster.name`."""
    try:
        cluster = ClusterSpec.model_validate({**lab.cluster.model_dump(), "name": name})
    except ValidationError as exc:
        problem = _describe(exc.errors()[0])[0].split(": ", 1)[-1]
        raise UsageError(
            f"{flag} {name!r}: {problem}", fix="use a name like my-lab (lowercase letters, digits, '-')"
        ) from None
    return lab.model_copy(update={"cluster": cluster})


def slugify(name: str) -> str:
    """Turn a model name such as `Qwen/Qwen2.5-1.5B` into a Kubernetes object name."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:63].rstrip("-") or "model"


# -- loading ---------------------------------------------------------------------------------


def presets_dir() -> Path:
    return data_dir("labs")


def preset_names() -> list[str]:
    return sorted(path.stem for path in presets_dir().glob("*.yaml"))


def load_presets() -> list[Lab]:
    return [load_lab_file(path) for path in sorted(presets_dir().glob("*.yaml"))]


MAX_LAB_FILE_BYTES = 1_000_000  # the presets are about 2 KB


def load_lab(reference: str, what: str = "--lab") -> Lab:
    """Load a lab by preset name or by the path of a lab file; `what` names where the reference came from."""
    names = preset_names()
    presets = f"presets: {', '.join(names)}; `igwlab labs` lists them"
    if not reference.strip():
        raise LabNotFoundError(f"{what} is empty", fix=presets)
    if reference in names:
        return load_lab_file(presets_dir() / f"{reference}.yaml")
    shown = reference if len(reference) <= 200 else reference[:200] + "..."
    try:
        path = Path(reference).expanduser()
    except RuntimeError:  # `~nosuchuser/lab.yaml`
        path = Path(reference)
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError) as error:  # missing, a name too long, a symlink loop, a NUL byte
        why = f"{what} takes a preset name or the path of a lab file, and neither exists"
        if isinstance(error, OSError) and error.errno not in (errno.ENOENT, errno.ENOTDIR):
            why = f"{what} takes a preset name or the path of a lab file; this path fails: {error.strerror}"
        raise LabNotFoundError(f"no lab named {shown!r}", why=why, fix=presets) from None
    if stat.S_ISDIR(mode):
        raise LabNotFoundError(
            f"{what} {shown!r} is a directory",
            why=f"{what} takes a preset name or the path of one lab file",
            fix=f"name a lab file, e.g. {path / 'my-lab.yaml'}; {presets}",
        )
    if not stat.S_ISREG(mode):
        raise LabNotFoundError(
            f"{what} {shown!r} is not a regular file", why="lab files are read whole, not streamed", fix=presets
        )
    return load_lab_file(path)


def load_lab_file(path: Path) -> Lab:
    shown = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_LAB_FILE_BYTES:
            raise LabFileError(
                shown, [f"the file is {size:,} bytes; a lab file is a few KB (at most {MAX_LAB_FILE_BYTES:,})"]
            )
        data = path.read_bytes()
    except OSError as exc:
        raise LabFileError(shown, [f"cannot read the file: {exc.strerror or exc}"]) from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LabFileError(
            shown,
            [
                f"not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} "
                "(a binary file, or saved in another encoding?)"
            ],
        ) from None
    try:
        raw: Any = yamlio.load(text)
    except yamlio.YAMLError as exc:
        raise LabFileError(shown, [f"not valid YAML: {_yaml_problem(exc)}"]) from exc
    except RecursionError:
        raise LabFileError(shown, ["not a lab: its YAML is nested too deeply to read"]) from None
    if not isinstance(raw, dict):
        raise LabFileError(shown, ["the file must hold a mapping of lab fields (name, provider, workload, ...)"])
    try:
        return Lab.model_validate(raw)
    except ValidationError as exc:
        raise LabFileError(shown, [line for error in exc.errors() for line in _describe(error)]) from exc


def _yaml_problem(exc: yamlio.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return str(problem)


_TYPE_MEANING = {
    "int_type": "a whole number (write it without quotes; true/false are not numbers)",
    "float_type": "a number (write it without quotes; true/false are not numbers)",
    "bool_type": "true or false",
}


def _describe(error: Any) -> list[str]:
    """One line per problem: `field.path: what is wrong`."""
    location = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if not location:  # cross-field checks name their fields themselves
        return message.splitlines()
    if error["type"] == "extra_forbidden":
        message = "unknown field (check its spelling and indentation)"
    elif error["type"] == "missing":
        message = "required field is missing"
    elif error["type"] == "string_pattern_mismatch":
        pattern = error["ctx"]["pattern"]
        message = f"{error['input']!r} {_PATTERN_MEANING.get(pattern, f'does not match {pattern}')}"
    elif error["type"] == "string_too_short" and error["input"] == "":
        message = "is empty"
    elif error["type"] == "string_too_long":
        message = f"is {len(error['input'])} characters; at most {error['ctx']['max_length']}"
    elif error["type"] in _TYPE_MEANING and isinstance(error["input"], bool | int | float | str):
        message = f"{json.dumps(error['input'])} is not {_TYPE_MEANING[error['type']]}"
    elif error["type"] == "literal_error":
        message = f"{error['input']!r} is not allowed; expected {error['ctx']['expected']}"
    return [f"{location}: {message}"]
