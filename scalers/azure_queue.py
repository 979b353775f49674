"""``azure-queue``: the messages of an Azure Storage queue, as KEDA counts them.

With ``queueLengthStrategy: all`` (the default) the value is the queue's
``x-ms-approximate-messages-count`` (Get Queue Metadata): visible and invisible messages
(received, not yet deleted, or delayed). With ``visibleonly`` KEDA peeks at up to 32
messages (peeking hides nothing from consumers): fewer than 32 is the count of visible
messages; 32 means there may be more, and the approximate count of all of them is read instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from scalers.azure_storage import (
    DEV_CONNECTION,
    StorageAccount,
    StorageKind,
    StorageMetadata,
    storage_get,
    xml_root,
)
from scalers.base import Example, Scaler, normalize
from scalers.clients import Clients
from scalers.errors import SourceResponseError, quote
from scalers.params import param

PEEK_LIMIT = 32
"""Messages KEDA peeks at (Azure's maximum) before it falls back to the approximate count."""
VISIBLE_ONLY = "visibleonly"
COUNT_HEADER = "x-ms-approximate-messages-count"


@dataclass(frozen=True)
class Metadata(StorageMetadata):
    queue_name: str = param("queueName")
    queue_length: int = param("queueLength", default="5", gt=0, doc="messages per replica")
    activation_queue_length: int = param("activationQueueLength", default="0")
    queue_length_strategy: str = param(
        "queueLengthStrategy",
        default="all",
        enum=("all", VISIBLE_ONLY),
        doc="visibleonly: count only visible messages (peeked, up to 32)",
    )


@dataclass(frozen=True)
class QueueLength:
    """The length of one queue as one strategy counts it: every trigger on the queue with
    the same connection and strategy shares the request(s)."""

    account: StorageAccount
    queue: str
    visible_only: bool

    async def run(self, clients: Clients) -> int:
        if self.visible_only:
            response = await storage_get(
                clients,
                self.account,
                (self.queue, "messages"),
                {"peekonly": "true", "numofmessages": str(PEEK_LIMIT)},
            )
            what = f"peeking at queue {quote(self.queue)}"
            peeked = len(xml_root(response, what).findall("QueueMessage"))
            if peeked < PEEK_LIMIT:
                return peeked
        response = await storage_get(clients, self.account, (self.queue,), {"comp": "metadata"})
        raw = response.headers.get(COUNT_HEADER, "")
        if not raw.isascii() or not raw.isdigit():
            raise SourceResponseError(
                f"queue {quote(self.queue)} at {self.account.service_url}: "
                f"{COUNT_HEADER} is {quote(raw)}, not a count"
            )
        return int(raw)

    def describe(self) -> str:
        how = "visible messages" if self.visible_only else "approximate message count"
        return f"azure queue {self.account.service_url}/{self.queue} ({how})"


@dataclass(frozen=True, kw_only=True)
class AzureQueueScaler(Scaler[int]):
    meta: Metadata
    query: QueueLength

    def measure(self, answer: int) -> float:
        return float(answer)


def build(meta: Metadata) -> AzureQueueScaler:
    visible_only = meta.queue_length_strategy.lower() == VISIBLE_ONLY
    return AzureQueueScaler(
        meta=meta,
        query=QueueLength(meta.account, meta.queue_name, visible_only),
        metric_name=normalize(f"azure-queue-{meta.queue_name}"),
        target=float(meta.queue_length),
        activation_target=float(meta.activation_queue_length),
        value_label="messages",
    )


KIND = StorageKind(
    type_name="azure-queue",
    keda_name="azureQueueScaler",
    metadata=Metadata,
    build=build,
    summary="Messages in an Azure Storage queue: all of them, or only the visible ones.",
    example=Example(
        {"queueName": "orders", "queueLength": "5"},
        {"connection": DEV_CONNECTION},
    ),
)
