"""Entry point of `igwlab verify`: pick the lab and URL, run the checks, build the report."""

from __future__ import annotations

import asyncio
import base64
import os
from dataclasses import dataclass, replace
from typing import Any

from igwlab import gates as g
from igwlab.errors import IgwlabError, UsageError
from igwlab.gates import Gate
from igwlab.labs import DEFAULT_PROVIDER, PRESET_SUFFIX, Lab
from igwlab.lifecycle import Environment, current_lab
from igwlab.render.epp import failure_mode_in_force
from igwlab.selection import LabSelection, ResolvedLab, resolve_lab
from igwlab.state import current_lab_file, names_recorded_lab, read_current_lab
from igwlab.tools.kube import api_error_line
from igwlab.urls import check_url
from igwlab.verify.checks import CheckContext, ClusterAccess, LabFacts, run_checks
from igwlab.verify.engine import Engine
from igwlab.verify.evidence import EppRef
from igwlab.verify.report import Report


@dataclass(frozen=True)
class VerifyOptions:
    lab: str | None = None
    url: str | None = None
    requests: int = 200
    concurrency: int = 10
    wait_s: float = 0.0
    timeout_s: float = 60.0
    litellm_url: str | None = None
    litellm_key: str | None = None


def resolve_target(options: VerifyOptions, command: str = "verify") -> tuple[LabSelection, str]:
    """(lab selection, gateway URL) from the flags, else from what `up` recorded: the lab file `up` was
    given (a lab file's name need not be a preset's), else the preset's name, with the workload, GIE
    version and add-ons `up` was given; the URL checked up front."""
    current = read_current_lab() or {}
    selection = recorded_selection(current, options.lab)
    if options.url is not None:
        return selection, check_url(options.url, "--url")
    recorded = current.get("url")
    if not recorded and current:
        status = current.get("status") or "unknown"
        raise UsageError(
            f"no gateway URL for {command}: lab {current['lab']} is recorded (status {status}) "
            "but has no gateway URL yet",
            why=f"`igwlab up` records the gateway's URL in {current_lab_file()} once the lab is ready, and it "
            "has not finished",
            fix="finish `igwlab up` (run it again with the same flags: it continues where it stopped), "
            "or pass --url http://HOST:PORT (the gateway's address)",
        )
    if not recorded:
        raise UsageError(
            f"no gateway URL for {command}",
            why=f"--url was not given and no lab is recorded as up ({current_lab_file()} is missing)",
            fix="pass --url http://HOST:PORT (the gateway's address), e.g. --url http://127.0.0.1:8000 for a local "
            "`igwlab sim`",
        )
    return selection, check_url(str(recorded), f"the URL `up` recorded in {current_lab_file()}")


def recorded_selection(current: dict[str, Any], lab: str | None) -> LabSelection:
    """The lab `--lab` names (the preset of the default provider without it); when that is the lab `up`
    recorded (or --lab is absent and one is recorded), as `up` selected it: its file, workload, GIE
    version and add-ons, so that requests name the models the lab really serves."""
    recorded_lab = current.get("lab_file") or current.get("lab")
    if recorded_lab and (lab is None or names_recorded_lab(current, lab)):
        chosen = current.get("selection") or {}
        return LabSelection(
            lab=str(recorded_lab),
            workload=chosen.get("workload"),
            gie_version=chosen.get("gie_version"),
            addons=tuple(chosen.get("addons") or ()),
        )
    return LabSelection(lab=lab or f"{DEFAULT_PROVIDER}{PRESET_SUFFIX}")


