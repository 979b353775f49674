"""One Warning Event listing what a ScaledObject or ScaledJob sets and nothing reads: unknown
fields, metadata keys and authentication parameters (:mod:`metrics_adapter.binding.ignored`).

Sent once per spec version and list, by the leader: a resync or a re-bind that finds the same
warnings says nothing again; a new generation, or an authentication that now supplies other
parameters, says it once more. Its reason, :data:`REASON`, is not one KEDA uses (KEDA's own
"Unmatched input property" Events, off by default, use ``KEDAScalerInfo``, which it also uses
for other news), so ``kubectl get events --field-selector reason=IgnoredFields`` lists only these.
"""

from __future__ import annotations

from collections.abc import Sequence

from metrics_adapter.kube.client import KubeClient
from metrics_adapter.kube.objects import Event, ObjectReference

REASON = "IgnoredFields"
MAX_MESSAGE = 1024
"""What events.k8s.io keeps of a note; core/v1 keeps more, but ``kubectl describe`` is read by
people: the rest is one ``explain`` away."""

Announced = tuple[object, tuple[str, ...]]
"""The spec version and the warnings last announced for one object."""


def message(warnings: Sequence[str]) -> str:
    """``2 fields ignored: a: why; b: why``, cut at :data:`MAX_MESSAGE` characters with how
    many are left out."""
    head = f"{len(warnings)} field{'s' if len(warnings) != 1 else ''} ignored: "
    text = head
    for i, warning in enumerate(warnings):
        more = f" … {len(warnings) - i} more: metrics-adapter explain lists them all"
        piece = warning if i == 0 else f"; {warning}"
        if len(text) + len(piece) + len(more) > MAX_MESSAGE and i > 0:
            return text + more
        text += piece
    return text[:MAX_MESSAGE]


async def announce(
    kube: KubeClient,
    regarding: ObjectReference,
    version: object,
    warnings: Sequence[str],
    last: Announced | None,
) -> Announced:
    """Create the Event unless ``warnings`` is empty or was announced already for
    ``version``; what to remember as announced."""
    now = (version, tuple(dict.fromkeys(warnings)))
    if now[1] and now != last:
        await kube.create_event(Event(regarding, REASON, message(now[1]), type="Warning"))
    return now
