"""``dabba cert list|inspect|renew|plan``: MeshCertificates from a terminal, like cmctl."""

from __future__ import annotations

import datetime as dt

import click

from dabba.cli import cert_inspect, cert_view
from dabba.cli.errors import Failure
from dabba.cli.humanize import format_time, human_duration, parse_duration
from dabba.cli.kube import MESHCERT, Cluster, Obj, cluster_options
from dabba.cli.output import Printer, output_option
from dabba.clock import SystemClock
from dabba.k8s import meta


@click.group()
def cert() -> None:
    """Inspect and renew MeshCertificates (workload certificates and mesh CAs)."""


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.timedelta | None:
    """Option callback: ``24h``, ``90m``, ``7d`` → timedelta (a bad value is a usage error)."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


@cert.command("list")
@click.option(
    "--expiring-within",
    metavar="DURATION",
    callback=_duration,
    help="Only certificates whose notAfter is within DURATION (e.g. 24h, 90m, 7d), "
    "expired ones included.",
)
@output_option("wide")
@cluster_options()
def list_(expiring_within: dt.timedelta | None, output: str | None, cluster: Cluster) -> None:
    """MeshCertificates: ready, Secret, notAfter, time left, renewal, issuer."""
    now = SystemClock().now()
    items = sorted(
        (cert_view.cert_summary(o, now) for o in cluster.list_objects(MESHCERT)),
        key=lambda i: (i["namespace"] or "", i["name"] or ""),
    )
    if expiring_within is not None:
        items = [dict(i) for i in cert_view.expiring_within(items, expiring_within)]
    printer = Printer()
    if output in {"json", "yaml"}:
        printer.document({"items": items}, output)
        return
    if not items:
        within = f" expiring within {human_duration(expiring_within)}" if expiring_within else ""
        printer.note(f"No MeshCertificates{within} found in {cluster.target.where()}.")
        return
    printer.show(
        [
            cert_view.list_table(
                items, now, all_namespaces=cluster.target.all_namespaces, wide=output == "wide"
            )
        ]
    )


@cert.command("inspect")
@click.argument("name")
@output_option()
@cluster_options()
def inspect(name: str, output: str | None, cluster: Cluster) -> None:
    """Decode the certificate chain in the Secret and verify it against its ca.crt.

    Shows subject, issuer, serial, validity, SANs, key, usages and fingerprints. The private
    key is never shown: only its algorithm/size and whether it matches the certificate.
    """
    obj = cluster.get(MESHCERT, name)
    namespace = obj["metadata"]["namespace"]
    secret_name = (obj.get("spec") or {}).get("secretName")
    secret = cluster.read_secret(namespace, str(secret_name)) if secret_name else None
    now = SystemClock().now()
    doc = cert_inspect.inspect_document(obj, secret, now)
    printer = Printer()
    if output:
        printer.document(doc, output)
    else:
        printer.show(cert_inspect.inspect_sections(doc, now))
    if secret is None:
        raise Failure(
            f"Secret {secret_name} of MeshCertificate {name} not found in namespace {namespace}: "
            "not issued yet? See the State above and `kubectl get events -n "
            f"{namespace} --field-selector involvedObject.name={name}`"
        )


@cert.command("renew")
@click.argument("name")
@output_option()
@cluster_options()
def renew(name: str, output: str | None, cluster: Cluster) -> None:
    """Ask the operator to re-issue the certificate now (a new key and serial)."""
    obj = cluster.get(MESHCERT, name)
    value = format_time(SystemClock().now())
    key = meta.CERT_RENEW_ANNOTATION
    cluster.annotate(obj, {key: value})
    namespace = obj["metadata"]["namespace"]
    printer = Printer()
    if output:
        printer.document(
            {
                "kind": meta.MESHCERT_KIND,
                "namespace": namespace,
                "name": name,
                "action": "renew",
                "annotation": key,
                "value": value,
                "changed": True,
            },
            output,
        )
        return
    printer.line(
        f"Requested renewal of MeshCertificate {namespace}/{name} ({key}={value}). "
        "The operator re-issues it at its next evaluation; check the new serial with "
        f"`dabba cert inspect {name} -n {namespace}`."
    )


@cert.command("plan")
@output_option()
@cluster_options()
def plan(output: str | None, cluster: Cluster) -> None:
    """What re-issues when (late ones first), and the CA timeline with trusted roots."""
    now = SystemClock().now()
    objs = cluster.list_objects(MESHCERT)
    issuers, missing = _outside_issuers(cluster, objs)
    doc = cert_view.plan_document(objs, now, issuers=issuers, missing_issuers=missing)
    printer = Printer()
    if output:
        printer.document(doc, output)
        return
    if not objs:
        printer.note(f"No MeshCertificates found in {cluster.target.where()}.")
        return
    printer.show(cert_view.plan_sections(doc, now, all_namespaces=cluster.target.all_namespaces))


def _outside_issuers(
    cluster: Cluster, objs: list[Obj]
) -> tuple[list[Obj], list[cert_view.IssuerRef]]:
    """CA MeshCertificates named by ``objs`` but outside the listed scope (e.g. dabba-system)."""
    listed = {
        ((o.get("metadata") or {}).get("namespace"), (o.get("metadata") or {}).get("name"))
        for o in objs
    }
    wanted = {
        ref
        for ref in (cert_view.issuer_ref(o) for o in objs)
        if ref is not None and ref.kind == MESHCERT.kind and (ref.namespace, ref.name) not in listed
    }
    found: list[Obj] = []
    missing: list[cert_view.IssuerRef] = []
    for ref in sorted(wanted, key=lambda r: (r.namespace, r.name)):
        try:
            obj = cluster.read(MESHCERT, ref.namespace, ref.name)
        except Failure:  # why: reading another namespace may be forbidden; show it as unknown
            obj = None
        if obj is None:
            missing.append(ref)
        else:
            found.append(obj)
    return found, missing
