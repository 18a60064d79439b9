"""The config schema (issue 24): every key of every section is checked
before the script runs. A typo at any depth, in the file or through --set,
stops the run with file:line:col (or the --set assignment), the key's full
path and the nearest known key; a wrong type names the expected one; nothing
loads and no output folder is made. README's configuration reference is the
schema's rendering."""
import json
import pathlib
import re

import pytest

from conftest import SRC, nothing_ran, run_evalhost

SET_TYPOS = [
    ("report.agregate=categories", "report.agregate", "report.aggregate"),
    ("judge.batchsize=4", "judge.batchsize", "judge.batch_size"),
    ("limits.max_pair=3", "limits.max_pair", "limits.max_pairs"),
    ("run.otu=x", "run.otu", "run.out"),
    ("image.max_pixel=10", "image.max_pixel", "image.max_pixels"),
    ("editor.parms.delay_ms=1", "editor.parms", "editor.params"),
    ("editor.nmae=imageops", "editor.nmae", "editor.name"),
    ("judge.params.delay_msx=1", "judge.params.delay_msx", "judge.params.delay_ms"),
    ("report.bootstrap.resample=10", "report.bootstrap.resample", "report.bootstrap.resamples"),
    ("limits.max_string.idd=3", "limits.max_string.idd", "limits.max_string.id"),
    ("prompts.templates.物理.sytem=x", "prompts.templates.物理.sytem", "prompts.templates.物理.system"),
    ("jduge.name=x", "jduge", "judge"),
]


@pytest.mark.parametrize("assignment,path,near", SET_TYPOS)
def test_set_typo_names_the_assignment_the_path_and_the_nearest_key(tmp_path, assignment, path, near):
    out = tmp_path / "out"
    r = run_evalhost("two_stage", "config/example.yaml", "--set", f"run.out={out}", "--set", assignment)
    assert r.returncode == 2, r.stderr
    kind = "unknown top-level key" if "." not in path else "unknown key"
    assert f"--set {assignment}: {kind} '{path}' (did you mean '{near}'?)" in r.stderr, r.stderr
    nothing_ran(r, out)


BAD_FILE = """\
benchmark:
  data_path: examples/benchmark.json
editor: {backend: builtin, name: imageops, parms: {delay_ms: 1}}
judge:
  nmae: metrics
  params: {delay_msx: 1}
report:
  agregate: categories
  bootstrap: {resample: 10}
limits:
  max_string: {idd: 3}
run: {out: OUT}
"""


def test_typos_at_depth_2_and_3_in_a_file_name_line_and_column(tmp_path):
    out = tmp_path / "out"
    cfg = tmp_path / "typos.yaml"
    cfg.write_text(BAD_FILE.replace("OUT", str(out)), encoding="utf-8")
    r = run_evalhost("two_stage", cfg)
    assert r.returncode == 1, r.stderr
    want = [
        f"{cfg}:3:44: unknown key 'editor.parms' (did you mean 'editor.params'?)",
        f"{cfg}:5:3: unknown key 'judge.nmae' (did you mean 'judge.name'?)",
        f"{cfg}:6:12: unknown key 'judge.params.delay_msx' (did you mean 'judge.params.delay_ms'?)",
        f"{cfg}:8:3: unknown key 'report.agregate' (did you mean 'report.aggregate'?)",
        f"{cfg}:9:15: unknown key 'report.bootstrap.resample' (did you mean 'report.bootstrap.resamples'?)",
        f"{cfg}:11:16: unknown key 'limits.max_string.idd' (did you mean 'limits.max_string.id'?)",
    ]
    # every mistake, one a line, in file order
    assert r.stderr.splitlines() == want, r.stderr
    nothing_ran(r, out)


