"""PyTorch eager baseline for `sdvp bench kernels`: times forward + backward of 0.5*CE + 0.5*tau^2*KL.

Usage: python3 torch_distill_loss.py ROWS VOCAB RUNS THREADS [TEMPERATURE]
Prints one JSON object: {"torch": version, "times_ms": [...], "loss": float}.
"""
import json
import sys
import time

import torch
import torch.nn.functional as F


def main() -> None:
    rows, vocab, runs, threads = (int(x) for x in sys.argv[1:5])
    tau = float(sys.argv[5]) if len(sys.argv) > 5 else 2.0
    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    student = (torch.randn(rows, vocab, generator=generator) * 2).requires_grad_(True)
    teacher = torch.randn(rows, vocab, generator=generator) * 2
    labels = torch.randint(0, vocab, (rows,), generator=generator)

    def step() -> float:
        student.grad = None
        ce = F.cross_entropy(student, labels)
        kl = F.kl_div(
            F.log_softmax(student / tau, dim=-1),
            F.log_softmax(teacher / tau, dim=-1),
            reduction="batchmean",
            log_target=True,
        )
        loss = 0.5 * ce + 0.5 * tau * tau * kl
        loss.backward()
        return float(loss)

    step()  # warm-up: allocator and thread pool
    times = []
    loss = 0.0
    for _ in range(runs):
        start = time.perf_counter()
        loss = step()
        times.append((time.perf_counter() - start) * 1000.0)
    print(json.dumps({"torch": torch.__version__, "times_ms": times, "loss": loss}))


if __name__ == "__main__":
    main()
