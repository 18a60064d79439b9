"""Driver for tools/bench/swap: runs the evalhost side (swap.lua through the
binary), checks that every load delivered the weights intact, then measures
in this process, on the same device and bytes, a plain pinned copy_ (the
PCIe ceiling) and the seed's way (nn.Module.to() from pageable memory), and
prints the figures and ratios.

  swap_bench.py EVALHOST_BIN SWAP_LUA GB PARAMS REPS DTYPE
"""
import base64
import io
import json
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
from PIL import Image


def evalhost_side(exe, script, nbytes, params, reps, dtype, device):
    px = io.BytesIO()
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(px, format="PNG")
    cfg = {"bytes": nbytes, "params": params, "reps": reps, "dtype": dtype, "device": device,
           "pixel_png": base64.b64encode(px.getvalue()).decode()}
    env = dict(os.environ, EH_SWAP=json.dumps(cfg))
    p = subprocess.run([exe, script, "--verbose"], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"swap bench: evalhost failed (rc {p.returncode}):\n{p.stderr}")
    res = json.loads(p.stdout.strip().splitlines()[-1])
    m = re.search(r"\[load\] editor: .*in host memory \(([^)]*)\)", p.stderr)
    res["host_kind"] = m.group(1) if m else "?"
    # every load's forward must read the known mean of means back
    torch_dtype = getattr(torch, dtype)
    mean = sum(((i % 7) + 1) / 8 for i in range(params)) / params
    v = float(torch.tensor(mean, dtype=torch_dtype).float()) * np.float32(255.0) + np.float32(0.5)
    want = int(min(max(v, 0), 255))
    res["checks_ok"] = sum(
        int((np.asarray(Image.open(io.BytesIO(base64.b64decode(b)))) == want).all()) for b in res["checks"])
    res["checks_n"] = len(res["checks"])
    return res


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def pinned_copy(nbytes, reps, device):
    """One flat pinned tensor copied into one device tensor: the bandwidth ceiling."""
    cuda = device.startswith("cuda")
    h = torch.empty(nbytes, dtype=torch.uint8)
    h.fill_(1)
    registered, register_s = False, None
    if cuda:
        # page-locked the way evalhost does it (cudaHostRegister, exact size);
        # torch's pinned allocator would round 40 GB up to 64 GB
        rt = torch.cuda.cudart()
        t0 = time.perf_counter()
        registered = int(rt.cudaHostRegister(h.data_ptr(), nbytes, 0)) == 0
        register_s = time.perf_counter() - t0 if registered else None
        if not registered:
            h = h.pin_memory()
    d = torch.empty(nbytes, dtype=torch.uint8, device=device)
    d.copy_(h, non_blocking=cuda)   # warm-up: context, allocator
    sync(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        d.copy_(h, non_blocking=cuda)
        sync(device)
        times.append(time.perf_counter() - t0)
    if registered:
        torch.cuda.cudart().cudaHostUnregister(h.data_ptr())
    del h, d
    if cuda:
        torch.cuda.empty_cache()
    return times, register_s


def seed_way(nbytes, params, reps, dtype, device):
    """The seed's swap: model.to(device) from pageable memory, model.to("cpu") back."""
    torch_dtype = getattr(torch, dtype)
    per = max(1, nbytes // params // torch.tensor([], dtype=torch_dtype).element_size())
    model = torch.nn.Module()
    model.ps = torch.nn.ParameterList(
        [torch.nn.Parameter(torch.full([per], ((i % 7) + 1) / 8, dtype=torch_dtype), requires_grad=False)
         for i in range(params)])
    loads, unloads = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        model.to(device)
        sync(device)
        loads.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        model.to("cpu")
        sync(device)
        unloads.append(time.perf_counter() - t0)
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return loads, unloads


def main():
    exe, script, gb, params, reps, dtype = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), \
        int(sys.argv[5]), sys.argv[6]
    nbytes = int(gb * 1e9)
    cuda = torch.cuda.is_available()
    device = os.environ.get("DEVICE") or ("cuda:0" if cuda else "cpu")
    if not cuda:
        print("swap bench: NOTE: no CUDA device here (torch %s, cuda available: no). Measuring the CPU path only:\n"
              "  on the CPU the pinned host copy IS the device copy, so a load moves nothing and is bookkeeping;\n"
              "  GB/s figures for the PCIe path need a GPU (run this again on one)." % torch.__version__)
    name = torch.cuda.get_device_name(device) if cuda else "CPU"

    ours = evalhost_side(exe, script, nbytes, params, reps, dtype, device)
    pin, register_s = pinned_copy(ours["bytes_per_load"], reps, device)
    # SEED_REPS=0 leaves the seed's way out (at 60 GB it costs a minute)
    seed_reps = int(os.environ.get("SEED_REPS", max(1, min(reps, 2))))
    seed_l, seed_u = seed_way(nbytes, params, seed_reps, dtype, device) if seed_reps > 0 else ([float("nan")], [float("nan")])

    b = ours["bytes_per_load"]
    med = statistics.median
    ol, ou = med(ours["load_seconds"]), med(ours["unload_seconds"])
    pl, sl, su = med(pin), med(seed_l), med(seed_u)

    def gbs(t):
        return b / t / 1e9 if t > 0 else float("inf")

    print(f"swap bench: {b / 1e9:.2f} GB {dtype} in {params} parameters on {ours['device']} ({name}); "
          f"host copy {ours['host_kind']}; medians of {reps} (seed: {seed_reps})")
    print(f"  evalhost first load: read+pack into host memory {ours['to_host_seconds']:.2f} s, "
          f"then copy {ours['first_copy_seconds']:.3f} s")
    print(f"  {'':34}{'load GB/s':>10}{'load s':>10}{'unload s':>10}")
    ours_gbs = f"{gbs(ol):10.1f}" if cuda else f"{'-':>10}"   # nothing moves on the CPU
    print(f"  {'evalhost Model:load/:unload':34}{ours_gbs}{ol:10.3f}{ou:10.4f}")
    print(f"  {'pinned copy_ (one flat tensor)':34}{gbs(pl):10.1f}{pl:10.3f}{'-':>10}")
    seed_gbs = f"{gbs(sl):10.1f}" if cuda else f"{'-':>10}"   # .to("cpu") on the CPU is a no-op
    if seed_reps > 0:
        print(f"  {'seed: .to() pageable / .to(cpu)':34}{seed_gbs}{sl:10.3f}{su:10.4f}")
    else:
        print(f"  {'seed: .to() pageable / .to(cpu)':34}  (left out: SEED_REPS=0)")
    if cuda:
        print(f"  ratios: load = {100 * pl / ol:.1f}% of the pinned-copy bandwidth (goal >= 90%); "
              + (f"{sl / ol:.1f}x faster than the seed's load; " if seed_reps > 0 else "")
              + f"unload {ou:.4f} s (goal <= 0.1 s)"
              + (f", {su / ou if ou > 0 else float('inf'):.0f}x faster than the seed's" if seed_reps > 0 else ""))
    else:
        print(f"  CPU path: load {ol * 1e6:.1f} us and unload {ou * 1e6:.1f} us of bookkeeping; "
              f"a memcpy of the same bytes takes {pl:.3f} s ({gbs(pl):.1f} GB/s)")
    if register_s is not None:
        print(f"  cudaHostRegister of the {b / 1e9:.2f} GB: {register_s:.2f} s ({b / register_s / 1e9:.1f} GB/s)")
    print(f"  weights check: {ours['checks_ok']}/{ours['checks_n']} loads read every weight back intact")
    if os.environ.get("SWAP_JSON"):   # tools/gpu/check.sh's record of this run
        with open(os.environ["SWAP_JSON"], "w") as f:
            json.dump({"bytes": b, "dtype": dtype, "device": ours["device"], "gpu": name, "host_kind": ours["host_kind"],
                       "reps": reps, "load_s": ol, "load_gbs": gbs(ol) if cuda else None, "unload_s": ou,
                       "pinned_copy_s": pl, "pinned_copy_gbs": gbs(pl), "load_vs_pinned": pl / ol if cuda else None,
                       "host_register_s": register_s, "to_host_s": ours["to_host_seconds"],
                       "first_copy_s": ours["first_copy_seconds"], "seed_load_s": sl if seed_reps > 0 else None,
                       "seed_unload_s": su if seed_reps > 0 else None,
                       "checks_ok": ours["checks_ok"], "checks_n": ours["checks_n"]}, f, indent=1)
    sys.exit(0 if ours["checks_ok"] == ours["checks_n"] else 1)


if __name__ == "__main__":
    main()
