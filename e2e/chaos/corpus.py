"""The bad-input corpus: invalid or hostile objects, each with the outcome it must have.

``REJECTED``: the API server refuses the object at apply time (OpenAPI schema, CEL rules,
strict field validation, object size limits) and its answer contains ``message``.

Objects that are valid to the API server but wrong in the world (a target that does not exist,
an issuer that is not a CA, a broken PromQL query, ...) are in ``test_bad_input.py`` as
scenarios, because they need something set up around them; each ends with the condition reason
and Event the operator must report.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

BUILTINS = [
    {"name": "request-success-rate", "thresholdRange": {"min": 99}},
    {"name": "request-duration", "thresholdRange": {"max": 500}},
]
#: Over the API server's 256 KiB limit for all annotations of one object.
ONE_MEGABYTE = "x" * (1 << 20)
DELETE = object()


@dataclass(frozen=True)
class Rejected:
    """What the API server must answer: a substring of its error message."""

    kind: str
    spec: dict[str, Any]
    message: str
    annotations: dict[str, str] | None = None


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if value is DELETE:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def canary(analysis: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    """A valid Canary spec with ``spec`` and ``analysis`` overrides (``DELETE`` removes)."""
    base: dict[str, Any] = {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "app"},
        "router": "istio",
        "service": {"port": 9898},
        "analysis": {
            "interval": "5s",
            "threshold": 1,
            "stepWeights": [20, 50],
            "metrics": BUILTINS,
        },
    }
    out = _merge(base, spec)
    out["analysis"] = _merge(out["analysis"], analysis or {})
    return out


def cert(**spec: Any) -> dict[str, Any]:
    """A valid leaf MeshCertificate spec with overrides (``DELETE`` removes)."""
    base: dict[str, Any] = {
        "secretName": "leaf-tls",
        "serviceAccountName": "web",
        "issuerRef": {"kind": "MeshCertificate", "name": "root"},
        "duration": "1h",
    }
    return _merge(base, spec)


def ca(**spec: Any) -> dict[str, Any]:
    return _merge({"secretName": "ca-tls", "isCA": True, "duration": "2h"}, spec)


def _c(message: str, analysis: dict[str, Any] | None = None, **spec: Any) -> Rejected:
    return Rejected("Canary", canary(analysis, **spec), message)


def _m(message: str, **spec: Any) -> Rejected:
    return Rejected("MeshCertificate", cert(**spec), message)


REJECTED: dict[str, Rejected] = {
    # ---- Canary: wrong types
    "canary threshold as text": _c("must be of type integer", {"threshold": "five"}),
    "canary stepWeights as text": _c("must be of type array", {"stepWeights": "10,20"}),
    "canary port as text": _c("spec.service.port", service={"port": "http"}),
    "canary suspend as text": _c("must be of type boolean", suspend="yes"),
    "canary metrics as a map": _c("must be of type array", {"metrics": "all"}),
    # ---- Canary: out-of-range numbers
    "canary threshold 0": _c("threshold must be at least 1", {"threshold": 0}),
    "canary weight 0": _c("greater than or equal to 1", {"stepWeights": [0, 50]}),
    "canary weight 101": _c("less than or equal to 100", {"stepWeights": [50, 101]}),
    "canary weights decreasing": _c("strictly increasing", {"stepWeights": [50, 20]}),
    "canary weights repeated": _c("strictly increasing", {"stepWeights": [20, 20]}),
    "canary weights empty": _c("stepWeights must not be empty", {"stepWeights": []}),
    "canary weights and stepWeight": _c("not both", {"stepWeight": 10}),
    "canary maxWeight below stepWeight": _c(
        "must be greater than or equal to stepWeight",
        {"stepWeights": DELETE, "stepWeight": 30, "maxWeight": 20},
    ),
    "canary threshold beyond int64": _c("threshold", {"threshold": 2**70}),
    "canary thresholdRange min > max": _c(
        "must not be greater than",
        {"metrics": [{"name": "request-duration", "thresholdRange": {"min": 9, "max": 1}}]},
    ),
    # ---- Canary: malformed durations
    "canary interval in words": _c("interval must be a duration", {"interval": "5 seconds"}),
    "canary interval fraction": _c("interval must be a duration", {"interval": "1.5m"}),
    "canary interval negative": _c("interval must be a duration", {"interval": "-5s"}),
    "canary interval 4s": _c("interval must be at least 5s", {"interval": "4s"}),
    "canary interval units out of order": _c("interval must be a duration", {"interval": "5s1m"}),
    "canary webhook timeout 0": _c(
        "timeout must be greater than 0",
        {"webhooks": [{"name": "h", "type": "event", "url": "http://x", "timeout": "0s"}]},
    ),
    # ---- Canary: metrics, webhooks, routing
    "canary metric without threshold": _c(
        "needs thresholdRange with min and/or max", {"metrics": [{"name": "request-success-rate"}]}
    ),
    "canary custom metric without query": _c(
        "so it needs a query",
        {"metrics": [{"name": "mine", "thresholdRange": {"min": 1}}]},
    ),
    "canary confidence on another metric": _c(
        "only apply to the error-rate-vs-primary",
        {"metrics": [{"name": "request-duration", "thresholdRange": {"max": 5}, "confidence": 1}]},
    ),
    "canary webhook file url": _c(
        "url must be an absolute http or https URL",
        {"webhooks": [{"name": "h", "type": "event", "url": "file:///etc/shadow"}]},
    ),
    "canary webhook unknown type": _c(
        "Unsupported value",
        {"webhooks": [{"name": "h", "type": "exfiltrate", "url": "http://x"}]},
    ),
    "canary metricsServer ftp": _c("metricsServer must be an absolute", metricsServer="ftp://x"),
    "canary unknown router": _c("Unsupported value", router="linkerd"),
    "canary kubernetes router with weights": _c("no traffic weights", router="kubernetes"),
    "canary header name with space": _c(
        "header names must be HTTP tokens", {"match": [{"headers": {"bad header": {"exact": "1"}}}]}
    ),
    "canary target name invalid": _c(
        "targetRef.name must be a valid Deployment name",
        targetRef={"apiVersion": "apps/v1", "kind": "Deployment", "name": "Bad_Name"},
    ),
    "canary target missing": _c("targetRef", targetRef=DELETE),
    "canary unknown field": _c("strict decoding error: unknown field", {"intervall": "5s"}),
    "canary 1 MB annotation": Rejected(
        "Canary",
        canary(),
        "may not be more than 262144 bytes",
        {"chaos.dabba.io/big": ONE_MEGABYTE},
    ),
    # ---- MeshCertificate: durations and numbers
    "cert duration 59s": _m("duration must be at least 60s", duration="59s"),
    "cert duration in words": _m("duration must be a duration", duration="1 day"),
    "cert duration as a number": _m("must be of type string", duration=3600),
    "cert renewBefore not shorter": _m("must be shorter than duration", renewBefore="2h"),
    "cert RSA 1024": _m("RSA keys support size", privateKey={"algorithm": "RSA", "size": 1024}),
    "cert ECDSA 521": _m("ECDSA keys support size 256 or 384", privateKey={"size": 521}),
    "cert Ed25519 with size": _m(
        "Ed25519 keys have a fixed size", privateKey={"algorithm": "Ed25519", "size": 256}
    ),
    "cert isCA as text": _m("must be of type boolean", isCA="yes"),
    # ---- MeshCertificate: SPIFFE ID path tricks
    "spiffe dot-dot": _m(
        "must not be '.' or '..'",
        serviceAccountName=DELETE,
        spiffeId="spiffe://cluster.local/ns/a/../../ns/kube-system/sa/admin",
    ),
    "spiffe dot": _m(
        "must not be '.' or '..'",
        serviceAccountName=DELETE,
        spiffeId="spiffe://cluster.local/ns/a/./sa/web",
    ),
    "spiffe empty segment": _m(
        "path segments must be non-empty",
        serviceAccountName=DELETE,
        spiffeId="spiffe://cluster.local/ns//sa/web",
    ),
    "spiffe percent-encoded dot-dot": _m(
        "path segments must be non-empty",
        serviceAccountName=DELETE,
        spiffeId="spiffe://cluster.local/ns/%2e%2e/sa/web",
    ),
    "spiffe trailing slash": _m(
        "path segments must be non-empty",
        serviceAccountName=DELETE,
        spiffeId="spiffe://cluster.local/ns/a/sa/web/",
    ),
    "spiffe query": _m(
        "path segments must be non-empty",
        serviceAccountName=DELETE,
        spiffeId="spiffe://cluster.local/ns/a/sa/web?admin=1",
    ),
    "spiffe port": _m(
        "spiffeId must be spiffe://",
        serviceAccountName=DELETE,
        spiffeId="spiffe://cluster.local:443/ns/a",
    ),
    "spiffe user info": _m(
        "spiffeId must be spiffe://",
        serviceAccountName=DELETE,
        spiffeId="spiffe://admin@cluster.local/ns/a",
    ),
    "spiffe upper-case trust domain": _m(
        "spiffeId must be spiffe://",
        serviceAccountName=DELETE,
        spiffeId="spiffe://Cluster.Local/ns/a",
    ),
    "spiffe upper-case scheme": _m(
        "spiffeId must be spiffe://",
        serviceAccountName=DELETE,
        spiffeId="SPIFFE://cluster.local/ns/a",
    ),
    "spiffe leaf without path": _m(
        "needs a path", serviceAccountName=DELETE, spiffeId="spiffe://cluster.local"
    ),
    "spiffe and serviceAccountName": _m("not both", spiffeId="spiffe://cluster.local/ns/a/sa/b"),
    "trust domain with slash": _m(
        "trustDomain may only contain", trustDomain="cluster.local/ns/kube-system"
    ),
    # ---- MeshCertificate: names, enums, cross-field rules
    "cert invalid IP": _m("valid IPv4 or IPv6", ipAddresses=["999.1.1.1"]),
    "cert DNS name with underscore": _m("lowercase DNS-1123", dnsNames=["Bad_Name.example.com"]),
    "cert IP in dnsNames": _m("IP addresses belong in ipAddresses", dnsNames=["10.0.0.1"]),
    "cert secretName upper-case": _m("valid Secret name", secretName="UPPER"),
    "cert unknown usage": _m("Unsupported value", usages=["world domination"]),
    "cert unknown issuer kind": _m(
        "Unsupported value", issuerRef={"kind": "ClusterIssuer", "name": "x"}
    ),
    "cert leaf without issuer": _m("issuerRef is required", issuerRef=DELETE),
    "cert leaf without identity": _m("needs an identity", serviceAccountName=DELETE),
    "cert trustBundle on a leaf": _m(
        "trustBundle can only be set on a CA", trustBundle={"configMapName": "bundle"}
    ),
    "cert istio format on a leaf": _m("needs isCA true", outputFormat="istio"),
    "cert template claims dabba annotations": _m(
        "cannot set keys under dabba.io/",
        secretTemplate={"annotations": {"dabba.io/issuer-fingerprint": "forged"}},
    ),
    "cert restart a Pod": _m("Unsupported value", restartOnRotation=[{"kind": "Pod", "name": "p"}]),
    "cert 1 MB annotation": Rejected(
        "MeshCertificate", cert(), "may not be more than 262144 bytes", {"x.io/big": ONE_MEGABYTE}
    ),
}
