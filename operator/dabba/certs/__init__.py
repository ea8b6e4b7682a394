"""MeshCertificate: workload identities and mesh CAs issued into Secrets and rotated in time.

The package follows cert-manager's split between deciding and doing (DESIGN.md, style.md B.4):

    model      PURE  the API as values: spec defaults and validation, status, conditions,
                     reasons, durations, SPIFFE IDs, usage names, Secret keys and annotations
    pki        PURE  parsed X.509 facts, the redacting PrivateKey wrapper, fingerprints and
                     a chain walk; parsing never raises on garbage
    policies   PURE  the trigger chain (re-issue or not, and why) and the readiness chain
                     (the status conditions)
    rotation   PURE  renewal time with per-certificate jitter, failure backoff, and the
                     per-issuer issuance budget
    issuer           key generation, signing, issuer loading and the Secret payload, with
                     ``cryptography`` only (no Kubernetes I/O; the clock is passed in)

The I/O layers (gather, store, handlers) sit on top: they read the Secret and the issuer,
ask ``policies`` what to do, call ``issuer`` and write the result.
"""
