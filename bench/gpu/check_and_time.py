# Checks the CUDA distillation kernels (block and cluster row kernels) against a float64 PyTorch
# reference, then times them against the device's copy bandwidth, PyTorch eager and torch.compile, and
# the LibTorch train step against PyTorch's; prints one table last. Run by bench/gpu/run.sh; --emulate
# runs the checks on the CPU build of the kernels (bench/gpu/emulate.sh) to test the kernels' logic
# and this harness; --timing-smoke runs the timing code on tiny sizes (a test of this script only).
import argparse
import ctypes
import json
import math
import os
import random
import struct
import sys
import time
import traceback

import torch
import torch.nn.functional as F

from gpu_timing import copy_bandwidth, sync, time_ms
from report_table import format_table
from torch_baselines import compile_fn, distill_loss_torch, first_call, short_reason
from train_step_gpu import train_step_rows

DTYPE = {"f32": 0, "bf16": 1}
TEACHER = {"none": 0, "dense": 1, "topk": 2}
MISSING = {"renormalize": 0, "tail": 1}
DIVERGENCE = {"fwd": 0, "rev": 1, "jsd": 2}
REDUCTION = {"mean": 0, "sum": 1, "batchmean": 2, "none": 3}
ROW_KERNEL = {"auto": 0, "block": 1, "cluster": 2}
# The check list runs once per pass: the block kernel, and the cluster kernel with small staging
# budgets so that even 1000-element rows are split across 2..16 blocks (every merge path runs).
DEFAULT_CHECK_PASSES = ("block", "cluster@4096", "cluster@16384")
STATUS = {0: "ok", 1: "label-out-of-range", 2: "topk-index-invalid", 3: "cancelled", 4: "invalid-spec", 5: "cuda-error"}
IGNORE = -100
TOL = {"f32": 1e-5, "bf16": 1e-2}
TORCH_DTYPE = {"f32": torch.float32, "bf16": torch.bfloat16}

c_int64, c_int32, c_float, c_double, c_void_p = (ctypes.c_int64, ctypes.c_int32, ctypes.c_float, ctypes.c_double,
                                                  ctypes.c_void_p)


def log(*args):
    print(*args, flush=True)


# ---- the library --------------------------------------------------------------------------------------

class Kernels:
    """ctypes view of bench/gpu/ctypes_shim.cu."""

    def __init__(self, path):
        self.lib = ctypes.CDLL(path)
        f = self.lib.sdvp_gpu_distill_loss
        f.argtypes = [c_int64, c_int64, c_int32, c_void_p, c_int32, c_void_p, c_void_p, c_void_p, c_int64, c_int32,
                      c_void_p, c_int32, c_float, c_float, c_float, c_int32, c_int32, c_float, c_float, c_float,
                      c_void_p, c_int32, c_int32, c_double, c_void_p, c_float, c_void_p, c_void_p, c_void_p,
                      c_void_p, c_void_p, c_void_p, c_void_p, c_void_p]
        f.restype = ctypes.c_int
        self.lib.sdvp_gpu_workspace_bytes.argtypes = [c_int64, c_int64, c_int32, c_int32, c_int64]
        self.lib.sdvp_gpu_workspace_bytes.restype = ctypes.c_size_t
        self.lib.sdvp_gpu_result_layout.argtypes = [ctypes.POINTER(c_int64)]
        self.lib.sdvp_gpu_result_layout.restype = None
        self.lib.sdvp_gpu_error_string.argtypes = [ctypes.c_int]
        self.lib.sdvp_gpu_error_string.restype = ctypes.c_char_p
        self.lib.sdvp_gpu_device_count.restype = ctypes.c_int
        self.lib.sdvp_gpu_probe.restype = ctypes.c_int
        self.lib.sdvp_gpu_runtime_version.restype = ctypes.c_int
        self.lib.sdvp_gpu_set_row_kernel.argtypes = [c_int32, c_int32, c_int64]
        self.lib.sdvp_gpu_set_row_kernel.restype = ctypes.c_int
        self.lib.sdvp_gpu_last_plan.argtypes = [ctypes.POINTER(c_int64)]
        self.lib.sdvp_gpu_last_plan.restype = ctypes.c_char_p
        self.lib.sdvp_gpu_plan.argtypes = [c_int64, c_int64, c_int32, c_int32, c_int64, c_int32,
                                           ctypes.POINTER(c_int64)]
        self.lib.sdvp_gpu_plan.restype = ctypes.c_char_p
        layout = (c_int64 * 7)()
        self.lib.sdvp_gpu_result_layout(layout)
        self.result_size = layout[0]
        # DistillLossDeviceResult as distill_loss_cuda.h declares it: f32 loss, f32 normalizer, i32 status,
        # i32 bad_row, i64 bad_value, i64 valid_rows.
        expected = [32, 0, 4, 8, 12, 16, 24]
        if list(layout) != expected:
            raise RuntimeError(f"DistillLossDeviceResult layout {list(layout)} is not the expected {expected}")

    def set_row_kernel(self, kind, cluster_size=0, stage_bytes=0):
        """Row kernel for later calls: kind auto|block|cluster, cluster_size 0 (by the rule) or 1..16,
        stage_bytes 0 (the default) or the most bytes of S and T one block stages."""
        if self.lib.sdvp_gpu_set_row_kernel(ROW_KERNEL[kind], cluster_size, stage_bytes) != 0:
            raise ValueError(f"row kernel {kind}, cluster size {cluster_size}, stage bytes {stage_bytes} refused")

    def last_plan(self):
        """The row-kernel plan of the last call: kernel, cluster size, threads, shared memory, reason."""
        out = (c_int64 * 4)()
        reason = self.lib.sdvp_gpu_last_plan(out).decode()
        return self._plan(out, reason)

    def plan(self, rows, vocab, dtype, teacher, topk, grad):
        """The plan a call of this shape would get (aligned buffers), without running anything."""
        out = (c_int64 * 4)()
        reason = self.lib.sdvp_gpu_plan(rows, vocab, DTYPE[dtype], TEACHER[teacher], topk, int(grad), out).decode()
        return self._plan(out, reason)

    @staticmethod
    def _plan(out, reason):
        return {"kernel": {1: "block", 2: "cluster"}.get(out[0], str(out[0])), "cluster_size": out[1],
                "threads": out[2], "smem": out[3], "reason": reason}

    def error_string(self, code):
        return self.lib.sdvp_gpu_error_string(code).decode()

    def workspace_bytes(self, rows, vocab, dtype, teacher, topk):
        return self.lib.sdvp_gpu_workspace_bytes(rows, vocab, DTYPE[dtype], TEACHER[teacher], topk)

    def call(self, a, result, workspace, stream):
        """a: dict of arguments (tensors or None); returns the launch's cudaError_t."""
        def ptr(t):
            return None if t is None else t.data_ptr()
        return self.lib.sdvp_gpu_distill_loss(
            a["rows"], a["vocab"], DTYPE[a["dtype"]], ptr(a["student"]), TEACHER[a["teacher_kind"]],
            ptr(a.get("teacher")), ptr(a.get("topk_indices")), ptr(a.get("topk_logprobs")), a.get("topk", 0),
            MISSING[a.get("missing", "tail")], ptr(a.get("labels")), IGNORE, a["ce_weight"], a["kd_weight"],
            a["tau"], int(a["t2"]), DIVERGENCE[a["div"]], a["beta"], a["eps"], a["zloss"], ptr(a.get("weights")),
            REDUCTION[a["reduction"]], int(a.get("normalizer") is not None), a.get("normalizer") or 1.0,
            ptr(a.get("grad")), a["grad_scale"], ptr(a.get("row_loss")), ptr(a.get("stats_lse")),
            ptr(a.get("stats_ce")), ptr(a.get("stats_kd")), ptr(a.get("stats_argmax")), ptr(result),
            ptr(workspace), stream)

    def decode(self, result):
        raw = bytes(result.cpu().tolist()[: self.result_size])
        loss, normalizer, status, bad_row, bad_value, valid_rows = struct.unpack_from("<ffiiqq", raw, 0)
        return {"loss": loss, "normalizer": normalizer, "status": status, "bad_row": bad_row,
                "bad_value": bad_value, "valid_rows": valid_rows}


