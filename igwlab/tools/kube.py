"""The small Kubernetes interface igwlab needs, and its implementation on the `kubernetes` client.

Everything above this module talks to `KubeApi`; tests back it with an in-memory fake
(tests/doubles/fakecluster.py, not shipped), and a real API server backs it in use.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Protocol, cast

from igwlab.errors import ClusterUnreachableError, IgwlabError
from igwlab.state import state_dir

FIELD_MANAGER = "igwlab"
Manifest = dict[str, Any]
# Every request to the API server: seconds to connect, seconds to wait for the answer. A healthy API server
# answers in well under a second; one that says nothing for this long is hung, and igwlab says so.
REQUEST_TIMEOUT = (10.0, 30.0)
# Connection attempts (a restarting API server refuses for a moment), 0.5 s, 1 s, 2 s apart; a request
# sent but not answered is not repeated (an apply may have happened).
CONNECT_RETRIES = 3
PLAIN_HTTP_TO_TLS = "Client sent an HTTP request to an HTTPS server"


class KubeApi(Protocol):
    def apply(self, manifest: Manifest) -> Manifest:
        """Server-side apply with field manager `igwlab` (conflicts forced: igwlab owns its objects)."""
        ...

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Manifest | None: ...

    def list_objects(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[Manifest]: ...

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool: ...

    def annotate(
        self, api_version: str, kind: str, name: str, annotations: dict[str, str], namespace: str | None = None
    ) -> bool:
        """Set these annotations on the object (a JSON merge patch, no field manager's claim); False when
        it does not exist."""
        ...

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


def api_error_line(error: BaseException, limit: int = 300) -> str:
    """One line (at most `limit` characters) for an error of the Kubernetes client, never its multi-line
    `str()` with headers: for an ApiException `HTTP 400 Bad Request: <the API server's words>` (the
    `message` of its Status body, else the body's text, e.g. what a pod answered through the pod proxy);
    for anything else `TypeName: its text`."""
    status = getattr(error, "status", None)
    if isinstance(status, int) and status:
        line = f"HTTP {status} {getattr(error, 'reason', None) or ''}".strip()
        said = _body_words(getattr(error, "body", None))
        return (f"{line}: {said}" if said else line)[:limit]
    text = " ".join(str(error).split())
    return (f"{type(error).__name__}: {text}" if text else type(error).__name__)[:limit]


def _body_words(body: object) -> str:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str) or not body.strip():
        return ""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("message"):
        return " ".join(str(parsed["message"]).split())
    return " ".join(body.split())


def explain_kube_error(error: BaseException, context: str | None, where: str | None = None) -> str:
    """What went wrong reaching a cluster, in a user's terms: a missing context is not a dead API server,
    and a host that does not resolve is not a refused connection. `where` names the cluster in the message."""
    if isinstance(error, IgwlabError):  # explained already, where the request failed
        return error.what
    text = str(error)
    where = where or (f"context {context}" if context else "the current context")
    if "Expected object with name" in text and "contexts" in text:
        return f"no context {context} in your kubeconfig; contexts: {', '.join(kubeconfig_contexts()) or 'none'}"
    if "No configuration found" in text or "Invalid kube-config file" in text:
        return f"no usable kubeconfig for {where} (KUBECONFIG, else ~/.kube/config): {text[:200]}"
    host = _quoted_host(text)
    server = f" ({host})" if host else ""
    if "NameResolutionError" in text or "Name or service not known" in text or "nodename nor servname" in text:
        return f"the API server of {where}{server} does not resolve: check the server address in the kubeconfig"
    if "Connection refused" in text:
        return f"nothing accepts connections at the API server of {where}{server}"
    tls = tls_problem(text)
    if tls is not None:
        return f"the API server of {where}{server}: {tls[0]}"
    if "Read timed out" in text:
        return f"the API server of {where}{server} did not answer within {REQUEST_TIMEOUT[1]:.0f}s"
    if "timed out" in text.lower() and "connect" in text.lower():
        return f"connecting to the API server of {where}{server} timed out after {REQUEST_TIMEOUT[0]:.0f}s"
    status = getattr(error, "status", None)
    if status in (401, 403):
        reason = getattr(error, "reason", "")
        return f"the API server of {where} refuses the kubeconfig's credentials ({status} {reason})"
    return f"the API server of {where} does not answer: {api_error_line(error, 200)}"


def kubeconfig_problem(error: BaseException, config_file: str | None, context: str | None) -> str:
    """What is wrong with the kubeconfig the client could not load (one line): a context it lacks, or a
    file that cannot be read or is not a kubeconfig."""
    text = " ".join(str(error).split())
    path = config_file or "~/.kube/config"
    if "Expected object with name" in text and "contexts" in text:
        return f"no context {context} in your kubeconfig; contexts: {', '.join(kubeconfig_contexts()) or 'none'}"
    if config_file and os.pathsep not in config_file and not os.path.lexists(config_file):
        return f"the kubeconfig {path} does not exist"
    if isinstance(error, OSError):
        return f"cannot read the kubeconfig {path}: {error.strerror or text}"
    names = {cls.__name__ for cls in type(error).__mro__}
    if "YAMLError" in names:
        return f"the kubeconfig {path} is not YAML: {text[:200]}"
    return f"the kubeconfig {path} cannot be used: {text[:200]}"


def tls_problem(text: str) -> tuple[str, str] | None:
    """(what, fix) when the client's error text says TLS with the API server failed, else None: a
    certificate the kubeconfig's certificate authority does not vouch for (a kubeconfig of another or a
    re-created cluster), or no TLS at all at that address (not an API server)."""
    import re

    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        said = re.search(r"certificate verify failed: ([^(]+?)\s*\(_ssl", text)
        detail = f" ({said.group(1).strip()})" if said else ""
        return (
            f"its certificate is not one the kubeconfig's certificate authority vouches for{detail}",
            "the kubeconfig's certificate-authority-data is of another cluster, or the cluster was made anew: "
            "fetch its kubeconfig again (k3d: `k3d kubeconfig get NAME`)",
        )
    if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text or "record layer failure" in text:
        return (
            "what answers there does not speak TLS (an https:// address where a plain HTTP server listens?)",
            "check the server address in the kubeconfig: the API server's https:// host and port",
        )
    if "SSLError" in text or "[SSL" in text:
        said = re.search(r"\[SSL[^\]]*\][^(']*", text)
        return (
            f"TLS failed: {said.group(0).strip() if said else 'the handshake did not complete'}",
            "check the server address and the certificate data of the context in the kubeconfig",
        )
    return None


def unreachable(error: BaseException) -> bool:
    """The cluster could not be reached or refused us (kubeconfig, DNS, connection, credentials),
    as opposed to an answer about an object."""
    names = {cls.__name__ for cls in type(error).__mro__}
    if names & {"ConfigException", "MaxRetryError", "NewConnectionError", "ProtocolError", "ConnectionError"}:
        return True
    return isinstance(error, OSError) or getattr(error, "status", None) in (401, 403)


def explained_call(context: str | None, where: str | None, method: Any, *args: Any, **kwargs: Any) -> Any:
    """`method(*args, **kwargs)`, with a failure to reach the cluster raised as ClusterUnreachableError."""
    try:
        return method(*args, **kwargs)
    except IgwlabError:
        raise
    except Exception as error:
        if not unreachable(error):
            raise
        raise ClusterUnreachableError(
            explain_kube_error(error, context, where),
            why="igwlab reads the lab's objects through the Kubernetes API",
            fix="is the cluster up? `igwlab doctor` checks the tools and the cluster; `igwlab up` continues a lab",
        ) from None


class ExplainedKube:
    """A KubeApi whose failures to reach the cluster are igwlab errors that say why (no context, no DNS,
    refused, credentials); answers about objects pass through unchanged. Every method of the wrapped
    KubeApi is wrapped, so methods added to the protocol later are covered too (`explained()` types it)."""

    def __init__(self, api: KubeApi, context: str | None, where: str | None = None) -> None:
        self._api = api
        self._context = context
        self._where = where

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._api, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            return explained_call(self._context, self._where, attribute, *args, **kwargs)

        return call


def explained(api: KubeApi, context: str | None, where: str | None = None) -> KubeApi:
    """`api` behind ExplainedKube, as the KubeApi it stands for."""
    return cast(KubeApi, ExplainedKube(api, context, where))


def _quoted_host(text: str) -> str:
    import re

    match = re.search(r"host='([^']+)', port=(\d+)", text)
    return f"{match.group(1)}:{match.group(2)}" if match else ""


def kubeconfig_contexts() -> list[str]:
    """The context names of the kubeconfig the client reads ($KUBECONFIG, else ~/.kube/config)."""
    try:
        from kubernetes import config

        # $KUBECONFIG read now, not when the client was first imported (it caches the default).
        contexts, _ = config.list_kube_config_contexts(config_file=os.environ.get("KUBECONFIG") or None)  # type: ignore[no-untyped-call]
    except Exception:  # no kubeconfig at all
        return []
    return sorted(str(c.get("name")) for c in contexts or [])


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


class _LogWords(logging.Handler):
    """Keeps the messages of the log records it is given (errors only), printing nothing."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.words: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.words.append(" ".join(record.getMessage().split())[:300])


def _bound_requests(
    api_client: Any, context: str | None, where: str | None, credential_problem: str | None = None
) -> None:
    """Give every request of this client REQUEST_TIMEOUT unless its caller set one (the client's default is
    to wait for ever, so a hung API server would hang igwlab), and turn a failure to reach the API server,
    in whatever call, into ClusterUnreachableError saying which server and how it failed."""
    import urllib3

    # urllib3 logs each connection retry as a warning, which would reach the user's terminal as noise.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    # ...and warns (FutureWarning) about a server address without a scheme; the failure says what matters.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"urllib3(\.|$)")
    rest = api_client.rest_client
    send = rest.request

    from kubernetes.client.exceptions import ApiException

    server = where or (f"context {context}" if context else "the current context")

    def plain_http_to_tls(status: object, body: object) -> None:
        # Go's TLS server answers a plain-HTTP request with 400 and these words: the kubeconfig says
        # http:// where the API server speaks https://. It is no answer about any object.
        if status == 400 and PLAIN_HTTP_TO_TLS in _body_words(body):
            raise ClusterUnreachableError(
                f"the API server of {server} ({api_client.configuration.host}) speaks TLS, and the kubeconfig's "
                "server address is http://",
                why="Kubernetes API servers serve HTTPS only",
                fix="write the server address in the kubeconfig with https:// (`kubectl config view` shows it)",
            )

    def refused_without_credentials(status: object) -> None:
        if credential_problem and status in (401, 403):
            raise ClusterUnreachableError(
                f"the kubeconfig's credential plugin failed ({credential_problem}), so the API server of "
                f"{server} refused igwlab ({status})",
                why="the plugin (users[].user.exec in the kubeconfig) gives igwlab its credentials",
                fix="`kubectl get namespaces` runs the same plugin and shows why it fails; fix it (installed, on "
                "PATH, logged in), then run the same igwlab command again",
            )

    def request(*args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        try:
            response = send(*args, _request_timeout=_request_timeout or REQUEST_TIMEOUT, **kwargs)
        except ApiException as error:  # clients that raise for the status here
            plain_http_to_tls(error.status, error.body)
            refused_without_credentials(error.status)
            raise
        except urllib3.exceptions.HTTPError as error:
            tls = tls_problem(str(error))
            if tls is not None:
                raise ClusterUnreachableError(
                    explain_kube_error(error, context, where),
                    why="igwlab talks to the API server over TLS with the kubeconfig's certificate data",
                    fix=tls[1],
                ) from None
            raise ClusterUnreachableError(
                explain_kube_error(error, context, where),
                why="a hung, overloaded or stopped API server, or a network between here and it that drops connections",
                fix="is the cluster up? (`kubectl cluster-info`); once it answers, run the same igwlab command "
                "again: `igwlab up` continues where it stopped",
            ) from error
        refused_without_credentials(getattr(response, "status", None))
        if getattr(response, "status", None) == 400 and callable(getattr(response, "read", None)):
            plain_http_to_tls(400, response.read())  # clients that raise later, on the answer (kept once read)
        return response

    rest.request = request


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
        # The client runs a kubeconfig's credential plugin (users[].user.exec) here and, when it fails,
        # only logs why (on the root logger, which would print "ERROR:root:..." to the terminal) and goes on
        # without credentials: the words are kept to say so when the API server then refuses us.
        said = _LogWords()
        root = logging.getLogger()
        root.addHandler(said)
        try:
            api_client: ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=config_file, context=context, client_configuration=configuration
            )
        except Exception as error:  # the kubeconfig: unreadable, not YAML, no such context, no credentials
            raise ClusterUnreachableError(
                kubeconfig_problem(error, config_file, context),
                why="igwlab reaches the cluster with the kubeconfig's server address and credentials",
                fix="`kubectl config view` shows what the kubeconfig holds and `kubectl config get-contexts` its "
                "contexts; KUBECONFIG names the file, else ~/.kube/config",
            ) from None
        finally:
            root.removeHandler(said)
        where = None if context or not kubeconfig else f"the cluster of {kubeconfig}"
        _bound_requests(api_client, context, where, credential_problem="; ".join(said.words) or None)
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

    def annotate(
        self, api_version: str, kind: str, name: str, annotations: dict[str, str], namespace: str | None = None
    ) -> bool:
        from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

        try:
            self._resource(api_version, kind).patch(
                body={"metadata": {"annotations": annotations}},
                name=name,
                namespace=namespace,
                content_type="application/merge-patch+json",
            )
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
