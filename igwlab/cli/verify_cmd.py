"""`igwlab verify`: prove inference routing works through the gateway, and explain when it does not."""

from __future__ import annotations

from typing import Annotated

import typer

from igwlab.cli.options import JsonOption
from igwlab.cli.output import handle_errors, print_json


@handle_errors
def verify(
    lab: Annotated[
        str | None,
        typer.Option(
            "--lab",
            "-l",
            help="Lab whose models, weights and checks apply; "
            "default: the lab `up` recorded, else agentgateway-fake-llm.",
        ),
    ] = None,
    url: Annotated[
        str | None, typer.Option(help="Gateway base URL, e.g. http://localhost:8080; default: the URL `up` recorded.")
    ] = None,
    requests: Annotated[
        int, typer.Option(help="Requests per statistical check (traffic-split, endpoint-spread).", min=1)
    ] = 200,
    concurrency: Annotated[int, typer.Option(help="Requests in flight at once.", min=1)] = 10,
    wait: Annotated[
        float,
        typer.Option(
            help="Seconds to keep retrying while the gateway warms up (connection "
            "refused, 502/503/504). Checks never retry.",
            min=0,
        ),
    ] = 0,
    timeout: Annotated[float, typer.Option(help="Seconds per request.", min=0.1)] = 60,
    litellm_url: Annotated[
        str | None, typer.Option(help="LiteLLM proxy in front of the gateway: adds the litellm-route check.")
    ] = None,
    litellm_key: Annotated[
        str | None,
        typer.Option(
            help="LiteLLM master key (else $LITELLM_MASTER_KEY, else Secret igwlab-litellm of the lab that is up)."
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
            f"{len(failed)} of {len(report.checks)} checks failed: {', '.join(failed)}",
            why=f"the gateway at {report.url} did not route the way lab {report.lab} expects",
            fix="each failed check's hint says what to look at; `igwlab status` shows the lab's objects",
            data=report.as_dict(),
        )
    if json_output:
        print_json(report.as_dict())