def test_a_seed_style_params_section_is_checked_too(tmp_path):
    cfg = tmp_path / "seed.yaml"
    cfg.write_text("benchmark: {data_path: examples/benchmark.json}\n"
                   "diffusion_model:\n  class_path: x.Y\n  params: {model_name: imageops, devcie: cpu}\n"
                   "reward_model: {params: {model_name: metrics}}\n", encoding="utf-8")
    r = run_evalhost("two_stage", cfg)
    assert r.returncode == 1
    assert f"{cfg}:4:34: unknown key 'diffusion_model.params.devcie' (did you mean " \
           "'diffusion_model.params.device'?)" in r.stderr, r.stderr


@pytest.mark.parametrize("assignment,message", [
    ("judge.batch_size=four", 'judge.batch_size must be an integer, got a string ("four")'),
    ("judge.batch_size=1.5", "judge.batch_size must be an integer, got a number (1.5)"),
    ("run.out=[a,b]", "run.out must be a string, got a list"),
    ("report.html=yes", 'report.html must be true or false, got a string ("yes")'),
    ("report.aggregate=median", 'report.aggregate must be one of pairs, categories, got "median"'),
    ("run.keep_both=maybe", 'run.keep_both must be one of auto, true, false, got "maybe"'),
    ("editor.batch_size=0", "editor.batch_size must be at least 1, got 0"),
    ("limits.max_json_depth=100001", "limits.max_json_depth must be at most 100000, got 100001"),
    ("benchmark.categories=[物理,[x]]", "benchmark.categories[2] must be a string or a number, got a list"),
    ("ui.language=fr", 'ui.language must be one of en, zh, both, got "fr"'),
    ("run=3", "run must be a mapping, got an integer (3)"),
])
def test_a_wrong_type_or_value_names_the_expected_one(tmp_path, assignment, message):
    out = tmp_path / "out"
    r = run_evalhost("two_stage", "config/example.yaml", "--set", f"run.out={out}", "--set", assignment)
    assert r.returncode == 2, r.stderr
    assert f"--set {assignment}: {message}" in r.stderr, r.stderr
    nothing_ran(r, out)


def test_a_wrong_type_in_the_file_names_its_place(tmp_path):
    cfg = tmp_path / "t.yaml"
    cfg.write_text("benchmark: {data_path: examples/benchmark.json}\njudge:\n  name: metrics\n  batch_size: four\n",
                   encoding="utf-8")
    r = run_evalhost("two_stage", cfg)
    assert r.returncode == 1
    assert f'{cfg}:4:3: judge.batch_size must be an integer, got a string ("four")' in r.stderr, r.stderr


def test_a_key_of_another_backend_is_refused_by_name(tmp_path):
    r = run_evalhost("two_stage", "config/example.yaml", "--set", "judge.timeout_s=3")
    assert r.returncode == 2
    assert "--set judge.timeout_s=3: unknown key 'judge.timeout_s' (a key of the http backend, not of this one)" \
        in r.stderr, r.stderr
    # an editor-only key in the judge's section
    cfg = tmp_path / "n.yaml"
    cfg.write_text("judge: {backend: native, path: /nonexistent, num_inference_steps: 4}\n", encoding="utf-8")
    r = run_evalhost("two_stage", cfg)
    assert r.returncode == 1
    assert "unknown key 'judge.num_inference_steps'" in r.stderr, r.stderr


def test_script_section_is_free_form_and_known_keys_pass(tmp_path):
    script = tmp_path / "s.lua"
    script.write_text("print(evalhost.config.script.anything.deep, evalhost.config.judge.batch_size)\n")
    r = run_evalhost(script, "config/example.yaml", "--set", "script.anything.deep=1", "--set", "judge.batch_size=4",
                     "--set", "report.bootstrap.resamples=10", "--set", "ui.language=en")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "4"]


# config/prompts.yaml is a prompts file (prompts.file), not a config
@pytest.mark.parametrize("cfg", sorted(str(p.relative_to(SRC)) for p in (SRC / "config").glob("*.yaml")
                                       if p.name != "prompts.yaml"))
