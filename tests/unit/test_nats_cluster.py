"""Finding a consumer's leader in a cluster, without a server: peers and the leader's view."""

from __future__ import annotations

from typing import Any

import pytest

from scalers import nats_jetstream
from scalers.errors import Problems, SourceResponseError
from scalers.nats_jetstream import JSInfo, JszAnswer, Varz, _peer_hosts
from scalers.params import TriggerInputs


def test_peers_from_connect_urls_keep_the_monitoring_port() -> None:
    varz = {"connect_urls": ["nats-0.nats:4222", "nats-1.nats:4222", "nats-2.nats:4222"]}
    peers = _peer_hosts(Varz.from_json(varz, "nats-0.nats:8222"), "nats-0.nats:8222")
    assert peers == ["nats-1.nats:8222", "nats-2.nats:8222"]


def test_peers_from_routes_behind_a_headless_service() -> None:
    varz = {
        "connect_urls": [],
        "cluster": {"urls": ["nats-1.nats.messaging.svc:6222", "nats-2.nats.messaging.svc:6222"]},
    }
    endpoint = "nats-headless.messaging:8222"
    assert _peer_hosts(Varz.from_json(varz, endpoint), endpoint) == [
        "nats-1.nats-headless.messaging:8222",
        "nats-2.nats-headless.messaging:8222",
    ]


def test_garbage_varz_is_an_error() -> None:
    with pytest.raises(SourceResponseError, match="/varz"):
        _peer_hosts(Varz.from_json(["not", "an", "object"], "n:8222"), "n:8222")


def doc(pending: int, leader: str) -> dict[str, Any]:
    consumer = {
        "name": "c",
        "num_pending": pending,
        "num_ack_pending": 1,
        "cluster": {"leader": leader},
    }
    stream = {"name": "S", "consumer_detail": [consumer]}
    return {"account_details": [{"id": "$G", "name": "$G", "stream_detail": [stream]}]}


def cluster(**docs: dict[str, Any]) -> JszAnswer:
    """Each node's /jsz by server name, decoded as JszQuery decodes it."""
    return JszAnswer({name: JSInfo.from_json(d, name) for name, d in docs.items()}, clustered=True)


def scaler() -> nats_jetstream.NatsJetStreamScaler:
    problems = Problems()
    built = nats_jetstream.KIND.create(
        TriggerInputs(
            {
                "natsServerMonitoringEndpoint": "n:8222",
                "account": "$G",
                "stream": "S",
                "consumer": "c",
            }
        ),
        problems,
    )
    assert isinstance(built, nats_jetstream.NatsJetStreamScaler)
    return built


def test_the_leaders_numbers_win_over_stale_followers() -> None:
    answer = cluster(a=doc(90, "b"), b=doc(10, "b"), c=doc(55, "b"))
    assert scaler().measure(answer) == 11


def test_a_leader_that_did_not_answer_is_an_error_not_a_follower_value() -> None:
    answer = cluster(a=doc(90, "c"), b=doc(10, "c"))
    with pytest.raises(SourceResponseError, match='leader node "c" not found for consumer "c"'):
        scaler().measure(answer)


def test_a_leader_that_does_not_yet_agree_it_leads_is_an_error() -> None:
    # b is named leader by a, but b's own view still names a: a handover in progress.
    answer = cluster(a=doc(90, "b"), b=doc(0, "a"))
    with pytest.raises(SourceResponseError, match='is moving to "b", which does not lead it'):
        scaler().measure(answer)
