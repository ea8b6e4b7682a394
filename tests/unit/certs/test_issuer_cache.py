"""gather.IssuerCache: what may be kept, when it is dropped, and the read/event race."""

from __future__ import annotations

import datetime as dt
from typing import Any

from dabba.certs.gather import READ_RACE_WINDOW, SECRET_LABEL, IssuerCache, SecretObject


def secret(
    rv: str = "10", *, namespace: str = "mesh", name: str = "root-ca", labelled: bool = True
) -> SecretObject:
    return SecretObject(
        name=name,
        namespace=namespace,
        type="kubernetes.io/tls",
        data={},
        labels={SECRET_LABEL: "root"} if labelled else {},
        annotations={},
        resource_version=rv,
        owner_references=(),
    )


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def cache(clock: Clock, **kw: Any) -> IssuerCache:
    return IssuerCache(clusterwide=kw.pop("clusterwide", True), namespaces=(), clock=clock, **kw)


def test_keeps_a_watched_ca_until_its_secret_changes(make: Any) -> None:
    clock = Clock()
    c = cache(clock)
    ca = make.root()
    c.keep(secret(), "tls", ca)
    hit = c.loaded("mesh", "root-ca", "tls", make.T0)
    assert hit is not None
    assert hit.authority is ca
    assert hit.facts.is_ca
    assert c.loaded("mesh", "root-ca", "istio", make.T0) is None, "per layout"
    c.forget_secret("mesh", "root-ca", "11")
    assert c.loaded("mesh", "root-ca", "tls", make.T0) is None


def test_unwatched_or_unlabelled_secrets_are_never_kept(make: Any) -> None:
    clock = Clock()
    scoped = IssuerCache(clusterwide=False, namespaces=("apps",), clock=clock)
    scoped.keep(secret(namespace="mesh"), "tls", make.root())
    assert scoped.loaded("mesh", "root-ca", "tls", make.T0) is None, "outside the watch scope"
    c = cache(clock)
    c.keep(secret(labelled=False), "tls", make.root())
    assert c.loaded("mesh", "root-ca", "tls", make.T0) is None, "no dabba label: not watched"


def test_entries_expire_and_respect_the_chain_validity(make: Any) -> None:
    clock = Clock()
    c = cache(clock, max_age=30.0)
    ca = make.root(duration=dt.timedelta(days=2))
    c.keep(secret(), "tls", ca)
    assert c.loaded("mesh", "root-ca", "tls", make.T0) is not None
    late = make.T0 + dt.timedelta(days=5)
    assert c.loaded("mesh", "root-ca", "tls", late) is None, "past the CA's notAfter"
    clock.t += 31
    assert c.loaded("mesh", "root-ca", "tls", make.T0) is None, "older than max_age"


def test_a_read_that_raced_with_a_change_is_not_kept(make: Any) -> None:
    clock = Clock()
    c = cache(clock)
    # The worker read version 10; meanwhile the watch reported version 12.
    c.forget_secret("mesh", "root-ca", "12")
    c.keep(secret("10"), "tls", make.root())
    assert c.loaded("mesh", "root-ca", "tls", make.T0) is None
    c.keep(secret("12"), "tls", make.root())
    assert c.loaded("mesh", "root-ca", "tls", make.T0) is not None


def test_race_memory_is_pruned(make: Any) -> None:
    clock = Clock()
    c = cache(clock)
    for i in range(5000):
        c.forget_secret("mesh", f"leaf-{i}", str(i))
        clock.t += 0.1  # 500 s in all: most entries are long past the race window
    assert len(c._newest) <= 2 * (READ_RACE_WINDOW / 0.1) + 2048


def test_ca_secret_names_come_from_events_and_clear(make: Any) -> None:
    c = cache(Clock())
    c.note_certificate("mesh", "root", {"spec": {"isCA": True, "secretName": "root-ca"}})
    c.note_certificate("mesh", "leaf", {"spec": {"secretName": "leaf-tls"}})
    assert c.ca_secret_name("mesh", "root") == "root-ca"
    assert c.ca_secret_name("mesh", "leaf") is None, "not a CA: the reconcile reads it"
    c.note_certificate("mesh", "root", None)
    assert c.ca_secret_name("mesh", "root") is None
    c.note_certificate("mesh", "root", {"spec": {"isCA": True, "secretName": "root-ca"}})
    c.clear()
    assert c.ca_secret_name("mesh", "root") is None
