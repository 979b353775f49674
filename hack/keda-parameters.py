#!/usr/bin/env python3
"""Regenerate scalers/keda_parameters.py: the trigger parameters KEDA v2.20.2 reads, per trigger
type we register, from its scaler source in the Go module cache.

Two kinds of read are found: the ``keda:"name=a;b, order=..."`` tags of the metadata struct
(following fields tagged ``keda:"optional"`` into the struct they name, as KEDA's typed config
does), and direct map reads (``TriggerMetadata["x"]``, ``authParams["x"]``, ``resolvedEnv[
triggerMetadata["xFromEnv"]]``) in the files listed for the type. Usage:
``hack/keda-parameters.py [KEDA_DIR] > scalers/keda_parameters.py``, then ``ruff format`` it.
"""

from __future__ import annotations

import pathlib
import re
import sys

VERSION = "v2.20.2"
DEFAULT = pathlib.Path(f"/root/go/pkg/mod/github.com/kedacore/keda/v2@{VERSION}")

# type -> (metadata struct, files whose tags and map reads count)
TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "activemq": ("activeMQMetadata", ("activemq_scaler.go",)),
    "artemis-queue": ("artemisMetadata", ("artemis_scaler.go",)),
    "aws-cloudwatch": ("awsCloudwatchMetadata", ("aws_cloudwatch_scaler.go", "aws/aws_common.go")),
    "aws-dynamodb": ("awsDynamoDBMetadata", ("aws_dynamodb_scaler.go", "aws/aws_common.go")),
    "aws-dynamodb-streams": (
        "awsDynamoDBStreamsMetadata",
        ("aws_dynamodb_streams_scaler.go", "aws/aws_common.go"),
    ),
    "aws-kinesis-stream": (
        "awsKinesisStreamMetadata",
        ("aws_kinesis_stream_scaler.go", "aws/aws_common.go"),
    ),
    "aws-sqs-queue": (
        "awsSqsQueueMetadata",
        ("aws_sqs_queue_scaler.go", "aws/aws_common.go"),
    ),
    "azure-blob": ("azureBlobMetadata", ("azure_blob_scaler.go",)),
    "azure-queue": ("azureQueueMetadata", ("azure_queue_scaler.go",)),
    "beanstalkd": ("BeanstalkdMetadata", ("beanstalkd_scaler.go",)),
    "cpu": ("cpuMemoryMetadata", ("cpu_memory_scaler.go",)),
    "cron": ("cronMetadata", ("cron_scaler.go",)),
    "etcd": ("etcdMetadata", ("etcd_scaler.go",)),
    "external": ("externalScalerMetadata", ("external_scaler.go",)),
    "external-push": ("externalScalerMetadata", ("external_scaler.go",)),
    "kafka": ("kafkaMetadata", ("kafka_scaler.go", "aws/aws_common.go")),
    "kubernetes-workload": ("kubernetesWorkloadMetadata", ("kubernetes_workload_scaler.go",)),
    "memory": ("cpuMemoryMetadata", ("cpu_memory_scaler.go",)),
    "metrics-api": (
        "metricsAPIScalerMetadata",
        ("metrics_api_scaler.go", "authentication/authentication_types.go"),
    ),
    "mysql": ("mySQLMetadata", ("mysql_scaler.go",)),
    "nats-jetstream": ("natsJetStreamMetadata", ("nats_jetstream_scaler.go",)),
    "postgresql": ("postgreSQLMetadata", ("postgresql_scaler.go",)),
    "prometheus": (
        "prometheusMetadata",
        (
            "prometheus_scaler.go",
            "authentication/authentication_types.go",
            "aws/aws_sigv4.go",
            "aws/aws_common.go",
        ),
    ),
    "rabbitmq": (
        "rabbitMQMetadata",
        ("rabbitmq_scaler.go", "authentication/authentication_types.go"),
    ),
    "redis": ("redisMetadata", ("redis_scaler.go",)),
    "redis-cluster": ("redisMetadata", ("redis_scaler.go",)),
    "redis-cluster-streams": (
        "redisStreamsMetadata",
        ("redis_streams_scaler.go", "redis_scaler.go"),
    ),
    "redis-sentinel": ("redisMetadata", ("redis_scaler.go",)),
    "redis-sentinel-streams": (
        "redisStreamsMetadata",
        ("redis_streams_scaler.go", "redis_scaler.go"),
    ),
    "redis-streams": (
        "redisStreamsMetadata",
        ("redis_streams_scaler.go", "redis_scaler.go"),
    ),
}

