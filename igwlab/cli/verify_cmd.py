"""`igwlab verify`: prove inference routing works through the gateway, and explain when it does not."""

from __future__ import annotations

from typing import Annotated

import typer

from igwlab.cli.options import JsonOption, examples, finite, text
from igwlab.cli.output import handle_errors, print_json
from igwlab.wording import counted

MAX_REQUESTS = 10_000
VERIFY_EXAMPLES = examples(
    "igwlab verify",
    "igwlab verify --wait 120 --json",
    "igwlab verify --url http://127.0.0.1:8000 --lab kgateway-fake-llm --requests 400",
)


@handle_errors
def verify(
    lab: Annotated[
        str | None,
        typer.Option(
            "--lab",
            "-l",
            help="Lab whose models, weights and checks apply; "
            "default: the lab `up` recorded, else agentgateway-fake-llm.",
            metavar="LAB",
            callback=text,
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            help="Gateway base URL, e.g. http://localhost:8080; default: the URL `up` recorded.",
            metavar="URL",
            show_default=False,
        ),
    ] = None,
    requests: Annotated[
        int,
        typer.Option(
            help="Sample size N (1 to 10000): traffic-split sends N per split model, endpoint-spread N/2 "
            "(at least 20), model-routing N/10 per model (at least 10), prefix-affinity 4 groups of N/8 "
            "(4 to 16); the other checks send one request or a few.",
            min=1,
            max=MAX_REQUESTS,
            metavar="N",
        ),
    ] = 200,
    concurrency: Annotated[
        int, typer.Option(help="Requests in flight at once (1 to 256).", min=1, max=256, metavar="N")
    ] = 10,
    wait: Annotated[
        float,
        typer.Option(
            help="Seconds to keep retrying while the gateway warms up (connection "
            "refused, 502/503/504), 0 to 3600. Checks never retry.",
            min=0,
            max=3600,
            metavar="SECONDS",
            callback=finite,
        ),
    ] = 0,
    timeout: Annotated[
        float,
        typer.Option(help="Seconds per request (0.1 to 3600).", min=0.1, max=3600, metavar="SECONDS", callback=finite),
    ] = 60,
    litellm_url: Annotated[
        str | None,
        typer.Option(
            help="LiteLLM proxy in front of the gateway: adds the litellm-route check.",
            metavar="URL",
            show_default=False,
        ),
    ] = None,
    litellm_key: Annotated[
        str | None,
        typer.Option(
            help="LiteLLM master key (else $LITELLM_MASTER_KEY, else Secret igwlab-litellm of the lab that is up).",
            metavar="KEY",
            show_default=False,
            callback=text,
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Check the gateway routes inference: completions, chat, streaming, the configured traffic
    split (chi-square test), pod spread, prefix affinity, unknown models, and EPP evidence.

    Each check is pass, fail, warn or skip, with a hint for every failure. Exit 0 when nothing
    failed, 1 when a check failed, 2 for bad input. --json prints the versioned result.
    """
    from igwlab.verify.run import VerifyOptions
    from igwlab.verify.run import verify as run_verify

    report = run_verify(
        VerifyOptions(
            lab=lab,
            url=url,
            requests=requests,
            concurrency=concurrency,
            wait_s=wait,
            timeout_s=timeout,
            litellm_url=litellm_url,
            litellm_key=litellm_key,
        )
    )
    if not json_output:
        from igwlab.cli.render_text import print_verify_report

        print_verify_report(report)
    if not report.passed:
        from igwlab.errors import ChecksFailedError

        failed = [check.name for check in report.checks if check.status == "fail"]
        raise ChecksFailedError(
            f"{len(failed)} of {counted(len(report.checks), 'check')} failed: {', '.join(failed)}",
            why=f"the gateway at {report.url} did not route the way lab {report.lab} expects",
            fix="each failed check's hint says what to look at; `igwlab status` shows the lab's objects",
            data=report.as_dict(),
        )
    if json_output:
        print_json(report.as_dict())
