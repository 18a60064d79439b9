"""Issue 24's leftovers, found by a red-team pass: each a mistake a new user
makes, fed to evalhost, with the message and exit code it must give.

* a relative script path run from another folder (scripts/two_stage.lua from
  /) is found in the data root as a bare name is, and when it is nowhere the
  message names every place tried; `evalhost list extra` says list takes no
  arguments;
* run.pin / run.device_memory are read after the schema check: their errors
  carry file:line:col (or the --set) and nothing has run;
* benchmark.categories: `all` is every category in file order, "物理,环境" as
  one string is split (lmms-eval's habit); a missing data_path names each
  absolute path once; a leading ~/ is HOME's;
* "0 edit(s) reused" says why (the editor keys that differ); the zh table's
  overall row is all Chinese;
* report.html=false leaves no latest.html of an older run; two runs in one
  second get two report names;
* a missing prompts.file names the absolute path tried and its folder;
* a dataset missing its instruction field names dataset.instruction.
"""
import json
import os
import re

import pytest

from conftest import SRC, nothing_ran, run_evalhost

EXAMPLE = str(SRC / "config" / "example.yaml")
ROOT = str(SRC.resolve())


def write_config(tmp_path, text, name="cfg.yaml"):
    cfg = tmp_path / name
    cfg.write_text(text, encoding="utf-8")
    return cfg


def report_of(out):
    return json.loads((out / "results" / "latest.json").read_text(encoding="utf-8"))


# --- 1. the command line -----------------------------------------------------

def test_a_script_path_with_a_slash_runs_from_another_folder(tmp_path):
    out = tmp_path / "out"
    r = run_evalhost("scripts/two_stage.lua", EXAMPLE, "--set", f"run.out={out}", "--quiet", cwd="/")
    assert r.returncode == 0, r.stderr
    assert report_of(out)["overall"]["n"] == 25


def test_a_script_path_found_nowhere_names_each_place_tried(tmp_path):
    r = run_evalhost("scripts/no_such.lua", EXAMPLE, cwd=str(tmp_path))
    assert r.returncode == 2
    assert (f"evalhost: cannot read script 'scripts/no_such.lua': No such file or directory in {tmp_path}, "
            f"nor {ROOT}/scripts/no_such.lua (evalhost list shows the scripts)") in r.stderr, r.stderr


def test_list_takes_no_arguments():
    r = run_evalhost("list", "extra")
    assert r.returncode == 2
    assert "evalhost: list takes no arguments (got 'extra'): run `evalhost list` alone" in r.stderr, r.stderr
    assert "cannot open config" not in r.stderr


def test_run_device_memory_that_is_no_size_is_named_at_its_line(tmp_path):
    out = tmp_path / "out"
    cfg = write_config(tmp_path, f"benchmark:\n  data_path: {SRC}/examples/benchmark.json\n"
                                 f"run:\n  out: {out}\n  device_memory: 80XB\n")
    r = run_evalhost("two_stage", cfg)
    assert r.returncode == 1, r.stderr
    assert f"{cfg}:5:3: run.device_memory must be a size such as 80GB, 141GB or 40GiB" in r.stderr, r.stderr
    nothing_ran(r, out)


def test_run_device_memory_through_set_names_the_assignment(tmp_path):
    out = tmp_path / "out"
    r = run_evalhost("two_stage", EXAMPLE, "--set", f"run.out={out}", "--set", "run.device_memory=lots")
    assert r.returncode == 2, r.stderr
    assert "evalhost: --set run.device_memory=lots: run.device_memory must be a size such as 80GB" in r.stderr, r.stderr
    nothing_ran(r, out)


def test_run_pin_is_checked_by_the_schema_with_its_position(tmp_path):
    out = tmp_path / "out"
    cfg = write_config(tmp_path, f"run:\n  out: {out}\n  pin: sometimes\n")
    r = run_evalhost("two_stage", cfg)
    assert r.returncode == 1, r.stderr
    assert f"{cfg}:3:3: run.pin must be one of auto, always, never, got \"sometimes\"" in r.stderr, r.stderr
    assert "run.pin must be auto, always or never" not in r.stderr   # the host's own, unplaced message
    nothing_ran(r, out)


# --- 2. categories and data_path ---------------------------------------------

def banner(stderr):
    m = re.search(r"evalhost two_stage: (\d+) 个类别, (\d+) 对", stderr)
    assert m, stderr
    return int(m.group(1)), int(m.group(2))


@pytest.mark.parametrize("value", ["all", "[all]"])
def test_categories_all_is_every_category_in_file_order(tmp_path, value):
    out = tmp_path / "out"
    r = run_evalhost("two_stage", EXAMPLE, "--set", f"run.out={out}", "--set", f"benchmark.categories={value}")
    assert r.returncode == 0, r.stderr
    order = list(json.loads((SRC / "examples" / "benchmark.json").read_text(encoding="utf-8")))
    assert report_of(out)["category_order"] == order
    assert banner(r.stderr) == (len(order), 25)


