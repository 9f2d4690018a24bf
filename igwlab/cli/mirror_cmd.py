"""`igwlab mirror save` and `igwlab mirror check`: offline mirrors of what `up` fetches."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
from igwlab.cli.output import Column, handle_errors, print_json, print_table, stderr, stdout

if TYPE_CHECKING:
    from rich.progress import TaskID

    from igwlab.mirror import CheckReport, SaveEvent

app = typer.Typer(
    help=(
        "Offline mirrors: `igwlab mirror save DIR` fetches everything `up` would fetch for a lab (CRD bundles, "
        "Helm charts and, with --images, container images) into DIR; `igwlab up --mirror DIR` then uses only "
        "those files, each verified by sha256. Several labs can share one DIR."
    ),
    epilog=examples("igwlab mirror save ./mirror --lab kgateway-fake-llm", "igwlab mirror check ./mirror"),
    no_args_is_help=True,
)

SaveDir = Annotated[
    Path,
    typer.Argument(
        help="The mirror directory (created if needed); its index is DIR/mirror.yaml.",
        metavar="DIR",
        envvar="IGWLAB_MIRROR",
        show_default=False,
        file_okay=False,
    ),
]
CheckDir = Annotated[
    Path,
    typer.Argument(
        help="The mirror directory `igwlab mirror save` wrote; its index is DIR/mirror.yaml.",
        metavar="DIR",
        envvar="IGWLAB_MIRROR",
        show_default=False,
        file_okay=False,
    ),
]
ImagesOption = Annotated[
    bool,
    typer.Option(
        "--images",
        help="Also container images: every image the lab's objects and its charts' templates name "
        "(`docker pull` + `docker save`; needs Docker). `up` imports them into k3d so no pod pulls.",
    ),
]


@app.command(
    "save",
    epilog=examples(
        "igwlab mirror save ./mirror --provider kgateway",
        "igwlab mirror save ./mirror --lab kv-cache-aware --images --json",
    ),
)
@handle_errors
def save(
    directory: SaveDir,
    lab: LabOption = None,
    provider: ProviderOption = None,
    workload: WorkloadOption = None,
    gie_version: GieOption = None,
    with_addons: WithOption = None,
    images: ImagesOption = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Fetch every item again, even when a verified copy is there.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Fetch everything `up` of a lab would fetch into DIR, and index it in DIR/mirror.yaml.

    The CRD bundles from their release URLs, every Helm chart of the lab (`helm pull`: the provider's
    charts, each pool's inferencepool chart, body-based routing, add-ons from --with), and with
    --images every container image. Each index entry records what it is, its source, version, file
    and sha256. Items already there and verified are kept, so re-running after an interruption
    continues; saving another lab into the same DIR adds to the index. Needs helm (and Docker for
    --images) and the network; exit 1 when a fetch fails, 3 when a tool is missing.
    """
    from igwlab.mirror import save as save_mirror
    from igwlab.render import render_lab
    from igwlab.selection import resolve_lab

    selection = lab_selection(lab, provider, workload, gie_version, with_addons)
    rendered = render_lab(resolve_lab(selection))
    with _SaveProgress() as progress:  # on stderr, with --json too: stdout holds only the result
        report = save_mirror(rendered, directory, images=images, refresh=refresh, on_event=progress)
    data = report.as_dict()
    if json_output:
        print_json(data)
        return
    stdout().print(
        f"mirror {report.mirror}: {data['saved']} fetched, {data['kept']} already there "
        f"({_size(data['bytes'])} for lab {report.lab}); index {report.index}"
    )
    stdout().print(f"next: igwlab up --lab {report.lab} --mirror {report.mirror}   ·   igwlab mirror check")


