"""The report's bootstrap through the host's C loop (host/core/bootstrap.c)
gives the same bits as stats.lua's Lua loop, and both match the independent
reference of tests/data/stats_reference.py (numpy percentiles)."""
import json
import os
import re
import subprocess

SRC = os.environ.get("EVALHOST_SRC", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BIN = os.environ.get("EVALHOST_BIN", os.path.join(SRC, "build", "evalhost"))
REF = os.path.join(SRC, "tests", "data", "stats_reference.lua")


def dump():
    env = dict(os.environ, STATS_REF=REF)
    r = subprocess.run([BIN, os.path.join(SRC, "tests", "e2e", "bootstrap_dump.lua")], capture_output=True,
                       env=env, cwd=SRC, timeout=300)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return json.loads(r.stdout)


def expected_ci95():
    # the reference file's expected.<set>.ci95 pairs, read without a Lua parser
    text = open(REF, encoding="utf-8").read()
    exp = text[text.index('["expected"]'):]
    out = {}
    for m in re.finditer(r'\["(\w+)"\] = \{\s*\["n"\].*?\["ci95"\] = \{([^}]*)\}', exp, re.S):
        out[m.group(1)] = [float(v) for v in m.group(2).split(",")]
    return out


def test_c_loop_equals_lua_loop_bit_for_bit():
    got = dump()
    assert {"big_seed0", "big_seed_neg", "stratified"} <= set(got)
    assert len([k for k in got if k.startswith("ref_")]) >= 5
    for name, v in got.items():
        assert v["c"] == v["lua"], name
        assert v["c"][0] <= v["c"][1], name


def test_c_loop_matches_the_independent_reference():
    got, want = dump(), expected_ci95()
    assert want, "no ci95 in the reference file"
    for name, ci in want.items():
        c = got["ref_" + name]["c"]
        assert abs(c[0] - ci[0]) < 1e-12 and abs(c[1] - ci[1]) < 1e-12, (name, c, ci)


def test_bad_groups_raise_a_script_error(tmp_path):
    script = tmp_path / "bad.lua"
    script.write_text('local ok, e = pcall(evalhost.bootstrap.means, {{}}, 10, 0)\n'
                      'io.write(tostring(ok), " ", tostring(e), "\\n")\n'
                      'ok, e = pcall(evalhost.bootstrap.means, {{1, "x"}}, 10, 0)\n'
                      'io.write(tostring(ok), " ", tostring(e), "\\n")\n'
                      'ok, e = pcall(evalhost.bootstrap.means, {{1}}, 0, 0)\n'
                      'io.write(tostring(ok), " ", tostring(e), "\\n")\n')
    r = subprocess.run([BIN, str(script)], capture_output=True, cwd=SRC, timeout=60)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    lines = r.stdout.decode().splitlines()
    assert lines[0].startswith("false") and "group 1 is empty" in lines[0]
    assert lines[1].startswith("false") and "value 2 is not a number" in lines[1]
    assert lines[2].startswith("false") and "resamples out of range" in lines[2]
