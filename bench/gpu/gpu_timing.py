# Timing helpers of the GPU benchmark: medians over CUDA events after warm-up (a host clock on the
# CPU, where only the harness's own logic is being exercised), and the device's copy bandwidth.
import time

import torch


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
    return median(times)


def median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def copy_bandwidth(device, nbytes=2 << 30):
    """Device-to-device copy of nbytes: (bytes read + bytes written) / median time -> (GB/s, ms)."""
    src = torch.empty(nbytes, dtype=torch.uint8, device=device).fill_(1)
    dst = torch.empty_like(src)
    ms = time_ms(device, lambda: dst.copy_(src), 3, 10)
    del src, dst
    if device == "cuda":
        torch.cuda.empty_cache()
    return 2 * nbytes / (ms * 1e-3) / 1e9, ms
