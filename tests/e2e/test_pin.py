"""run.pin and the pageable fallback, on the CPU: the native judge with
cpu_copy (the GPU's copy path) and EVALHOST_TEST_PIN_REFUSE=1, which
refuses every page-locking as a driver at its locked-memory limit does.
auto falls back to pageable copies, says so once and reports it in
Model:info().host_memory; always fails the load naming the size; never
does not try.

Environment: EVALHOST_BIN, EVALHOST_SRC, EVALHOST_HAVE_TORCH (ON: built with libtorch).
"""
import json
import os
import subprocess

import pytest

SRC = os.environ.get("EVALHOST_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("EVALHOST_BIN") or os.path.join(SRC, "build", "evalhost")
TORCH = os.environ.get("EVALHOST_HAVE_TORCH", "").upper() in ("ON", "1", "TRUE", "YES")
JUDGE = os.path.join(SRC, "tests", "data", "qwen3vl", "dense")

pytestmark = pytest.mark.skipif(not TORCH, reason="the native judge needs a libtorch build (EVALHOST_HAVE_TORCH=ON)")

LUA = r"""
local eh = require "evalhost"
local m = assert(eh.model.open({backend = "native", path = os.getenv("EH_JUDGE"), device = "cpu",
                                dtype = "float32", cpu_copy = true}, "judge"))
local ok, err = m:load()
if not ok then
  io.stdout:write(eh.json.encode({error = err}), "\n")
  return
end
assert(m:unload())
assert(m:load())              -- a second load: the host copy is kept, nothing said again
local img = assert(eh.image.load(os.getenv("EH_JUDGE") .. "/edited.png"))
local r = assert(m:score({image = img, user_prompt = "rate it"}))
io.stdout:write(eh.json.encode({host_memory = m:info().host_memory, score = r.score}), "\n")
"""


def run(tmp_path, pin, refuse=True):
    script = tmp_path / "pin.lua"
    script.write_text(LUA)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("run: {pin: %s}\n" % pin)
    env = dict(os.environ, EH_JUDGE=JUDGE)
    if refuse:
        env["EVALHOST_TEST_PIN_REFUSE"] = "1"
    else:
        env.pop("EVALHOST_TEST_PIN_REFUSE", None)
    r = subprocess.run([BIN, str(script), str(cfg)], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1]), r.stderr


def test_auto_falls_back_to_pageable_once(tmp_path):
    out, err = run(tmp_path, "auto")
    assert out["score"] is not None
    assert out["host_memory"].startswith("pageable: page-locking ")
    assert "of host memory failed (refused by EVALHOST_TEST_PIN_REFUSE)" in out["host_memory"]
    warns = [l for l in err.splitlines() if "[warn] [load] judge: host copy pageable: page-locking" in l]
    assert len(warns) == 1, err


def test_always_fails_the_load(tmp_path):
    out, _ = run(tmp_path, "always")
    assert "page-locking" in out["error"] and "run.pin is always" in out["error"], out


def test_never_does_not_try(tmp_path):
    out, err = run(tmp_path, "never")
    assert out["host_memory"] == "pageable" and "page-locking" not in err


def test_without_the_hook_a_cpu_copy_is_pageable(tmp_path):
    out, err = run(tmp_path, "always", refuse=False)
    assert out["host_memory"] == "pageable" and "[warn]" not in err, err
