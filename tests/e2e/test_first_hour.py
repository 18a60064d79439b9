"""A user's first hour (issue 24): the CLI finds scripts by name and says
what it has (`evalhost list`), a config given as the script is named as
such; the end of a run prints a per-category table, --quiet still prints the
report paths, reuse_edits_from says how many edits it reused, the console's
p values read as the Markdown's, ui.language picks the labels; errors point:
a dataset's syntax error at file:line:col, a missing relative data_path with
every absolute path tried."""
import json
import re

import pytest

from conftest import SRC, run_evalhost

EXAMPLE = str(SRC / "config" / "example.yaml")
CJK = re.compile(r"[\u4e00-\u9fff]")


def report_of(out):
    files = sorted((out / "results").glob("evaluation_report_*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text(encoding="utf-8")), files[0]


# --- the command line ------------------------------------------------------

def test_list_names_scripts_backends_models_and_adapters():
    r = run_evalhost("list", cwd="/")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for script in ("two_stage", "single_stage", "cross_category", "rejudge", "compare", "judge_repeat", "merge"):
        assert re.search(rf"^  {script} +\S", out, re.M), (script, out)
    # the first comment line of each script
    first = (SRC / "scripts" / "two_stage.lua").read_text(encoding="utf-8").splitlines()[0].lstrip("- ")
    assert first in out
    assert re.search(r"^  example\.yaml +The default job", out, re.M), out
    for backend in ("builtin", "torch", "http", "native"):
        assert re.search(rf"^  {backend} ", out, re.M), backend
    assert "identity, imageops" in out and "metrics" in out
    for adapter in ("imgedit", "kris", "rise", "gedit"):
        assert re.search(rf"^  {adapter} +\S", out, re.M), adapter


def test_a_script_runs_by_name_from_any_folder(tmp_path):
    out = tmp_path / "out"
    r = run_evalhost("two_stage", EXAMPLE, "--set", f"run.out={out}", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rep, _ = report_of(out)
    assert rep["overall"]["n"] == 25
    assert rep["run"]["script"].endswith("scripts/two_stage.lua")


def test_a_config_given_as_the_script_is_named_as_such():
    r = run_evalhost("config/example.yaml")
    assert r.returncode == 2
    assert "'config/example.yaml' is a config, not a script: name the script first, e.g. " \
           "evalhost two_stage config/example.yaml" in r.stderr, r.stderr
    assert "syntax error" not in r.stderr and "traceback" not in r.stderr


def test_a_config_without_the_yaml_suffix_given_as_the_script_is_named_too(tmp_path):
    cfg = tmp_path / "myconfig"
    cfg.write_text("benchmark:\n  data_path: examples/benchmark.json\nrun: {out: o}\n", encoding="utf-8")
    r = run_evalhost(cfg)
    assert r.returncode == 2
    assert f"{cfg} is a config, not a script: name the script first" in r.stderr, r.stderr
    assert "unexpected symbol" not in r.stderr


def test_an_unknown_script_name_says_where_it_looked():
    r = run_evalhost("two_stag", EXAMPLE)
    assert r.returncode == 2
    assert f"cannot read script 'two_stag': No such file or directory, and {SRC.resolve()}/scripts has no " \
           "two_stag.lua (evalhost list shows the scripts)" in r.stderr, r.stderr


# --- the end of a run --------------------------------------------------------

def table_rows(stderr):
    lines = stderr.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("类别 / category") and "95% CI" in l)
    return lines[start], lines[start + 1:start + 7]


def test_the_end_of_a_run_prints_the_per_category_table(tmp_path):
    out = tmp_path / "out"
    r = run_evalhost("two_stage", EXAMPLE, "--set", f"run.out={out}")
    assert r.returncode == 0, r.stderr
    rep, path = report_of(out)
    head, rows = table_rows(r.stderr)
    assert head.split() == ["类别", "/", "category", "n", "平均分", "/", "mean", "95%", "CI", "失败", "/", "failed"]
    names = rep["category_order"] + ["总体 / overall (pairs)"]
    stats = [rep["categories"][c] for c in rep["category_order"]] + [rep["overall"]]
    for row, name, s in zip(rows, names, stats):
        ci = "[%.2f, %.2f]" % tuple(s["ci95"])
        assert re.fullmatch(rf"{re.escape(name)} +{s['n']} +{s['mean']:.3f} +{re.escape(ci)} +{s['failed']}", row), row
    assert "0 对失败; 模型交换 9 次" in r.stderr
    for ext in ("json", "md", "html"):
        assert f"report: {path.with_suffix('.' + ext)}" in r.stderr


def test_quiet_still_prints_the_report_paths(tmp_path):
    out = tmp_path / "out"
    r = run_evalhost("two_stage", EXAMPLE, "--set", f"run.out={out}", "--quiet")
    assert r.returncode == 0, r.stderr
    _, path = report_of(out)
    reports = [l for l in r.stderr.splitlines() if l.startswith("report: ")]
    assert [f"report: {path.with_suffix('.' + e)}" for e in ("json", "md", "html")] == reports[:3], r.stderr
    assert "95% CI" not in r.stderr and "[swap]" not in r.stderr


def test_reuse_edits_from_says_how_many_it_reused(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_evalhost("two_stage", EXAMPLE, "--set", f"run.out={a}", "--quiet").returncode == 0
    r = run_evalhost("two_stage", EXAMPLE, "--set", f"run.out={b}", "--set", f"run.reuse_edits_from={a}")
    assert r.returncode == 0, r.stderr
    assert f"run.reuse_edits_from: 25 edit(s) reused from {a}, 0 made here" in r.stderr, r.stderr


def test_compare_prints_p_as_the_markdown_does(tmp_path):
    """identity edits keep every image (the metrics judge gives each pair its
    top score), imageops changes every one: B - A < 0 on all 25 pairs, so the
    sign test's p is 2/2^25 = 6.0e-08, which "%.4f" would print as 0.0000."""
    a, b, cmp = tmp_path / "a", tmp_path / "b", tmp_path / "cmp"
    assert run_evalhost("two_stage", EXAMPLE, "--set", f"run.out={a}", "--set", "editor.name=identity",
                        "--quiet").returncode == 0
    assert run_evalhost("two_stage", EXAMPLE, "--set", f"run.out={b}", "--quiet").returncode == 0
    r = run_evalhost("compare", EXAMPLE, "--set", f"compare.runs=[{a},{b}]", "--set", f"run.out={cmp}")
    assert r.returncode == 0, r.stderr
    assert "sign p 6.0e-08" in r.stderr, r.stderr
    md = next((cmp / "results").glob("comparison_*.md")).read_text(encoding="utf-8")
    assert "6.0e-08" in md


@pytest.mark.parametrize("language", ["en", "zh", "both"])
def test_ui_language_picks_the_labels(tmp_path, language):
    out = tmp_path / "out"
    r = run_evalhost("two_stage", EXAMPLE, "--set", f"run.out={out}", "--set", f"ui.language={language}")
    assert r.returncode == 0, r.stderr
    # the category names are the dataset's (Chinese); everything else follows ui.language
    text = r.stderr
    for c in ("物理", "环境", "社会", "因果", "指代"):
        text = text.replace(c, "")
    english = ("5 categories, 25 pairs", "] edit:", "] score:", "] mean: ", "evaluation finished", "failed")
    chinese = ("5 个类别, 25 对", "] 编辑图像", "] 评分", "] 平均分", "评估完成", "失败")
    if language == "en":
        assert not CJK.search(text), [l for l in text.splitlines() if CJK.search(l)][:5]
        assert all(e in text for e in english)
    elif language == "zh":
        assert all(z in text for z in chinese)
        assert not any(e in text for e in english), text[-2000:]
    else:
        for both in ("5 个类别, 25 对 / 5 categories, 25 pairs", "] 编辑图像 / edit:", "] 评分 / score:",
                     "] 平均分 / mean: ", "评估完成 / evaluation finished", "失败 / failed"):
            assert both in text, both


# --- errors that point -----------------------------------------------------------

def test_a_dataset_syntax_error_names_line_and_column(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"物理": {"data_pairs": [\n  {"id": "a", "edit_instruction": "x"},\n  {"id": "b",, }\n]}}\n',
                   encoding="utf-8")
    r = run_evalhost("two_stage", EXAMPLE, "--set", f"benchmark.data_path={bad}", "--set", "benchmark.categories=[物理]",
                     "--set", f"run.out={tmp_path / 'out'}")
    assert r.returncode == 1
    assert f"{bad}:3:14: expected a string key" in r.stderr, r.stderr


def test_a_missing_relative_data_path_names_every_absolute_path_tried(tmp_path):
    cfg_dir = tmp_path / "cfg"
    cfg_dir.mkdir()
    cfg = cfg_dir / "c.yaml"
    cfg.write_text("benchmark: {data_path: data/bench.json}\neditor: {name: imageops}\njudge: {name: metrics}\n",
                   encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    r = run_evalhost("two_stage", cfg, "--set", f"run.out={tmp_path / 'out'}", cwd=work)
    assert r.returncode == 1
    assert (f"config: benchmark.data_path: data/bench.json does not exist; tried {work}/data/bench.json "
            f"(from the current folder {work}), {cfg_dir}/data/bench.json (from the config's folder {cfg_dir}), "
            f"{SRC.resolve()}/data/bench.json (from evalhost's folder {SRC.resolve()})") in r.stderr, r.stderr
    assert "[swap]" not in r.stderr
    # the same path beside the config is found from anywhere
    (cfg_dir / "data").mkdir()
    (cfg_dir / "data" / "bench.json").write_bytes((SRC / "examples" / "benchmark.json").read_bytes())
    r = run_evalhost("two_stage", cfg, "--set", f"run.out={tmp_path / 'out'}", "--quiet", cwd=work)
    assert r.returncode == 0, r.stderr
