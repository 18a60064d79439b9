"""Hidden cases of the kinds issues 24 and 25 name, tried as a new user
(lmms-eval / VLMEvalKit habits) would, each a defect found and fixed:

* --set: a flow mapping ({a: b}) is a mapping whose keys are checked; an
  empty part in the key (run..out, run.) or a key below a list is refused
  naming the assignment; a value that is no YAML names the assignment, not
  "--set value:2:1";
* nearest-key hints: camelCase and kebab-case spellings find the key, a
  swap of two letters counts one slip, an unrelated key is not offered
  (editor.max_tokens is no misspelt backend); a key only the other role reads
  says so; a misspelt key of another backend is named with its backend;
* a tab indenting YAML says so; an empty benchmark.categories list is refused
  before anything runs; dataset.language takes en, cn or all;
* the dataset field defaults the README documents are the ones the reader
  uses (original_image_b64, edit_instruction, original_description);
* a dataset's syntax error after a UTF-8 BOM and multi-byte text: the
  column counts characters and not the BOM (jscan.c); an adapter's JSON file
  (ImgEdit, RISEBench) errs as file:line:col too, where it said "at offset N",
  and a BOM there is read;
* GEdit-Bench's tables with every pair failed: each language's table counts
  its own unparsed pairs (not the run's), a task type without a scored pair
  is a row saying so; a language the file lacks names the ones it has.
"""
import json
import os
import re
import sys

import pytest

from conftest import SRC, nothing_ran, run_evalhost

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(str(SRC), "tools"))
EXAMPLE = str(SRC / "config" / "example.yaml")
PROT = SRC / "tests" / "data" / "protocols"


def set_run(tmp_path, *sets):
    out = tmp_path / "out"
    args = ["two_stage", EXAMPLE, "--set", f"run.out={out}"]
    for s in sets:
        args += [s] if s.startswith("--") else ["--set", s]
    return run_evalhost(*args), out


def set_refused(tmp_path, *sets, says):
    """Runs with the assignments, which must be refused (exit 2) before
    anything runs, saying `says`; returns the finished process."""
    r, out = set_run(tmp_path, *sets)
    assert r.returncode == 2, r.stderr
    assert says in r.stderr, r.stderr
    nothing_ran(r, out)
    return r


# --- --set -------------------------------------------------------------------

