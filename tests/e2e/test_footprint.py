"""Model:footprint() before and after load, through the built binary, for
every backend: the native judge and editor from their safetensors headers
(one file or shards with an index.json; a float32 checkpoint loaded as
bfloat16 counts half; LoRAs merged add nothing; a real-shape stand-in counts
as its full model), builtin from footprint_mb (http reads the same key).

Environment: EVALHOST_BIN, EVALHOST_SRC, EVALHOST_HAVE_TORCH (ON: the
native backends are built in).
"""
import json
import os
import shutil
import subprocess

import pytest

SRC = os.environ.get("EVALHOST_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("EVALHOST_BIN") or os.path.join(SRC, "build", "evalhost")
TORCH = os.environ.get("EVALHOST_HAVE_TORCH", "").upper() in ("ON", "1", "TRUE", "YES")
JUDGE = os.path.join(SRC, "tests", "data", "qwen3vl", "dense")
EDITOR = os.path.join(SRC, "tests", "data", "qwenimage")

LUA = r"""
local eh = require "evalhost"
local P = eh.json.decode(os.getenv("EH_SPEC"))
local m = assert(eh.model.open(P.spec, P.section))
local before = m:footprint()
assert(m:load())
local after = m:footprint()
io.stdout:write(eh.json.encode({before = before, after = after}), "\n")
"""

needs_torch = pytest.mark.skipif(not TORCH, reason="the native backends need a libtorch build (EVALHOST_HAVE_TORCH=ON)")


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    if not os.access(BIN, os.X_OK):
        pytest.fail("evalhost binary not found at %s" % BIN)
    p = tmp_path_factory.mktemp("fp") / "fp.lua"
    p.write_text(LUA)
    return str(p)


def footprint(script, section, spec):
    r = subprocess.run([BIN, script], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, EH_SPEC=json.dumps({"section": section, "spec": spec})))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1]), r.stderr


def float_elements(path, still=False):
    """Floating elements and other bytes; still: 5-D kernels count one
    temporal slice (the VAE on still images)."""
    from safetensors import safe_open
    n = other = 0
    with safe_open(path, "pt") as f:
        for k in f.keys():
            t = f.get_slice(k)
            numel = 1
            for d in t.get_shape():
                numel *= d
            if k == "lm_head.weight" and not still and "text_encoder" in path:
                continue   # the editor's text encoder leaves its LM head out
            if still and len(t.get_shape()) == 5:
                numel //= t.get_shape()[2]
            if t.get_dtype() in ("F32", "F16", "BF16", "F64"):
                n += numel
            else:
                other += numel * {"I64": 8, "I32": 4}.get(t.get_dtype(), 1)
    return n, other


def sharded_copy(src, dst, shards=3, metadata=None):
    """src's model.safetensors as `shards` files with an index.json (the Hub's layout)."""
    from safetensors.torch import load_file, save_file
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("model.safetensors"))
    sd = load_file(os.path.join(src, "model.safetensors"))
    names = sorted(sd)
    wm = {}
    for i in range(shards):
        part = names[i::shards]
        fn = "model-%05d-of-%05d.safetensors" % (i + 1, shards)
        save_file({k: sd[k] for k in part}, os.path.join(dst, fn))
        wm.update({k: fn for k in part})
    md = {"total_size": sum(v.numel() * v.element_size() for v in sd.values())}
    md.update(metadata or {})
    with open(os.path.join(dst, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": md, "weight_map": wm}, f)
    return dst


def test_builtin_reports_footprint_mb(script):
    fp, _ = footprint(script, "editor", {"backend": "builtin", "name": "identity", "footprint_mb": 1234.5})
    assert fp == {"before": 1234500000, "after": 1234500000}


@needs_torch
@pytest.mark.parametrize("dtype,elem", [("float32", 4), ("bfloat16", 2)])
def test_native_judge_single_file(script, dtype, elem):
    n, other = float_elements(os.path.join(JUDGE, "model.safetensors"))
    fp, _ = footprint(script, "judge", {"backend": "native", "path": JUDGE, "device": "cpu", "dtype": dtype})
    assert fp["before"] == n * elem + other
    assert fp["after"] == fp["before"]   # what the loader holds is what the headers said


@needs_torch
def test_native_judge_sharded_as_bfloat16(script, tmp_path):
    d = sharded_copy(JUDGE, str(tmp_path / "sharded"))
    n, other = float_elements(os.path.join(JUDGE, "model.safetensors"))
    fp, _ = footprint(script, "judge", {"backend": "native", "path": d, "device": "cpu", "dtype": "bfloat16"})
    assert fp["before"] == n * 2 + other and fp["before"] > 0   # not 0 until loaded
    assert fp["after"] == fp["before"]


@needs_torch
def test_native_judge_stand_in_counts_the_full_model(script, tmp_path):
    d = sharded_copy(JUDGE, str(tmp_path / "standin"), metadata={
        "evalhost_full_float_numel": 31070754032, "evalhost_stand_in": "2 of 48 decoder layers"})
    fp, err = footprint(script, "judge", {"backend": "native", "path": d, "device": "cpu", "dtype": "bfloat16"})
    assert fp == {"before": 62141508064, "after": 62141508064}
    assert "a real-shape stand-in (2 of 48 decoder layers): footprint 62.1 GB" in err, err


@needs_torch
@pytest.mark.parametrize("lora", [None, "peft.safetensors"])
def test_native_editor_before_and_after(script, lora):
    parts = {}
    for part, stem in (("text_encoder", "model"), ("transformer", "diffusion_pytorch_model"),
                       ("vae", "diffusion_pytorch_model")):
        parts[part] = float_elements(os.path.join(EDITOR, part, stem + ".safetensors"), still=part == "vae")
    spec = {"backend": "native", "path": EDITOR, "device": "cpu", "dtype": "bfloat16", "num_inference_steps": 1}
    if lora:
        spec["lora"] = os.path.join(EDITOR, "lora", lora)
    fp, _ = footprint(script, "editor", spec)
    assert fp["before"] == sum(n * 2 + o for n, o in parts.values())
    # the VAE keeps one temporal slice of its causal 3-D kernels (a still
    # image) and the text encoder no LM head, both counted so before load;
    # what the loaders leave out beyond that is under 1%; the LoRA merges
    # into the transformer's weights and adds nothing
    assert fp["after"] <= fp["before"] <= 1.01 * fp["after"]
