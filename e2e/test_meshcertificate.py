"""MeshCertificate end to end: issue, verify, rotate, re-issue on drift, recover, never leak.

Against the local control plane with the operator running as `dabba run`; every wait polls
with a deadline. Certificates of 2 minutes rotate within the test (renewBefore defaults to a
third of the lifetime, minus up to 5 % jitter).
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import socket
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client

from e2ekit import Operator, custom, events_for, scan_for_private_keys, secret_data
from localcluster import cluster as lc
from localcluster import pki

pytestmark = pytest.mark.e2e

GROUP, VERSION, PLURAL = "dabba.io", "v1alpha1", "meshcertificates"

#: Private key material seen during the session, for the leak scan at the end.
SEEN_KEYS: list[bytes] = []


def apply(api: client.ApiClient, namespace: str, name: str, spec: dict[str, Any]) -> None:
    custom(api).create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MeshCertificate",
            "metadata": {"name": name},
            "spec": spec,
        },
    )


def get(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = custom(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name
    )
    return obj


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in obj.get("status", {}).get("conditions") or []:
        if c["type"] == type_:
            return dict(c)
    return None


def wait_ready(
    api: client.ApiClient,
    namespace: str,
    name: str,
    timeout: float = 30,
    serial_not: str | None = None,
) -> dict[str, Any]:
    def ready() -> bool:
        obj = get(api, namespace, name)
        cond = condition(obj, "Ready")
        return (
            cond is not None
            and cond["status"] == "True"
            and obj["status"].get("serialNumber") not in (None, serial_not)
        )

    lc.wait_for(f"MeshCertificate {namespace}/{name} Ready", ready, timeout)
    return get(api, namespace, name)


def leaf_of(data: dict[str, bytes]) -> x509.Certificate:
    SEEN_KEYS.append(data["tls.key"])
    return x509.load_pem_x509_certificates(data["tls.crt"])[0]


def root(api: client.ApiClient, namespace: str, name: str = "root") -> None:
    apply(
        api,
        namespace,
        name,
        {"secretName": f"{name}-ca", "isCA": True, "commonName": f"{name} CA", "duration": "2h"},
    )
    wait_ready(api, namespace, name)


def write_files(tmp: Path, data: dict[str, bytes], prefix: str) -> tuple[Path, Path, Path]:
    paths = tuple(tmp / f"{prefix}-{k}" for k in ("tls.crt", "tls.key", "ca.crt"))
    for path, key in zip(paths, ("tls.crt", "tls.key", "ca.crt"), strict=True):
        path.write_bytes(data[key])
    return paths  # type: ignore[return-value]


def mtls_handshake(
    server: tuple[Path, Path, Path], client_files: tuple[Path, Path, Path], server_name: str
) -> str | None:
    """One mutual-TLS handshake on loopback; None on success, else the error."""
    srv_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    srv_ctx.load_cert_chain(server[0], server[1])
    srv_ctx.load_verify_locations(server[2])
    srv_ctx.verify_mode = ssl.CERT_REQUIRED
    cli_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cli_ctx.load_cert_chain(client_files[0], client_files[1])
    cli_ctx.load_verify_locations(client_files[2])
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server_error: list[str] = []

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with srv_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as exc:
            server_error.append(str(exc))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            cli_ctx.wrap_socket(raw, server_hostname=server_name) as tls,
        ):
            tls.recv(2)
    except (ssl.SSLError, OSError) as exc:
        return str(exc)
    finally:
        thread.join(timeout=5)
        listener.close()
    return server_error[0] if server_error else None


def test_short_lived_certificate_verifies_has_exact_sans_and_rotates(
    k8s_api: client.ApiClient, namespace: str, operator: Operator, tmp_path: Path
) -> None:
    root(k8s_api, namespace)
    common = {"issuerRef": {"kind": "MeshCertificate", "name": "root"}, "duration": "2m"}
    apply(
        k8s_api,
        namespace,
        "payments",
        {
            **common,
            "secretName": "payments-mtls",
            "serviceAccountName": "payments",
            "service": "payments",
            "dnsNames": ["payments.example.com"],
            "ipAddresses": ["10.1.2.3"],
        },
    )
    apply(
        k8s_api,
        namespace,
        "checkout",
        {**common, "secretName": "checkout-mtls", "serviceAccountName": "checkout"},
    )
    first = wait_ready(k8s_api, namespace, "payments")
    wait_ready(k8s_api, namespace, "checkout")

    data = secret_data(k8s_api, namespace, "payments-mtls")
    assert data is not None
    leaf = leaf_of(data)
    crt, _key, ca = write_files(tmp_path, data, "payments")
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca), str(crt)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr

    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        f"spiffe://cluster.local/ns/{namespace}/sa/payments"
    ]
    assert sorted(san.get_values_for_type(x509.DNSName)) == sorted(
        [
            "payments",
            f"payments.{namespace}",
            f"payments.{namespace}.svc",
            f"payments.{namespace}.svc.cluster.local",
            "payments.example.com",
        ]
    )
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.1.2.3")]
    assert first["status"]["serialNumber"] == format(leaf.serial_number, "x")

    # Real mutual TLS between two workloads, each loading its own Secret.
    checkout = secret_data(k8s_api, namespace, "checkout-mtls")
    assert checkout is not None
    leaf_of(checkout)
    server = write_files(tmp_path, data, "srv")
    peer = write_files(tmp_path, checkout, "cli")
    assert mtls_handshake(server, peer, f"payments.{namespace}.svc") is None

    # Rotation: by 1m20s after issuance (a third of 2m before expiry, less jitter).
    issued_at = leaf.not_valid_before_utc
    old_key = serialization.load_pem_private_key(data["tls.key"], None).public_key()
    rotated = wait_ready(
        k8s_api, namespace, "payments", timeout=110, serial_not=first["status"]["serialNumber"]
    )
    new = secret_data(k8s_api, namespace, "payments-mtls")
    assert new is not None
    new_leaf = leaf_of(new)
    assert new_leaf.serial_number != leaf.serial_number
    assert new_leaf.not_valid_before_utc - issued_at <= dt.timedelta(seconds=80 + 2)
    new_key = serialization.load_pem_private_key(new["tls.key"], None).public_key()
    assert new_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != old_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    status = rotated["status"]
    assert status["serialNumber"] == format(new_leaf.serial_number, "x")
    assert status["notAfter"] == new_leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert status["revision"] >= 2
    lc.wait_for(
        "metrics to show the new expiry",
        lambda: (
            operator.metric(
                "dabba_certificate_expiration_timestamp_seconds",
                namespace=namespace,
                name="payments",
            )
            == new_leaf.not_valid_after_utc.timestamp()
        ),
        10,
    )

    lc.wait_for(
        "checkout rotated too",
        lambda: (
            (d := secret_data(k8s_api, namespace, "checkout-mtls")) is not None
            and leaf_of(d).serial_number != leaf_of(checkout).serial_number
        ),
        60,
    )
    checkout_new = secret_data(k8s_api, namespace, "checkout-mtls")
    assert checkout_new is not None
    assert (
        mtls_handshake(
            write_files(tmp_path, new, "srv2"),
            write_files(tmp_path, checkout_new, "cli2"),
            f"payments.{namespace}.svc",
        )
        is None
    )


def test_a_certificate_from_another_root_is_refused(
    k8s_api: client.ApiClient, namespace: str, operator: Operator, tmp_path: Path
) -> None:
    root(k8s_api, namespace, "root")
    root(k8s_api, namespace, "other")
    apply(
        k8s_api,
        namespace,
        "server",
        {
            "secretName": "server-tls",
            "service": "server",
            "issuerRef": {"kind": "MeshCertificate", "name": "root"},
        },
    )
    apply(
        k8s_api,
        namespace,
        "intruder",
        {
            "secretName": "intruder-tls",
            "serviceAccountName": "intruder",
            "issuerRef": {"kind": "MeshCertificate", "name": "other"},
        },
    )
    apply(
        k8s_api,
        namespace,
        "friend",
        {
            "secretName": "friend-tls",
            "serviceAccountName": "friend",
            "issuerRef": {"kind": "MeshCertificate", "name": "root"},
        },
    )
    for name in ("server", "intruder", "friend"):
        wait_ready(k8s_api, namespace, name)
    files = {}
    for name in ("server", "intruder", "friend"):
        data = secret_data(k8s_api, namespace, f"{name}-tls")
        assert data is not None
        leaf_of(data)
        files[name] = write_files(tmp_path, data, name)
    host = f"server.{namespace}.svc"
    assert mtls_handshake(files["server"], files["friend"], host) is None
    error = mtls_handshake(files["server"], files["intruder"], host)
    assert error is not None


def _overwrite(api: client.ApiClient, namespace: str, name: str, **data: bytes) -> None:
    client.CoreV1Api(api).patch_namespaced_secret(
        name,
        namespace,
        {"data": {k.replace("_", "."): base64.b64encode(v).decode() for k, v in data.items()}},
    )


@pytest.fixture
def issued(
    k8s_api: client.ApiClient, namespace: str, operator: Operator
) -> tuple[str, dict[str, Any]]:
    root(k8s_api, namespace)
    apply(
        k8s_api,
        namespace,
        "web",
        {
            "secretName": "web-tls",
            "service": "web",
            "issuerRef": {"kind": "MeshCertificate", "name": "root"},
        },
    )
    return namespace, wait_ready(k8s_api, namespace, "web")


def _reissued_because(
    api: client.ApiClient, namespace: str, before: dict[str, Any], reason: str
) -> None:
    after = wait_ready(api, namespace, "web", serial_not=before["status"]["serialNumber"])
    data = secret_data(api, namespace, "web-tls")
    assert data is not None
    leaf = leaf_of(data)
    assert after["status"]["serialNumber"] == format(leaf.serial_number, "x")
    key = serialization.load_pem_private_key(data["tls.key"], None)
    assert key.public_key().public_bytes(  # the key matches the certificate again
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    lc.wait_for(
        f"an Issued event naming {reason}",
        lambda: any(
            e["reason"] == "Issued" and reason in e["message"]
            for e in events_for(api, namespace, "web")
        ),
        15,
    )


def test_deleted_secret_is_reissued(
    k8s_api: client.ApiClient, issued: tuple[str, dict[str, Any]]
) -> None:
    namespace, before = issued
    client.CoreV1Api(k8s_api).delete_namespaced_secret("web-tls", namespace)
    _reissued_because(k8s_api, namespace, before, "DoesNotExist")


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        pytest.param("wrong-san", "IdentityChanged", id="certificate with the wrong SANs"),
        pytest.param("other-key", "InvalidKeyPair", id="key that does not match the certificate"),
        pytest.param("garbage", "InvalidCertificate", id="garbage instead of a certificate"),
    ],
)
def test_edited_secret_is_reissued_with_the_reason(
    k8s_api: client.ApiClient, issued: tuple[str, dict[str, Any]], edit: str, reason: str
) -> None:
    namespace, before = issued
    key = pki.key_pem(ec.generate_private_key(ec.SECP256R1()))  # a foreign key (of no certificate)
    if edit == "wrong-san":
        # A certificate signed by the right root but for other names: craft by reusing the
        # current key so only the identity differs.
        data = secret_data(k8s_api, namespace, "web-tls")
        assert data is not None
        current_key = serialization.load_pem_private_key(data["tls.key"], None)
        assert isinstance(current_key, ec.EllipticCurvePrivateKey)
        root_data = secret_data(k8s_api, namespace, "root-ca")
        assert root_data is not None
        ca_key = serialization.load_pem_private_key(root_data["tls.key"], None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        ca_cert = x509.load_pem_x509_certificate(root_data["tls.crt"])
        now = dt.datetime.now(dt.UTC)
        forged = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web")]))
            .issuer_name(ca_cert.subject)
            .public_key(current_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("evil.example.com")]), False)
            .sign(ca_key, hashes.SHA256())
        )
        _overwrite(
            k8s_api, namespace, "web-tls", tls_crt=forged.public_bytes(serialization.Encoding.PEM)
        )
    elif edit == "other-key":
        _overwrite(k8s_api, namespace, "web-tls", tls_key=key)
    else:
        _overwrite(k8s_api, namespace, "web-tls", tls_crt=b"garbage")
    _reissued_because(k8s_api, namespace, before, reason)


def test_spec_san_change_reissues(
    k8s_api: client.ApiClient, issued: tuple[str, dict[str, Any]]
) -> None:
    namespace, before = issued
    custom(k8s_api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "web", {"spec": {"dnsNames": ["web.example.com"]}}
    )
    _reissued_because(k8s_api, namespace, before, "IdentityChanged")
    data = secret_data(k8s_api, namespace, "web-tls")
    assert data is not None
    san = leaf_of(data).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "web.example.com" in san.get_values_for_type(x509.DNSName)


def test_manual_renew_annotation_forces_a_new_serial(
    k8s_api: client.ApiClient, issued: tuple[str, dict[str, Any]]
) -> None:
    namespace, before = issued
    issued_at = dt.datetime.fromisoformat(before["status"]["notBefore"].replace("Z", "+00:00"))
    # A request is served by a certificate issued after it; stamps have whole seconds.
    lc.wait_for(
        "a clock second after the issuance",
        lambda: dt.datetime.now(dt.UTC) >= issued_at + dt.timedelta(seconds=1),
        5,
    )
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    custom(k8s_api).patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        "web",
        {"metadata": {"annotations": {"dabba.io/renew-requested-at": now}}},
    )
    _reissued_because(k8s_api, namespace, before, "ManualRenewal")


def test_missing_issuer_backs_off_then_recovers(
    k8s_api: client.ApiClient, namespace: str, operator: Operator
) -> None:
    apply(
        k8s_api,
        namespace,
        "orphan",
        {
            "secretName": "orphan-tls",
            "service": "orphan",
            "issuerRef": {"kind": "Secret", "name": "external-ca", "format": "tls"},
        },
    )

    def backing_off() -> bool:
        obj = get(k8s_api, namespace, "orphan")
        cond = condition(obj, "IssuerNotReady")
        return (
            cond is not None
            and cond["status"] == "True"
            and obj["status"].get("failedIssuanceAttempts", 0) >= 2
        )

    lc.wait_for("IssuerNotReady with backoff", backing_off, 30)
    status = get(k8s_api, namespace, "orphan")["status"]
    assert "not found" in status["lastFailureReason"]
    assert status["lastFailureTime"]
    ready = condition(get(k8s_api, namespace, "orphan"), "Ready")
    assert ready is not None
    assert ready["status"] == "False"

    # The CA appears (a plain tls Secret made elsewhere): dabba picks it up by itself.
    ca, key = pki.self_signed("external CA", ca=True)
    pem = ca.public_bytes(serialization.Encoding.PEM)
    client.CoreV1Api(k8s_api).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="external-ca"),
            type="kubernetes.io/tls",
            data={
                "tls.crt": base64.b64encode(pem).decode(),
                "tls.key": base64.b64encode(pki.key_pem(key)).decode(),
                "ca.crt": base64.b64encode(pem).decode(),
            },
        ),
    )
    # Backoff is 5 s doubling; within a minute the next attempt finds the CA.
    obj = wait_ready(k8s_api, namespace, "orphan", timeout=60)
    assert obj["status"]["failedIssuanceAttempts"] == 0
    data = secret_data(k8s_api, namespace, "orphan-tls")
    assert data is not None
    assert leaf_of(data).issuer == ca.subject


def test_restart_on_rotation_rolls_the_workload(
    k8s_api: client.ApiClient, namespace: str, operator: Operator
) -> None:
    apps = client.AppsV1Api(k8s_api)
    labels = {"app": "api"}
    apps.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="api"),
            spec=client.V1DeploymentSpec(
                replicas=1,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(
                        containers=[client.V1Container(name="api", image="registry.invalid/api:1")]
                    ),
                ),
            ),
        ),
    )
    root(k8s_api, namespace)
    apply(
        k8s_api,
        namespace,
        "api",
        {
            "secretName": "api-tls",
            "service": "api",
            "issuerRef": {"kind": "MeshCertificate", "name": "root"},
            "restartOnRotation": [{"kind": "Deployment", "name": "api"}],
        },
    )
    obj = wait_ready(k8s_api, namespace, "api")

    def stamped() -> bool:
        tpl = apps.read_namespaced_deployment("api", namespace).spec.template.metadata
        value = (tpl.annotations or {}).get("dabba.io/certificate-api")
        return value == obj["status"]["fingerprintSHA256"][:16]

    lc.wait_for("the Deployment's pod template to carry the new certificate", stamped, 15)


def test_two_hundred_certificates_renew_spread_out(
    k8s_api: client.ApiClient, namespace: str, operator: Operator
) -> None:
    root(k8s_api, namespace)
    count = 200
    for i in range(count):
        apply(
            k8s_api,
            namespace,
            f"w{i:03d}",
            {
                "secretName": f"w{i:03d}-tls",
                "serviceAccountName": f"w{i:03d}",
                "duration": "1h",
                "issuerRef": {"kind": "MeshCertificate", "name": "root"},
            },
        )

    def all_ready() -> bool:
        items = custom(k8s_api).list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)[
            "items"
        ]
        return (
            sum(1 for o in items if (c := condition(o, "Ready")) and c["status"] == "True")
            == count + 1
        )

    lc.wait_for("200 certificates Ready", all_ready, 120)
    items = [
        o
        for o in custom(k8s_api).list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)[
            "items"
        ]
        if o["metadata"]["name"] != "root"
    ]

    def ts(value: str) -> float:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()

    renewals = sorted(ts(o["status"]["renewalTime"]) for o in items)
    # Jitter: each renews up to 5 % of the lifetime (180 s) before the default third.
    jitters = [ts(o["status"]["notAfter"]) - 1200 - ts(o["status"]["renewalTime"]) for o in items]
    assert all(-1 <= j <= 181 for j in jitters), (min(jitters), max(jitters))
    assert renewals[-1] - renewals[0] >= 120, "renewals bunched together"
    per_second: dict[int, int] = {}
    for r in renewals:
        per_second[int(r)] = per_second.get(int(r), 0) + 1
    assert max(per_second.values()) <= 10, f"a burst of {max(per_second.values())} in 1 s"


def test_no_private_key_material_in_logs_events_or_status(
    k8s_api: client.ApiClient, operator: Operator
) -> None:
    """Runs last in this module: scans everything the tests above produced."""
    assert SEEN_KEYS, "the tests above should have seen keys"
    found = scan_for_private_keys(k8s_api, SEEN_KEYS, [operator.log])
    assert not found.leaks, "private key material:\n" + "\n".join(found.leaks[:50])
