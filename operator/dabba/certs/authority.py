"""The CA side of a MeshCertificate: its trusted set, trust bundles and rollover. I/O.

``reconcile`` hands every ``isCA`` MeshCertificate here once its Secret and issuer are gathered
and the trigger chain has spoken. The decisions are ``rollover.decide``'s; this module reads
what it needs, performs the one action decided, and reports::

    read   signing CA (tls.*), next CA (next.*), trusted set (ca.crt), issuer's roots;
           holders (dabba Secrets chaining to those roots) while a rollover runs
    publish the trust-bundle ConfigMaps as ca.crt says (the Secret is the source of truth)
    decide ─┬─ PrepareNext   key + certificate (backoff, issuer budget) ─► decide again
            ├─ IssueInPlace  no usable CA at all: issue one ─► decide again
            ├─ Promote       next.* becomes tls.* (the new CA signs)
            └─ None
    write  the Secret once when tls.*, next.* or ca.crt change (resourceVersion)
    publish the new trusted set ─► status fields, conditions, Events

Where the next CA waits: in the CA's own Secret (``next.crt``/``next.key``), not in a second
Secret or in annotations. One Secret means adding the next CA together with its root, and
promoting it while removing it, are single atomic writes: no crash can leave a next key
without its root trusted, or two Secrets disagreeing. The key is as protected as ``tls.key``
beside it; consumers (istiod, Linkerd, kubelet mounts) ignore keys they do not know.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog
from cryptography import x509
from kubernetes.client.exceptions import ApiException

from dabba import telemetry
from dabba.certs import bundles, pki, store
from dabba.certs.gather import Gathered
from dabba.certs.issuer import (
    CertificateAuthority,
    IssuedCertificate,
    IssuerError,
    ca_secret_data,
    generate_private_key,
    issue,
    load_issuer,
    load_next,
    secret_annotations,
)
from dabba.certs.issuing import CONFLICT_RETRY, Budgets, Recorder, failed
from dabba.certs.model import (
    ANNOTATION_PROPAGATION_DELAY,
    CA_CERT_KEY,
    NEXT_CERT_KEY,
    NEXT_KEY_KEY,
    Condition,
    ConditionStatus,
    ConditionType,
    IssuerSecretFormat,
    MeshCertificateSpec,
    MeshCertificateStatus,
    Reason,
    format_time,
)
from dabba.certs.policies import (
    Assessment,
    PolicyInput,
    assess,
    parse_secret,
    renewal_overdue_at,
    reusable_key,
)
from dabba.certs.rollover import (
    Action,
    Copy,
    Phase,
    RolloverDecision,
    RolloverInput,
    RolloverStatus,
    Root,
    decide,
    propagation_delay,
    root_of,
    roots_reached,
)
from dabba.certs.rotation import backoff, renewal_time
from dabba.k8s import objects
from dabba.k8s.client import Clients

log = structlog.get_logger("dabba.certs")

#: A CA with a trust bundle looks at its ConfigMaps at least this often (repairs edits).
BUNDLE_RESYNC = dt.timedelta(seconds=bundles.VERIFY_AFTER)


@dataclasses.dataclass(frozen=True)
class CaContext:
    """Process-wide things the CA flow needs besides the object itself."""

    k: Clients
    scope: bundles.Scope
    cache: bundles.Cache
    budgets: Budgets
    record: Recorder
    clock: Callable[[], dt.datetime]
    on_secret_written: Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class CaResult:
    """What ``reconcile`` needs back."""

    status: MeshCertificateStatus
    #: Conditions to merge into status (the trigger/readiness ones and the CA ones).
    conditions: tuple[Condition, ...]
    next_wake: dt.datetime | None
    written_resource_version: str | None = None
    #: A rollover is running: wake this CA whenever one of dabba's Secrets changes.
    rolling: bool = False
    #: The CA publishes a trust bundle: wake it when Namespaces change.
    publishes: bool = False
    #: The Secret changed under us (409): decide again shortly, write no status.
    conflict: bool = False


def _certificates(raw: bytes | None) -> tuple[x509.Certificate, ...]:
    if not raw or not raw.strip():
        return ()
    try:
        return pki.load_certificates(raw)
    except pki.PemError:
        return ()


def _unique(certs: Sequence[x509.Certificate]) -> dict[str, x509.Certificate]:
    out: dict[str, x509.Certificate] = {}
    for cert in certs:
        out.setdefault(pki.fingerprint_sha256(cert), cert)
    return out


def _self_signed(cert: x509.Certificate) -> bool:
    return cert.subject == cert.issuer and pki.issued_by(cert, cert)


def _differs(desired: Mapping[str, bytes], actual: Mapping[str, bytes]) -> bool:
    """Whether the Secret lacks something of ``desired``, or holds a next CA it should not."""
    if any(actual.get(key) != value for key, value in desired.items()):
        return True
    return any(key in actual and key not in desired for key in (NEXT_CERT_KEY, NEXT_KEY_KEY))


@dataclasses.dataclass
class _Run:
    """Mutable state of one CA reconcile (kept together so the steps stay readable)."""

    ctx: CaContext
    body: Mapping[str, Any]
    spec: MeshCertificateSpec
    g: Gathered
    inp: PolicyInput
    a: Assessment
    old: MeshCertificateStatus
    status: MeshCertificateStatus
    spec_changed: bool
    bound: Any
    known: dict[str, x509.Certificate] = dataclasses.field(default_factory=dict)
    wake: list[dt.datetime | None] = dataclasses.field(default_factory=list)

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def now(self) -> dt.datetime:
        return self.inp.now

    def roots(self, ca: CertificateAuthority | IssuedCertificate) -> tuple[Root, ...]:
        """The known roots ``ca``'s chain ends at, in the order they became known."""
        chain = (ca.certificate, *ca.chain)
        if _self_signed(ca.certificate):
            self.known.setdefault(pki.fingerprint_sha256(ca.certificate), ca.certificate)
        reached = roots_reached(chain, self.known.values())
        return tuple(root_of(cert) for fp, cert in self.known.items() if fp in reached)


