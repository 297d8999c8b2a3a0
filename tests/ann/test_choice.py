"""Which index kind a space gets, at which size and budget; when it is rebuilt; the settings."""

from __future__ import annotations

import pytest

from engine.ann.choice import FLAT, HNSW, IVF_PQ, IVF_SQ8, choose, ivf_lists, memory_of, parse_size, rebuild_reason
from engine.config import IndexConfig
from engine.errors import ConfigError

GB = 1024**3
MB = 1024**2


def test_small_spaces_are_searched_exactly():
    assert choose(9_999, 384, GB, exact_below=10_000).kind == FLAT
    assert choose(0, 384, GB, exact_below=10_000).kind == FLAT


def test_hnsw_while_vectors_and_graph_fit_the_budget():
    choice = choose(100_000, 384, GB, exact_below=10_000)
    assert (choice.kind, choice.factory) == (HNSW, "HNSW32,Flat")
    assert choice.memory_bytes <= GB
    # The same size with a budget below its float32 vectors and graph: compressed codes instead.
    assert choose(100_000, 384, 100 * MB, exact_below=10_000).kind == IVF_SQ8


def test_a_million_vectors_in_a_gigabyte_get_ivf_with_sq8():
    choice = choose(1_000_000, 384, GB, exact_below=10_000)
    assert choice.kind == IVF_SQ8
    assert choice.factory == f"IVF{choice.nlist},SQ8"
    assert choice.nlist == 4096  # ≈ 4·√n, a power of two
    assert choice.memory_bytes <= GB
    assert choice.lossy  # its candidates are re-scored from the exact vectors


def test_pq_takes_the_most_bytes_per_vector_that_fit():
    choice = choose(1_000_000, 384, 60 * MB, exact_below=10_000)
    assert choice.kind == IVF_PQ
    assert choice.memory_bytes <= 60 * MB
    assert memory_of(IVF_PQ, 1_000_000, 384, choice.nlist, 2 * choice.pq_bytes) > 60 * MB or choice.pq_bytes == 64
    assert 384 % choice.pq_bytes == 0
    assert not choice.over_budget


def test_a_budget_nothing_fits_takes_the_smallest_codes_and_says_so():
    choice = choose(10_000_000, 384, 10 * MB, exact_below=10_000)
    assert (choice.kind, choice.pq_bytes, choice.over_budget) == (IVF_PQ, 8, True)


def test_ivf_lists_have_enough_vectors_to_train():
    for n in (10_000, 50_000, 1_000_000, 10_000_000):
        nlist = ivf_lists(n)
        assert nlist & (nlist - 1) == 0  # a power of two
        assert n // nlist >= 39 or nlist == 64


def test_rebuild_when_the_space_outgrows_its_kind():
    assert rebuild_reason(FLAT, 5_000, 10_000, 384, GB, 10_000) is not None
    assert rebuild_reason(FLAT, 5_000, 9_999, 384, GB, 10_000) is None
    assert rebuild_reason(HNSW, 100_000, 1_000_000, 384, GB, 10_000) is not None  # past the budget


def test_a_space_near_a_boundary_does_not_flip_back_and_forth():
    # Built as HNSW at 10k; shrinking a little keeps it, shrinking below half goes back to exact.
    assert rebuild_reason(HNSW, 10_000, 6_000, 384, GB, 10_000) is None
    assert rebuild_reason(HNSW, 10_000, 4_000, 384, GB, 10_000) is not None


def test_ivf_is_rebuilt_when_its_lists_hold_four_times_what_they_were_built_for():
    assert rebuild_reason(IVF_SQ8, 1_000_000, 3_900_000, 384, 8 * GB, 10_000) is None
    assert rebuild_reason(IVF_SQ8, 1_000_000, 4_100_000, 384, 8 * GB, 10_000) is not None


def test_hnsw_is_rebuilt_when_a_fifth_of_its_graph_is_removed_vectors():
    assert rebuild_reason(HNSW, 50_000, 50_000, 384, GB, 10_000, dead=5_000) is None
    assert rebuild_reason(HNSW, 50_000, 50_000, 384, GB, 10_000, dead=11_000) is not None


@pytest.mark.parametrize("text,expected", [("1GB", GB), ("512MB", 512 * MB), ("1.5g", int(1.5 * GB)), ("2048", 2048), (" 64 MiB ", 64 * MB)])
def test_memory_sizes(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["lots", "", "-1GB", "1PB"])
def test_a_bad_memory_budget_names_the_setting(text):
    with pytest.raises(ConfigError, match="index.memory_budget"):
        IndexConfig(memory_budget=text)


def test_a_bad_target_recall_names_the_setting():
    with pytest.raises(ConfigError, match="index.target_recall"):
        IndexConfig(target_recall=1.5)
