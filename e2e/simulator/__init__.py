"""The traffic simulator: the one stand-in in the e2e loop, playing the mesh's data plane.

It reads Deployments, Services, Istio VirtualServices and Gateway API HTTPRoutes from the API
server once a second, works out where a service's requests go under the *live* routing
weights, and counts requests, 5xx and latency for each version in the Istio, Linkerd and
Envoy series formats (the label contract in ``dabba.canary.analysis``). Prometheus scrapes it
every second, so the operator's analysis queries see a real data plane's numbers.

How a version behaves is declared on its pod template:

    simulator.dabba.io/error-rate   fraction of 5xx responses            (default 0)
    simulator.dabba.io/latency-ms   p99 latency in milliseconds          (default 20)
    simulator.dabba.io/rps          requests per second at 100 % weight  (default 50)
    simulator.dabba.io/header-rps   extra requests/s of header cohorts   (default 5)

so a bad release is just a new revision with a worse annotation.
"""
