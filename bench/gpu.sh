#!/usr/bin/env bash
# The GPU figures of the inference engine and of ingest's stages, in one go (a lent GPU machine is held by the
# minute; this fits a 10-minute window):
#
#   bash bench/gpu.sh prepare          # on the development machine (the .venv active): the payload that travels
#   bash bench/gpu.sh run [--small]    # on the GPU machine, from the repository root; --small: a quick CPU check
#
# prepare writes bench/out/gpu/ (git-ignored, about 13 MB): the BBC set as corpus.jsonl.gz, the encoder folder
# without its weights (config and tokenizer: the benchmarks build random weights, the same FLOPs; add --weights
# for the real ones in fp16, +45 MB) and the wheels of the few packages a bare GPU image lacks (pydantic-settings
# for the settings, sentencex for the chunker, elasticsearch and noida-db for the bulk stage). Hand that folder
# to the machine with the tree (the device tool: carry ["bench/out/gpu"]).
#
# run appends one JSON line per benchmark to $OUT (else bench/out/gpu/results): engine-<device>.jsonl from
# bench/engine.py (old path vs new path, texts/s, tokens/s, share of the bf16 peak, per-stage seconds) for
# paragraphs, articles and titles, and ingest-gpu.jsonl from bench/ingest_gpu.py (chunk, ids, embed, index
# chunks/s), then kernels.txt (the CUDA kernels of one 131,072-token batch); the log goes to gpu.log beside
# them; a summary is printed at the end.
set -u -o pipefail
cd "$(dirname "$0")/.."
payload=bench/out/gpu
mode=${1:-run}

if [ "$mode" = prepare ]; then
  mkdir -p "$payload/model" "$payload/whl"
  python - "$payload" "${2:-}" <<'PY'
import gzip, json, shutil, sys
from pathlib import Path
sys.path.insert(0, ".")
from bench.bbc import bbc_articles
from pipeline.config import default_encoder_path
out, weights = Path(sys.argv[1]), sys.argv[2] == "--weights"
with gzip.open(out / "corpus.jsonl.gz", "wt", encoding="utf-8") as fh:
    for a in bbc_articles():
        fh.write(json.dumps({"title": a["title"], "text": a["text"]}) + "\n")
src = Path(default_encoder_path())
for p in src.rglob("*"):
    if p.is_file() and p.suffix not in (".safetensors", ".bin", ".onnx") and p.name != "README.md":
        (out / "model" / p.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, out / "model" / p.relative_to(src))
if weights:
    import torch
    from transformers import AutoModel
    AutoModel.from_pretrained(src, dtype=torch.float16).save_pretrained(out / "model")
print("payload:", out)
PY
  python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$payload/whl" pydantic==2.14.4 pydantic-core==2.50.5 pydantic-settings==2.16.3 python-dotenv \
    typing-inspection annotated-types sentencex==1.0.32 elasticsearch==8.19.3 elastic-transport==8.19.0 \
    noida-db==0.2.3
  du -sh "$payload"
  exit 0
fi

small=${2:-}
out=${OUT:-$payload/results}
mkdir -p "$out"
log="$out/gpu.log"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
py=python3
if [ -d "$payload/whl" ] && ! $py -c "import pydantic_settings, sentencex, elasticsearch, noida_db" 2>/dev/null; then
  $py -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/docpipe-site \
    "$payload"/whl/*.whl >>"$log" 2>&1 && export PYTHONPATH=/tmp/docpipe-site${PYTHONPATH:+:$PYTHONPATH}
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee -a "$log"
$py -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" \
  | tee -a "$log"
common=(--corpus "$payload/corpus.jsonl.gz" --model "$payload/model")
[ -f "$payload/model/model.safetensors" ] || common+=(--random-weights)
if [ -n "$small" ]; then  # a quick check of the script on any machine, CPU included
  sizes=("paragraphs 100 1" "titles 200 1")
  ingest_n=40
else
  sizes=("paragraphs 50000 2" "articles 20000 2" "titles 20000 2")
  ingest_n=2225
fi
for size in "${sizes[@]}"; do
  read -r kind n rounds <<<"$size"
  echo "== engine $kind n=$n" | tee -a "$log"
  timeout 150 $py bench/engine.py --texts "$kind" --n "$n" --rounds "$rounds" --graphs "${common[@]}" \
    --out "$out" 2>>"$log" | tee -a "$log" || echo "failed: engine $kind" | tee -a "$log"
done
echo "== ingest stages n=$ingest_n" | tee -a "$log"
timeout 150 $py bench/ingest_gpu.py --n "$ingest_n" "${common[@]}" --out "$out/ingest-gpu.jsonl" 2>>"$log" \
  | tee -a "$log" || echo "failed: ingest stages" | tee -a "$log"
if [ -z "$small" ]; then  # where the forward pass spends its time: the kernels of one 131,072-token batch
  timeout 90 $py - "$payload" <<'PY' 2>>"$log" | tee "$out/kernels.txt" >/dev/null || echo "failed: kernels" | tee -a "$log"
import sys, torch
sys.path.insert(0, ".")
from transformers import AutoConfig, AutoModel, AutoTokenizer
from bench.engine import corpus, texts_for
from pipeline.infer.engine import collate, for_inference, to_device
from pipeline.infer.inputs import text_requests
dev, folder = torch.device("cuda"), sys.argv[1] + "/model"
tok = AutoTokenizer.from_pretrained(folder)
model = for_inference(AutoModel.from_config(AutoConfig.from_pretrained(folder)), dev)
reqs = text_requests(tok, texts_for(corpus(sys.argv[1] + "/corpus.jsonl.gz"), "articles", 512), 256)
batch = to_device(collate(reqs, range(512), tok.pad_token_id), dev)
with torch.inference_mode():
    for _ in range(3):
        model(**batch)
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            model(**batch)
        torch.cuda.synchronize()
print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=70))
PY
fi
$py - "$out" <<'PY'
import json, sys
from pathlib import Path
print("\n== summary")
rate = lambda x: f"{x / 1e6:6.2f} M tok/s" if x >= 1e5 else f"{x / 1e3:6.2f} k tok/s"
for path in sorted(Path(sys.argv[1]).glob("*.jsonl")):
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if r.get("bench") == "engine":
            new = r["new"]
            best = max((k for k in ("new", "new_ids", "graphs", "graphs_ids") if k in r), key=lambda k: r[k]["tokens_per_s"])
            share = lambda k: f" ({r[k]['peak_share']:.1%} of peak)" if "peak_share" in r[k] else ""
            print(f"{r['texts']:<10} old {rate(r['old']['tokens_per_s'])}{share('old')} | new {rate(new['tokens_per_s'])}"
                  f"{share('new')} x{new['speedup_vs_old']} | best: {best} {rate(r[best]['tokens_per_s'])}{share(best)}"
                  f" x{r[best]['speedup_vs_old']} | new path bound by {new['stages'].get('bound')}")
        elif r.get("bench") == "ingest_gpu":
            print(f"ingest     {r['chunks']} chunks, chunks/s: " + ", ".join(f"{k} {v:.0f}" for k, v in r["chunks_per_s"].items())
                  + f" | gpu queue bound by {r['gpu_queue_bound_by']} ({r['index_target']})")
PY