# Each refused (exit 2) before anything runs, saying "--set <assignment>: <why>".
@pytest.mark.parametrize("assignment,message", [
    # a flow mapping ({a: b}) is a mapping whose keys are checked
    ("judge={backend: builtin, name: metrics, nmae: x}",
     "unknown key 'judge.nmae' (did you mean 'judge.name'?)"),
    ("report.bootstrap={resamples: 10, sede: 1}",
     "unknown key 'report.bootstrap.sede' (did you mean 'report.bootstrap.seed'?)"),
    # a key that cannot be set: an empty part, a key below a list or a value; a value that is no YAML
    ("run..out=x", "empty part in the key 'run..out'"),
    ("run.=x", "empty part in the key 'run.'"),
    (".run=x", "empty part in the key '.run'"),
    ("benchmark.categories.x=1", "'categories' is not a section: benchmark.categories is a list; set the whole "
     "list, e.g. --set 'benchmark.categories=[...]'"),
    ("benchmark.data_path.x=1", "'data_path' is not a section: benchmark.data_path holds a value"),
    ("benchmark.categories=[物理", "the value is not valid YAML: did not find expected ',' or ']'"),
    # nearest-key hints name the key meant, never an unrelated one
    ("judge.batchSize=2", "unknown key 'judge.batchSize' (did you mean 'judge.batch_size'?)"),
    ("judge.batch-size=2", "unknown key 'judge.batch-size' (did you mean 'judge.batch_size'?)"),
    ("report.Aggregate=pairs", "unknown key 'report.Aggregate' (did you mean 'report.aggregate'?)"),
    ("benchmark.datapath=x", "unknown key 'benchmark.datapath' (did you mean 'benchmark.data_path'?)"),
    ("prompts.langauge=en", "unknown key 'prompts.langauge' (did you mean 'prompts.language'?)"),
    # a key only the other role reads
    ("editor.max_tokens=3", "unknown key 'editor.max_tokens' (a judge key of the http backend: the editor does "
     "not read it)"),
    ("judge.cfg_one_call=true", "unknown key 'judge.cfg_one_call' (an editor key of the native backend: the judge "
     "does not read it)"),
    # an enum's value, misspelt
    ("report.aggregate=category", 'report.aggregate must be one of pairs, categories, got "category" (did you mean '
     "'categories'?)"),
    ("dataset.adapter=GEdit", 'dataset.adapter must be one of imgedit, kris, rise, gedit, got "GEdit" (did you mean '
     "'gedit'?)"),
    # another backend's key, misspelt
    ("judge.params.retires=1", "unknown key 'judge.params.retires' (did you mean 'judge.params.retries'? a key of "
     "the http backend, not of this one)"),
    # a score range the backends would refuse or ignore (records.score_range fell back on 0..10 for
    # [10, 0] and the builtin judge ran: the report's range silently not the one written)
    ("judge.score_range=[10, 0]", "judge.score_range must be increasing ([lo, hi] with lo < hi), got [10, 0]"),
    ("judge.score_range=[0]", "judge.score_range must be a list of 2, got 1 item(s)"),
    ("judge.score_range=[0, 10, 20]", "judge.score_range must be a list of 2, got 3 item(s)"),
    ("judge.score_range=[0, 101]", "judge.score_range[2] must be at most 100, got 101"),
    ("judge.score_range=[0.5, 5]", "judge.score_range[1] must be an integer, got a number (0.5)"),
    # YAML typing surprises say how to write what was meant
    ("run.out=2024", 'run.out must be a string, got an integer (2024): quote it to mean the text, "2024"'),
    ("judge.name=true", 'judge.name must be a string, got a boolean (true): quote it to mean the text, "true"'),
    ("report.html=yes", 'report.html must be true or false, got a string ("yes") (YAML 1.2 reads yes/no/on/off as '
     'text: write true or false)'),
    ("limits.max_pairs=1e6", "limits.max_pairs must be an integer, got a number (1000000.0) (YAML reads it as a "
     "float: write 1000000)"),
])
def test_a_refused_set_names_the_assignment_and_why(tmp_path, assignment, message):
    r = set_refused(tmp_path, assignment, says=f"--set {assignment}: {message}")
    assert "--set value:" not in r.stderr   # a YAML error once named the value's position, not the assignment


def test_set_a_flow_mapping_that_is_right_runs(tmp_path):
    r, out = set_run(tmp_path, "report.bootstrap={resamples: 10, seed: 3}", "benchmark.categories=[物理]",
                     "--quiet")
    assert r.returncode == 0, r.stderr
    rep = json.loads((out / "results" / "latest.json").read_text(encoding="utf-8"))
    assert rep["overall"]["n"] == 5


# --- nearest-key hints (the table above has the --set ones) ----------------------

def test_an_unrelated_key_gets_the_known_list_not_a_wrong_guess(tmp_path):
    cfg = tmp_path / "c.yaml"
    # a docker-compose habit: an x- key holding anchors; max_tokens under an editor
    cfg.write_text("x-base: &b {backend: builtin, name: imageops}\neditor: *b\n"
                   "judge: {backend: builtin, name: metrics}\nbenchmark: {data_path: %s}\n"
                   % json.dumps(str(SRC / "examples" / "benchmark.json")), encoding="utf-8")
    r = run_evalhost("two_stage", cfg, "--set", f"run.out={tmp_path / 'out'}")
    assert r.returncode == 1, r.stderr
    assert f"{cfg}:1:1: unknown top-level key 'x-base' (known: benchmark, compare, dataset," in r.stderr, r.stderr
    assert "did you mean" not in r.stderr
    nothing_ran(r, tmp_path / "out")


