"""What ``dabba cert list`` and ``dabba cert plan`` show, from MeshCertificate dicts. Pure.

Status is read with :class:`dabba.certs.model.MeshCertificateStatus`, the operator's own
lenient parser (junk reads as absent), so the CLI and the operator read status alike. What
holds *now* wins over a stale condition: an expired certificate is never shown as ready.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from dabba.certs.model import (
    ConditionStatus,
    ConditionType,
    MeshCertificateStatus,
)
from dabba.cli.humanize import NONE, format_time, human_duration, parse_time, relative
from dabba.cli.output import Cell, Column, Section, Table, styled

STATE_STYLES: Final[Mapping[str, str]] = {
    "Ready": "green",
    "Expired": "bold red",
    "NotReady": "red",
    "Issuing": "yellow",
    "Pending": "dim",
}

#: Sort order of plan actions: what is already late first, then what happens now, then later.
PLAN_ORDER: Final[Mapping[str, int]] = {"expired": 0, "overdue": 1, "issue": 2, "renew": 3}
PLAN_STYLES: Final[Mapping[str, str]] = {
    "expired": "bold red",
    "overdue": "yellow",
    "issue": "cyan",
    "renew": "default",
}


def _map(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _time(value: dt.datetime | None) -> str | None:
    return None if value is None else format_time(value)


def _cond_true(status: MeshCertificateStatus, type_: ConditionType) -> bool:
    cond = status.condition(type_)
    return cond is not None and cond.status is ConditionStatus.TRUE


def cert_state(status: MeshCertificateStatus, now: dt.datetime) -> str:
    """``Ready``, ``Expired``, ``Issuing``, ``NotReady`` or ``Pending`` (never issued)."""
    if status.not_after is not None and status.not_after <= now:
        return "Expired"
    if _cond_true(status, ConditionType.EXPIRED):
        return "Expired"
    if _cond_true(status, ConditionType.READY):
        return "Ready"
    if _cond_true(status, ConditionType.ISSUING):
        return "Issuing"
    if status.condition(ConditionType.READY) is not None:
        return "NotReady"
    return "Pending"


def cert_ready(status: MeshCertificateStatus, now: dt.datetime) -> bool | None:
    """The Ready condition as a bool; None when there is none (or it is Unknown).

    An expired certificate is never ready, even while the condition still says so (the
    operator is down or behind): the CLI reports what holds now, not a stale condition.
    """
    if status.not_after is not None and status.not_after <= now:
        return False
    cond = status.condition(ConditionType.READY)
    if cond is None or cond.status is ConditionStatus.UNKNOWN:
        return None
    return cond.status is ConditionStatus.TRUE


def cert_message(status: MeshCertificateStatus, now: dt.datetime) -> str:
    """The sentence that best explains the certificate's state (problems first)."""
    if (
        status.not_after is not None
        and status.not_after <= now
        and not _cond_true(status, ConditionType.EXPIRED)
    ):
        return (
            f"expired at {format_time(status.not_after)} and not re-issued; the status is "
            "stale: is the dabba operator running?"
        )
    if status.failed_issuance_attempts and status.last_failure_reason:
        return f"issuance failed {status.failed_issuance_attempts}x: {status.last_failure_reason}"
    for type_, bad in (
        (ConditionType.EXPIRED, ConditionStatus.TRUE),
        (ConditionType.RENEWAL_OVERDUE, ConditionStatus.TRUE),
        (ConditionType.ISSUER_NOT_READY, ConditionStatus.TRUE),
        (ConditionType.READY, ConditionStatus.FALSE),
        (ConditionType.ISSUING, ConditionStatus.TRUE),
        (ConditionType.READY, ConditionStatus.TRUE),
    ):
        cond = status.condition(type_)
        if cond is not None and cond.status is bad and cond.message:
            return cond.message
    return ""


