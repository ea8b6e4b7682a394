"""One MeshCertificate reconcile: gather → assess (pure) → issue and store → status, last.

Runs in a worker thread (the kubernetes client and key generation block). Everything it does
is idempotent: a crash at any point converges on the next reconcile, because the decision is
re-made from what the Secret really holds and status is written only after the Secret.

    gather(Secret, issuer CA) ──► policies.assess ──► should issue? ──no──► status, next wake
                                                        │yes
                                   backoff / budget ◄───┘
                                        │ granted
                     key (new or reused) ─► issue ─► write Secret (resourceVersion)
                                        │
                               restart workloads ─► status (last) ─► next wake
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Callable, Mapping
from typing import Protocol

import structlog
from kubernetes.client.exceptions import ApiException

from dabba import telemetry
from dabba.certs import gather as gather_mod
from dabba.certs import store
from dabba.certs.issuer import (
    IssuerError,
    generate_private_key,
    issue,
    secret_annotations,
    secret_data,
)
from dabba.certs.model import (
    ANNOTATION_ISSUER_FINGERPRINT,
    ANNOTATION_RENEW_REQUESTED_AT,
    Condition,
    ConditionStatus,
    ConditionType,
    MeshCertificateSpec,
    MeshCertificateStatus,
    Reason,
    format_time,
    parse_time,
    set_condition,
)
from dabba.certs.policies import (
    PolicyInput,
    assess,
    parse_secret,
    renewal_overdue_at,
    reusable_key,
)
from dabba.certs.rotation import IssuanceBudget, backoff, renewal_time, spend
from dabba.errors import SpecError
from dabba.k8s import meta, objects
from dabba.k8s.client import Clients

log = structlog.get_logger("dabba.certs")

#: Even with nothing scheduled, look again this often (a safety net, not the mechanism).
RESYNC = dt.timedelta(minutes=30)
#: Per issuer: 500 back to back, then 100 per second (bench goal: 1,000 leaves at >= 100/s).
ISSUER_BUDGET = IssuanceBudget(capacity=500, per_second=100.0)
#: Per certificate: 5 back to back, then one per 10 s (a 60 s certificate renews every ~40 s).
CERTIFICATE_BUDGET = IssuanceBudget(capacity=5, per_second=0.1)
#: A write that lost a race (409) is retried after this long, without counting a failure.
CONFLICT_RETRY = dt.timedelta(seconds=1)


class Recorder(Protocol):
    """Posts a Kubernetes Event about the object being reconciled."""

    def __call__(self, type_: str, reason: str, message: str) -> None: ...


class Budgets:
    """Issuance budgets shared by all reconciles of this process (thread-safe).

    Two token buckets must both grant an issuance: the issuer's, which paces a storm (a CA
    rotation re-issuing every leaf at once), and the certificate's own, which stops a loop
    (something rewriting one Secret forever) from spending the issuer's budget.
    """

    def __init__(
        self,
        issuer: IssuanceBudget = ISSUER_BUDGET,
        certificate: IssuanceBudget = CERTIFICATE_BUDGET,
    ) -> None:
        self._lock = threading.Lock()
        self._issuers: Mapping[str, IssuanceBudget] = {}
        self._certificates: Mapping[str, IssuanceBudget] = {}
        self._issuer_template, self._certificate_template = issuer, certificate

    def spend(self, issuer_key: str, certificate_key: str, now: dt.datetime) -> dt.datetime | None:
        """Take one issuance from both budgets; None if granted, else when to try again."""
        with self._lock:
            mine = spend(
                self._certificates, certificate_key, now, template=self._certificate_template
            )
            if not mine.granted:
                self._certificates = mine.budgets
                return mine.retry_at
            theirs = spend(self._issuers, issuer_key, now, template=self._issuer_template)
            if not theirs.granted:
                return theirs.retry_at  # the certificate's token is not spent either
            self._certificates, self._issuers = mine.budgets, theirs.budgets
            return None


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What the daemon needs after a reconcile."""

    next_wake: dt.datetime | None
    #: The issuer's Secret (namespace, name): its changes should wake this certificate.
    issuer_secret: tuple[str, str] | None
    #: resourceVersion of the Secret we wrote (its watch event need not wake us again).
    written_resource_version: str | None = None


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
    record: Recorder,
    clock: Callable[[], dt.datetime],
    on_secret_written: Callable[[str], None] = lambda _: None,
) -> Outcome:
    """Bring one MeshCertificate's Secret and status up to date.

    The object is read fresh: kopf's live body can lag behind our own status write, and
    deciding from a stale status would write an older revision back over a newer one.
    """
    body = objects.get_custom(k, meta.MESHCERT_PLURAL, namespace, name)
    if body is None:
        return Outcome(next_wake=None, issuer_secret=None)
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
        if _write_status(k, namespace, name, old, new):
            record("Warning", Reason.INVALID_SPEC, str(exc))
            bound.warning("invalid spec", error=str(exc))
        return Outcome(next_wake=None, issuer_secret=None)

    g = gather_mod.gather(k, spec, namespace, now)
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
        renew_requested_at=parse_time(
            (md.get("annotations") or {}).get(ANNOTATION_RENEW_REQUESTED_AT)
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
            status = _failed(status, now, a.issuer.message)
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
    elif a.should_issue:
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
                status = _failed(status, now, f"writing Secret {spec.secret_name}: {exc.reason}")
                telemetry.cert_failures.labels(namespace, name, "SecretWriteFailed").inc()
                record("Warning", Reason.ISSUANCE_FAILED, status.last_failure_reason or "")
                bound.error("writing the Secret failed", status=exc.status, reason=exc.reason)
            except (IssuerError, ValueError) as exc:
                status = _failed(status, now, str(exc))
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
                next_wake = renew_at
            if status.failed_issuance_attempts and next_wake is None:
                next_wake = backoff(
                    status.failed_issuance_attempts,
                    status.last_failure_time,
                    leaf.not_after if leaf else None,
                )
    else:
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

    status = dataclasses.replace(status, conditions=_merge_conditions(old.conditions, a.conditions))
    if _write_status(k, namespace, name, old, status):
        _condition_events(old, status, record)
    _observe(namespace, name, status)
    wake = _earliest(next_wake, now + RESYNC)
    return Outcome(wake, g.issuer_secret, written_rv)


def _failed(status: MeshCertificateStatus, now: dt.datetime, reason: str) -> MeshCertificateStatus:
    return dataclasses.replace(
        status,
        failed_issuance_attempts=status.failed_issuance_attempts + 1,
        last_failure_time=now,
        last_failure_reason=reason,
    )


def _write_status(
    k: Clients, namespace: str, name: str, old: MeshCertificateStatus, new: MeshCertificateStatus
) -> bool:
    """Patch status when it differs from what the object holds; True if written."""
    if new.to_k8s() == old.to_k8s():
        return False
    objects.patch_status(k, meta.MESHCERT_PLURAL, namespace, name, new.to_k8s())
    return True


def _condition_events(
    old: MeshCertificateStatus, new: MeshCertificateStatus, record: Recorder
) -> None:
    """An Event whenever Ready, Expired or RenewalOverdue changes status."""
    for type_ in (ConditionType.READY, ConditionType.EXPIRED, ConditionType.RENEWAL_OVERDUE):
        before, after = old.condition(type_), new.condition(type_)
        if after is None or (before is not None and before.status is after.status):
            continue
        bad = (type_ == ConditionType.READY) != after.is_true
        if after.status is ConditionStatus.UNKNOWN:
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
