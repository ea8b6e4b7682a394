"""``dabba_api_requests_total``: every request through dabba's client, by verb and resource."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from dabba import telemetry
from dabba.k8s.client import CountingApiClient, request_labels

BASE = "https://127.0.0.1:6443"


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/api/v1/namespaces/ns/secrets/tls", ("get", "secrets")),
        ("GET", "/api/v1/namespaces/ns/secrets?labelSelector=a%3Db", ("list", "secrets")),
        ("GET", "/api/v1/secrets?watch=true&labelSelector=x", ("watch", "secrets")),
        ("POST", "/api/v1/namespaces/ns/secrets", ("create", "secrets")),
        ("PUT", "/api/v1/namespaces/ns/secrets/tls", ("update", "secrets")),
        ("DELETE", "/api/v1/namespaces/ns/secrets/tls", ("delete", "secrets")),
        ("DELETE", "/api/v1/namespaces/ns/secrets", ("deletecollection", "secrets")),
        ("PATCH", "/apis/apps/v1/namespaces/ns/deployments/web", ("patch", "deployments.apps")),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/ns/deployments/web/scale",
            ("patch", "deployments.apps/scale"),
        ),
        (
            "PATCH",
            "/apis/dabba.io/v1alpha1/namespaces/ns/meshcertificates/a/status",
            ("patch", "meshcertificates.dabba.io/status"),
        ),
        (
            "GET",
            "/apis/networking.istio.io/v1/namespaces/ns/virtualservices/web",
            ("get", "virtualservices.networking.istio.io"),
        ),
        ("GET", "/apis/dabba.io/v1alpha1/canaries", ("list", "canaries.dabba.io")),
        ("GET", "/api/v1/namespaces", ("list", "namespaces")),
        ("GET", "/api/v1/namespaces/ns", ("get", "namespaces")),
        ("PUT", "/api/v1/namespaces/ns/finalize", ("update", "namespaces/finalize")),
        ("GET", "/api/v1", ("get", "nonresource")),
        ("GET", "/version", ("get", "nonresource")),
    ],
)
def test_request_labels_name_verb_and_resource_as_rbac_does(
    method: str, path: str, expected: tuple[str, str]
) -> None:
    assert request_labels(method, BASE + path) == expected


class _Response:
    status = 200
    reason = "OK"
    data = b"{}"
    headers = {"content-type": "application/json"}  # noqa: RUF012 - a read-only stand-in

    @property
    def response(self) -> _Response:  # what a _preload_content=False call returns
        return self

    def read(self) -> bytes:
        return self.data

    def getheaders(self) -> dict[str, str]:
        return self.headers

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self.getheaders().get(name.lower(), default)


def _count(verb: str, resource: str) -> float:
    value = telemetry.REGISTRY.get_sample_value(
        "dabba_api_requests_total", {"verb": verb, "resource": resource}
    )
    return value or 0.0


def test_every_call_through_the_client_is_counted_once(monkeypatch: pytest.MonkeyPatch) -> None:
    api = CountingApiClient(client.Configuration(host=BASE))
    sent: list[tuple[str, str]] = []

    def request(method: str, url: str, **_: Any) -> _Response:
        sent.append((method, url))
        return _Response()

    monkeypatch.setattr(api.rest_client, "request", request)
    before_get, before_patch = _count("get", "secrets"), _count("patch", "canaries.dabba.io/status")

    client.CoreV1Api(api).read_namespaced_secret("tls", "ns", _preload_content=False)
    client.CoreV1Api(api).read_namespaced_secret("tls", "ns", _preload_content=False)
    client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        "dabba.io", "v1alpha1", "ns", "canaries", "web", {"status": {}}
    )

    assert len(sent) == 3
    assert _count("get", "secrets") - before_get == 2
    assert _count("patch", "canaries.dabba.io/status") - before_patch == 1
    api.close()


class _Unread(_Response):
    """Counts reads: urllib3 returns a connection to its pool only once the body is read."""

    def __init__(self) -> None:
        self.reads = 0

    def read(self) -> bytes:
        self.reads += 1
        return super().read()


@pytest.mark.parametrize(
    ("path", "read"),
    [
        ("/api/v1/namespaces/ns/secrets/tls", True),
        ("/api/v1/namespaces/ns/secrets?labelSelector=a", True),
        ("/api/v1/namespaces/ns/secrets?watch=true", False),
        ("/api/v1/namespaces/ns/pods/p/log?follow=true", False),
        ("/api/v1/namespaces/ns/secrets?watch=false", True),
    ],
)
def test_the_body_is_read_so_the_connection_goes_back_to_the_pool(
    monkeypatch: pytest.MonkeyPatch, path: str, read: bool
) -> None:
    api = CountingApiClient(client.Configuration(host=BASE))
    response = _Unread()
    monkeypatch.setattr(api.rest_client, "request", lambda *_, **__: response)
    api.call_api("GET", BASE + path)
    assert response.reads == (1 if read else 0)
    api.close()