# ---- float64 reference --------------------------------------------------------------------------------

def _safe(mask, x):
    """x where mask, else 0: keeps the unselected branch finite so autograd never forms 0 * inf."""
    return torch.where(mask, x, torch.zeros_like(x))


def divergence_terms(kind, logp, logq, beta):
    """Per-category terms of D over the last dim (0 * log 0 = 0), float64, differentiable in logq."""
    p, q = logp.exp(), logq.exp()
    if kind == "fwd":
        m = p > 0
        return _safe(m, p * (_safe(m, logp) - _safe(m, logq)))
    if kind == "rev":
        m = q > 0
        return _safe(m, q * (_safe(m, logq) - _safe(m, logp)))
    mix = beta * p + (1 - beta) * q
    log_mix = torch.log(torch.where(mix > 0, mix, torch.ones_like(mix)))
    mp, mq = p > 0, q > 0
    tp = _safe(mp, beta * p * (_safe(mp, logp) - _safe(mp, log_mix)))
    tq = _safe(mq, (1 - beta) * q * (_safe(mq, logq) - _safe(mq, log_mix)))
    return tp + tq


def reference(c, x):
    """Loss, gradient, row losses and stats of docs/objective.md in float64, gradient by autograd."""
    s = x["student"].double().detach().clone().requires_grad_(True)
    n, v = s.shape
    zeros = torch.zeros(n, dtype=torch.float64, device=s.device)
    lse = torch.logsumexp(s, -1)
    ce = zeros
    has_label = torch.zeros(n, dtype=torch.bool, device=s.device)
    if x.get("labels") is not None:
        labels = x["labels"].long()
        has_label = labels != IGNORE
        y = torch.where(has_label, labels, torch.zeros_like(labels))
        rows = F.cross_entropy(s, y, reduction="none", label_smoothing=c["eps"]) if c["eps"] > 0 else \
            lse - s.gather(1, y[:, None])[:, 0]
        rows = rows + c["zloss"] * lse * lse
        ce = torch.where(has_label, rows, zeros)
    kd = zeros
    tau = c["tau"]
    if c["teacher"] != "none":
        logq = F.log_softmax(s / tau, -1)
        if c["teacher"] == "dense":
            logp = F.log_softmax(x["teacher"].double() / tau, -1)
            kd = divergence_terms(c["div"], logp, logq, c["beta"]).sum(-1)
        else:
            idx = x["topk_indices"].long()
            lp = x["topk_logprobs"].double()
            k = idx.shape[1]
            lq_k = logq.gather(1, idx)
            if k < v:
                member = torch.zeros(n, v, dtype=torch.bool, device=s.device).scatter_(1, idx, True)
                lq_tail = torch.logsumexp(logq.masked_fill(member, float("-inf")), -1)
                mass = (1 - lp.exp().sum(-1)).clamp(min=0)
                if c["missing"] == "tail":
                    tail_logit = torch.where(mass > 0, torch.log(torch.where(mass > 0, mass, torch.ones_like(mass))) / tau,
                                             torch.full_like(mass, float("-inf")))
                    logp = F.log_softmax(torch.cat([lp / tau, tail_logit[:, None]], 1), -1)
                else:
                    logp = torch.cat([F.log_softmax(lp / tau, -1), torch.full_like(mass, float("-inf"))[:, None]], 1)
                logq_c = torch.cat([lq_k, lq_tail[:, None]], 1)
            else:
                logp = F.log_softmax(lp / tau, -1)
                logq_c = lq_k
            kd = divergence_terms(c["div"], logp, logq_c, c["beta"]).sum(-1)
    w = x["weights"].double() if x.get("weights") is not None else torch.ones(n, dtype=torch.float64, device=s.device)
    has_teacher = c["teacher"] != "none"
    valid = (has_label | has_teacher) & (w > 0)
    kd_scale = c["kd_weight"] * (tau * tau if c["t2"] else 1.0)
    row_loss = torch.where(valid, w * (c["ce_weight"] * ce + kd_scale * kd), zeros)
    valid_rows = int(valid.sum().item())
    if c.get("normalizer") is not None:
        norm = float(c["normalizer"])
    else:
        norm = {"mean": float(valid_rows), "sum": 1.0, "batchmean": float(n), "none": 1.0}[c["reduction"]]
    total = row_loss.sum()
    scaled = total / norm if norm > 0 else total * 0
    loss = total if c["reduction"] == "none" else scaled
    objective = scaled * c["grad_scale"]
    if objective.requires_grad:  # not when no row has a label or a teacher
        objective.backward()
    grad = s.grad.detach() if s.grad is not None else torch.zeros_like(s.detach())
    return {"loss": float(loss.item()), "grad": grad, "row_loss": row_loss.detach(), "lse": lse.detach(),
            "ce": ce.detach(), "kd": kd.detach(), "argmax": s.detach().argmax(-1), "valid_rows": valid_rows,
            "normalizer": norm}


# ---- inputs --------------------------------------------------------------------------------------------

