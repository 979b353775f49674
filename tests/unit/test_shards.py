"""Shards: the rendezvous assignment and the fenced hand-over, with the times passed in."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from metrics_adapter.control.ownership import Everything, acting_for, fence
from metrics_adapter.control.shards import Membership, lease_name, rendezvous
from metrics_adapter.errors import KubeFenced
from metrics_adapter.kube.objects import Lease, LeaseSpec, ObjectMeta
from metrics_adapter.model.keda import ObjectRef

KEYS = [f"ns{i % 7}/so-{i}" for i in range(6000)]
DURATION, DEADLINE = 15, 10.0
WALL = datetime(2026, 12, 7, tzinfo=UTC)


def lease(holder: str, renewals: int = 0) -> Lease:
    """A peer's Lease; each renewal changes its renewTime, as a live peer's does."""
    renewed = WALL.replace(second=renewals % 60, minute=renewals // 60)
    return Lease(
        ObjectMeta(lease_name("g", holder), "keda"), LeaseSpec(holder, DURATION, WALL, renewed)
    )


def member(identity: str = "me") -> Membership:
    return Membership(identity, DURATION, DEADLINE)


def join(m: Membership, peers: list[Lease], now: float) -> None:
    """One round: renew our Lease, then list the group's."""
    m.renewed(now)
    m.listed(peers, now, now)


def test_rendezvous_spreads_keys_evenly_and_the_same_everywhere() -> None:
    members = ("a", "b", "c")
    owners = Counter(rendezvous(k, members) for k in KEYS)
    assert set(owners) == set(members)
    assert all(abs(n - len(KEYS) / 3) < len(KEYS) * 0.05 for n in owners.values()), owners
    assert [rendezvous(k, reversed(members)) for k in KEYS[:100]] == [
        rendezvous(k, members) for k in KEYS[:100]
    ]
    assert rendezvous("x/y", ()) is None


def test_a_member_joining_takes_only_its_share_and_one_leaving_gives_only_its_own() -> None:
    three = ("a", "b", "c")
    before = {k: rendezvous(k, three) for k in KEYS}
    after = {k: rendezvous(k, (*three, "d")) for k in KEYS}
    moved = [k for k in KEYS if before[k] != after[k]]
    assert {after[k] for k in moved} == {"d"}
    assert abs(len(moved) - len(KEYS) / 4) < len(KEYS) * 0.05
    left = {k: rendezvous(k, ("a", "c")) for k in KEYS}
    assert all(left[k] == before[k] for k in KEYS if before[k] != "b")


def test_alone_a_replica_owns_and_writes_for_everything_at_once() -> None:
    m = member()
    join(m, [], now=100.0)
    assert m.view == ("me",)
    assert all(m.polls(k) and m.writes(k, 100.0) for k in KEYS[:50])


def test_joining_a_group_polls_its_share_at_once_and_writes_after_the_lease_duration() -> None:
    m = member()
    join(m, [lease("a"), lease("b")], now=100.0)
    mine = [k for k in KEYS if m.polls(k)]
    assert 0 < len(mine) < len(KEYS) / 2
    assert not any(m.writes(k, 100.0 + DURATION - 0.5) for k in mine)
    join(m, [lease("a", 1), lease("b", 1)], now=106.0)
    join(m, [lease("a", 2), lease("b", 2)], now=100.0 + DURATION)
    assert all(m.writes(k, 100.0 + DURATION) for k in mine)
    assert not any(m.writes(k, 100.0 + DURATION) for k in KEYS if not m.polls(k))


def test_a_member_that_stops_renewing_leaves_after_its_duration_and_its_share_moves_at_once() -> (
    None
):
    m = member()
    join(m, [lease("a"), lease("b")], now=0.0)
    for t in range(2, 30, 2):  # b renews; a stops at 0
        join(m, [lease("a"), lease("b", t)], now=float(t))
    assert m.view == ("b", "me")
    gained = [k for k in KEYS if m.polls(k) and rendezvous(k, ("a", "b", "me")) == "a"]
    assert gained
    assert all(m.writes(k, 28.0) for k in gained)


