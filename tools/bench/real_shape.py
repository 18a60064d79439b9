#!/usr/bin/env python3
"""Side-by-side benchmarks at the job's real widths (tools/make_real_shape.py
checkpoints: the real configs with the layer counts cut), each side in its
own process so its peak RSS is its own (wait4's ru_maxrss).

  real_shape.py judge  [--model qwen3-vl-30b-a3b|qwen3-vl-8b] [--pairs 8] [--batch 8] [--mp 0.25]
                       [--new-tokens 8] [--modes logits,generate]
      the native judge's score_batch (logits mode: one batched prefill, the
      "0".."10" logits at the last position) vs transformers' forward on the
      same tokens in batches of BATCH (logits_to_keep=1); generate mode
      (greedy, NEW_TOKENS) vs transformers' generate, one pair at a time on
      both sides.
  real_shape.py editor [--size 256] [--steps 2] [--images 2] [--cfg 4.0] [--one-call]
      the native editor vs diffusers' QwenImageEditPlusPipeline (true CFG on:
      two transformer passes a step), same input, seed and size; --one-call
      also runs ours with cfg_one_call (the two passes as one call of twice
      the batch) and reports its gain over two calls.

Both judges get evalhost.chat's layout (system; the original, then the
edited picture, each after its label; the prompt), so they score the same
tokens.  Common: --device cpu|cuda:0, --dtype bfloat16|float32, --out
results.json, --dir (where the checkpoint is generated; kept with --keep),
--layers N, --threads N (OMP_NUM_THREADS of both sides), --perf (each side
under `perf record`; the JSON and the printout get where the CPU time of its
timed window went, from tools/bench/perf_split.py).  On a GPU the same
script runs the job's sizes: judge --mp 1.0, editor --size 1024 --steps 50
--device cuda:0.
Prints one line per side (seconds per item, CPU seconds per item, peak RSS
GiB) and the ratios (speed: reference time / ours, also in CPU time, which
a shared machine's load disturbs less; memory: ours / reference).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PY = sys.executable


PERF = None   # --perf: a folder for each side's perf recording


def peak_rss(cmd, env=None, name=None):
    """Runs cmd; (its stdout's last JSON line, its peak RSS in bytes from
    wait4, wall seconds).  With --perf, cmd runs under perf record (cpu-clock
    at 250 Hz, CLOCK_MONOTONIC stamps) and the JSON gets "profile": where the
    CPU time of its timed "window" went (perf_split.py)."""
    data = None
    if PERF and name:
        data = os.path.join(PERF, name + ".perf.data")
        cmd = ["perf", "record", "-q", "-e", "cpu-clock", "-F", "250", "-k", "CLOCK_MONOTONIC", "-o", data, "--"] + cmd
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, **(env or {})))
    out_chunks, err_chunks = [], []
    to = threading.Thread(target=lambda: out_chunks.append(p.stdout.read()))
    te = threading.Thread(target=lambda: err_chunks.append(p.stderr.read()))
    to.start(), te.start()
    _, status, ru = os.wait4(p.pid, 0)
    to.join(), te.join()
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    out, err = out_chunks[0], err_chunks[0]
    if p.returncode:
        sys.exit(f"{' '.join(cmd[:2])} failed ({p.returncode}):\n{err[-4000:]}")
    lines = [l for l in out.strip().splitlines() if l.startswith("{")]
    res = json.loads(lines[-1])
    if data:
        sys.path.insert(0, HERE)
        import perf_split
        res["profile"] = perf_split.split(data, res.get("window"))
        res["profile"]["data"] = data
    return res, ru.ru_maxrss * 1024, wall


def images(mp):
    """Two fixed pictures of about mp megapixels (sides multiples of 32)."""
    import numpy as np
    from PIL import Image
    side = max(32, int((mp * 1e6) ** 0.5) // 32 * 32)
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:side, 0:side]
    a = np.stack([(xx * 2) % 256, (yy * 3) % 256, (xx + yy) % 256], -1).astype(np.uint8)
    a = np.clip(a.astype(int) + rng.integers(-20, 20, a.shape), 0, 255).astype(np.uint8)
    b = rng.integers(0, 256, (side, side, 3)).astype(np.uint8)
    return Image.fromarray(a), Image.fromarray(b)


SYSTEM = "You are a strict judge of image edits. Reply with one integer from 0 to 10."
# evalhost.chat.LABELS: the text before each picture in the judge's default layout
LABELS = {"original": "原始图像 / original image:", "edited": "编辑后的图像 / edited image:"}


def prompts(n):
    # Qwen's tokenizer splits digits one by one: every prompt has the same length
    return [f"Instruction: make the sky purple (pair {i:03d}).\nRate how well the edited image (first) follows it, "
            f"given the original (second)." for i in range(n)]


JUDGE_LUA = r"""
local eh = require "evalhost"
local P = eh.json.decode(os.getenv("EH_BENCH"))
local m = assert(eh.model.open({backend = "native", path = P.dir, device = P.device, dtype = P.dtype,
                                batch_size = P.batch, mode = P.mode, max_new_tokens = P.new_tokens}, "judge"))
