"""Kubernetes: wire types (API answers, object shapes), the client, list+watch."""