def make_inputs(c, device, seed):
    """Random inputs for case c: student/teacher logits, top-k teacher, labels, weights."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    n, v = c["N"], c["V"]
    dt = TORCH_DTYPE[c["dtype"]]
    s32 = torch.randn(n, v, generator=g) * 2.5
    t32 = 0.6 * s32 + torch.randn(n, v, generator=g) * 2.0
    neg_inf_cols = torch.zeros(v, dtype=torch.bool)
    if c.get("neg_inf") and v >= 7:
        neg_inf_cols[torch.randperm(v, generator=g)[: max(1, v // 10)]] = True
    x = {}
    finite_cols = (~neg_inf_cols).nonzero()[:, 0]
    if c["teacher"] == "topk":
        k = c["k"]
        # Top-k from a teacher whose -inf columns (if any) are the student's: pick them among the rest.
        logp_full = F.log_softmax(t32.double().masked_fill(neg_inf_cols, float("-inf")), -1)
        vals, idx = logp_full.topk(k, -1)
        order = torch.rand(n, k, generator=g).argsort(-1)  # any order: the kernel must not rely on sorting
        idx, vals = idx.gather(1, order), vals.gather(1, order)
        if c["dtype"] == "bf16":  # so that the k = V comparison against the dense kernel has equal inputs
            vals = vals.to(torch.bfloat16).double()
        x["topk_indices"] = idx.to(torch.int32)
        x["topk_logprobs"] = vals.to(torch.float32)
        x["k_dense_teacher"] = torch.full((n, v), float("-inf"), dtype=torch.float64).scatter(1, idx, vals)
        s32[:, neg_inf_cols] = float("-inf")
    elif c["teacher"] == "dense":
        s32[:, neg_inf_cols] = float("-inf")
        t32[:, neg_inf_cols] = float("-inf")
        x["teacher"] = t32.to(dt)
    else:
        s32[:, neg_inf_cols] = float("-inf")
    x["student"] = s32.to(dt)
    if c["labels"] != "none":
        labels = finite_cols[torch.randint(0, len(finite_cols), (n,), generator=g)].to(torch.int32)
        if c["teacher"] == "topk":  # every other row's label is one of its top-k entries
            labels[::2] = x["topk_indices"][::2, 0]
        if c["labels"] == "some-ignored":
            labels[torch.rand(n, generator=g) < 0.3] = IGNORE
            if n > 1:
                labels[1] = IGNORE
        elif c["labels"] == "all-ignored":
            labels[:] = IGNORE
        x["labels"] = labels
    if c.get("weights") == "random":
        w = torch.rand(n, generator=g) * 2
        w[torch.rand(n, generator=g) < 0.2] = 0
        if n > 2:
            w[2] = 0
        x["weights"] = w
    elif c.get("weights") == "zero":
        x["weights"] = torch.zeros(n)
    bad = c.get("bad")
    if bad == "label":
        x["labels"][min(1, n - 1)] = v + 5
        x["labels"][n - 1] = -3
    elif bad == "topk-range":
        x["topk_indices"][n - 1, 0] = v
        x["topk_indices"][min(1, n - 1), -1] = -1
    elif bad == "topk-dup":
        x["topk_indices"][min(1, n - 1), 1] = x["topk_indices"][min(1, n - 1), 0]
    return {key: (val.to(device) if torch.is_tensor(val) else val) for key, val in x.items()}


def misaligned_copy(t, offset_elems):
    """A copy of t whose base address is offset_elems elements past an allocation's start."""
    buf = torch.empty(t.numel() + offset_elems, dtype=t.dtype, device=t.device)
    view = buf[offset_elems:].view(t.shape)
    view.copy_(t)
    return view


# ---- one check ------------------------------------------------------------------------------------------

def rel_max_err(a, b, floor=1e-6):
    """max |a - b| / max(max |b|, floor) over all elements (NaN when a has NaN where b does not). The
    floor keeps a reference that is 0 up to float64 rounding (V = 1, JSD with beta at 0 or 1) from
    turning fp32 rounding into a huge relative error."""
    a, b = a.double(), b.double()
    both_inf = torch.isinf(a) & torch.isinf(b) & (torch.sign(a) == torch.sign(b))
    diff = torch.where(both_inf, torch.zeros_like(a), (a - b).abs())
    if torch.isnan(diff).any():
        return float("nan")
    scale = b[torch.isfinite(b)].abs().max().item() if torch.isfinite(b).any() else 1.0
    return diff.max().item() / max(scale, floor) if diff.numel() else 0.0


def run_kernel(lib, c, x, device, stream):
    n, v = c["N"], c["V"]
    dt = TORCH_DTYPE[c["dtype"]]
    student = x["student"]
    if c.get("offset"):
        student = misaligned_copy(student, c["offset"])
    grad = None
    if c["grad"] == "out":
        grad = torch.full((n, v), float("nan"), dtype=dt, device=device)  # poison: every element must be written
    elif c["grad"] == "inplace":
        student = student.clone() if not c.get("offset") else student
        grad = student
    f32 = dict(dtype=torch.float32, device=device)
    want_rows = c.get("row_loss") or c["reduction"] == "none"
    out = {
        "row_loss": torch.full((n,), float("nan"), **f32) if want_rows else None,
        "stats_lse": torch.full((n,), float("nan"), **f32) if c.get("stats") else None,
        "stats_ce": torch.full((n,), float("nan"), **f32) if c.get("stats") else None,
        "stats_kd": torch.full((n,), float("nan"), **f32) if c.get("stats") else None,
        "stats_argmax": torch.full((n,), -7, dtype=torch.int32, device=device) if c.get("stats") else None,
    }
    a = dict(rows=n, vocab=v, dtype=c["dtype"], student=student, teacher_kind=c["teacher"], teacher=x.get("teacher"),
             topk_indices=x.get("topk_indices"), topk_logprobs=x.get("topk_logprobs"), topk=c.get("k", 0),
             missing=c.get("missing", "tail"), labels=x.get("labels"), ce_weight=c["ce_weight"],
             kd_weight=c["kd_weight"], tau=c["tau"], t2=c["t2"], div=c["div"], beta=c["beta"], eps=c["eps"],
             zloss=c["zloss"], weights=x.get("weights"), reduction=c["reduction"], normalizer=c.get("normalizer"),
             grad=grad, grad_scale=c["grad_scale"], **out)
    ws_bytes = lib.workspace_bytes(n, v, c["dtype"], c["teacher"], c.get("k", 0))
    workspace = torch.full((max(ws_bytes, 1),), 0xAB, dtype=torch.uint8, device=device)  # not zeroed on purpose
    result = torch.full((64,), 0xFF, dtype=torch.uint8, device=device)
    code = lib.call(a, result, workspace, stream)
    if code != 0:
        raise RuntimeError(f"distill_loss_cuda returned {code} ({lib.error_string(code)})")
    if device == "cuda":
        torch.cuda.synchronize()
    res = lib.decode(result)
    res["grad"] = grad
    res.update({k: val for k, val in out.items()})
    return res


def default_case(**kw):
    c = dict(dtype="f32", N=3, V=1000, teacher="dense", k=0, missing="tail", div="fwd", beta=0.5, tau=1.0, t2=True,
             eps=0.0, zloss=0.0, labels="all", weights=None, reduction="mean", normalizer=None, grad="out",
             grad_scale=1.0, stats=False, row_loss=False, neg_inf=False, ce_weight=1.0, kd_weight=1.0, offset=0,
             bad=None, compare_dense=False, invalid=False)
    c.update(kw)
    if c["teacher"] == "none":
        c["kd_weight"] = 0.0
    return c


def case_name(c):
    parts = [c["dtype"], f"N{c['N']}", f"V{c['V']}", c["teacher"]]
    if c["teacher"] == "topk":
        parts.append(f"k{c['k']}-{c['missing']}")
    if c["teacher"] != "none":
        parts.append(c["div"] + (f"(b={c['beta']})" if c["div"] == "jsd" else ""))
        parts.append(f"tau{c['tau']:g}" + ("" if c["t2"] else "-not2"))
    parts.append(f"labels-{c['labels']}")
    for key, label in (("eps", "eps"), ("zloss", "z")):
        if c[key]:
            parts.append(f"{label}{c[key]:g}")
    if c["weights"]:
        parts.append(f"w-{c['weights']}")
    parts.append(c["reduction"] + (f"/{c['normalizer']:g}" if c["normalizer"] is not None else ""))
    parts.append("grad-" + c["grad"] + (f"x{c['grad_scale']:g}" if c["grad_scale"] != 1 else ""))
    for key in ("stats", "neg_inf"):
        if c[key]:
            parts.append(key.replace("_", "-"))
    if c["offset"]:
        parts.append("misaligned")
    if c["bad"]:
        parts.append("bad-" + c["bad"])
    if c["invalid"]:
        parts.append("invalid-spec")
    return " ".join(parts)


