"""Weighted RRF, normalised-score fusion, document aggregation and the per-tenant tuning of hybrid search."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.index import DEFAULT_FUSION, Fusion, Hit, fuse, rrf_fuse, score_fuse
from pipeline.tune import Run, candidates, document_ranking, holdout, score_runs, tune


def hit(chunk: str, score: float, rank: int, source: str | None = None) -> Hit:
    return Hit(chunk, f"doc-{chunk}", source or f"s/{chunk}", 0, score, "", None, rank)


def ranking(*chunks: str, scores: list[float] | None = None, source=None) -> list[Hit]:
    scores = scores or [10.0 - n for n in range(len(chunks))]
    return [hit(c, s, n, source(c) if source else None) for n, (c, s) in enumerate(zip(chunks, scores), start=1)]


def ids(hits: list[Hit]) -> list[str]:
    return [h.chunk_id for h in hits]


def test_equal_weights_are_plain_rrf_scores_and_all():
    lexical, semantic = ranking("a", "b", "c"), ranking("c", "d", "a")
    plain = rrf_fuse([lexical, semantic], 10)
    fused = fuse(lexical, semantic, 10, DEFAULT_FUSION)
    assert [(h.chunk_id, h.score) for h in fused] == [(h.chunk_id, h.score) for h in plain]
    assert DEFAULT_FUSION.is_plain_rrf and not Fusion("rrf", 0.7).is_plain_rrf


@pytest.mark.parametrize("method", ["rrf", "score"])
def test_a_weight_of_one_or_zero_keeps_one_lists_order(method):
    lexical, semantic = ranking("a", "b", "c"), ranking("c", "d", "b")
    assert ids(fuse(lexical, semantic, 3, Fusion(method, 1.0))) == ["a", "b", "c"]
    assert ids(fuse(lexical, semantic, 3, Fusion(method, 0.0))) == ["c", "d", "b"]


def test_weighted_rrf_lets_the_heavier_list_win_a_disagreement():
    lexical, semantic = ranking("a", "b"), ranking("b", "a")
    assert ids(fuse(lexical, semantic, 2, Fusion("rrf", 0.5)))[0] == "a"  # a tie goes to the lexical list
    assert ids(fuse(lexical, semantic, 2, Fusion("rrf", 0.4)))[0] == "b"
    assert ids(fuse(lexical, semantic, 2, Fusion("rrf", 0.6)))[0] == "a"


def test_score_fusion_keeps_a_lead_that_ranks_throw_away():
    # BM25 puts "a" far ahead; kNN barely prefers "b" over "a": ranks call it a tie, scores do not
    lexical = ranking("a", "b", "c", scores=[30.0, 5.0, 4.0])
    semantic = ranking("b", "a", "c", scores=[0.91, 0.90, 0.10])
    assert ids(score_fuse([lexical, semantic], 3, weights=(0.5, 0.5))) == ["a", "b", "c"]
    fused = score_fuse([lexical, semantic], 3, weights=(0.5, 0.5))
    assert fused[0].score == pytest.approx(0.5 * 1.0 + 0.5 * (0.90 - 0.10) / (0.91 - 0.10), abs=1e-6)
    assert [h.rank for h in fused] == [1, 2, 3]


def test_score_fusion_of_a_list_with_equal_scores_or_one_hit():
    assert [h.score for h in score_fuse([ranking("a", scores=[3.0])], 5)] == [1.0]
    fused = score_fuse([ranking("a", "b", scores=[2.0, 2.0]), []], 5, weights=(0.3, 0.7))
    assert ids(fused) == ["a", "b"] and [h.score for h in fused] == pytest.approx([0.3, 0.3])
    assert score_fuse([[], []], 5) == [] and score_fuse([ranking("a")], 0) == []


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"method": "borda"}, "unknown fusion"),
        ({"lexical_weight": 1.5}, "between 0 and 1"),
        ({"rank_constant": 0}, "at least 1"),
    ],
)
def test_a_fusion_refuses_what_it_cannot_do(bad, message):
    with pytest.raises(ValueError, match=message):
        Fusion(**bad)


def test_a_fusion_round_trips_through_its_dict():
    f = Fusion("score", 0.3)
    assert Fusion.from_dict(f.as_dict()) == f and Fusion.from_dict(None) == DEFAULT_FUSION
    assert f.label() == "score w=0.30" and Fusion("rrf", 0.7, 10).label() == "rrf w=0.70 c=10"


def test_documents_rank_by_their_best_chunk_or_by_the_sum_of_their_chunks():
    hits = [hit("1", 5.0, 1, "x"), hit("2", 3.0, 2, "y"), hit("3", 2.5, 3, "y"), hit("4", 1.0, 4, "z")]
    assert document_ranking(hits, "max") == ["x", "y", "z"]
    assert document_ranking(hits, "sum") == ["y", "x", "z"]
    with pytest.raises(ValueError, match="unknown aggregation"):
        document_ranking(hits, "mean")


def _run(relevant: str, lexical: list[str], semantic: list[str]) -> Run:
    def to_hits(chunks):
        return [hit(c, 10.0 - n, n + 1, f"/d/{c}.txt") for n, c in enumerate(chunks)]

    return Run([f"{relevant}.txt"], to_hits(lexical), to_hits(semantic))


def test_tuning_leans_towards_the_list_that_finds_the_answers():
    # BM25 has every answer first; kNN has it fourth: plain RRF puts kNN's favourite first
    runs = [_run(f"q{i}", [f"q{i}", f"n{i}", f"m{i}"], [f"m{i}", f"n{i}", f"x{i}", f"q{i}"]) for i in range(6)]
    plain = score_runs(runs, "hybrid", 10, DEFAULT_FUSION)
    tuned = tune(runs, 10)
    assert tuned.modes["bm25"]["mrr"] == 1.0 and plain["mrr"] < 1.0
    assert tuned.scores["mrr"] == 1.0 and tuned.fusion.lexical_weight > 0.5
    assert len(tuned.tried) == len(candidates()) and tuned.queries == 6
    assert tuned.as_setting()["fusion"] == tuned.fusion.as_dict()


def test_with_nothing_to_choose_tuning_keeps_plain_rrf():
    runs = [_run(f"q{i}", [f"q{i}", "x"], [f"q{i}", "y"]) for i in range(3)]
    assert tune(runs, 10).fusion == DEFAULT_FUSION
    with pytest.raises(ValueError, match="at least one"):
        tune([], 10)


def test_holdout_reports_every_mode_and_the_tuned_fusion_on_unseen_queries():
    runs = [_run(f"q{i}", [f"q{i}", f"n{i}"], [f"n{i}", f"q{i}"]) for i in range(6)]
    report = holdout(runs, 10)
    assert set(report) == {"bm25", "knn", "hybrid", "tuned"}
    assert report["tuned"]["mrr"] == report["bm25"]["mrr"] == 1.0


CHUNKS = st.lists(st.sampled_from("abcdefgh"), min_size=0, max_size=6, unique=True)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcdefgh"), CHUNKS, CHUNKS), min_size=1, max_size=6))
def test_tuned_hybrid_is_never_below_the_best_single_mode_on_its_queries(queries):
    runs = [_run(answer, lexical, semantic) for answer, lexical, semantic in queries]
    tuned = tune(runs, 5)
    best_single = max(tuned.modes["bm25"]["mrr"], tuned.modes["knn"]["mrr"], tuned.modes["hybrid"]["mrr"])
    assert tuned.scores["mrr"] >= best_single - 1e-12


def test_a_tenants_fusion_is_stored_read_and_survives_a_bad_row(url):
    from pipeline.retrieve import FUSION_SETTING, tenant_fusion
    from pipeline.store.db import session_scope
    from pipeline.store.tenants import delete_setting, put_setting

    with session_scope(url) as s:
        assert tenant_fusion(s, "acme") == DEFAULT_FUSION
        put_setting(s, "acme", FUSION_SETTING, {"fusion": Fusion("score", 0.8).as_dict()})
    with session_scope(url) as s:
        assert tenant_fusion(s, "acme") == Fusion("score", 0.8)
        assert tenant_fusion(s, "other") == DEFAULT_FUSION  # per tenant
        put_setting(s, "acme", FUSION_SETTING, {"fusion": {"method": "borda"}})
    with session_scope(url) as s:
        assert tenant_fusion(s, "acme") == DEFAULT_FUSION
        assert delete_setting(s, "acme", FUSION_SETTING) and not delete_setting(s, "acme", FUSION_SETTING)
