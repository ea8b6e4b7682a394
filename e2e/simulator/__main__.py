"""``python -m simulator --kubeconfig K --port P``: poll the API server, serve /metrics."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from prometheus_client import start_http_server
from prometheus_client.registry import CollectorRegistry

from simulator.exporter import TrafficCollector
from simulator.flows import Snapshot, flows

STEP = 1.0  # seconds between polls; Prometheus scrapes every second too


def _items(resp: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(resp.data)["items"]
    return items


def _custom(api: client.ApiClient, group: str, plural: str) -> list[dict[str, Any]]:
    try:
        # Raw JSON throughout: we read a few fields of many objects every second.
        return _items(
            client.CustomObjectsApi(api).list_cluster_custom_object(
                group, "v1", plural, _preload_content=False
            )
        )
    except ApiException as exc:
        if exc.status == 404:  # CRD not installed: nothing routes that way
            return []
        raise


def snapshot(api: client.ApiClient) -> Snapshot:
    return Snapshot(
        deployments=_items(
            client.AppsV1Api(api).list_deployment_for_all_namespaces(_preload_content=False)
        ),
        services=_items(
            client.CoreV1Api(api).list_service_for_all_namespaces(_preload_content=False)
        ),
        virtualservices=_custom(api, "networking.istio.io", "virtualservices"),
        httproutes=_custom(api, "gateway.networking.k8s.io", "httproutes"),
    )


CONTROLLER = "dabba.io/traffic-simulator"


def accept_routes(api: client.ApiClient, routes: Sequence[Mapping[str, Any]]) -> int:
    """Play the Gateway API implementation: mark each HTTPRoute Accepted for its generation.

    A real mesh or gateway controller does this once it has programmed the route; dabba's
    Gateway API router waits for it before trusting a weight, so the simulator must too.
    """
    patched = 0
    for route in routes:
        md = route["metadata"]
        generation = md.get("generation")
        parents = route.get("spec", {}).get("parentRefs") or []
        current = route.get("status", {}).get("parents") or []
        if (
            parents
            and len(current) == len(parents)
            and all(
                any(
                    c.get("type") == "Accepted"
                    and c.get("status") == "True"
                    and c.get("observedGeneration") == generation
                    for c in p.get("conditions", [])
                )
                for p in current
            )
        ):
            continue
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        conditions = [
            {
                "type": kind,
                "status": "True",
                "reason": kind,
                "message": "programmed by the traffic simulator",
                "observedGeneration": generation,
                "lastTransitionTime": now,
            }
            for kind in ("Accepted", "ResolvedRefs")
        ]
        status = {
            "parents": [
                {"parentRef": ref, "controllerName": CONTROLLER, "conditions": conditions}
                for ref in parents
            ]
        }
        try:
            client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
                "gateway.networking.k8s.io",
                "v1",
                md["namespace"],
                "httproutes",
                md["name"],
                {"status": status},
            )
            patched += 1
        except ApiException as exc:
            if exc.status != 404:
                raise
    return patched


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)

    api = config.new_client_from_config(config_file=args.kubeconfig)
    collector = TrafficCollector()
    registry = CollectorRegistry()
    registry.register(collector)
    server, thread = start_http_server(args.port, addr=args.host, registry=registry)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"simulator serving http://{args.host}:{args.port}/metrics", flush=True)

    last = time.monotonic()
    current: list[Any] = []
    while not stop.is_set():
        try:
            snap = snapshot(api)
            current = flows(snap)
            accept_routes(api, snap.httproutes)
            collector.forget(
                {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in snap.deployments}
            )
        except Exception as exc:
            print(f"simulator: poll failed: {exc}", file=sys.stderr, flush=True)
        now = time.monotonic()
        # Traffic flows with the last known routing while the API is unreachable.
        collector.advance(current, now - last)
        last = now
        stop.wait(max(0.0, STEP - (time.monotonic() - now)))
    server.shutdown()
    thread.join(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
