"""`igwlab plan`: the steps `up` would run, with no side effects."""

from __future__ import annotations

from igwlab.cli.options import (
    GieOption,
    JsonOption,
    LabOption,
    MirrorOption,
    ProviderOption,
    WithOption,
    WorkloadOption,
    examples,
    lab_selection,
)
from igwlab.cli.output import handle_errors, print_json

PLAN_EXAMPLES = examples(
    "igwlab plan --provider kgateway",
    "igwlab plan --lab multi-model --with observability",
    "igwlab plan --lab ./my-lab.yaml --json",
)


@handle_errors
def plan(
    lab: LabOption = None,
    provider: ProviderOption = None,
    workload: WorkloadOption = None,
    gie_version: GieOption = None,
    with_addons: WithOption = None,
    mirror: MirrorOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show the steps `up` would run; touches nothing.

    The ordered steps: cluster, CRDs (with URLs and versions), Helm releases (chart, version,
    values file), objects to apply, what each step waits for, and which steps run concurrently
    (same wave). Pick the lab as for `up`: --lab, or --provider with --workload/--gie-version.
    Every CRD bundle, chart and image says where it will come from: its URL or chart reference, or
    with --mirror the mirror's file (MISSING when the mirror lacks it).
    """
    from igwlab.mirror import resolve_sources
    from igwlab.plan import build_plan
    from igwlab.render import render_lab
    from igwlab.selection import resolve_lab

    selection = lab_selection(lab, provider, workload, gie_version, with_addons)
    rendered = render_lab(resolve_lab(selection))
    sources = resolve_sources(rendered, mirror, selection=selection, import_images=True)
    the_plan = build_plan(rendered, sources=sources)
    if json_output:
        print_json(the_plan.as_dict())
        return
    from igwlab.cli.render_text import print_plan

    print_plan(the_plan)
