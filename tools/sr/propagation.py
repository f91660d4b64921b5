"""Label propagation: from a few labelled seed lines to a pseudo-label and a scored candidate
list for every line of a series. The core of `tools.sr.prepare`.

Voice score of a line for a class (a seeded character, or a new role found on the way): the
mean of its k highest voiceprint similarities to the class's labelled lines, k growing with the
class (n ** 0.4, at most 50). Only the line's K nearest neighbours are looked at; a labelled line
outside them counts as the K-th neighbour's similarity minus `fill_penalty`, so a class the line
is not close to scores low instead of being extrapolated. A class is a candidate only where it
is *present*: a face of the character within ±`window_s`, or a line already labelled with it in
that window (new roles have no faces, only the window).

The sweep lowers a level from `level_high` to `level_low` in `level_step`s; both ends move by
how far the series' median nearest-neighbour similarity lies from `reference_similarity` (about
its value on zhan_chang_sha, where the levels were set), so that a voiceprint extractor with
another similarity scale gets comparable levels. At each level:

1. Every unlabelled line takes its best present class when the decision score reaches the
   level. Decision score = voice score, plus up to `short_bonus` / 2 for lines under a second
   (short voiceprints are noisier and less similar to everyone, their own speaker included),
   plus `face_bonus` when that character's face is within ±`face_near_s` of the line, minus
   `unnamed_face_penalty` when a face of someone we cannot name (an unseeded character, an
   unknown-face cluster) is there: the speaker is usually on screen. A seeded character no face
   detection ever matched (a narrator, a voice off screen) is present everywhere, since no face
   evidence is no evidence of absence, at `unseen_penalty` below its voice score.
2. Voices nobody explains: runs of nearby unlabelled lines (each linked to one of the next
   `new_role_reach` unlabelled lines by a similarity of at least level + `new_role_margin`)
   form components; one of `new_role_min_lines` or more whose best class scores below
   level - margin on average becomes a new role, one that reaches the level joins that class.
3. A new role whose lines now score level + `merge_margin` against a character on average
   (scored where the character is present; or, for that same character, on all the role's
   lines, so a seeded voice split off while off screen comes back) merges into it: characters
   grow during the sweep, and a voice that looked new early (seed lines unlike the rest of a
   character's lines) may turn out to be theirs.

A level repeats while steps 2-3 change anything. Lines still unlabelled at the end are "other".

Seed lines can be unlike the character's usual voice (a shout; one clip counted twice, once in
an episode and again in the next one's recap): then they label nothing over the whole sweep,
and the character's lines go to whoever shares their scenes. Such a *starved* character gets
face anchors and the sweep runs once more from the seeds and the anchors. The anchors are lines
no seeded character's voice claimed where the character's face is the only face right at the
line (the speaker is most often the one face shown alone): the one of them linked to the most
such lines of other scenes (further apart than `window_s`, by a similarity of at least
level_low + `new_role_margin`, the link of the sweep's last new roles), with those lines, when
they are `new_role_min_lines` or more. A voice recurring across scenes under that face is the
character's; one scene's voice off screen is not.

Candidate list of a line: its present classes by voice score, the present characters it has
no labelled neighbour of at the fill value, and the seeded characters never detected on screen
(a narrator, a voice off screen: no face evidence is no evidence of absence) where one of their
lines is among its neighbours; at most `max_candidates`, its own class always in. A long list
only where the voice is unsure: most lines have two or three named candidates.
Everything is deterministic: no sampling, ties broken by class and line index.
"""

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
from tqdm import tqdm

