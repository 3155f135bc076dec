# The GPU benchmark's one table (bench/gpu/run.sh prints it last): one row per measured variant,
# grouped by section (copy bandwidth, each loss case, the train step, the loss alone), with time,
# achieved bandwidth against the bytes floor, samples/s, and speed ratios to PyTorch eager and
# torch.compile in the same section.
#
#   python3 bench/gpu/report_table.py --self-test
# formats fabricated rows to test the layout. That output is marked SELF-TEST on every line; it is
# never a measurement and must never be quoted as one.
import argparse
import sys

# (key, heading, width, format); text columns left-aligned, numbers right-aligned.
COLUMNS = [
    ("section", "section", 24, "s"),
    ("variant", "variant", 30, "s"),
    ("dtype", "dtype", 5, "s"),
    ("shape", "shape", 13, "s"),
    ("ms", "ms", 8, ".3f"),
    ("gbs", "GB/s", 6, ".0f"),
    ("pct_copy", "%copy", 6, ".1f"),
    ("samples_s", "samples/s", 9, ".0f"),
    ("x_eager", "x eager", 7, ".2f"),
    ("x_compile", "x compile", 9, ".2f"),
    ("check", "check", 5, "s"),
]


def cell(value, width, spec):
    if value is None or value == "":
        return "-".rjust(width) if spec != "s" else "-".ljust(width)
    if spec == "s":
        return str(value)[:width].ljust(width)
    return format(value, f">{width}{spec}")


def add_ratios(rows):
    """x eager / x compile: the eager (compiled) row's ms over this row's ms, within each section."""
    by_section = {}
    for r in rows:
        by_section.setdefault(r["section"], []).append(r)
    for group in by_section.values():
        eager = next((r["ms"] for r in group if r.get("baseline") == "eager" and r.get("ms")), None)
        compiled = next((r["ms"] for r in group if r.get("baseline") == "compile" and r.get("ms")), None)
        for r in group:
            if r.get("ms") and r.get("baseline") != "eager" and eager:
                r["x_eager"] = eager / r["ms"]
            if r.get("ms") and r.get("baseline") not in ("eager", "compile") and compiled:
                r["x_compile"] = compiled / r["ms"]
    return rows


def format_table(rows, prefix=""):
    """The table's lines; each row's `note` (why a value is missing, the kernel choice) follows it."""
    add_ratios(rows)
    head = " ".join(cell(h, w, "s") if f == "s" else h.rjust(w) for _, h, w, f in COLUMNS)
    lines = [prefix + head, prefix + "-" * len(head)]
    for r in rows:
        lines.append(prefix + " ".join(cell(r.get(k), w, f) for k, _, w, f in COLUMNS).rstrip())
        if r.get("note"):
            lines.append(prefix + " " * 26 + "^ " + r["note"])
    return lines


def self_test_rows():
    """Fabricated rows that exercise every column, a missing value and a note. NOT measurements."""
    return [
        {"section": "copy", "variant": "device-to-device 2 GiB", "ms": 1.0, "gbs": 4000.0, "pct_copy": 100.0},
        {"section": "ce+kd fwd", "variant": "sdvp block", "dtype": "bf16", "shape": "64x1000", "ms": 2.0,
         "gbs": 2000.0, "pct_copy": 50.0, "check": "PASS"},
        {"section": "ce+kd fwd", "variant": "sdvp cluster C=4 (auto)", "dtype": "bf16", "shape": "64x1000",
         "ms": 1.0, "gbs": 4000.0, "pct_copy": 100.0, "check": "PASS"},
        {"section": "ce+kd fwd", "variant": "torch eager", "dtype": "bf16", "shape": "64x1000", "ms": 8.0,
         "baseline": "eager"},
        {"section": "ce+kd fwd", "variant": "torch.compile", "dtype": "bf16", "shape": "64x1000", "ms": None,
         "baseline": "compile", "note": "RuntimeError: fabricated failure"},
        {"section": "train step 4x10", "variant": "sdvp LibTorch (fused loss)", "dtype": "f32", "shape": "4x10",
         "ms": 4.0, "samples_s": 1000.0},
        {"section": "train step 4x10", "variant": "PyTorch eager loss", "dtype": "f32", "shape": "4x10",
         "ms": 5.0, "samples_s": 800.0, "baseline": "eager"},
    ]


def main():
    ap = argparse.ArgumentParser(description="formats the GPU benchmark table")
    ap.add_argument("--self-test", action="store_true", help="format fabricated rows (layout test only)")
    args = ap.parse_args()
    if not args.self_test:
        ap.error("the table is printed by check_and_time.py; this entry point only has --self-test")
    rows = self_test_rows()
    lines = format_table(rows, prefix="SELF-TEST | ")
    print("SELF-TEST | fabricated numbers to check the layout: NOT measurements")
    print("\n".join(lines))
    expected = {("ce+kd fwd", "sdvp block"): (4.0, None), ("ce+kd fwd", "sdvp cluster C=4 (auto)"): (8.0, None),
                ("train step 4x10", "sdvp LibTorch (fused loss)"): (1.25, None)}
    bad = [key for key, (xe, xc) in expected.items()
           for r in rows if (r["section"], r["variant"]) == key and (r.get("x_eager") != xe or r.get("x_compile") != xc)]
    widths = {len(line) for line in lines[:2]}
    if bad or len(widths) != 1:
        print(f"SELF-TEST | FAILED: ratios {bad}, header widths {widths}")
        return 1
    print("SELF-TEST | passed (ratios and layout)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
