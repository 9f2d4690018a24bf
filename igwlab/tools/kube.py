"""The small Kubernetes interface igwlab needs, and its implementation on the `kubernetes` client.

Everything above this module talks to `KubeApi`; tests back it with an in-memory fake
(igwlab.testing.fakecluster), and a real API server backs it in use.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Protocol

from igwlab.errors import ClusterUnreachableError
from igwlab.state import state_dir

FIELD_MANAGER = "igwlab"
Manifest = dict[str, Any]
# Every request to the API server: seconds to connect, seconds to wait for the answer. A healthy API server
# answers in well under a second; one that says nothing for this long is hung, and igwlab says so.
REQUEST_TIMEOUT = (10.0, 30.0)
# Connection attempts (a restarting API server refuses for a moment), 0.5 s, 1 s, 2 s apart; a request
# sent but not answered is not repeated (an apply may have happened).
CONNECT_RETRIES = 3


class KubeApi(Protocol):
    def apply(self, manifest: Manifest) -> Manifest:
        """Server-side apply with field manager `igwlab` (conflicts forced: igwlab owns its objects)."""
        ...

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Manifest | None: ...

    def list_objects(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[Manifest]: ...

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool: ...

    def events(self, namespace: str, involved_object: str | None = None) -> list[Manifest]:
        """The namespace's events (core/v1 Event), only those about the object of that name when given."""
        ...

    def logs(
        self, namespace: str, pod: str, tail_lines: int = 200, container: str | None = None, previous: bool = False
    ) -> str:
        """The pod's log (one container's; `previous`: of its last terminated run)."""
        ...

    def pod_proxy_get(self, namespace: str, pod: str, port: int, path: str) -> str:
        """GET http://POD:PORT/PATH through the API server's pod proxy."""
        ...

    def server_version(self) -> str:
        """The API server's gitVersion (`GET /version`), e.g. `v1.33.4+k3s1`."""
        ...


def condition(obj: Manifest | None, kind: str, path: tuple[str, ...] = ("status", "conditions")) -> Manifest | None:
    node: Any = obj
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    for item in node or []:
        if isinstance(item, dict) and item.get("type") == kind:
            return item
    return None


def is_true(cond: Manifest | None) -> bool:
    return cond is not None and cond.get("status") == "True"


def describe_condition(cond: Manifest | None, kind: str) -> str:
    if cond is None:
        return f"no {kind} condition yet"
    text = f"{kind}={cond.get('status')}"
    if cond.get("reason"):
        text += f" {cond['reason']}"
    if cond.get("message"):
        text += f": {str(cond['message'])[:160]}"
    return text


def discovery_cache(host: str) -> Path:
    """Where the API discovery of one API server is cached: igwlab's state directory, not the shared
    temp file the `kubernetes` client picks by default (which other programs write at the same time)."""
    digest = hashlib.sha256(host.encode()).hexdigest()[:16]
    return state_dir() / "discovery" / f"{digest}.json"


def _atomic_discoverer() -> type:
    from kubernetes.dynamic.discovery import LazyDiscoverer

    class AtomicDiscoverer(LazyDiscoverer):
        """The client's lazy discovery, its cache written whole or not at all (a reader never sees half a
        file, so parallel igwlab commands never print "load cache error")."""

        def _write_cache(self) -> None:
            from kubernetes.dynamic.discovery import CacheEncoder

            path = Path(getattr(self, "_Discoverer__cache_file"))  # noqa: B009 (the base class keeps it private)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
                    json.dump(self._cache, handle, cls=CacheEncoder)
                os.replace(handle.name, path)
            except OSError:
                pass  # a cache that cannot be written only costs a discovery next time

    return AtomicDiscoverer