def check_case(lib, c, device, stream, seed):
    """Runs one case; returns (ok, details)."""
    x = make_inputs(c, device, seed)
    if c.get("invalid"):  # a spec the entry point must refuse before launching anything
        try:
            run_kernel(lib, c, x, device, stream)
        except RuntimeError as e:
            ok = "returned 1 " in str(e)  # cudaErrorInvalidValue
            return ok, {"problems": [] if ok else [str(e)]}
        return False, {"problems": ["an invalid spec was accepted"]}
    got = run_kernel(lib, c, x, device, stream)
    tol = TOL[c["dtype"]]
    errs = {}
    problems = []
    if c["bad"]:
        n, v = c["N"], c["V"]
        if c["bad"] == "label":
            want = (1, min(1, n - 1), v + 5 if n > 1 else -3)
        elif c["bad"] == "topk-range":
            want = (2, min(1, n - 1), -1 if n > 1 else v)
        else:
            want = (2, min(1, n - 1), int(x["topk_indices"][min(1, n - 1), 0].item()))
        seen = (got["status"], got["bad_row"], got["bad_value"])
        if seen != want:
            problems.append(f"status/bad_row/bad_value {seen}, expected {want}")
        if not math.isnan(got["loss"]):
            problems.append(f"loss {got['loss']} is not NaN")
        if got["grad"] is not None:
            g = got["grad"].float()
            if not torch.isnan(g[want[1]]).all():
                problems.append("the offending row's gradient is not all NaN")
        return not problems, {"problems": problems}

    ref = reference(c, x)
    if got["status"] != 0:
        problems.append(f"status {STATUS.get(got['status'], got['status'])}")
    loss_err = abs(got["loss"] - ref["loss"]) / max(abs(ref["loss"]), 1e-6)
    if math.isnan(got["loss"]):
        loss_err = float("nan")
    errs["loss"] = loss_err
    if got["valid_rows"] != ref["valid_rows"]:
        problems.append(f"valid_rows {got['valid_rows']} != {ref['valid_rows']}")
    if abs(got["normalizer"] - ref["normalizer"]) > 1e-6 * max(1.0, abs(ref["normalizer"])):
        problems.append(f"normalizer {got['normalizer']} != {ref['normalizer']}")
    if got["grad"] is not None:
        # Each gradient element is a sum of terms up to this size; when they cancel to ~0 (V = 1), fp32
        # rounding of the terms is the honest yardstick, not the float64 result's ~1e-17.
        w_max = float(x["weights"].max().item()) if x.get("weights") is not None else 1.0
        norm = ref["normalizer"] if ref["normalizer"] > 0 else 1.0
        kd_coef = c["kd_weight"] * (c["tau"] if c["t2"] else 1.0 / c["tau"]) if c["teacher"] != "none" else 0.0
        term = abs(c["grad_scale"]) * w_max / norm * max(c["ce_weight"], kd_coef)
        errs["grad"] = rel_max_err(got["grad"], ref["grad"], floor=max(1e-2 * term, 1e-30))
    if got["row_loss"] is not None:
        errs["row_loss"] = rel_max_err(got["row_loss"], ref["row_loss"])
    if got["stats_lse"] is not None:
        errs["lse"] = rel_max_err(got["stats_lse"], ref["lse"])
        errs["ce"] = rel_max_err(got["stats_ce"], ref["ce"])
        errs["kd"] = rel_max_err(got["stats_kd"], ref["kd"])
        if not torch.equal(got["stats_argmax"].long().cpu(), ref["argmax"].long().cpu()):
            problems.append("argmax differs")
    for key, err in errs.items():
        if not (err <= tol):
            problems.append(f"{key} error {err:.3g} > {tol:g}")
    if c["compare_dense"]:
        # k = V top-k against the dense kernel on the same teacher: the same objective, two code paths.
        dense_c = dict(c, teacher="dense", compare_dense=False)
        dx = dict(x, teacher=x["k_dense_teacher"].to(TORCH_DTYPE[c["dtype"]]))
        dense = run_kernel(lib, dense_c, dx, device, stream)
        d_loss = abs(dense["loss"] - got["loss"]) / max(abs(got["loss"]), 1e-6)
        errs["vs_dense_loss"] = d_loss
        if not (d_loss <= tol):
            problems.append(f"k=V vs dense loss differ by {d_loss:.3g}")
        if got["grad"] is not None:
            d_grad = rel_max_err(dense["grad"], got["grad"])
            errs["vs_dense_grad"] = d_grad
            if not (d_grad <= tol):
                problems.append(f"k=V vs dense grad differ by {d_grad:.3g}")
    return not problems, {"errors": errs, "problems": problems, "loss": got["loss"], "ref_loss": ref["loss"]}


