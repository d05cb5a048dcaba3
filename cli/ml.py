"""`docpipe train | classify | models ...`: the ml feature's commands; pipeline/cli.py calls register(app)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cli.choices import Augment
from cli.common import JSON, TENANT, JobView, fail, get_settings, job_record, new_table, out, session, submit_job

models_app = typer.Typer(help="Trained models: list, show, promote, roll back.", no_args_is_help=True)
TASK = typer.Option("default", "--task", help="What the model predicts (e.g. topic, sentiment).")
WAIT = typer.Option(False, "--wait", help="Show progress until the job ends.")


def model_record(m) -> dict:
    return {
        "id": m.id,
        "tenant": m.tenant,
        "task": m.task,
        "status": m.status,
        "live": m.live,
        "augment": m.augment,
        "neighbours": m.neighbours,
        "labels": m.labels,
        "base_model": m.base_model,
        "data_hash": m.data_hash,
        "index_version": m.index_version,
        "metrics": m.metrics,
        "params": m.params,
        "artefact_path": m.artefact_path,
        "error": m.error,
        "job_id": m.job_id,
        "created_at": m.created_at.isoformat() if m.created_at else None,
    }


def _record(db, job) -> dict:
    from pipeline.store import model_registry

    rec = job_record(job)
    rec["options"] = job.options
    model = model_registry.model_for_job(db, job.id)
    if model is not None:
        rec["model"] = model_record(model)
    return rec


def _progress(rec: dict) -> tuple[int | None, int, str]:
    p = (rec["metrics"] or {}).get("progress", {})
    total, done, status = rec["counters"]["total"], rec["counters"]["done"], rec["state"]
    if rec["kind"] == "train" and p:
        status = f"{rec['state']} · {p.get('run')} · {p.get('phase')}"
        if "loss" in p:
            status += f" · loss {p['loss']}"
        if p.get("eval"):
            ev = p["eval"]
            status += f" · eval entity F1 {ev['f1']}" if "f1" in ev else f" · eval macro-F1 {ev.get('macro_f1')}"
        total, done = p.get("total_steps") or p.get("examples"), p.get("step") or p.get("examples_done", 0)
    return total or None, done or 0, status


def _summary(rec: dict) -> None:
    out.print(f"{rec['kind']} job {rec['id']} {rec['state']}")
    result = (rec.get("metrics") or {}).get("result")
    if result:
        out.print(f"  model {result['model_id']} (promote it: docpipe models promote {result['model_id'][:8]})")
        for name in ("retrieval", "baseline"):
            if name in result:
                m = result[name]
                if "f1" in m:  # token-level: entity-level scores
                    out.print(
                        f"  {name:<9} {m['augment']:<6} precision {m['precision']:.4f}  recall {m['recall']:.4f}  "
                        f"F1 {m['f1']:.4f}"
                    )
                    continue
                out.print(f"  {name:<9} {m['augment']:<6} accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}")
    run = (rec.get("metrics") or {}).get("classify")
    if run:
        out.print(
            f"  {rec['counters']['done']} documents labelled ({run['chunks']} chunks, "
            f"padding waste {run['padding_waste']:.1%})"
        )
    run = (rec.get("metrics") or {}).get("extract")
    if run:
        out.print(f"  {rec['counters']['done']} documents tagged ({run['chunks']} chunks, {run['entities']} entities)")
    if rec.get("error"):
        out.print(f"  {rec['error']}")


ML_JOB = JobView(record=_record, progress=_progress, summary=_summary, named=True)


def train(
    data: Path = typer.Argument(..., help="CSV, JSON lines or parquet file; with --task ner CoNLL or JSON lines."),
    text_col: str = typer.Option(None, "--text-col", help="Required except with --task ner."),
    label_col: str = typer.Option(None, "--label-col", help="Required except with --task ner."),
    id_col: str = typer.Option(None, "--id-col", help="Links an example to its own document (source)."),
    time_col: str = typer.Option(None, "--time-col", help="Time-ordered split; no neighbours from later."),
    augment: Augment = typer.Option(Augment.NONE, "--augment", help="How retrieved neighbours join the input."),
    neighbours: int = typer.Option(None, "--neighbours", help="Passages per example."),
    epochs: float = typer.Option(None, "--epochs", help="May be fractional, e.g. 0.5."),
    tenant: str = TENANT,
    task: str = TASK,
    compare: bool = typer.Option(False, "--compare", help="Also train the none baseline on the same split."),
    base_model: str = typer.Option(None, "--base-model", help="Hugging Face model folder."),
    max_length: int = typer.Option(None, "--max-length"),
    batch_size: int = typer.Option(None, "--batch-size"),
    lr: float = typer.Option(None, "--lr"),
    seed: int = typer.Option(None, "--seed"),
    eval_fraction: float = typer.Option(None, "--eval-fraction"),
    checkpoint_steps: int = typer.Option(None, "--checkpoint-steps"),
    stride: int = typer.Option(32, "--stride", help="--task ner: sub-tokens shared by windows of a long sentence."),
    wait: bool = WAIT,
    as_json: bool = JSON,
) -> None:
    """Fine-tune a classifier (or, with --task ner, a token tagger) on DATA: a job on the gpu queue, optionally
    reading retrieved neighbours."""
    from pipeline.train.data import DataError
    from pipeline.train.ner_job import NER_TASK, job_for, request_for
    from workers import client

    s = get_settings()
    if not data.is_file():
        fail(f"no such data file: {data}")
    if task != NER_TASK and not (text_col and label_col):
        fail("--text-col and --label-col are required (except with --task ner, whose file format names them)")
    picked = {
        "neighbours": neighbours,
        "epochs": epochs,
        "max_length": max_length,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "eval_fraction": eval_fraction,
        "checkpoint_steps": checkpoint_steps,
    }
    options = {
        "data": str(data.resolve()),
        "text_col": text_col,
        "label_col": label_col,
        "id_col": id_col,
        "time_col": time_col,
        "augment": augment.value,
        "task": task,
        "compare": compare,
        "base_model": str(Path(base_model).resolve()) if base_model else None,
        "grad_accum": s.train.grad_accum,
        "patience": s.train.patience,
        **{k: getattr(s.train, k) if v is None else v for k, v in picked.items()},
    }
    if task == NER_TASK:
        options = {k: v for k, v in options.items() if k not in ("text_col", "label_col")} | {"stride": stride}
    try:  # everything checkable without a model is checked here, before anything is queued
        request = request_for(options)
        job_for(request, tenant, Path("."), request.base_model or "").load()
    except DataError as exc:
        fail(str(exc))
    submit_job(tenant, [options["data"]], wait, as_json, kind="train", options=options, task=client.TRAIN, view=ML_JOB)


def classify(
    tenant: str = TENANT,
    task: str = TASK,
    job: str = typer.Option(None, "--job", help="Only the documents of this (ingest) job."),
    query: str = typer.Option(None, "--query", help="Only the documents this query finds."),
    k: int = typer.Option(100, "--k", min=1, max=10_000, help="With --query: how many hits to classify."),
    wait: bool = WAIT,
    as_json: bool = JSON,
) -> None:
    """Label a tenant's documents with the live model of TASK, in Elasticsearch and SQL."""
    from pipeline.store import model_registry, repo
    from workers import client

    if task == "ner":
        fail("task ner tags tokens: run `docpipe extract` to apply the live NER model")
    if job and query:
        fail("give --job or --query, not both")
    with session() as db:
        if model_registry.live_model(db, tenant, task) is None:
            fail(
                f"no live model for task {task!r} of tenant {tenant}: train one with `docpipe train` and "
                "promote it with `docpipe models promote ID`"
            )
        source = repo.get_job(db, job) if job else None
        if job and source is None:
            fail(f"no job {job} (see `docpipe jobs`)")
        source_id = source.id if source else None
    options = {"task": task, "source_job": source_id, "query": query, "k": k}
    submit_job(tenant, [], wait, as_json, kind="classify", options=options, task=client.CLASSIFY, view=ML_JOB)