def run(  # noqa: PLR0912, PLR0915 - the CA's story, in order
    ctx: CaContext,
    *,
    body: Mapping[str, Any],
    spec: MeshCertificateSpec,
    g: Gathered,
    inp: PolicyInput,
    a: Assessment,
    old: MeshCertificateStatus,
    status: MeshCertificateStatus,
    spec_changed: bool,
) -> CaResult:
    """One reconcile of a CA MeshCertificate (see the module docstring)."""
    r = _Run(ctx, body, spec, g, inp, a, old, status, spec_changed, log)
    r.bound = log.bind(kind="MeshCertificate", namespace=r.namespace, name=r.name)
    now = r.now
    data: Mapping[str, bytes] = g.secret.data if g.secret else {}

    # -- read ----------------------------------------------------------------------------
    stored_certs = _certificates(data.get(CA_CERT_KEY))
    published_certs = g.authority.roots if g.authority else ()
    current: CertificateAuthority | None = None
    if g.secret is not None:
        try:
            current = load_issuer(data, IssuerSecretFormat.TLS, now)
        except IssuerError:
            current = None
    r.known = _unique((*stored_certs, *published_certs))
    current_roots = r.roots(current) if current else None
    if not current_roots:
        current, current_roots = None, None
    next_ca = load_next(data, tuple(r.known.values()), now) if g.secret else None
    next_roots = r.roots(next_ca) if next_ca else None
    if next_ca is not None and not next_roots:
        next_ca, next_roots = None, None
    stored = tuple(root_of(c) for c in stored_certs)
    published = tuple(root_of(c) for c in published_certs)

    # Why the CA needs a new certificate; backoff after failures holds the rollover back.
    rotate: str | None = None
    deadline = current.certificate.not_valid_after_utc if current else None
    retry_at = (
        None
        if spec_changed
        else backoff(old.failed_issuance_attempts, old.last_failure_time, deadline)
    )
    if a.should_issue and a.can_issue and a.trigger is not None:
        if retry_at is not None and now < retry_at:
            r.wake.append(retry_at)
        else:
            rotate = f"{a.trigger.reason}: {a.trigger.message}"

    recorded = RolloverStatus.parse_phase(old.rollover_phase)
    fps = {x.fingerprint for x in (*(current_roots or ()), *published, *(next_roots or ()))}
    extras = {x.fingerprint for x in stored} - fps
    holders = (
        bundles.holders(
            ctx.k,
            ctx.cache,
            ctx.scope,
            ca=(r.namespace, r.name),
            exclude=(r.namespace, spec.secret_name),
            candidates=tuple(r.known.values()),
            signer=current.certificate if current else None,
        )
        if recorded is not None or next_ca is not None or extras
        else ()
    )
    copies = _publish(r, stored_certs)

    # -- decide --------------------------------------------------------------------------
    annotations = r.body["metadata"].get("annotations") or {}
    rin = RolloverInput(
        now=now,
        status=RolloverStatus(
            phase=recorded,
            start_time=old.rollover_start_time,
            phase_time=old.rollover_phase_time,
            settled_time=old.rollover_settled_time,
            refused_request=old.rollover_refused_request,
        ),
        stored=stored,
        current=current_roots,
        next=next_roots,
        published=published,
        rotate=rotate,
        renew_requested_at=inp.renew_requested_at,
        holders=holders,
        copies=copies,
        propagation_delay=propagation_delay(annotations.get(ANNOTATION_PROPAGATION_DELAY)),
    )
    d = decide(rin)

    # -- act -----------------------------------------------------------------------------
    signer = IssuedCertificate.from_authority(current) if current else None
    pending = IssuedCertificate.from_authority(next_ca) if next_ca else None
    new_signer = False
    trigger = str(a.trigger.reason) if a.trigger else "Rollover"
    if d.action is Action.ISSUE_IN_PLACE and not (a.should_issue and a.can_issue):
        d = dataclasses.replace(d, action=Action.NONE)  # nothing usable, nothing to fix now
        signer = None
    if d.action in (Action.PREPARE_NEXT, Action.ISSUE_IN_PLACE):
        made = _sign(r, retry_at)
        if made is None:
            return _report(r, d, signer, new_signer=False, written=None, copies=copies)
        if d.action is Action.PREPARE_NEXT:
            pending = made
            d = decide(dataclasses.replace(rin, next=r.roots(made), status=d.status, rotate=None))
            r.bound.info("prepared the next CA", serial=made.serial_number, reason=trigger)
            ctx.record(
                "Normal",
                Reason.ROLLOVER_STARTED,
                f"rolling the CA over: next CA serial {made.serial_number[:16]} ({rotate})",
            )
        else:
            signer, new_signer = made, True
            aborted = d.notices
            # A fresh start: whatever rollover was recorded is over; previous roots that
            # live certificates still need keep it going as a retirement.
            d = decide(
                dataclasses.replace(
                    rin,
                    current=r.roots(made),
                    next=None,
                    status=RolloverStatus(refused_request=d.status.refused_request),
                    rotate=None,
                )
            )
            d = dataclasses.replace(d, notices=(*aborted, *d.notices))
    if d.action is Action.PROMOTE:
        signer, pending, new_signer = pending, None, True
    elif not d.keep_next:
        pending = None

    written: str | None = None
    if signer is not None:
        roots = [r.known[fp] for fp in d.roots]
        desired = ca_secret_data(signer, roots, spec.output_format, pending)
        if g.secret is None or _differs(desired, g.secret.data):
            revision = (old.revision or 0) + 1 if new_signer else old.revision or 0
            extra = (
                secret_annotations(signer, spec, certificate_name=r.name, revision=revision)
                if new_signer
                else {}
            )
            try:
                written = store.write_secret(
                    ctx.k,
                    namespace=r.namespace,
                    name=spec.secret_name,
                    certificate_name=r.name,
                    data=desired,
                    annotations={**spec.secret_annotations, **extra},
                    labels=spec.secret_labels,
                    owner=r.body,
                    existing=g.secret,
                )
            except ApiException as exc:
                if exc.status == objects.CONFLICT:
                    r.bound.info("CA Secret changed while deciding; deciding again")
                    return CaResult(
                        status=r.status,
                        conditions=a.conditions,
                        next_wake=now + CONFLICT_RETRY,
                        conflict=True,
                    )
                r.status = failed(r.status, now, f"writing Secret {spec.secret_name}: {exc.reason}")
                telemetry.cert_failures.labels(r.namespace, r.name, "SecretWriteFailed").inc()
                ctx.record("Warning", Reason.ISSUANCE_FAILED, r.status.last_failure_reason or "")
                return _report(r, None, None, new_signer=False, written=None, copies=copies)
            ctx.on_secret_written(written)
            r.inp = dataclasses.replace(
                r.inp,
                secret=parse_secret(
                    desired,
                    {**(g.secret.annotations if g.secret else {}), **extra},
                    output_format=spec.output_format,
                ),
            )
        if {x.fingerprint_sha256 for x in d.trusted} != {x.fingerprint for x in stored}:
            copies = _publish(r, tuple(roots)) or copies
    if new_signer and signer is not None:
        _announce(r, signer, trigger, promoted=d.action is Action.PROMOTE)
    return _report(r, d, signer, new_signer=new_signer, written=written, copies=copies)


