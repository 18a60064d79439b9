"""`make install` and builds outside the source tree (issues 4, 24): the
installed binary finds its Lua library, scripts, configs and the examples
they name relative to itself; a build folder anywhere finds its checkout
(compiled in); both run `two_stage` by name from `/` with EVALHOST_PATH
unset; EVALHOST_PATH's folders come first; the installed RUNPATH names the
Torch it was built against and never the build folder."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import BIN, SRC


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("EVALHOST_PATH", "SLURM_PROCID", "RANK")}
    env.update(extra)
    return env


def install(prefix):
    build = BIN.parent
    subprocess.run(["cmake", "--install", str(build), "--prefix", str(prefix)], check=True,
                   capture_output=True, timeout=120)
    return prefix / "bin" / "evalhost"


def check_report(out, n=25, swaps=9):
    reports = sorted((out / "results").glob("evaluation_report_*.json"))
    assert reports, f"no report in {out}"
    rep = json.loads(reports[-1].read_text(encoding="utf-8"))
    assert rep["overall"]["n"] == n and rep["swaps"]["count"] == swaps


def test_installed_tree_runs_two_stage_by_name_from_root(tmp_path):
    exe = install(tmp_path / "prefix")
    share = tmp_path / "prefix" / "share" / "evalhost"
    assert (share / "lua" / "evalhost" / "schedule" / "init.lua").exists()
    assert (share / "lua" / "evalhost" / "schema.lua").exists()
    assert (share / "config" / "prompts.yaml").exists()
    # the installed config names examples/benchmark.json: it is installed with it
    assert "examples/benchmark.json" in (share / "config" / "example.yaml").read_text(encoding="utf-8")
    assert (share / "examples" / "benchmark.json").exists()
    out = tmp_path / "out"
    r = subprocess.run([str(exe), "two_stage", str(share / "config" / "example.yaml"), "--set", f"run.out={out}",
                        "--quiet"], cwd="/", capture_output=True, text=True, timeout=300, env=clean_env())
    assert r.returncode == 0, r.stderr
    check_report(out)
    # --quiet still names the reports
    assert f"report: {out}/results/evaluation_report_" in r.stderr
    # and `list` shows the installed scripts
    r = subprocess.run([str(exe), "list"], cwd="/", capture_output=True, text=True, timeout=60, env=clean_env())
    assert r.returncode == 0, r.stderr
    assert f"scripts ({share}/scripts;" in r.stdout and "two_stage" in r.stdout


def test_installed_binary_keeps_working_without_the_checkout(tmp_path):
    """The install is self-contained: the prefix moved elsewhere still runs,
    by script name and with the config named from its own folder."""
    install(tmp_path / "prefix")
    moved = tmp_path / "moved"
    shutil.copytree(tmp_path / "prefix", moved, symlinks=True)
    shutil.rmtree(tmp_path / "prefix")
    out = tmp_path / "out"
    r = subprocess.run([str(moved / "bin" / "evalhost"), "two_stage", "example.yaml", "--set", f"run.out={out}",
                        "--quiet"], cwd=moved / "share" / "evalhost" / "config", capture_output=True, text=True,
                       timeout=300, env=clean_env())
    assert r.returncode == 0, r.stderr
    check_report(out)


def readelf_runpath(path):
    r = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True, timeout=60)
    for line in r.stdout.splitlines():
        if "RUNPATH" in line or "RPATH" in line:
            return line.split("[", 1)[1].rsplit("]", 1)[0].split(":")
    return []


def test_installed_runpath_names_the_torch_and_never_the_build_folder(tmp_path):
    if shutil.which("readelf") is None:
        pytest.skip("readelf is not installed (binutils)")
    exe = install(tmp_path / "prefix")
    runpath = readelf_runpath(exe)
    build = str(BIN.parent.resolve())
    assert not any(p.startswith(build) for p in runpath), runpath
    if os.environ.get("EVALHOST_HAVE_TORCH") == "ON":
        assert any(os.path.exists(os.path.join(p, "libc10.so")) for p in runpath), runpath
        r = subprocess.run(["ldd", str(exe)], capture_output=True, text=True, timeout=60)
        assert "not found" not in r.stdout, r.stdout


def test_out_of_tree_build_runs_two_stage_by_name_from_root(tmp_path):
    """cmake -S <checkout> -B <anywhere>: the binary knows its checkout."""
    build = tmp_path / "b"
    launcher = ["-DCMAKE_C_COMPILER_LAUNCHER=ccache"] if shutil.which("ccache") else []
    r = subprocess.run(["cmake", "-S", str(SRC), "-B", str(build), "-DEVALHOST_TORCH=OFF", *launcher],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run(["cmake", "--build", str(build), "--target", "evalhost", "-j", "2"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = tmp_path / "out"
    r = subprocess.run([str(build / "evalhost"), "two_stage", str(SRC / "config" / "example.yaml"),
                        "--set", f"run.out={out}", "--quiet"], cwd="/", capture_output=True, text=True,
                       timeout=300, env=clean_env())
    assert r.returncode == 0, r.stderr
    check_report(out)


def test_evalhost_path_comes_first(tmp_path):
    lib = tmp_path / "mylib" / "evalhost"
    lib.mkdir(parents=True)
    (lib / "stats.lua").write_text("return {mine = true}\n")
    script = tmp_path / "s.lua"
    script.write_text('print(require("evalhost.stats").mine, require("evalhost.util") ~= nil)\n')
    env = clean_env(EVALHOST_PATH=str(tmp_path / "mylib"))
    r = subprocess.run([str(BIN), str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    # its modules win; the rest of the library is still the binary's own
    assert r.stdout.split() == ["true", "true"]


def test_a_copied_binary_still_finds_its_checkout(tmp_path):
    """A build-tree binary copied anywhere keeps its checkout (compiled in)."""
    lone = tmp_path / "bin" / "evalhost"
    lone.parent.mkdir()
    shutil.copy(BIN, lone)
    r = subprocess.run([str(lone), "list"], cwd="/", capture_output=True, text=True, env=clean_env(), timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"scripts ({SRC.resolve()}/scripts;" in r.stdout