local t0 = eh.clock()
assert(m:load())
local load = eh.clock() - t0
local ed, og = assert(eh.image.load(P.edited)), assert(eh.image.load(P.original))
local reqs = {}
-- evalhost.chat's layout (the original, then the edited picture, each after its label): TF_JUDGE builds the same
for i, p in ipairs(P.prompts) do reqs[i] = {image = ed, original = og, system_prompt = P.system, user_prompt = p} end
m:score_batch({reqs[1]})                       -- warm-up
t0 = eh.clock()
local c0 = os.clock()                          -- the process's CPU time, all threads
local rs = assert(m:score_batch(reqs))
local dt, cpu = eh.clock() - t0, os.clock() - c0
-- generate mode on random weights: a reply without a score is that item's error, whose quote of the reply is
-- compared with transformers' greedy text (the parity tests compare replies exactly)
local texts = {}
for i, r in ipairs(rs) do
  assert(r.score or P.mode == "generate", r.error)
  texts[i] = r.text or (tostring(r.error):match(': "(.*)"$')) or tostring(r.error)
end
io.stdout:write(eh.json.encode({seconds = dt, cpu_seconds = cpu, load_seconds = load, first = rs[1].score or texts[1],
                                text = rs[1].text, texts = texts, window = {t0, t0 + dt}}), "\n")
"""

TF_JUDGE = r"""
import json, os, sys, time
import torch
P = json.loads(os.environ["EH_BENCH"])
from PIL import Image
from transformers import AutoModelForImageTextToText, PreTrainedTokenizerFast, Qwen2VLImageProcessor
dtype = getattr(torch, P["dtype"])
t0 = time.perf_counter()
model = AutoModelForImageTextToText.from_pretrained(P["dir"], dtype=dtype).to(P["device"]).eval()
load = time.perf_counter() - t0
fast = PreTrainedTokenizerFast(tokenizer_file=os.path.join(P["dir"], "tokenizer.json"))
proc = Qwen2VLImageProcessor.from_pretrained(P["dir"])
template = open(os.path.join(P["dir"], "chat_template.jinja")).read()
ed, og = Image.open(P["edited"]), Image.open(P["original"])
pix = proc(images=[og, ed], return_tensors="pt")   # evalhost.chat's order: the original first
counts = (pix["image_grid_thw"].prod(-1) // 4).tolist()
digits = [fast.convert_tokens_to_ids(str(d)) for d in range(10)]
image_id = model.config.image_token_id
def ids_of(prompt):
    msgs = [{"role": "system", "content": P["system"]},
            {"role": "user", "content": [{"type": "text", "text": P["labels"]["original"]}, {"type": "image"},
                                         {"type": "text", "text": P["labels"]["edited"]}, {"type": "image"},
                                         {"type": "text", "text": prompt}]}]
    text = fast.apply_chat_template(msgs, chat_template=template, tokenize=False, add_generation_prompt=True)
    a, b, c = text.split("<|image_pad|>")
    text = a + "<|image_pad|>" * counts[0] + b + "<|image_pad|>" * counts[1] + c
    return fast(text, add_special_tokens=False)["input_ids"]
dev = P["device"]
def score(prompts):
    ids = torch.tensor([ids_of(p) for p in prompts], device=dev)
    n = len(prompts)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), mm_token_type_ids=(ids == image_id).int(),
                    pixel_values=pix["pixel_values"].repeat(n, 1).to(dev, dtype),
                    image_grid_thw=pix["image_grid_thw"].repeat(n, 1).to(dev), logits_to_keep=1)
    p = out.logits[:, -1, digits].float().softmax(-1)
    return (p * torch.arange(10, device=p.device)).sum(-1).tolist()
