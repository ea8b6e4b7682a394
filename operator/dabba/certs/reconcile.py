"""One MeshCertificate reconcile: gather → assess (pure) → issue and store → status, last.

Runs in a worker thread (the kubernetes client and key generation block). Everything it does
is idempotent: a crash at any point converges on the next reconcile, because the decision is
re-made from what the Secret really holds and status is written only after the Secret.

    gather(Secret, issuer CA) ──► policies.assess ──► isCA? ──yes──► authority.run (trusted
                                                        │             set, trust bundles,
                                                        │no           rollover; in place only
                                                        ▼             with no usable CA left)
                                                   should issue? ──no──► ca.crt still the
                                                        │yes             issuer's trusted set?
                                   backoff / budget ◄───┘                (rewrite it if not)
                                        │ granted
                     key (new or reused) ─► issue ─► write Secret (resourceVersion)
                                        │
                               restart workloads ─► status (last) ─► next wake
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from kubernetes.client.exceptions import ApiException

from dabba import telemetry
from dabba.certs import authority, bundles, store
from dabba.certs import gather as gather_mod
from dabba.certs.gather import IssuerCache
from dabba.certs.issuer import (
    IssuerError,
    SecretData,
    generate_private_key,
    issue,
    secret_annotations,
    secret_data,
)
from dabba.certs.issuing import (
    CERTIFICATE_BUDGET,
    CONFLICT_RETRY,
    ISSUER_BUDGET,
    Budgets,
    Recorder,
    failed,
)
from dabba.certs.model import (
    ANNOTATION_ISSUER_FINGERPRINT,
    ANNOTATION_RENEW_REQUESTED_AT,
    CA_CERT_KEY,
    Condition,
    ConditionStatus,
    ConditionType,
    IssuerKind,
    MeshCertificateSpec,
    MeshCertificateStatus,
    Reason,
    format_time,
    parse_time,
    set_condition,
)
from dabba.certs.pki import fingerprint_sha256, to_pem
from dabba.certs.policies import (
    PolicyInput,
    assess,
    parse_secret,
    renewal_overdue_at,
    reusable_key,
)
from dabba.certs.rollover import effective_renew_request
from dabba.certs.rotation import backoff, renewal_time
from dabba.errors import SpecError
from dabba.k8s import meta, objects
from dabba.k8s.cache import resource_version
from dabba.k8s.client import Clients

log = structlog.get_logger("dabba.certs")

__all__ = [
    "CERTIFICATE_BUDGET",
    "ISSUER_BUDGET",
    "RESYNC",
    "Budgets",
    "Outcome",
    "Recorder",
    "Scope",
    "reconcile",
]

#: Even with nothing scheduled, look again this often (a safety net, not the mechanism).
RESYNC = dt.timedelta(minutes=30)
#: An issuer Secret dabba did not write is not watched (no dabba label, and no watch on every
#: Secret): a CA signed by one looks at it this often (an external root replaced under an
#: intermediate starts a rollover), a leaf less often.
EXTERNAL_ISSUER_POLL_CA = dt.timedelta(seconds=20)
EXTERNAL_ISSUER_POLL = dt.timedelta(minutes=5)
Scope = bundles.Scope


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What the runner needs after a reconcile."""

    next_wake: dt.datetime | None
    #: The issuer's Secret (namespace, name): its changes should wake this certificate.
    issuer_secret: tuple[str, str] | None
    #: resourceVersion of the Secret we wrote (its watch event need not wake us again).
    written_resource_version: str | None = None
    #: CA only: a rollover is running (wake it when any of dabba's Secrets changes).
    rolling: bool = False
    #: CA only: it publishes a trust bundle (wake it when Namespaces change).
    publishes: bool = False
    #: The MeshCertificate no longer exists.
    gone: bool = False
    #: resourceVersion our status write returned (None: status was not written).
    status_resource_version: int | None = None