def _publish(r: _Run, roots: Sequence[x509.Certificate]) -> tuple[Copy, ...]:
    """Mirror ``roots`` into every selected namespace (no-op without a trust bundle)."""
    bundle = r.spec.trust_bundle
    ca = (r.namespace, r.name)
    if bundle is None:
        if r.ctx.cache.copies(ca):
            bundles.withdraw(r.ctx.k, r.ctx.cache, ca, None, r.ctx.scope)
        return ()
    if not roots:
        return ()
    copies = bundles.publish(r.ctx.k, r.ctx.cache, ca, bundle, pki.to_pem(roots), r.ctx.scope)
    r.wake.append(r.now + BUNDLE_RESYNC)
    return copies


def _sign(r: _Run, retry_at: dt.datetime | None) -> IssuedCertificate | None:
    """A new CA certificate (the next one, or one in place), paced like any issuance."""
    ctx, spec, now = r.ctx, r.spec, r.now
    if retry_at is not None and now < retry_at:
        r.wake.append(retry_at)
        return None
    budget_key = spec.issuer_ref.key if spec.issuer_ref else f"self/{r.namespace}/{r.name}"
    if (budget_retry := ctx.budgets.spend(budget_key, f"{r.namespace}/{r.name}", now)) is not None:
        r.wake.append(budget_retry)
        return None
    started = time.perf_counter()
    try:
        key = reusable_key(spec, r.g.contents) or generate_private_key(spec.private_key)
        made = issue(spec, key, r.g.authority, ctx.clock())
    except (IssuerError, ValueError) as exc:
        r.status = failed(r.status, now, str(exc))
        telemetry.cert_failures.labels(r.namespace, r.name, "IssuanceFailed").inc()
        ctx.record("Warning", Reason.ISSUANCE_FAILED, str(exc))
        r.bound.error("CA issuance failed", error=str(exc))
        r.wake.append(backoff(r.status.failed_issuance_attempts, r.status.last_failure_time, None))
        return None
    telemetry.issuance_seconds.observe(time.perf_counter() - started)
    r.status = dataclasses.replace(
        r.status, failed_issuance_attempts=0, last_failure_time=None, last_failure_reason=None
    )
    return made


