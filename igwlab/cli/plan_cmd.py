"""`igwlab plan`: the steps `up` would run, with no side effects."""

from __future__ import annotations

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
    json_output: JsonOption = False,
) -> None:
    """Show the steps `up` would run; touches nothing.

    The ordered steps: cluster, CRDs (with URLs and versions), Helm releases (chart, version,
    values file), objects to apply, what each step waits for, and which steps run concurrently
    (same wave). Pick the lab as for `up`: --lab, or --provider with --workload/--gie-version.
    """
    from igwlab.plan import build_plan
    from igwlab.render import render_lab
    from igwlab.selection import resolve_lab

    the_plan = build_plan(render_lab(resolve_lab(lab_selection(lab, provider, workload, gie_version, with_addons))))
    if json_output:
        print_json(the_plan.as_dict())
        return
    from igwlab.cli.render_text import print_plan

    print_plan(the_plan)
