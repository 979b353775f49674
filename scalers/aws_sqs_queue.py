"""``aws-sqs-queue``: the message count of an SQS queue, from one ``GetQueueAttributes``.

As in KEDA, the count is ``ApproximateNumberOfMessages``, plus ``…NotVisible`` (in flight)
when ``scaleOnInFlight`` (default true), plus ``…Delayed`` when ``scaleOnDelayed``. The
query always asks for all three, so that triggers on one queue share one request whatever
their flags; each trigger adds up its own in :meth:`AwsSqsQueueScaler.measure`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from scalers import aws, aws_auth, aws_identity
from scalers.base import Example, Scaler, normalize
from scalers.clients import Clients
from scalers.errors import SourceResponseError, SourceUnreachable, quote
from scalers.params import Source, param

VISIBLE = "ApproximateNumberOfMessages"
IN_FLIGHT = "ApproximateNumberOfMessagesNotVisible"
DELAYED = "ApproximateNumberOfMessagesDelayed"
ATTRIBUTES = (VISIBLE, IN_FLIGHT, DELAYED)

_NO_QUEUE = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_INTEGER = re.compile(r"[+-]?[0-9]+")


def queue_name(url: str) -> str | None:
    """KEDA's queue name: the last of exactly two path segments (``/<account>/<queue>``) of
    a URL; a value that is not a URL (no scheme, no leading ``/``) is the queue's name.
    ``None`` when a URL has any other path."""
    scheme = _SCHEME.match(url)
    rest = url[scheme.end() :] if scheme else url
    if not scheme and not rest.startswith("/"):
        return url
    path = rest.split("?", 1)[0]
    if scheme and path.startswith("//"):
        _, slash, after_authority = path[2:].partition("/")
        path = slash + after_authority
    elif scheme and not path.startswith("/"):
        path = ""  # an opaque URL, such as mailto:jobs, has no path
    parts = unquote(path).split("/")
    if len(parts) != 3 or not parts[2]:
        return None
    return parts[2]


@dataclass(frozen=True)
class Metadata(aws_auth.AwsAuth):
    queue_url: str = param(
        "queueURL",
        order=(Source.TRIGGER, Source.ENV),
        doc="https://sqs.<region>.amazonaws.com/<account>/<queue>, or the queue's name",
    )
    aws_region: str = param("awsRegion", order=(Source.TRIGGER, Source.AUTH))
    aws_endpoint: str | None = param(
        "awsEndpoint", optional=True, doc="another SQS endpoint, e.g. http://localstack:4566"
    )
    queue_length: int = param("queueLength", default="5", gt=0, doc="messages per replica")
    activation_queue_length: int = param("activationQueueLength", default="0")
    scale_on_in_flight: bool = param(
        "scaleOnInFlight", default="true", doc="count received, not yet deleted messages"
    )
    scale_on_delayed: bool = param(
        "scaleOnDelayed", default="false", doc="count messages not yet delivered (DelaySeconds)"
    )

    def check(self) -> Iterator[tuple[str, str]]:
        if queue_name(self.queue_url) is None:
            yield (
                "queueURL",
                f"cannot get the queue name from {quote(self.queue_url)}: expected "
                "https://sqs.<region>.amazonaws.com/<account>/<queue>, or the queue's name",
            )


@dataclass(frozen=True)
class QueueAttributes:
    """One ``GetQueueAttributes`` of one queue, as one identity: every trigger on the queue
    with the same endpoint, region and credentials shares it."""

    identity: aws_identity.AwsIdentity
    queue_url: str

    async def run(self, clients: Clients) -> Mapping[str, object]:
        """The queue's attributes: the values AWS sent, which :meth:`AwsSqsQueueScaler.measure`
        reads as integers (a trigger counts only those it adds up)."""
        what = self.describe()
        endpoint = self.identity.endpoint
        if endpoint and not endpoint.startswith(("http://", "https://")):
            raise SourceUnreachable(
                f"{what}: awsEndpoint {quote(endpoint)} must start with http:// or https://"
            )
        try:
            sqs = await aws.client(clients, "sqs", self.identity)
            answer = await sqs.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=list(ATTRIBUTES)
            )
        except Exception as exc:
            if aws.error_code(exc) in _NO_QUEUE:
                raise SourceResponseError(
                    f"{what}: queue {quote(queue_name(self.queue_url))} does not exist "
                    "(or not in this region and account)"
                ) from exc
            raise await aws.source_error(clients, "sqs", self.identity, exc, what) from exc
        attributes = answer.get("Attributes") if isinstance(answer, dict) else None
        if not isinstance(attributes, dict):
            raise SourceResponseError(f"{what}: the answer has no queue Attributes")
        return attributes

    def describe(self) -> str:
        return f"SQS GetQueueAttributes {self.queue_url} at {self.identity.describe()}"


@dataclass(frozen=True, kw_only=True)
class AwsSqsQueueScaler(Scaler[Mapping[str, object]]):
    meta: Metadata
    query: QueueAttributes
    queue_name: str
    counted: tuple[str, ...]
    """The attributes this trigger adds up, in KEDA's order."""

    def measure(self, answer: Mapping[str, object]) -> float:
        total = 0
        for name in self.counted:
            raw = answer.get(name)
            if raw is None:
                raise SourceResponseError(
                    f"queue {quote(self.queue_name)}: {name} not found in the SQS queue attributes"
                )
            if not isinstance(raw, str) or not _INTEGER.fullmatch(raw):
                raise SourceResponseError(
                    f"queue {quote(self.queue_name)}: {name} is {quote(raw)}, not an integer"
                )
            total += int(raw)
        return float(total)


def build(meta: Metadata) -> AwsSqsQueueScaler:
    identity = meta.built_identity(meta.aws_region, meta.aws_endpoint)
    counted = (
        VISIBLE,
        *((IN_FLIGHT,) if meta.scale_on_in_flight else ()),
        *((DELAYED,) if meta.scale_on_delayed else ()),
    )
    name = queue_name(meta.queue_url) or meta.queue_url  # check() has rejected None
    return AwsSqsQueueScaler(
        meta=meta,
        query=QueueAttributes(identity, meta.queue_url),
        queue_name=name,
        counted=counted,
        metric_name=normalize(f"aws-sqs-{name}"),
        target=float(meta.queue_length),
        activation_target=float(meta.activation_queue_length),
        value_label="messages",
    )


KIND = aws_auth.AwsKind(
    type_name="aws-sqs-queue",
    keda_name="awsSqsQueueScaler",
    metadata=Metadata,
    build=build,
    identity_metadata=aws_auth.AwsAuth,
    summary="Messages in an AWS SQS queue: visible, plus in flight and delayed if asked.",
    example=Example(
        {
            "queueURL": "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs",
            "awsRegion": "eu-west-1",
            "queueLength": "20",
        },
        {"awsAccessKeyID": "AKIAIOSFODNN7EXAMPLE", "awsSecretAccessKey": "aws-secret-key"},
        source="awsEndpoint",
    ),
)
