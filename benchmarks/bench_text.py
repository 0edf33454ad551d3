"""Text-tier throughput, tokens per second in one process: ngram sampling against the raw rate of
the uniforms it consumes (one rng.random draw per token; issue 20's target is >= 1e6 tokens/s per
core), and the transformer family's training (the shared `Trainer`) against a plain PyTorch loop
on the same GPT network (target >= 0.9).

Both transformer loops do the same work per step: draw a minibatch of windows, the next-token
cross-entropy, Adam and gradient clipping at norm 1 (nanoGPT's recipe); ours also updates its EMA
and clips per replicate. One replicate, so the ratio is the trainer's overhead over the textbook
loop, not the batching of replicates.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from timing import best_times

from selfconsume.data.text import MarkovText, MarkovTextParams
from selfconsume.models.gpt import GPT
from selfconsume.models.ngram import NgramModel, NgramParams
from selfconsume.models.transformer import Transformer, TransformerParams
from selfconsume.seeding import Streams

REPLICATES, SEQUENCES, LENGTH, VOCAB, ORDER = 8, 2_000, 64, 64, 3  # 1,024,000 tokens a draw
GPT_PARAMS = TransformerParams(n_layer=2, n_embd=64, n_head=4, batch_size=32, train_steps=60)
"""The text-collapse preset's network and batch (60 steps: about two seconds a fit)."""
WINDOWS = 500


def ngram_row() -> dict:
    source = MarkovText(MarkovTextParams(vocab=VOCAB, order=2, length=LENGTH))
    rng = np.random.default_rng(0)
    model = NgramModel(
        NgramParams(order=ORDER, smoothing="kneser_ney"), LENGTH, REPLICATES, Streams(0), source
    )
    model.fit(source.sample(REPLICATES, 500, rng), None, 0, False)
    tokens = REPLICATES * SEQUENCES * LENGTH
    times = best_times(
        {
            "ours": lambda: model.sample(SEQUENCES, rng, 1),
            "base": lambda: rng.random((REPLICATES, SEQUENCES, LENGTH)),
        },
        repeats=3,
    )
    value, reference = tokens / times["ours"], tokens / times["base"]
    return {
        "name": f"ngram sampling (order {ORDER}, V = {VOCAB}) tokens/s / uniforms/s",
        "value": value,
        "baseline": reference,
        "ratio": value / reference,
        "target": "value >= 1e6",
        "unit": "tokens/s",
    }


def windows() -> tuple[MarkovText, np.ndarray]:
    """A Markov language of 96 tokens (the size of a character vocabulary) and one replicate's
    training windows."""
    source = MarkovText(MarkovTextParams(vocab=96, order=1, length=LENGTH))
    return source, source.sample(1, WINDOWS, np.random.default_rng(0))


def family_fit() -> Callable[[], object]:
    """One from-scratch fit of the transformer family, one replicate (the shared Trainer)."""
    source, x = windows()
    model = Transformer(GPT_PARAMS, LENGTH, 1, Streams(0), source)
    return lambda: model.fit(x, None, 0, False)


def plain_fit() -> Callable[[], None]:
    """The same steps as a textbook loop: the same GPT network on one replicate, Adam, clipping."""
    source, x = windows()
    p = GPT_PARAMS
    net = GPT(source.vocab_size, LENGTH, p.n_layer, p.n_head, p.n_embd, p.tied)
    targets = torch.as_tensor(x[0])
    inputs = torch.cat([torch.full_like(targets[:, :1], source.vocab_size), targets[:, :-1]], 1)

    def train() -> None:
        params = [q.requires_grad_() for q in net.init([torch.Generator().manual_seed(0)])]
        opt = torch.optim.Adam(params, lr=p.lr)
        for _ in range(p.train_steps):
            rows = torch.randint(0, WINDOWS, (p.batch_size,))
            logits = net(params, inputs[rows][None])
            loss = F.cross_entropy(logits.flatten(0, 2), targets[rows].flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, p.grad_clip)
            opt.step()

    return train


def trainer_row() -> dict:
    times = best_times({"plain": plain_fit(), "ours": family_fit()}, repeats=3)
    tokens = GPT_PARAMS.train_steps * GPT_PARAMS.batch_size * LENGTH
    return {
        "name": "transformer training tokens/s, replicates=1, text-collapse's network "
        "(vs a plain PyTorch loop)",
        "value": tokens / times["ours"],
        "baseline": tokens / times["plain"],
        "ratio": times["plain"] / times["ours"],
        "target": ">= 0.9",
        "unit": "tokens/s",
    }


def run() -> list[dict]:
    torch.set_num_threads(1)
    return [ngram_row(), trainer_row()]


if __name__ == "__main__":
    for row in run():
        print(row)
