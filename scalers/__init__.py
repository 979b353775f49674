"""Event sources: one module per trigger type. Knows nothing of Kubernetes or HTTP serving."""
