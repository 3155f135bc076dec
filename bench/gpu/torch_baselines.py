# The PyTorch baselines of the GPU benchmark: the distillation loss as a PyTorch user writes it
# (eager), and the same function under torch.compile (Inductor's fused Triton kernels). A compile
# that fails is reported with its reason, never replaced by another number.
import time

import torch
import torch.nn.functional as F


def distill_loss_torch(student, teacher, labels, tau, ce_weight=0.5, kd_weight=0.5):
    """ce_weight * CE(student, labels) + kd_weight * tau^2 * KL(softmax(t/tau) || softmax(s/tau)),
    batchmean: the objective sdvp fuses, written with F.cross_entropy and F.kl_div."""
    logq = F.log_softmax(student / tau, -1)
    logp = F.log_softmax(teacher / tau, -1)
    kl = F.kl_div(logq, logp, reduction="batchmean", log_target=True)
    return ce_weight * F.cross_entropy(student, labels) + kd_weight * tau * tau * kl


def short_reason(error):
    """One line for a table cell from an exception."""
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(error).__name__}: {first}"[:160]


def compile_fn(fn):
    """(torch.compile(fn), None), or (None, reason) when this PyTorch cannot compile."""
    if not hasattr(torch, "compile"):
        return None, f"torch.compile is not in torch {torch.__version__}"
    try:
        return torch.compile(fn, dynamic=False), None
    except Exception as e:  # the wrapper itself can refuse (no Triton, unsupported Python)
        return None, short_reason(e)


def first_call(fn, device):
    """Runs fn() once (for a compiled function: the compilation) -> (seconds, None) or (None, reason)."""
    start = time.perf_counter()
    try:
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
    except Exception as e:  # Dynamo/Inductor errors surface at the first call
        return None, short_reason(e)
    return time.perf_counter() - start, None
