"""Per-trajectory state of the tool server: live trajectories by id, and a bounded memory of
finished ones.

A live entry is the SR environment's `Trajectory` plus when it was last used and its last reply.
Entries are freed on finish, on the last step, when the trajectory is done, and by `sweep` once
idle for longer than the idle timeout; at most `max_live` are held at once (`has_room` says
whether a new one fits; the server refuses new trajectories beyond it). A freed id that was live
is remembered (as a tombstone) for one idle timeout, so a late action on it is refused instead of
silently starting a fresh trajectory that would forget the calls already made; the tombstone
keeps the final reply, so a client's retry of the final step gets it again. Ids never seen get
no tombstone, and at most `max_tombstones` are kept (the oldest forgotten first), so neither map
can grow without bound whatever clients send. Used by plugins.speaker_rec.server only;
single-threaded (the server's event loop), so no locks.
"""

import time
from collections import Counter, OrderedDict

from plugins.speaker_rec.env import Trajectory

FREE_REASONS = ("finish", "last_step", "done", "idle", "error")
DEFAULT_MAX_LIVE = 32_768
DEFAULT_MAX_TOMBSTONES = 65_536


class Entry:
    """One live trajectory: the environment's state, the time it was last used, and the last
    call judged (its sequence number, a hash of its action, and the reply), so a client's retry
    of the same call is answered again, not judged a second time."""

    __slots__ = ("last_action", "last_reply", "last_seen", "last_seq", "trajectory")

    def __init__(self, trajectory: Trajectory, now: float):
        self.trajectory = trajectory
        self.last_seen = now
        self.last_seq: int | None = None
        self.last_action: int | None = None
        self.last_reply: tuple[str, bool, bool] | None = None


class Tombstone:
    """A freed trajectory: when it was freed and its final call (sequence, action hash, reply)."""

    __slots__ = ("action", "freed_at", "reply", "seq")

    def __init__(
        self,
        freed_at: float,
        seq: int | None,
        action: int | None,
        reply: tuple[str, bool, bool] | None,
    ):
        self.freed_at, self.seq, self.action, self.reply = freed_at, seq, action, reply


class TrajectoryStore:
    """Live trajectories keyed by id, oldest use first, with tombstones for freed ids."""

    def __init__(
        self,
        idle_timeout: float,
        clock=time.monotonic,
        *,
        max_live: int = DEFAULT_MAX_LIVE,
        max_tombstones: int = DEFAULT_MAX_TOMBSTONES,
    ):
        self.idle_timeout = idle_timeout
        self.clock = clock
        self.max_live = max_live
        self.max_tombstones = max_tombstones
        # Both maps keep least-recently-used first, so a sweep stops at the first fresh entry.
        self.live: OrderedDict[str, Entry] = OrderedDict()
        self.tombstones: OrderedDict[str, Tombstone] = OrderedDict()
        self.freed: Counter = Counter({reason: 0 for reason in FREE_REASONS})
        self.refused_full = 0
        self.tombstones_dropped = 0

    def __len__(self) -> int:
        return len(self.live)

    def get(self, trajectory_id: str) -> Entry | None:
        """The live entry for `trajectory_id`, marked as just used; None when there is none."""
        entry = self.live.get(trajectory_id)
        if entry is not None:
            entry.last_seen = self.clock()
            self.live.move_to_end(trajectory_id)
        return entry

    def has_room(self) -> bool:
        """Whether one more live trajectory fits under `max_live` (counts a refusal when not)."""
        if len(self.live) < self.max_live:
            return True
        self.refused_full += 1
        return False

    def add(self, trajectory_id: str, trajectory: Trajectory) -> Entry:
        """Start tracking a new trajectory (its id must be neither live nor recently finished,
        and `has_room` must have said yes)."""
        entry = self.live[trajectory_id] = Entry(trajectory, self.clock())
        return entry

    def finished(self, trajectory_id: str) -> Tombstone | None:
        """The tombstone of `trajectory_id` if it was freed less than one idle timeout ago."""
        return self.tombstones.get(trajectory_id)

    def free(
        self,
        trajectory_id: str,
        reason: str,
        *,
        seq: int | None = None,
        action: int | None = None,
        reply: tuple[str, bool, bool] | None = None,
    ) -> None:
        """Drop a live trajectory's state and remember its id (with its final call, if given) for
        one idle timeout. An id that is not live leaves nothing behind."""
        entry = self.live.pop(trajectory_id, None)
        if entry is None:
            return
        self.freed[reason] += 1
        self.tombstones[trajectory_id] = Tombstone(self.clock(), seq, action, reply)
        self.tombstones.move_to_end(trajectory_id)
        while len(self.tombstones) > self.max_tombstones:
            self.tombstones.popitem(last=False)
            self.tombstones_dropped += 1

    def sweep(self) -> int:
        """Free trajectories idle for longer than the timeout and forget old tombstones;
        returns how many trajectories were freed."""
        deadline = self.clock() - self.idle_timeout
        freed = 0
        while self.live:
            trajectory_id, entry = next(iter(self.live.items()))
            if entry.last_seen > deadline:
                break
            self.free(trajectory_id, "idle")
            freed += 1
        while self.tombstones:
            trajectory_id, tombstone = next(iter(self.tombstones.items()))
            if tombstone.freed_at > deadline:
                break
            del self.tombstones[trajectory_id]
        return freed
