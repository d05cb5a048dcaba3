import math

import pytest

from pipeline.evaluate import load_queries, matches, mean_scores, score_query


def test_tail_match_needs_a_path_boundary():
    assert matches("/data/news/apple.txt", "apple.txt")
    assert matches("/data/news/apple.txt", "news/apple.txt")
    assert not matches("/data/news/pineapple.txt", "apple.txt")
    assert matches("https://x.test/a", "https://x.test/a")


def test_document_level_scores_count_a_documents_best_chunk_once():
    # chunks of b.txt rank 1 and 2: b is the first document, a.txt the second
    sources = ["/d/b.txt", "/d/b.txt", "/d/a.txt", "/d/c.txt"]
    s = score_query(sources, ["a.txt"], k=10)
    assert s["mrr"] == pytest.approx(0.5)
    assert s["ndcg"] == pytest.approx(1 / math.log2(3))
    assert s["recall"] == 1.0
    assert score_query(sources, ["c.txt", "z.txt"], k=2) == {"mrr": 0.0, "ndcg": 0.0, "recall": 0.0}


def test_mean_and_loading(tmp_path):
    f = tmp_path / "q.jsonl"
    f.write_text('{"query": "x", "relevant": ["a.txt"]}\n\n{"query": "y", "relevant": ["b"]}\n')
    qs = load_queries(f)
    assert [q.query for q in qs] == ["x", "y"]
    assert mean_scores([{"mrr": 1, "ndcg": 1, "recall": 1}, {"mrr": 0, "ndcg": 0.5, "recall": 0}]) == {
        "mrr": 0.5,
        "ndcg": 0.75,
        "recall": 0.5,
    }
    f.write_text('{"q": 1}\n')
    with pytest.raises(ValueError, match="q.jsonl:1"):
        load_queries(f)