@pytest.mark.parametrize("value,want", [
    ("物理,环境", ["物理", "环境"]),
    ("物理， 环境 ,社会", ["物理", "环境", "社会"]),   # full-width comma, spaces
])
def test_categories_as_one_comma_string_is_split(tmp_path, value, want):
    out = tmp_path / "out"
    r = run_evalhost("two_stage", EXAMPLE, "--set", f"run.out={out}", "--set", f"benchmark.categories={value}")
    assert r.returncode == 0, r.stderr
    assert report_of(out)["category_order"] == want


def test_categories_comma_string_with_an_unknown_name_is_still_refused(tmp_path):
    out = tmp_path / "out"
    r = run_evalhost("two_stage", EXAMPLE, "--set", f"run.out={out}", "--set", "benchmark.categories=物理,物里")
    assert r.returncode == 1, r.stderr
    assert 'config: benchmark.categories: unknown category "物里"' in r.stderr, r.stderr


def test_a_missing_data_path_names_each_path_once(tmp_path):
    cfg = write_config(tmp_path, f"benchmark:\n  data_path: nope.json\nrun:\n  out: {tmp_path}/out\n")
    r = run_evalhost("two_stage", cfg.name, cwd=str(tmp_path))
    assert r.returncode == 1, r.stderr
    want = (f"config: benchmark.data_path: nope.json does not exist; tried {tmp_path}/nope.json (from the current "
            f"folder {tmp_path} and the config's folder {tmp_path}), {ROOT}/nope.json (from evalhost's folder {ROOT})")
    assert want in r.stderr, r.stderr
    assert r.stderr.count(f"{tmp_path}/nope.json") == 1, r.stderr


