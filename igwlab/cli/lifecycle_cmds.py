"""`igwlab up`, `status`, `teardown`, `doctor` and `diagnose`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from igwlab.cli.options import (
    ContextOption,
    GieOption,
    JsonOption,
    LabOption,
    MirrorOption,
    ProviderOption,
    WithOption,
    WorkloadOption,
    examples,
    finite,
    lab_selection,
    text,
)
from igwlab.cli.output import Column, handle_errors, print_json, print_table, stderr, stdout
from igwlab.wording import counted

if TYPE_CHECKING:
    from igwlab.doctor import DoctorReport

UP_EXAMPLES = examples(
    "igwlab up --provider kgateway",
    "igwlab up --lab kv-cache-aware --with observability",
    "igwlab up --context my-cluster --lab agentgateway-vllm-cpu --timeout 1800",
    "igwlab up --dry-run --json",
)
STATUS_EXAMPLES = examples("igwlab status", "igwlab status --json")
TEARDOWN_EXAMPLES = examples("igwlab teardown --yes", "igwlab teardown --yes --crds")
DOCTOR_EXAMPLES = examples("igwlab doctor", "igwlab doctor --workload vllm-cpu", "igwlab doctor --context my-cluster")
DIAGNOSE_EXAMPLES = examples("igwlab diagnose", "igwlab diagnose --out /tmp/lab.tar.gz")


@handle_errors
def up(
    lab: LabOption = None,
    provider: ProviderOption = None,
    workload: WorkloadOption = None,
    gie_version: GieOption = None,
    with_addons: WithOption = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            help="k3d cluster name, at most 32 characters (default: the lab's, igwlab).",
            metavar="NAME",
            show_default=False,
            callback=text,
        ),
    ] = None,
    context: ContextOption = None,
    timeout: Annotated[
        float,
        typer.Option(
            help="Seconds each step may wait for readiness (1 to 86400).",
            min=1,
            max=86400,
            metavar="SECONDS",
            callback=finite,
        ),
    ] = 600,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Go through every step without changing anything: print what each would do."),
    ] = False,
    set_context: Annotated[
        bool,
        typer.Option(
            "--set-context",
            help="Also merge the k3d cluster into your kubeconfig and switch to it (off: your context is left alone).",
        ),
    ] = False,
    mirror: MirrorOption = None,
    json_output: JsonOption = False,
) -> None:
    """Bring a lab up: cluster, CRDs, gateway, model servers, pool and EPP, models, route.

    Checks prerequisites first (exit 3, nothing created, when Docker, k3d or helm is missing),
    then runs the steps of `igwlab plan`, independent ones at once, each waited until really
    ready, and finishes with a completion sent through the gateway. Re-running continues where a
    failed or interrupted run stopped, and changes nothing on a finished lab. On k3d the URL is a
    localhost port; with --context it is the Gateway's address, or a port-forward igwlab manages
    when this machine cannot reach that address. Every run leaves a record in the
    state directory; `igwlab diagnose` bundles it with cluster events and logs. With --mirror
    (or IGWLAB_MIRROR), CRDs and charts come only from a directory `igwlab mirror save` wrote.
    """
    from igwlab.lifecycle import UpOptions
    from igwlab.lifecycle import up as run_up

    options = UpOptions(
        selection=lab_selection(lab, provider, workload, gie_version, with_addons),
        cluster=cluster,
        context=context,
        timeout_s=timeout,
        dry_run=dry_run,
        set_context=set_context,
        mirror=mirror,
    )
    from igwlab.cli.progress import Progress, print_summary
    from igwlab.lifecycle import prepare

    prepared = prepare(options.selection, cluster, context, mirror)
    if dry_run:
        result = run_up(options, prepared=prepared)
    else:
        with Progress(prepared[2]) as progress:
            result = run_up(options, on_event=progress, prepared=prepared)
    # What up changed or found that the user should know though it went on (CRDs upgraded, a newer
    # Kubernetes than tested): the "note:" lines, also in --json's data.
    notes = [
        {"check": finding.name, "detail": finding.detail}
        for finding in (result.doctor.findings if result.doctor is not None else [])
        if finding.status == "warn"
    ]
    data = {
        "lab": result.plan.lab,
        "url": result.url,
        "dry_run": dry_run,
        "record": str(result.record) if result.record else None,
        "duration_s": round(result.duration_s, 2),
        "steps": [vars(result.run.outcomes[s.id]) for s in result.plan.steps],
        "notes": notes,
    }
    if dry_run and not json_output:
        from igwlab.cli.render_text import print_plan

        print_plan(result.plan)
        stdout().print("dry run: every step was walked through and nothing was changed.")
    elif not json_output:
        print_summary(result.plan, result.run)
    if notes:  # on stderr with --json too: messages never mix with the envelope
        from rich.text import Text

        for note in notes:
            stderr().print(Text(f"note: {note['check']}: {note['detail']}"))
    if result.run.interrupted:
        from igwlab.errors import Interrupted

        raise Interrupted(
            "interrupted: steps still running were stopped",
            fix="run `igwlab up` again to continue where it stopped",
            data=data,
        )
    if result.run.error is not None:
        error = result.run.error
        error.data = data
        stderr().print(f"run record: {result.record}  ·  collect everything: igwlab diagnose")
        raise error
    if dry_run and result.doctor is not None and not result.doctor.ok:
        from igwlab.lifecycle import prerequisites_error

        error = prerequisites_error(result.doctor, dry_run=True)
        error.data = data
        raise error
    if json_output:
        print_json(data)
    elif result.url:
        stdout().print(f"[bold green]lab {result.plan.lab} is up[/] in {result.duration_s:.0f}s: {result.url}")
        stdout().print(
            f"next: igwlab verify   ·   curl {result.url}/v1/completions -H 'Content-Type: "
            f'application/json\' -d \'{{"model": "...", "prompt": "hi"}}\''
        )


@handle_errors
def status(json_output: JsonOption = False) -> None:
    """Show the lab that is up: its objects and their conditions, the Helm releases, the URL."""
    from igwlab.lifecycle import status as lab_status

    report = lab_status()
    if json_output:
        print_json(report)
        return
    from rich.text import Text

    if report["status"] == "tearing-down":
        stdout().print(
            Text(f"lab {report['lab']}: a teardown began and did not finish; `igwlab teardown` removes the rest")
        )
    else:
        stdout().print(Text(f"lab {report['lab']} ({report['status']}) at {report['url'] or 'no URL yet'}"))
    print_table(
        [Column("object or gate"), Column("ok"), Column("conditions", "note")],
        [[row["ref"], "yes" if row["exists"] else "NO", ", ".join(row["conditions"])] for row in report["objects"]],
    )
    for release in report["releases"]:
        state = "deployed" if release["deployed"] else "MISSING"
        stdout().print(Text(f"helm {release['namespace']}/{release['release']} {release['version']}: {state}"))


@handle_errors
def teardown(
    crds: Annotated[
        bool,
        typer.Option(
            "--crds",
            help="With --context: also delete the Gateway API and "
            "inference CRDs (shared with anything else on the cluster), and the admission "
            "policy Gateway API v1.5+ installs with them.",
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    timeout: Annotated[
        float,
        typer.Option(
            help="Seconds the deleted namespaces may take to finish terminating (1 to 86400); past it, exit 4 "
            "naming what holds them.",
            min=1,
            max=86400,
            metavar="SECONDS",
            callback=finite,
        ),
    ] = 180,
    json_output: JsonOption = False,
) -> None:
    """Remove the lab: delete its k3d cluster, or on an existing cluster (--context at `up`) remove
    only what the lab created, in reverse order, and wait until its namespaces are gone; CRDs stay
    unless --crds. What `up` found already there (a namespace, a Helm release, CRDs, an object of the
    same name) stays, each with a line saying so."""
    from igwlab.lifecycle import TeardownOptions, current_lab
    from igwlab.lifecycle import teardown as run_teardown
    from igwlab.state import current_lab_file, read_current_lab

    if read_current_lab() is None:  # a damaged record is an error (exit 2), never "nothing is up"
        # Nothing to remove is what teardown is for: CI clean-up steps rely on exit 0 here.
        note = f"nothing to tear down: no lab is up ({current_lab_file()} does not exist)"
        stderr().print(note)
        if json_output:
            print_json({"lab": None, "removed": [], "note": note})
        return
    current = current_lab()
    target = (
        f"the k3d cluster {current.resolved.lab.cluster.name}"
        if current.context is None
        else f"lab {current.resolved.lab.name}'s objects and releases in context {current.context}"
    )
    if not yes:
        if not sys.stdin.isatty():
            from igwlab.errors import UsageError

            raise UsageError(
                f"teardown would delete {target}", why="it asks first, and no terminal can answer", fix="pass --yes"
            )
        typer.confirm(f"Delete {target}?", abort=True)
    result = run_teardown(TeardownOptions(crds=crds, timeout_s=timeout), on_event=lambda line: stderr().print(line))
    if json_output:
        print_json({"lab": current.resolved.lab.name, "removed": result.removed, "kept": result.kept, "note": None})
        return
    line = f"removed {counted(len(result.removed), 'thing')}; nothing of lab {current.resolved.lab.name} is left"
    if result.kept:
        line += f"; kept {counted(len(result.kept), 'thing')} that were there before `up`"
    stdout().print(line)


@handle_errors
def doctor(
    lab: LabOption = None,
    provider: ProviderOption = None,
    workload: WorkloadOption = None,
    gie_version: GieOption = None,
    with_addons: WithOption = None,
    context: ContextOption = None,
    json_output: JsonOption = False,
) -> None:
    """Check this machine can run the lab: Docker, k3d, helm, kubectl and their versions, CPUs and
    memory for the workload, CPU architecture, free host ports, an existing cluster. Exit 3 when
    something is missing."""
    from igwlab.lifecycle import check_prerequisites
    from igwlab.selection import resolve_lab
    from igwlab.tools.proc import ToolRunner

    resolved = resolve_lab(lab_selection(lab, provider, workload, gie_version, with_addons))
    report = check_prerequisites(resolved, ToolRunner(), context)
    if not report.ok:
        from igwlab.lifecycle import prerequisites_error

        error = prerequisites_error(report)
        error.data = report.as_dict()
        if not json_output:
            _print_doctor(report)
        raise error
    if json_output:
        print_json(report.as_dict())
    else:
        _print_doctor(report)


def _print_doctor(report: DoctorReport) -> None:
    from rich.text import Text

    style = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}
    print_table(
        [Column("check"), Column("result"), Column("detail", "note")],
        [[f.name, Text(f.status, style=style[f.status]), f.detail] for f in report.findings],
        title=f"igwlab doctor: lab {report.lab} ({report.mode})",
    )
    # Fixes hold commands and URLs: whole lines below the table, never folded inside a cell.
    for finding in report.findings:
        if finding.fix and finding.status in ("fail", "warn"):
            stdout().print(Text.assemble((f"fix {finding.name}: ", style[finding.status]), finding.fix), soft_wrap=True)


@handle_errors
def diagnose(
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            "-o",
            help="Archive to write, or a folder to write igwlab-diagnose-TIMESTAMP.tar.gz into (default: that "
            "name in the current folder). Missing folders are made; an archive of that name is replaced once the "
            "new one is complete, and an interrupted diagnose leaves nothing behind.",
            metavar="FILE|DIR",
            callback=text,
            show_default=False,
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Bundle what explains a failure into a tar.gz: the last run record (plan, events, every tool
    command and its output), the events of the lab's namespaces, the lab's objects and its pods as
    the cluster has them, pod logs (a restarted container's last run too) and Helm status."""
    from igwlab.lifecycle import diagnose as run_diagnose

    path = run_diagnose(Path(out) if out is not None else None, folder=out is not None and out.endswith("/"))
    if json_output:
        print_json({"path": str(path)})
        return
    stdout().print(f"wrote {path}")