from tools.sr.voiceprint import cosine_rows

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Params:
    """Every knob of the propagation; prepare records them in its output."""

    neighbours: int = 64
    top_k_cap: int = 50
    top_k_power: float = 0.4
    fill_penalty: float = 0.2
    window_s: float = 20.0
    face_min_score: float = 0.45
    level_high: float = 0.75
    level_low: float = 0.45
    level_step: float = 0.02
    reference_similarity: float = 0.70
    short_bonus: float = 0.2
    face_near_s: float = 0.5
    face_bonus: float = 0.06
    unnamed_face_penalty: float = 0.06
    unseen_penalty: float = 0.06
    new_role_margin: float = 0.08
    new_role_min_lines: int = 3
    new_role_reach: int = 5
    merge_margin: float = 0.15
    max_candidates: int = 8

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Inputs:
    """What the propagation reads, as plain arrays (tests and the benchmark build them without
    a series on disk). Per line: `units`, `neighbours`, `similarity` from `voiceprint`;
    `usable` (has a voiceprint and is not deleted); `starts`, `ends`, `durations` in seconds on
    the series timeline, starts sorted. `presence[i, c]` and `face_near[i, c]`: character
    `known[c]` may be speaking / is on screen right at line i; `unnamed_face_near[i]`: someone
    we cannot name is. `seeds` maps line index to an index into `known`."""

    units: np.ndarray
    neighbours: np.ndarray
    similarity: np.ndarray
    usable: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    durations: np.ndarray
    presence: np.ndarray
    face_near: np.ndarray
    unnamed_face_near: np.ndarray
    known: list[str]
    seeds: dict[int, int]
    new_role_name: Callable[[int], str]
    never_seen: np.ndarray | None = None


@dataclass
class Result:
    """Classes are the seeded characters (`n_known` of them) then the surviving new roles,
    numbered by their first line. Per line: `labels` (class id, -1 for "other" or no
    voiceprint), `source` ("seed", "propagated", "new_role", "other", "no_voiceprint"),
    `level` (the level that labelled it, NaN otherwise) and `candidates`: (class id, voice
    score) best first, at most `max_candidates`, the line's own class always among them."""

    classes: list[str]
    n_known: int
    labels: np.ndarray
    source: list[str]
    level: np.ndarray
    candidates: list[list[tuple[int, float]]]
    stats: dict = field(default_factory=dict)


