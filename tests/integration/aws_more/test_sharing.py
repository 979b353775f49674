"""Many triggers of the four AWS types, few requests: one client per (service, identity), one
request per distinct query per interval, counted by moto itself (its request recorder).

What a trigger alone decides (targets, activation, minMetricValue, ignoreNullValues) is not
in the query; how the same DynamoDB values are written (spacing, key order) is not either.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import pytest

from metrics_adapter.binding.files import Inventory
from metrics_adapter.binding.triggers import BoundTrigger, bind
from metrics_adapter.metrics.poller import Poller
from metrics_adapter.metrics.store import MetricStore
from metrics_adapter.metrics.telemetry import Telemetry
from metrics_adapter.model.keda import parse_scaled_object
from tests.integration.aws_more.helpers import period_start
from tests.integration.aws_sqs_queue.helpers import keys_authentication
from tests.support import counting
from tests.support.moto import REGION, MotoServer, count, make_stream, make_table, put_metric

pytestmark = pytest.mark.integration

T = TypeVar("T")
OTHER_KEYS = {"awsAccessKeyID": "AKIAANOTHERIDENTITY1", "awsSecretAccessKey": "another"}


class CountingClients(counting.CountingClients):
    def services(self) -> list[str]:
        """The service of every AWS client opened (not the process's one session)."""
        keys = [k for k in self.opened if isinstance(k, tuple) and k[0] == "aws"]
        return sorted(str(k[1]) for k in keys if k[1] != "session")


def _scaled_object(name: str, type_name: str, meta: dict[str, str], auth: str) -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "scaleTargetRef": {"name": name},
            "triggers": [
                {"type": type_name, "metadata": meta, "authenticationRef": {"name": auth}}
            ],
        },
    }


def _cloudwatch(moto: MotoServer, name: str, i: int) -> dict[str, str]:
    """Trigger ``i`` on one metric: only what the trigger alone decides varies, but every
    fifth asks for the Maximum."""
    return {
        "namespace": "Test/Jobs",
        "metricName": "depth",
        "dimensionName": "QueueName",
        "dimensionValue": name,
        "metricStatPeriod": "60",
        "metricStat": "Maximum" if i % 5 == 4 else "Average",
        "targetMetricValue": str(1 + i % 3),
        "activationTargetMetricValue": str(i % 2),
        "minMetricValue": str(i % 4),
        "ignoreNullValues": "false" if i % 2 else "true",
        "awsRegion": REGION,
        "awsEndpoint": moto.endpoint,
    }


def _dynamodb(moto: MotoServer, name: str, i: int) -> dict[str, str]:
    """The same Query written three ways; every fourth trigger filters on the id."""
    spelled = [
        ('{"#q": "queue"}', '{":q": {"S": "a"}}'),
        ('{"#q":"queue"}', '{":q":{"S":"a"}}'),
        ('{ "#q" : "queue" }', '{ ":q" : { "S" : "a" } }'),
    ]
    names, values = spelled[i % 3]
    meta = {
        "tableName": name,
        "keyConditionExpression": "#q = :q",
        "expressionAttributeNames": names,
        "expressionAttributeValues": values,
        "targetValue": str(1 + i % 2),
        "awsRegion": REGION,
        "awsEndpoint": moto.endpoint,
    }
    if i % 4 == 3:
        meta |= {
            "expressionAttributeNames": '{"#q": "queue", "#i": "id"}',
            "expressionAttributeValues": '{":q": {"S": "a"}, ":i": {"N": "1"}}',
            "filterExpression": "#i > :i",
        }
    return meta


async def test_one_client_per_service_and_one_request_per_query(
    moto: MotoServer, name: str
) -> None:
    await put_metric(moto, "Test/Jobs", "depth", {"QueueName": name}, [(period_start() - 90, 4)])
    await make_stream(moto, name, 3)
    items = [{"queue": {"S": "a"}, "id": {"N": str(i)}} for i in (1, 2, 3)]
    await make_table(moto, name, items, stream=True)
    inventory = Inventory()
    for doc in [
        *keys_authentication("keys", "keys"),
        *keys_authentication("other-keys", "other", OTHER_KEYS),
    ]:
        inventory.add(doc, "test")
    store, clients = MetricStore(), CountingClients()
    poller = Poller(store, clients, Telemetry())
    bound: dict[str, tuple[BoundTrigger, float]] = {}

    def add(so_name: str, type_name: str, meta: dict[str, str], value: float) -> None:
        auth = "other-keys" if so_name.startswith("other") else "keys"
        so = parse_scaled_object(_scaled_object(so_name, type_name, meta, auth))
        (trigger,) = bind(so, inventory)
        poller.set_triggers(so.ref, [trigger])
        bound[so_name] = (trigger, value)

    endpoint = {"awsRegion": REGION, "awsEndpoint": moto.endpoint}
    for i in range(10):
        add(f"cw{i}", "aws-cloudwatch", _cloudwatch(moto, name, i), 4)
        add(f"kin{i}", "aws-kinesis-stream", {"streamName": name, **endpoint}, 3)
        add(f"ddb{i}", "aws-dynamodb", _dynamodb(moto, name, i), 2 if i % 4 == 3 else 3)
        meta = {"tableName": name, "shardCount": str(1 + i % 3), **endpoint}
        add(f"dds{i}", "aws-dynamodb-streams", meta, 1)
    add("other-cw", "aws-cloudwatch", _cloudwatch(moto, name, 0), 4)
    add("other-kin", "aws-kinesis-stream", {"streamName": name, **endpoint}, 3)
    # cloudwatch: Average, Maximum, Average as another identity; dynamodb: with and without
    # the filter; kinesis: two identities; dynamodb-streams: one
    assert poller.query_count == 3 + 2 + 2 + 1

    actions = ("GetMetricData", "DescribeStreamSummary", "Query", "DescribeTable", "DescribeStream")
    before = {a: count(moto, a) for a in actions}
    queries = {trigger.scaler.query for trigger, _ in bound.values()}
    try:
        await asyncio.gather(*(poller.poll(q) for q in queries))
    finally:
        await clients.aclose()
    sent = {a: count(moto, a) - before[a] for a in actions}
    assert sent == {
        "GetMetricData": 3,
        "DescribeStreamSummary": 2,
        "Query": 2,
        "DescribeTable": 1,
        "DescribeStream": 1,
    }
    assert clients.services() == sorted(
        ["cloudwatch", "cloudwatch", "kinesis", "kinesis", "dynamodb", "dynamodbstreams"]
    )
    for so_name, (trigger, value) in bound.items():
        reading = store.readings(trigger.so)[trigger.metric_name.lower()]
        assert reading.error is None and reading.value == value, so_name
