"""`igwlab render`: every object and Helm values file `up` would apply, as YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from igwlab.cli.options import (
    GieOption,
    JsonOption,
    LabOption,
    ProviderOption,
    WithOption,
    WorkloadOption,
    examples,
    lab_selection,
)
from igwlab.cli.output import handle_errors, print_json, stderr
from igwlab.wording import counted

OutOption = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="Write manifests/NN-step/*.yaml, helm/RELEASE.values.yaml and helm-releases.yaml here "
        "instead of printing the objects to stdout. A directory an earlier render wrote is refreshed (the "
        "files it wrote replaced, yours kept; one of yours, or an edited one, where this render writes is "
        "refused); any other non-empty one is refused.",
        show_default=False,
        file_okay=False,
        metavar="DIR",
    ),
]
RENDER_EXAMPLES = examples(
    "igwlab render --lab kgateway-fake-llm",
    "igwlab render --provider istio --out out/",
    "igwlab render --lab kv-cache-aware --json",
)


@handle_errors
def render(
    lab: LabOption = None,
    provider: ProviderOption = None,
    workload: WorkloadOption = None,
    gie_version: GieOption = None,
    with_addons: WithOption = None,
    out: OutOption = None,
    json_output: JsonOption = False,
) -> None:
    """Print or write every object `up` would apply.

    Without --out: the lab's Kubernetes objects as multi-document YAML on stdout. With --out DIR:
    DIR/manifests/NN-step/*.yaml (apply in order with `kubectl apply -R -f DIR/manifests`),
    DIR/helm/RELEASE.values.yaml for every Helm release, and DIR/helm-releases.yaml listing
    release, chart, version, namespace and values file.
    """
    from igwlab.export import rendered_stream, write_rendered
    from igwlab.render import render_lab
    from igwlab.selection import resolve_lab

    rendered = render_lab(resolve_lab(lab_selection(lab, provider, workload, gie_version, with_addons)))
    if out is None and json_output:
        print_json(
            {
                "lab": rendered.resolved.lab.name,
                "objects": [obj.manifest for obj in rendered.objects],
                "releases": [{**release.summary(), "values": release.values} for release in rendered.releases],
                "crd_bundles": [{"step": b.step, "version": b.version, "url": b.url} for b in rendered.crd_bundles],
            }
        )
        return
    if out is None:
        print(rendered_stream(rendered), end="")
        if rendered.releases:
            names = ", ".join(release.name for release in rendered.releases)
            stderr().print(f"[dim]Helm releases not shown ({names}): use --out DIR for their values files[/]")
        return
    from igwlab.plan import build_plan

    result = write_rendered(rendered, build_plan(rendered), out)
    if json_output:
        print_json(
            {
                "lab": rendered.resolved.lab.name,
                "out_dir": str(result.out_dir),
                "manifest_files": [str(path) for path in result.manifest_files],
                "values_files": [str(path) for path in result.values_files],
                "releases_file": str(result.releases_file),
            }
        )
        return
    stderr().print(
        f"wrote {counted(len(result.manifest_files), 'object')}, "
        f"{counted(len(result.values_files), 'Helm values file')} and "
        f"{result.releases_file.name} to {result.out_dir}"
    )
