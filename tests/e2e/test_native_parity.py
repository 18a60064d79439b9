"""The `native` backend (a Qwen3-VL judge run in process by libtorch)
through the built binary and the Lua API, on the tiny dense and MoE
fixtures of tools/make_qwen3vl_fixture.py: our chat rendering, tokenizer,
image preprocessing and forward must give transformers' distribution over
"0".."10" and its expected score.

mode: generate (greedy decoding with a KV cache) must reply transformers'
greedy text.  Tolerances come from the arithmetic (reorder_tolerance,
bf16_score_tolerance, with tolerance.py's probabilistic rounding bound):
float32 probabilities and scores within the bound on a reordering of
float32 sums (5.5e-5 on a probability; measured: ~1e-7), bfloat16 scores
within the bound on bfloat16 roundings at each stored activation on both
sides (1.3 / 1.6; measured: 0.002-0.022).  Also: score_batch equal to one-by-one, identical results after
unload/load and through the GPU's copy path (cpu_copy), resolution of a
Hugging Face id through a fake local cache (and the error for a missing
one), and bad input: a judge folder as editor, bad dtype, truncated weights, a config of
another model type, an image too small to preprocess.

The whole logits row is compared in tests/unit/test_native_parity.c.
"""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

import tolerance
from conftest import LUA_PRELUDE, have_torch

SRC = os.environ.get("EVALHOST_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("EVALHOST_BIN") or os.path.join(SRC, "build", "evalhost")
FIX = os.path.join(SRC, "tests", "data", "qwen3vl")

HAVE_TORCH = have_torch()
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="this evalhost was built without libtorch")

PRELUDE = LUA_PRELUDE + """
local function req(dir, ref, with_original, text)
  local r = {image = must(eh.image.load(dir .. "/edited.png")),
             original = with_original ~= false and must(eh.image.load(dir .. "/original.png")) or nil,
             system_prompt = ref.system_prompt, user_prompt = text or ref.user_prompt}
  -- the fixture's own chat (tools/make_qwen3vl_fixture.py): the edited image, the original, unlabelled
  local parts = {{type = "image", image = r.image}}
  if r.original then parts[2] = {type = "image", image = r.original} end
  parts[#parts + 1] = {type = "text", text = r.user_prompt}
  r.messages = {{role = "user", content = parts}}
  if r.system_prompt then table.insert(r.messages, 1, {role = "system", content = r.system_prompt}) end
  return r
end
local function ref_of(dir) return eh.json.decode(must(eh.fs.read(dir .. "/reference.json"))) end
local function res(r, e) if not r then return {error = tostring(e)} end
  return {score = r.score, probs = r.probs, text = r.text, error = r.error} end
"""


def run_lua(tmp_path, body, params=None, expect_rc=0, env=None):
    script = tmp_path / "t.lua"
    script.write_text(PRELUDE + body)
    e = dict(os.environ, EH_T=json.dumps(params or {}))
    e.update(env or {})
    p = subprocess.run([BIN, str(script)], capture_output=True, text=True, env=e, timeout=300)
    assert p.returncode == expect_rc, f"rc {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return [json.loads(ln) for ln in p.stdout.splitlines() if ln.strip()], p.stderr


def reference(kind):
    with open(os.path.join(FIX, kind, "reference.json")) as f:
        return json.load(f)


# the longest sequence (prompt with image pads, or one image's patches) a
# fixture here runs: an upper bound for the attention's value sums
MAX_SEQ = 1024


