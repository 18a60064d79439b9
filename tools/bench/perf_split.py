#!/usr/bin/env python3
"""Where a process's CPU time went inside a time window, from a
`perf record -e cpu-clock -k CLOCK_MONOTONIC` file: the share of samples per
kind of work (oneDNN's JIT matmul/conv kernels, OpenMP's spin and barriers,
the kernel's page faults and zeroing, copies, dtype conversions, named ATen
kernels, the Python interpreter), per thread too.  real_shape.py --perf runs
each side under perf and calls this on the timed window, so both sides'
profiles come from the same run as their timings.

    perf_split.py PERF_DATA [--window T0 T1] [--top 20] [--json]

T0/T1 are CLOCK_MONOTONIC seconds (the benchmarks' "window"); without them
the whole recording.  Needs perf with the cpu-clock software event (hardware
counters are often absent on VMs; this does not use them).
"""
import argparse
import collections
import json
import re
import subprocess
import sys

# (label, test on the symbol, test on the shared object), first match wins
KINDS = [
    ("oneDNN JIT kernels (matmul, conv)", None, lambda d: d.startswith("[JIT]") or "perf-" in d),
    ("OpenMP spin/barrier (libgomp)", None, lambda d: "libgomp" in d),
    ("kernel: zeroing new pages", lambda s: s.startswith("clear_page"), lambda d: "kernel" in d),
    ("kernel: page faults, other", None, lambda d: "kernel" in d),
    ("MKL gemm", lambda s: s.startswith("mkl_"), None),
    ("oneDNN (non-JIT)", lambda s: "dnnl::" in s, None),
    ("dtype conversion (bf16<->f32)", lambda s: "reduced_float_copy" in s or "convert" in s, None),
    ("copy / contiguous", lambda s: "copy_kernel" in s or "memmove" in s or "memcpy" in s, None),
    ("attention (flash / sdpa)", lambda s: "flash_attention" in s or "sdpa" in s, None),
    ("softmax / exp", lambda s: "softmax" in s or "_exp_reduce" in s, None),
    ("gelu / tanh / silu", lambda s: "tanh" in s or "gelu" in s or "silu" in s, None),
    ("norms (layer/rms)", lambda s: "LayerNorm" in s or "layer_norm" in s or "RowwiseMoments" in s, None),
    ("elementwise mul/add", lambda s: "mul_kernel" in s or "add_kernel" in s or "div_" in s, None),
    ("index / gather / scatter", lambda s: "index" in s or "scatter" in s or "gather" in s, None),
    ("reductions (sum/mean)", lambda s: "sum_kernel" in s or "reduce" in s or "mean" in s, None),
    ("cat / stack", lambda s: "cat" in s.split("<")[0], None),
    ("Python interpreter / gc", None, lambda d: "libpython" in d),
]


def kind(sym, dso):
    for label, on_sym, on_dso in KINDS:
        if on_sym and not on_sym(sym):
            continue
        if on_dso and not on_dso(dso):
            continue
        return label
    base = dso.rsplit("/", 1)[-1]
    return f"other: {base}"


def samples(path):
    out = subprocess.run(["perf", "script", "-i", path, "-F", "tid,time,ip,sym,dso"], capture_output=True,
                         text=True, check=True).stdout
    for ln in out.splitlines():
        m = re.match(r"\s*(\d+)\s+([\d.]+):\s+[0-9a-f]+\s+(.*)$", ln)
        if not m:
            continue
        rest = m.group(3).rstrip()
        i = rest.rfind(" (")
        sym, dso = (rest[:i], rest[i + 2:-1]) if i >= 0 else (rest, "?")
        yield float(m.group(2)), int(m.group(1)), sym, dso


def split(path, window=None, top=20):
    """{"samples", "cpu_seconds" (at the recorded frequency), "kinds": [[label, share]], "threads": {...}}"""
    freq = 0
    hdr = subprocess.run(["perf", "report", "-i", path, "--header-only"], capture_output=True, text=True).stdout
    m = re.search(r"sample_freq \}?\s*=\s*(\d+)", hdr)
    if m:
        freq = int(m.group(1))
    by_kind, by_thread = collections.Counter(), collections.defaultdict(collections.Counter)
    n = 0
    for t, tid, sym, dso in samples(path):
        if window and not window[0] <= t <= window[1]:
            continue
        k = kind(sym, dso)
        by_kind[k] += 1
        by_thread[tid][k] += 1
        n += 1
    res = {"samples": n, "cpu_seconds": n / freq if freq else None,
           "kinds": [[k, v / n] for k, v in by_kind.most_common(top)] if n else []}
    res["threads"] = {str(tid): {"samples": sum(c.values()),
                                 "top": [[k, v / sum(c.values())] for k, v in c.most_common(3)]}
                      for tid, c in sorted(by_thread.items(), key=lambda kv: -sum(kv[1].values()))[:4]}
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data")
    ap.add_argument("--window", nargs=2, type=float)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    r = split(a.data, a.window, a.top)
    if a.json:
        print(json.dumps(r))
        return
    cs = f", {r['cpu_seconds']:.1f} CPU-s" if r["cpu_seconds"] else ""
    print(f"{r['samples']} samples{cs}")
    for k, v in r["kinds"]:
        print(f"{100 * v:6.2f}%  {k}")
    for tid, t in r["threads"].items():
        print(f"thread {tid}: {t['samples']} samples, " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in t["top"]))


if __name__ == "__main__":
    sys.exit(main())