class Propagation:
    """One run over one series: `Propagation(inputs, params).run()`."""

    def __init__(self, inputs: Inputs, params: Params = Params()):
        self.p = params
        self.x = inputs
        self.n = len(inputs.usable)
        self.n_known = len(inputs.known)
        self.short = np.clip(1.0 - inputs.durations, 0.0, 0.5) * params.short_bonus
        sims = inputs.similarity
        finite = np.isfinite(sims)
        last = np.maximum(finite.sum(axis=1) - 1, 0)
        kth = np.where(finite.any(axis=1), sims[np.arange(self.n), last], 0.0).astype(np.float64)
        self.fill = (
            kth - params.fill_penalty
        )  # the score of a labelled line beyond the K neighbours
        self.window_lo = np.searchsorted(
            inputs.starts, inputs.starts - params.window_s, side="left"
        )
        self.window_hi = np.searchsorted(inputs.starts, inputs.ends + params.window_s, side="right")
        self.labels = np.full(self.n, -1, dtype=np.int64)
        self.level = np.full(self.n, np.nan)
        self.is_seed = np.zeros(self.n, dtype=bool)
        for index, code in inputs.seeds.items():
            self.labels[index] = code
            self.is_seed[index] = True
        self.n_classes = self.n_known
        nearest = sims[:, 0][inputs.usable & finite[:, 0]] if sims.shape[1] else np.empty(0)
        self.offset = (
            float(np.median(nearest)) - params.reference_similarity if len(nearest) else 0.0
        )
        self.stats = {
            "level_offset": round(self.offset, 4),
            "passes": 0,
            "new_roles_found": 0,
            "components_joined": 0,
            "new_roles_merged": 0,
        }

    # -- scoring ------------------------------------------------------------------------

    def _top_k(self) -> np.ndarray:
        counts = np.bincount(self.labels[self.labels >= 0], minlength=self.n_classes)
        k = np.floor(np.power(np.maximum(counts, 1), self.p.top_k_power)).astype(np.int64)
        return np.clip(k, 1, self.p.top_k_cap)

    def _present(self, rows: np.ndarray, classes: np.ndarray, decide: bool = False) -> np.ndarray:
        """Per (rows[j], classes[j]): a face of the character, or a labelled line of the class
        in the line's window; for a decision (`decide`), also a seeded character never detected
        on screen anywhere."""
        face = np.zeros(len(rows), dtype=bool)
        known = classes < self.n_known
        face[known] = self.x.presence[rows[known], classes[known]]
        if decide and self.x.never_seen is not None:
            face[known] |= self.x.never_seen[classes[known]]
        labelled = np.flatnonzero(self.labels >= 0)
        keys = np.sort(self.labels[labelled] * self.n + labelled)
        # Queries in class order (rows come sorted) search about twice as fast; a 16-bit stable
        # argsort is a radix sort.
        order = np.argsort(
            classes.astype(np.int16 if self.n_classes < 2**15 else np.int64), kind="stable"
        )
        lo, hi = np.empty(len(rows), dtype=np.int64), np.empty(len(rows), dtype=np.int64)
        lo[order] = np.searchsorted(keys, (classes * self.n + self.window_lo[rows])[order], "left")
        hi[order] = np.searchsorted(keys, (classes * self.n + self.window_hi[rows])[order], "left")
        return face | (hi > lo)

    def voice_scores(
        self,
        rows: np.ndarray,
        with_unheard: bool = False,
        decide: bool = False,
        anywhere: bool = False,
        best_first: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(position in rows, class, voice score) for every present class of each of `rows`
        with a labelled line among its neighbours; `with_unheard` adds the present characters
        without one, at the fill value; `decide` counts never-seen characters present (see
        `_present`); `anywhere` scores every class with a labelled neighbour, present or not.
        Sorted by row, best first, then class; without `best_first` (and `with_unheard`), by
        row then class."""
        gr, gc, score = self._group_scores(rows)
        present = np.ones(len(gr), dtype=bool) if anywhere else self._present(rows[gr], gc, decide)
        if with_unheard and self.x.never_seen is not None:
            # No face evidence at all is no evidence of absence (a narrator, a voice off
            # screen): offered as candidates where the voice points to them.
            present |= (gc < self.n_known) & self.x.never_seen[np.minimum(gc, self.n_known - 1)]
        gr, gc, score = gr[present], gc[present], score[present]
        if with_unheard:
            fr, fc = np.nonzero(self.x.presence[rows])
            unheard = ~np.isin(fr * self.n_classes + fc, gr * self.n_classes + gc)
            gr, gc = np.r_[gr, fr[unheard]], np.r_[gc, fc[unheard]]
            score = np.r_[score, self.fill[rows[fr[unheard]]]]
        if not best_first:
            return gr, gc, score
        order = np.lexsort((gc, -score, gr))
        return gr[order], gc[order], score[order]

    def _group_scores(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(position in rows, class, voice score) for every class with a labelled line among
        the neighbours of each of `rows`, present or not; sorted by row, then class."""
        k = self._top_k()
        width = self.x.neighbours.shape[1]
        # Neighbour slot -1 reads the sentinel at the end.
        labels_ext = np.append(self.labels, -1).astype(np.int32)
        neighbour_labels = labels_ext[self.x.neighbours[rows]]
        flat = np.flatnonzero(neighbour_labels >= 0)
        r = flat // width
        c = neighbour_labels.ravel()[flat].astype(np.int64)
        # (row, class, slot) packed in one int64 and sorted as values: groups by row then class,
        # neighbours best-first inside a group, as a stable argsort of (row, class) would.
        packed = (r * self.n_classes + c) * width + (flat - r * width)
        packed.sort()
        key, slot = np.divmod(packed, width)
        r, c = np.divmod(key, self.n_classes)
        sim = self.x.similarity[rows[r], slot].astype(np.float64)
        first = np.r_[True, key[1:] != key[:-1]] if len(key) else np.zeros(0, dtype=bool)
        group = np.cumsum(first) - 1
        rank = np.arange(len(key)) - np.flatnonzero(first)[group]
        keep = rank < k[c]
        n_groups = int(first.sum())
        sums = np.bincount(group[keep], weights=sim[keep], minlength=n_groups)
        taken = np.bincount(group[keep], minlength=n_groups)
        gr, gc = r[first], c[first]
        gk = k[gc]
        score = (sums + (gk - taken) * self.fill[rows[gr]]) / gk
        return gr, gc, score

    # -- the sweep ----------------------------------------------------------------------

    def _unlabelled(self) -> np.ndarray:
        return np.flatnonzero((self.labels < 0) & self.x.usable)

    def _label_pass(self, level: float) -> None:
        rows = self._unlabelled()
        if len(rows) == 0:
            return
        r, c, s = self.voice_scores(rows, decide=True, best_first=False)
        if len(r) == 0:
            return
        lines = rows[r]
        s = s + self.short[lines] - self.p.unnamed_face_penalty * self.x.unnamed_face_near[lines]
        known = c < self.n_known
        s[known] += self.p.face_bonus * self.x.face_near[lines[known], c[known]]
        if self.x.never_seen is not None:
            # Present for want of any face evidence, not because of it: as far below a character
            # seen on screen as a face at the line lifts one above it.
            s[known] -= self.p.unseen_penalty * self.x.never_seen[c[known]]
        # Each row's best score, the lowest class among equals (a row's entries come in class
        # order): what the first of a (row, -score, class) sort would be.
        starts = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
        best = np.repeat(np.maximum.reduceat(s, starts), np.diff(np.r_[starts, len(r)]))
        top = np.flatnonzero(s == best)
        top = top[np.r_[True, r[top][1:] != r[top][:-1]]]
        take = top[s[top] >= level]
        chosen = rows[r[take]]
        self.labels[chosen] = c[take]
        self.level[chosen] = level

    def _components(self, level: float) -> list[np.ndarray]:
        """Groups of unlabelled lines linked to one of the next `new_role_reach` unlabelled
        lines by a similarity of at least level + new_role_margin."""
        rows = self._unlabelled()
        m = len(rows)
        if m < self.p.new_role_min_lines:
            return []
        a_parts, b_parts = [], []
        chain = self.x.units[rows]  # gathered once; each offset compares two views of it
        for offset in range(1, self.p.new_role_reach + 1):
            a = np.arange(m - offset)
            linked = (
                cosine_rows(chain[: len(a)], chain[offset : offset + len(a)])
                >= level + self.p.new_role_margin
            )
            a_parts.append(a[linked])
            b_parts.append(a[linked] + offset)
        a, b = np.concatenate(a_parts), np.concatenate(b_parts)
        root = np.arange(m)
        while (
            True
        ):  # min-label propagation with pointer jumping: every line ends at its group's first
            new = root.copy()
            np.minimum.at(new, a, root[b])
            np.minimum.at(new, b, root[a])
            new = new[new]
            if np.array_equal(new, root):
                break
            root = new
        sizes = np.bincount(root, minlength=m)
        return [rows[root == g] for g in np.flatnonzero(sizes >= self.p.new_role_min_lines)]

    def _class_means(
        self, groups: list[np.ndarray], known_only: bool, anywhere_too: bool = False
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per group of lines: (best class, its mean voice score over the group's lines), a
        line without a score for the class counting 0; class -1 where nothing scores. With
        `anywhere_too`, a second such pair from the scores of every class, present or not
        (`voice_scores(anywhere=True)`), sharing the one grouping of the neighbours."""
        members = np.concatenate(groups)
        owner = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
        sizes = np.array([len(g) for g in groups])
        # Sorted by row, as voice_scores' output: each (group, class) total adds its lines'
        # scores in the same order, so the sums are the same to the bit.
        r, c, s = self._group_scores(members)
        if known_only:
            keep = c < self.n_known
            r, c, s = r[keep], c[keep], s[keep]
        present = self._present(members[r], c)
        views = [present, np.ones(len(r), dtype=bool)] if anywhere_too else [present]
        return [self._best_means(owner[r[v]], c[v], s[v], sizes) for v in views]

    def _best_means(
        self, owner: np.ndarray, c: np.ndarray, s: np.ndarray, sizes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        totals = np.bincount(
            owner * self.n_classes + c, weights=s, minlength=len(sizes) * self.n_classes
        )
        means = totals.reshape(len(sizes), self.n_classes) / sizes[:, None]
        best = means.argmax(axis=1)
        value = means[np.arange(len(sizes)), best]
        return np.where(value > 0, best, -1), np.maximum(value, 0.0)

    def _new_roles(self, level: float) -> bool:
        groups = self._components(level)
        if not groups:
            return False
        [(best, value)] = self._class_means(groups, known_only=False)
        changed = False
        for group, cls, mean in zip(groups, best, value, strict=True):
            if mean + self.p.new_role_margin < level:
                self.labels[group] = self.n_classes
                self.n_classes += 1
                self.stats["new_roles_found"] += 1
            elif mean >= level and cls >= 0:
                self.labels[group] = cls
                self.stats["components_joined"] += 1
            else:
                continue
            self.level[group] = level
            changed = True
        return changed

    def _merges(self, level: float) -> bool:
        in_roles = np.flatnonzero(self.labels >= self.n_known)
        if len(in_roles) == 0:
            return False
        # One stable sort instead of a scan of every line per role: each group keeps its lines
        # in index order, roles in id order.
        by_role = in_roles[np.argsort(self.labels[in_roles], kind="stable")]
        _, first = np.unique(self.labels[by_role], return_index=True)
        groups = np.split(by_role, first[1:])
        # The same character's voice ignoring where they are present (the second pair): a role
        # that is one seeded character's voice where neither their face nor a labelled line of
        # theirs is near (off screen) scores 0 on those lines and could never merge back.
        (best, value), (anywhere_best, anywhere_value) = self._class_means(
            groups, known_only=True, anywhere_too=True
        )
        changed = False
        for lines, cls, mean, voice_cls, voice_mean in zip(
            groups, best, value, anywhere_best, anywhere_value, strict=True
        ):
            if cls >= 0 and voice_cls == cls:
                mean = max(mean, voice_mean)
            if cls >= 0 and mean >= level + self.p.merge_margin:
                self.labels[lines] = cls
                self.stats["new_roles_merged"] += 1
                changed = True
        return changed

    def _face_anchors(self) -> dict[int, np.ndarray]:
        """Per starved seeded character (its seed lines labelled nothing over the sweep): its
        face anchors (see the module's docstring), where there are enough of them."""
        counts = np.bincount(self.labels[self.labels >= 0], minlength=self.n_classes)
        seeded = np.bincount(self.labels[self.is_seed & (self.labels >= 0)], minlength=self.n_known)
        starved = np.flatnonzero((seeded > 0) & (counts[: self.n_known] == seeded))
        if len(starved) == 0:
            return {}
        alone = (
            (self.x.face_near.sum(axis=1) == 1)
            & ~self.x.unnamed_face_near
            & self.x.usable
            & ~self.is_seed
            & ((self.labels < 0) | (self.labels >= self.n_known))
        )
        link = self.p.level_low + self.offset + self.p.new_role_margin
        anchors = {}
        for c in starved.tolist():
            lines = np.flatnonzero(alone & self.x.face_near[:, c])
            if len(lines) == 0:
                continue
            member = np.zeros(self.n + 1, dtype=bool)  # neighbour slot -1 reads the last, False
            member[lines] = True
            neighbours = self.x.neighbours[lines]
            apart = np.abs(self.x.starts[neighbours] - self.x.starts[lines][:, None])
            linked = (
                member[neighbours] & (self.x.similarity[lines] >= link) & (apart > self.p.window_s)
            )
            best = int(np.argmax(linked.sum(axis=1)))  # the first of equals: deterministic
            group = np.r_[lines[best], neighbours[best][linked[best]]]
            if len(group) >= self.p.new_role_min_lines:
                anchors[c] = np.sort(group)
        return anchors

    def _restart(self, anchors: dict[int, np.ndarray], level: float) -> None:
        """Back to the seeds, plus the anchors labelled at `level`."""
        self.labels[~self.is_seed] = -1
        self.level[:] = np.nan
        self.n_classes = self.n_known
        for c, lines in anchors.items():
            self.labels[lines] = c
            self.level[lines] = level
        self.stats.update(
            face_anchored_characters=len(anchors),
            face_anchored_lines=int(sum(len(lines) for lines in anchors.values())),
            new_roles_found=0,
            components_joined=0,
            new_roles_merged=0,
        )

    def _sweep(self, levels: list[float], progress: bool) -> None:
        for level in tqdm(levels, desc="propagation levels", unit="level", disable=not progress):
            while True:
                self.stats["passes"] += 1
                self._label_pass(level)
                found = self._new_roles(level)
                merged = self._merges(level)
                if not (found or merged):
                    break

    def run(self, progress: bool = False) -> Result:
        """Sweep the levels (once more from the seeds and the face anchors when a seeded
        character was starved), then build every line's candidate list."""
        steps = round((self.p.level_high - self.p.level_low) / self.p.level_step)
        levels = [
            round(self.p.level_high + self.offset - i * self.p.level_step, 6)
            for i in range(steps + 1)
        ]
        self._sweep(levels, progress)
        anchors = self._face_anchors()
        if anchors:
            logger.info(
                "propagation: seed lines of %d characters labelled nothing; sweeping again from "
                "the seeds and their face anchors",
                len(anchors),
            )
            self._restart(anchors, levels[0])
            self._sweep(levels, progress)
        logger.info("propagation: %s", self.stats)
        return self._result()

    # -- output -------------------------------------------------------------------------

    def _result(self) -> Result:
        # Roles renumbered in the order of their first lines.
        in_roles = np.flatnonzero(self.labels >= self.n_known)
        old, first = np.unique(self.labels[in_roles], return_index=True)
        roles = old[np.argsort(in_roles[first])]  # first lines differ: no ties
        renumbered = self.labels.copy()
        if len(roles):
            new = np.zeros(int(roles.max()) + 1, dtype=self.labels.dtype)
            new[roles] = np.arange(self.n_known, self.n_known + len(roles))
            renumbered[in_roles] = new[self.labels[in_roles]]
        self.labels = renumbered
        self.n_classes = self.n_known + len(roles)
        self.stats["new_roles"] = len(roles)
        classes = list(self.x.known) + [self.x.new_role_name(i + 1) for i in range(len(roles))]
        source = []
        is_seed, usable, labels = (
            self.is_seed.tolist(),
            self.x.usable.tolist(),
            self.labels.tolist(),
        )
        for i in range(self.n):
            if is_seed[i]:
                source.append("seed")
            elif not usable[i]:
                source.append("no_voiceprint")
            elif labels[i] >= self.n_known:
                source.append("new_role")
            else:
                source.append("propagated" if labels[i] >= 0 else "other")
        return Result(
            classes,
            self.n_known,
            self.labels.copy(),
            source,
            self.level.copy(),
            self._candidates(),
            dict(self.stats),
        )

    def _candidates(self) -> list[list[tuple[int, float]]]:
        """Per line: (class, voice score) best first, then by class, at most `max_candidates`;
        a labelled line's own class is always in (at the fill value where the voice does not
        score it), in the last place where it would not make the cut."""
        rows = np.flatnonzero(self.x.usable)
        r, c, s = self.voice_scores(rows, with_unheard=True)
        own = self.labels[rows]
        scored = np.zeros(len(rows), dtype=bool)
        scored[r[c == own[r]]] = True
        missing = np.flatnonzero((own >= 0) & ~scored)
        if len(missing):
            r = np.r_[r, missing]
            c = np.r_[c, own[missing]]
            s = np.r_[s, self.fill[rows[missing]]]
            order = np.lexsort((c, -s, r))
            r, c, s = r[order], c[order], s[order]
        starts = np.searchsorted(r, np.arange(len(rows) + 1))
        rank = np.arange(len(r)) - starts[r]
        cut = self.p.max_candidates
        mine = np.flatnonzero(c == own[r])
        late = mine[rank[mine] >= cut]
        last = starts[r[late]] + cut - 1
        c[last], s[last] = c[late], s[late]
        keep = rank < cut
        c, s = c[keep], s[keep]
        bounds = np.searchsorted(r[keep], np.arange(len(rows) + 1)).tolist()
        pairs = list(zip(c.tolist(), s.tolist(), strict=True))
        out: list[list[tuple[int, float]]] = [[] for _ in range(self.n)]
        for j, line in enumerate(rows.tolist()):
            out[line] = pairs[bounds[j] : bounds[j + 1]]
        return out
