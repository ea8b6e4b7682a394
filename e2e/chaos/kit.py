"""The reliability and security suite (issue 9): scale, seed and the leak evidence.

Size: ``DABBA_CHAOS_SCALE=short`` (the default, what ``make test`` runs inside the normal e2e
run) or ``full`` (``make chaos``: the issue's counts). Randomness (kill moments, outage lengths)
comes from one seed, printed at the start of every scenario; ``DABBA_CHAOS_SEED=<n>`` replays it.

Shared by the scenario modules: ``MARKS``, the API coordinates, and ``canary`` (the
``test_canary`` helpers that set up, release and watch a canary run: ``canary.release(...)``).

Leak evidence: every scenario hands its namespace's Events and dabba objects to ``Evidence``
before the namespace is deleted, and a background harvester records every private key the
operator writes into a labelled Secret; ``test_zz_no_secret_leaks.py`` scans all of it, plus
every operator log (JSON and console), at the end.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
import random
import threading
import time
from pathlib import Path

import pytest
from kubernetes import client

import test_canary as canary
from e2ekit import custom
from test_canary import Watcher, live_weights

__all__ = [
    "CERTS",
    "CERT_LABEL",
    "EVIDENCE",
    "FULL",
    "GROUP",
    "MARKS",
    "SCALE",
    "SEED",
    "VERSION",
    "Evidence",
    "Harvester",
    "SafeWatcher",
    "canary",
    "pick",
]

#: Every scenario module's ``pytestmark`` starts with these (then its own ``local_*`` marks).
MARKS = [pytest.mark.e2e, pytest.mark.chaos]

GROUP, VERSION, CERTS = "dabba.io", "v1alpha1", "meshcertificates"

SCALE = os.environ.get("DABBA_CHAOS_SCALE", "short")
if SCALE not in ("short", "full"):
    raise ValueError(f"DABBA_CHAOS_SCALE must be short or full, not {SCALE!r}")
FULL = SCALE == "full"
SEED = int(os.environ.get("DABBA_CHAOS_SEED") or random.SystemRandom().randrange(1, 2**31))

CERT_LABEL = "dabba.io/meshcertificate"


def pick(short: int, full: int) -> int:
    """A count for the current scale."""
    return full if FULL else short


@dataclasses.dataclass
class Evidence:
    """Everything the leak scanner reads at the end of the session."""

    keys: set[bytes] = dataclasses.field(default_factory=set)
    documents: dict[str, bytes] = dataclasses.field(default_factory=dict)
    logs: list[Path] = dataclasses.field(default_factory=list)
    #: How often the session operator was restarted with console-format logs.
    console_restarts: int = 0
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def add_key(self, pem: bytes) -> None:
        with self.lock:
            self.keys.add(pem)

    def add_log(self, path: Path) -> None:
        with self.lock:
            if path not in self.logs:
                self.logs.append(path)

    def capture(self, api: client.ApiClient, namespace: str) -> None:
        """Events and dabba objects (with status) of ``namespace``, before it is deleted."""
        core = client.CoreV1Api(api)
        docs = {
            f"{namespace} events": core.list_namespaced_event(
                namespace, _preload_content=False
            ).data
        }
        for plural in ("canaries", "meshcertificates"):
            docs[f"{namespace} {plural}"] = (
                custom(api)
                .list_namespaced_custom_object(
                    "dabba.io", "v1alpha1", namespace, plural, _preload_content=False
                )
                .data
            )
        with self.lock:
            self.documents.update(docs)


class Harvester:
    """Reads every labelled certificate Secret once a second and keeps their private keys."""

    def __init__(self, api: client.ApiClient, evidence: Evidence) -> None:
        self._api, self._evidence = api, evidence
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def harvest(self) -> None:
        secrets = client.CoreV1Api(self._api).list_secret_for_all_namespaces(
            label_selector=CERT_LABEL
        )
        for s in secrets.items:
            for key, value in (s.data or {}).items():
                if key.endswith(("key", "key.pem")):
                    self._evidence.add_key(base64.b64decode(value))

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.harvest()
            except Exception:  # noqa: S112 - the apiserver may be down during a scenario
                continue

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        with contextlib.suppress(client.exceptions.ApiException):
            self.harvest()


#: One per session: the scanner module reads what every scenario left here.
EVIDENCE = Evidence()


class SafeWatcher(Watcher):
    """``test_canary.Watcher`` that survives an unreachable API server (records None)."""

    def _run(self, api: client.ApiClient, router: str, namespace: str, svc: str) -> None:
        while not self._stop.wait(0.25):
            try:
                w = live_weights(api, router, namespace, svc)
            except Exception:  # noqa: S112 - the apiserver is down; the data plane keeps its weights
                continue
            if not self.seen or self.seen[-1][1] != w:
                self.seen.append((time.time(), w))
