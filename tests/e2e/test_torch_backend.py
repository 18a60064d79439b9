"""The `torch` backend through the built binary: tiny TorchScript editors and
judges generated now from the venv's torch (tools/make_tiny_torch_models.py),
driven by Lua scripts, checked against the same modules run by torch here.

Covers: disk → host → device → host transitions, footprints, swap counts (the
same as the builtin backend's for the same moves), edits and scores equal to
torch's, identical results after unload/load, batches equal to one-by-one
calls (and really batched), logits → expected value (numpy), bfloat16 and
float16, every bad input (missing file, not TorchScript, truncated archive,
wrong signature, wrong output shape, NaN, bad dtype/device) with its message,
and a failed load leaving the other model as it was.

Environment: EVALHOST_BIN, EVALHOST_SRC; EVALHOST_HAVE_TORCH=OFF (set by
CMake for builds without libtorch) runs only the "backend unavailable" check.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import LUA_PRELUDE, have_torch

SRC = os.environ.get("EVALHOST_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("EVALHOST_BIN") or os.path.join(SRC, "build", "evalhost")

HAVE_TORCH = have_torch()
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="this evalhost was built without libtorch "
                                 "(EVALHOST_HAVE_TORCH=OFF); only the unavailable-backend message is checked")

PRELUDE = LUA_PRELUDE


def run_lua(tmp_path, body, params=None, expect_rc=0):
    script = tmp_path / "t.lua"
    script.write_text(PRELUDE + body)
    env = dict(os.environ, EH_T=json.dumps(params or {}))
    p = subprocess.run([BIN, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == expect_rc, f"rc {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    return [json.loads(ln) for ln in lines], p.stderr


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    if not HAVE_TORCH:
        pytest.skip("built without libtorch")
    d = tmp_path_factory.mktemp("torch_models")
    subprocess.run([sys.executable, os.path.join(SRC, "tools", "make_tiny_torch_models.py"), str(d)], check=True)
    return d


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("torch_images")
    rng = np.random.RandomState(3)
    paths = {}
    for name, (w, h) in {"a": (32, 24), "b": (32, 24), "c": (20, 16), "d": (32, 24), "e": (20, 16)}.items():
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h)], axis=2)
        px = np.clip(base + rng.randint(-40, 40, size=(h, w, 3)), 0, 255).astype(np.uint8)
        p = d / f"{name}.png"
        Image.fromarray(px).save(p)
        paths[name] = str(p)
    return paths


def torch_mod(path, dtype="float32"):
    import torch
    m = torch.jit.load(str(path)).eval()
    return m.to(getattr(torch, dtype))


def to_input(path, dtype="float32"):
    import torch
    # eh_image_to_chw multiplies by the float reciprocal of 255
    a = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) * np.float32(1.0 / 255.0)
    return torch.from_numpy(a.transpose(2, 0, 1).copy()).unsqueeze(0).to(getattr(torch, dtype))


def to_pixels(t):
    """eh_image_from_chw: clamp8(v*255 + 0.5) with truncation."""
    v = t.float()[0].numpy().transpose(1, 2, 0) * np.float32(255.0) + np.float32(0.5)
    return np.clip(v, 0, 255).astype(np.uint8)


def footprint(path, dtype="float32"):
    import torch
    m = torch.jit.load(str(path))
    size = {"float32": 4, "float16": 2, "bfloat16": 2}[dtype]
    seen, total = set(), 0
    for _, t in list(m.named_parameters()) + list(m.named_buffers()):
        if id(t) in seen:
            continue
        seen.add(id(t))
        total += t.numel() * (size if t.is_floating_point() else t.element_size())
    return total


# ---------------------------------------------------------------------------

def test_unavailable_without_torch(tmp_path):
    if HAVE_TORCH:
        pytest.skip("this build has libtorch; the unavailable-backend message is for builds without it")
    res, _ = run_lua(tmp_path, """
