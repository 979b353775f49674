"""The redis-server fixtures of the list tests, shared: plain, with passwords, TLS, fresh."""

from tests.integration.redis_lists.conftest import (  # noqa: F401 - fixtures, by name
    PASSWORD,
    fresh_redis,
    password_redis,
    redis_pki,
    redis_server,
    tls_redis,
)
