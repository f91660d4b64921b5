"""Exact neighbour lists: equal to brute force, independent of block size, unusable rows left
out."""

import numpy as np
import pytest

from tools.sr import voiceprint


@pytest.fixture
def embeddings():
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((5, 48))
    rows = centres[rng.integers(0, 5, 700)] + 0.8 * rng.standard_normal((700, 48))
    rows *= rng.uniform(300, 900, (700, 1))
    rows[[3, 77]] = np.nan
    return rows.astype(np.float32)


def brute_force(units, usable, k):
    sims = units.astype(np.float64) @ units.astype(np.float64).T / voiceprint.SCALE
    sims[:, ~usable] = -np.inf
    np.fill_diagonal(sims, -np.inf)
    order = np.lexsort((np.broadcast_to(np.arange(len(units)), sims.shape), -sims), axis=1)[:, :k]
    return order, np.take_along_axis(sims, order, axis=1)


def test_integer_products_are_exact(embeddings):
    usable = np.isfinite(embeddings).all(axis=1)
    units = voiceprint.integer_units(embeddings, usable)
    assert np.array_equal(units, np.rint(units))
    assert (
        np.abs(np.linalg.norm(units[usable].astype(np.float64), axis=1) - voiceprint.NORM).max() < 8
    )
    exact = units[:50].astype(np.float64) @ units.astype(np.float64).T
    assert np.array_equal(units[:50] @ units.T, exact.astype(np.float32))
    assert not units[~usable].any()


def test_neighbours_match_brute_force_whatever_the_block_size(embeddings, monkeypatch):
    usable = np.isfinite(embeddings).all(axis=1)
    usable[10] = False  # e.g. a deleted line: neither a row nor a neighbour
    units = voiceprint.integer_units(embeddings, usable)
    index, sims = voiceprint.nearest_neighbours(units, usable, 16)
    want_index, want_sims = brute_force(units, usable, 16)
    rows = np.flatnonzero(usable)
    assert np.array_equal(index[rows], want_index[rows])
    assert np.allclose(sims[rows], want_sims[rows], atol=1e-6)
    assert (index[~usable] == -1).all() and np.isneginf(sims[~usable]).all()
    assert not np.isin(index[rows], np.flatnonzero(~usable)).any()
    assert (index[rows] != rows[:, None]).all()
    monkeypatch.setattr(voiceprint, "BLOCK_ROWS", 37)
    index2, sims2 = voiceprint.nearest_neighbours(units, usable, 16)
    assert np.array_equal(index, index2) and np.array_equal(sims, sims2)


def test_fewer_lines_than_neighbours_pads():
    rng = np.random.default_rng(1)
    units = voiceprint.integer_units(rng.standard_normal((4, 8)), np.ones(4, dtype=bool))
    index, sims = voiceprint.nearest_neighbours(units, np.ones(4, dtype=bool), 6)
    assert (
        (index[:, :3] >= 0).all() and (index[:, 3:] == -1).all() and np.isneginf(sims[:, 3:]).all()
    )


def test_nearest_centroid_picks_the_closest_group():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal(32), rng.standard_normal(32)
    rows = np.stack(
        [a + 0.1 * rng.standard_normal(32) for _ in range(5)]
        + [b + 0.1 * rng.standard_normal(32) for _ in range(5)]
    )
    usable = np.ones(10, dtype=bool)
    usable[9] = False
    units = voiceprint.integer_units(rows, usable)
    names, choice = voiceprint.nearest_centroid(units, usable, {"B": [5], "A": [0]})
    assert names == ["A", "B"]
    assert [names[c] for c in choice[:9]] == ["A"] * 5 + ["B"] * 4 and choice[9] == -1


@pytest.mark.parametrize("panel", [512, 64, 37, 16, 5])
@pytest.mark.parametrize("k", [1, 5, 16])
def test_neighbours_with_many_ties_match_brute_force(monkeypatch, panel, k):
    """Few distinct products and duplicated rows: ties everywhere, broken by the lower index
    whatever the panel size (entries equal to a line's floor must not sneak in)."""
    rng = np.random.default_rng(panel * 100 + k)
    units = rng.integers(-2, 3, (300, 6)).astype(np.float32)
    units[100:140] = units[0]  # identical voices
    usable = np.ones(300, dtype=bool)
    usable[[5, 150, 299]] = False
    units[~usable] = 0
    monkeypatch.setattr(voiceprint, "BLOCK_ROWS", panel)
    index, sims = voiceprint.nearest_neighbours(units, usable, k)
    want_index, want_sims = brute_force(units, usable, k)
    rows = np.flatnonzero(usable)
    assert np.array_equal(index[rows], want_index[rows])
    assert np.array_equal(sims[rows], want_sims[rows].astype(np.float32))
    assert (index[~usable] == -1).all()


def test_cosine_rows_equal_the_float64_sum(embeddings):
    usable = np.isfinite(embeddings).all(axis=1)
    units = voiceprint.integer_units(embeddings, usable)
    exact = (units[:-3].astype(np.float64) * units[3:]).sum(axis=1) / voiceprint.SCALE
    assert np.array_equal(voiceprint.cosine_rows(units[:-3], units[3:]), exact.astype(np.float32))
