# Checks the CUDA distillation kernels against a float64 PyTorch reference, then times them against
# PyTorch eager and the device's copy bandwidth. Run by bench/gpu/run.sh; --emulate runs the checks
# on the CPU build of the kernels (bench/gpu/emulate.sh) to test the kernels' logic and this harness.
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

DTYPE = {"f32": 0, "bf16": 1}
TEACHER = {"none": 0, "dense": 1, "topk": 2}
MISSING = {"renormalize": 0, "tail": 1}
DIVERGENCE = {"fwd": 0, "rev": 1, "jsd": 2}
REDUCTION = {"mean": 0, "sum": 1, "batchmean": 2, "none": 3}
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
        layout = (c_int64 * 7)()
        self.lib.sdvp_gpu_result_layout(layout)
        self.result_size = layout[0]
        # DistillLossDeviceResult as distill_loss_cuda.h declares it: f32 loss, f32 normalizer, i32 status,
        # i32 bad_row, i64 bad_value, i64 valid_rows.
        expected = [32, 0, 4, 8, 12, 16, 24]
        if list(layout) != expected:
            raise RuntimeError(f"DistillLossDeviceResult layout {list(layout)} is not the expected {expected}")

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


def run_checks(lib, device, stream, emulate, only=None):
    cases = build_cases(emulate)
    results = []
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
        errs = " ".join(f"{k}={v:.2g}" for k, v in info.get("errors", {}).items())
        log(f"  [{'PASS' if ok else 'FAIL'}] #{i:02d} {name}  {errs}  ({dt:.1f}s)")
        for p in info.get("problems", []):
            log(f"         - {p}")
        if not ok and "traceback" in info:
            log(info["traceback"])
        results.append({"case": name, "ok": ok, **{k: v for k, v in info.items() if k != "traceback"}})
    log(f"checks: {passed} passed, {failed} failed")
    return results, passed, failed


# ---- timing ---------------------------------------------------------------------------------------------