def test_a_released_lease_hands_its_share_over_at_once() -> None:
    m = member()
    join(m, [lease("a"), lease("b")], now=0.0)
    join(m, [lease("a", 1), lease("b", 1)], now=DURATION + 1.0)  # settled
    join(m, [lease("b", 2)], now=DURATION + 3.0)  # a deleted its Lease
    gained = [k for k in KEYS if m.polls(k) and rendezvous(k, ("a", "b", "me")) == "a"]
    assert gained and all(m.writes(k, DURATION + 3.0) for k in gained)


def test_a_newcomer_takes_a_share_at_once_from_the_others_view_but_it_waits_to_write() -> None:
    """The old owner stops writing the newcomer's share as soon as it lists it; the
    newcomer waits the Lease duration, so the two never write at once."""
    old = member("a")
    join(old, [], now=0.0)
    join(old, [], now=DURATION + 1.0)
    newcomer = member("n")
    join(newcomer, [lease("a", 1)], now=20.0)
    join(old, [lease("n")], now=21.0)
    moved = [k for k in KEYS if rendezvous(k, ("a",)) == "a" and newcomer.polls(k)]
    assert moved
    join(newcomer, [lease("a", 2)], now=28.0)
    for k in moved:
        assert not old.writes(k, 21.0) and not old.polls(k)
        assert not newcomer.writes(k, 20.0 + DURATION - 0.1)
    join(newcomer, [lease("a", 3)], now=20.0 + DURATION)
    assert all(newcomer.writes(k, 20.0 + DURATION) for k in moved)


def test_a_second_change_during_the_wait_does_not_cut_it_short() -> None:
    m = member()
    join(m, [lease("a")], now=0.0)  # waiting to write what it gained from a
    join(m, [lease("a", 1), lease("b")], now=5.0)  # b joins before the wait is over
    gained = [k for k in KEYS if m.polls(k) and rendezvous(k, ("a",)) == "a"]
    assert gained and not any(m.writes(k, 6.0) for k in gained)
    join(m, [lease("a", 2), lease("b", 1)], now=14.0)
    assert not any(m.writes(k, 5.0 + DURATION - 0.1) for k in gained)
    join(m, [lease("a", 3), lease("b", 2)], now=5.0 + DURATION)
    assert all(m.writes(k, 5.0 + DURATION) for k in gained)


def test_writes_are_fenced_once_renewing_or_listing_is_a_renew_deadline_old() -> None:
    """A replica that was paused (or cut off) writes nothing when it wakes, until a round
    renews its Lease and lists the group again; it goes on polling meanwhile."""
    m = member()
    join(m, [], now=0.0)
    assert m.writes(KEYS[0], DEADLINE - 0.1)
    assert not m.writes(KEYS[0], DEADLINE) and m.polls(KEYS[0])
    m.renewed(30.0)  # renewed, but the list failed
    assert not m.writes(KEYS[0], 30.5)
    m.listed([], 31.0, 31.0)
    assert m.writes(KEYS[0], 31.5)


def test_a_replica_back_from_a_pause_waits_before_writing_again() -> None:
    """Paused longer than the renew deadline, the others may have taken its share: once it
    renews, it waits as a newcomer does, though its view has not changed."""
    m = member()
    join(m, [lease("a")], now=0.0)
    join(m, [lease("a", 1)], now=8.0)
    join(m, [lease("a", 1)], now=DURATION + 1.0)
    mine = [k for k in KEYS if m.polls(k)]
    assert mine and all(m.writes(k, DURATION + 1.0) for k in mine)
    back = DURATION + 1.0 + DEADLINE  # SIGCONT: its first round renews and lists
    join(m, [lease("a", 2)], now=back)
    assert m.view == ("a", "me") and [k for k in KEYS if m.polls(k)] == mine
    join(m, [lease("a", 3)], now=back + 8.0)
    assert not any(m.writes(k, back + DURATION - 0.1) for k in mine)
    join(m, [lease("a", 4)], now=back + DURATION)
    assert all(m.writes(k, back + DURATION) for k in mine)


def test_the_fence_refuses_a_write_made_for_an_object_no_longer_ours() -> None:
    class Nothing(Everything):
        def writes(self, ref: ObjectRef) -> bool:
            return False

    check = fence(Nothing())
    check()  # a write for no object in particular (a Lease) is not fenced
    with acting_for(ObjectRef("ns", "so")), pytest.raises(KubeFenced, match="ns/so"):
        check()
    fence(Everything())()