local m, err = eh.model.open({backend = "torch", path = "judge.pt"}, "judge")
out({m = m ~= nil, err = err})
""")
    assert res[0]["m"] is False
    assert res[0]["err"].startswith("judge: backend 'torch' (judge.pt) is not available")
    assert "without libtorch" in res[0]["err"]


@needs_torch
def test_states_footprint_and_swaps_match_builtin(tmp_path, models, images):
    res, log = run_lua(tmp_path, """
local function sequence(espec, jspec)
  local e = must(eh.model.open(espec, "editor"))
  local j = must(eh.model.open(jspec, "judge"))
  local before = eh.swaps()
  local st = {e:state(), j:state()}
  local fp_disk = e:footprint()
  must(e:load()); st[#st + 1] = e:state()
  local fp = e:footprint()
  must(e:unload()); st[#st + 1] = e:state()
  must(j:load()); st[#st + 1] = j:state()
  must(j:unload())
  must(e:load())
  must(e:unload())
  must(e:unload())          -- unloading a model on the host is a no-op
  local s = eh.swaps()
  local r = {states = st, fp_disk = fp_disk, fp = fp, jfp = j:footprint(),
             count = s.count - before.count, moves = s.moves - before.moves,
             e = s.by_model.editor, j = s.by_model.judge, info = e:info()}
  e:close(); j:close()
  return r
end
local t = sequence({backend = "torch", path = P.editor}, {backend = "torch", path = P.judge})
out(t)
out(eh.gpu.memory())
-- the same moves with the builtin backend count the same
local b = sequence({backend = "builtin", name = "identity"}, {backend = "builtin", name = "metrics"})
out({count = b.count, moves = b.moves})
""", {"editor": str(models / "editor.pt"), "judge": str(models / "judge_logits.pt")})
    t, mem, b = res
    assert t["states"] == ["disk", "disk", "device", "host", "device"]
    assert t["fp_disk"] == os.path.getsize(models / "editor.pt")   # estimate from the file until read
    assert t["fp"] == footprint(models / "editor.pt") == 60
    assert t["jfp"] == footprint(models / "judge_logits.pt")
    assert t["e"]["loads"] == 2 and t["e"]["unloads"] == 2 and t["e"]["bytes"] == 2 * t["fp"]
    assert t["j"]["loads"] == 1 and t["j"]["unloads"] == 1 and t["j"]["bytes"] == t["jfp"]
    assert (t["count"], t["moves"]) == (b["count"], b["moves"]) == (2, 6)
    assert t["info"]["backend"] == "torch" and t["info"]["device"] == "cpu"   # device: auto without CUDA
    assert t["info"]["dtype"] == "float32" and t["info"]["name"] == "editor.pt"
    assert mem == {"free": 0, "total": 0}
    assert "[swap] editor → cpu 60 B" in log


@needs_torch
@pytest.mark.parametrize("dtype,cpu_copy", [("float32", False), ("float32", True), ("bfloat16", False),
                                            ("bfloat16", True), ("float16", False)])
def test_edit_matches_torch_and_survives_unload(tmp_path, models, images, dtype, cpu_copy):
    import torch
    res, _ = run_lua(tmp_path, """
local m = must(eh.model.open({backend = "torch", path = P.model, dtype = P.dtype, device = "cpu",
                              cpu_copy = P.cpu_copy}, "editor"))
must(m:load())
local img = must(eh.image.load(P.image))
local a = must(m:edit(img, P.instruction))
must(a:save(P.out))
must(m:unload())
must(m:load())
local b = must(m:edit(img, P.instruction))
out({same = a:png() == b:png(), fp = m:footprint(), w = select(1, a:size()), h = select(2, a:size())})
""", {"model": str(models / "editor.pt"), "dtype": dtype, "image": images["a"], "cpu_copy": cpu_copy,
      "instruction": "please invert the colours", "out": str(tmp_path / "out.png")})
    r = res[0]
    assert r["same"] is True
    assert r["fp"] == footprint(models / "editor.pt", dtype)
    got = np.asarray(Image.open(tmp_path / "out.png"))
    with torch.inference_mode():
        want = to_pixels(torch_mod(models / "editor.pt", dtype)(to_input(images["a"], dtype), "please invert the colours"))
    assert got.shape == want.shape == (24, 32, 3)
    assert np.array_equal(got, want), f"max diff {np.abs(got.astype(int) - want.astype(int)).max()}"
    if dtype != "float32":
        with torch.inference_mode():
            f32 = to_pixels(torch_mod(models / "editor.pt")(to_input(images["a"]), "please invert the colours"))
        diff = np.abs(f32.astype(int) - got.astype(int))
        assert 0 < diff.max() <= 6, "reduced precision should differ from float32, a little"


@needs_torch
@pytest.mark.parametrize("cpu_copy", [True, False])
def test_host_copy_is_immutable(tmp_path, models, images, cpu_copy):
    """A module that writes its own buffer: with a device copy (cpu_copy, as
    on a GPU) every load starts again from the untouched host copy; on the
    plain CPU path the host copy is the device copy, so the writes persist."""
    res, _ = run_lua(tmp_path, """
local m = must(eh.model.open({backend = "torch", path = P.model, cpu_copy = P.cpu_copy}, "editor"))
local img = must(eh.image.load(P.image))
local vals = {}
local function value()
  local o = must(m:edit(img, "x"))
  local png = o:png()
  o:close()
  return png
end
must(m:load())
vals[1] = value(); vals[2] = value()
must(m:unload()); must(m:load())
vals[3] = value()
out({first = vals[1] == vals[3], second = vals[2] == vals[3], bytes = eh.swaps().by_model.editor.bytes})
""", {"model": str(models / "stateful.pt"), "image": images["c"], "cpu_copy": cpu_copy})
    r = res[0]
    if cpu_copy:
        assert r["first"] is True and r["second"] is False
        assert r["bytes"] == 2 * 256   # one 4-byte buffer, padded to the 256-byte alignment, moved twice
    else:
        assert r["first"] is False and r["second"] is False
        assert r["bytes"] == 2 * 4


@needs_torch
def test_output_size_may_differ(tmp_path, models, images):
    res, _ = run_lua(tmp_path, """
local m = must(eh.model.open({backend = "torch", path = P.model}, "editor"))
must(m:load())
local a = must(m:edit(must(eh.image.load(P.image)), "x"))
out({a:size()})
""", {"model": str(models / "editor_half.pt"), "image": images["a"]})
    assert res[0] == [16, 12]


BATCH_EDIT = """
local m = must(eh.model.open({backend = "torch", path = P.model, batch_size = P.bs}, "editor"))
must(m:load())
local reqs, singles = {}, {}
for i, name in ipairs(P.order) do
  local img = must(eh.image.load(P.images[name]))
  reqs[i] = {image = img, instruction = P.instr[i]}
  singles[i] = must(m:edit(img, P.instr[i])):png()
end
local batch = m:edit_batch(reqs)
local same = {}
for i, r in ipairs(batch) do same[i] = r.image ~= nil and r.image:png() == singles[i] end
out({n = #batch, same = same})
"""


@needs_torch
@pytest.mark.parametrize("model,bs", [("editor.pt", 3), ("editor.pt", 8), ("editor_list.pt", 4)])
def test_edit_batch_equals_one_by_one(tmp_path, models, images, model, bs):
    order = ["a", "c", "b", "d", "e", "a", "c"]
    instr = ["invert", "brighter", "invert", "invert", "brighter", "add a dog", "brighter"]
    res, _ = run_lua(tmp_path, BATCH_EDIT, {"model": str(models / model), "bs": bs, "images": images,
                                            "order": order, "instr": instr})
    assert res[0]["n"] == 7
    assert res[0]["same"] == [True] * 7


@needs_torch
def test_score_batch_equals_one_by_one_and_is_batched(tmp_path, models, images):
    body = """
local out_rows = {}
for _, spec in ipairs(P.judges) do
  local j = must(eh.model.open({backend = "torch", path = spec[1], batch_size = spec[2]}, "judge"))
  must(j:load())
  local reqs, singles = {}, {}
  for i, pair in ipairs(P.pairs) do
    reqs[i] = {image = must(eh.image.load(P.images[pair[1]])), original = must(eh.image.load(P.images[pair[2]])),
               instruction = pair[3], user_prompt = pair[4] ~= eh.json.null and pair[4] or nil}
    singles[i] = must(j:score(reqs[i]))
  end
  local batch = j:score_batch(reqs)
  local row = {batch = {}, single = {}}
  for i = 1, #reqs do
    row.batch[i] = batch[i].score; row.single[i] = singles[i].score
  end
  out_rows[#out_rows + 1] = row
  j:close()
end
out(out_rows)
"""
    pairs = [["a", "b", "make it red", None], ["c", "e", "blur", None], ["b", "a", "make it red", None],
             ["d", "a", "x", "a longer judge prompt"], ["e", "c", "blur", None], ["a", "d", "make it red", None]]
    judges = [[str(models / "judge_logits.pt"), 4], [str(models / "judge_scalar.pt"), 6],
              [str(models / "judge_list.pt"), 6], [str(models / "batch_probe.pt"), 6],
              [str(models / "batch_probe.pt"), 2]]
    res, _ = run_lua(tmp_path, body, {"judges": judges, "pairs": pairs, "images": images})
    rows = res[0]
    for row in rows[:3]:
        assert row["batch"] == row["single"]
    assert len(set(rows[0]["single"])) > 3   # the scores are not all alike
    # the probe scores with its batch size: same-size, same-prompt groups
    # {0, 2, 5} (32x24, "make it red"), {1, 4} (20x16, "blur"), {3}
    assert rows[3]["single"] == [1] * 6
    assert rows[3]["batch"] == [3, 2, 3, 1, 2, 3]
    # batch_size 2 cuts the list first: [0,1] [2,3] [4,5] → all ones
    assert rows[4]["batch"] == [1] * 6


@needs_torch
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_logits_expected_value(tmp_path, models, images, dtype):
    import torch
    res, _ = run_lua(tmp_path, """
local j = must(eh.model.open({backend = "torch", path = P.model, dtype = P.dtype}, "judge"))
must(j:load())
local r = must(j:score({image = must(eh.image.load(P.edited)), original = must(eh.image.load(P.original)),
                        instruction = "ignored when a user prompt is given", user_prompt = P.prompt}))
out(r)
""", {"model": str(models / "judge_logits.pt"), "dtype": dtype, "edited": images["a"],
      "original": images["d"], "prompt": "rate the edit from 0 to 10"})
    r = res[0]
    with torch.inference_mode():
        logits = torch_mod(models / "judge_logits.pt", dtype)(
            to_input(images["a"], dtype), to_input(images["d"], dtype), "rate the edit from 0 to 10")
    lg = logits.double().numpy()[0]
    p = np.exp(lg - lg.max())
    p /= p.sum()
    expected = float((np.arange(11) * p).sum())
    assert r["score"] == pytest.approx(expected, abs=1e-12)
    assert np.allclose(r["probs"], p, atol=1e-12)
    assert r["text"] == f"expected {expected:.2f} (argmax {int(np.argmax(lg))})"
    assert 0.05 < max(p) < 0.999   # a real distribution, not one-hot


@needs_torch
def test_scalar_judge(tmp_path, models, images):
    import torch
    res, _ = run_lua(tmp_path, """
local j = must(eh.model.open({backend = "torch", path = P.model}, "judge"))
must(j:load())
out(must(j:score({image = must(eh.image.load(P.edited)), original = must(eh.image.load(P.original)),
                  instruction = "brighten"})))
""", {"model": str(models / "judge_scalar.pt"), "edited": images["a"], "original": images["b"]})
    with torch.inference_mode():
        want = float(torch_mod(models / "judge_scalar.pt")(to_input(images["a"]), to_input(images["b"]), "brighten"))
    assert res[0]["score"] == pytest.approx(want, abs=1e-6)
    assert res[0]["text"] == f"score {want:.2f}" and "probs" not in res[0]


# --- bad input ---------------------------------------------------------------

OPEN_ERR = """
local m, err = eh.model.open(P.spec, P.section)
local r = {opened = m ~= nil, err = err}
if m then
  local ok, lerr = m:load()
  r.loaded, r.load_err, r.state = ok, lerr, m:state()
end
out(r)
"""


@needs_torch
@pytest.mark.parametrize("spec,section,stage,needles", [
    ({"path": "{d}/missing.pt"}, "editor", "open", ["editor: model file ", "missing.pt: No such file or directory"]),
    ({"path": "{d}/not_a_model.pt"}, "judge", "open", ["judge: model file ", "is not a TorchScript archive (no zip header"]),
    ({"path": "{d}"}, "editor", "open", ["is not a regular file"]),
    ({"path": "{d}/truncated.pt"}, "editor", "load", ["editor: cannot load ", "truncated.pt", "not a TorchScript archive?"]),
    ({"path": "{d}/wrong_sig.pt"}, "editor", "load",
     ["editor: cannot load ", "forward has the wrong signature", "an editor needs forward(Tensor img, str instruction)"]),
    ({"path": "{d}/editor.pt"}, "judge", "load",
     ["judge: cannot load ", "wrong signature", "a judge needs forward(Tensor edited, Tensor original, str prompt)"]),
    ({"path": "{d}/judge_logits.pt"}, "editor", "load", ["an editor needs forward"]),
    ({"path": "{d}/editor.pt", "dtype": "int8"}, "editor", "open", ["editor: unknown dtype 'int8'"]),
    ({"path": "{d}/editor.pt", "device": "cuda"}, "editor", "open",
     ["editor: device 'cuda:0' requested but CUDA is not available"]),
    ({"path": "{d}/editor.pt", "device": "cuda:3"}, "editor", "open", ["device 'cuda:3' requested"]),
    ({"path": "{d}/editor.pt", "device": "tpu"}, "editor", "open", ["editor: bad device 'tpu'"]),
    ({"backend": "torch"}, "judge", "open", ["judge: the torch backend needs path:"]),
])
def test_bad_models_are_refused(tmp_path, models, spec, section, stage, needles):
    spec = {k: v.replace("{d}", str(models)) if isinstance(v, str) else v for k, v in spec.items()}
    spec.setdefault("backend", "torch")
    res, _ = run_lua(tmp_path, OPEN_ERR, {"spec": spec, "section": section})
    r = res[0]
    if stage == "open":
        assert r["opened"] is False
        msg = r["err"]
    else:
        assert r["opened"] is True and r.get("loaded") is None and r["state"] == "disk"
        msg = r["load_err"]
    for n in needles:
        assert n in msg, f"{n!r} not in {msg!r}"
    assert "\n" not in msg


@needs_torch
def test_failed_load_leaves_the_other_model_alone(tmp_path, models, images):
    """A truncated archive and an allocation that cannot succeed: each load
    fails naming the judge and why; the loaded editor keeps working."""
    res, _ = run_lua(tmp_path, """
local e = must(eh.model.open({backend = "torch", path = P.editor}, "editor"))
must(e:load())
local img = must(eh.image.load(P.image))
local before = must(e:edit(img, "invert")):png()
local j = must(eh.model.open({backend = "torch", path = P.judge}, "judge"))
local ok, err = j:load()
-- out of memory: a synthetic judge far larger than any host
local big = must(eh.model.open({backend = "torch", role = "judge", synthetic_bytes = 1000000000000000,
                                synthetic_params = 1}, "judge"))
local ok2, err2 = big:load()
local after = must(e:edit(img, "invert")):png()
out({ok = ok, err = err, jstate = j:state(), estate = e:state(), same = before == after,
     loads = eh.swaps().by_model.editor.loads, jstats = eh.swaps().by_model.judge,
     ok2 = ok2, err2 = err2, bigstate = big:state()})
""", {"editor": str(models / "editor.pt"), "judge": str(models / "truncated.pt"), "image": images["a"]})
    r = res[0]
    assert r.get("ok") is None and r["err"].startswith("judge: cannot load ")
    assert r.get("ok2") is None and r["bigstate"] == "disk"
    assert r["err2"].startswith("judge: cannot load synthetic model: ")
    assert "allocate 1000000000000000 bytes" in r["err2"]
    assert (r["jstate"], r["estate"], r["same"], r["loads"]) == ("disk", "device", True, 1)
    assert r.get("jstats") in (None, {}) or r["jstats"]["loads"] == 0


@needs_torch
def test_bad_outputs_fail_per_item(tmp_path, models, images):
    res, _ = run_lua(tmp_path, """
local e = must(eh.model.open({backend = "torch", path = P.bad_editor, batch_size = 4}, "editor"))
must(e:load())
local img = must(eh.image.load(P.image))
local r1, err1 = e:edit(img, "x")
local batch = e:edit_batch({{image = img, instruction = "x"}, {image = img, instruction = "x"}})
local j = must(eh.model.open({backend = "torch", path = P.nan_judge}, "judge"))
must(j:load())
local r2, err2 = j:score({image = img, original = img, instruction = "x"})
local r3, err3 = j:score({image = img, instruction = "x"})
local sb = j:score_batch({{image = img, original = img}, {image = img}})
out({r1 = r1 ~= nil, err1 = err1, b1 = batch[1].error, b2 = batch[2].error, r2 = r2 ~= nil, err2 = err2,
     err3 = err3, sb1 = sb[1].error, sb2 = sb[2].error})
""", {"bad_editor": str(models / "bad_output.pt"), "nan_judge": str(models / "nan_judge.pt"), "image": images["a"]})
    r = res[0]
    assert r["r1"] is False
    assert r["err1"] == "editor: forward returned a tensor of shape [1, 5]; an editor returns [1, 3, H, W]"
    assert r["b1"] == r["b2"] == "editor: forward returned a tensor of shape [2, 5]; an editor returns [2, 3, H, W]"
    assert r["r2"] is False and r["err2"] == 'judge: the judge returned a non-finite logit for "0"'
    assert r["err3"] == "judge: the torch judge needs the edited and the original image"
    assert r["sb1"] == 'judge: the judge returned a non-finite logit for "0"'
    assert r["sb2"] == "judge: the torch judge needs the edited and the original image"


@needs_torch
def test_synthetic_model_round_trip(tmp_path):
    """The swap bench's synthetic model: its weights arrive intact on every load."""
    res, _ = run_lua(tmp_path, """
local m = must(eh.model.open({backend = "torch", role = "editor", synthetic_bytes = 4000000,
                              synthetic_params = 50, dtype = "bfloat16"}, "editor"))
local img = must(eh.image.load(P.image))
for i = 1, 2 do
  must(m:load())
  must(must(m:edit(img, "x")):save(P.out .. i .. ".png"))
  must(m:unload())
end
out({fp = m:footprint(), bytes = eh.swaps().by_model.editor.bytes, name = m:info().name})
""", {"image": _tiny_png(tmp_path), "out": str(tmp_path / "syn")})
    r = res[0]
    assert r["fp"] == 50 * (4000000 // 50 // 2) * 2 and r["bytes"] == 2 * r["fp"]
    assert r["name"] == "synthetic"
    mean = np.mean([((i % 7) + 1) / 8 for i in range(50)])
    want = int(np.float32(mean) * np.float32(255.0) + np.float32(0.5))
    for i in (1, 2):
        px = np.asarray(Image.open(tmp_path / f"syn{i}.png"))
        assert px.shape == (2, 2, 3) and (px == want).all(), (px, want)


def _tiny_png(tmp_path):
    p = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(p)
    return str(p)
