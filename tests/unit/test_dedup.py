import random
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.dedup import (
    Deduplicator,
    MemoryDedupStore,
    band_keys,
    content_hash,
    estimate_jaccard,
    lsh_params,
    s_curve,
    shingles,
)

VOCAB = [f"w{i}" for i in range(5000)]


def text_of(n_words: int, seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(VOCAB) for _ in range(n_words))


def change_words(text: str, positions: list[int]) -> str:
    words = text.split()
    for p in positions:
        words[p] = "edited"
    return " ".join(words)


@pytest.fixture
def dedup() -> Deduplicator:
    return Deduplicator(MemoryDedupStore())


def ingest(d: Deduplicator, tenant: str, doc_id: str, text: str):
    verdict = d.check(tenant, doc_id, text)
    d.register(tenant, doc_id, verdict)
    return verdict


def test_exact_copy_with_other_whitespace_and_case(dedup):
    original = "The Quick brown fox\n\njumps over   the lazy dog. " + text_of(50, 1)
    ingest(dedup, "t", "a", original)
    copy = "  the quick BROWN fox jumps\tover the lazy dog. " + text_of(50, 1).upper() + "\n"
    v = ingest(dedup, "t", "b", copy)
    assert (v.kind, v.duplicate_of, v.cluster_id, v.similarity) == ("exact", "a", "a", 1.0)


def test_punctuation_is_not_normalised_away_for_the_hash():
    assert content_hash("costs 1.5 euro") != content_hash("costs 15 euro")
    assert content_hash(" A\tb ") == content_hash("a b")


def test_near_copy_with_two_words_changed(dedup):
    original = text_of(300, 2)
    ingest(dedup, "t", "orig", original)
    v = ingest(dedup, "t", "copy", change_words(original, [40, 200]))
    assert v.kind == "near"
    assert v.duplicate_of == "orig" and v.cluster_id == "orig"
    assert v.similarity >= 0.8


def test_near_copy_joins_the_canonical_cluster_not_the_duplicate(dedup):
    original = text_of(300, 3)
    ingest(dedup, "t", "orig", original)
    ingest(dedup, "t", "copy1", change_words(original, [10]))
    v = ingest(dedup, "t", "copy2", change_words(original, [250]))
    assert v.duplicate_of == "orig" and v.cluster_id == "orig"


def test_unrelated_text_is_unique(dedup):
    ingest(dedup, "t", "a", text_of(300, 4))
    v = ingest(dedup, "t", "b", text_of(300, 5))
    assert v.kind is None and v.duplicate_of is None and v.cluster_id == "b"


def test_tenants_are_isolated(dedup):
    text = text_of(100, 6)
    ingest(dedup, "t1", "a", text)
    v = ingest(dedup, "t2", "b", text)
    assert v.duplicate_of is None


def test_persistent_store_catches_near_copy_in_a_later_job():
    store = MemoryDedupStore()
    original = text_of(300, 7)
    first_job = Deduplicator(store)
    list(first_job.run("t", [("orig", original), ("other", text_of(300, 8))]))
    later_job = Deduplicator(store)
    [(doc_id, v)] = list(later_job.run("t", [("late", change_words(original, [5, 150]))]))
    assert doc_id == "late" and v.kind == "near" and v.duplicate_of == "orig"


def test_run_catches_duplicates_within_one_batch(dedup):
    base = text_of(300, 9)
    items = [("a", base), ("b", text_of(300, 10)), ("c", base.upper()), ("d", change_words(base, [99]))]
    verdicts = dict(dedup.run("t", items))
    assert verdicts["c"].kind == "exact" and verdicts["c"].duplicate_of == "a"
    assert verdicts["d"].kind == "near" and verdicts["d"].duplicate_of == "a"
    assert verdicts["a"].duplicate_of is None and verdicts["b"].duplicate_of is None