ORDERS = ("triggerMetadata", "resolvedEnv", "authParams")
_STRUCT = re.compile(r"^type (\w+) struct \{\n(.*?)^\}", re.M | re.S)
_FIELD = re.compile(r"^\s*(?:(\w+)\s+)?([\w.\[\]*]+)\s+`[^`]*keda:\"([^\"]*)\"", re.M)
_MAP_READ = re.compile(r"(?i)\b(?:config\.)?(triggerMetadata|authParams)\[\"(\w+)\"\]")


def structs(root: pathlib.Path, files: tuple[str, ...]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in files:
        text = (root / "pkg/scalers" / name).read_text()
        found.update((m.group(1), m.group(2)) for m in _STRUCT.finditer(text))
    return found


def tag_reads(
    struct: str, known: dict[str, str], out: dict[str, set[str]], aliases: dict[str, str]
) -> None:
    for _field, type_name, tag in _FIELD.findall(known[struct]):
        parts = {}
        for item in filter(None, (s.strip() for s in tag.split(","))):
            key, _, value = item.partition("=")
            parts[key.strip()] = value.strip()
        if "name" not in parts:  # a nested struct: KEDA parses its tags from the same maps
            inner = type_name.lstrip("*[]").rsplit(".", 1)[-1]
            if inner in known:
                tag_reads(inner, known, out, aliases)
            continue
        orders = parts.get("order", "triggerMetadata").split(";")
        first, *others = (n.strip() for n in parts["name"].split(";"))
        aliases.update(dict.fromkeys(others, first))
        for name in (first, *others):
            out.setdefault(name, set()).update(o.strip() for o in orders)


def map_reads(root: pathlib.Path, files: tuple[str, ...], out: dict[str, set[str]]) -> None:
    for name in files:
        for where, key in _MAP_READ.findall((root / "pkg/scalers" / name).read_text()):
            if key.endswith("FromEnv"):
                out.setdefault(key.removesuffix("FromEnv"), set()).add("resolvedEnv")
            else:
                source = "authParams" if where.lower() == "authparams" else "triggerMetadata"
                out.setdefault(key, set()).add(source)


def main() -> None:
    root = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    print(
        '"""The trigger parameters KEDA '
        + VERSION
        + " reads, per trigger type we register, and where"
    )
    print(
        "from: generated by hack/keda-parameters.py from KEDA's scaler source (the files named per"
    )
    print(
        "type); do not edit by hand. Read by metrics_adapter.binding.ignored to tell a user which"
    )
    print('of the keys they set KEDA reads and we do not."""')
    print()
    print("from __future__ import annotations")
    print()
    print("from collections.abc import Mapping")
    print()
    print("from scalers.params import Source")
    print()
    print(f'KEDA_VERSION = "{VERSION}"')
    print()
    print("SOURCE_FILES: Mapping[str, tuple[str, ...]] = {")
    for type_name, (_, files) in sorted(TYPES.items()):
        listed = ", ".join(f'"pkg/scalers/{f}"' for f in files)
        print(f'    "{type_name}": ({listed},),')
    print("}")
    print()
    reads_of: dict[str, dict[str, set[str]]] = {}
    aliases_of: dict[str, dict[str, str]] = {}
    for type_name, (struct, files) in sorted(TYPES.items()):
        reads_of[type_name], aliases_of[type_name] = {}, {}
        tag_reads(struct, structs(root, files), reads_of[type_name], aliases_of[type_name])
        map_reads(root, files, reads_of[type_name])
    print("_READS: Mapping[str, Mapping[str, str]] = {")
    for type_name, reads in reads_of.items():
        print(f'    "{type_name}": {{')
        for key in sorted(reads):
            orders = ";".join(o for o in ORDERS if o in reads[key])
            print(f'        "{key}": "{orders}",')
        print("    },")
    print("}")
    print()
    print("ALIASES: Mapping[str, Mapping[str, str]] = {")
    for type_name, aliases in aliases_of.items():
        pairs = ", ".join(f'"{a}": "{n}"' for a, n in sorted(aliases.items()))
        print(f'    "{type_name}": {{{pairs}}},')
    print("}")
    print('"""Trigger type -> a name KEDA also accepts -> the first name of its ``name=`` tag."""')
    print()
    print("KEDA_PARAMETERS: Mapping[str, Mapping[str, frozenset[Source]]] = {")
    print('    type_name: {k: frozenset(map(Source, o.split(";"))) for k, o in reads.items()}')
    print("    for type_name, reads in _READS.items()")
    print("}")
    print('"""Trigger type -> parameter name (each alias its own entry) -> where KEDA reads it."""')


if __name__ == "__main__":
    main()