def _bound_requests(api_client: Any) -> None:
    """Give every request of this client REQUEST_TIMEOUT unless its caller set one (the client's default is
    to wait for ever, so a hung API server would hang igwlab), and turn a failure to reach the API server
    into ClusterUnreachableError naming it."""
    import urllib3

    # urllib3 logs each connection retry as a warning, which would reach the user's terminal as noise.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    rest = api_client.rest_client
    send = rest.request
    host = api_client.configuration.host

    def request(*args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        try:
            return send(*args, _request_timeout=_request_timeout or REQUEST_TIMEOUT, **kwargs)
        except urllib3.exceptions.HTTPError as error:
            raise unreachable(host, error) from error

    rest.request = request


def unreachable(host: str, error: Exception) -> ClusterUnreachableError:
    """What a user reads when the API server at `host` refused, reset or did not answer a request."""
    import urllib3

    cause: Any = error.reason if isinstance(error, urllib3.exceptions.MaxRetryError) and error.reason else error
    # NewConnectionError (refused, no route) is a TimeoutError subclass in urllib3 2, for history's sake.
    refused = isinstance(cause, urllib3.exceptions.NewConnectionError)
    if isinstance(cause, urllib3.exceptions.TimeoutError) and not refused:
        why = f"no answer within {REQUEST_TIMEOUT[1]:.0f}s" if "read" in str(cause).lower() else "connecting timed out"
        why += " (the API server is hung, overloaded or cut off)"
    else:
        # "<urllib3.connection.HTTPSConnection object at 0x7f..>: Failed to establish ... refused" -> the words
        why = re.sub(r"^<[^>]*>:\s*", "", str(cause)).strip() or type(cause).__name__
    return ClusterUnreachableError(
        f"the Kubernetes API server at {host} does not answer",
        why=why[:300],
        fix="check that the cluster is running (`kubectl cluster-info`, `kubectl get nodes`); once it answers, "
        "run the same igwlab command again: `igwlab up` continues where it stopped",
    )


class KubernetesApi:
    """KubeApi on the official client's dynamic API (imported only when a cluster is used)."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None) -> None:
        from kubernetes import config
        from kubernetes.client import ApiClient, Configuration
        from kubernetes.dynamic import DynamicClient
        from urllib3 import Retry

        # $KUBECONFIG as it is now: the client reads it only once, when it is first imported.
        config_file = kubeconfig or os.environ.get("KUBECONFIG") or None
        configuration = Configuration()
        configuration.retries = Retry(
            total=CONNECT_RETRIES, connect=CONNECT_RETRIES, read=0, status=0, backoff_factor=0.5, raise_on_status=False
        )
        api_client: ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=config_file, context=context, client_configuration=configuration
        )
        _bound_requests(api_client)
        self._dynamic = DynamicClient(  # type: ignore[no-untyped-call]
            api_client,
            cache_file=str(discovery_cache(api_client.configuration.host)),
            discoverer=_atomic_discoverer(),
        )
        self._api_client = api_client
        self._core_api: Any = None

    @property
    def _core(self) -> Any:
        """The typed core/v1 client, made on first use: its module takes about a second to import, which
        every `up`, re-run included, would pay for events, logs and the pod proxy it seldom needs."""
        if self._core_api is None:
            from kubernetes.client import CoreV1Api

            self._core_api = CoreV1Api(self._api_client)
        return self._core_api

    def _resource(self, api_version: str, kind: str) -> Any:
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            return self._dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            # A CRD installed a moment ago is not in the cached discovery yet.
            self._dynamic.resources.invalidate_cache()
            return self._dynamic.resources.get(api_version=api_version, kind=kind)

    def apply(self, manifest: Manifest) -> Manifest:
        resource = self._resource(manifest["apiVersion"], manifest["kind"])
        metadata = manifest["metadata"]
        result = resource.server_side_apply(
            body=manifest,
            name=metadata["name"],
            namespace=metadata.get("namespace"),
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )
        return dict(result.to_dict())

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Manifest | None:
        from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

        try:
            return dict(self._resource(api_version, kind).get(name=name, namespace=namespace).to_dict())
        except (NotFoundError, ResourceNotFoundError):
            return None

    def list_objects(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[Manifest]:
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            result = self._resource(api_version, kind).get(namespace=namespace, label_selector=label_selector)
        except ResourceNotFoundError:
            return []
        return [dict(item) for item in result.to_dict().get("items", [])]

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

        try:
            self._resource(api_version, kind).delete(name=name, namespace=namespace)
        except (NotFoundError, ResourceNotFoundError):
            return False
        return True

    def events(self, namespace: str, involved_object: str | None = None) -> list[Manifest]:
        selector = f"involvedObject.name={involved_object}" if involved_object else None
        items = self._core.list_namespaced_event(namespace, field_selector=selector).items
        return [self._core.api_client.sanitize_for_serialization(item) for item in items]

    def logs(
        self, namespace: str, pod: str, tail_lines: int = 200, container: str | None = None, previous: bool = False
    ) -> str:
        kwargs: dict[str, Any] = {"tail_lines": tail_lines, "timestamps": True, "previous": previous}
        if container:
            kwargs["container"] = container
        return str(self._core.read_namespaced_pod_log(pod, namespace, **kwargs))

    def pod_proxy_get(self, namespace: str, pod: str, port: int, path: str) -> str:
        """GET through the API server's pod proxy; when the API server refuses to proxy (it will not
        proxy to loopback or link-local pod IPs, and some clusters turn the pod proxy off), read the pod
        IP directly if this machine reaches it (a flat pod network), else raise the proxy's error."""
        from kubernetes.client.exceptions import ApiException

        try:
            return str(self._core.connect_get_namespaced_pod_proxy_with_path(f"{pod}:{port}", namespace, path))
        except ApiException:
            direct = self._direct_pod_get(namespace, pod, port, path)
            if direct is None:
                raise
            return direct

    def _direct_pod_get(self, namespace: str, pod: str, port: int, path: str) -> str | None:
        import httpx

        try:
            status = self._core.read_namespaced_pod(pod, namespace).status
        except Exception:
            return None
        address = status.pod_ip if status is not None else None
        if not address:
            return None
        host = f"[{address}]" if ":" in address else address
        try:
            response = httpx.get(f"http://{host}:{port}/{path.lstrip('/')}", timeout=3.0)
        except httpx.HTTPError:
            return None
        return response.text if response.status_code == 200 else None

    def server_version(self) -> str:
        from kubernetes.client import VersionApi

        return str(VersionApi(self._api_client).get_code().git_version)