def extract(
    tenant: str = TENANT,
    job: str = typer.Option(None, "--job", help="Only the documents of this (ingest) job."),
    wait: bool = WAIT,
    as_json: bool = JSON,
) -> None:
    """Tag a tenant's documents with the live NER model: entities into SQL and onto the chunks' entity fields."""
    from pipeline.infer.ner_inputs import NER_TASK
    from pipeline.store import model_registry, repo
    from workers import client

    with session() as db:
        source = repo.get_job(db, job) if job else None
        if job and source is None:
            fail(f"no job {job} (see `docpipe jobs`)")
        tenant = source.tenant if source is not None else tenant  # a job's documents are its tenant's
        if model_registry.live_model(db, tenant, NER_TASK) is None:
            fail(
                f"no live NER model for tenant {tenant}: train one with `docpipe train --task ner DATA` and "
                "promote it with `docpipe models promote ID`"
            )
    options = {"task": NER_TASK, "source_job": source.id if source else None}
    submit_job(tenant, [], wait, as_json, kind="extract", options=options, task=client.EXTRACT, view=ML_JOB)


@models_app.command("list")
def models_list(
    tenant: str = typer.Option(None, "--tenant", "-t"), task: str = typer.Option(None, "--task"), as_json: bool = JSON
) -> None:
    """Models, newest first."""
    from pipeline.store import model_registry

    with session() as db:
        recs = [model_record(m) for m in model_registry.list_models(db, tenant, task)]
    if as_json:
        out.print_json(json.dumps(recs))
        return
    table = new_table(
        "id", "tenant", "task", "augment", "status", "live", "accuracy", "macro-F1", "baseline F1", "created"
    )
    for r in recs:
        main = r["metrics"].get("retrieval") or r["metrics"].get("baseline") or {}
        base = r["metrics"].get("baseline", {}) if "retrieval" in r["metrics"] else {}
        table.add_row(
            r["id"][:8],
            r["tenant"],
            r["task"],
            r["augment"],
            r["status"],
            "yes" if r["live"] else "",
            str(main.get("accuracy", "")),
            str(main.get("macro_f1", "")),
            str(base.get("macro_f1", "")),
            (r["created_at"] or "")[:19],
        )
    out.print(table)


