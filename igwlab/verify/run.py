"""Entry point of `igwlab verify`: pick the lab and URL, run the checks, build the report."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlparse

from igwlab.errors import UsageError
from igwlab.labs import DEFAULT_PROVIDER, PRESET_SUFFIX, Lab
from igwlab.selection import LabSelection, resolve_lab
from igwlab.state import current_lab_file, read_current_lab
from igwlab.verify.checks import CheckContext, run_checks
from igwlab.verify.engine import Engine
from igwlab.verify.report import Report


@dataclass(frozen=True)
class VerifyOptions:
    lab: str | None = None
    url: str | None = None
    requests: int = 200
    concurrency: int = 10
    wait_s: float = 0.0
    timeout_s: float = 60.0


def resolve_target(options: VerifyOptions) -> tuple[str, str]:
    """(lab reference, gateway URL) from the flags, else from what `up` recorded."""
    current = read_current_lab() or {}
    lab = options.lab or current.get("lab") or f"{DEFAULT_PROVIDER}{PRESET_SUFFIX}"
    url = options.url or current.get("url")
    if not url:
        raise UsageError(
            "no gateway URL to verify",
            why=f"--url was not given and no lab is recorded as up ({current_lab_file()} is missing)",
            fix="pass --url http://HOST:PORT (the gateway's address), e.g. --url http://127.0.0.1:8000 for a local "
            "`igwlab sim`",
        )
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UsageError(f"--url {url!r} is not an http(s) URL", fix="use a form like http://127.0.0.1:8080")
    return str(lab), url.rstrip("/")


def verify(options: VerifyOptions) -> Report:
    if options.requests < 1 or options.concurrency < 1:
        raise UsageError("--requests and --concurrency must be at least 1")
    if options.wait_s < 0 or options.timeout_s <= 0:
        raise UsageError("--wait must be 0 or more and --timeout more than 0 seconds")
    lab_reference, url = resolve_target(options)
    lab = resolve_lab(LabSelection(lab=lab_reference)).lab
    return asyncio.run(_verify(lab, url, options))


async def _verify(lab: Lab, url: str, options: VerifyOptions) -> Report:
    async with Engine(url, concurrency=options.concurrency, timeout_s=options.timeout_s) as engine:
        ctx = CheckContext(lab=lab, engine=engine, requests=options.requests, wait_s=options.wait_s)
        checks = await run_checks(ctx)
    return Report(lab=lab.name, url=url, checks=checks)