def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def time_ms(device, fn, warmup, iters):
    """Median milliseconds of fn() over iters runs, each bracketed by CUDA events (wall clock on CPU)."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(iters):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return times[len(times) // 2]


def copy_bandwidth(device, nbytes=2 << 30):
    """Device-to-device copy of 2 GiB: (bytes read + bytes written) / median time, in GB/s."""
    src = torch.empty(nbytes, dtype=torch.uint8, device=device).fill_(1)
    dst = torch.empty_like(src)
    ms = time_ms(device, lambda: dst.copy_(src), 3, 10)
    del src, dst
    if device == "cuda":
        torch.cuda.empty_cache()
    return 2 * nbytes / (ms * 1e-3) / 1e9


def bench_case(lib, stream, spec, copy_gbs, device="cuda", iters=(5, 30, 3, 20)):
    """Times one configuration; returns a table row (dict). iters: sdvp warm-up/runs, eager warm-up/runs."""
    name, dtype, n, v = spec["name"], spec["dtype"], spec["N"], spec["V"]
    row = {"case": name, "dtype": dtype, "N": n, "V": v, "sdvp_ms": None, "torch_ms": None, "speedup": None,
           "bytes": None, "gbs": None, "pct_copy": None, "check": "FAIL", "notes": []}
    dt = TORCH_DTYPE[dtype]
    tau = 2.0
    gen = torch.Generator(device=device).manual_seed(7)
    teacher_kind = spec.get("teacher", "dense")
    c = default_case(dtype=dtype, N=n, V=v, teacher=teacher_kind, tau=tau, ce_weight=0.5, kd_weight=0.5,
                     reduction="batchmean", div=spec.get("div", "fwd"), beta=0.5, grad=spec.get("grad", "out"),
                     k=spec.get("k", 0))

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
        x["grad"] = torch.empty_like(s) if c["grad"] == "out" else None
        return x

    try:
        # Inputs that fit in L2 would time the cache, not memory: rotate through enough sets to defeat it.
        elem = torch.empty((), dtype=dt).element_size()
        set_bytes = n * v * elem * (3 if teacher_kind == "dense" else 2)
        l2 = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 0) if device == "cuda" else 0
        l2 = l2 or (50 << 20)
        nsets = 1 if set_bytes >= 4 * l2 else min(16, 2 + int(4 * l2 // set_bytes))
        sets = [make_set() for _ in range(nsets)]
        x = sets[0]
        s, t, grad = x["student"], x.get("teacher"), x["grad"]
        ws = torch.empty(lib.workspace_bytes(n, v, dtype, teacher_kind, c["k"]), dtype=torch.uint8, device=device)
        result = torch.zeros(64, dtype=torch.uint8, device=device)
        row_loss = torch.empty(n, dtype=torch.float32, device=device)
        base = dict(rows=n, vocab=v, dtype=dtype, teacher_kind=teacher_kind, topk=c["k"], missing="tail",
                    ce_weight=0.5, kd_weight=0.5, tau=tau, t2=True, div=c["div"], beta=0.5, eps=0.0, zloss=0.0,
                    weights=None, reduction="batchmean", normalizer=None, grad_scale=1.0)
        calls = [dict(base, student=xs["student"], teacher=xs.get("teacher"), topk_indices=xs.get("topk_indices"),
                      topk_logprobs=xs.get("topk_logprobs"), labels=xs["labels"], grad=xs["grad"]) for xs in sets]
        a = calls[0]
        turn = [0]

        def sdvp():
            code = lib.call(calls[turn[0] % nsets], result, ws, stream)
            turn[0] += 1
            if code != 0:
                raise RuntimeError(f"distill_loss_cuda returned {code} ({lib.error_string(code)})")

        row["sdvp_ms"] = time_ms(device, sdvp, iters[0], iters[1])
        if nsets > 1:
            row["notes"].append(f"{nsets} input sets rotated")
        nbytes = n * v * elem  # S read once
        if t is not None:
            nbytes += n * v * elem  # T read once
        if grad is not None:
            nbytes += n * v * elem  # dS written once
        row["bytes"] = nbytes
        row["gbs"] = nbytes / (row["sdvp_ms"] * 1e-3) / 1e9
        row["pct_copy"] = 100.0 * row["gbs"] / copy_gbs if copy_gbs else None

        # Check: one more call that also writes the row losses, then the first rows against float64.
        a_check = dict(a, row_loss=row_loss)
        code = lib.call(a_check, result, ws, stream)
        if code != 0:
            raise RuntimeError(f"distill_loss_cuda returned {code} ({lib.error_string(code)})")
        sync(device)
        got = lib.decode(result)
        rows = min(n, 64)
        sub_c = dict(c, N=rows, normalizer=float(n), labels="all")
        sub_x = {key: (val[:rows] if torch.is_tensor(val) else val) for key, val in x.items() if key != "grad"}
        ref = reference(sub_c, sub_x)
        tol = TOL[dtype]
        problems = []
        if got["status"] != 0:
            problems.append(f"status {got['status']}")
        if grad is not None:
            e = rel_max_err(grad[:rows], ref["grad"])
            row["notes"].append(f"grad[:{rows}] err {e:.2g}")
            if not (e <= tol):
                problems.append(f"grad error {e:.3g}")
        e = rel_max_err(row_loss[:rows], ref["row_loss"])
        row["notes"].append(f"row_loss[:{rows}] err {e:.2g}")
        if not (e <= tol):
            problems.append(f"row loss error {e:.3g}")
        row["sdvp_loss"] = got["loss"]

        if spec.get("eager"):  # the same objective in PyTorch eager: dense forward KL, with gradient
            for xs in sets:
                xs["labels_long"] = xs["labels"].long()
            state = {}

            def eager():
                xs = sets[turn[0] % nsets]
                turn[0] += 1
                sl = xs["student"].detach().requires_grad_(True)
                logq = F.log_softmax(sl / tau, -1)
                logp = F.log_softmax(xs["teacher"] / tau, -1)
                loss = 0.5 * F.cross_entropy(sl, xs["labels_long"]) + 0.5 * tau * tau * F.kl_div(
                    logq, logp, reduction="batchmean", log_target=True)
                loss.backward()
                state["loss"], state["grad"] = loss.detach(), sl.grad
                del sl, logq, logp, loss

            row["torch_ms"] = time_ms(device, eager, iters[2], iters[3])
            turn[0] = 0
            eager()  # once more on set 0, the set the checks below read
            row["speedup"] = row["torch_ms"] / row["sdvp_ms"]
            torch_loss = float(state["loss"].float().item())
            d = abs(torch_loss - got["loss"]) / max(abs(got["loss"]), 1e-6)
            row["notes"].append(f"loss vs torch eager {d:.2g}")
            # PyTorch eager in bf16 rounds every intermediate to bf16: a sanity bound, not a precision check
            # (that is the float64 comparison above).
            eager_tol = 5e-2 if dtype == "bf16" else 1e-4
            if not (d <= eager_tol):
                problems.append(f"loss differs from torch eager by {d:.3g}")
            if grad is not None:
                e = rel_max_err(grad[:rows], state["grad"][:rows])
                row["notes"].append(f"grad vs torch eager {e:.2g}")
                if not (e <= (1e-1 if dtype == "bf16" else 1e-3)):
                    problems.append(f"grad differs from torch eager by {e:.3g}")
            state.clear()
        row["check"] = "PASS" if not problems else "FAIL"
        row["notes"].extend(problems)
    except Exception as e:
        row["notes"].append(f"{type(e).__name__}: {e}")
        log(traceback.format_exc())
    finally:
        sync(device)
        if device == "cuda":
            torch.cuda.empty_cache()
    return row


def fmt(v, spec):
    """format(v, spec), or "-" padded to the spec's width when there is no value."""
    if v is not None:
        return format(v, spec)
    width = "".join(ch for ch in spec.split(".")[0] if ch.isdigit())
    return "-".rjust(int(width) if width else 1)


