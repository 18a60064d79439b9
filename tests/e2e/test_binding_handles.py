"""The Model, Progress and json bindings' handles through the real binary:
close is idempotent (close, __close and __gc are one function), a closed
handle is rejected by every method with a script error, <close> works, and
the json guard frees a half-built tree when encode raises."""
import os
import subprocess

import pytest

BIN = os.environ.get("EVALHOST_BIN", "")

pytestmark = pytest.mark.skipif(not BIN or not os.path.exists(BIN), reason="EVALHOST_BIN not built")


def run_lua(tmp_path, body):
    script = tmp_path / "t.lua"
    script.write_text("local h = evalhost\n" + body + "\n")
    return subprocess.run([BIN, str(script)], capture_output=True, text=True, timeout=60)


def test_progress_close_and_closed_use(tmp_path):
    r = run_lua(tmp_path, r'''
local p = h.progress("x", 3)
p:tick(); p:close(); p:close()
do local q <close> = h.progress("y", 1) end
collectgarbage(); collectgarbage()
p:tick()
''')
    assert r.returncode != 0
    assert "attempt to use a closed Progress" in r.stderr


def test_model_close_and_closed_use(tmp_path):
    # an http model opens without reaching its server (load is lazy)
    r = run_lua(tmp_path, r'''
local m = assert(h.model.open({backend = "http", base_url = "http://127.0.0.1:9", name = "x"}, "judge"))
assert(tostring(m) == "Model(judge: http/x, disk)", tostring(m))
m:close(); m:close()
assert(tostring(m) == "Model(closed)")
for _, name in ipairs({"load", "unload", "state", "footprint", "info"}) do
  local ok, err = pcall(m[name], m)
  assert(not ok and err:find("closed Model", 1, true), name .. ": " .. tostring(err))
end
do local n <close> = assert(h.model.open({backend = "http", base_url = "http://127.0.0.1:9", name = "y"}, "judge")) end
collectgarbage(); collectgarbage()
print("ok")
''')
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_json_guard_survives_a_raise(tmp_path):
    r = run_lua(tmp_path, r'''
local j = h.json
for _ = 1, 200 do
  local ok, err = pcall(j.encode, {a = {1, 2, 3}, f = print})
  assert(not ok and err:find("cannot encode a function", 1, true), tostring(err))
end
collectgarbage(); collectgarbage()
assert(getmetatable(j.decode("[1,2]")) == j.array_mt)
-- a world failure has luaL_fileresult's shape: nil, message, code
local v, msg, code = j.decode("[1,")
assert(v == nil and msg:find("invalid JSON", 1, true) and code == "EINVAL", tostring(msg) .. " " .. tostring(code))
assert(j.decode(j.encode({1, {a = 1}}))[2].a == 1)
print("ok")
''')
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
