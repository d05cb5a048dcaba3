import pytest

from pipeline.index import Hit, rrf_fuse


def hits(*ids: str) -> list[Hit]:
    return [
        Hit(
            chunk_id=i,
            doc_id=f"doc-{i}",
            source=f"s/{i}",
            ordinal=0,
            score=100.0 - n,
            text=f"text {i}",
            title=None,
            rank=n,
        )
        for n, i in enumerate(ids, start=1)
    ]


def ids(fused: list[Hit]) -> list[str]:
    return [h.chunk_id for h in fused]


def test_scores_are_sums_of_reciprocal_ranks():
    fused = rrf_fuse([hits("a", "b", "c"), hits("c", "a")], k=10, rank_constant=60)
    scores = {h.chunk_id: h.score for h in fused}
    assert scores["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert scores["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert scores["b"] == pytest.approx(1 / 62)
    assert ids(fused) == ["a", "c", "b"]
    assert [h.rank for h in fused] == [1, 2, 3]


def test_hit_in_both_lists_beats_hits_in_one():
    # "z" is last in both lists, yet two modest votes outrank one first place.
    fused = rrf_fuse([hits("a", "b", "z"), hits("c", "d", "z")], k=10)
    assert ids(fused)[0] == "z"
    assert fused[0].score == pytest.approx(2 / 63)


def test_ties_keep_depth_then_list_order():
    # a and c tie (rank 1 once each), b and d tie (rank 2 once each).
    fused = rrf_fuse([hits("a", "b"), hits("c", "d")], k=10)
    assert ids(fused) == ["a", "c", "b", "d"]
    assert fused[0].score == fused[1].score
    # Swapping list order swaps the tie-breaks, nothing else.
    assert ids(rrf_fuse([hits("c", "d"), hits("a", "b")], k=10)) == ["c", "a", "d", "b"]


def test_exact_ties_across_symmetric_lists():
    fused = rrf_fuse([hits("a", "b", "c"), hits("b", "c", "a"), hits("c", "a", "b")], k=3)
    assert len({h.score for h in fused}) == 1
    assert ids(fused) == ["a", "b", "c"]


def test_k_cuts_after_fusion():
    fused = rrf_fuse([hits("a", "b", "c", "d"), hits("d", "c")], k=2)
    assert ids(fused) == ["d", "c"]
    assert [h.rank for h in fused] == [1, 2]
    assert rrf_fuse([hits("a")], k=0) == []


def test_rank_constant_changes_how_much_top_ranks_dominate():
    lists = [hits("a", "x", "y", "z", "b"), hits("q", "r", "s", "t", "b")]
    # With a tiny constant one first place beats two fifth places; with a large one it does not.
    assert ids(rrf_fuse(lists, k=1, rank_constant=1)) == ["a"]
    assert ids(rrf_fuse(lists, k=1, rank_constant=1000)) == ["b"]


def test_duplicates_within_one_list_vote_once():
    fused = rrf_fuse([hits("a", "a", "b"), hits("b")], k=10)
    scores = {h.chunk_id: h.score for h in fused}
    assert scores["a"] == pytest.approx(1 / 61)
    assert scores["b"] == pytest.approx(1 / 63 + 1 / 61)


def test_fields_come_from_the_first_list_that_had_the_hit():
    lexical = hits("a")
    semantic = [Hit("a", "doc-a", "s/a", 0, 0.9, "text a", "Title", 1)]
    fused = rrf_fuse([lexical, semantic], k=1)
    assert fused[0].doc_id == "doc-a" and fused[0].title is None
    assert lexical[0].score == 99.0  # inputs are not mutated


def test_empty_inputs():
    assert rrf_fuse([], k=5) == []
    assert rrf_fuse([[], []], k=5) == []
    assert ids(rrf_fuse([[], hits("a")], k=5)) == ["a"]


def test_rank_constant_must_be_positive():
    with pytest.raises(ValueError):
        rrf_fuse([hits("a")], k=1, rank_constant=0)