def _merge_conditions(
    old: tuple[Condition, ...], new: tuple[Condition, ...]
) -> tuple[Condition, ...]:
    out = old
    for cond in new:
        out = set_condition(out, cond)
    return out


def _earliest(*times: dt.datetime | None) -> dt.datetime | None:
    present = [t for t in times if t is not None]
    return min(present) if present else None


def reconcile(  # noqa: PLR0912, PLR0915 - one linear story, split it and the story is lost
    k: Clients,
    namespace: str,
    name: str,
    budgets: Budgets,
    recorder: Callable[[Mapping[str, Any]], Recorder],
    clock: Callable[[], dt.datetime],
    on_secret_written: Callable[[str], None] = lambda _: None,
    *,
    scope: Scope = None,
    cache: bundles.Cache | None = None,
    body: Mapping[str, Any] | None = None,
    issuers: IssuerCache | None = None,
    created: bool = False,
) -> Outcome:
    """Bring one MeshCertificate's Secret and status up to date.

    ``body`` is the object as a watch event just delivered it, when the caller knows nothing
    newer (``dabba.certs.runner``); without it the object is read fresh, because deciding
    from a status older than our own last write would write an older revision back over a
    newer one. ``recorder`` makes the Event poster for the object.
    """
    if body is None:
        body = objects.get_custom(k, meta.MESHCERT_PLURAL, namespace, name)
    if body is None:
        return Outcome(next_wake=None, issuer_secret=None, gone=True)
    record = recorder(body)
    now = clock()
    md = body["metadata"]
    uid = md["uid"]
    generation = md.get("generation")
    old = MeshCertificateStatus.from_k8s(body.get("status"))
    bound = log.bind(kind="MeshCertificate", namespace=namespace, name=name)

    try:
        spec = MeshCertificateSpec.from_k8s(body.get("spec") or {}, namespace=namespace)
    except SpecError as exc:
        cond = Condition(
            ConditionType.READY,
            ConditionStatus.FALSE,
            Reason.INVALID_SPEC,
            str(exc),
            now,
            generation,
        )
        new = dataclasses.replace(
            old, conditions=set_condition(old.conditions, cond), observed_generation=generation
        )
        written = _write_status(k, namespace, name, old, new)
        if written is not None:
            record("Warning", Reason.INVALID_SPEC, str(exc))
            bound.warning("invalid spec", error=str(exc))
        return Outcome(next_wake=None, issuer_secret=None, status_resource_version=written)

    g = gather_mod.gather(
        k, spec, namespace, now, issuers, secret_absent=created and old.revision is None
    )
    leaf = g.contents.leaf if g.contents else None
    renew_at = (
        renewal_time(leaf.not_before, leaf.not_after, spec.renew_before, uid) if leaf else None
    )
    inp = PolicyInput(
        spec=spec,
        now=now,
        secret=g.contents,
        issuer=g.issuer_facts,
        issuer_error=g.issuer_error,
        renewal_time=renew_at,
        # A request a CA rollover refused is never served later (it would surprise).
        renew_requested_at=effective_renew_request(
            parse_time((md.get("annotations") or {}).get(ANNOTATION_RENEW_REQUESTED_AT)),
            old.rollover_refused_request,
        ),
        generation=generation,
    )
    a = assess(inp)
    status = dataclasses.replace(old, observed_generation=generation)
    next_wake: dt.datetime | None = None
    written_rv: str | None = None
    spec_changed = old.observed_generation != generation

    if a.should_issue and not a.can_issue:
        # Needs a certificate, the issuer cannot sign: a failed attempt, with backoff, so the
        # condition says what is wrong and when dabba looks again.
        assert a.issuer is not None  # noqa: S101 - can_issue is False exactly then
        retry_at = (
            None
            if spec_changed
            else backoff(
                old.failed_issuance_attempts,
                old.last_failure_time,
                leaf.not_after if leaf else None,
            )
        )
        if retry_at is None or now >= retry_at:
            status = failed(status, now, a.issuer.message)
            telemetry.cert_failures.labels(namespace, name, a.issuer.reason).inc()
            record("Warning", str(a.issuer.reason), f"cannot issue: {a.issuer.message}")
            bound.warning(
                "issuer not ready",
                reason=str(a.issuer.reason),
                message=a.issuer.message,
                attempts=status.failed_issuance_attempts,
            )
            retry_at = backoff(
                status.failed_issuance_attempts,
                status.last_failure_time,
                leaf.not_after if leaf else None,
            )
        next_wake = retry_at

    conditions = a.conditions
    rolling = publishes = False
    if spec.is_ca:
        # A CA never replaces a usable certificate in place: it rolls over (authority.py).
        ca = authority.run(
            authority.CaContext(
                k=k,
                scope=scope,
                cache=cache or bundles.Cache(),
                budgets=budgets,
                record=record,
                clock=clock,
                on_secret_written=on_secret_written,
            ),
            body=body,
            spec=spec,
            g=g,
            inp=inp,
            a=a,
            old=old,
            status=status,
            spec_changed=spec_changed,
        )
        if ca.conflict:
            return Outcome(now + CONFLICT_RETRY, g.issuer_secret)
        status, conditions = ca.status, ca.conditions
        next_wake = _earliest(next_wake, ca.next_wake)
        written_rv, rolling, publishes = ca.written_resource_version, ca.rolling, ca.publishes
    elif a.should_issue and a.can_issue:
        assert a.trigger is not None  # noqa: S101 - should_issue means a trigger fired
        retry_at = (
            None
            if spec_changed
            else backoff(
                old.failed_issuance_attempts,
                old.last_failure_time,
                leaf.not_after if leaf else None,
            )
        )
        budget_key = spec.issuer_ref.key if spec.issuer_ref else f"self/{namespace}/{name}"
        if retry_at is not None and now < retry_at:
            next_wake = retry_at
        elif (budget_retry := budgets.spend(budget_key, f"{namespace}/{name}", now)) is not None:
            bound.info(
                "issuance budget exhausted; waiting",
                issuer=budget_key,
                retry_at=format_time(budget_retry),
            )
            next_wake = budget_retry
        else:
            started = time.perf_counter()
            try:
                key = reusable_key(spec, g.contents) or generate_private_key(spec.private_key)
                issued = issue(spec, key, g.authority, clock())
                revision = (old.revision or 0) + 1
                data = secret_data(issued, spec.output_format)
                annotations = {
                    **spec.secret_annotations,
                    **secret_annotations(issued, spec, certificate_name=name, revision=revision),
                }
                written_rv = store.write_secret(
                    k,
                    namespace=namespace,
                    name=spec.secret_name,
                    certificate_name=name,
                    data=data,
                    annotations=annotations,
                    labels=spec.secret_labels,
                    owner=body,
                    existing=g.secret,
                )
                on_secret_written(written_rv)
            except ApiException as exc:
                if exc.status == objects.CONFLICT:
                    bound.info("Secret changed while issuing; deciding again")
                    return Outcome(now + CONFLICT_RETRY, g.issuer_secret)
                status = failed(status, now, f"writing Secret {spec.secret_name}: {exc.reason}")
                telemetry.cert_failures.labels(namespace, name, "SecretWriteFailed").inc()
                record("Warning", Reason.ISSUANCE_FAILED, status.last_failure_reason or "")
                bound.error("writing the Secret failed", status=exc.status, reason=exc.reason)
            except (IssuerError, ValueError) as exc:
                status = failed(status, now, str(exc))
                telemetry.cert_failures.labels(namespace, name, "IssuanceFailed").inc()
                record("Warning", Reason.ISSUANCE_FAILED, str(exc))
                bound.error("issuance failed", error=str(exc))
            else:
                telemetry.issuance_seconds.observe(time.perf_counter() - started)
                telemetry.cert_issuances.labels(namespace, name, a.trigger.reason).inc()
                renew_at = renewal_time(issued.not_before, issued.not_after, spec.renew_before, uid)
                status = dataclasses.replace(
                    status,
                    not_before=issued.not_before,
                    not_after=issued.not_after,
                    renewal_time=renew_at,
                    serial_number=issued.serial_number,
                    fingerprint_sha256=issued.fingerprint,
                    revision=revision,
                    issuer_fingerprint=issued.issuer_fingerprint,
                    failed_issuance_attempts=0,
                    last_failure_time=None,
                    last_failure_reason=None,
                )
                message = (
                    f"issued serial {issued.serial_number[:16]} valid until "
                    f"{format_time(issued.not_after)}, renews at "
                    f"{format_time(renew_at)} ({a.trigger.reason}: {a.trigger.message})"
                )
                record("Normal", Reason.ISSUED, message)
                bound.info(
                    "issued",
                    serial=issued.serial_number,
                    revision=revision,
                    trigger=str(a.trigger.reason),
                    not_after=format_time(issued.not_after),
                    renewal_time=format_time(renew_at),
                )
                for ref in spec.restart_on_rotation:
                    if store.restart_workload(k, namespace, ref, name, issued.fingerprint, now):
                        record(
                            "Normal",
                            "RestartedWorkload",
                            f"rolling {ref.kind} {ref.name} to load the new certificate",
                        )
                    else:
                        record(
                            "Warning",
                            "WorkloadNotFound",
                            f"restartOnRotation: {ref.kind} {ref.name} not found",
                        )
                # Re-assess against what was just written, for the conditions.
                inp = dataclasses.replace(
                    inp,
                    secret=parse_secret(data, annotations, output_format=spec.output_format),
                    renewal_time=renew_at,
                )
                a = assess(inp)
                conditions = a.conditions
                next_wake = renew_at
            if status.failed_issuance_attempts and next_wake is None:
                next_wake = backoff(
                    status.failed_issuance_attempts,
                    status.last_failure_time,
                    leaf.not_after if leaf else None,
                )
    elif not a.should_issue:
        leaf = inp.leaf
        if leaf is not None:
            status = dataclasses.replace(
                status,
                not_before=leaf.not_before,
                not_after=leaf.not_after,
                renewal_time=renew_at,
                serial_number=leaf.serial_number,
                fingerprint_sha256=leaf.fingerprint_sha256,
                issuer_fingerprint=(
                    g.contents.annotations.get(ANNOTATION_ISSUER_FINGERPRINT)
                    if g.contents
                    else None
                )
                or status.issuer_fingerprint,
            )
            overdue = renewal_overdue_at(renew_at, leaf.not_after) if renew_at else None
            next_wake = _earliest(
                renew_at if renew_at and renew_at > now else None,
                overdue if overdue and overdue > now else None,
                leaf.not_after if leaf.not_after > now else None,
            )
        roots = _stale_bundle(g)
        budget_retry = budgets.spend_own(f"{namespace}/{name}", now) if roots is not None else None
        if budget_retry is not None:
            next_wake = _earliest(next_wake, budget_retry)
        elif roots is not None and g.secret is not None:
            # The issuer's trusted set changed (a CA rollover added or retired a root): copy
            # it into ca.crt without re-issuing, so this workload trusts what its peers use.
            try:
                written_rv = store.write_secret(
                    k,
                    namespace=namespace,
                    name=spec.secret_name,
                    certificate_name=name,
                    data=SecretData({**g.secret.data, CA_CERT_KEY: roots}),
                    annotations=spec.secret_annotations,
                    labels=spec.secret_labels,
                    owner=body,
                    existing=g.secret,
                )
            except ApiException as exc:
                if exc.status == objects.CONFLICT:
                    return Outcome(now + CONFLICT_RETRY, g.issuer_secret)
                bound.error("updating ca.crt failed", status=exc.status, reason=exc.reason)
                next_wake = _earliest(next_wake, now + CONFLICT_RETRY * 5)
            else:
                on_secret_written(written_rv)
                count = len(g.authority.roots) if g.authority else 0
                record(
                    "Normal",
                    Reason.TRUST_BUNDLE_UPDATED,
                    f"ca.crt now holds the issuer's trusted set ({count} root(s))",
                )
                bound.info("trust bundle updated", roots=count)

    if spec.issuer_ref is not None and spec.issuer_ref.kind is IssuerKind.SECRET:
        poll = EXTERNAL_ISSUER_POLL_CA if spec.is_ca else EXTERNAL_ISSUER_POLL
        next_wake = _earliest(next_wake, now + poll)

    status = dataclasses.replace(status, conditions=_merge_conditions(old.conditions, conditions))
    written = _write_status(k, namespace, name, old, status)
    if written is not None:
        _condition_events(old, status, record)
    _observe(namespace, name, status)
    wake = _earliest(next_wake, now + RESYNC)
    return Outcome(
        wake,
        g.issuer_secret,
        written_rv,
        rolling=rolling,
        publishes=publishes,
        status_resource_version=written,
    )