def test_shipped_configs_pass_the_schema(tmp_path, cfg):
    script = tmp_path / "noop.lua"
    script.write_text("return 0\n")
    r = run_evalhost(script, cfg)
    assert r.returncode == 0, r.stderr


def test_readme_configuration_section_is_the_schema():
    r = run_evalhost("tools/config_doc.lua")
    assert r.returncode == 0, r.stderr
    readme = (SRC / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- config-schema:begin -->\n(.*?)\n<!-- config-schema:end -->", readme, re.S)
    assert m, "README.md lost its config-schema markers"
    assert m.group(1).strip() == r.stdout.strip(), "README's key table differs from lua/evalhost/schema.lua: " \
        "run `make config-doc`"
    # and it names every section the checker knows, with a row per key
    for key in ("report.aggregate", "judge.batch_size", "limits.max_string.id", "ui.language", "report.bootstrap.seed"):
        assert f"`{key}`" in m.group(1), key


def test_list_items_and_adapter_options_are_checked(tmp_path):
    cfg = tmp_path / "l.yaml"
    cfg.write_text("benchmark: {data_path: examples/benchmark.json}\n"
                   "dataset: {images: /x}\n"
                   "editor:\n  backend: native\n  path: /nowhere\n  lora: [{path: a.safetensors, scal: 1}, {path: b}]\n"
                   "judge: {name: metrics}\n", encoding="utf-8")
    r = run_evalhost("two_stage", cfg)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f"{cfg}:2:11: dataset.images is an option of the imgedit, rise adapters, and dataset.adapter is not set",
        f"{cfg}:6:32: unknown key 'editor.lora[1].scal' (did you mean 'editor.lora[1].scale'?)",
    ], r.stderr
    r = run_evalhost("two_stage", "config/example.yaml", "--set", "dataset.adapter=gedit", "--set", "dataset.langauge=en")
    assert r.returncode == 2
    assert "--set dataset.langauge=en: unknown key 'dataset.langauge' (did you mean 'dataset.language'?)" in r.stderr


KEYS_LUA = r"""
local s = require "evalhost.schema"
local function names(keys, out)
  for k, e in pairs(keys) do
    out[#out + 1] = k
    if e.keys then names(e.keys, out) end
    if type(e.items) == "table" and e.items.keys then names(e.items.keys, out) end
  end
  return out
end
local model = names(s.model_common, {})
for _, b in pairs(s.model_backends) do names(b, model) end
local out = { model = model }
for name, sec in pairs(s.sections) do
  if sec.keys then out[name] = names(sec.keys, {}) end
end
print(evalhost.json.encode(out))
"""

# which schema part a C reader's first argument names (host/*: eh_node_<get>(VAR, "key"))
C_READERS = {"m->spec": "model", "s": "model", "spec": "model", "o": "model", "e": "model",
             "limits": "limits", "lim": "limits", "ms": "limits", "image": "image", "run": "run", "dcfg": "dataset"}


def test_every_key_the_c_code_reads_is_in_the_schema(tmp_path):
    """A key read in C but missing from lua/evalhost/schema.lua would be refused
    as unknown: add its line there (and `make config-doc`)."""
    script = tmp_path / "keys.lua"
    script.write_text(KEYS_LUA)
    r = run_evalhost(script)
    assert r.returncode == 0, r.stderr
    known = {k: set(v) for k, v in json.loads(r.stdout).items()}
    missing = []
    for path in sorted((SRC / "host").rglob("*.c")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for var, key in re.findall(r"eh_node_(?:str|int|num|bool|get)\(([\w>-]+), \"(\w+)\"", line):
                part = C_READERS.get(var)
                if part and key not in known[part]:
                    missing.append(f"{path.relative_to(SRC)}:{n}: {part} key '{key}'")
    assert not missing, "keys read in C but not in lua/evalhost/schema.lua:\n" + "\n".join(missing)
