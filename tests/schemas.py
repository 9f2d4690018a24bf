"""Validate rendered objects the way an API server would, as far as can be done without one.

Custom resources: against the verbatim upstream CRD schemas in ../shared/upstream (OpenAPI v3
structural schemas, checked with jsonschema), including the CRDs' CEL rules
(x-kubernetes-validations, evaluated with cel-python; transition rules that need oldSelf are
left out since there is no old object). Core kinds: with kubernetes-validate.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.33"
CORE_GROUPS = {"", "apps", "rbac.authorization.k8s.io", "policy", "batch"}


@dataclass
class SchemaReport:
    errors: list[str] = field(default_factory=list)
    cel_rules_checked: int = 0


@cache
def _load_crds(directory: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(group, kind) -> CRD, for every CRD file in a directory."""
    crds: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                spec = doc["spec"]
                crds[(spec["group"], spec["names"]["kind"])] = doc
    return crds


def crd_directories(upstream: Path, gie_version: str, gateway_api_version: str, channel: str) -> list[Path]:
    """Where the schemas for one stack live; experimental falls back to standard per file."""
    base = upstream / "gateway-api" / gateway_api_version
    directories = [base / channel] if channel == "experimental" and (base / channel).is_dir() else []
    directories += [base / "standard", upstream / "gie" / gie_version]
    missing = [d for d in directories[-2:] if not d.is_dir()]
    if missing:
        raise FileNotFoundError(f"no upstream CRDs at {', '.join(map(str, missing))}")
    return directories


def find_crd(directories: list[Path], group: str, kind: str) -> dict[str, Any] | None:
    for directory in directories:
        crd = _load_crds(directory).get((group, kind))
        if crd is not None:
            return crd
    return None


def _to_jsonschema(schema: Any) -> Any:
    """OpenAPI v3 (Kubernetes structural schema) -> JSON Schema: `nullable` widens the type."""
    if isinstance(schema, dict):
        converted = {k: _to_jsonschema(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
        if schema.get("nullable") and "type" in converted:
            converted["type"] = [converted["type"], "null"]
        if schema.get("x-kubernetes-int-or-string"):
            converted.pop("type", None)
            converted["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        return converted
    if isinstance(schema, list):
        return [_to_jsonschema(item) for item in schema]
    return schema


_CEL = celpy.Environment()


@cache
def _cel_program(rule: str) -> Any:
    return _CEL.program(_CEL.compile(rule))


def _check_cel(schema: dict[str, Any], instance: Any, path: str, report: SchemaReport) -> None:
    for validation in schema.get("x-kubernetes-validations", []):
        rule = validation["rule"]
        if "oldSelf" in rule:
            continue
        report.cel_rules_checked += 1
        try:
            result = _cel_program(rule).evaluate({"self": celpy.json_to_cel(_escape_keys(instance))})
        except celpy.CELEvalError as error:
            result = error
        if not (isinstance(result, celpy.celtypes.BoolType) and bool(result)):
            report.errors.append(f"{path}: CEL rule failed: {validation.get('message', rule)} ({rule})")
    if isinstance(instance, dict):
        for key, value in instance.items():
            child = schema.get("properties", {}).get(key)
            if child is None and isinstance(schema.get("additionalProperties"), dict):
                child = schema["additionalProperties"]
            if child is not None:
                _check_cel(child, value, f"{path}.{key}", report)
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(instance):
            _check_cel(schema["items"], item, f"{path}[{index}]", report)


# Kubernetes CEL escapes property names that are CEL keywords (`p.__namespace__`).
_CEL_RESERVED = {
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
}


def _escape_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {(f"__{k}__" if k in _CEL_RESERVED else k): _escape_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape_keys(item) for item in value]
    return value


def validate_custom_resource(manifest: dict[str, Any], crd: dict[str, Any]) -> SchemaReport:
    report = SchemaReport()
    group_version = manifest["apiVersion"]
    version = group_version.split("/")[-1]
    served = [v for v in crd["spec"]["versions"] if v["name"] == version and v.get("served", True)]
    if not served:
        report.errors.append(f"{group_version} {manifest['kind']} is not served by this CRD")
        return report
    schema = served[0]["schema"]["openAPIV3Schema"]
    body = {k: v for k, v in manifest.items() if k not in ("apiVersion", "kind", "metadata")}
    body_schema = {
        **schema,
        "properties": {
            k: v for k, v in schema.get("properties", {}).items() if k not in ("apiVersion", "kind", "metadata")
        },
    }
    body_schema.pop("required", None)
    # Structural schemas prune unknown fields; we want to hear about them instead.
    strict = _forbid_unknown(_to_jsonschema(body_schema))
    for error in jsonschema.Draft7Validator(strict).iter_errors(body):
        location = ".".join(str(p) for p in error.absolute_path) or "(root)"
        report.errors.append(f"{location}: {error.message}")
    # The API server applies schema defaults before it evaluates CEL rules.
    _check_cel(schema, _with_defaults(schema, copy.deepcopy(manifest)), "", report)
    return report


def _with_defaults(schema: dict[str, Any], instance: Any) -> Any:
    if isinstance(instance, dict):
        for key, child in schema.get("properties", {}).items():
            if key not in instance and "default" in child:
                instance[key] = copy.deepcopy(child["default"])
            if key in instance:
                instance[key] = _with_defaults(child, instance[key])
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        return [_with_defaults(schema["items"], item) for item in instance]
    return instance


def _forbid_unknown(schema: Any) -> Any:
    if isinstance(schema, dict):
        converted = {k: _forbid_unknown(v) for k, v in schema.items()}
        if "properties" in converted and "additionalProperties" not in converted:
            converted["additionalProperties"] = False
        return converted
    if isinstance(schema, list):
        return [_forbid_unknown(item) for item in schema]
    return schema


def validate_core(manifest: dict[str, Any]) -> list[str]:
    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [str(error).splitlines()[0]]
    return []


def is_core(manifest: dict[str, Any]) -> bool:
    api_version = manifest["apiVersion"]
    group = api_version.split("/")[0] if "/" in api_version else ""
    return group in CORE_GROUPS