def build_cases(emulate):
    big_n = 33 if emulate else 257  # the CPU emulation runs one OS thread per CUDA thread
    D = default_case
    cases = [
        D(V=7, stats=True, row_loss=True),
        D(N=big_n, tau=2.0, labels="some-ignored", eps=0.1, zloss=1e-3, weights="random", reduction="batchmean",
          stats=True),
        D(V=32003, div="rev", tau=0.7, labels="none", reduction="sum"),
        D(N=1, V=32003, div="jsd", beta=0.3, tau=2.0, stats=True),
        D(div="jsd", beta=0.0, stats=True),
        D(div="jsd", beta=1.0, labels="none", reduction="sum"),
        D(div="jsd", beta=0.5, tau=1.0, labels="some-ignored", weights="random", row_loss=True),
        D(dtype="bf16", N=big_n, tau=2.0, reduction="batchmean"),
        D(dtype="bf16", V=32003, tau=2.0, grad="inplace"),
        D(dtype="bf16", V=7, div="rev", grad="inplace", stats=True),
        D(dtype="bf16", V=32003, div="jsd", beta=0.5, tau=2.0, stats=True),
        D(V=1, teacher="none", zloss=0.01, eps=0.1, stats=True),
        D(V=1, dtype="bf16", tau=2.0, zloss=0.01),
        D(N=big_n, V=7, teacher="none", labels="some-ignored", stats=True),
        D(teacher="topk", k=32, tau=2.0, stats=True, row_loss=True),
        D(teacher="topk", k=32, missing="renormalize", stats=True),
        D(N=big_n, teacher="topk", k=100, div="jsd", beta=0.5, tau=2.0, weights="random"),
        D(V=32003, teacher="topk", k=50, div="rev", tau=1.5, labels="some-ignored", stats=True),
        D(dtype="bf16", V=32003, teacher="topk", k=64, tau=2.0, grad="inplace"),
        D(dtype="bf16", N=big_n, teacher="topk", k=1000, tau=2.0, compare_dense=True),
        D(V=7, teacher="topk", k=7, missing="renormalize", div="jsd", beta=0.5, compare_dense=True),
        D(V=1000, teacher="topk", k=1000, div="rev", tau=0.5, compare_dense=True, stats=True),
        D(V=1000, teacher="topk", k=1000, missing="renormalize", div="fwd", tau=3.0, compare_dense=True),
        D(V=1, teacher="topk", k=1, tau=2.0, zloss=0.1),
        D(neg_inf=True, tau=2.0, stats=True),
        D(neg_inf=True, div="rev", tau=1.0, labels="none", reduction="sum"),
        D(neg_inf=True, div="jsd", beta=0.4, tau=2.0, grad="inplace"),
        D(dtype="bf16", teacher="topk", k=16, neg_inf=True, tau=2.0, grad="inplace", stats=True),
        D(teacher="none", neg_inf=True, stats=True),
        D(grad="none", reduction="none", row_loss=True, stats=True),
        D(div="rev", grad="none", tau=2.0),
        D(div="jsd", beta=0.7, grad="none", tau=2.0, stats=True),
        D(normalizer=7.5, grad_scale=0.25, tau=2.0),
        D(reduction="none", normalizer=2.0, weights="random", row_loss=True),
        D(weights="zero", stats=True),
        D(teacher="none", labels="all-ignored"),
        D(teacher="none", labels="none", stats=True),
        D(V=1003, offset=1, tau=2.0, stats=True),
        D(dtype="bf16", V=1003, offset=1, tau=2.0, grad="inplace"),
        D(dtype="bf16", V=1003, offset=3, div="jsd", beta=0.5, tau=2.0),
        D(N=big_n, V=32003, tau=2.0, labels="some-ignored"),
        D(dtype="bf16", N=big_n, V=32003, div="jsd", beta=0.5, tau=2.0, grad="inplace"),
        D(N=2, V=400_000, teacher="topk", k=8, tau=2.0, stats=True),  # bitmap in the workspace
        D(eps=1.0, tau=2.0, t2=False),
        D(ce_weight=0.0, tau=2.0, stats=True),
        D(bad="label"),
        D(dtype="bf16", bad="label", grad="inplace"),
        D(teacher="topk", k=16, bad="topk-range"),
        D(teacher="topk", k=16, bad="topk-dup", labels="none"),
        D(teacher="topk", k=16, missing="renormalize", div="rev", invalid=True),  # infinite by definition
        D(normalizer=-1.0, invalid=True),
    ]
    # A seeded sample of the remaining option space.
    rng = random.Random(1234)
    for _ in range(16 if emulate else 40):
        teacher = rng.choice(["dense", "dense", "topk", "none"])
        v = rng.choice([1, 7, 1000, 32003])
        k = rng.choice([x for x in (1, 5, 64, v) if x <= v]) if teacher == "topk" else 0
        missing = rng.choice(["tail", "renormalize"])
        div = rng.choice(["fwd", "rev", "jsd"])
        if teacher == "topk" and missing == "renormalize" and div == "rev" and k < v:
            div = "fwd"  # infinite by definition (the spec rejects it)
        n = rng.choice([1, 3, big_n if v <= 1000 else 3])
        cases.append(D(dtype=rng.choice(["f32", "bf16"]), N=n, V=v, teacher=teacher, k=k, missing=missing, div=div,
                       beta=rng.choice([0.0, 0.25, 0.5, 1.0]), tau=rng.choice([1.0, 2.0, 0.5, 4.0]),
                       t2=rng.random() < 0.8, eps=rng.choice([0.0, 0.0, 0.1]), zloss=rng.choice([0.0, 1e-4]),
                       labels=rng.choice(["all", "some-ignored", "none"] if teacher != "none" else ["all", "some-ignored"]),
                       weights=rng.choice([None, "random"]), reduction=rng.choice(list(REDUCTION)),
                       normalizer=rng.choice([None, None, 3.0]), grad=rng.choice(["out", "inplace", "none"]),
                       grad_scale=rng.choice([1.0, 0.5]), stats=rng.random() < 0.5, neg_inf=False,
                       row_loss=rng.random() < 0.3))
        # -inf logits with label smoothing make CE infinite by definition; keep -inf to the other cases.
        cases[-1]["neg_inf"] = cases[-1]["eps"] == 0 and rng.random() < 0.3
    return cases


def plan_label(plan):
    return "block" if plan["kernel"] == "block" else f"cluster C={plan['cluster_size']}"


def parse_check_pass(text):
    """'block', 'auto', 'cluster' or 'cluster@BYTES' (the most bytes of S and T one block stages, so
    that short rows split across several blocks too) -> (name, kind, stage_bytes)."""
    kind, _, stage = text.partition("@")
    if kind not in ROW_KERNEL or (stage and not stage.isdigit()):
        raise argparse.ArgumentTypeError(f"check pass {text!r}: expected block, auto, cluster or cluster@BYTES")
    return text, kind, int(stage or 0)


def run_checks(lib, device, stream, emulate, only=None, check_pass=("block", "block", 0)):
    """The check list with the row kernel of `check_pass` (see parse_check_pass)."""
    name_of_pass, kind, stage_bytes = check_pass
    lib.set_row_kernel(kind, 0, stage_bytes)
    log(f"== checks against the float64 reference, row kernel: {name_of_pass}")
    cases = build_cases(emulate)
    results = []
    kernels_used = {}
    passed = failed = 0
    for i, c in enumerate(cases):
        if only is not None and i not in only:
            continue
        name = case_name(c)
        t0 = time.time()
        try:
            ok, info = check_case(lib, c, device, stream, seed=1000 + i)
        except Exception as e:  # a crash in one case must not hide the others
            ok, info = False, {"problems": [f"{type(e).__name__}: {e}"], "traceback": traceback.format_exc()}
        dt = time.time() - t0
        passed += ok
        failed += not ok
        plan = lib.last_plan()
        used = plan_label(plan) if not c.get("invalid") else "refused"
        kernels_used[used] = kernels_used.get(used, 0) + 1
        errs = " ".join(f"{k}={v:.2g}" for k, v in info.get("errors", {}).items())
        log(f"  [{'PASS' if ok else 'FAIL'}] #{i:02d} {name}  {errs}  [{used}] ({dt:.1f}s)")
        for p in info.get("problems", []):
            log(f"         - {p}")
        if not ok and "traceback" in info:
            log(info["traceback"])
        results.append({"case": name, "ok": ok, "kernel": used, "pass": name_of_pass,
                        **{k: v for k, v in info.items() if k != "traceback"}})
    lib.set_row_kernel("auto")
    used = ", ".join(f"{k} x{v}" for k, v in sorted(kernels_used.items()))
    log(f"checks ({name_of_pass}): {passed} passed, {failed} failed; kernels run: {used}")
    return results, passed, failed


# ---- timing ---------------------------------------------------------------------------------------------