def reorder_tolerance(kind):
    """How far two float32 runs of the same fixture that differ only in the
    order of their sums (a batch of 4 against one item: other GEMM shapes,
    other blockings, another CPU's kernels) may put a probability and the
    score apart, from the arithmetic rather than from the runs that passed.

    Each run's value ends a chain of K float32 roundings on terms whose
    magnitudes sum to under 1 (every sum follows a norm, unit-RMS
    activations, against weights of std 0.02), so two runs are within
    tolerance.f32_chain(K): 8*sqrt(2K)*u with independent rounding errors
    (tolerance.py; the worst case 2K*u is 6x looser here).
    A logit is the end of one chain of such sums per layer, and the chain's
    K add up: q/k/v (K = hidden), the attention scores (head_dim) and values
    (the sequence), o_proj (heads * head_dim), the MLP in (hidden) and out
    (intermediate), for the vision tower's blocks and the decoder's, then
    the LM head (hidden), and the patch embedding (3 * temporal * patch^2;
    tests/unit/test_native_parity.c's f32_chain, the same K).  A probability moves by at most the largest logit
    change dz (dp_k = p_k * (dz_k - sum_j p_j dz_j), at most 2 * p_k * |dz|)
    and the 11 changes, summing to 0, by at most 2 * |dz| together, so the
    score, sum of k * p_k over k = 0..10 (shifted by 5, as the changes sum
    to 0), by at most 5 * 2 * |dz|."""
    with open(os.path.join(FIX, kind, "config.json")) as f:
        cfg = json.load(f)
    t, v = cfg["text_config"], cfg["vision_config"]
    hd = t.get("head_dim") or t["hidden_size"] // t["num_attention_heads"]
    mlp = max(t["intermediate_size"], t.get("moe_intermediate_size") or 0)
    text = t["num_hidden_layers"] * (t["hidden_size"] + hd + MAX_SEQ + t["num_attention_heads"] * hd
                                     + t["hidden_size"] + mlp) + t["hidden_size"]
    vh = v["hidden_size"]
    vision = v["depth"] * (vh + vh // v["num_heads"] + MAX_SEQ + vh + vh + v["intermediate_size"])
    patch = 3 * v["temporal_patch_size"] * v["patch_size"] ** 2   # the patch embedding, as the C test counts it
    logit = tolerance.f32_chain(text + vision + patch)
    return logit, 10 * logit


def bf16_roundings(cfg):
    """The bfloat16 roundings along a logit's chain: the stored results one
    after another (norm, q/k/v, q/k norm, rope, scores, values, o_proj,
    residual, norm, gate/up, act*up, down, residual: 13 a decoder layer, one
    more for the MoE's routing weights; 12 a vision block, which has no q/k
    norm), then the patch embedding, position add, the merger's norm, two
    linears and activation, the deepstack add, the final norm, the LM head."""
    t, v = cfg["text_config"], cfg["vision_config"]
    per_layer = 13 + (1 if t.get("num_local_experts") or t.get("num_experts") else 0)
    return t["num_hidden_layers"] * per_layer + v["depth"] * 12 + 9


def bf16_score_tolerance(kind, probs):
    """How far our bfloat16 score may land from transformers' bfloat16 one.
    Both sides round each stored activation to bfloat16 (u = 2^-8) at the
    same points, R roundings each along a logit's chain, on unit-RMS
    activations whose gain to a logit is at most 1 in these fixtures
    (norms, weights of std 0.02, as in reorder_tolerance): the two logits
    are within dz = tolerance.rounded(R, u, both) = 8*sqrt(2R)*u (0.34; the
    worst case 2Ru, 0.46).  The score, sum of k * p_k, moves by sum_k (k - s) dp_k with
    dp_k = p_k (dz_k - sum_j p_j dz_j), so by at most
    2 * dz * sum_k |k - s| p_k, over the reference's own probabilities."""
    with open(os.path.join(FIX, kind, "config.json")) as f:
        cfg = json.load(f)
    dz = tolerance.rounded(bf16_roundings(cfg), tolerance.UBF16, True)
    s = sum(k * p for k, p in enumerate(probs))
    return 2 * dz * sum(abs(k - s) * p for k, p in enumerate(probs))


@needs_torch
@pytest.mark.parametrize("kind", ["dense", "moe"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_score_matches_transformers(tmp_path, kind, dtype):
    body = """
local ref = ref_of(P.dir)
local m = must(eh.model.open({backend = "native", path = P.dir, device = "cpu", dtype = P.dtype}, "judge"))
out(m:info())
m:load()
out(res(m:score(req(P.dir, ref))))
"""
    (info, r), _ = run_lua(tmp_path, body, {"dir": os.path.join(FIX, kind), "dtype": dtype})
    assert info["backend"] == "native" and info["dtype"] == dtype
    # the score tree's reference (issue 19): P(s) = P(s) P(end | s) from
    # transformers' forwards over each path (tools/add_tree_reference.py)
    ref = reference(kind)["fp32" if dtype == "float32" else "bf16"]["tree"]
    assert "error" not in r, r
    tol_p, tol = reorder_tolerance(kind) if dtype == "float32" else (None, bf16_score_tolerance(kind, ref["probs"]))
    print(f"{kind} {dtype}: score {r['score']:.6f} vs transformers {ref['score']:.6f} (tolerance {tol:.3g})")
    assert abs(r["score"] - ref["score"]) <= tol
    if dtype == "float32":
        assert max(abs(a - b) for a, b in zip(r["probs"], ref["probs"])) <= tol_p
        assert r["text"] == f"expected {ref['score']:.2f} (argmax {ref['argmax']})"
    assert abs(sum(r["probs"]) - 1) < 1e-9


@needs_torch
@pytest.mark.parametrize("kind", ["dense", "moe"])
def test_request_shapes_render_like_the_chat_template(tmp_path, kind):
    """No system prompt, the edited image alone, CJK and blank lines in the
    text: our C rendering of the chat must be transformers' template's (a
    token off anywhere moves these probabilities far past the float32
    reordering bound, ~3e-4)."""
    body = """
local ref = ref_of(P.dir)
local m = must(eh.model.open({backend = "native", path = P.dir, device = "cpu"}, "judge"))
m:load()
for _, v in ipairs(ref.variants) do
  out(res(m:score(req(P.dir, {user_prompt = v.user_prompt,
    system_prompt = v.system_prompt ~= eh.json.null and v.system_prompt or nil}, v.images == 2))))
end
"""
    lines, _ = run_lua(tmp_path, body, {"dir": os.path.join(FIX, kind)})
    variants = reference(kind)["variants"]
    assert len(lines) == len(variants) == 3
    tol_p, tol_score = reorder_tolerance(kind)
    for got, want in zip(lines, variants):
        assert "error" not in got, got
        want = want["tree"]
        assert max(abs(a - b) for a, b in zip(got["probs"], want["probs"])) <= tol_p, (got, want)
        assert abs(got["score"] - want["score"]) <= tol_score


@needs_torch
@pytest.mark.parametrize("kind", ["dense", "moe"])
def test_batch_reload_and_copy_path(tmp_path, kind):
    body = """
local ref = ref_of(P.dir)
local m = must(eh.model.open({backend = "native", path = P.dir, device = "cpu", batch_size = 4,
                              cpu_copy = P.cpu_copy}, "judge"))
m:load()
local reqs = {req(P.dir, ref), req(P.dir, ref, false), req(P.dir, ref, true, "Score the edit."),
              req(P.dir, ref, false, "x"), req(P.dir, ref)}
local batch = m:score_batch(reqs)
for i, r in ipairs(reqs) do out({batch = res(batch[i]), one = res(m:score(r))}) end
m:unload()
out({state = m:state()})
m:load()
out({again = res(m:score(reqs[1]))})
out(eh.swaps().by_model)
"""
    for cpu_copy in (False, True):
        lines, _ = run_lua(tmp_path, body, {"dir": os.path.join(FIX, kind), "cpu_copy": cpu_copy})
        pairs, state, again = lines[:5], lines[5], lines[6]
        tol_p, tol_score = reorder_tolerance(kind)
        for p in pairs:
            assert "error" not in p["batch"] and "error" not in p["one"], p
            assert abs(p["batch"]["score"] - p["one"]["score"]) <= tol_score, (p, tol_score)
            assert max(abs(a - b) for a, b in zip(p["batch"]["probs"], p["one"]["probs"])) <= tol_p, (p, tol_p)
        # different prompts give different scores (the batch is not one row repeated)
        assert len({round(p["one"]["score"], 6) for p in pairs[:4]}) == 4
        assert pairs[0]["one"]["score"] == pairs[4]["one"]["score"]
        assert abs(pairs[0]["one"]["score"] - reference(kind)["fp32"]["tree"]["score"]) <= tol_score
        assert state == {"state": "host"}
        assert again["again"]["score"] == pairs[0]["one"]["score"]


@needs_torch
@pytest.mark.parametrize("kind", ["dense", "moe"])
def test_generate_mode_replies_like_transformers(tmp_path, kind):
    """mode: generate decodes greedily with the KV cache; the tiny random
    judges reply gibberish, so the shared parser refuses it, quoting our
    reply: it must be transformers' greedy reply."""
    body = """
local ref = ref_of(P.dir)
local m = must(eh.model.open({backend = "native", path = P.dir, device = "cpu", mode = "generate",
                              max_new_tokens = 16}, "judge"))
m:load()
local r, e = m:score(req(P.dir, ref))
out({r = r and res(r), e = e})
local b = m:score_batch({req(P.dir, ref), req(P.dir, ref)})
out({b = {res(b[1]), res(b[2])}})
local bad, be = eh.model.open({backend = "native", path = P.dir, mode = "sample"}, "judge")
out({bad = be})
"""
    (one, batch, bad), _ = run_lua(tmp_path, body, {"dir": os.path.join(FIX, kind)})
    text = reference(kind)["generate"]["text"]
    excerpt = "".join(" " if ord(ch) < 32 else ch for ch in text)
    assert one.get("r") is None and f'judge reply has no score in 0..10: "{excerpt}"' in one["e"], (one, excerpt)
    assert batch["b"][0] == batch["b"][1] and excerpt in batch["b"][0]["error"]
    assert "mode 'sample' (logits or generate)" in bad["bad"]


@needs_torch
def test_hf_id_through_local_cache(tmp_path):
    h = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--Tiny--Qwen3-VL-Judge"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(h)
    shutil.copytree(os.path.join(FIX, "dense"), repo / "snapshots" / h)
    body = """
local ref = ref_of(P.dir)
local m = must(eh.model.open({name = "Tiny/Qwen3-VL-Judge", device = "cpu"}, "judge"))
out(m:info())
m:load()
out(res(m:score(req(P.dir, ref))))
local m2, err = eh.model.open({name = "Qwen/Qwen3-VL-8B-Instruct"}, "judge")
out({err = err})
"""
    (info, r, miss), err = run_lua(tmp_path, body, {"dir": os.path.join(FIX, "dense")},
                                   env={"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HOME": str(tmp_path / "nohome"),
                                        "EVALHOST_LOG": "debug"})
    assert info["backend"] == "native" and info["name"] == "Tiny/Qwen3-VL-Judge"
    assert info["revision"] == h   # the report pins the judge by this snapshot
    assert abs(r["score"] - reference("dense")["fp32"]["tree"]["score"]) <= reorder_tolerance("dense")[1]
    assert "is not on this machine" in miss["err"]
    assert str(tmp_path / "hub" / "models--Qwen--Qwen3-VL-8B-Instruct") in miss["err"]
    assert "huggingface-cli download Qwen/Qwen3-VL-8B-Instruct" in miss["err"]


@needs_torch
@pytest.mark.parametrize("kind", ["dense", "moe"])
def test_mutant_breaks_the_bounds(tmp_path, kind):
    """The float32 bounds can fail: the final norm's weight scaled by
    1 + 1e-3 must put the probabilities and the score past them."""
    from safetensors.numpy import load_file, save_file
    mut = tmp_path / kind
    shutil.copytree(os.path.join(FIX, kind), mut)
    w = load_file(str(mut / "model.safetensors"))
    w["model.language_model.norm.weight"] = w["model.language_model.norm.weight"] * np.float32(1.001)
    save_file(w, str(mut / "model.safetensors"))
    body = """
local ref = ref_of(P.dir)
local m = must(eh.model.open({backend = "native", path = P.dir, device = "cpu"}, "judge"))
m:load()
out(res(m:score(req(P.dir, ref))))
"""
    (r,), _ = run_lua(tmp_path, body, {"dir": str(mut)})
    want = reference(kind)["fp32"]["tree"]
    tol_p, tol_score = reorder_tolerance(kind)
    dp = max(abs(a - b) for a, b in zip(r["probs"], want["probs"]))
    ds = abs(r["score"] - want["score"])
    print(f"{kind} mutant (final norm x 1.001): probabilities {dp:.3g} (bound {tol_p:.3g}), "
          f"score {ds:.3g} (bound {tol_score:.3g})")
    assert dp > tol_p and ds > tol_score


@needs_torch
def test_bad_input(tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(os.path.join(FIX, "dense"), bad)
    st = bad / "model.safetensors"
    st.write_bytes(st.read_bytes()[:-1000])
    other = tmp_path / "other"
    shutil.copytree(os.path.join(FIX, "dense"), other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["model_type"] = "llava"
    (other / "config.json").write_text(json.dumps(cfg))
    body = """
local function try(spec, section)
  local m, e = eh.model.open(spec, section or "judge")
  if not m then return out({open = e}) end
  local ok, r, le = pcall(m.load, m)
  if not ok or not r then return out({load = tostring(ok and le or r)}) end
  out({load = "ok"})
  local s, se = m:score({image = must(eh.image.load(P.tiny)), original = must(eh.image.load(P.tiny)),
                         instruction = "x"})
  out({score = s and s.error or se})
end
try({backend = "native", path = P.good, device = "cpu"}, "editor")
try({backend = "native", path = P.good, device = "cpu", dtype = "int8"})
try({backend = "native", path = P.bad, device = "cpu"})
try({backend = "native", path = P.other, device = "cpu"})
try({backend = "native", path = P.good .. "/nowhere", device = "cpu"})
try({backend = "native", path = P.good, device = "cpu"})
"""
    from PIL import Image
    Image.new("RGB", (1, 1), (9, 9, 9)).save(tmp_path / "tiny.png")
    lines, _ = run_lua(tmp_path, body, {"good": os.path.join(FIX, "dense"), "bad": str(bad), "other": str(other),
                                        "tiny": str(tmp_path / "tiny.png")})
    # a judge's folder opened as the editor (Qwen-Image-Edit: tests/e2e/test_native_editor.py)
    assert "has no model_index.json" in lines[0]["open"]
    assert "unknown dtype 'int8'" in lines[1]["open"]
    # the footprint reads every shard's header at open, so a truncated file is refused there
    assert "model.safetensors" in lines[2]["open"] and "truncated" in lines[2]["open"], lines[2]
    assert "model_type 'llava' is not one the native judge runs" in lines[3]["open"]
    assert "nowhere: no such directory" in lines[4]["open"]
    assert lines[5] == {"load": "ok"}
    # evalhost.chat's layout shows the original first: the first picture refused names it
    assert "judge: original image:" in lines[6]["score"], lines[6]