@models_app.command("show")
def models_show(model_id: str, as_json: bool = JSON) -> None:
    """One model: labels, data hash, index version, metrics with and without retrieval, folder."""
    from pipeline.store import model_registry

    with session() as db:
        m = model_registry.get_model(db, model_id) or fail(f"no model {model_id} (see `docpipe models list`)")
        rec = model_record(m)
    if as_json:
        out.print_json(json.dumps(rec))
        return
    for key in (
        "id",
        "tenant",
        "task",
        "status",
        "live",
        "augment",
        "neighbours",
        "labels",
        "base_model",
        "data_hash",
        "index_version",
        "artefact_path",
        "job_id",
        "created_at",
        "error",
    ):
        out.print(f"{key:<14} {rec[key]}")
    out.print_json(json.dumps(rec["metrics"]))


@models_app.command("promote")
def models_promote(model_id: str, as_json: bool = JSON) -> None:
    """Make a ready model the live one of its task; jobs already running keep the model they started with."""
    from pipeline.infer.artefact import unusable
    from pipeline.store import model_registry

    with session() as db:
        m = model_registry.get_model(db, model_id) or fail(f"no model {model_id} (see `docpipe models list`)")
        if m.status != "ready":
            fail(f"model {m.id} is {m.status}; only a ready model can be promoted", 1)
        problem = unusable(m.artefact_path)
        if problem:
            fail(f"model {m.id} cannot be promoted: {problem}; the live model stays live", 1)
        model_registry.promote(db, m)
        rec = model_record(m)
    if as_json:
        out.print_json(json.dumps(rec))
    else:
        out.print(f"model {rec['id']} is now live for task {rec['task']} of tenant {rec['tenant']}")


@models_app.command("rollback")
def models_rollback(tenant: str = TENANT, task: str = TASK, as_json: bool = JSON) -> None:
    """Make the model that was live before the current one live again."""
    from pipeline.infer.artefact import unusable
    from pipeline.store import model_registry

    with session() as db:
        m = model_registry.rollback(db, tenant, task, usable=lambda cand: unusable(cand.artefact_path) is None)
        if m is None:
            fail(f"no earlier usable model of task {task!r} for tenant {tenant} to roll back to", 1)
        rec = model_record(m)
    if as_json:
        out.print_json(json.dumps(rec))
    else:
        out.print(f"rolled back: model {rec['id']} is live again for task {task} of tenant {tenant}")


def register(app: typer.Typer) -> None:
    """Add this feature's commands (and sub-apps) to the docpipe CLI."""
    app.command()(train)
    app.command()(classify)
    app.command()(extract)
    app.add_typer(models_app, name="models")