# The timed configurations (N, V sized to fill an H100/H200 several times over its L2). "torch": also time
# PyTorch eager and torch.compile of the same objective (dense forward KL + CE, with gradient).
# "sizes": cluster sizes timed besides the rule's own (to choose the default by measurement).
TIMING_CASES = [
    {"name": "ce+kd fwd", "dtype": "bf16", "N": 8192, "V": 128256, "torch": True, "sizes": (4, 8, 16)},
    {"name": "ce+kd fwd", "dtype": "f32", "N": 4096, "V": 32000, "torch": True, "sizes": (2, 4, 8)},
    {"name": "ce+kd jsd", "dtype": "bf16", "N": 8192, "V": 128256, "div": "jsd"},
    {"name": "ce+kd fwd, topk-64", "dtype": "bf16", "N": 8192, "V": 128256, "teacher": "topk", "k": 64},
    {"name": "ce+kd fwd, loss only", "dtype": "bf16", "N": 8192, "V": 128256, "grad": "none"},
]
# The automatic choice's crossover (docs/gpu.md, "Choosing the row kernel"): block against cluster
# where the rows in flight go from fitting the L2 to not fitting it.
RULE_CASES = [{"name": f"rule: fwd {dt} V={v}", "dtype": dt, "N": n, "V": v}
              for dt, n, vs in (("bf16", 8192, (4096, 16384, 32768, 65536)), ("f32", 8192, (8192, 16384)))
              for v in vs]
TAU = 2.0