def test_document_never_matches_its_own_earlier_entry(dedup):
    text = text_of(300, 11)
    ingest(dedup, "t", "a", text)
    assert ingest(dedup, "t", "a", text).duplicate_of is None
    # An edited re-ingest must not be flagged as a near copy of its old version either.
    v = ingest(dedup, "t", "a", change_words(text, [3, 30]))
    assert v.duplicate_of is None and v.cluster_id == "a"


def test_reingested_doc_replaces_its_old_buckets(dedup):
    old, new = text_of(300, 12), text_of(300, 13)
    ingest(dedup, "t", "a", old)
    ingest(dedup, "t", "a", new)
    assert ingest(dedup, "t", "b", old).duplicate_of is None
    assert ingest(dedup, "t", "c", new).duplicate_of == "a"


def test_lsh_params_for_default_settings():
    b, r = lsh_params(0.8, 128)
    assert b * r <= 128
    assert s_curve(0.8, b, r) >= 0.5
    assert s_curve(0.5, b, r) < 0.1


def test_band_keys_one_per_band_and_stable():
    sig = list(range(128))
    keys = band_keys(sig, 10, 12)
    assert [band for band, _ in keys] == list(range(10))
    assert keys == band_keys(list(sig), 10, 12)
    with pytest.raises(ValueError):
        band_keys(sig[:100], 10, 12)


def test_shingles():
    assert shingles("One two, THREE four", 2) == ["one two", "two three", "three four"]
    assert shingles("Just three words", 5) == ["just three words"]


def test_estimate_jaccard():
    assert estimate_jaccard([1, 2, 3, 4], [1, 2, 0, 0]) == 0.5
    with pytest.raises(ValueError):
        estimate_jaccard([1], [1, 2])


def test_signature_is_deterministic_across_instances_and_processes():
    text = text_of(200, 14)
    a = Deduplicator(MemoryDedupStore()).signature(text)
    b = Deduplicator(MemoryDedupStore()).signature(text)
    assert a == b and len(a) == 128
    code = (
        "from pipeline.dedup import Deduplicator, MemoryDedupStore;"
        f"print(Deduplicator(MemoryDedupStore()).signature({text!r}))"
    )
    for hash_seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": hash_seed},
            cwd=Path(__file__).parents[2],
        )
        assert out.stdout.strip() == str(a)


def test_doc_that_becomes_a_duplicate_stops_being_a_match_target(dedup):
    x, y = text_of(300, 15), text_of(300, 16)
    ingest(dedup, "t", "a", x)
    ingest(dedup, "t", "b", y)
    assert ingest(dedup, "t", "b", x).duplicate_of == "a"
    assert ingest(dedup, "t", "c", y).duplicate_of is None


def unspaced_text(n_chars: int, seed: int, first: int, last: int) -> str:
    """Text of a script written without spaces: characters of [first, last], a full stop every 20 or so."""
    rng = random.Random(seed)
    chars = [chr(rng.randint(first, last)) for _ in range(n_chars)]
    return "".join(c + ("。" if i % 20 == 19 else "") for i, c in enumerate(chars))


@pytest.mark.parametrize(
    "script, first, last",
    [("chinese", 0x4E00, 0x9FA5), ("japanese kana", 0x3041, 0x30F6), ("thai", 0x0E01, 0x0E2E)],
)
def test_near_copies_are_found_in_scripts_written_without_spaces(dedup, script, first, last):
    """Each character is a token there: as words, a Chinese article was a few clauses, and a copy with one figure
    changed shared no shingle with its original."""
    original = unspaced_text(400, 11, first, last)
    ingest(dedup, "t", "orig", original)
    edited = original[:100] + "一万亿元" + original[104:300] + "八千" + original[302:]
    v = ingest(dedup, "t", "copy", edited)
    assert (v.kind, v.duplicate_of) == ("near", "orig"), script
    other = ingest(dedup, "t", "other", unspaced_text(400, 12, first, last))
    assert other.duplicate_of is None
    mixed = shingles("GDP 增长 5%", 2)  # a word of a spaced script stays one token beside them
    assert mixed == ["gdp 增", "增 长", "长 5"]
