"""Kubernetes plumbing: client construction, object helpers, conditions, names."""