def make_timing_sets(spec, c, device, gen):
    """Enough input sets that rotating through them defeats the L2 (one when a set is 4x the L2)."""
    n, v, dt = spec["N"], spec["V"], TORCH_DTYPE[spec["dtype"]]
    teacher_kind = c["teacher"]

    def make_set():
        s = (torch.randn(n, v, device=device, generator=gen) * 2.5).to(dt)
        x = {"student": s}
        if teacher_kind == "dense":
            x["teacher"] = (0.6 * s.float() + torch.randn(n, v, device=device, generator=gen) * 2.0).to(dt)
        else:
            logits = torch.randn(n, v, device=device, generator=gen) * 2.0
            vals, idx = F.log_softmax(logits, -1).topk(c["k"], -1)
            del logits
            x["topk_indices"], x["topk_logprobs"] = idx.to(torch.int32), vals.float()
        x["labels"] = torch.randint(0, v, (n,), device=device, generator=gen).to(torch.int32)
        x["labels_long"] = x["labels"].long()
        x["grad"] = torch.empty_like(s) if c["grad"] == "out" else None
        return x

    elem = torch.empty((), dtype=dt).element_size()
    set_bytes = n * v * elem * (3 if teacher_kind == "dense" else 2)
    l2 = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 0) if device == "cuda" else 0
    l2 = l2 or (50 << 20)
    nsets = 1 if set_bytes >= 4 * l2 or device != "cuda" else min(16, 2 + int(4 * l2 // set_bytes))
    return [make_set() for _ in range(nsets)], elem


def check_first_rows(lib, c, x, call, result, ws, row_loss, stream, device):
    """One more call that also writes the row losses, then the first 64 rows against float64, and a
    second call on the same inputs whose loss and gradient must be bit-identical (determinism)."""
    problems, notes = [], []
    n = c["N"]
    code = lib.call(dict(call, row_loss=row_loss), result, ws, stream)
    if code != 0:
        raise RuntimeError(f"distill_loss_cuda returned {code} ({lib.error_string(code)})")
    sync(device)
    got = lib.decode(result)
    grad = call["grad"]
    first = grad.clone() if grad is not None else None
    rows = min(n, 64)
    sub_c = dict(c, N=rows, normalizer=float(n), labels="all")
    sub_x = {key: (val[:rows] if torch.is_tensor(val) else val) for key, val in x.items()
             if key not in ("grad", "labels_long")}
    ref = reference(sub_c, sub_x)
    tol = TOL[c["dtype"]]
    if got["status"] != 0:
        problems.append(f"status {got['status']}")
    if grad is not None:
        e = rel_max_err(grad[:rows], ref["grad"])
        notes.append(f"grad[:{rows}] err {e:.2g}")
        if not (e <= tol):
            problems.append(f"grad error {e:.3g}")
    e = rel_max_err(row_loss[:rows], ref["row_loss"])
    notes.append(f"row_loss[:{rows}] err {e:.2g}")
    if not (e <= tol):
        problems.append(f"row loss error {e:.3g}")
    code = lib.call(call, result, ws, stream)
    if code != 0:
        raise RuntimeError(f"distill_loss_cuda returned {code} ({lib.error_string(code)})")
    sync(device)
    again = lib.decode(result)
    if struct.pack("<f", again["loss"]) != struct.pack("<f", got["loss"]):
        problems.append(f"loss not deterministic: {got['loss']!r} then {again['loss']!r}")
    if grad is not None and not torch.equal(first, grad):
        problems.append("gradient not deterministic")
    return got["loss"], problems, notes


def bench_case(lib, stream, spec, copy_gbs, device, iters, deadline, log):
    """Times one configuration with the block and the cluster row kernel (and PyTorch eager and
    torch.compile when spec["torch"]); returns table rows. iters: warm-up and timed runs for sdvp, for
    PyTorch."""
    name, dtype, n, v = spec["name"], spec["dtype"], spec["N"], spec["V"]
    shape = f"{n}x{v}"
    gen = torch.Generator(device=device).manual_seed(7)
    c = default_case(dtype=dtype, N=n, V=v, teacher=spec.get("teacher", "dense"), tau=TAU, ce_weight=0.5,
                     kd_weight=0.5, reduction="batchmean", div=spec.get("div", "fwd"), beta=0.5,
                     grad=spec.get("grad", "out"), k=spec.get("k", 0))
    rows = []
    try:
        sets, elem = make_timing_sets(spec, c, device, gen)
    except Exception as e:
        log(traceback.format_exc())
        return [{"section": name, "variant": "sdvp", "dtype": dtype, "shape": shape, "check": "FAIL",
                 "note": f"inputs: {type(e).__name__}: {e}"}]
    nsets = len(sets)
    x = sets[0]
    floor = n * v * elem * (1 + (c["teacher"] == "dense") + (c["grad"] == "out"))  # S, T read once, dS written once
    ws = torch.empty(lib.workspace_bytes(n, v, dtype, c["teacher"], c["k"]), dtype=torch.uint8, device=device)
    result = torch.zeros(64, dtype=torch.uint8, device=device)
    row_loss = torch.empty(n, dtype=torch.float32, device=device)
    base = dict(rows=n, vocab=v, dtype=dtype, teacher_kind=c["teacher"], topk=c["k"], missing="tail",
                ce_weight=0.5, kd_weight=0.5, tau=TAU, t2=True, div=c["div"], beta=0.5, eps=0.0, zloss=0.0,
                weights=None, reduction="batchmean", normalizer=None, grad_scale=1.0)
    calls = [dict(base, student=xs["student"], teacher=xs.get("teacher"), topk_indices=xs.get("topk_indices"),
                  topk_logprobs=xs.get("topk_logprobs"), labels=xs["labels"], grad=xs["grad"]) for xs in sets]
    turn = [0]

    def sdvp():
        code = lib.call(calls[turn[0] % nsets], result, ws, stream)
        turn[0] += 1
        if code != 0:
            raise RuntimeError(f"distill_loss_cuda returned {code} ({lib.error_string(code)})")

    def measured(row, ms):
        row["ms"] = ms
        row["gbs"] = floor / (ms * 1e-3) / 1e9
        row["pct_copy"] = 100.0 * row["gbs"] / copy_gbs if copy_gbs else None

    def plan_for(kind, size):
        lib.set_row_kernel(kind, size)
        lib.call(calls[0], result, ws, stream)
        return lib.last_plan()

    auto = plan_for("auto", 0)
    sdvp_loss = None
    timed = set()
    for kind, size in [("block", 0), ("cluster", 0)] + [("cluster", c) for c in spec.get("sizes", ())]:
        plan = plan_for(kind, size)
        if (plan["kernel"], plan["cluster_size"]) in timed:
            continue  # the rule's own size, already timed
        timed.add((plan["kernel"], plan["cluster_size"]))
        row = {"section": name, "variant": "sdvp " + plan_label(plan), "dtype": dtype, "shape": shape,
               "check": "FAIL"}
        notes = []
        try:
            measured(row, time_ms(device, sdvp, iters[0], iters[1]))
            if plan["kernel"] != kind:
                notes.append(f"{kind} refused: {plan['reason']}")
            if (plan["kernel"], plan["cluster_size"]) == (auto["kernel"], auto["cluster_size"]):
                row["variant"] += " (auto)"
            notes.append(f"{plan['threads']} threads, {plan['smem'] // 1024} KiB smem")
            sdvp_loss, problems, check_notes = check_first_rows(lib, c, x, calls[0], result, ws, row_loss, stream,
                                                                device)
            row["check"] = "PASS" if not problems else "FAIL"
            notes += problems + check_notes
        except Exception as e:
            notes.append(f"{type(e).__name__}: {e}")
            log(traceback.format_exc())
        if nsets > 1:
            notes.append(f"{nsets} input sets rotated")
        row["note"] = "; ".join(notes)
        rows.append(row)
        log(f"  {name} {dtype} {shape} {row['variant']}: {fmt(row.get('ms'), '.3f')} ms, {row['check']}; {row['note']}")
    lib.set_row_kernel("auto")
    log(f"  auto: {plan_label(auto)} ({auto['reason']})")

    if spec.get("torch"):
        def loss_of(fn):
            def run():
                xs = sets[turn[0] % nsets]
                turn[0] += 1
                sl = xs["student"].detach().requires_grad_(True)
                fn(sl, xs["teacher"], xs["labels_long"], TAU).backward()
            return run

        eager_row = {"section": name, "variant": "torch eager", "dtype": dtype, "shape": shape, "baseline": "eager"}
        try:
            measured(eager_row, time_ms(device, loss_of(distill_loss_torch), iters[2], iters[3]))
            eager_loss = float(distill_loss_torch(x["student"], x["teacher"], x["labels_long"], TAU).float())
            d = abs(eager_loss - sdvp_loss) / max(abs(sdvp_loss), 1e-6) if sdvp_loss is not None else None
            # PyTorch eager in bf16 rounds every intermediate to bf16: a sanity bound, not a precision check.
            eager_row["note"] = f"loss vs sdvp {d:.2g}" if d is not None else None
            if d is not None and not d <= (5e-2 if dtype == "bf16" else 1e-4):
                eager_row["note"] += " (DIFFERS)"
        except Exception as e:
            eager_row["note"] = short_reason(e)
        rows.append(eager_row)
        compile_row = {"section": name, "variant": "torch.compile", "dtype": dtype, "shape": shape,
                       "baseline": "compile"}
        if time.time() > deadline:
            compile_row["note"] = "skipped: the run's time budget is spent"
        else:
            compiled, reason = compile_fn(distill_loss_torch)
            seconds = None
            if compiled is not None:
                seconds, reason = first_call(loss_of(compiled), device)
            if reason:
                compile_row["note"] = reason
            else:
                try:
                    measured(compile_row, time_ms(device, loss_of(compiled), iters[2], iters[3]))
                    compile_row["note"] = f"compiled in {seconds:.0f} s"
                except Exception as e:
                    compile_row["note"] = short_reason(e)
        rows.append(compile_row)
        for r in rows[-2:]:
            log(f"  {name} {dtype} {shape} {r['variant']}: {fmt(r.get('ms'), '.3f')} ms; {r.get('note')}")
    del sets, calls, ws
    sync(device)
    if device == "cuda":
        torch.cuda.empty_cache()
    return rows


def print_plans(lib, specs, log):
    """The automatic choice for each timed shape on this device (the emulation stands in for an H100)."""
    lib.set_row_kernel("auto")
    log("== row-kernel plans (automatic choice)")
    for sp in specs:
        teacher = sp.get("teacher", "dense")
        plan = lib.plan(sp["N"], sp["V"], sp["dtype"], teacher, sp.get("k", 0), sp.get("grad", "out") == "out")
        log(f"  {sp['name']:24s} {sp['dtype']:4s} {sp['N']:>5d}x{sp['V']:<7d} {plan_label(plan):13s} "
            f"{plan['threads']:>3d} threads {plan['smem'] / 1024:6.1f} KiB: {plan['reason']}")


def fmt(v, spec):
    """format(v, spec), or "-" padded to the spec's width when there is no value."""
    if v is not None:
        return format(v, spec)
    width = "".join(ch for ch in spec.split(".")[0] if ch.isdigit())
    return "-".rjust(int(width) if width else 1)


def wait_for_build(status_file, build_log, timeout_s, log):
    """Waits for run.sh's background LibTorch build to write its exit status; True when it succeeded (else
    the build log's last lines are logged)."""
    if not status_file:
        return True
    start = time.time()
    while not os.path.exists(status_file) and time.time() - start < timeout_s:
        time.sleep(2)
    if not os.path.exists(status_file):
        log(f"the LibTorch harness build did not finish within {timeout_s:.0f} s")
        return False
    with open(status_file) as f:
        ok = f.read().strip() == "0"
    log(f"the LibTorch harness build {'succeeded' if ok else 'FAILED'} ({time.time() - start:.0f} s waited)")
    if not ok and build_log and os.path.exists(build_log):
        with open(build_log, errors="replace") as f:
            log("".join(f.readlines()[-15:]))
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lib", required=True, help="the shared library built from ctypes_shim.cu")
    ap.add_argument("--emulate", action="store_true", help="CPU build of the kernels: checks only, smaller sizes")
    ap.add_argument("--out", default=os.environ.get("OUT") or None, help="folder for results.json")
    ap.add_argument("--only", default=None, help="comma-separated check indices to run")
    ap.add_argument("--gpu-cases", action="store_true", help="with --emulate: the GPU run's full-size case list")
    ap.add_argument("--check-passes", type=lambda text: [parse_check_pass(x) for x in text.split(",")],
                    default=[parse_check_pass(x) for x in DEFAULT_CHECK_PASSES],
                    help="comma-separated row kernels to run the checks with: block, auto, cluster, "
                         "cluster@BYTES (stage at most BYTES of S and T per block, so short rows split "
                         f"across a cluster too); default {','.join(DEFAULT_CHECK_PASSES)}")
    ap.add_argument("--skip-checks", action="store_true")
    ap.add_argument("--plans", action="store_true", help="print the row-kernel plans of the timed shapes and stop")
    ap.add_argument("--skip-timing", action="store_true")
    ap.add_argument("--timing-smoke", action="store_true",
                    help="run the timing and train-step code on tiny sizes on any device (tests this script, "
                         "not the GPU: its numbers are not measurements of anything)")
    ap.add_argument("--budget-s", type=float, default=300.0,
                    help="seconds from the start after which torch.compile and train-step phases are skipped")
    ap.add_argument("--step-bin", default=None, help="the LibTorch train-step harness (train_step_bench.cc)")
    ap.add_argument("--step-build-status", default=None,
                    help="a file the background build writes its exit status to; waited for")
    ap.add_argument("--step-build-log", default=None, help="the background build's log (tail shown on failure)")
    ap.add_argument("--step-dir", default=None, help="where the harness writes the model and batch")
    ap.add_argument("--step-batch", type=int, default=256)
    ap.add_argument("--step-vocab", type=int, default=32000)
    ap.add_argument("--step-steps", type=int, default=30)
    ap.add_argument("--step-warmup", type=int, default=5)
    ap.add_argument("--step-loss-runs", type=int, default=50)
    args = ap.parse_args()

    t_start = time.time()
    deadline = t_start + args.budget_s
    device = "cpu" if args.emulate else "cuda"
    log(f"torch {torch.__version__}, python {sys.version.split()[0]}, device {device}")
    if device == "cuda":
        if not torch.cuda.is_available():
            log("FATAL: torch.cuda.is_available() is False")
            return 2
        prop = torch.cuda.get_device_properties(0)
        log(f"GPU: {prop.name}, {prop.total_memory / 2**30:.0f} GiB, {prop.multi_processor_count} SMs, "
            f"L2 {getattr(prop, 'L2_cache_size', 0) / 2**20:.0f} MiB")
    lib = Kernels(args.lib)
    devices = lib.lib.sdvp_gpu_device_count()
    log(f"kernels: CUDA runtime {lib.lib.sdvp_gpu_runtime_version()}, devices visible {devices}")
    if device == "cuda" and devices == 0:
        code = lib.lib.sdvp_gpu_probe()
        log(f"FATAL: the kernels' CUDA runtime sees no device: cudaGetDeviceCount -> {code} "
            f"({lib.error_string(code)}); PyTorch (CUDA {torch.version.cuda}) does. A CUDA 13 runtime needs "
            "driver >= 580.")
        return 2
    stream = torch.cuda.current_stream().cuda_stream if device == "cuda" else None
    report = {"device": device, "torch": torch.__version__, "timing_smoke": args.timing_smoke}

    def save():  # after every phase, so that a run cut short still leaves its numbers
        report["seconds"] = time.time() - t_start
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            with open(os.path.join(args.out, "results.json"), "w") as f:
                json.dump(report, f, indent=1, default=str)

    if args.plans:
        print_plans(lib, TIMING_CASES + RULE_CASES, log)
        return 0
    passed = failed = 0
    pass_totals = []
    if not args.skip_checks:
        only = {int(i) for i in args.only.split(",")} if args.only else None
        report["checks"] = []
        for check_pass in args.check_passes:
            checks, p_ok, p_bad = run_checks(lib, device, stream, args.emulate and not args.gpu_cases, only,
                                             check_pass)
            passed += p_ok
            failed += p_bad
            pass_totals.append(f"{check_pass[0]} {p_ok}/{p_ok + p_bad}")
            report["checks"].extend(checks)
            report["checks_passed"], report["checks_failed"] = passed, failed
            save()

    rows = []
    smoke = args.timing_smoke
    if (device == "cuda" or smoke) and not args.skip_timing:
        log("== timing" + (" (SMOKE TEST: tiny sizes, not measurements)" if smoke else ""))
        try:
            copy_gbs, copy_ms = copy_bandwidth(device, (64 << 20) if smoke else (2 << 30))
            rows.append({"section": "copy", "variant": f"device-to-device {'64 MiB' if smoke else '2 GiB'}",
                         "ms": copy_ms, "gbs": copy_gbs, "pct_copy": 100.0})
        except Exception as e:
            copy_gbs = None
            rows.append({"section": "copy", "variant": "device-to-device", "note": short_reason(e)})
        report["copy_gbs"] = copy_gbs
        print_plans(lib, TIMING_CASES + RULE_CASES, log)
        specs = TIMING_CASES
        if smoke:  # one cluster size besides the rule's, one timed run each
            specs = [dict(sp, N=16, V=1003 if sp["dtype"] == "f32" else 1000, sizes=sp.get("sizes", ())[:1])
                     for sp in specs]
        iters = (0, 1, 0, 1) if smoke else (5, 30, 3, 20)
        for spec in specs:
            rows.extend(bench_case(lib, stream, spec, copy_gbs, device, iters, deadline, log))
            report["timing"] = rows
            save()

        log("== train step (LibTorch harness against PyTorch eager and torch.compile)")
        if time.time() > deadline:
            log("skipped: the run's time budget is spent")
        else:
            built = wait_for_build(args.step_build_status, args.step_build_log, max(10.0, deadline - time.time()), log)
            step_dir = args.step_dir or os.path.join(args.out or "/tmp", "train-step")
            batch, vocab = (8, 1000) if smoke else (args.step_batch, args.step_vocab)
            steps, warmup, loss_runs = (3, 1, 3) if smoke else (args.step_steps, args.step_warmup, args.step_loss_runs)
            step_rows, raw = train_step_rows(args.step_bin if built else None, step_dir, device, batch, vocab, steps,
                                             warmup, loss_runs, max(30.0, deadline + 60 - time.time()), log)
            report["train_step"] = raw
            rows.extend(step_rows)
            report["timing"] = rows
            save()

        log("== the automatic choice's crossover (block against cluster)")
        rule_specs = RULE_CASES
        if smoke:
            rule_specs = [dict(sp, N=8, V=sp["V"] // 64) for sp in rule_specs[:2]]
        for spec in rule_specs:
            if time.time() > deadline:
                log(f"  {spec['name']}: skipped, the run's time budget is spent")
                continue
            rows.extend(bench_case(lib, stream, spec, copy_gbs, device, iters, deadline, log))
        report["timing"] = rows
        save()

    save()
    log(f"\nharness: {report['seconds']:.0f} s")
    if not args.skip_checks:
        log(f"checks: {passed} passed, {failed} failed ({'; '.join(pass_totals)})")
    if rows:  # the table comes last
        if copy_gbs:
            log(f"copy bandwidth (device-to-device, read + write): {copy_gbs:.0f} GB/s; %copy = bytes floor "
                "(S, T read once, dS written once) / time, against it")
        prefix = "SMOKE | " if smoke else ""
        if smoke:
            log("SMOKE | tiny sizes on the CPU or GPU to test this script: NOT measurements")
        log("\n".join(format_table(rows, prefix)))
    kernel_ok = all(r.get("check", "PASS") == "PASS" for r in rows if r.get("check"))
    return 0 if failed == 0 and kernel_ok else 1


if __name__ == "__main__":
    sys.exit(main())
