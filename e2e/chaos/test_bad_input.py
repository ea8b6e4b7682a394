"""Bad input: every invalid or hostile object is refused at apply or reported; dabba stays up.

``corpus.REJECTED`` (data) must be refused by the API server with a clear message. The
operator-judged cases below are valid to the API server but wrong in the world; each must end
in a status condition with a named reason and an Event, while the operator keeps serving the
valid objects beside them (a good release still promotes, a certificate whose Secret was
overwritten with garbage is re-issued).
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from kubernetes import client

from chaos import corpus
from chaos.kit import GROUP, MARKS, VERSION, Evidence, canary
from chaos.kit import SafeWatcher as Watcher
from e2ekit import Operator, custom, events_for, secret_data
from localcluster import cluster as lc
from localcluster import pki

pytestmark = [*MARKS]

PLURALS = {"Canary": "canaries", "MeshCertificate": "meshcertificates"}


def create(
    api: client.ApiClient,
    namespace: str,
    kind: str,
    name: str,
    spec: dict[str, Any],
    annotations: dict[str, str] | None = None,
) -> None:
    """Create as ``kubectl apply`` would: strict field validation."""
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kind,
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": spec,
    }
    custom(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURALS[kind], body, field_validation="Strict"
    )


def test_the_api_server_refuses_every_invalid_object_with_a_clear_message(
    k8s_api: client.ApiClient, namespace: str, operator: Operator
) -> None:
    wrong: list[str] = []
    for i, (case, item) in enumerate(corpus.REJECTED.items()):
        try:
            create(k8s_api, namespace, item.kind, f"bad-{i}", item.spec, item.annotations)
        except client.exceptions.ApiException as exc:
            body = exc.body.decode() if isinstance(exc.body, bytes) else str(exc.body)
            if exc.status not in (400, 413, 422) or item.message not in body:
                wrong.append(f"{case}: HTTP {exc.status}, {body[:400]}")
        else:
            wrong.append(f"{case}: accepted")
    print(f"[chaos] {len(corpus.REJECTED)} invalid objects refused at apply")
    assert not wrong, "\n".join(wrong)
    assert not custom(k8s_api).list_namespaced_custom_object(GROUP, VERSION, namespace, "canaries")[
        "items"
    ]
    assert operator.healthy()


# --------------------------------------------------------------------------------------------
# operator-judged


def _condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return dict(c)
    return {}


def _get(api: client.ApiClient, namespace: str, kind: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = custom(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURALS[kind], name
    )
    return obj


def _reported(
    api: client.ApiClient,
    namespace: str,
    kind: str,
    name: str,
    *,
    condition: str,
    status_: str,
    reasons: set[str],
    timeout: float = 60,
) -> dict[str, Any]:
    """Wait until ``name`` has the condition with one of ``reasons`` and a Warning Event
    with the same reason."""

    def there() -> bool:
        cond = _condition(_get(api, namespace, kind, name), condition)
        return (
            cond.get("status") == status_
            and cond.get("reason") in reasons
            and any(
                e["reason"] == cond["reason"] and e["type"] == "Warning"
                for e in events_for(api, namespace, name)
            )
        )

    lc.wait_for(
        f"{kind} {name}: {condition}={status_} ({'/'.join(sorted(reasons))}) and its Event",
        there,
        timeout,
        on_fail=lambda: json.dumps(
            {
                "status": _get(api, namespace, kind, name).get("status"),
                "events": [(e["reason"], e["message"]) for e in events_for(api, namespace, name)],
            },
            indent=1,
        )[-3000:],
    )
    cond = _condition(_get(api, namespace, kind, name), condition)
    assert len(cond.get("message", "")) > 10, f"{name}: a message that explains: {cond}"
    return cond


def _tls_secret(api: client.ApiClient, namespace: str, name: str, data: dict[str, bytes]) -> None:
    client.CoreV1Api(api).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=name),
            type="Opaque",
            data={k: base64.b64encode(v).decode() for k, v in data.items()},
        ),
    )


def _evaluation_failures(operator: Operator, namespace: str) -> list[str]:
    """Unhandled exceptions the operator logged for ``namespace`` (a crash in a handler)."""
    out = []
    for line in operator.log.read_text(errors="replace").splitlines():
        if namespace in line and ('"level": "error"' in line or "Traceback" in line):
            out.append(line[:600])
    return out


def test_operator_judged_bad_input_is_reported_and_valid_objects_keep_being_served(  # noqa: PLR0915
    k8s_api: client.ApiClient, namespace: str, operator: Operator, evidence: Evidence
) -> None:
    apps = client.AppsV1Api(k8s_api)
    pid = operator.proc.pid if isinstance(operator, Operator) else None
    ns = namespace

    # Valid objects that must keep being served beside the hostile ones.
    create(k8s_api, ns, "MeshCertificate", "root", corpus.ca(secretName="root-ca"))
    create(k8s_api, ns, "MeshCertificate", "web", corpus.cert(secretName="web-tls"))
    create(
        k8s_api,
        ns,
        "MeshCertificate",
        "big",  # a 200 KB annotation: large but legal
        corpus.cert(secretName="big-tls", serviceAccountName="big"),
        {"chaos.dabba.io/big": "y" * 200_000},
    )
    apps.create_namespaced_deployment(ns, canary.deployment("shared"))
    custom(k8s_api).create_namespaced_custom_object(
        GROUP, VERSION, ns, "canaries", canary.canary_body("shared", "istio")
    )

    # A Canary whose target does not exist.
    custom(k8s_api).create_namespaced_custom_object(
        GROUP, VERSION, ns, "canaries", canary.canary_body("ghost", "istio")
    )
    # A custom metric whose PromQL does not parse.
    apps.create_namespaced_deployment(ns, canary.deployment("promql"))
    body = canary.canary_body(
        "promql",
        "istio",
        metrics=[{"name": "broken", "query": "sum(rate(oops[1m]", "thresholdRange": {"min": 1}}],
    )
    custom(k8s_api).create_namespaced_custom_object(GROUP, VERSION, ns, "canaries", body)
    # Issuers that cannot sign: a leaf in a Secret, a leaf MeshCertificate, garbage, nothing.
    not_ca, not_ca_key = pki.self_signed("not a CA", ca=False)
    leaf_pem, leaf_key = not_ca.public_bytes(serialization.Encoding.PEM), pki.key_pem(not_ca_key)
    evidence.add_key(leaf_key)
    _tls_secret(
        k8s_api, ns, "leaf-as-ca", {"tls.crt": leaf_pem, "tls.key": leaf_key, "ca.crt": leaf_pem}
    )
    _tls_secret(k8s_api, ns, "garbage-ca", {"tls.crt": os.urandom(300), "tls.key": b"\x00\xff"})
    issuers = {
        "secret-not-ca": {"kind": "Secret", "name": "leaf-as-ca", "format": "tls"},
        "leaf-not-ca": {"kind": "MeshCertificate", "name": "web"},
        "garbage-issuer": {"kind": "Secret", "name": "garbage-ca", "format": "tls"},
        "missing-issuer": {"kind": "MeshCertificate", "name": "nobody"},
    }
    for name, ref in issuers.items():
        create(
            k8s_api,
            ns,
            "MeshCertificate",
            name,
            corpus.cert(secretName=f"{name}-tls", serviceAccountName=name, issuerRef=ref),
        )

    # Reaching into another namespace: its workload identity, its CA Secret.
    create(
        k8s_api,
        ns,
        "MeshCertificate",
        "impersonator",
        corpus.cert(
            secretName="impersonator-tls",
            serviceAccountName=corpus.DELETE,
            spiffeId="spiffe://cluster.local/ns/kube-system/sa/admin",
        ),
    )
    create(
        k8s_api,
        ns,
        "MeshCertificate",
        "borrowed-ca",
        corpus.cert(
            secretName="borrowed-ca-tls",
            serviceAccountName="borrowed",
            issuerRef={
                "kind": "Secret",
                "name": "cacerts",
                "namespace": "istio-system",
                "format": "istio",
            },
        ),
    )

    # The broken-PromQL run goes first: its three Error ticks pass while the rest is checked.
    canary.wait_phase(k8s_api, ns, "promql", "Initialized", timeout=60)
    canary.release(k8s_api, ns, "promql", "promql:2")

    # ---- reported in status and Events
    _reported(
        k8s_api,
        ns,
        "Canary",
        "ghost",
        condition="Ready",
        status_="False",
        reasons={"TargetNotFound"},
    )
    for name in ("secret-not-ca", "leaf-not-ca"):
        cond = _reported(
            k8s_api,
            ns,
            "MeshCertificate",
            name,
            condition="IssuerNotReady",
            status_="True",
            reasons={"IssuerNotCA", "IssuerUnavailable"},
        )
        assert "not a CA" in cond["message"], cond
    for name in ("garbage-issuer", "missing-issuer"):
        _reported(
            k8s_api,
            ns,
            "MeshCertificate",
            name,
            condition="IssuerNotReady",
            status_="True",
            reasons={"IssuerUnavailable", "IssuerNotCA"},
        )
    for name, says in (
        ("impersonator", "claims namespace 'kube-system'"),
        ("borrowed-ca", "must be in this MeshCertificate's namespace"),
    ):
        cond = _reported(
            k8s_api,
            ns,
            "MeshCertificate",
            name,
            condition="Ready",
            status_="False",
            reasons={"InvalidSpec"},
        )
        assert says in cond["message"], cond
        assert secret_data(k8s_api, ns, f"{name}-tls") is None, f"{name}: nothing issued"
    for name in ("secret-not-ca", "leaf-not-ca", "garbage-issuer", "missing-issuer"):
        obj = _get(k8s_api, ns, "MeshCertificate", name)
        assert _condition(obj, "Ready").get("status") == "False", obj["status"]
        assert secret_data(k8s_api, ns, f"{name}-tls") is None, f"{name}: nothing issued"

    # ---- two Canaries on one target: the second is refused, the first is untouched
    canary.wait_phase(k8s_api, ns, "shared", "Initialized", timeout=60)
    second = canary.canary_body("shared-2", "istio")
    second["spec"]["targetRef"]["name"] = "shared"
    second["spec"]["service"]["name"] = "shared"
    custom(k8s_api).create_namespaced_custom_object(GROUP, VERSION, ns, "canaries", second)
    cond = _reported(
        k8s_api,
        ns,
        "Canary",
        "shared-2",
        condition="Ready",
        status_="False",
        reasons={"InvalidSpec"},
    )
    assert "two Canaries" in cond["message"], cond

    # ---- a Secret overwritten with garbage (and a foreign key) is re-issued
    lc.wait_for(
        "web Ready",
        lambda: (
            _condition(_get(k8s_api, ns, "MeshCertificate", "web"), "Ready").get("status") == "True"
        ),
        60,
    )
    web = _get(k8s_api, ns, "MeshCertificate", "web")
    serial = web["status"]["serialNumber"]
    client.CoreV1Api(k8s_api).patch_namespaced_secret(
        "web-tls",
        ns,
        {
            "data": {
                "tls.crt": base64.b64encode(leaf_key + os.urandom(64)).decode(),
                "tls.key": base64.b64encode(os.urandom(200)).decode(),
                "ca.crt": base64.b64encode(b"\x00" * 50).decode(),
            }
        },
    )
    lc.wait_for(
        "web re-issued after garbage",
        lambda: (
            (o := _get(k8s_api, ns, "MeshCertificate", "web"))["status"].get("serialNumber")
            != serial
            and _condition(o, "Ready").get("status") == "True"
        ),
        60,
    )
    data = secret_data(k8s_api, ns, "web-tls")
    assert data is not None
    leaf = x509.load_pem_x509_certificates(data["tls.crt"])[0]
    assert (
        format(leaf.serial_number, "x")
        == _get(k8s_api, ns, "MeshCertificate", "web")["status"]["serialNumber"]
    )
    lc.wait_for(
        "an Issued event naming what was wrong",
        lambda: any(
            e["reason"] == "Issued"
            and any(r in e["message"] for r in ("InvalidCertificate", "InvalidPrivateKey"))
            for e in events_for(k8s_api, ns, "web")
        ),
        15,
    )

    # ---- malformed PromQL: Error results, never a promotion, the run fails with 100/0
    final = canary.wait_phase(k8s_api, ns, "promql", "Failed", "Succeeded", timeout=90)
    assert final["phase"] == "Failed", final
    errors = [a for a in final["lastAnalysis"] if a["result"] == "Error"]
    assert errors, final["lastAnalysis"]
    assert any("parse" in json.dumps(a).lower() for a in errors), errors
    assert final.get("lastPromotedRevision") != final["revision"]
    assert canary.live_weights(k8s_api, "istio", ns, "promql") == (100, 0)
    assert canary.primary_image(k8s_api, ns, "promql").endswith("podinfo:1")
    assert any(e["type"] == "Warning" for e in events_for(k8s_api, ns, "promql"))

    # ---- the routing object edited by hand mid-run: dabba restores its weights and finishes
    watch = Watcher(k8s_api, "istio", ns, "shared")
    canary.release(k8s_api, ns, "shared", "shared:2")
    lc.wait_for(
        "shared at 20 %",
        lambda: canary.live_weights(k8s_api, "istio", ns, "shared") == (80, 20),
        60,
    )
    vs = custom(k8s_api).get_namespaced_custom_object(
        "networking.istio.io", "v1", ns, "virtualservices", "shared"
    )
    for route in vs["spec"]["http"]:
        for dest in route.get("route", []):
            dest["weight"] = 100 if dest["destination"]["host"].startswith("shared-canary") else 0
    custom(k8s_api).replace_namespaced_custom_object(
        "networking.istio.io", "v1", ns, "virtualservices", "shared", vs
    )
    final = canary.wait_phase(k8s_api, ns, "shared", "Succeeded", "Failed", timeout=120)
    seen = [w for _, w in watch.stop() if w is not None]
    assert final["phase"] == "Succeeded", final
    assert (0, 100) in seen, "the hand edit was live for a moment"
    after_edit = seen[seen.index((0, 100)) + 1 :]
    assert after_edit, seen
    assert after_edit[0] in ((80, 20), (50, 50)), f"dabba put its own weights back: {seen}"
    assert canary.live_weights(k8s_api, "istio", ns, "shared") == (100, 0)
    assert canary.primary_image(k8s_api, ns, "shared").endswith("shared:2")
    # The second Canary never acted on the shared target.
    assert canary.status(k8s_api, ns, "shared-2").get("phase") in (None, "")

    # ---- valid objects served, operator healthy and never crashed
    for name in ("root", "web", "big"):
        lc.wait_for(
            f"{name} Ready",
            lambda n=name: (
                _condition(_get(k8s_api, ns, "MeshCertificate", n), "Ready").get("status") == "True"
            ),
            60,
        )
    assert operator.healthy()
    if isinstance(operator, Operator):  # the chart's pods: healthy is what we can see
        assert operator.proc.pid == pid, "the operator restarted"
        assert operator.proc.poll() is None
    failures = _evaluation_failures(operator, ns)
    assert not failures, "\n".join(failures)
    print("[chaos] operator-judged bad input: 11 objects reported, 5 valid objects served")
