"""The classifier every augmentation shares: encoder → mean-pooled text → [fusion] → dropout → linear head.

`none` and `concat` differ only in their input; `fusion` adds one module that lets the text's
representation attend over its neighbours' embeddings behind a learned gate. With the same text path
in all three, a comparison between them measures the neighbours, not a change of head or pooling.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from pipeline.infer.engine import mean_pool


class NeighbourFusion(nn.Module):
    def __init__(self, neighbour_dims: int, hidden: int):
        super().__init__()
        self.project = nn.Linear(neighbour_dims, hidden)  # index vectors may come from another model
        self.query = nn.Linear(hidden, hidden)
        self.gate = nn.Linear(2 * hidden, hidden)
        # starts mostly closed: early steps learn from the text, context is let in as it proves useful
        nn.init.constant_(self.gate.bias, -2.0)
        self.scale = 1.0 / math.sqrt(hidden)

    def forward(self, text, neighbours=None, neighbour_mask=None):
        context = torch.zeros_like(text)
        if neighbours is not None and neighbours.shape[1] > 0:
            keys = self.project(neighbours.to(text.dtype))  # (batch, k, hidden)
            scores = torch.einsum("bh,bkh->bk", self.query(text), keys) * self.scale
            mask = neighbour_mask.bool() if neighbour_mask is not None else torch.ones_like(scores, dtype=torch.bool)
            scores = scores.masked_fill(~mask, -1e4)  # fits fp16 too
            weights = torch.softmax(scores, dim=-1) * mask.to(scores.dtype)  # all-missing rows → zero context
            context = torch.einsum("bk,bkh->bh", weights.to(keys.dtype), keys)
        gate = torch.sigmoid(self.gate(torch.cat([text, context.to(text.dtype)], dim=-1)))
        return text + gate * context


class Classifier(nn.Module):
    def __init__(self, encoder: nn.Module, num_labels: int, neighbour_dims: int | None = None, dropout: float = 0.1):
        super().__init__()
        config: Any = encoder.config  # a Hugging Face model's config, which torch's Module typing cannot know
        hidden = config.hidden_size
        self.encoder = encoder
        self.fusion = NeighbourFusion(neighbour_dims, hidden) if neighbour_dims else None
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_labels)

    def forward(self, input_ids, attention_mask, token_type_ids=None, neighbours=None, neighbour_mask=None):
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}  # None: no row is padded
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        text = mean_pool(self.encoder(**kwargs).last_hidden_state, attention_mask).to(self.head.weight.dtype)
        if self.fusion is not None:
            text = self.fusion(text, neighbours, neighbour_mask)
        return self.head(self.dropout(text))

    def head_state(self) -> dict:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("encoder.")}