def _announce(r: _Run, signer: IssuedCertificate, trigger: str, *, promoted: bool) -> None:
    """Events, metrics, logs and restarts for a new signing CA."""
    ctx = r.ctx
    telemetry.cert_issuances.labels(r.namespace, r.name, trigger).inc()
    if promoted:
        how = "the next CA now signs"
    elif r.old.revision is None:
        how = "issued"
    else:
        how = "issued in place (no usable CA to roll over)"
    ctx.record(
        "Normal",
        Reason.ISSUED,
        f"{how}: serial {signer.serial_number[:16]} valid until {format_time(signer.not_after)}",
    )
    r.bound.info(
        "new signing CA",
        serial=signer.serial_number,
        promoted=promoted,
        not_after=format_time(signer.not_after),
    )
    for ref in r.spec.restart_on_rotation:
        if store.restart_workload(ctx.k, r.namespace, ref, r.name, signer.fingerprint, r.now):
            ctx.record(
                "Normal",
                "RestartedWorkload",
                f"rolling {ref.kind} {ref.name} to load the new CA",
            )
        else:
            ctx.record(
                "Warning", "WorkloadNotFound", f"restartOnRotation: {ref.kind} {ref.name} not found"
            )


def _report(
    r: _Run,
    d: RolloverDecision | None,
    signer: IssuedCertificate | None,
    *,
    new_signer: bool,
    written: str | None,
    copies: tuple[Copy, ...],
) -> CaResult:
    """Status fields, conditions and Events from what was decided and written."""
    now, spec, old = r.now, r.spec, r.old
    status = r.status
    uid = str(r.body["metadata"]["uid"])
    renew_at: dt.datetime | None = None
    if signer is not None:
        renew_at = renewal_time(signer.not_before, signer.not_after, spec.renew_before, uid)
        status = dataclasses.replace(
            status,
            not_before=signer.not_before,
            not_after=signer.not_after,
            renewal_time=renew_at,
            serial_number=signer.serial_number,
            fingerprint_sha256=signer.fingerprint,
            issuer_fingerprint=signer.issuer_fingerprint,
        )
        if new_signer:
            status = dataclasses.replace(status, revision=(old.revision or 0) + 1)
        r.inp = dataclasses.replace(r.inp, renewal_time=renew_at)
    a = assess(r.inp) if written or new_signer else r.a
    conditions = list(a.conditions)
    rolling = False
    if d is not None:
        phase = d.status.phase
        rolling = phase is not None
        status = dataclasses.replace(
            status,
            trusted_roots=d.trusted,
            rollover_phase=str(phase) if phase else None,
            rollover_start_time=d.status.start_time,
            rollover_phase_time=d.status.phase_time,
            rollover_settled_time=d.status.settled_time,
            rollover_refused_request=d.status.refused_request,
        )
        for notice in d.notices:
            r.ctx.record(notice.type, notice.reason, notice.message)
        if d.notices:
            r.bound.info(
                "rollover", phase=str(phase) if phase else "", notices=[n.reason for n in d.notices]
            )
        conditions = _ca_conditions(r, d, conditions)
        r.wake.append(d.wake_at)
    if spec.trust_bundle is not None:
        conditions.append(_bundle_condition(r, copies))
    leaf = r.inp.leaf
    if renew_at is not None and leaf is not None:
        overdue = renewal_overdue_at(renew_at, leaf.not_after)
        r.wake += [
            renew_at if renew_at > now else None,
            overdue if overdue > now else None,
            leaf.not_after if leaf.not_after > now else None,
        ]
    wakes = [w for w in r.wake if w is not None]
    return CaResult(
        status=status,
        conditions=tuple(conditions),
        next_wake=min(wakes) if wakes else None,
        written_resource_version=written,
        rolling=rolling,
        publishes=spec.trust_bundle is not None,
    )