def generate(prompt):
    ids = torch.tensor([ids_of(prompt)], device=dev)
    with torch.no_grad():
        g = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), mm_token_type_ids=(ids == image_id).int(),
                           pixel_values=pix["pixel_values"].to(dev, dtype), image_grid_thw=pix["image_grid_thw"].to(dev),
                           max_new_tokens=P["new_tokens"], min_new_tokens=P["new_tokens"], do_sample=False,
                           pad_token_id=fast.convert_tokens_to_ids("<|endoftext|>"))
    return fast.decode(g[0, ids.shape[1]:], skip_special_tokens=True)
ps = P["prompts"]
if P["mode"] == "logits":
    score(ps[:1])
    t0, c0 = time.perf_counter(), time.process_time()
    res = []
    for i in range(0, len(ps), P["batch"]):
        res += score(ps[i:i + P["batch"]])
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    first = res[0]
else:
    generate(ps[0])
    t0, c0 = time.perf_counter(), time.process_time()
    res = [generate(p) for p in ps]
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    first = res[0]
print(json.dumps({"seconds": dt, "cpu_seconds": cpu, "load_seconds": load, "first": first, "window": [t0, t0 + dt],
                  "texts": res if P["mode"] == "generate" else None}))
"""


def bench_judge(a, work):
    d = os.path.join(work, a.model)
    if not os.path.exists(os.path.join(d, "real_shape.json")):
        subprocess.run([PY, os.path.join(ROOT, "tools", "make_real_shape.py"), a.model, d, "--layers", str(a.layers),
                        "--vision-layers", "3", "--dtype", a.dtype], check=True, stdout=subprocess.DEVNULL)
    info = json.load(open(os.path.join(d, "real_shape.json")))
    ed, og = images(a.mp)
    ep, op = os.path.join(work, "edited.png"), os.path.join(work, "original.png")
    ed.save(ep), og.save(op)
    rows = []
    for mode in a.modes.split(","):
        P = {"dir": d, "device": a.device, "dtype": a.dtype, "batch": a.batch if mode == "logits" else 1,
             "mode": mode, "new_tokens": a.new_tokens, "prompts": prompts(a.pairs), "system": SYSTEM, "labels": LABELS,
             "edited": ep, "original": op}
        env = {"EH_BENCH": json.dumps(P), "OMP_NUM_THREADS": str(a.threads)}
        lua = os.path.join(work, "judge.lua")
        open(lua, "w").write(JUDGE_LUA)
        ours, ours_rss, _ = peak_rss([a.bin, lua], env, f"evalhost_judge_{mode}")
        tfp = os.path.join(work, "tf_judge.py")
        open(tfp, "w").write(TF_JUDGE)
        theirs, their_rss, _ = peak_rss([PY, tfp], env, f"transformers_judge_{mode}")
        row = {"mode": mode, "ours": dict(ours, peak_rss=ours_rss), "transformers": dict(theirs, peak_rss=their_rss),
               "speed_ratio": theirs["seconds"] / ours["seconds"], "memory_ratio": ours_rss / their_rss}
        if mode == "generate":   # greedy on both sides: the same replies
            # (whitespace aside: ours may be an error's quote, where newlines are spaces)
            row["same_text"] = sum(a.split() == b.split() for a, b in zip(ours.get("texts") or [], theirs.get("texts") or []))
        rows.append(row)
    return {"bench": "judge", "model": a.model, "stand_in": info.get("stand_in"), "pairs": a.pairs, "batch": a.batch,
            "mp": a.mp, "device": a.device, "dtype": a.dtype, "threads": a.threads, "rows": rows}


EDITOR_LUA = r"""
local eh = require "evalhost"
local P = eh.json.decode(os.getenv("EH_BENCH"))
local m = assert(eh.model.open({backend = "native", path = P.dir, device = P.device, dtype = P.dtype,
  num_inference_steps = P.steps, true_cfg_scale = P.cfg, width = P.size, height = P.size, seed = 42,
  cfg_one_call = P.one_call}, "editor"))
