"""PyTorch baseline for bench/train-step.bench.ts: trains the same TorchScript file with torch.jit.load,
the loss written with F.cross_entropy and F.kl_div, AdamW, torch.set_num_threads(THREADS).

Usage: python3 train_step_torch.py DIR STEPS WARMUP THREADS
       python3 train_step_torch.py --make-loss-module DIR ROWS VOCAB
DIR holds model.pt, meta.json and the batch (images.bin, tokens.bin, labels.bin, teacher.bin).
Prints one JSON object: per-step wall times of plain steps; the loss part inside those steps (the loss
expression's forward, plus its backward from the loss's gradient hook to the logits'); and the loss
part alone (the same on a [rows, vocab] leaf, no model).
--make-loss-module writes loss-alone.pt, a module whose forward returns a [ROWS, VOCAB] parameter
(plus a broadcast [ROWS, 1] input), so sdvp can time its fused objective with no model around it.
"""
import json
import sys
import time

import torch
import torch.nn.functional as F


def read(path, dtype, shape):
    with open(path, "rb") as f:
        return torch.frombuffer(bytearray(f.read()), dtype=dtype).reshape(shape)


def make_loss_module(folder: str, rows: int, vocab: int) -> None:
    class LossAlone(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.logits = torch.nn.Parameter(torch.randn(rows, vocab, generator=torch.Generator().manual_seed(0)) * 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.logits + x

    torch.jit.script(LossAlone()).save(folder + "/loss-alone.pt")


def loss_alone_ms(objective, rows: int, vocab: int, runs: int) -> list:
    logits = (torch.randn(rows, vocab, generator=torch.Generator().manual_seed(0)) * 2).requires_grad_(True)
    times = []
    for _ in range(runs):
        marks = {}
        logits.grad = None
        start = time.perf_counter()
        loss = objective(logits)
        forward_loss = time.perf_counter() - start
        loss.register_hook(lambda g: marks.__setitem__("loss", time.perf_counter()))
        logits.register_hook(lambda g: marks.__setitem__("logits", time.perf_counter()))
        loss.backward()
        times.append((forward_loss + marks["logits"] - marks["loss"]) * 1e3)
    return times


def load_batch(folder: str):
    """meta.json and the batch of DIR: (meta, images, tokens (int64), labels (int64), teacher), CPU tensors."""
    with open(folder + "/meta.json") as f:
        meta = json.load(f)
    rows, side, length, vocab = meta["rows"], meta["imageSize"], meta["tokens"], meta["vocab"]
    images = read(folder + "/images.bin", torch.float32, (rows, 3, side, side))
    tokens = read(folder + "/tokens.bin", torch.int32, (rows, length)).long()
    labels = read(folder + "/labels.bin", torch.int32, (rows,)).long()
    teacher = read(folder + "/teacher.bin", torch.float32, (rows, vocab))
    return meta, images, tokens, labels, teacher


def make_objective(meta: dict, labels: torch.Tensor, teacher: torch.Tensor):
    """The distillation objective as a PyTorch user writes it: alpha * CE + beta * tau^2 * KL(batchmean)."""
    alpha, beta, tau = meta["ceWeight"], meta["kdWeight"], meta["temperature"]

    def objective(logits):
        ce = F.cross_entropy(logits, labels)
        kl = F.kl_div(
            F.log_softmax(logits / tau, dim=-1),
            F.log_softmax(teacher / tau, dim=-1),
            reduction="batchmean",
            log_target=True,
        )
        return alpha * ce + beta * tau * tau * kl

    return objective


def make_step(model, optimizer, objective, images, tokens):
    """One training step: model.answer, the objective, backward, the optimizer; returns the loss tensor."""

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = objective(model.answer(images, tokens))
        loss.backward()
        optimizer.step()
        return loss

    return step


def main() -> None:
    if sys.argv[1] == "--make-loss-module":
        make_loss_module(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    folder = sys.argv[1]
    steps, warmup, threads = (int(x) for x in sys.argv[2:5])
    torch.set_num_threads(threads)
    meta, images, tokens, labels, teacher = load_batch(folder)
    rows, vocab = meta["rows"], meta["vocab"]

    model = torch.jit.load(folder + "/model.pt")
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=meta["lr"], weight_decay=meta["weightDecay"])
    objective = make_objective(meta, labels, teacher)
    step = make_step(model, optimizer, objective, images, tokens)

    def instrumented_step():
        marks = {}
        optimizer.zero_grad(set_to_none=True)
        logits = model.answer(images, tokens)
        start = time.perf_counter()
        loss = objective(logits)
        forward_loss = time.perf_counter() - start
        loss.register_hook(lambda g: marks.__setitem__("loss", time.perf_counter()))
        logits.register_hook(lambda g: marks.__setitem__("logits", time.perf_counter()))
        loss.backward()
        optimizer.step()
        return forward_loss + (marks["logits"] - marks["loss"])

    for _ in range(warmup):
        step()
    step_ms = []
    losses = []
    for _ in range(steps):
        start = time.perf_counter()
        loss = step()
        step_ms.append((time.perf_counter() - start) * 1e3)
        losses.append(float(loss))
    loss_ms = [instrumented_step() * 1e3 for _ in range(steps)]
    alone_ms = loss_alone_ms(objective, rows, vocab, 50 * steps)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "stepMs": step_ms,
                      "lossMs": loss_ms, "lossAloneMs": alone_ms, "losses": losses}))


if __name__ == "__main__":
    main()
