"""The election's decisions, on an injected clock: when a Lease may be taken, what a claim
writes, and when a leader must step down (metrics_adapter.control.leader.Election)."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrics_adapter.control.leader import Election, LeaderElector, default_identity
from metrics_adapter.kube.client import KubeClient
from metrics_adapter.kube.objects import Lease, LeaseSpec

ME, OTHER = "me_1", "other_2"
T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def election() -> Election:
    return Election(ME, lease_duration=15, renew_deadline=10.0)


def held_by(holder: str, *, duration: int = 15, renewed: datetime = T0) -> LeaseSpec:
    """A Lease in its fourth term (three transitions), taken five minutes before T0."""
    return LeaseSpec(holder, duration, T0 - timedelta(minutes=5), renewed, 3)


def test_an_absent_lease_is_taken_and_starts_the_count_at_zero() -> None:
    e = election()
    e.observe(None, 100.0)
    assert not e.held_by_other(100.0)
    assert e.claim(T0) == LeaseSpec(ME, 15, T0, T0, 0)


def test_another_holder_expires_a_lease_duration_after_we_saw_it_change() -> None:
    e = election()
    e.observe(held_by(OTHER), 100.0)
    assert e.held_by_other(100.0)
    assert e.held_by_other(114.99)
    assert not e.held_by_other(115.0)


def test_expiry_ignores_the_holders_renew_time_so_clock_skew_cannot_make_two_leaders() -> None:
    """A renewTime an hour old (a holder whose clock is behind ours) still counts as fresh."""
    e = election()
    e.observe(held_by(OTHER, renewed=T0 - timedelta(hours=1)), 100.0)
    assert e.held_by_other(110.0)


def test_a_renewal_restarts_the_wait_and_an_unchanged_read_does_not() -> None:
    e = election()
    assert e.observe(held_by(OTHER), 100.0)
    assert not e.observe(held_by(OTHER), 110.0)  # same record: still counted from 100
    assert e.observe(held_by(OTHER, renewed=T0 + timedelta(seconds=2)), 112.0)
    assert e.held_by_other(126.0)
    assert not e.held_by_other(127.0)


def test_the_holders_lease_duration_counts_not_ours() -> None:
    e = election()
    e.observe(held_by(OTHER, duration=60), 0.0)
    assert e.held_by_other(59.0)
    assert not e.held_by_other(60.0)
    e.observe(held_by(OTHER, duration=0), 100.0)  # unset: ours
    assert not e.held_by_other(115.0)


def test_a_released_lease_is_taken_at_once_as_a_new_term() -> None:
    e = election()
    e.observe(held_by("", duration=1), 100.0)
    assert not e.held_by_other(100.0)
    claim = e.claim(T0)
    assert claim == LeaseSpec(ME, 15, T0, T0, 4)


def test_taking_over_an_expired_lease_counts_a_transition() -> None:
    e = election()
    e.observe(held_by(OTHER), 0.0)
    assert not e.held_by_other(20.0)
    assert e.claim(T0) == LeaseSpec(ME, 15, T0, T0, 4)


def test_our_own_lease_is_renewed_keeping_its_term() -> None:
    e = election()
    mine = held_by(ME, duration=30)
    e.observe(mine, 100.0)
    assert not e.held_by_other(100.0) and e.ours()
    later = T0 + timedelta(seconds=2)
    assert e.claim(later) == LeaseSpec(ME, 15, mine.acquire_time, later, 3)


def test_a_leader_steps_down_at_the_renew_deadline() -> None:
    e = election()
    assert not e.leading(0.0) and not e.must_step_down(0.0) and e.time_left(0.0) is None
    e.won(LeaseSpec(ME, 15, T0, T0, 0), started=10.0, now=10.5)
    assert e.leading(19.99) and e.time_left(12.0) == 8.0
    assert not e.leading(20.0) and e.must_step_down(20.0) and e.time_left(25.0) == 0.0
    e.won(LeaseSpec(ME, 15, T0, T0 + timedelta(seconds=2), 0), started=12.0, now=12.1)
    assert e.leading(21.0)
    e.step_down()
    assert not e.leading(13.0) and not e.must_step_down(30.0)


@given(
    renewed=st.floats(0, 1e6),
    seen_after=st.floats(0, 100),
    at=st.floats(0, 100),
    duration=st.integers(1, 60),
    margin=st.floats(0.01, 0.99),
)
def test_a_leader_and_a_candidate_never_both_may_act(
    renewed: float, seen_after: float, at: float, duration: int, margin: float
) -> None:
    """The leader's renewal started at ``renewed``; a candidate first saw the record it wrote
    ``seen_after`` later (never before: it was not written yet)."""
    deadline = duration * margin
    leader = Election(ME, duration, deadline)
    record = LeaseSpec(ME, duration, T0, T0, 0)
    leader.won(record, started=renewed, now=renewed)
    candidate = Election(OTHER, duration, deadline)
    candidate.observe(record, renewed + seen_after)
    now = renewed + at
    assert not (leader.leading(now) and not candidate.held_by_other(now))


def test_only_our_own_lease_is_released_to_nobody_for_one_second() -> None:
    e = election()
    e.observe(held_by(OTHER), 0.0)
    assert e.release(T0) is None
    e.observe(held_by(ME), 1.0)
    assert e.release(T0) == LeaseSpec("", 1, T0, T0, 3)


def test_a_lease_reads_and_writes_as_kubernetes_spells_it() -> None:
    lease = {
        "metadata": {"name": "metrics-adapter", "resourceVersion": "7"},
        "spec": {
            "holderIdentity": ME,
            "leaseDurationSeconds": 15,
            "acquireTime": "2026-01-02T03:04:05.678901Z",
            "renewTime": "2026-01-02T03:04:07.000000Z",
            "leaseTransitions": 2,
        },
    }
    record = Lease.from_response(lease, "Lease").spec
    assert record == LeaseSpec(ME, 15, T0, T0.replace(second=7, microsecond=0), 2)
    assert record.to_json() == lease["spec"]
    assert Lease.from_response({"metadata": {"name": "l"}, "spec": {}}, "").spec == LeaseSpec("", 0)
    assert Lease.from_response({"metadata": {"name": "l"}}, "").spec.to_json() == {
        "holderIdentity": "",
        "leaseDurationSeconds": 0,
        "leaseTransitions": 0,
    }


def test_identities_name_the_host_and_never_repeat() -> None:
    first, second = default_identity(), default_identity()
    assert first.startswith(f"{socket.gethostname()}_") and first != second


@pytest.mark.parametrize(
    ("lease", "deadline", "retry"), [(10, 10.0, 2.0), (15, 10.0, 9.0), (15, 10.0, 0.0)]
)
def test_timings_that_could_make_two_leaders_are_refused(
    lease: int, deadline: float, retry: float
) -> None:
    kube = cast(KubeClient, object())  # never called: construction only
    with pytest.raises(ValueError, match=r"Lease keda/metrics-adapter: need leaseDuration"):
        LeaderElector(
            kube, "keda", lease_duration=lease, renew_deadline=deadline, retry_period=retry
        )
