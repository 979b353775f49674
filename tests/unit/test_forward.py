"""The forwarder's memory of last answers: bounded, and nothing older than the bound."""

from __future__ import annotations

from metrics_adapter.api.forward import LastAnswers


def test_the_least_recently_stored_answer_goes_first_past_maxsize() -> None:
    last = LastAnswers(maxsize=2)
    last.put(("ns", "a", "m"), 1.0, b"a")
    last.put(("ns", "b", "m"), 2.0, b"b")
    last.put(("ns", "a", "m"), 3.0, b"a2")  # stored again: now the most recent
    last.put(("ns", "c", "m"), 4.0, b"c")
    assert len(last) == 2
    assert last.get(("ns", "b", "m"), 0.0) is None
    assert last.get(("ns", "a", "m"), 0.0) == (3.0, b"a2")


def test_an_answer_at_or_past_the_bound_is_gone() -> None:
    last = LastAnswers(maxsize=10)
    last.put(("ns", "a", "m"), 5.0, b"a")
    assert last.get(("ns", "a", "m"), 4.9) == (5.0, b"a")
    assert last.get(("ns", "a", "m"), 5.0) is None
    assert len(last) == 0  # dropped, not kept to be asked again
