"""Trust-bundle ConfigMaps and holders (``bundles.py``) against an in-memory API.

The fake answers the handful of CoreV1 calls the module makes, with resourceVersions, 404s,
409s, a quota that forbids creating ConfigMaps, and terminating namespaces, so the publish
logic (create, update, leave foreign ConfigMaps alone, clean up where the selector no longer
applies, spend no calls in the steady state) is checked without a cluster.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from dabba.certs import bundles, issuer, pki
from dabba.certs.model import (
    ANNOTATION_BUNDLE_SOURCE,
    ANNOTATION_ISSUER_KIND,
    ANNOTATION_ISSUER_NAME,
    ANNOTATION_ISSUER_NAMESPACE,
    TrustBundleSpec,
)
from dabba.errors import SpecError

CA = ("mesh", "root")


def _raw(obj: object) -> SimpleNamespace:
    return SimpleNamespace(data=json.dumps(obj).encode())


def _error(status: int, message: str) -> ApiException:
    exc = ApiException(status=status, reason=message)
    exc.body = json.dumps({"message": message})
    return exc


@dataclasses.dataclass
class FakeCore:
    """The CoreV1Api calls bundles.py makes, over dicts."""

    namespaces: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    terminating: set[str] = dataclasses.field(default_factory=set)
    quota: set[str] = dataclasses.field(default_factory=set)
    configmaps: dict[tuple[str, str], dict[str, Any]] = dataclasses.field(default_factory=dict)
    secrets: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    calls: list[str] = dataclasses.field(default_factory=list)
    rv: int = 100

    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    @staticmethod
    def _matches(labels: dict[str, str], selector: str | None) -> bool:
        for part in filter(None, (selector or "").split(",")):
            key, _, value = part.partition("=")
            if labels.get(key) != value:
                return False
        return True

    def list_namespace(self, label_selector: str | None = None, **_: Any) -> SimpleNamespace:
        self.calls.append("list namespaces")
        items = [
            {
                "metadata": {"name": name, "labels": labels},
                "status": {"phase": "Terminating" if name in self.terminating else "Active"},
            }
            for name, labels in self.namespaces.items()
            if self._matches(labels, label_selector)
        ]
        return _raw({"items": items})

    def read_namespaced_config_map(self, name: str, namespace: str, **_: Any) -> SimpleNamespace:
        self.calls.append(f"get {namespace}/{name}")
        obj = self.configmaps.get((namespace, name))
        if obj is None:
            raise _error(404, "not found")
        return _raw(obj)

    def _store(self, namespace: str, body: client.V1ConfigMap, *, create: bool) -> SimpleNamespace:
        obj = body.model_dump(by_alias=True, exclude_none=True)
        name = obj["metadata"]["name"]
        if namespace not in self.namespaces:
            raise _error(404, f"namespaces {namespace} not found")
        if namespace in self.terminating:
            raise _error(
                403,
                f"unable to create new content in namespace {namespace} because it is being "
                "terminated",
            )
        current = self.configmaps.get((namespace, name))
        if create:
            if namespace in self.quota:
                raise _error(403, "exceeded quota: no-configmaps")
            if current is not None:
                raise _error(409, "already exists")
        else:
            if current is None:
                raise _error(404, "not found")
            if obj["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
                raise _error(409, "conflict")
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self.configmaps[namespace, name] = obj
        return _raw(obj)

    def create_namespaced_config_map(
        self, namespace: str, body: client.V1ConfigMap, **_: Any
    ) -> SimpleNamespace:
        self.calls.append(f"create {namespace}")
        return self._store(namespace, body, create=True)

    def replace_namespaced_config_map(
        self, name: str, namespace: str, body: client.V1ConfigMap, **_: Any
    ) -> SimpleNamespace:
        self.calls.append(f"replace {namespace}/{name}")
        return self._store(namespace, body, create=False)

    def delete_namespaced_config_map(self, name: str, namespace: str, **_: Any) -> None:
        self.calls.append(f"delete {namespace}/{name}")
        if self.configmaps.pop((namespace, name), None) is None:
            raise _error(404, "not found")

    def list_secret_for_all_namespaces(self, **_: Any) -> SimpleNamespace:
        return _raw({"items": self.secrets})

    def list_namespaced_secret(self, namespace: str, **_: Any) -> SimpleNamespace:
        return _raw({"items": [s for s in self.secrets if s["metadata"]["namespace"] == namespace]})


@pytest.fixture
def core() -> FakeCore:
    return FakeCore(
        namespaces={
            "mesh": {"mesh": "on"},
            "shop": {"mesh": "on"},
            "other": {},
        }
    )


def clients(core: FakeCore) -> Any:
    return SimpleNamespace(core=core)


SELECTED = TrustBundleSpec("mesh-roots", "ca.crt", {"matchLabels": {"mesh": "on"}})


def pem_of(make, *slots: int) -> tuple[bytes, frozenset[str]]:
    roots = [make.root(f"r{s}", slot=100 + s).certificate for s in slots]
    return pki.to_pem(roots), frozenset(pki.fingerprint_sha256(r) for r in roots)


def publish(
    core: FakeCore,
    cache: bundles.Cache,
    pem: bytes,
    bundle: TrustBundleSpec = SELECTED,
    scope: Any = None,
):
    return bundles.publish(clients(core), cache, CA, bundle, pem, scope)


# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (None, None),
        ({}, ""),
        ({"matchLabels": {"b": "2", "a": "1"}}, "a=1,b=2"),
        (
            {
                "matchExpressions": [
                    {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                    {"key": "tier", "operator": "NotIn", "values": ["x"]},
                    {"key": "mesh", "operator": "Exists"},
                    {"key": "legacy", "operator": "DoesNotExist"},
                ]
            },
            "env in (dev,prod),tier notin (x),mesh,!legacy",
        ),
    ],
)
def test_the_namespace_selector_in_the_api_string_form(selector, expected) -> None:
    assert TrustBundleSpec("b", namespace_selector=selector).label_selector() == expected


@pytest.mark.parametrize(
    "bad",
    [
        {"matchExpressions": [{"key": "a", "operator": "In"}]},
        {"matchExpressions": [{"key": "a", "operator": "Near", "values": ["x"]}]},
    ],
)
def test_a_selector_the_api_would_refuse_is_a_spec_error(bad) -> None:
    with pytest.raises(SpecError):
        TrustBundleSpec("b", namespace_selector=bad).label_selector()


def test_an_omitted_selector_means_the_cas_own_namespace(core: FakeCore, make) -> None:
    pem, roots = pem_of(make, 1)
    copies = publish(core, bundles.Cache(), pem, TrustBundleSpec("mesh-roots"))
    assert [c.name for c in copies] == ["mesh/mesh-roots"]
    assert copies[0].roots == roots


def test_publish_creates_the_bundle_in_every_selected_namespace_only(core: FakeCore, make) -> None:
    pem, roots = pem_of(make, 1)
    copies = publish(core, bundles.Cache(), pem)
    assert {c.name: c.roots for c in copies} == {"mesh/mesh-roots": roots, "shop/mesh-roots": roots}
    assert set(core.configmaps) == {("mesh", "mesh-roots"), ("shop", "mesh-roots")}
    cm = core.configmaps["shop", "mesh-roots"]
    assert cm["data"] == {"ca.crt": pem.decode()}
    assert cm["metadata"]["annotations"] == {ANNOTATION_BUNDLE_SOURCE: "mesh/root"}
    assert cm["metadata"]["labels"] == {"dabba.io/trust-bundle": "true"}


def test_a_steady_state_costs_one_namespace_list(core: FakeCore, make) -> None:
    pem, _ = pem_of(make, 1)
    cache = bundles.Cache()
    publish(core, cache, pem)
    core.calls.clear()
    publish(core, cache, pem)
    assert core.calls == ["list namespaces"]


def test_a_new_trusted_set_replaces_every_copy(core: FakeCore, make) -> None:
    cache = bundles.Cache()
    publish(core, cache, pem_of(make, 1)[0])
    pem, roots = pem_of(make, 1, 2)
    core.calls.clear()
    copies = publish(core, cache, pem)
    assert {c.roots for c in copies} == {roots}
    assert sorted(c for c in core.calls if c.startswith("replace")) == [
        "replace mesh/mesh-roots",
        "replace shop/mesh-roots",
    ]


def test_a_new_namespace_gets_the_bundle_and_a_deselected_one_loses_it(
    core: FakeCore, make
) -> None:
    pem, _ = pem_of(make, 1)
    cache = bundles.Cache()
    publish(core, cache, pem)
    core.namespaces["late"] = {"mesh": "on"}
    core.namespaces["shop"] = {}
    copies = publish(core, cache, pem)
    assert {c.name for c in copies} == {"mesh/mesh-roots", "late/mesh-roots"}
    assert ("shop", "mesh-roots") not in core.configmaps
    assert ("late", "mesh-roots") in core.configmaps


def test_stale_copies_are_found_once_per_process(core: FakeCore, make) -> None:
    pem, _ = pem_of(make, 1)
    publish(core, bundles.Cache(), pem)
    core.namespaces["shop"] = {}  # deselected while no dabba ran
    publish(core, bundles.Cache(), pem)  # a new process: scans every namespace once
    assert ("shop", "mesh-roots") not in core.configmaps


def test_a_foreign_configmap_is_neither_overwritten_nor_deleted(core: FakeCore, make) -> None:
    core.configmaps["shop", "mesh-roots"] = {
        "metadata": {"name": "mesh-roots", "namespace": "shop", "resourceVersion": "7"},
        "data": {"ca.crt": "mine"},
    }
    pem, _ = pem_of(make, 1)
    cache = bundles.Cache()
    copies = {c.name: c for c in publish(core, cache, pem)}
    assert copies["shop/mesh-roots"].roots is None
    assert "not dabba's" in (copies["shop/mesh-roots"].error or "")
    assert core.configmaps["shop", "mesh-roots"]["data"] == {"ca.crt": "mine"}
    core.namespaces["shop"] = {}
    publish(core, cache, pem)
    bundles.withdraw(clients(core), cache, CA, "mesh-roots", None)
    assert ("shop", "mesh-roots") in core.configmaps


def test_another_cas_bundle_of_the_same_name_is_reported(core: FakeCore, make) -> None:
    core.configmaps["shop", "mesh-roots"] = {
        "metadata": {
            "name": "mesh-roots",
            "namespace": "shop",
            "resourceVersion": "7",
            "annotations": {ANNOTATION_BUNDLE_SOURCE: "other/ca"},
        },
        "data": {},
    }
    copies = {c.name: c for c in publish(core, bundles.Cache(), pem_of(make, 1)[0])}
    assert "the trust bundle of other/ca" in (copies["shop/mesh-roots"].error or "")


def test_a_quota_that_forbids_configmaps_is_a_copy_not_written(core: FakeCore, make) -> None:
    core.quota.add("shop")
    cache = bundles.Cache()
    copies = {c.name: c for c in publish(core, cache, pem_of(make, 1)[0])}
    assert copies["shop/mesh-roots"].roots is None
    assert copies["shop/mesh-roots"].error == "exceeded quota: no-configmaps"
    core.quota.clear()
    copies = {c.name: c for c in publish(core, cache, pem_of(make, 1)[0])}
    assert copies["shop/mesh-roots"].roots is not None


def test_terminating_namespaces_are_not_copies(core: FakeCore, make) -> None:
    core.terminating.add("shop")
    copies = publish(core, bundles.Cache(), pem_of(make, 1)[0])
    assert [c.name for c in copies] == ["mesh/mesh-roots"]


def test_an_edit_is_repaired_after_the_verification_period(
    core: FakeCore, make, monkeypatch
) -> None:
    pem, _ = pem_of(make, 1)
    cache = bundles.Cache()
    publish(core, cache, pem)
    core.configmaps["shop", "mesh-roots"]["data"] = {"ca.crt": "edited"}
    clock = [1000.0]
    monkeypatch.setattr(bundles.time, "monotonic", lambda: clock[0])
    publish(core, cache, pem)  # entries written at the real monotonic time: fresh or not
    clock[0] += bundles.VERIFY_AFTER + 1e9
    publish(core, cache, pem)
    assert core.configmaps["shop", "mesh-roots"]["data"] == {"ca.crt": pem.decode()}


def test_a_conflicting_write_reads_again_and_retries(core: FakeCore, make) -> None:
    cache = bundles.Cache()
    publish(core, cache, pem_of(make, 1)[0])
    core.configmaps["shop", "mesh-roots"]["metadata"]["resourceVersion"] = "999"  # someone else
    pem, roots = pem_of(make, 1, 2)
    copies = {c.name: c for c in publish(core, cache, pem)}
    assert copies["shop/mesh-roots"].roots == roots


def test_the_scope_limits_the_namespaces(core: FakeCore, make) -> None:
    copies = publish(core, bundles.Cache(), pem_of(make, 1)[0], scope=("mesh",))
    assert [c.name for c in copies] == ["mesh/mesh-roots"]


def test_withdraw_removes_every_copy_of_this_ca(core: FakeCore, make) -> None:
    cache = bundles.Cache()
    publish(core, cache, pem_of(make, 1)[0])
    bundles.withdraw(clients(core), cache, CA, "mesh-roots", None)
    assert core.configmaps == {}
    assert cache.copies(CA) == {}


# --------------------------------------------------------------------------------------------
# Holders


def _secret(
    namespace: str, name: str, issued: issuer.IssuedCertificate, annotations=None, ca=None
) -> dict[str, Any]:
    data = {
        "tls.crt": pki.to_pem((issued.certificate, *issued.chain)),
        "tls.key": b"never read",
        "ca.crt": pki.to_pem(ca if ca is not None else issued.roots),
    }
    return {
        "metadata": {
            "namespace": namespace,
            "name": name,
            "uid": f"uid-{name}",
            "resourceVersion": "1",
            "annotations": annotations or {},
        },
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }


def test_holders_are_the_certificates_that_chain_to_a_candidate_root(core: FakeCore, make) -> None:
    old, new, other = (
        make.root("old", slot=101),
        make.root("new", slot=102),
        make.root("x", slot=103),
    )
    mine = {
        ANNOTATION_ISSUER_KIND: "MeshCertificate",
        ANNOTATION_ISSUER_NAME: "root",
        ANNOTATION_ISSUER_NAMESPACE: "mesh",
    }
    leaf_old = make.leaf(ca=old)
    leaf_new = make.leaf(ca=new)
    leaf_other = make.leaf(ca=other)
    intermediate = make.intermediate(old)
    sub_leaf = make.leaf(ca=intermediate)
    core.secrets = [
        _secret(
            "mesh",
            "root-ca",
            issuer.sign(
                issuer.CertificateTemplate(common_name="old", is_ca=True),
                make.key(slot=101),
                None,
                make.T0,
            ),
        ),
        _secret("shop", "a", leaf_old, mine, ca=[old.certificate, new.certificate]),
        _secret("shop", "b", leaf_new, mine),
        _secret("shop", "c", leaf_other),
        _secret("shop", "d", sub_leaf),
    ]
    found = {
        h.name: h
        for h in bundles.holders(
            clients(core),
            bundles.Cache(),
            None,
            ca=CA,
            exclude=("mesh", "root-ca"),
            candidates=(old.certificate, new.certificate),
            signer=new.certificate,
        )
    }
    fp_old, fp_new = (pki.fingerprint_sha256(c.certificate) for c in (old, new))
    assert set(found) == {"shop/a", "shop/b", "shop/d"}  # the other root's leaf is no holder
    assert found["shop/a"].chains_to == {fp_old}
    assert found["shop/a"].bundle == {fp_old, fp_new}
    assert found["shop/a"].direct
    assert not found["shop/a"].on_current
    assert found["shop/b"].on_current
    assert found["shop/d"].chains_to == {fp_old}  # through its intermediate
    assert not found["shop/d"].direct
    assert found["shop/b"].not_after == leaf_new.not_after


def test_holders_parse_each_secret_version_once(core: FakeCore, make, monkeypatch) -> None:
    root = make.root("old", slot=101)
    core.secrets = [_secret("shop", "a", make.leaf(ca=root))]
    cache = bundles.Cache()
    kwargs: dict[str, Any] = {
        "ca": CA,
        "exclude": ("mesh", "root-ca"),
        "candidates": (root.certificate,),
        "signer": root.certificate,
    }
    first = bundles.holders(clients(core), cache, ("shop",), **kwargs)
    parsed = []
    monkeypatch.setattr(bundles, "_parse", lambda item: parsed.append(item) or None)
    assert bundles.holders(clients(core), cache, ("shop",), **kwargs) == first
    assert parsed == []
    assert first[0].not_after > make.T0 + dt.timedelta(hours=1)


def test_a_leaf_follows_its_issuers_trusted_set_without_re_issuing(make) -> None:
    from dabba.certs import reconcile  # noqa: PLC0415 - the one helper tested here
    from dabba.certs.gather import Gathered  # noqa: PLC0415

    root, other = make.root(), make.root("other", slot=150)
    contents = make.contents(make.leaf(ca=root))
    both = issuer.CertificateAuthority(
        root.certificate, root.key, roots=(root.certificate, other.certificate)
    )
    stale = Gathered(None, contents, both, None, None)
    assert reconcile._stale_bundle(stale) == pki.to_pem(both.roots)
    assert reconcile._stale_bundle(Gathered(None, contents, root, None, None)) is None
    assert reconcile._stale_bundle(Gathered(None, contents, None, "gone", None)) is None


def test_copying_the_trusted_set_is_paced_by_the_certificates_own_budget(make) -> None:
    from dabba.certs.issuing import Budgets  # noqa: PLC0415
    from dabba.certs.rotation import IssuanceBudget  # noqa: PLC0415

    budgets = Budgets(
        issuer=IssuanceBudget(capacity=1, per_second=0.001),
        certificate=IssuanceBudget(capacity=2, per_second=0.1),
    )
    now = make.T0
    assert budgets.spend_own("shop/a", now) is None
    assert budgets.spend_own("shop/a", now) is None
    assert budgets.spend_own("shop/a", now) == now + dt.timedelta(seconds=10)
    assert budgets.spend("issuer", "shop/b", now) is None  # the issuer's budget is untouched


def test_removing_the_trust_bundle_from_the_spec_withdraws_the_known_copies(
    core: FakeCore, make
) -> None:
    cache = bundles.Cache()
    publish(core, cache, pem_of(make, 1)[0])
    core.calls.clear()
    bundles.withdraw(clients(core), cache, CA, None, None)
    assert core.configmaps == {}
    assert "list namespaces" not in core.calls


def test_a_copy_deleted_behind_the_caches_back_is_created_again(core: FakeCore, make) -> None:
    cache = bundles.Cache()
    publish(core, cache, pem_of(make, 1)[0])
    del core.configmaps["shop", "mesh-roots"]
    pem, roots = pem_of(make, 1, 2)
    copies = {c.name: c for c in publish(core, cache, pem)}  # the cache says "replace"
    assert copies["shop/mesh-roots"].roots == roots
    assert core.configmaps["shop", "mesh-roots"]["data"] == {"ca.crt": pem.decode()}
