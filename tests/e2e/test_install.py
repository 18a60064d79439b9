"""`make install`: the installed binary finds its Lua library, scripts,
prompts and config relative to itself, from any working directory, and
EVALHOST_PATH overrides the library folder (issue 4)."""
import json
import os
import subprocess

from conftest import BIN, SRC


def install(prefix):
    build = BIN.parent
    subprocess.run(["cmake", "--install", str(build), "--prefix", str(prefix)], check=True,
                   capture_output=True, timeout=120)
    return prefix / "bin" / "evalhost"


def test_installed_binary_runs_the_default_job_from_anywhere(tmp_path):
    exe = install(tmp_path / "prefix")
    share = tmp_path / "prefix" / "share" / "evalhost"
    assert (share / "lua" / "evalhost" / "schedule" / "init.lua").exists()
    assert (share / "config" / "prompts.yaml").exists()
    out = tmp_path / "out"
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    r = subprocess.run([str(exe), str(share / "scripts" / "two_stage.lua"), str(share / "config" / "example.yaml"),
                        "--set", f"benchmark.data_path={SRC / 'examples' / 'benchmark.json'}",
                        "--set", f"run.out={out}", "--quiet"],
                       cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    reports = sorted((out / "results").glob("evaluation_report_*.json"))
    assert reports
    rep = json.loads(reports[-1].read_text(encoding="utf-8"))
    assert rep["overall"]["n"] == 25 and rep["swaps"]["count"] == 9


def test_evalhost_path_overrides_the_library(tmp_path):
    lib = tmp_path / "mylib" / "evalhost"
    lib.mkdir(parents=True)
    (lib / "stats.lua").write_text("return {mine = true}\n")
    script = tmp_path / "s.lua"
    script.write_text('print(require("evalhost.stats").mine)\n')
    env = dict(os.environ, EVALHOST_PATH=str(tmp_path / "mylib"))
    r = subprocess.run([str(BIN), str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "true"