def test_a_data_path_under_home_is_expanded(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "b.json").write_bytes((SRC / "examples" / "benchmark.json").read_bytes())
    out = tmp_path / "out"
    r = run_evalhost("two_stage", EXAMPLE, "--set", f"run.out={out}", "--set", "benchmark.data_path=~/b.json",
                     "--quiet", env={"HOME": str(home)}, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert report_of(out)["overall"]["n"] == 25


# --- 3. reuse_edits_from, the zh table ---------------------------------------

def test_no_edit_reused_says_which_editor_keys_differ(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    cats = "benchmark.categories=[物理]"
    assert run_evalhost("two_stage", EXAMPLE, "--set", f"run.out={a}", "--set", cats, "--quiet").returncode == 0
    r = run_evalhost("two_stage", EXAMPLE, "--set", f"run.out={b}", "--set", cats, "--set", f"run.reuse_edits_from={a}",
                     "--set", "editor.params={delay_ms: 1}")
    assert r.returncode == 0, r.stderr
    assert (f"run.reuse_edits_from: {a}'s editor config differs (editor.params.delay_ms (added: 1)): "
            "its edits are not reused") in r.stderr, r.stderr
    assert (f"run.reuse_edits_from: 0 edit(s) reused from {a}, 5 made here; not reused: 5: the editor config "
            "differs (editor.params.delay_ms (added: 1))") in r.stderr, r.stderr


def test_edits_not_in_the_source_run_are_counted_as_such(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_evalhost("two_stage", EXAMPLE, "--set", f"run.out={a}", "--set", "benchmark.categories=[物理]",
                        "--quiet").returncode == 0
    r = run_evalhost("two_stage", EXAMPLE, "--set", f"run.out={b}", "--set", "benchmark.categories=[物理, 环境]",
                     "--set", f"run.reuse_edits_from={a}")
    assert r.returncode == 0, r.stderr
    assert (f"run.reuse_edits_from: 5 edit(s) reused from {a}, 5 made here; not reused: 5: that run has no edit "
            "of the pair") in r.stderr, r.stderr


@pytest.mark.parametrize("aggregate,label", [("pairs", "总体 (按对)"), ("categories", "总体 (按类别)")])
def test_the_zh_table_names_the_aggregate_in_chinese(tmp_path, aggregate, label):
    out = tmp_path / "out"
    r = run_evalhost("two_stage", EXAMPLE, "--set", f"run.out={out}", "--set", "ui.language=zh",
                     "--set", f"report.aggregate={aggregate}")
    assert r.returncode == 0, r.stderr
    assert re.search(rf"^{re.escape(label)} +25 ", r.stderr, re.M), r.stderr
    assert f"({aggregate})" not in r.stderr


# --- 4. report names, latest.* -----------------------------------------------

def test_report_html_false_leaves_no_older_latest_html(tmp_path):
    out = tmp_path / "out"
    args = ("two_stage", EXAMPLE, "--set", f"run.out={out}", "--set", "benchmark.categories=[物理]", "--quiet")
    assert run_evalhost(*args).returncode == 0
    assert (out / "results" / "latest.html").exists()
    r = run_evalhost(*args, "--set", "report.html=false", "--resume")
    assert r.returncode == 0, r.stderr
    assert not (out / "results" / "latest.html").exists(), "latest.html is the first run's page"
    assert (out / "results" / "latest.json").exists() and (out / "results" / "latest.md").exists()


def test_two_reports_in_one_second_get_two_names(tmp_path):
    import time
    out = tmp_path / "out"
    results = out / "results"
    args = ("two_stage", EXAMPLE, "--set", f"run.out={out}", "--set", "benchmark.categories=[物理]", "--quiet")
    first = run_evalhost(*args)
    assert first.returncode == 0, first.stderr
    before = {p.name: p.read_bytes() for p in results.glob("evaluation_report_*.json")}
    # reports stamped with each second the resumed run may finish in, as a run in that second leaves them
    now = time.time()
    planted = {}
    for dt in range(0, 60):
        stem = "evaluation_report_" + time.strftime("%Y%m%d_%H%M%S", time.localtime(now + dt))
        p = results / (stem + ".json")
        if not p.exists():
            p.write_text('{"planted": true}', encoding="utf-8")
            planted[stem] = p
    r = run_evalhost(*args, "--resume")
    assert r.returncode == 0, r.stderr
    paths = [l[len("report: "):] for l in r.stderr.splitlines() if l.startswith("report: ")]
    assert len(paths) == 3, r.stderr
    m = re.fullmatch(r".*/(evaluation_report_\d{8}_\d{6})_2\.json", paths[0])
    assert m and (m.group(1) in planted or m.group(1) + ".json" in before), paths
    assert all(p.read_text(encoding="utf-8") == '{"planted": true}' for p in planted.values())
    assert all((results / name).read_bytes() == data for name, data in before.items()), "the first report was replaced"
    assert json.loads(open(paths[0], encoding="utf-8").read())["overall"]["n"] == 5


# --- 5. prompts.file ---------------------------------------------------------

def test_a_missing_prompts_file_names_the_absolute_paths_tried(tmp_path):
    sub = tmp_path / "cfgdir"
    sub.mkdir()
    cfg = write_config(sub, f"benchmark:\n  data_path: {SRC}/examples/benchmark.json\nprompts:\n  file: mine.yaml\n"
                            f"run:\n  out: {tmp_path}/out\n")
    r = run_evalhost("two_stage", cfg.relative_to(tmp_path), cwd=str(tmp_path))
    assert r.returncode == 1, r.stderr
    assert (f"config: prompts.file: mine.yaml does not exist; tried {tmp_path}/mine.yaml (from the current folder "
            f"{tmp_path}), {sub}/mine.yaml (from the config's folder {sub})") in r.stderr, r.stderr


def test_a_prompts_file_beside_the_config_is_found(tmp_path):
    sub = tmp_path / "cfgdir"
    sub.mkdir()
    (sub / "mine.yaml").write_bytes((SRC / "config" / "prompts.yaml").read_bytes())
    cfg = write_config(sub, f"benchmark:\n  data_path: {SRC}/examples/benchmark.json\n  categories: [物理]\n"
                            "editor: {backend: builtin, name: imageops}\njudge: {backend: builtin, name: metrics}\n"
                            f"prompts:\n  file: mine.yaml\nrun:\n  out: {tmp_path}/out\n")
    r = run_evalhost("two_stage", "cfgdir/cfg.yaml", "--quiet", cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert cfg.exists() and report_of(tmp_path / "out")["overall"]["n"] == 5


# --- 6. a dataset missing a field --------------------------------------------

@pytest.mark.parametrize("drop,field,key", [
    ("edit_instruction", "edit_instruction", "dataset.instruction"),
    ("original_image_b64", "original_image_b64", "dataset.image"),
])
def test_a_missing_field_names_the_config_key(tmp_path, drop, field, key):
    data = json.loads((SRC / "examples" / "benchmark.json").read_text(encoding="utf-8"))
    cat = next(iter(data))
    first = data[cat]["data_pairs"][0]
    first.pop(drop)
    if drop == "original_image_b64":
        first.pop("image", None)
    ds = tmp_path / "b.json"
    ds.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "out"
    r = run_evalhost("two_stage", EXAMPLE, "--set", f"run.out={out}", "--set", f"benchmark.data_path={ds}",
                     "--set", f"benchmark.categories=[{cat}]")
    assert r.returncode == 1, r.stderr
    want = f'{cat}/{first["id"]} (#1): missing field "{field}" (the config key {key} names it)'
    assert want in r.stderr, r.stderr


def test_an_installed_binary_runs_a_script_path_from_root(tmp_path):
    import subprocess
    from conftest import BIN
    prefix = tmp_path / "prefix"
    subprocess.run(["cmake", "--install", str(BIN.parent), "--prefix", str(prefix)], check=True,
                   capture_output=True, timeout=120)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "EVALHOST_PATH"}
    r = subprocess.run([str(prefix / "bin" / "evalhost"), "scripts/two_stage.lua",
                        str(prefix / "share" / "evalhost" / "config" / "example.yaml"), "--set", f"run.out={out}",
                        "--set", "benchmark.categories=[物理]", "--quiet"], cwd="/", env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert report_of(out)["overall"]["n"] == 5
