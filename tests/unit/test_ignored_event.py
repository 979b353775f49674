"""The IgnoredFields Event: once per spec version and list of warnings, bounded, a Warning."""

from __future__ import annotations

from typing import Any, cast

from metrics_adapter.control.ignored_event import MAX_MESSAGE, REASON, announce, message
from metrics_adapter.kube.client import KubeClient
from metrics_adapter.kube.objects import Event, ObjectReference


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def create_event(self, event: Event) -> dict[str, Any]:
        self.events.append(event)
        return {}


WHERE = ObjectReference("keda.sh/v1alpha1", "ScaledObject", "apps", "web", "uid-1")
A = "triggers[0].metadata.lagThreshhold: not a parameter of kafka; ignored"
B = "x: unknown field, ignored"


async def test_once_per_spec_version_and_list() -> None:
    recorder = Recorder()
    kube = cast(KubeClient, recorder)
    last = await announce(kube, WHERE, 1, [A, B, A], None)
    assert [(e.reason, e.type, e.message) for e in recorder.events] == [
        (REASON, "Warning", f"2 fields ignored: {A}; {B}")
    ]
    assert await announce(kube, WHERE, 1, [A, B], last) == last  # a resync: nothing new
    assert len(recorder.events) == 1
    last = await announce(kube, WHERE, 2, [A, B], last)  # a new generation says it again
    last = await announce(kube, WHERE, 2, [A], last)  # an authentication changed what it reads
    assert [e.message for e in recorder.events[1:]] == [
        f"2 fields ignored: {A}; {B}",
        f"1 field ignored: {A}",
    ]


async def test_no_warnings_no_event_but_a_return_says_it_again() -> None:
    recorder = Recorder()
    kube = cast(KubeClient, recorder)
    last = await announce(kube, WHERE, 1, [A], None)
    last = await announce(kube, WHERE, 1, [], last)  # fixed through its authentication
    await announce(kube, WHERE, 1, [A], last)  # and broken again
    assert [e.message for e in recorder.events] == [f"1 field ignored: {A}"] * 2


def test_a_long_list_is_cut_saying_how_many_are_left_out() -> None:
    many = [f"triggers[{i}].metadata.key{i}: not a parameter of cron; ignored" for i in range(40)]
    text = message(many)
    assert len(text) <= MAX_MESSAGE
    assert text.startswith(f"40 fields ignored: {many[0]}; {many[1]}")
    shown = text.count("not a parameter")
    assert text.endswith(f" … {40 - shown} more: metrics-adapter explain lists them all")


def test_one_huge_warning_is_cut_to_the_limit() -> None:
    assert len(message(["x" * 5000])) == MAX_MESSAGE
