"""Serving: the routes, TLS, authentication and authorization, request metrics."""
