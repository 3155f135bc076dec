# Condenses nvcc's -Xptxas=-v report into one line per kernel: registers, spills, stack, shared memory.
import re
import subprocess
import sys

ENUMS = {
    "DTypeE": {"0": "f32", "1": "bf16"},
    "TeacherKindE": {"0": "none", "1": "dense", "2": "topk"},
    "DivergenceE": {"0": "fwd-kl", "1": "rev-kl", "2": "jsd"},
}


def short_name(mangled: str) -> str:
    """rows<bf16, dense, fwd-kl> (cluster<...>) from the mangled name of the block (cluster) row kernel;
    other kernels by their base name."""
    family = "rows" if "distill_rows_kernel" in mangled else "cluster" if "distill_cluster_kernel" in mangled else None
    if family:
        parts = []
        for key, names in ENUMS.items():
            m = re.search(r"NS_\d*" + key + r"(\d)E|N\d*sdvp\d*" + key + r"(\d)E|" + key + r"(\d)E", mangled)
            if m:
                digit = next(g for g in m.groups() if g is not None)
                parts.append(names.get(digit, digit))
        return family + "<" + ", ".join(parts) + ">"
    try:
        demangled = subprocess.run(["c++filt", mangled], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        demangled = mangled
    m = re.search(r"(\w+)\(", demangled)
    return m.group(1) if m else demangled


def summarize(text: str) -> list:
    rows = []
    current = None
    for line in text.splitlines():
        m = re.search(r"Compiling entry function '([^']+)'", line)
        if m:
            current = {"kernel": short_name(m.group(1)), "regs": None, "spill_st": None, "spill_ld": None,
                       "stack": None, "smem": 0}
            rows.append(current)
            continue
        if current is None:
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            current["stack"], current["spill_st"], current["spill_ld"] = (int(g) for g in m.groups())
        m = re.search(r"Used (\d+) registers", line)
        if m:
            current["regs"] = int(m.group(1))
            s = re.search(r"(\d+) bytes smem", line)
            current["smem"] = int(s.group(1)) if s else 0
    return rows


def main() -> int:
    text = open(sys.argv[1]).read() if len(sys.argv) > 1 else sys.stdin.read()
    rows = summarize(text)
    if not rows:
        print("ptxas: no kernel report found (was -Xptxas=-v given?)")
        return 1
    print(f"{'kernel':34s} {'regs':>4s} {'spill st/ld':>12s} {'stack':>6s} {'smem':>6s}")
    spills = 0
    for r in rows:
        spill = f"{r['spill_st']}/{r['spill_ld']}"
        spills += (r["spill_st"] or 0) + (r["spill_ld"] or 0)
        print(f"{r['kernel']:34s} {r['regs']!s:>4s} {spill:>12s} {r['stack']!s:>6s} {r['smem']:>6d}")
    print("ptxas: no local-memory spills" if spills == 0 else f"ptxas: SPILLS present ({spills} bytes total)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