local t0 = eh.clock()
assert(m:load())
local load = eh.clock() - t0
local img = assert(eh.image.load(P.image))
local pics = {}
for i = 1, P.pictures do pics[i] = img end
m:edit(P.pictures > 1 and pics or img, P.prompt)   -- warm-up
t0 = eh.clock()
local c0 = os.clock()
for _ = 1, P.images do assert(m:edit(P.pictures > 1 and pics or img, P.prompt)) end
local dt, cpu = eh.clock() - t0, os.clock() - c0
io.stdout:write(eh.json.encode({seconds = dt / P.images, cpu_seconds = cpu / P.images, load_seconds = load,
                                window = {t0, t0 + dt}}), "\n")
"""

DIFFUSERS_EDITOR = r"""
import json, os, sys, time
import torch
P = json.loads(os.environ["EH_BENCH"])
from PIL import Image
from diffusers import QwenImageEditPlusPipeline
from transformers.processing_utils import ProcessorMixin
ProcessorMixin.check_argument_for_proper_class = lambda self, name, arg: None   # no torchvision for the video part
dtype = getattr(torch, P["dtype"])
t0 = time.perf_counter()
# the processor built by hand: AutoProcessor would want torchvision for its video half
from transformers import Qwen2TokenizerFast, Qwen2VLImageProcessor, Qwen2VLProcessor
pd = os.path.join(P["dir"], "processor")
proc = Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor.from_pretrained(pd),
                        tokenizer=Qwen2TokenizerFast.from_pretrained(pd))
pipe = QwenImageEditPlusPipeline.from_pretrained(P["dir"], torch_dtype=dtype, processor=proc).to(P["device"])
pipe.set_progress_bar_config(disable=True)
load = time.perf_counter() - t0
img = Image.open(P["image"]).convert("RGB")
def one():
    g = torch.Generator("cpu").manual_seed(42)
    return pipe(image=[img] * P["pictures"], prompt=P["prompt"], negative_prompt=" ", true_cfg_scale=P["cfg"],
                num_inference_steps=P["steps"], width=P["size"], height=P["size"], generator=g).images[0]
one()
t0, c0 = time.perf_counter(), time.process_time()
for _ in range(P["images"]):
    one()
dt, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"seconds": dt / P["images"], "cpu_seconds": cpu / P["images"], "load_seconds": load,
                  "window": [t0, t0 + dt]}))
