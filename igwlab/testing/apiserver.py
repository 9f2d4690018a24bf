"""A Kubernetes API server over HTTP on 127.0.0.1, backed by a FakeCluster: enough of discovery,
get, list, server-side apply, delete, events and logs for the real `kubernetes` client, so that
igwlab's KubernetesApi runs against something that speaks the protocol."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiohttp import web

from igwlab.sim.process import BackgroundServer
from igwlab.testing.fakecluster import FakeCluster

# group/version -> [(kind, plural, namespaced)]
RESOURCES: dict[str, list[tuple[str, str, bool]]] = {
    "v1": [
        ("Namespace", "namespaces", False),
        ("Node", "nodes", False),
        ("Pod", "pods", True),
        ("Service", "services", True),
        ("ServiceAccount", "serviceaccounts", True),
        ("ConfigMap", "configmaps", True),
        ("Secret", "secrets", True),
        ("Event", "events", True),
    ],
    "apps/v1": [("Deployment", "deployments", True)],
    "rbac.authorization.k8s.io/v1": [
        ("ClusterRole", "clusterroles", False),
        ("ClusterRoleBinding", "clusterrolebindings", False),
        ("Role", "roles", True),
        ("RoleBinding", "rolebindings", True),
    ],
    "apiextensions.k8s.io/v1": [("CustomResourceDefinition", "customresourcedefinitions", False)],
    "gateway.networking.k8s.io/v1": [
        ("GatewayClass", "gatewayclasses", False),
        ("Gateway", "gateways", True),
        ("HTTPRoute", "httproutes", True),
    ],
    "inference.networking.x-k8s.io/v1alpha2": [
        ("InferencePool", "inferencepools", True),
        ("InferenceModel", "inferencemodels", True),
        ("InferenceObjective", "inferenceobjectives", True),
        ("InferenceModelRewrite", "inferencemodelrewrites", True),
    ],
    "inference.networking.k8s.io/v1": [("InferencePool", "inferencepools", True)],
}


@dataclass
class SeenRequest:
    method: str
    path: str
    query: dict[str, str]
    content_type: str


@dataclass
class FakeApiServer:
    cluster: FakeCluster
    requests: list[SeenRequest] = field(default_factory=list)

    def build(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            SeenRequest(request.method, request.path, dict(request.query), request.headers.get("Content-Type", ""))
        )
        parts = [p for p in request.path.split("/") if p]
        if parts == ["version"]:
            git_version = self.cluster.server_version()
            major, minor = git_version.lstrip("v").split(".")[:2]
            return web.json_response({"major": major, "minor": minor, "gitVersion": git_version})
        if parts == ["api"]:
            return web.json_response({"kind": "APIVersions", "versions": ["v1"]})
        if parts == ["apis"]:
            groups = []
            for group_version in RESOURCES:
                if "/" in group_version:
                    group, version = group_version.split("/")
                    entry = {"groupVersion": group_version, "version": version}
                    groups.append({"name": group, "versions": [entry], "preferredVersion": entry})
            return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        if parts[0] == "api":
            group_version, rest = "v1", parts[2:]
        else:
            group_version, rest = "/".join(parts[1:3]), parts[3:]
        resources = RESOURCES.get(group_version)
        if resources is None:
            return _status(404, f"the server could not find the requested resource {request.path}")
        if not rest:
            return web.json_response(
                {
                    "kind": "APIResourceList",
                    "groupVersion": group_version,
                    "resources": [
                        {
                            "name": plural,
                            "singularName": kind.lower(),
                            "namespaced": namespaced,
                            "kind": kind,
                            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                        }
                        for kind, plural, namespaced in resources
                    ],
                }
            )
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        by_plural = {plural: kind for kind, plural, _ in resources}
        kind = by_plural.get(rest[0])
        if kind is None:
            return _status(404, f"no resource {rest[0]} in {group_version}")
        name = rest[1] if len(rest) > 1 else None
        if len(rest) > 2 and rest[2] == "log" and name:
            return web.Response(text=self.cluster.logs(namespace or "", name))
        if kind == "Event":
            items = self.cluster.events(namespace or "")
            return web.json_response(
                {
                    "kind": "EventList",
                    "apiVersion": "v1",
                    "metadata": {},
                    "items": [
                        {"metadata": {"name": f"event-{i}", "namespace": namespace}, **item}
                        for i, item in enumerate(items)
                    ],
                }
            )
        if name is None:
            items = self.cluster.list_objects(group_version, kind, namespace, request.query.get("labelSelector"))
            return web.json_response(
                {"kind": f"{kind}List", "apiVersion": group_version, "metadata": {}, "items": items}
            )
        if request.method == "GET":
            obj = self.cluster.get(group_version, kind, name, namespace)
            return web.json_response(obj) if obj else _status(404, f'{rest[0]} "{name}" not found')
        if request.method == "PATCH":
            body = json.loads(await request.text())
            try:
                return web.json_response(self.cluster.apply(body))
            except Exception as error:
                return _status(404, str(error))
        if request.method == "DELETE":
            if self.cluster.delete(group_version, kind, name, namespace):
                return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Success"})
            return _status(404, f'{rest[0]} "{name}" not found')
        return _status(405, f"{request.method} not supported by the fake API server")


def _status(code: int, message: str) -> web.Response:
    reason = {404: "NotFound", 405: "MethodNotAllowed"}.get(code, "BadRequest")
    return web.json_response(
        {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason, "code": code},
        status=code,
    )


@contextmanager
def running_apiserver(cluster: FakeCluster) -> Iterator[tuple[FakeApiServer, str]]:
    fake = FakeApiServer(cluster)
    server = BackgroundServer(fake.build).start()
    try:
        yield fake, server.url
    finally:
        server.stop()
