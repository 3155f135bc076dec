# One line per kernel from `cuobjdump --dump-sass`: the instructions that say whether a row kernel
# does what it was written to do. Local memory (LDL/STL: spills or a stack array), 16-byte global
# loads and stores, bulk copies into shared memory (UBLKCP), mbarrier operations (SYNCS), cluster
# barriers (UCGABAR) and shared-memory vector loads.
#   cuobjdump --dump-sass build/gpu-bench/distill_loss_cuda.o | python3 bench/gpu/sass_summary.py
import re
import sys

from ptxas_summary import short_name

# column heading -> opcode prefix (the opcode as cuobjdump prints it, modifiers included)
COLUMNS = [
    ("LDL/STL", ("LDL", "STL")),
    ("LDG.128", ("LDG.E.128", "LDG.E.EF.128", "LDG.E.EL.128", "LDG.E.LU.128")),
    ("STG.128", ("STG.E.128", "STG.E.EF.128", "STG.E.LU.128")),  # STG.EF: of these, evict-first
    ("UBLKCP", ("UBLKCP",)),
    ("STG.EF", ("STG.E.EF.128",)),
    ("SYNCS", ("SYNCS",)),
    ("UCGABAR", ("UCGABAR_ARV", "UCGABAR_WAIT")),
    ("LDS.128", ("LDS.128",)),
]

INSTRUCTION = re.compile(r"^\s*/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P[0-9T]\s+)?([A-Z][A-Z0-9_.]*)")


def summarize(text):
    kernels = []
    for line in text.splitlines():
        m = re.search(r"Function : (\S+)", line)
        if m:
            kernels.append({"kernel": short_name(m.group(1)), "ops": {}})
            continue
        m = INSTRUCTION.match(line)
        if m and kernels:
            ops = kernels[-1]["ops"]
            ops[m.group(1)] = ops.get(m.group(1), 0) + 1
    return kernels


def count(ops, prefixes):
    return sum(n for op, n in ops.items() if any(op == p or op.startswith(p + ".") for p in prefixes))


def main():
    text = open(sys.argv[1]).read() if len(sys.argv) > 1 else sys.stdin.read()
    kernels = summarize(text)
    if not kernels:
        print("sass: no kernel found in the disassembly")
        return 1
    print(f"{'kernel':34s} " + " ".join(f"{h:>8s}" for h, _ in COLUMNS))
    local = 0
    for k in kernels:
        counts = [count(k["ops"], prefixes) for _, prefixes in COLUMNS]
        local += counts[0]
        print(f"{k['kernel']:34s} " + " ".join(f"{n:8d}" for n in counts))
    print("sass: no local-memory instructions" if local == 0 else f"sass: {local} local-memory instructions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
