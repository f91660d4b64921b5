"""Per-trajectory state of the tool server: live trajectories by id, and a short memory of
finished ones.

A live entry is the SR environment's `Trajectory` plus when it was last used. Entries are freed
on finish, on the last step, when the trajectory is done, and by `sweep` once idle for longer
than the idle timeout, so the store cannot grow without bound. A freed id is remembered (as a
tombstone) for one idle timeout, so a late action on it is refused instead of silently
starting a fresh trajectory that would forget the calls already made. Used by
plugins.speaker_rec.server only; single-threaded (the server's event loop), so no locks.
"""

import time
from collections import Counter, OrderedDict

from plugins.speaker_rec.env import Trajectory

FREE_REASONS = ("finish", "last_step", "done", "idle", "error")


class Entry:
    """One live trajectory: the environment's state, the time it was last used, and the last
    reply by call sequence number (so a client's retry of the same call is answered again,
    not judged a second time)."""

    __slots__ = ("last_reply", "last_seen", "last_seq", "trajectory")

    def __init__(self, trajectory: Trajectory, now: float):
        self.trajectory = trajectory
        self.last_seen = now
        self.last_seq: int | None = None
        self.last_reply: tuple[str, bool, bool] | None = None


class TrajectoryStore:
    """Live trajectories keyed by id, oldest use first, with tombstones for freed ids."""

    def __init__(self, idle_timeout: float, clock=time.monotonic):
        self.idle_timeout = idle_timeout
        self.clock = clock
        # Both maps keep least-recently-used first, so a sweep stops at the first fresh entry.
        self.live: OrderedDict[str, Entry] = OrderedDict()
        self.tombstones: OrderedDict[str, float] = OrderedDict()
        self.freed: Counter = Counter({reason: 0 for reason in FREE_REASONS})

    def __len__(self) -> int:
        return len(self.live)

    def get(self, trajectory_id: str) -> Entry | None:
        """The live entry for `trajectory_id`, marked as just used; None when there is none."""
        entry = self.live.get(trajectory_id)
        if entry is not None:
            entry.last_seen = self.clock()
            self.live.move_to_end(trajectory_id)
        return entry

    def add(self, trajectory_id: str, trajectory: Trajectory) -> Entry:
        """Start tracking a new trajectory (its id must be neither live nor recently finished)."""
        entry = self.live[trajectory_id] = Entry(trajectory, self.clock())
        return entry

    def finished(self, trajectory_id: str) -> bool:
        """Whether `trajectory_id` was freed less than one idle timeout ago."""
        return trajectory_id in self.tombstones

    def free(self, trajectory_id: str, reason: str) -> None:
        """Drop a trajectory's state and remember its id for one idle timeout."""
        entry = self.live.pop(trajectory_id, None)
        self.tombstones[trajectory_id] = self.clock()
        self.tombstones.move_to_end(trajectory_id)
        if entry is not None:
            self.freed[reason] += 1

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
            trajectory_id, when = next(iter(self.tombstones.items()))
            if when > deadline:
                break
            del self.tombstones[trajectory_id]
        return freed