def print_table(rows, copy_gbs):
    log(f"copy bandwidth (device-to-device, read+write): {fmt(copy_gbs, '.0f')} GB/s")
    head = f"{'case':24s} {'dtype':5s} {'N':>5s} {'V':>7s} {'sdvp ms':>8s} {'torch ms':>8s} {'speedup':>7s} " \
           f"{'GB moved':>8s} {'GB/s':>6s} {'%copy':>6s} check"
    log(head)
    log("-" * len(head))
    for r in rows:
        log(f"{r['case']:24s} {r['dtype']:5s} {r['N']:>5d} {r['V']:>7d} {fmt(r['sdvp_ms'], '8.3f')} "
            f"{fmt(r['torch_ms'], '8.3f')} {fmt(r['speedup'], '7.2f')} "
            f"{fmt(None if r['bytes'] is None else r['bytes'] / 1e9, '8.3f')} {fmt(r['gbs'], '6.0f')} "
            f"{fmt(r['pct_copy'], '6.1f')} {r['check']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lib", required=True, help="the shared library built from ctypes_shim.cu")
    ap.add_argument("--emulate", action="store_true", help="CPU build of the kernels: checks only, smaller sizes")
    ap.add_argument("--out", default=os.environ.get("OUT") or None, help="folder for results.json")
    ap.add_argument("--only", default=None, help="comma-separated check indices to run")
    ap.add_argument("--gpu-cases", action="store_true", help="with --emulate: the GPU run's full-size case list")
    ap.add_argument("--skip-checks", action="store_true")
    ap.add_argument("--skip-timing", action="store_true")
    ap.add_argument("--timing-smoke", action="store_true",
                    help="run the timing code on tiny sizes on any device (tests this script, not the GPU)")
    args = ap.parse_args()

    t_start = time.time()
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
    report = {"device": device, "torch": torch.__version__}

    def save():  # after every phase, so that a run cut short still leaves its numbers
        report["seconds"] = time.time() - t_start
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            with open(os.path.join(args.out, "results.json"), "w") as f:
                json.dump(report, f, indent=1, default=str)

    passed = failed = 0
    if not args.skip_checks:
        log("== checks against the float64 reference")
        only = {int(i) for i in args.only.split(",")} if args.only else None
        checks, passed, failed = run_checks(lib, device, stream, args.emulate and not args.gpu_cases, only)
        report["checks"] = checks
        report["checks_passed"], report["checks_failed"] = passed, failed
        save()

    rows = []
    copy_gbs = None
    if (device == "cuda" or args.timing_smoke) and not args.skip_timing:
        log("== timing" + (" (smoke test: tiny sizes)" if args.timing_smoke else ""))
        try:
            copy_gbs = copy_bandwidth(device, (64 << 20) if args.timing_smoke else (2 << 30))
        except Exception as e:
            log(f"copy bandwidth failed: {e}")
        specs = [
            {"name": "ce+kd fwd", "dtype": "bf16", "N": 8192, "V": 128256, "eager": True},
            {"name": "ce+kd fwd", "dtype": "f32", "N": 4096, "V": 32000, "eager": True},
            {"name": "ce+kd jsd", "dtype": "bf16", "N": 8192, "V": 128256, "div": "jsd"},
            {"name": "ce+kd fwd, topk-64", "dtype": "bf16", "N": 8192, "V": 128256, "teacher": "topk", "k": 64},
            {"name": "ce+kd fwd, loss only", "dtype": "bf16", "N": 8192, "V": 128256, "grad": "none"},
        ]
        if args.timing_smoke:
            specs = [dict(sp, N=16, V=1003 if sp["dtype"] == "f32" else 1000) for sp in specs]
        for spec in specs:
            if args.timing_smoke:
                r = bench_case(lib, stream, spec, copy_gbs, device, iters=(1, 3, 1, 3))
            else:
                r = bench_case(lib, stream, spec, copy_gbs, device)
            log(f"  {spec['name']} {spec['dtype']} {spec['N']}x{spec['V']}: sdvp {fmt(r['sdvp_ms'], '.3f')} ms, "
                f"torch {fmt(r['torch_ms'], '.3f')} ms, {r['check']}; " + "; ".join(r["notes"]))
            rows.append(r)
            report["copy_gbs"] = copy_gbs
            report["timing"] = rows
            save()

    save()
    log(f"\nharness: {report['seconds']:.0f} s")
    if not args.skip_checks:
        log(f"checks: {passed} passed, {failed} failed")
    if rows:  # the table comes last
        print_table(rows, copy_gbs)
    return 0 if failed == 0 and all(r["check"] == "PASS" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
