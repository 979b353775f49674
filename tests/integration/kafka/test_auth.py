"""SASL and TLS from the trigger and its TriggerAuthentication, against the broker's listeners.

The broker has PLAINTEXT, SASL_PLAINTEXT and SASL_SSL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)
and SSL with a required client certificate, all signed by the run's own CA.
"""

from __future__ import annotations

from typing import Any

import pytest

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import bind
from metrics_adapter.model.authentication import parse_trigger_authentication
from metrics_adapter.model.keda import ObjectRef, parse_scaled_object
from scalers import kafka
from tests.support.kafka import USERS, KafkaBroker, commit, create_topic, produce
from tests.support.pki import KEY_PASSWORD
from tests.support.triggers import scaled_object

from .helpers import read, scaler

pytestmark = pytest.mark.integration


@pytest.fixture
async def topic(kafka_broker: KafkaBroker, name: str) -> str:
    """A topic with lag 4 + 2 for group ``<topic>-g``."""
    bootstrap, topic = kafka_broker.bootstrap, f"{name}-t"
    await create_topic(bootstrap, topic, 2)
    await produce(bootstrap, topic, {0: 5, 1: 5})
    await commit(bootstrap, f"{topic}-g", {(topic, 0): 1, (topic, 1): 3})
    return topic


CASES = [
    "sasl plaintext",
    "sasl scram_sha256 from auth",
    "sasl scram_sha512",
    "tls with client certificate",
    "tls with an encrypted key",
    "sasl over tls",
    "sasl over tls, unsafeSsl",
]


def ways(broker: KafkaBroker) -> dict[str, tuple[str, dict[str, str], dict[str, str]]]:
    """Case → (listener, trigger metadata, authParams)."""
    assert broker.pki is not None
    pki = broker.pki
    alice = {"username": "alice", "password": USERS["alice"]}
    client = {"ca": pki.ca_pem, "cert": pki.client_cert_pem, "key": pki.client_key_pem}
    encrypted = {**client, "key": pki.client_key_encrypted_pem, "keyPassword": KEY_PASSWORD}
    found = {
        "sasl plaintext": ("SASL_PLAINTEXT", {"sasl": "plaintext"}, alice),
        "sasl scram_sha256 from auth": ("SASL_PLAINTEXT", {}, {"sasl": "scram_sha256", **alice}),
        "sasl scram_sha512": ("SASL_PLAINTEXT", {"sasl": "scram_sha512"}, alice),
        "tls with client certificate": ("SSL", {"tls": "enable"}, client),
        "tls with an encrypted key": ("SSL", {}, {"tls": "enable", **encrypted}),
        "sasl over tls": (
            "SASL_SSL",
            {"tls": "enable", "sasl": "scram_sha512"},
            {"ca": pki.ca_pem, **alice},
        ),
        "sasl over tls, unsafeSsl": (
            "SASL_SSL",
            {"unsafeSsl": "true"},
            {"tls": "enable", "sasl": "plaintext", **alice},
        ),
    }
    assert sorted(found) == sorted(CASES)
    return found


@pytest.mark.parametrize("case", CASES)
async def test_each_way_in_reads_the_same_lag(
    kafka_broker: KafkaBroker, topic: str, case: str
) -> None:
    listener, metadata, auth = ways(kafka_broker)[case]
    s = scaler(kafka_broker.address(listener), f"{topic}-g", topic, auth, **metadata)
    assert s.query.backend.security_protocol == listener
    lag = await read(s)
    assert (lag.metric, lag.total) == (6, 6)


def so_doc(bootstrap: str, topic: str) -> dict[str, Any]:
    trigger = {
        "type": "kafka",
        "metadata": {
            "bootstrapServers": bootstrap,
            "consumerGroup": f"{topic}-g",
            "topic": topic,
            "sasl": "scram_sha256",
            "lagThreshold": "4",
        },
        "authenticationRef": {"name": "kafka-credentials"},
    }
    return scaled_object("consumer", "shop", trigger)


async def test_credentials_from_a_trigger_authentication_secret(
    kafka_broker: KafkaBroker, topic: str
) -> None:
    inventory = Inventory()
    auth = parse_trigger_authentication(
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "TriggerAuthentication",
            "metadata": {"name": "kafka-credentials", "namespace": "shop"},
            "spec": {
                "secretTargetRef": [
                    {"parameter": "username", "name": "kafka-user", "key": "user"},
                    {"parameter": "password", "name": "kafka-user", "key": "password"},
                ]
            },
        }
    )
    inventory.auths[ObjectRef("shop", "kafka-credentials")] = auth
    inventory.secrets[ObjectRef("shop", "kafka-user")] = {"user": "bob", "password": USERS["bob"]}
    so = parse_scaled_object(so_doc(kafka_broker.address("SASL_PLAINTEXT"), topic))
    [bound] = bind(so, inventory)
    assert bound.metric_name == f"s0-kafka-{topic}"
    assert isinstance(bound.scaler, kafka.KafkaScaler)
    assert bound.scaler.query.backend.username == "bob"
    assert (await read(bound.scaler)).metric == 6
