"""Building kafka triggers against the test broker, and reading them once."""

from __future__ import annotations

from scalers import kafka
from scalers.clients import Clients
from scalers.errors import Problems
from scalers.params import TriggerInputs


def scaler(
    bootstrap: str,
    group: str,
    topic: str | None,
    auth: dict[str, str] | None = None,
    /,
    **meta: str,
) -> kafka.KafkaScaler:
    fields = {"bootstrapServers": bootstrap, "consumerGroup": group, **meta}
    if topic is not None:
        fields["topic"] = topic
    problems = Problems()
    built = kafka.KIND.create(TriggerInputs(fields, {}, auth or {}), problems)
    assert not problems, [str(p) for p in problems]
    assert isinstance(built, kafka.KafkaScaler)
    return built


async def read(s: kafka.KafkaScaler, clients: Clients | None = None) -> kafka.Lag:
    """One poll of ``s``: its query against the broker, then its own reading of the answer."""
    own = clients is None
    clients = clients or Clients(timeout=5)
    try:
        return s.lag(await s.query.run(clients))
    finally:
        if own:
            await clients.aclose()
