"""Small generated corpora: distinct articles made of real words, deterministic per seed."""

from __future__ import annotations

import random

WORDS = (
    "market share price growth bank rate inflation policy court ruling team season match goal "
    "election vote minister budget tax energy oil gas solar wind climate research study patient "
    "hospital doctor school student teacher film music album concert award company profit loss "
    "merger chip software cloud data network phone device launch river city village farm harvest "
    "storm flood bridge road train airport flight museum gallery painter novel author library "
    "history ancient empire castle island ocean mountain forest animal bird garden kitchen recipe"
).split()


def article(seed: int, sentences: int = 12, words_per_sentence: int = 14) -> str:
    rng = random.Random(seed)
    out = []
    for _ in range(sentences):
        words = [rng.choice(WORDS) for _ in range(words_per_sentence)]
        out.append(" ".join(words).capitalize() + ".")
    return " ".join(out)


def near_copy(text: str, changes: int = 2, seed: int = 0) -> str:
    rng = random.Random(seed)
    words = text.split(" ")
    for i in rng.sample(range(len(words)), changes):
        words[i] = "zebra"
    return " ".join(words)
