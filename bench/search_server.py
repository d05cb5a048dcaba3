"""How the embedded search server's own time grows with the corpus: p50/p99 of bm25, knn and hybrid (both lists,
as docpipe's hybrid fetches them) at several index sizes, measured on noida-db with docpipe's own mapping.

Chunks are BBC sentences joined into ~180-word passages with random unit vectors (the server's kNN is exact, so
its cost does not depend on what the vectors mean; no encoder runs, so 50k chunks take seconds to index).

    python bench/search_server.py [--sizes 1000,10000,50000] [--queries 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from elasticsearch import Elasticsearch  # noqa: E402
from elasticsearch.helpers import bulk  # noqa: E402

from bench.bbc import bbc_articles  # noqa: E402
from cli.localstack.processes import start_noida  # noqa: E402
from pipeline.index import mapping  # noqa: E402
from pipeline.index import search as es_search  # noqa: E402

DIMS = 384
TENANT = "bench"


def passages(n: int, rng: random.Random) -> list[str]:
    words = " ".join(a["text"] for a in bbc_articles()[:600]).split()
    return [" ".join(words[i : i + 180]) for i in (rng.randrange(0, len(words) - 180) for _ in range(n))]


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIMS)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def grow(es: Elasticsearch, index: str, texts: list[str], vectors: np.ndarray, start: int) -> None:
    actions = (
        {
            "_index": index,
            "_id": f"c{start + i}",
            "_source": {
                "tenant": TENANT,
                "doc_id": f"d{(start + i) // 4}",
                "chunk_id": f"c{start + i}",
                "ordinal": (start + i) % 4,
                "source": f"bbc/{(start + i) // 4}",
                "text": text,
                "embedding": vec.tolist(),
            },
        }
        for i, (text, vec) in enumerate(zip(texts, vectors))
    )
    bulk(es, actions, chunk_size=1000, refresh=True)


def timed(call, *args) -> float:
    t0 = time.perf_counter()
    call(*args)
    return (time.perf_counter() - t0) * 1000


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,50000")
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    rng, nrng = random.Random(0), np.random.default_rng(0)
    texts = passages(sizes[-1], rng)
    vectors = unit(nrng, sizes[-1])
    queries = [" ".join(t.split()[5:9]) for t in rng.sample(texts, args.queries)]
    qvecs = unit(nrng, args.queries)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        server = start_noida(Path(tmp))
        try:
            es = Elasticsearch(server.elasticsearch_url, request_timeout=120)
            es.indices.create(index="bench-chunks", mappings=mapping(DIMS))
            have = 0
            for size in sizes:
                grow(es, "bench-chunks", texts[have:size], vectors[have:size], have)
                have = size
                times: dict[str, list[float]] = {"bm25": [], "knn": [], "hybrid": []}
                for q, v in zip(queries, qvecs):
                    times["bm25"].append(timed(es_search.bm25, es, "bench-chunks", TENANT, q, 10))
                    times["knn"].append(timed(es_search.knn, es, "bench-chunks", TENANT, v, 10))
                    times["hybrid"].append(timed(es_search.hybrid, es, "bench-chunks", TENANT, q, v, 10))
                row = {
                    "chunks": size,
                    **{f"{m}_p50_ms": pct(t, 0.5) for m, t in times.items()},
                    **{f"{m}_p99_ms": pct(t, 0.99) for m, t in times.items()},
                    "hybrid_mean_ms": round(statistics.mean(times["hybrid"]), 1),
                }
                rows.append(row)
                if not args.json:
                    print(
                        f"{size:>7} chunks  bm25 p50 {row['bm25_p50_ms']:>8} ms  knn p50 {row['knn_p50_ms']:>8} ms  "
                        f"hybrid p50 {row['hybrid_p50_ms']:>8} ms"
                    )
        finally:
            server.stop()
    result = {
        "bench": "search_server",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load": list(os.getloadavg()),
        "queries": args.queries,
        "rows": rows,
    }
    out = Path(__file__).parent / "results" / "search_server.jsonl"
    with out.open("a") as fh:
        fh.write(json.dumps(result) + "\n")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
