"""jinja2 rendering of manifests/ (StrictUndefined) and YAML output.

Values reach YAML only through the `q` filter (a JSON dump, which is valid YAML), never by
pasting text, so a missing value is an error rather than an empty string.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jinja2
import yaml

from igwlab import yamlio
from igwlab.errors import CatalogError
from igwlab.render.objects import KubeObject
from igwlab.resources import data_dir


def _quote(value: Any) -> str:
    """Any value as a YAML scalar or flow collection: JSON is a subset of YAML."""
    return json.dumps(value, sort_keys=False)


def _combine(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    return {**left, **right}


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_dir("manifests"))),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["q"] = _quote
    env.filters["combine"] = _combine
    return env


def render_template_text(template: str, context: dict[str, Any]) -> str:
    try:
        return _environment().get_template(template).render(context)
    except jinja2.TemplateError as exc:
        raise CatalogError(
            f"template {template} failed to render: {exc}",
            why="a template and the lab model disagree; this is a bug in igwlab",
            fix="report the message above with the lab you used",
        ) from exc


def render_objects(step: str, template: str, context: dict[str, Any]) -> list[KubeObject]:
    text = render_template_text(template, context)
    try:
        documents = [doc for doc in yamlio.load_all(text) if doc]
    except yamlio.YAMLError as exc:
        raise CatalogError(f"template {template} produced invalid YAML: {exc}") from exc
    return [KubeObject(step=step, template=template, manifest=doc) for doc in documents]


class _Dumper(yamlio.SafeDumper):
    """Block-style YAML; multi-line strings (such as EPP configs) as literal blocks."""


def _str_representer(dumper: yamlio.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def to_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


def to_multi_document_yaml(documents: list[Any]) -> str:
    return "".join(f"---\n{to_yaml(doc)}" for doc in documents)
