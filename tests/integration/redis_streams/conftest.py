"""The redis-server fixtures of the list tests, shared: plain, with passwords, fresh."""

from tests.integration.redis_lists.conftest import (  # noqa: F401 - fixtures, by name
    PASSWORD,
    fresh_redis,
    password_redis,
    redis_server,
)
