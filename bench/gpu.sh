#!/usr/bin/env bash
# The GPU figures for the inference engine in one go (a lent GPU machine is held by the minute):
#   bash bench/gpu.sh MODEL_FOLDER OUT_DIR
# MODEL_FOLDER is a Hugging Face sequence-classification folder (weights may be stored in half precision
# to travel light; both sides load an fp32 copy, as the naive baseline's defaults expect). Each run
# appends one JSON line to OUT_DIR/infer.jsonl; the log goes to OUT_DIR/gpu.log.
set -u -o pipefail
model=${1:?model folder}
out=${2:?output folder}
mkdir -p "$out"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
log="$out/gpu.log"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$log"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$log"
fp32=$(mktemp -d)
python3 - "$model" "$fp32" <<'PY' 2>>"$log"
import sys, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
src, dst = sys.argv[1], sys.argv[2]
AutoModelForSequenceClassification.from_pretrained(src, dtype=torch.float32).save_pretrained(dst)
AutoTokenizer.from_pretrained(src).save_pretrained(dst)
PY
run() {  # one bench run; a failure is logged and the rest go on
  echo "== $*" | tee -a "$log"
  timeout 240 python3 bench/infer.py --model "$fp32" --device cuda --json "$@" 2>>"$log" \
    | tee -a "$out/infer.jsonl" || echo "failed: $*" | tee -a "$log"
}
# against the naive pipeline, the same texts, the same run; the engine on its defaults for the device
run --texts titles --n 4000 --rounds 2
run --texts paragraphs --n 4000 --rounds 2
run --texts articles --n 2000 --rounds 2
# utilisation on a long stream: the engine alone
run --texts paragraphs --n 100000 --rounds 2 --engine-only
run --texts articles --n 20000 --rounds 2 --engine-only
run --texts articles --n 20000 --rounds 2 --engine-only --compile --budget 262144
# where the forward pass spends its time: the CUDA kernels of one 131,072-token batch of articles
timeout 120 python3 - "$fp32" <<'PY' 2>>"$log" | tee "$out/kernels.txt"
import sys, torch
sys.path.insert(0, ".")
from bench.infer import texts_for
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from pipeline.infer.engine import collate, for_inference, to_device
from pipeline.infer.inputs import text_requests
dev = torch.device("cuda")
tok = AutoTokenizer.from_pretrained(sys.argv[1])
model = for_inference(AutoModelForSequenceClassification.from_pretrained(sys.argv[1]), dev)
reqs = text_requests(tok, texts_for("articles", 512), 256)
batch = to_device(collate(reqs, range(512), tok.pad_token_id), dev)
with torch.inference_mode():  # the model is bf16 already, as the engine runs it
    for _ in range(3):
        model(**batch)
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            model(**batch)
        torch.cuda.synchronize()
print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=70))
PY