def _stale_bundle(g: gather_mod.Gathered) -> bytes | None:
    """The issuer's trusted set (PEM) when the leaf's ca.crt holds a different set, else None."""
    if g.authority is None or g.contents is None or g.contents.leaf is None:
        return None
    want = [fingerprint_sha256(root) for root in g.authority.roots]
    have = {c.fingerprint_sha256 for c in g.contents.ca_certificates}
    if set(want) == have:
        return None
    return to_pem(g.authority.roots)


def _write_status(
    k: Clients, namespace: str, name: str, old: MeshCertificateStatus, new: MeshCertificateStatus
) -> int | None:
    """Patch status when it differs from what the object holds; the written object's
    resourceVersion (0 when it did not say), or None if nothing was written."""
    if new.to_k8s() == old.to_k8s():
        return None
    written = objects.patch_status(k, meta.MESHCERT_PLURAL, namespace, name, new.to_k8s())
    return (resource_version(written) or 0) if written is not None else None


def _condition_events(
    old: MeshCertificateStatus, new: MeshCertificateStatus, record: Recorder
) -> None:
    """An Event whenever Ready, Expired or RenewalOverdue changes status.

    A condition's first value is news only when it is bad: a new certificate's Ready=True,
    Expired=False and RenewalOverdue=False say nothing the Issued Event does not, and three
    Events per certificate were most of its API writes (issuance benchmark, issue 8).
    """
    for type_ in (ConditionType.READY, ConditionType.EXPIRED, ConditionType.RENEWAL_OVERDUE):
        before, after = old.condition(type_), new.condition(type_)
        if after is None or (before is not None and before.status is after.status):
            continue
        bad = (type_ == ConditionType.READY) != after.is_true
        if after.status is ConditionStatus.UNKNOWN or (before is None and not bad):
            continue
        record(
            "Warning" if bad else "Normal",
            str(after.reason),
            f"{type_}={after.status}: {after.message}",
        )


def _observe(namespace: str, name: str, status: MeshCertificateStatus) -> None:
    labels = (namespace, name)
    if status.not_after:
        telemetry.cert_not_after.labels(*labels).set(status.not_after.timestamp())
    if status.not_before:
        telemetry.cert_not_before.labels(*labels).set(status.not_before.timestamp())
    if status.renewal_time:
        telemetry.cert_renewal.labels(*labels).set(status.renewal_time.timestamp())
    ready = status.condition(ConditionType.READY)
    telemetry.cert_ready.labels(*labels).set(1 if ready is not None and ready.is_true else 0)