@dataclasses.dataclass(frozen=True, slots=True)
class IssuerRef:
    """Who signs a MeshCertificate, with the namespace defaulted."""

    kind: str
    namespace: str
    name: str

    def text(self) -> str:
        """``MeshCertificate dabba-system/mesh-root`` or ``Secret shop/legacy-ca``."""
        return f"{self.kind} {self.namespace}/{self.name}"


def issuer_ref(obj: Mapping[str, Any]) -> IssuerRef | None:
    """``spec.issuerRef`` resolved, or None for a self-signed root."""
    ref = _map(_map(obj.get("spec")).get("issuerRef"))
    if not ref.get("name"):
        return None
    namespace = ref.get("namespace") or _map(obj.get("metadata")).get("namespace") or ""
    return IssuerRef(str(ref.get("kind") or "MeshCertificate"), str(namespace), str(ref["name"]))


def issuer_text(obj: Mapping[str, Any]) -> str:
    """The issuer for a table cell."""
    ref = issuer_ref(obj)
    return "self-signed" if ref is None else ref.text()


def cert_summary(obj: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    """One MeshCertificate as a ``cert list`` item (stable keys)."""
    md, spec = _map(obj.get("metadata")), _map(obj.get("spec"))
    status = MeshCertificateStatus.from_k8s(_map(obj.get("status")))
    left = None if status.not_after is None else int((status.not_after - now).total_seconds())
    return {
        "kind": "MeshCertificate",
        "namespace": md.get("namespace"),
        "name": md.get("name"),
        "state": cert_state(status, now),
        "ready": cert_ready(status, now),
        "secretName": spec.get("secretName"),
        "isCA": bool(spec.get("isCA")),
        "issuer": issuer_text(obj),
        "notBefore": _time(status.not_before),
        "notAfter": _time(status.not_after),
        "renewalTime": _time(status.renewal_time),
        "secondsLeft": left,
        "serialNumber": status.serial_number,
        "revision": status.revision,
        "created": md.get("creationTimestamp"),
        "message": cert_message(status, now),
    }


def expiring_within(
    items: Iterable[Mapping[str, Any]], window: dt.timedelta
) -> list[Mapping[str, Any]]:
    """Items whose certificate expires within ``window`` (already expired ones included).

    A MeshCertificate that was never issued has no expiry and is left out: it is not
    "expiring", and ``dabba status`` shows it as Pending.
    """
    limit = window.total_seconds()
    return [i for i in items if i["secondsLeft"] is not None and i["secondsLeft"] <= limit]


def time_left_cell(item: Mapping[str, Any], now: dt.datetime) -> Cell:
    """``20h``, red ``expired 2h ago``, yellow when the renewal time has passed."""
    not_after = parse_time(item["notAfter"])
    if not_after is None:
        return NONE
    if not_after <= now:
        return styled(f"expired {human_duration(now - not_after)} ago", "bold red")
    renewal = parse_time(item["renewalTime"])
    return styled(human_duration(not_after - now), "yellow" if renewal and renewal <= now else None)


def state_cell(state: str) -> Cell:
    """A coloured state word."""
    return styled(state, STATE_STYLES.get(state))


def ready_cell(ready: bool | None) -> Cell:
    """``True`` (green), ``False`` (red) or ``-``."""
    if ready is None:
        return NONE
    return styled(str(ready), "green" if ready else "red")


def list_table(
    items: Sequence[Mapping[str, Any]], now: dt.datetime, *, all_namespaces: bool, wide: bool
) -> Table:
    """The ``cert list`` table."""
    columns = [Column("Namespace")] if all_namespaces else []
    columns += [
        Column("Name"),
        Column("Ready"),
        Column("Secret"),
        Column("Not after"),
        Column("Time left", justify="right"),
        Column("Renews"),
        Column("Issuer"),
    ]
    if wide:
        columns += [Column("Serial"), Column("Revision", justify="right"), Column("Message")]
    rows: list[list[Cell]] = []
    for i in items:
        row: list[Cell] = [i["namespace"]] if all_namespaces else []
        row += [
            i["name"],
            ready_cell(i["ready"]),
            str(i["secretName"] or NONE),
            i["notAfter"] or NONE,
            time_left_cell(i, now),
            relative(parse_time(i["renewalTime"]), now),
            i["issuer"],
        ]
        if wide:
            row += [
                i["serialNumber"] or NONE,
                NONE if i["revision"] is None else str(i["revision"]),
                i["message"],
            ]
        rows.append(row)
    return Table(columns, rows)


# ---------------------------------------------------------------------------------------------
# plan


def _leaves_of(ca: Mapping[str, Any], objs: Iterable[Mapping[str, Any]]) -> int:
    md = _map(ca.get("metadata"))
    me = IssuerRef("MeshCertificate", str(md.get("namespace") or ""), str(md.get("name") or ""))
    return sum(1 for o in objs if issuer_ref(o) == me)


def plan_entry(obj: Mapping[str, Any], now: dt.datetime, dependents: int = 0) -> dict[str, Any]:
    """When and why one MeshCertificate is (re-)issued next."""
    md, spec = _map(obj.get("metadata")), _map(obj.get("spec"))
    status = MeshCertificateStatus.from_k8s(_map(obj.get("status")))
    not_after, renewal = status.not_after, status.renewal_time
    when: dt.datetime | None
    if not_after is None:
        action, when = "issue", None
        reason = cert_message(status, now) or "never issued: issues as soon as the operator sees it"
    elif not_after <= now:
        action, when = "expired", not_after
        reason = f"expired {human_duration(now - not_after)} ago; re-issue is due now"
    elif renewal is not None and renewal <= now:
        action, when = "overdue", renewal
        reason = f"renewal was due {human_duration(now - renewal)} ago"
        if message := cert_message(status, now):
            reason += f": {message}"
    else:
        action, when = "renew", renewal or not_after
        reason = "scheduled renewal" if renewal else "renewal time unknown: shown at notAfter"
    if dependents:
        then = (
            "its leaf certificate re-issues"
            if dependents == 1
            else f"its {dependents} leaf certificates re-issue"
        )
        reason += f"; then {then} with the new CA"
    return {
        "when": _time(when),
        "action": action,
        "namespace": md.get("namespace"),
        "name": md.get("name"),
        "isCA": bool(spec.get("isCA")),
        "issuer": issuer_text(obj),
        "notAfter": _time(not_after),
        "renewalTime": _time(renewal),
        "dependents": dependents,
        "reason": reason,
    }


def plan_sort_key(entry: Mapping[str, Any], now: dt.datetime) -> tuple[int, dt.datetime, str, str]:
    """Late first (expired, then overdue), then never issued, then by renewal time."""
    when = parse_time(entry["when"]) or now
    return (PLAN_ORDER[entry["action"]], when, entry["namespace"] or "", entry["name"] or "")


def ca_entry(ca: Mapping[str, Any], leaves: int) -> dict[str, Any]:
    """One CA on the timeline: expiry, renewal, rollover and trusted roots."""
    md = _map(ca.get("metadata"))
    status = MeshCertificateStatus.from_k8s(_map(ca.get("status")))
    return {
        "namespace": md.get("namespace"),
        "name": md.get("name"),
        "found": True,
        "issuer": issuer_text(ca),
        "notAfter": _time(status.not_after),
        "renewalTime": _time(status.renewal_time),
        "rolloverPhase": status.rollover_phase,
        "trustedRoots": [
            {
                "fingerprintSHA256": r.fingerprint_sha256,
                "notAfter": _time(r.not_after),
                "reason": r.reason,
            }
            for r in status.trusted_roots
        ],
        "leaves": leaves,
    }


def plan_document(
    objs: Sequence[Mapping[str, Any]],
    now: dt.datetime,
    *,
    issuers: Sequence[Mapping[str, Any]] = (),
    missing_issuers: Sequence[IssuerRef] = (),
) -> dict[str, Any]:
    """``cert plan``: re-issues in time order (``items``) and the CA timeline (``cas``).

    Args:
        objs: the MeshCertificates in scope.
        now: the evaluation time.
        issuers: CA MeshCertificates outside the scope that certificates in scope name.
        missing_issuers: issuerRefs (kind MeshCertificate) that could not be read.
    """
    entries = [
        plan_entry(o, now, _leaves_of(o, objs) if _map(o.get("spec")).get("isCA") else 0)
        for o in objs
    ]
    entries.sort(key=lambda e: plan_sort_key(e, now))
    cas = [
        ca_entry(o, _leaves_of(o, objs))
        for o in (*objs, *issuers)
        if _map(o.get("spec")).get("isCA")
    ]
    cas.extend(
        {
            "namespace": ref.namespace,
            "name": ref.name,
            "found": False,
            "issuer": None,
            "notAfter": None,
            "renewalTime": None,
            "rolloverPhase": None,
            "trustedRoots": [],
            "leaves": sum(1 for o in objs if issuer_ref(o) == ref),
        }
        for ref in missing_issuers
    )
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    cas.sort(key=lambda c: (parse_time(c["notAfter"]) or far, c["namespace"] or "", c["name"]))
    return {"items": entries, "cas": cas}


def _roots_text(roots: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for r in roots:
        text = f"sha256:{str(r['fingerprintSHA256'])[:12]}…"
        if r["notAfter"]:
            text += f" until {r['notAfter']}"
        if r["reason"]:
            text += f" ({r['reason']})"
        parts.append(text)
    return "; ".join(parts) or NONE


def plan_sections(
    doc: Mapping[str, Any], now: dt.datetime, *, all_namespaces: bool
) -> list[Section]:
    """The re-issue table and the CA timeline."""
    name_cols = [Column("Namespace")] if all_namespaces else []
    rows: list[list[Cell]] = []
    for e in doc["items"]:
        when = parse_time(e["when"])
        rows.append(
            [
                styled(relative(when, now) if when else "now", PLAN_STYLES[e["action"]]),
                e["when"] or NONE,
                styled(e["action"], PLAN_STYLES[e["action"]]),
                *([e["namespace"]] if all_namespaces else []),
                e["name"],
                "CA" if e["isCA"] else "leaf",
                e["issuer"],
                e["reason"],
            ]
        )
    reissues = Table(
        [
            Column("When"),
            Column("At"),
            Column("Action"),
            *name_cols,
            Column("Name"),
            Column("Type"),
            Column("Issuer"),
            Column("Why"),
        ],
        rows,
        title="Re-issues, in time order",
        empty="no MeshCertificates",
    )
    ca_rows: list[list[Cell]] = []
    for c in doc["cas"]:
        if not c["found"]:
            ca_rows.append(
                [
                    f"{c['namespace']}/{c['name']}",
                    styled("not found", "bold red"),
                    NONE,
                    str(c["leaves"]),
                    NONE,
                    NONE,
                ]
            )
            continue
        not_after = parse_time(c["notAfter"])
        ca_rows.append(
            [
                f"{c['namespace']}/{c['name']}",
                f"{c['notAfter']} ({relative(not_after, now)})" if not_after else NONE,
                relative(parse_time(c["renewalTime"]), now),
                str(c["leaves"]),
                c["rolloverPhase"] or NONE,
                _roots_text(c["trustedRoots"]),
            ]
        )
    timeline = Table(
        [
            Column("CA"),
            Column("Not after"),
            Column("Renews"),
            Column("Leaves", justify="right"),
            Column("Rollover"),
            Column("Trusted roots"),
        ],
        ca_rows,
        title="CA timeline",
        empty="no CA MeshCertificates in scope",
    )
    return [reissues, timeline]