def cluster_access(lab: Lab, env: Environment) -> tuple[ClusterAccess | None, str]:
    """Status checks need the cluster of the lab `up` recorded; otherwise they are skipped, with why."""
    if read_current_lab() is None:
        return None, "no lab is recorded as up, so there is no cluster to read (`igwlab up` records one)"
    try:
        current = current_lab()
    except IgwlabError as error:
        return None, f"the recorded lab cannot be loaded: {error.what}"
    if current.resolved.lab.name != lab.name:
        return None, f"the lab that is up is {current.resolved.lab.name}, not {lab.name}"
    gates: dict[str, list[Gate]] = {"route-accepted": [], "pool-accepted": [], "epp-ready": []}
    for step in current.plan.steps:
        for gate in step.gates:
            if isinstance(gate, g.RouteAccepted):
                gates["route-accepted"].append(gate)
            elif isinstance(gate, g.PoolAccepted):
                gates["pool-accepted"].append(gate)
    epps = tuple(EppRef(lab.namespace, f"{backend.pool.name}-epp") for backend in current.resolved.lab.backends())
    for epp in epps:
        gates["epp-ready"].append(g.DeploymentAvailable(epp.namespace, epp.deployment))
    try:
        return ClusterAccess(current.kube(env), gates, epps), ""
    except Exception as error:  # no kubeconfig, no API server: the HTTP checks still run
        return None, f"cluster not reachable: {api_error_line(error)}"


def verify(options: VerifyOptions, env: Environment | None = None) -> Report:
    if options.requests < 1 or options.concurrency < 1:
        raise UsageError("--requests and --concurrency must be at least 1")
    if options.wait_s < 0 or options.timeout_s <= 0:
        raise UsageError("--wait must be 0 or more and --timeout more than 0 seconds")
    if options.litellm_key is not None and options.litellm_url is None:
        raise UsageError(
            "--litellm-key needs --litellm-url",
            why="the key goes only to the LiteLLM proxy at --litellm-url; without it the litellm-route check "
            "is skipped and the key is not used",
            fix="add --litellm-url (e.g. http://127.0.0.1:4000 after `kubectl port-forward -n igwlab "
            "svc/igwlab-litellm 4000`), or drop --litellm-key",
        )
    selection, url = resolve_target(options)
    resolved = resolve_lab(selection)
    lab = resolved.lab
    cluster, skip_reason = cluster_access(lab, env or Environment())
    key = options.litellm_key or os.environ.get("LITELLM_MASTER_KEY") or _litellm_key_from(cluster, lab)
    options = replace(
        options,
        litellm_key=key,
        litellm_url=check_url(options.litellm_url, "--litellm-url") if options.litellm_url is not None else None,
    )
    return asyncio.run(_verify(lab, url, options, cluster, skip_reason, lab_facts(resolved)))


def lab_facts(resolved: ResolvedLab) -> LabFacts:
    """What the checks need to know of the lab's stack to read what they see."""
    return LabFacts(
        header_routing=resolved.stack.model_routing == "header",
        failure_mode=failure_mode_in_force(resolved),
        answers_name_target=resolved.gie.answers_name_target,
        split_metric=resolved.gie.split_metric,
        objective_headers=resolved.objective_headers(),
        bbr_buffers_responses=resolved.stack.model_routing == "body-based-routing"
        and resolved.gie.bbr_buffers_responses,
        lora_affinity_filter=resolved.gie.lora_affinity_filter,
    )


def _litellm_key_from(cluster: ClusterAccess | None, lab: Lab) -> str | None:
    """The master key `up` put into Secret igwlab-litellm, when the cluster is reachable."""
    if cluster is None:
        return None
    try:
        secret = cluster.kube.get("v1", "Secret", "igwlab-litellm", lab.namespace)
    except Exception:
        return None
    if secret is None:
        return None
    if secret.get("data", {}).get("master-key"):
        return base64.b64decode(secret["data"]["master-key"]).decode()
    value = secret.get("stringData", {}).get("master-key")
    return str(value) if value else None


async def _verify(
    lab: Lab, url: str, options: VerifyOptions, cluster: ClusterAccess | None, skip_reason: str, facts: LabFacts
) -> Report:
    objectives = facts.objective_headers
    async with Engine(
        url, concurrency=options.concurrency, timeout_s=options.timeout_s, headers_for_model=objectives.get
    ) as engine:
        ctx = CheckContext(
            facts=facts,
            litellm_url=options.litellm_url,
            litellm_key=options.litellm_key,
            lab=lab,
            engine=engine,
            requests=options.requests,
            wait_s=options.wait_s,
            cluster=cluster,
            cluster_skip_reason=skip_reason,
        )
        checks = await run_checks(ctx)
    return Report(lab=lab.name, url=url, checks=checks)
