"""The command line: exit codes, config errors with their line, --set typing,
script errors with a traceback (issue 4)."""
import json

import pytest

from conftest import run_evalhost

DUMP_CONFIG = """
local function kind(v)
  if math.type(v) then return math.type(v) end
  return type(v)
end
local out = {}
for k, v in pairs(evalhost.config.limits or {}) do out[k] = kind(v) .. ":" .. tostring(v) end
out.cats = evalhost.config.benchmark and evalhost.config.benchmark.categories
out.keep = evalhost.config.script and evalhost.config.script.keep
print(evalhost.json.encode(out))
"""


def test_version_and_help():
    r = run_evalhost("--version")
    assert r.returncode == 0 and r.stdout.startswith("evalhost ")
    r = run_evalhost("--help")
    assert r.returncode == 0 and "--resume" in r.stdout


def test_usage_errors():
    r = run_evalhost()
    assert r.returncode == 2 and "usage:" in r.stderr
    r = run_evalhost("scripts/two_stage.lua", "config/example.yaml", "--frobnicate")
    assert r.returncode == 2 and "unknown option '--frobnicate'" in r.stderr
    r = run_evalhost("no/such/script.lua", "config/example.yaml")
    assert r.returncode == 2 and "cannot read script 'no/such/script.lua'" in r.stderr
    r = run_evalhost("scripts/two_stage.lua", "config/example.yaml", "--shard", "3/3")
    assert r.returncode == 2 and "--shard 3/3: expected i/N" in r.stderr


def test_missing_config(tmp_path):
    r = run_evalhost("scripts/two_stage.lua", tmp_path / "nope.yaml")
    assert r.returncode == 1
    assert f"{tmp_path / 'nope.yaml'}: cannot open config" in r.stderr


def test_bad_yaml_names_line(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("benchmark:\n  data_path: x.json\n  categories: [a, b\nrun: {out: o}\n")
    r = run_evalhost("scripts/two_stage.lua", cfg)
    assert r.returncode == 1
    assert r.stderr.startswith(f"{cfg}:")
    line = int(r.stderr.split(":")[1])
    assert line in (3, 4)
    assert "traceback" not in r.stderr


@pytest.mark.parametrize("name,text,want", [
    # a duplicate key names both lines
    ("dup", "run: {out: a}\njudge: {name: metrics}\nrun: {out: b}\n",
     "{cfg}:3:1: duplicate key 'run' (first at line 1)"),
    ("typo", "benchmark: {data_path: examples/benchmark.json}\njudeg: {name: metrics}\n",
     "{cfg}:2:1: unknown top-level key 'judeg' (did you mean 'judge'?)"),
    ("tag", "run: !!python/object/apply:os.system ['echo hi']\n", "unsupported tag"),
])
def test_bad_config_is_refused_by_name(tmp_path, name, text, want):
    cfg = tmp_path / (name + ".yaml")
    cfg.write_text(text)
    r = run_evalhost("scripts/two_stage.lua", cfg)
    assert r.returncode == 1
    assert want.format(cfg=cfg) in r.stderr


def test_set_values_are_typed_like_yaml(tmp_path):
    script = tmp_path / "dump.lua"
    script.write_text(DUMP_CONFIG)
    r = run_evalhost(script, "config/example.yaml", "--set", "limits.max_b64_len=1e6", "--set", "limits.max_pairs=0x1F",
                     "--set", "benchmark.categories=[物理,环境]", "--set", "script.keep=no")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["max_b64_len"] == "float:1000000.0"
    assert out["max_pairs"] == "integer:31"
    assert out["cats"] == ["物理", "环境"]
    assert out["keep"] == "no"
    r = run_evalhost(script, "config/example.yaml", "--set", "jduge.name=x")
    assert r.returncode == 2 and "did you mean 'judge'" in r.stderr


def test_script_error_has_traceback(tmp_path):
    script = tmp_path / "boom.lua"
    script.write_text("local function f()\n  error('kaboom')\nend\nf()\n")
    r = run_evalhost("boom.lua", cwd=tmp_path)
    assert r.returncode == 2
    assert "evalhost: boom.lua:2: kaboom" in r.stderr
    assert "stack traceback:" in r.stderr
    syntax = tmp_path / "syntax.lua"
    syntax.write_text("local x = = 1\n")
    r = run_evalhost("syntax.lua", cwd=tmp_path)
    assert r.returncode == 2 and "syntax.lua:1:" in r.stderr


def test_script_return_is_exit_code(tmp_path):
    script = tmp_path / "ret.lua"
    script.write_text("return 1\n")
    assert run_evalhost(script).returncode == 1
    script.write_text("print(evalhost.shard().index, evalhost.shard().count)\n")
    r = run_evalhost(script, "--shard", "1/4")
    assert r.stdout.split() == ["1", "4"]
    r = run_evalhost(script, env={"SLURM_PROCID": "2", "SLURM_NTASKS": "3"})
    assert r.stdout.split() == ["2", "3"]


def test_closed_model_raises(tmp_path):
    script = tmp_path / "closed.lua"
    script.write_text("local m = assert(evalhost.model.open({name='metrics'}, 'judge'))\n"
                      "m:close(); m:close()\n"
                      "local ok, err = pcall(m.state, m)\n"
                      "assert(not ok and err:find('attempt to use a closed Model'))\n"
                      "local j = assert(evalhost.model.open({name='metrics'}, 'judge'))\n"
                      "local ok2, err2 = pcall(j.score, j, {image = evalhost.image.load('tests/data/images/photo.png')})\n"
                      "assert(not ok2 and err2:find('not loaded'), err2)\n"
                      "local bad, msg = evalhost.model.open({backend='builtin', name='nope'}, 'judge')\n"
                      "assert(bad == nil and msg:find(\"unknown builtin model 'nope'\"))\n"
                      "print('ok')\n")
    r = run_evalhost(script)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_json_depth_limit_at_and_past(tmp_path):
    """limits.max_json_depth bounds evalhost.json: at the limit it decodes,
    one past it is nil plus a message naming the key; encoding a deeper
    (or cyclic) table is a script error."""
    script = tmp_path / "j.lua"
    script.write_text(
        "local d = tonumber(evalhost.args[1])\n"
        "local at = string.rep('[', d) .. string.rep(']', d)\n"
        "local past = string.rep('[', d + 1) .. string.rep(']', d + 1)\n"
        "assert(evalhost.json.decode(at))\n"
        "local v, err = evalhost.json.decode(past)\n"
        "assert(v == nil, 'decoded past the limit')\n"
        "print(err)\n"
        "local t = {}; t.self = t\n"
        "local ok, e = pcall(evalhost.json.encode, t)\n"
        "print(ok, e)\n")
    r = run_evalhost(script, "config/example.yaml", "--set", "limits.max_json_depth=10", "10")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "json: nested deeper than limits.max_json_depth (10)"
    assert lines[1].startswith("false") and "limits.max_json_depth (10)" in lines[1]