# --- YAML and schema corners --------------------------------------------------------

def test_a_tab_indenting_yaml_says_so(tmp_path):
    cfg = tmp_path / "tab.yaml"
    cfg.write_text("prompts:\n\tlanguage: en\n", encoding="utf-8")
    r = run_evalhost("two_stage", cfg)
    assert r.returncode == 1
    assert f"{cfg}:2:1: found character that cannot start any token" in r.stderr, r.stderr
    assert "(a tab: YAML indents with spaces only)" in r.stderr


def test_an_empty_category_list_is_refused_before_anything_runs(tmp_path):
    set_refused(tmp_path, "benchmark.categories=[]",
                says="--set benchmark.categories=[]: benchmark.categories is an empty list: name at least one "
                     "category, or leave the key out to run them all")


def test_gedit_language_is_one_of_its_languages(tmp_path):
    set_refused(tmp_path, "dataset.adapter=gedit", "dataset.language=zh",
                says='--set dataset.language=zh: dataset.language must be one of en, cn, all, got "zh"')


def test_the_documented_dataset_field_defaults_are_the_readers(tmp_path):
    """README's table said image/instruction/description; the reader's
    defaults are original_image_b64/edit_instruction/original_description:
    a file written from the table failed every pair."""
    r = run_evalhost(str(SRC / "tools" / "config_doc.lua"))
    assert r.returncode == 0, r.stderr
    doc = r.stdout
    for key, default in (("image", "original_image_b64"), ("instruction", "edit_instruction"),
                         ("description", "original_description")):
        assert f"| `dataset.{key}` | string | `{default}` |" in doc, key
    src = json.loads((SRC / "examples" / "benchmark.json").read_text(encoding="utf-8"))
    first = next(iter(src.values()))["data_pairs"][0]
    # a file with the documented defaults' names runs, pair for pair
    doc = {"c": [{"id": "a", "original_image_b64": first["original_image_b64"],
                  "edit_instruction": first["edit_instruction"], "original_description": "d"}]}
    data = tmp_path / "b.json"
    data.write_text(json.dumps(doc), encoding="utf-8")
    out = tmp_path / "out"
    r = run_evalhost("two_stage", EXAMPLE, "--set", f"run.out={out}", "--set", f"benchmark.data_path={data}",
                     "--set", "benchmark.categories=[c]", "--quiet")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in (out / "results" / "samples.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 1 and rows[0]["error"] is None and rows[0]["instruction"] == first["edit_instruction"]


# --- file:line:col of JSON datasets ------------------------------------------------

def dataset_error(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    out = tmp_path / "out"
    r = run_evalhost("two_stage", EXAMPLE, "--set", f"run.out={out}", "--set", f"benchmark.data_path={path}",
                     "--set", "benchmark.categories=[c]")
    assert r.returncode == 1, r.stderr
    return r.stderr


def test_a_bom_is_no_column_and_columns_count_characters(tmp_path):
    bom = b"\xef\xbb\xbf"
    # 1-based characters: '}' after the trailing comma is the 64th character, the BOM none
    text = '[{"id": "a", "category": "c", "instruction": "i", "image": "x",}]'
    assert text.index(",}") + 2 == 64
    assert f"{tmp_path / 'bom.json'}:1:64: expected a string key" in dataset_error(tmp_path, "bom.json",
                                                                                   bom + text.encode())
    # multi-byte text before the mistake on the same line: 中文中文 is 4 columns (12 bytes)
    text = '{"c": [{"id": "中文中文", oops}]}'
    assert f"{tmp_path / 'mb.json'}:1:23: expected a string key" in dataset_error(tmp_path, "mb.json",
                                                                                  bom + text.encode())


def run_adapter(tmp_path, adapter, data, official):
    cfg = tmp_path / "a.yaml"
    cfg.write_text("dataset: {path: %s, adapter: %s, official: %s}\neditor: {backend: builtin, name: imageops}\n"
                   "judge: {backend: http, base_url: 'http://127.0.0.1:9', model: x, retries: 0}\n"
                   % (json.dumps(str(data)), adapter, json.dumps(str(official))), encoding="utf-8")
    return run_evalhost("two_stage", cfg, "--set", f"run.out={tmp_path / 'out'}")


def test_an_adapters_json_file_errs_at_file_line_col(tmp_path):
    text = (PROT / "imgedit" / "basic_edit.json").read_text(encoding="utf-8")
    line = text.splitlines()[8]
    assert line.strip() == '"prompt": "add edit number 1",'
    bad = text.replace('"prompt": "add edit number 1",', '"prompt": "add edit 中文",,', 1)
    col = len(bad.splitlines()[8].split(",,")[0]) + 2   # the second comma, in characters
    path = tmp_path / "basic_edit.json"
    path.write_text(bad, encoding="utf-8")
    r = run_adapter(tmp_path, "imgedit", path, PROT / "imgedit" / "prompts.json")
    assert r.returncode == 1
    assert f"imgedit: {path}:9:{col}: not valid JSON" in r.stderr, r.stderr
    assert "offset" not in r.stderr

    rise = (PROT / "rise" / "data" / "data_total.json").read_text(encoding="utf-8")
    lines = rise.splitlines()
    n = next(i for i, x in enumerate(lines) if x.rstrip().endswith('",'))
    lines[n] = lines[n].rstrip() + " }"   # a stray brace after a member's comma
    path = tmp_path / "data_total.json"
    path.write_text("\n".join(lines), encoding="utf-8")
    r = run_adapter(tmp_path, "rise", path, PROT / "rise" / "stand_in_prompts.py")
    assert r.returncode == 1
    assert f"rise: {path}:{n + 1}:{len(lines[n])}: not valid JSON" in r.stderr, r.stderr


def test_an_adapters_json_file_with_a_bom_is_read(tmp_path):
    path = tmp_path / "basic_edit.json"
    path.write_bytes(b"\xef\xbb\xbf" + (PROT / "imgedit" / "basic_edit.json").read_bytes())
    r = run_adapter(tmp_path, "imgedit", path, PROT / "imgedit" / "prompts.json")
    # it opens and runs; the judge on a closed port then fails every pair (transient)
    assert "not valid JSON" not in r.stderr and "not JSON" not in r.stderr, r.stderr
    assert "9 categories, 27 pairs" in r.stderr, r.stderr


# --- GEdit-Bench with every pair failed ------------------------------------------

def test_gedit_every_pair_failed_each_table_counts_its_own(tmp_path):
    sys.path.insert(0, HERE)
    import test_protocols as T
    r, out, reqs = T.run_gedit(tmp_path, str(tmp_path / "none.json"), name="run",
                               policy=lambda text, sizes: "I would rather not give numbers.")
    assert r.returncode == 1
    assert len(reqs) == 88   # still two requests per pair
    rep = T.report(out)
    assert len(rep["failures"]) == 44 and rep["profile"]["unparsed"] == 44
    md = open(os.path.join(out, "results", "latest.md"), encoding="utf-8").read()
    sample = [json.loads(x) for x in open(tmp_path / "gedit" / "gedit.jsonl", encoding="utf-8") if x.strip()]
    for lang in ("en", "cn"):
        n_full = sum(1 for s in sample if s["language"] == lang)
        n_inter = sum(1 for s in sample if s["language"] == lang and s.get("intersection_exist"))
        head = f"### GEdit-Bench {lang}, full set (SC / PQ / O, 0-10)"
        part = md.split(head, 1)[1].split("###", 1)[0]
        assert f"| Average, {n_full} unparsed as the official guess (expected) |" in part, part
        assert "| background_change (no scored pair) | — | — | — |" in part
        assert "| Average of the 0 task types scored | — | — | — |" in part
        part = md.split(f"### GEdit-Bench {lang}, intersection subset", 1)[1].split("###", 1)[0]
        if n_inter:
            assert f"| Average, {n_inter} unparsed as the official guess (expected) |" in part, part
    # the failed pairs are in the per-sample log with their error
    rows = [json.loads(x) for x in open(os.path.join(out, "results", "samples.jsonl"), encoding="utf-8")]
    assert len(rows) == 44 and all(x["score"] is None and "no VIEScore JSON" in x["error"] for x in rows)


def test_gedit_one_language_failed_leaves_the_other_languages_table_alone(tmp_path):
    sys.path.insert(0, HERE)
    import test_protocols as T
    doc = json.loads((PROT / "gedit" / "replies.json").read_text(encoding="utf-8"))
    victim = next(k for k in sorted(doc["replies"]) if "," in k.split(":")[1])   # an SC request
    doc["replies"][victim] = "no numbers"
    path = tmp_path / "replies.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    r, out, _ = T.run_gedit(tmp_path, str(path))
    assert r.returncode == 1
    rep = T.report(out)
    lang = rep["failures"][0]["id"].rsplit("_", 1)[1]
    other = "cn" if lang == "en" else "en"
    md = open(os.path.join(out, "results", "latest.md"), encoding="utf-8").read()
    mine = md.split(f"### GEdit-Bench {lang}, full set", 1)[1].split("###", 1)[0]
    theirs = md.split(f"### GEdit-Bench {other}, full set", 1)[1].split("###", 1)[0]
    assert "| Average, 1 unparsed as the official guess (expected) |" in mine, mine
    assert "unparsed" not in theirs, theirs


def test_gedit_a_language_the_file_lacks_names_the_ones_it_has(tmp_path):
    sys.path.insert(0, HERE)
    import test_protocols as T
    data = T.gedit_dataset(tmp_path)
    rows = [json.loads(x) for x in open(data, encoding="utf-8") if x.strip()]
    only_en = tmp_path / "en.jsonl"
    only_en.write_text("".join(json.dumps(x) + "\n" for x in rows if x["language"] == "en"), encoding="utf-8")
    cfg = tmp_path / "g.yaml"
    cfg.write_text("dataset: {path: %s, adapter: gedit, language: cn}\neditor: {backend: builtin, name: imageops}\n"
                   "judge: {backend: http, base_url: 'http://127.0.0.1:9', model: x}\n" % json.dumps(str(only_en)),
                   encoding="utf-8")
    r = run_evalhost("two_stage", cfg, "--set", f"run.out={tmp_path / 'out'}")
    assert r.returncode == 1
    assert f'gedit: {only_en} has no pairs in language "cn" (its languages: en; dataset.language: all for every ' \
           f'one)' in r.stderr, r.stderr


# --- ImgEdit with odd but valid inputs ------------------------------------------------

def test_imgedit_odd_entries_fail_by_name_and_the_table_says_which_types_are_missing(tmp_path):
    """Entries without a prompt, an image or an edit_type, an edit type the
    rubrics lack and a type with no entries at all: each failure names its
    cause, the table lists the official types it could not score and the
    overall says it is over fewer types."""
    import shutil
    sys.path.insert(0, HERE)
    import test_protocols as T
    from recorded_judge import RecordedJudge
    src = PROT / "imgedit"
    doc = json.loads((src / "basic_edit.json").read_text(encoding="utf-8"))
    keys = sorted(doc, key=int)
    adds = [k for k in keys if doc[k]["edit_type"] == "add"]
    assert len(adds) == 3
    del doc[adds[0]]["prompt"]
    del doc[adds[1]]["id"]
    doc[adds[2]]["edit_type"] = "hybrid"
    nontype = next(k for k in keys if doc[k]["edit_type"] == "remove")
    del doc[nontype]["edit_type"]
    for k in [k for k in keys if doc[k].get("edit_type") == "compose"]:
        del doc[k]
    shutil.copytree(src / "singleturn", tmp_path / "singleturn")
    data = tmp_path / "basic_edit.json"
    data.write_text(json.dumps(doc), encoding="utf-8")
    out = tmp_path / "out"
    with RecordedJudge(str(tmp_path / "none.json"), log=str(tmp_path / "log.jsonl"),
                       policy=lambda t, s: "Prompt Compliance: 4\nVisual Naturalness: 3\nPhysical Integrity: 5") as j:
        cfg = tmp_path / "c.yaml"
        cfg.write_text("dataset: {path: %s, adapter: imgedit, official: %s}\neditor: {backend: builtin, name: imageops}\n"
                       "judge: %s\n" % (json.dumps(str(data)), json.dumps(str(src / "prompts.json")),
                                        T.http_judge(j.url, "gpt-4o")), encoding="utf-8")
        r = T.run("two_stage.lua", str(cfg), "run.out=" + str(out))
    assert r.returncode == 1, r.stderr
    rep = T.report(str(out))
    why = {f["id"]: f["error"] for f in rep["failures"]}
    assert "no instruction" in why[adds[0]] and "no image" in why[adds[1]]
    assert f'has no rubric for edit type "hybrid"' in why[adds[2]]
    assert f'imgedit: {data}: entry {nontype} has no "edit_type"' in why[nontype]
    assert len(why) == 4
    prof = rep["profile"]
    assert prof["missing"] == ["add", "compose"] and "add" not in prof["types"]
    assert prof["overall"] == pytest.approx(sum(prof["types"].values()) / 7)
    md = (out / "results" / "latest.md").read_text(encoding="utf-8")
    assert "| add (no scored item) | — | 0 |" in md and "| compose (no scored item) | — | 0 |" in md
    assert "| Overall (mean of the 7 types scored, not of all 9) | %.2f |  |" % prof["overall"] in md, md


@pytest.mark.parametrize("adapter,name,text,official", [
    ("imgedit", "basic_edit.json", "{}", PROT / "imgedit" / "prompts.json"),
    ("rise", "data_total.json", "[]", PROT / "rise" / "stand_in_prompts.py"),
])
def test_an_adapter_file_with_no_items_is_an_error_not_an_empty_run(tmp_path, adapter, name, text, official):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    r = run_adapter(tmp_path, adapter, path, official)
    assert r.returncode == 1, r.stderr
    assert f"[error] {adapter}: {path} holds no items" in r.stderr, r.stderr
    assert not (tmp_path / "out" / "results").exists()


# --- --quiet ------------------------------------------------------------------------

def test_compare_quiet_still_prints_the_comparison_paths(tmp_path):
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        r = run_evalhost("two_stage", EXAMPLE, "--set", f"run.out={out}", "--set", "benchmark.categories=[物理]",
                         "--quiet")
        assert r.returncode == 0, r.stderr
        runs.append(str(out))
    out = tmp_path / "cmp"
    r = run_evalhost("compare", EXAMPLE, "--set", f"run.out={out}", "--set", "compare.runs=[%s, %s]" % tuple(runs),
                     "--quiet")
    assert r.returncode == 0, r.stderr
    printed = [line.split(": ", 1)[1] for line in r.stderr.splitlines() if line.startswith("comparison: ")]
    assert sorted(os.path.splitext(p)[1] for p in printed) == [".html", ".json", ".md"], r.stderr
    assert all(os.path.isfile(p) for p in printed)
    assert "runs:" not in r.stderr and "compare: B - A" not in r.stderr   # the rest stays quiet


def test_kris_a_category_with_no_items_is_said_and_the_rest_runs(tmp_path):
    import shutil
    root = tmp_path / "KRIS_Bench"
    shutil.copytree(PROT / "kris" / "KRIS_Bench", root)
    (root / "count_change" / "annotation.json").write_text("{}", encoding="utf-8")
    cfg = tmp_path / "k.yaml"
    cfg.write_text("dataset: {path: %s, adapter: kris, official: %s}\neditor: {backend: builtin, name: imageops}\n"
                   "judge: {backend: http, base_url: 'http://127.0.0.1:9', model: x, retries: 0}\n"
                   % (json.dumps(str(root)), json.dumps(str(PROT / "kris"))), encoding="utf-8")
    r = run_evalhost("two_stage", cfg, "--set", f"run.out={tmp_path / 'out'}")
    assert f"[warn] kris: {root / 'count_change' / 'annotation.json'} holds no items: category count_change is " \
           "not run" in r.stderr, r.stderr
    assert "6 categories, 12 pairs" in r.stderr, r.stderr


def test_yaml_typing_surprise_in_a_file_names_its_place(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("benchmark: {data_path: %s}\nrun:\n  out: 2024\n" % json.dumps(str(SRC / "examples" /
                                                                                   "benchmark.json")),
                   encoding="utf-8")
    r = run_evalhost("two_stage", cfg, cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert f'{cfg}:3:3: run.out must be a string, got an integer (2024): quote it to mean the text, "2024"' \
           in r.stderr, r.stderr
    assert not (tmp_path / "2024").exists()


def test_config_columns_count_characters_too_and_a_bom_is_none(tmp_path):
    """One convention everywhere: a column is a character (a UTF-8 code
    point), a leading BOM none -- in configs (libyaml) as in datasets."""
    cfg = tmp_path / "c.yaml"
    text = "prompts: {templates: {物理物理: {sytem: x}}}\n"
    cfg.write_bytes(b"\xef\xbb\xbf" + text.encode())
    r = run_evalhost("two_stage", cfg)
    assert r.returncode == 1
    col = text.index("sytem") + 1   # characters, not bytes (the bytes would put it at 38)
    assert col == 30
    assert f"{cfg}:1:{col}: unknown key 'prompts.templates.物理物理.sytem' (did you mean " \
           "'prompts.templates.物理物理.system'?)" in r.stderr, r.stderr


def test_list_summaries_end_a_sentence_not_a_line(tmp_path):
    """The first comment line alone stopped mid-sentence ('... per category
    and'); a summary is the first sentence of the first comment paragraph,
    cut at a word with '...' when long."""
    r = run_evalhost("list", cwd="/")
    assert r.returncode == 0, r.stderr
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^  (\S+) +(.+)$", r.stdout, re.M)}
    assert rows["cross_category"] == ("Edit every category first, then swap once and score everything: one model "
                                      "exchange for the whole benchmark.")
    assert rows["rejudge"] == ("Judge-only re-run: scores an earlier run's edited images with the current judge "
                               "and prompts.")
    assert rows["compare"].startswith("Paired comparison of two runs on the pairs both scored: per category and "
                                      "overall") and rows["compare"].endswith(" ...")
    for name in ("compare", "two_stage", "judge_repeat", "merge", "example.yaml"):
        assert rows[name].endswith((".", " ...")), (name, rows[name])


def test_gedit_records_without_a_language_get_a_table_of_their_own_named_so(tmp_path):
    sys.path.insert(0, HERE)
    import test_protocols as T
    data = T.gedit_dataset(tmp_path)
    rows = [json.loads(x) for x in open(data, encoding="utf-8") if x.strip()]
    for x in rows[:2]:
        del x["language"]
    with open(data, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(x) + "\n" for x in rows)
    r, out, _ = T.run_gedit(tmp_path, str(PROT / "gedit" / "replies.json"))
    assert r.returncode == 0, r.stderr
    rep = T.report(out)
    assert "(no language)" in rep["profile"]["languages"] and "nil" not in rep["profile"]["languages"]
    md = open(os.path.join(out, "results", "latest.md"), encoding="utf-8").read()
    assert "### GEdit-Bench (no language), full set (SC / PQ / O, 0-10)" in md


def test_a_section_under_both_its_names_is_refused(tmp_path):
    """editor was read and diffusion_model silently ignored (or judge and
    reward_model): an override written under the other name did nothing."""
    set_refused(tmp_path, "diffusion_model={backend: builtin, name: identity}",
                says="--set diffusion_model={backend: builtin, name: identity}: editor and diffusion_model are one "
                     "section (diffusion_model is the seed's name): keep one, editor is read and diffusion_model "
                     "ignored")
    out = tmp_path / "out"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("editor: {backend: builtin, name: imageops}\nreward_model: {backend: builtin, name: metrics}\n"
                   "judge: {backend: builtin, name: metrics}\n", encoding="utf-8")
    r = run_evalhost("two_stage", cfg, "--set", f"run.out={out}")
    assert r.returncode == 1, r.stderr
    assert f"{cfg}:2:1: judge and reward_model are one section (reward_model is the seed's name)" in r.stderr
    nothing_ran(r, out)


def test_a_null_list_item_is_named_null_not_userdata(tmp_path):
    r = set_refused(tmp_path, "compare.runs=[a, null]",
                    says="--set compare.runs=[a, null]: compare.runs[2] must be a string, got null (an empty item, "
                         "~ or null)")
    assert "userdata" not in r.stderr


def test_a_builtin_model_without_a_name_names_the_key_and_the_models(tmp_path):
    """backend: builtin with the name misspelt (nmae) or left out failed at
    model open with "unknown builtin model ''"."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("editor:\n  backend: builtin\n  nmae: imageops\njudge: {backend: builtin, name: metrics}\n",
                   encoding="utf-8")
    out = tmp_path / "out"
    r = run_evalhost("two_stage", cfg, "--set", f"run.out={out}")
    assert r.returncode == 1, r.stderr
    assert f"{cfg}:2:3: editor.name is not set: the builtin backend's editor models are identity, imageops" \
        in r.stderr, r.stderr
    assert f"{cfg}:3:3: unknown key 'editor.nmae' (did you mean 'editor.name'?)" in r.stderr
    assert "unknown builtin model ''" not in r.stderr
    nothing_ran(r, out)


@pytest.mark.parametrize("key", ["instruction=prompt", "image=img", "format=jsonl", "id=key"])
def test_a_field_name_of_the_own_layout_under_an_adapter_is_refused(tmp_path, key):
    """dataset.instruction (and the other field names) are read by
    evalhost's own reader; with an adapter they were silently ignored."""
    name = key.split("=")[0]
    set_refused(tmp_path, "dataset.adapter=imgedit", f"dataset.{key}",
                says=f"--set dataset.{key}: dataset.{name} is read by evalhost's own dataset layout only: the "
                     f"imgedit adapter reads its benchmark's own fields (leave dataset.{name} out)")


def test_a_folder_given_as_the_config_says_so(tmp_path):
    r = run_evalhost("two_stage", tmp_path)
    assert r.returncode == 1
    assert f"{tmp_path}: cannot read config: Is a directory" in r.stderr, r.stderr


def test_bad_utf8_in_a_config_names_its_line_and_column(tmp_path):
    """libyaml reports a reader error by byte offset only: it was printed
    as 1:1 whatever the line."""
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(b"benchmark: {data_path: x}\nrun:\n  out: \"\xe4\xb8\xad\xc3\x28\"\n")
    r = run_evalhost("two_stage", cfg)
    assert r.returncode == 1
    # line 3: two spaces, `out: "` (8 characters), 中 the 9th, the bad lead byte the 10th, its bad trailer the 11th
    assert f"{cfg}:3:11: invalid trailing UTF-8 octet" in r.stderr, r.stderr