@app.command(
    "check",
    epilog=examples(
        "igwlab mirror check ./mirror --provider kgateway",
        "igwlab mirror check ./mirror --lab kv-cache-aware --images --json",
    ),
)
@handle_errors
def check(
    directory: CheckDir,
    lab: LabOption = None,
    provider: ProviderOption = None,
    workload: WorkloadOption = None,
    gie_version: GieOption = None,
    with_addons: WithOption = None,
    images: ImagesOption = False,
    json_output: JsonOption = False,
) -> None:
    """List what DIR holds of what `up --mirror DIR` needs for a lab: each item present (its sha256
    verified), missing or corrupt, and the `igwlab mirror save` command that fetches the rest.

    Images are checked with --images, or whenever DIR holds images. Exit codes: 0 every item is
    present and verified; 3 an item is missing or corrupt (`up --mirror` would stop the same way);
    2 DIR's mirror.yaml is unreadable or the lab flags are wrong.
    """
    from igwlab.mirror import MirrorError
    from igwlab.mirror import check as check_mirror
    from igwlab.render import render_lab
    from igwlab.selection import resolve_lab

    selection = lab_selection(lab, provider, workload, gie_version, with_addons)
    report = check_mirror(render_lab(resolve_lab(selection)), directory, selection=selection, images=images)
    if not json_output:
        _print_check(report)
    if not report.ok:
        counts = report.counts()
        absent = not report.mirror.exists()
        raise MirrorError(
            f"the mirror {report.mirror} does not exist"
            if absent
            else f"the mirror {report.mirror} is incomplete for lab {report.lab}: "
            f"{counts['missing']} missing, {counts['corrupt']} corrupt",
            items=[item for item in report.items if item.state != "present"],
            why="`igwlab up --mirror` would stop the same way, before changing anything",
            fix=f"save one: {report.fetch_command}"
            if absent
            else f"fetch them (what is already there is kept): {report.fetch_command}",
            data=report.as_dict(),
        )
    if json_output:
        print_json(report.as_dict())


def _print_check(report: CheckReport) -> None:
    from rich.text import Text

    style = {"present": "green", "missing": "bold red", "corrupt": "bold red"}
    print_table(
        [Column("state"), Column("what"), Column("source"), Column("file or problem", "note")],
        [
            [Text(item.state, style=style[item.state]), item.artifact.what, item.artifact.location, item.detail]
            for item in report.items
        ],
        title=f"mirror {report.mirror} for lab {report.lab}",
    )
    counts = report.counts()
    stdout().print(f"{counts['present']} present, {counts['missing']} missing, {counts['corrupt']} corrupt")
    if not report.images_checked:
        stdout().print(Text("images not checked (the mirror holds none; add --images to list them)", style="dim"))


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


class _SaveProgress:
    """Progress of `mirror save` on stderr: a bar per download on a terminal, one line per item elsewhere."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self._console = stderr()
        self._progress = (
            Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TimeElapsedColumn(),
                console=self._console,
                transient=False,
            )
            if self._console.is_terminal
            else None
        )
        self._tasks: dict[tuple[str, str, str, str], TaskID] = {}

    def __enter__(self) -> _SaveProgress:
        if self._progress is not None:
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)

    def __call__(self, event: SaveEvent) -> None:
        from rich.markup import escape

        what = escape(event.artifact.what)
        if self._progress is None:
            if event.kind == "start":
                self._console.print(f"fetching {what} from {escape(event.artifact.location)}")
            elif event.kind == "done":
                self._console.print(f"  {event.action}: {what} ({_size(event.total_bytes or 0)}, {event.seconds:.1f}s)")
            return
        key = event.artifact.key
        if event.kind == "start":
            self._tasks[key] = self._progress.add_task(what, total=None)
        elif event.kind == "bytes":
            self._progress.update(self._tasks[key], completed=event.done_bytes, total=event.total_bytes)
        else:
            self._progress.update(
                self._tasks[key],
                description=f"{what} [dim]({event.action})[/]",
                completed=event.total_bytes,
                total=event.total_bytes,
            )