def _condition(
    r: _Run, type_: ConditionType, status: ConditionStatus, reason: str, message: str
) -> Condition:
    return Condition(type_, status, reason, message, r.now, r.inp.generation)


def _ca_conditions(r: _Run, d: RolloverDecision, conditions: list[Condition]) -> list[Condition]:
    phase = d.status.phase
    out = []
    for cond in conditions:
        if (
            cond.type == ConditionType.RENEWAL_OVERDUE
            and cond.is_true
            and phase in (Phase.ADDING_ROOT, Phase.DISTRIBUTING_BUNDLE)
            and r.inp.leaf is not None
            and r.now < r.inp.leaf.not_after
        ):
            # The renewal is under way: the new CA signs once every copy trusts it.
            out.append(
                _condition(
                    r,
                    ConditionType.RENEWAL_OVERDUE,
                    ConditionStatus.FALSE,
                    str(phase),
                    f"renewal in progress through the CA rollover: {d.message}",
                )
            )
        else:
            out.append(cond)
    if phase is not None:
        out.append(
            _condition(r, ConditionType.ROLLING_OVER, ConditionStatus.TRUE, str(phase), d.message)
        )
    else:
        out.append(
            _condition(
                r,
                ConditionType.ROLLING_OVER,
                ConditionStatus.FALSE,
                Reason.IDLE,
                "no CA rollover in progress",
            )
        )
    refused_before = r.old.condition(ConditionType.ROLLOVER_REFUSED)
    if d.refused:
        refusal = next(n for n in d.notices if n.reason == "RolloverRefused")
        out.append(
            _condition(
                r,
                ConditionType.ROLLOVER_REFUSED,
                ConditionStatus.TRUE,
                Reason.ROLLOVER_IN_PROGRESS,
                refusal.message,
            )
        )
    elif refused_before is not None and refused_before.is_true and phase is None:
        when = d.status.refused_request
        out.append(
            _condition(
                r,
                ConditionType.ROLLOVER_REFUSED,
                ConditionStatus.FALSE,
                Reason.ROLLOVER_FINISHED,
                f"the renewal requested at {format_time(when) if when else '?'} was refused "
                "while a rollover ran and was not served; request it again to roll over",
            )
        )
    return out


def _bundle_condition(r: _Run, copies: tuple[Copy, ...]) -> Condition:
    failing = [c for c in copies if c.roots is None]
    before = r.old.condition(ConditionType.TRUST_BUNDLE_READY)
    if failing:
        message = "; ".join(f"{c.name}: {c.error}" for c in failing[:5])
        if before is None or before.is_true or before.message != message:
            r.ctx.record("Warning", Reason.PUBLISH_FAILED, f"trust bundle not written: {message}")
        return _condition(
            r,
            ConditionType.TRUST_BUNDLE_READY,
            ConditionStatus.FALSE,
            Reason.PUBLISH_FAILED,
            f"{len(failing)} of {len(copies)} namespace(s) lack the bundle: {message}",
        )
    return _condition(
        r,
        ConditionType.TRUST_BUNDLE_READY,
        ConditionStatus.TRUE,
        Reason.PUBLISHED,
        f"the trusted set is published in {len(copies)} namespace(s)",
    )
