"""``dabba status``: every Canary and MeshCertificate in one table."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Final

import click

from dabba.cli import canary_view, cert_view
from dabba.cli.humanize import NONE, age, parse_time, relative, short_revision
from dabba.cli.kube import CANARY, MESHCERT, Cluster, cluster_options
from dabba.cli.output import Cell, Column, Printer, Table, output_option, styled
from dabba.clock import SystemClock

#: Longest message in the default table (``-o wide`` shows it whole).
MESSAGE_WIDTH: Final = 60


def canary_item(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A Canary as a ``status`` item."""
    doc = canary_view.canary_document(obj, ())
    ready = canary_view.condition(obj.get("status") or {}, "Ready")
    return {
        "kind": doc["kind"],
        "namespace": doc["namespace"],
        "name": doc["name"],
        "state": canary_view.state_text(doc),
        "phase": doc["phase"],
        "ready": None
        if ready is None or ready.get("status") == "Unknown"
        else ready.get("status") == "True",
        "paused": doc["paused"],
        "weight": doc["weight"],
        "revision": doc["revision"],
        "notAfter": None,
        "renewalTime": None,
        "secondsLeft": None,
        "created": doc["created"],
        "message": doc["message"],
    }


def cert_item(obj: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    """A MeshCertificate as a ``status`` item."""
    s = cert_view.cert_summary(obj, now)
    return {
        "kind": s["kind"],
        "namespace": s["namespace"],
        "name": s["name"],
        "state": s["state"],
        "phase": None,
        "ready": s["ready"],
        "paused": False,
        "weight": None,
        "revision": s["serialNumber"],
        "notAfter": s["notAfter"],
        "renewalTime": s["renewalTime"],
        "secondsLeft": s["secondsLeft"],
        "created": s["created"],
        "message": s["message"],
    }


def status_items(
    canaries: Sequence[Mapping[str, Any]],
    certs: Sequence[Mapping[str, Any]],
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """Canaries first, then MeshCertificates, each by namespace and name."""

    def key(item: Mapping[str, Any]) -> tuple[str, str]:
        return (item["namespace"] or "", item["name"] or "")

    return sorted((canary_item(c) for c in canaries), key=key) + sorted(
        (cert_item(c, now) for c in certs), key=key
    )


def _state_cell(item: Mapping[str, Any]) -> Cell:
    if item["kind"] == "Canary":
        return styled(item["state"], canary_view.PHASE_STYLES.get(item["phase"] or "", "dim"))
    return cert_view.state_cell(item["state"])


def _progress_cell(item: Mapping[str, Any], now: dt.datetime) -> Cell:
    if item["kind"] == "Canary":
        return f"{item['weight']}%"
    return cert_view.time_left_cell(item, now)


def status_table(
    items: Sequence[Mapping[str, Any]], now: dt.datetime, *, all_namespaces: bool, wide: bool
) -> Table:
    """KIND [NAMESPACE] NAME STATE WEIGHT/EXPIRES AGE MESSAGE (+ RENEWS, REVISION/SERIAL)."""
    columns = [Column("Kind")]
    if all_namespaces:
        columns.append(Column("Namespace"))
    columns += [Column("Name"), Column("State"), Column("Weight/Expires", justify="right")]
    if wide:
        columns += [Column("Renews"), Column("Revision/Serial")]
    columns += [Column("Age"), Column("Message", max_width=None if wide else MESSAGE_WIDTH)]
    rows: list[list[Cell]] = []
    for item in items:
        row: list[Cell] = [item["kind"]]
        if all_namespaces:
            row.append(item["namespace"])
        row += [item["name"], _state_cell(item), _progress_cell(item, now)]
        if wide:
            renews = relative(parse_time(item["renewalTime"]), now) if item["renewalTime"] else NONE
            row += [renews, short_revision(item["revision"], 16)]
        row += [age(parse_time(item["created"]), now), item["message"]]
        rows.append(row)
    return Table(columns, rows)


@click.command("status")
@output_option("wide")
@cluster_options()
def status(output: str | None, cluster: Cluster) -> None:
    """Every Canary and MeshCertificate: phase or readiness, weight or expiry, message."""
    now = SystemClock().now()
    items = status_items(cluster.list_objects(CANARY), cluster.list_objects(MESHCERT), now)
    printer = Printer()
    if output in {"json", "yaml"}:
        printer.document({"items": items}, output)
        return
    if not items:
        printer.note(f"No Canaries or MeshCertificates found in {cluster.target.where()}.")
        return
    table = status_table(
        items, now, all_namespaces=cluster.target.all_namespaces, wide=output == "wide"
    )
    printer.show([table])
