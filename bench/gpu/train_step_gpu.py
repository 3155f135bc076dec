# The GPU train-step comparison of bench/gpu/run.sh: the built-in tiny-vlm student trained through
# sdvp's LibTorch runtime (bench/gpu/train_step_bench.cc, the fused loss in autograd) against the
# same TorchScript file trained from Python with the loss in PyTorch eager and under torch.compile;
# plus each side's loss alone (forward and backward on a [batch, vocab] leaf). Returns table rows.
import json
import os
import subprocess
import sys
import time

import torch

from gpu_timing import median, sync, time_ms
from torch_baselines import compile_fn, first_call, short_reason

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from train_step_torch import load_batch, make_objective, make_step  # noqa: E402  (bench/, beside this folder)


def run_sdvp(binary, folder, device, batch, vocab, steps, warmup, loss_runs, timeout_s):
    """The C++ harness's JSON, or {"error": reason}."""
    if not binary or not os.path.exists(binary):
        return {"error": f"the LibTorch harness was not built ({binary or 'no path'})"}
    cmd = [binary, "--dir", folder, "--device", device, "--batch", str(batch), "--vocab", str(vocab),
           "--steps", str(steps), "--warmup", str(warmup), "--loss-runs", str(loss_runs)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"the LibTorch harness ran past {timeout_s:.0f} s"}
    lines = [line for line in out.stdout.strip().splitlines() if line.startswith("{")]
    if not lines:
        tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
        return {"error": f"the LibTorch harness exited {out.returncode}: {' | '.join(tail)}"[:300]}
    try:
        result = json.loads(lines[-1])
    except ValueError as e:  # e.g. a NaN printed by the harness
        return {"error": f"unreadable harness output ({e}): {lines[-1][:200]}"}
    if out.returncode != 0 and "error" not in result:
        result["error"] = f"exit status {out.returncode}"
    return result


def run_python(folder, device, compiled, steps, warmup, loss_runs):
    """Trains model.pt of `folder` from Python on `device`; the loss eager or under torch.compile.
    Per-step wall clock with a device synchronisation at the end of each step (sdvp's step returns its
    loss to the host, so it synchronises too). -> dict with stepMs, lossAloneMs, losses or error."""
    meta, images, tokens, labels, teacher = load_batch(folder)
    images, tokens, labels, teacher = (x.to(device) for x in (images, tokens, labels, teacher))
    model = torch.jit.load(os.path.join(folder, "model.pt"), map_location=device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=meta["lr"], weight_decay=meta["weightDecay"])
    objective = make_objective(meta, labels, teacher)
    result = {"torch": torch.__version__}
    if compiled:
        objective, reason = compile_fn(objective)
        if objective is None:
            return dict(result, error=reason)
    step = make_step(model, optimizer, objective, images, tokens)
    seconds, reason = first_call(step, device)  # the compilation, when compiled
    if reason:
        return dict(result, error=reason)
    result["firstStepSeconds"] = seconds
    try:
        for _ in range(warmup):
            step()
        sync(device)
        step_ms, losses = [], []
        for _ in range(steps):
            t0 = time.perf_counter()
            loss = step()
            sync(device)
            step_ms.append((time.perf_counter() - t0) * 1e3)
            losses.append(float(loss))
        logits = (torch.randn(meta["rows"], meta["vocab"], device=device) * 2).requires_grad_(True)

        def alone():
            logits.grad = None
            objective(logits).backward()

        alone()  # a new input shape for the compiled function: compile before timing
        result["lossAloneMsMedian"] = time_ms(device, alone, warmup, loss_runs)
    except Exception as e:
        return dict(result, error=short_reason(e))
    result.update(stepMs=step_ms, stepMsMedian=median(step_ms), losses=losses)
    return result


def train_step_rows(binary, workdir, device, batch, vocab, steps, warmup, loss_runs, timeout_s, log):
    """Table rows for the train step and the loss alone, sdvp against PyTorch eager and compiled."""
    os.makedirs(workdir, exist_ok=True)
    sdvp = run_sdvp(binary, workdir, device, batch, vocab, steps, warmup, loss_runs, timeout_s)
    log(f"  sdvp (LibTorch {sdvp.get('libtorch', '?')}): " +
        (sdvp["error"] if "error" in sdvp else
         f"step {sdvp['stepMsMedian']:.3f} ms, loss alone {sdvp['lossAloneMsMedian']:.3f} ms"))
    have_batch = os.path.exists(os.path.join(workdir, "model.pt"))
    sides = {}
    for compiled in (False, True):
        name = "compiled" if compiled else "eager"
        if not have_batch:
            sides[name] = {"error": "no model and batch (the LibTorch harness did not write them)"}
            continue
        try:
            sides[name] = run_python(workdir, device, compiled, steps, warmup, loss_runs)
        except Exception as e:
            sides[name] = {"error": short_reason(e)}
        r = sides[name]
        log(f"  PyTorch {name}: " + (r["error"] if "error" in r else
                                     f"step {r['stepMsMedian']:.3f} ms, loss alone {r['lossAloneMsMedian']:.3f} ms"))
    shape = f"{batch}x{vocab}"
    step_section, loss_section = f"train step {shape}", f"loss fwd+bwd {shape}"
    sdvp_note = sdvp.get("error") or (f"host->device {sdvp['hostBytesPerStep'] / 1e6:.1f} MB per step: "
                                      "the API takes host arrays")
    device_note = sdvp.get("error") or "same model file, inputs on the device, torch::optim::AdamW"
    steps_of = [("sdvp Model::train_step", sdvp.get("stepMsMedian"), None, sdvp_note),
                ("sdvp loss in a LibTorch step", sdvp.get("deviceStepMsMedian"), None, device_note),
                ("PyTorch eager loss", sides["eager"].get("stepMsMedian"), "eager", sides["eager"].get("error")),
                ("PyTorch torch.compile loss", sides["compiled"].get("stepMsMedian"), "compile",
                 sides["compiled"].get("error"))]
    rows = [{"section": step_section, "variant": name, "dtype": "f32", "shape": shape, "ms": ms,
             "samples_s": batch * 1e3 / ms if ms else None, "baseline": baseline, "note": note}
            for name, ms, baseline, note in steps_of]
    for name, r, baseline in (("sdvp fused loss", sdvp, None), ("PyTorch eager", sides["eager"], "eager"),
                              ("PyTorch torch.compile", sides["compiled"], "compile")):
        rows.append({"section": loss_section, "variant": name, "dtype": "f32", "shape": shape,
                     "ms": r.get("lossAloneMsMedian"), "baseline": baseline, "note": r.get("error")})
    return rows, {"sdvp": sdvp, **sides}
