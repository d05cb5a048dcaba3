"""`docpipe ask` and `docpipe eval-ask`: answers from the corpus that cite their passages, and their quality."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from cli.common import JSON, TENANT, fail, get_settings, new_table, out, progress_bar, session

WHERE = typer.Option(
    None, "--where", "-w", help="Only chunks whose metadata match KEY OP VALUE, e.g. source=report.pdf (repeatable)."
)


def _where(expressions: list[str] | None) -> list[dict] | None:
    from pipeline.index.filters import parse_where, to_clauses

    return to_clauses(parse_where(expressions)) if expressions else None


def _redis():
    import redis

    from pipeline.services import endpoints

    url = endpoints(get_settings()).redis_url
    return redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10) if url else None


def _setup(k: int):
    """(retrieve(question, tenant, filters), writer): the live index's clients and the configured generator."""
    from pipeline.answer import make_writer, retrieve
    from pipeline.embed import get_encoder
    from pipeline.encoders import split
    from pipeline.reindex import search_target
    from pipeline.retrieve import check_search, tenant_fusion
    from pipeline.services import elasticsearch_client
    from workers import client

    s = get_settings()
    check_search("hybrid", k, s.api.max_k)  # the API's bounds and message
    with session() as db:  # the live version and the encoder that embedded it (it may differ from settings)
        index, model_path, variant = search_target(db, s.index_prefix, s.encoder_path)
    es = elasticsearch_client(s)
    encoder = get_encoder(model_path, s.device, s.embed_batch_size, *split(variant))

    def find(question: str, tenant: str, filters: list[dict] | None):
        with session() as db:
            fusion = tenant_fusion(db, tenant)
        return retrieve(es, index, tenant, question, k, encoder, filters, fusion, s.server_rrf)

    writer = make_writer(
        s, encoder, model_path, submit=lambda payload: client.send(client.GENERATE_ANSWER, payload), redis=_redis()
    )
    return find, writer


def ask(
    question: str,
    tenant: str = TENANT,
    k: int = typer.Option(5, "--k", help="Passages to retrieve (1 to DOCPIPE_API_MAX_K); those that fit are cited."),
    where: list[str] = WHERE,
    as_json: bool = JSON,
) -> None:
    """Answer a question from the tenant's corpus, citing the passages it rests on.

    The generator is DOCPIPE_GENERATOR_URL (OpenAI-compatible), else DOCPIPE_GENERATOR_MODEL_PATH (a local model
    on the gpu queue), else none: the passages' best sentences answer.
    """
    from pipeline.answer import ask as answer_events
    from pipeline.answer import collect
    from pipeline.answer.ask import check_question

    question = check_question(question)
    filters = _where(where)
    find, writer = _setup(k)
    events = answer_events(question, find(question, tenant, filters), writer)
    if as_json:
        out.print_json(json.dumps(collect(question, events).as_dict()))
        return
    passages: list[dict] = []
    for event in events:
        if event["event"] == "passages":
            passages = event["passages"]
        elif event["event"] == "delta":
            # plain writes: the answer's [1] must not be read as markup, and each piece must show at once
            sys.stdout.write(event["text"])
            sys.stdout.flush()
        elif event["event"] == "done":
            sys.stdout.write("\n")
            _print_sources(event["citations"] or passages, cited=bool(event["citations"]))


def _print_sources(passages: list[dict], cited: bool) -> None:
    if not passages:
        return
    out.print("\nSources:" if cited else "\nPassages (none cited):", highlight=False)
    for p in passages:
        where = [p["source"] or p["doc_id"], f"chunk {p['ordinal']}"]
        if p.get("page"):
            where.append(f"p. {p['page']}")
        out.print(f"  \\[{p['number']}] " + " · ".join(where) + f"  ({p['chunk_id']})", highlight=False)


def eval_ask(
    qa_file: Path,
    tenant: str = TENANT,
    k: int = typer.Option(5, "--k", help="Passages retrieved per question."),
    where: list[str] = WHERE,
    as_json: bool = JSON,
) -> None:
    """Citation hit rate and answer token F1 over judged questions (JSON lines:
    {"question", "answer", "relevant": [sources or document ids]})."""
    from pipeline.answer.evaluate import load_qa, score_answer, summary

    try:
        judged = load_qa(qa_file)
    except (OSError, ValueError) as exc:
        fail(str(exc))
    filters = _where(where)
    find, writer = _setup(k)
    found = []
    with progress_bar(len(judged), "retrieving") as advance:
        for qa in judged:
            found.append(find(qa.question, tenant, filters))
            advance()
    from pipeline.answer.citations import cited

    # one call for all questions: a local model answers them in batches on the gpu worker
    answers = writer.answer_many([qa.question for qa in judged], found)
    per_question = [
        score_answer(qa, text, [p.citation() for p in cited(text, used)])
        for qa, (used, text) in zip(judged, answers, strict=True)
    ]
    report = {"k": k, "tenant": tenant, "generator": writer.name, **summary(per_question), "results": per_question}
    if as_json:
        out.print_json(json.dumps(report))
        return
    table = new_table("questions", "citation hit rate", "citation precision", "token F1", "exact match")
    table.title = f"tenant {tenant}, {k} passages per question, answers by {writer.name}"
    table.add_row(
        str(report["questions"]),
        f"{report['citation_hit_rate']:.3f}",
        f"{report['citation_precision']:.3f}",
        f"{report['f1']:.3f}",
        f"{report['exact_match']:.3f}",
    )
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command()(ask)
    app.command("eval-ask")(eval_ask)
