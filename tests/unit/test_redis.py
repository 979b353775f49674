"""``redis``: parsing the trigger as KEDA does, and the backend identity triggers share."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from scalers import redis as redis_scaler
from scalers.errors import Problems
from scalers.params import TriggerInputs
from scalers.redis_connection import RedisBackend
from tests.support.pki import KEY_PASSWORD, Pki, make_pki

P = "triggers[0].metadata"
BASE = {"address": "redis:6379", "listName": "jobs"}


def create(
    metadata: dict[str, str],
    auth: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
) -> tuple[redis_scaler.RedisScaler | None, list[str]]:
    problems = Problems()
    inputs = TriggerInputs(metadata, env or {}, auth or {}, path=P)
    scaler = redis_scaler.KIND.create(inputs, problems)
    assert scaler is None or isinstance(scaler, redis_scaler.RedisScaler)
    return scaler, [str(p) for p in problems]


def built(
    metadata: dict[str, str] | None = None,
    auth: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
) -> redis_scaler.RedisScaler:
    scaler, problems = create({**BASE, **(metadata or {})}, auth, env)
    assert problems == []
    assert scaler is not None
    return scaler


def one_server(scaler: redis_scaler.RedisScaler) -> RedisBackend:
    backend = scaler.query.backend
    assert isinstance(backend, RedisBackend)
    return backend


@pytest.fixture(scope="module")
def pki() -> Iterator[Pki]:
    with tempfile.TemporaryDirectory() as tmp:
        yield make_pki(Path(tmp))


def test_defaults_and_metric_name() -> None:
    scaler = built({"listName": "bull:mail/high.prio"})
    assert scaler.metric_name == "redis-bull-mail-high-prio"
    assert (scaler.target, scaler.activation_target) == (5.0, 0.0)
    assert scaler.query.key == "bull:mail/high.prio"
    assert scaler.query.backend == RedisBackend("redis", 6379)
    assert str(scaler.query.backend) == "redis://redis:6379/0"
    assert scaler.measure(7) == 7.0


def test_lengths_and_database() -> None:
    scaler = built({"listLength": "20", "activationListLength": "3", "databaseIndex": "2"})
    assert (scaler.target, scaler.activation_target) == (20.0, 3.0)
    assert one_server(scaler).db == 2


@pytest.mark.parametrize(
    ("metadata", "auth", "env", "host", "port"),
    [
        ({"address": "10.0.0.1:6380"}, {}, {}, "10.0.0.1", 6380),
        ({"address": "[::1]:6380"}, {}, {}, "::1", 6380),
        ({"address": "meta:1"}, {"address": "auth:2"}, {}, "meta", 1),
        ({"address": ""}, {"addresses": "auth:2,b:3"}, {}, "auth", 2),  # KEDA: the first
        ({"address": "", "hosts": "h1,h2", "ports": "1,2"}, {}, {}, "h1", 1),
        ({"address": "", "host": "::1", "port": "7"}, {}, {}, "::1", 7),
        ({"address": "", "addressFromEnv": "ADDR"}, {}, {"ADDR": "env:3"}, "env", 3),
        ({"address": "meta:1", "addressFromEnv": "ADDR"}, {}, {"ADDR": "env:3"}, "meta", 1),
        ({"address": "", "host": "h", "port": "4"}, {}, {}, "h", 4),
        ({"address": "", "host": "h"}, {"port": "5"}, {}, "h", 5),
        (
            {"address": "", "hostFromEnv": "H", "portFromEnv": "PORT"},
            {},
            {"H": "eh", "PORT": "6"},
            "eh",
            6,
        ),
        ({"host": "ignored", "port": "9"}, {}, {}, "redis", 6379),  # address wins
    ],
)
def test_where_the_address_comes_from(
    metadata: dict[str, str], auth: dict[str, str], env: dict[str, str], host: str, port: int
) -> None:
    backend = one_server(built(metadata, auth, env))
    assert (backend.host, backend.port) == (host, port)


def test_credentials_from_the_authentication_or_the_environment() -> None:
    backend = built({"username": "alice"}, {"password": "pw"}).query.backend
    assert (backend.username, backend.password) == ("alice", "pw")
    from_env = built({"passwordFromEnv": "PW", "usernameFromEnv": "U"}, env={"PW": "e", "U": "u"})
    assert (from_env.query.backend.username, from_env.query.backend.password) == ("u", "e")
    # KEDA's order for both: triggerMetadata, resolvedEnv, authParams.
    assert built({"password": "in-plain-sight"}).query.backend.password == "in-plain-sight"
    assert built({"username": "m"}, {"username": "a"}).query.backend.username == "m"
    assert "in-plain-sight" not in repr(built({"password": "in-plain-sight"}))


def test_database_index_is_read_from_the_trigger_only() -> None:
    """KEDA's ``databaseIndex`` is ``order=triggerMetadata``: an env reference is not read
    (it would select another database than KEDA does)."""
    scaler = built({"databaseIndexFromEnv": "DB"}, env={"DB": "3"})
    assert one_server(scaler).db == 0


def test_required_parameters_all_at_once() -> None:
    assert create({}) == (
        None,
        [
            f"{P}.listName: is required",
            # reported by the cross-field check only once every field parses
        ],
    )
    assert create({"listName": "jobs"}) == (
        None,
        [f"{P}.address: is required (host:port), or host and port"],
    )


@pytest.mark.parametrize(
    ("metadata", "auth", "expected"),
    [
        ({"address": "redis"}, {}, [f'{P}.address: "redis" is not host:port']),
        ({"address": "redis:port"}, {}, [f'{P}.address: "redis:port" is not host:port']),
        ({"address": ":6379"}, {}, [f'{P}.address: ":6379" is not host:port']),
        ({"address": "", "host": "h"}, {}, [f"{P}.port: is required with host"]),
        ({"address": "", "port": "1"}, {}, [f"{P}.host: is required with port"]),
        ({"address": "", "host": "h", "port": "x"}, {}, [f'{P}.port: "h:x" is not host:port']),
        ({"address": "", "host": "h", "port": "0"}, {}, [f'{P}.port: "h:0" is not host:port']),
        (
            {"address": "", "host": "h", "port": "70000"},
            {},
            [f'{P}.port: "h:70000" is not host:port'],
        ),
        (
            {"address": "", "hosts": "a,b", "ports": "1"},
            {},
            [f"{P}.host: and port must list as many entries: 2 and 1"],
        ),
        ({"listLength": "0"}, {}, [f'{P}.listLength: "0" must be greater than 0']),
        ({"listLength": "ten"}, {}, [f'{P}.listLength: "ten" is not a number']),
        ({"listLength": "1.5"}, {}, [f'{P}.listLength: "1.5" is not a whole number']),
        ({"activationListLength": "x"}, {}, [f'{P}.activationListLength: "x" is not a number']),
        ({"databaseIndex": "-1"}, {}, [f'{P}.databaseIndex: "-1" must be at least 0']),
        (
            {"enableTLS": "maybe"},
            {},
            [f'{P}.enableTLS: "maybe" is not a boolean (expected true or false)'],
        ),
        (
            {},
            {"tls": "on"},
            ['triggers[0].authenticationRef.tls: "on" is not one of: enable, disable'],
        ),
        (
            {"enableTLS": "true"},
            {"tls": "enable"},
            [f"{P}.tls: cannot be set in the authentication when enableTLS is set in the trigger"],
        ),
        (  # KEDA refuses both set, whatever they say
            {"enableTLS": "false"},
            {"tls": "disable"},
            [f"{P}.tls: cannot be set in the authentication when enableTLS is set in the trigger"],
        ),
        (
            {"enableTLS": "true"},
            {"cert": "C"},
            [f"{P}.key: must be provided with cert (from the authentication)"],
        ),
        (
            {},
            {"tls": "enable", "key": "K"},
            [f"{P}.cert: must be provided with key (from the authentication)"],
        ),
    ],
)
def test_problems(metadata: dict[str, str], auth: dict[str, str], expected: list[str]) -> None:
    assert create({**BASE, **metadata}, auth) == (None, expected)


def test_every_field_problem_at_once() -> None:
    scaler, problems = create(
        {"listName": "jobs", "listLength": "0", "databaseIndex": "x", "unsafeSsl": "sure"}
    )
    assert scaler is None
    assert problems == [  # the connection's fields first, as every variant shares them
        f'{P}.databaseIndex: "x" is not a number',
        f'{P}.unsafeSsl: "sure" is not a boolean (expected true or false)',
        f'{P}.listLength: "0" must be greater than 0',
    ]


def test_a_missing_environment_variable_is_named() -> None:
    scaler, problems = create({"listName": "j", "addressFromEnv": "NOPE"})
    assert scaler is None
    assert problems[0] == (
        f'{P}.addressFromEnv: environment variable "NOPE" is not set on the scale target\'s '
        "container"
    )


def test_tls_off_unless_asked() -> None:
    assert built({}, {"ca": "CA", "cert": "C", "key": "K"}).query.backend.tls is None
    assert built({}, {"tls": "disable"}).query.backend.tls is None


def test_tls_from_the_trigger_or_the_authentication(pki: Pki) -> None:
    tls = built({"enableTLS": "true"}).query.backend.tls
    assert tls is not None
    assert (tls.verify, tls.ca_pem, tls.cert_pem, tls.key_pem) == (True, None, None, None)
    unsafe = built({"enableTLS": "true", "unsafeSsl": "true"}).query.backend.tls
    assert unsafe is not None and unsafe.verify is False
    auth = {"tls": "enable", "ca": pki.ca_pem, "cert": pki.client_cert_pem}
    full = built({}, {**auth, "key": pki.client_key_pem}).query.backend
    assert full.tls is not None
    # The parser strips every value, PEM's final newline too; ssl does not mind.
    assert (full.tls.ca_pem, full.tls.key_pem) == (pki.ca_pem.strip(), pki.client_key_pem.strip())
    assert str(full) == "rediss://redis:6379/0"


def test_an_encrypted_key_is_decrypted_with_key_password(pki: Pki) -> None:
    auth = {"tls": "enable", "cert": pki.client_cert_pem, "key": pki.client_key_encrypted_pem}
    tls = built({}, {**auth, "keyPassword": KEY_PASSWORD}).query.backend.tls
    assert tls is not None and tls.key_pem is not None
    assert "ENCRYPTED" not in tls.key_pem and "BEGIN PRIVATE KEY" in tls.key_pem
    scaler, problems = create(BASE, {**auth, "keyPassword": "wrong"})
    assert scaler is None
    assert problems[0].startswith(f"{P}.keyPassword: does not decrypt key: ")


def test_triggers_share_a_query_per_backend_and_key() -> None:
    a = built({"listLength": "3", "activationListLength": "1"}, {"password": "pw"})
    b = built({"listLength": "9"}, {"password": "pw"})
    assert a.query == b.query and hash(a.query) == hash(b.query)
    assert built({"listName": "other"}, {"password": "pw"}).query.backend == a.query.backend
    assert built({}, {"password": "other"}).query.backend != a.query.backend
    assert built({"databaseIndex": "1"}, {"password": "pw"}).query.backend != a.query.backend
    assert built({"enableTLS": "true"}, {"password": "pw"}).query.backend != a.query.backend


def test_logs_and_reprs_never_show_the_password() -> None:
    query = built({}, {"password": "s3cret"}).query
    assert "s3cret" not in repr(query)
    assert "s3cret" not in query.describe()
    assert query.describe() == 'EVALSHA length of "jobs" at redis://redis:6379/0'


def test_split_address() -> None:
    assert redis_scaler.split_address("h:1") == ("h", 1)
    assert redis_scaler.split_address("[fe80::1]:6379") == ("fe80::1", 6379)
    with pytest.raises(ValueError, match="is not host:port"):
        redis_scaler.split_address("h:65536")


def test_the_client_certificate_under_either_name() -> None:
    """KEDA's ``name=Cert;cert``."""
    for name in ("Cert", "cert"):
        tls = built({"enableTLS": "true"}, {name: "C", "key": "K"}).query.backend.tls
        assert tls is not None and tls.cert_pem == "C"