"""


def bench_editor(a, work):
    d = os.path.join(work, "qwen-image-edit-2509")
    if not os.path.exists(os.path.join(d, "real_shape.json")):
        subprocess.run([PY, os.path.join(ROOT, "tools", "make_real_shape.py"), "qwen-image-edit-2509", d, "--layers",
                        str(a.layers), "--dtype", a.dtype], check=True, stdout=subprocess.DEVNULL)
    info = json.load(open(os.path.join(d, "real_shape.json")))
    ed, _ = images(a.size * a.size / 1e6)
    ip = os.path.join(work, "input.png")
    ed.save(ip)
    P = {"dir": d, "device": a.device, "dtype": a.dtype, "steps": a.steps, "cfg": a.cfg, "size": a.size,
         "images": a.images, "pictures": a.pictures, "image": ip, "prompt": "make the sky purple", "one_call": False}
    lua = os.path.join(work, "editor.lua")
    open(lua, "w").write(EDITOR_LUA)
    env = {"EH_BENCH": json.dumps(P), "OMP_NUM_THREADS": str(a.threads)}
    ours, ours_rss, _ = peak_rss([a.bin, lua], env, "evalhost_editor")
    dp = os.path.join(work, "diffusers_editor.py")
    open(dp, "w").write(DIFFUSERS_EDITOR)
    theirs, their_rss, _ = peak_rss([PY, dp], env, "diffusers_editor")
    rows = [{"mode": f"cfg {a.cfg}", "ours": dict(ours, peak_rss=ours_rss), "diffusers": dict(theirs, peak_rss=their_rss),
             "speed_ratio": theirs["seconds"] / ours["seconds"], "memory_ratio": ours_rss / their_rss}]
    if a.one_call and a.cfg > 1:
        # cfg_one_call: the conditional and negative passes as one transformer call of twice the batch
        env = {"EH_BENCH": json.dumps(dict(P, one_call=True)), "OMP_NUM_THREADS": str(a.threads)}
        one, one_rss, _ = peak_rss([a.bin, lua], env, "evalhost_editor_one_call")
        rows.append({"mode": f"cfg {a.cfg}, cfg_one_call", "ours": dict(one, peak_rss=one_rss),
                     "diffusers": dict(theirs, peak_rss=their_rss), "speed_ratio": theirs["seconds"] / one["seconds"],
                     "memory_ratio": one_rss / their_rss, "gain_over_two_calls": ours["seconds"] / one["seconds"],
                     "cpu_gain_over_two_calls": ours["cpu_seconds"] / one["cpu_seconds"]})
    return {"bench": "editor", "model": "qwen-image-edit-2509", "stand_in": info.get("parts"), "size": a.size,
            "steps": a.steps, "pictures": a.pictures, "device": a.device, "dtype": a.dtype, "threads": a.threads,
            "rows": rows}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["judge", "editor"])
    ap.add_argument("--model", default="qwen3-vl-30b-a3b", choices=["qwen3-vl-30b-a3b", "qwen3-vl-8b"])
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--mp", type=float, default=0.25, help="judge: megapixels of each picture")
    ap.add_argument("--new-tokens", type=int, default=8)
    ap.add_argument("--modes", default="logits,generate")
    ap.add_argument("--size", type=int, default=256, help="editor: output side, pixels")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--images", type=int, default=1, help="editor: timed edits per side (after one warm-up)")
    ap.add_argument("--pictures", type=int, default=1, help="editor: input pictures per edit")
    ap.add_argument("--cfg", type=float, default=4.0)
    ap.add_argument("--one-call", action="store_true",
                    help="editor: also run ours with cfg_one_call (CFG's two passes as one call) and report the gain")
    ap.add_argument("--perf", action="store_true",
                    help="run each side under perf record and add where its timed CPU time went (perf_split.py)")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32", "float16"])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--dir", help="where the checkpoints are made (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep --dir's checkpoints")
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--bin", default=os.environ.get("EVALHOST_BIN") or os.path.join(ROOT, "build", "evalhost"))
    a = ap.parse_args()
    if not os.access(a.bin, os.X_OK):
        sys.exit(f"real_shape bench: no evalhost binary at {a.bin} (make build, or --bin / EVALHOST_BIN)")
    work = a.dir or tempfile.mkdtemp(prefix="eh_real_shape_")
    os.makedirs(work, exist_ok=True)
    global PERF
    if a.perf:
        PERF = work
    try:
        res = bench_judge(a, work) if a.what == "judge" else bench_editor(a, work)
    finally:
        if not a.keep and not a.dir:
            shutil.rmtree(work, ignore_errors=True)
    gib = 2 ** 30
    ref = "transformers" if a.what == "judge" else "diffusers"
    for r in res["rows"]:
        o, t = r["ours"], r[ref]
        per = a.pairs if a.what == "judge" else 1
        r["cpu_ratio"] = t["cpu_seconds"] / o["cpu_seconds"]
        print(f"{a.what} {r['mode']}: evalhost {o['seconds'] / per:.3f} s/item ({o['cpu_seconds'] / per:.2f} CPU-s),"
              f" peak RSS {o['peak_rss'] / gib:.2f} GiB | {ref} {t['seconds'] / per:.3f} s/item"
              f" ({t['cpu_seconds'] / per:.2f} CPU-s), peak RSS {t['peak_rss'] / gib:.2f} GiB"
              f" | speed {r['speed_ratio']:.2f}x (CPU time {r['cpu_ratio']:.2f}x), memory {r['memory_ratio']:.2f}x"
              + (f" | gain over two calls {r['gain_over_two_calls']:.2f}x" if "gain_over_two_calls" in r else ""))
        for side, v in (("evalhost", o), (ref, t)):
            if "profile" in v:
                print(f"  {side} profile ({v['profile']['cpu_seconds'] or 0:.1f} CPU-s sampled): " +
                      ", ".join(f"{k} {100 * x:.0f}%" for k, x in v["profile"]["kinds"][:8]))
    res["machine"] = os.uname().nodename
    res["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=2)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
