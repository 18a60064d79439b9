"""A build without libcurl (-DEVALHOST_HTTP=OFF, the GPU machine's build in
tools/gpu/check.sh) refuses the http backend by name: model.open returns
nil and a message saying how to get it back, whether `backend: http` is
written or inferred from base_url; a schedule whose judge is http stops
before any pair with that message; the builtin backend still opens.

Skipped (visibly) in a build with the http backend: there the backend opens
and tests/e2e/test_http_backend.py covers it.  check.sh runs this file
against its EVALHOST_HTTP=OFF build; `cmake -DEVALHOST_HTTP=OFF` builds run
it under ctest.
"""
import json
import os
import subprocess

import pytest

SRC = os.environ.get("EVALHOST_SRC") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("EVALHOST_BIN") or os.path.join(SRC, "build", "evalhost")
HAVE_HTTP = (os.environ.get("EVALHOST_HAVE_HTTP") or "ON").upper() not in ("OFF", "0", "FALSE", "NO")
pytestmark = pytest.mark.skipif(HAVE_HTTP, reason="this evalhost has the http backend (EVALHOST_HTTP=ON)")

WHY = "this evalhost was built without libcurl (EVALHOST_HTTP=OFF"


def test_open_refuses_http_by_name(tmp_path):
    script = tmp_path / "t.lua"
    script.write_text("""
local eh = require "evalhost"
local function try(spec, section)
  local m, e = eh.model.open(spec, section)
  io.stdout:write(eh.json.encode({ok = m ~= nil, err = e and tostring(e) or nil}), "\\n")
  if m then m:close() end
end
try({backend = "http", base_url = "http://127.0.0.1:9", model = "Qwen/Qwen3-VL-30B-A3B-Instruct"}, "judge")
try({base_url = "http://127.0.0.1:9", model = "gpt-image-1"}, "editor")
try({backend = "builtin", name = "metrics"}, "judge")
""")
    p = subprocess.run([BIN, str(script)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    explicit, inferred, builtin = (json.loads(ln) for ln in p.stdout.splitlines() if ln.strip())
    assert not explicit["ok"] and WHY in explicit["err"] and "judge: backend 'http'" in explicit["err"], explicit
    assert not inferred["ok"] and WHY in inferred["err"] and "editor: backend 'http'" in inferred["err"], inferred
    assert builtin["ok"], builtin


def test_schedule_with_http_judge_stops_before_any_pair(tmp_path):
    out = tmp_path / "out"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("benchmark:\n  data_path: %s\n  categories: [物理]\n"
                   "editor: {backend: builtin, name: imageops}\n"
                   "judge: {backend: http, base_url: 'http://127.0.0.1:9', model: m}\n"
                   "run:\n  out: %s\n" % (json.dumps(os.path.join(SRC, "examples", "benchmark.json")), json.dumps(str(out))))
    p = subprocess.run([BIN, os.path.join(SRC, "scripts", "two_stage.lua"), str(cfg), "--quiet"], capture_output=True,
                       text=True, timeout=120, cwd=SRC)
    assert p.returncode != 0
    assert WHY in p.stderr + p.stdout, p.stderr
    assert not list(out.glob("**/*.png")), "no pair may be edited before the judge is refused"
