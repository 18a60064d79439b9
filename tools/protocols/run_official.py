"""Runs a benchmark's official evaluation code -- from the user's checkout,
never from this repository -- on a protocol sample and evalhost's edits,
against the recorded-replies judge, and writes what it computed (per item
and aggregate) as a reference file tests/e2e/test_protocols.py compares
evalhost with (issue 25).

  EVALHOST_OFFICIAL_GEDIT=/path/to/Step1X-Edit \   (imgedit: EVALHOST_OFFICIAL_IMGEDIT=ImgEdit,
                                                      rise: EVALHOST_OFFICIAL_RISE=RISEBench,
                                                      kris: EVALHOST_OFFICIAL_KRIS=Kris_Bench)
  .venv/bin/python tools/protocols/run_official.py gedit \
      --sample tests/data/protocols/gedit --edits OUT_OF_AN_EVALHOST_RUN \
      --replies tests/data/protocols/gedit/replies.json --out reference.json

The official code is imported as it is; only its surroundings are
supplied: the judge's URL (its OpenAI client points at the recorded judge),
the dataset (GEdit's load_dataset is the sample's parquet), megfile (local
files), and a fixed random seed (VIEScore's guess for an unparseable reply);
RISEBench's gpt_eval.main() and Kris_Bench's metrics_*.py run in a working
folder laid out as their READMEs ask (outputs/<model>/images/...,
KRIS_Bench/ + results/<model>/...). A benchmark without a license to copy
its prompts (ImgEdit, RISEBench, KRIS-Bench): the sample's stand-in prompts
where the replies were recorded with them (ImgEdit's prompts.json, KRIS's
utils/prompts.py, RISEBench's stand_in_prompts.py with --prompts) or the
checkout's own (RISEBench's utils.py).
Dependencies: tools/protocols/requirements-official.txt.
"""
import argparse
import contextlib
import csv
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from recorded_judge import RecordedJudge  # noqa: E402

CHECKOUT_ENV = {"gedit": "EVALHOST_OFFICIAL_GEDIT", "imgedit": "EVALHOST_OFFICIAL_IMGEDIT",
                "rise": "EVALHOST_OFFICIAL_RISE", "kris": "EVALHOST_OFFICIAL_KRIS"}


def revision(checkout):
    r = subprocess.run(["git", "-C", checkout, "rev-parse", "HEAD"], capture_output=True, text=True)
    if r.returncode == 0:
        return r.stdout.strip()
    path = os.path.join(checkout, "REVISION")   # an exported tree (git archive) names its commit here
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    return "unknown"


def stub_megfile():
    m = types.ModuleType("megfile")
    m.smart_open = open
    m.smart_exists = os.path.exists
    sys.modules["megfile"] = m


def gedit_rows(sample):
    import pyarrow.parquet as pq

    rows = []
    for root, _, files in os.walk(sample):
        for f in sorted(files):
            if f.endswith(".parquet"):
                rows += pq.read_table(os.path.join(root, f)).to_pylist()
    return rows


def run_gedit(checkout, sample, edits, judge_url, seed):
    bench = os.path.join(checkout, "GEdit-Bench")
    stub_megfile()
    datasets = types.ModuleType("datasets")   # test_gedit_score imports load_dataset; the sample replaces it
    datasets.load_dataset = datasets.load_from_disk = None
    sys.modules["datasets"] = datasets
    sys.path[:0] = [os.path.join(bench, "viescore"), bench]
    import calculate_statistics as cs
    import test_gedit_score as tgs
    from viescore import VIEScore

    work = tempfile.mkdtemp(prefix="gedit-official-")
    key_file = os.path.join(work, "secret_t2.env")
    with open(key_file, "w") as f:
        f.write("recorded\n")
    vie = VIEScore(backbone="gpt4o", task="tie", key_path=key_file)
    vie.model.url = judge_url + "/chat/completions"
    random.seed(seed)
    model = "evalhost"
    save_path = os.path.join(work, model)
    out_dir = os.path.join(save_path, "gpt4o", "eval_results_new")
    os.makedirs(out_dir)
    items, log = {}, io.StringIO()
    rows = gedit_rows(sample)
    for group in tgs.GROUPS:
        group_rows = []
        for item in rows:
            if item["task_type"] != group:
                continue
            lang, key = item["instruction_language"], item["key"]
            d = os.path.join(save_path, "fullset", group, lang)
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, key + "_SRCIMG.png"), "wb") as f:
                f.write(item["input_image"]["bytes"])
            shutil.copy(os.path.join(edits, "images", group, "%s_%s.png" % (key, lang)), os.path.join(d, key + ".png"))
            tgs.save_path, tgs.group_name = save_path, group   # the module-level names process_single_item reads
            with contextlib.redirect_stdout(log):
                res = tgs.process_single_item(item, vie, max_retries=1)
            if res:
                group_rows.append(res)
                items["%s_%s" % (key, lang)] = {"SC": res["sementics_score"], "PQ": res["quality_score"]}
        with open(os.path.join(out_dir, "%s_%s_gpt_score.csv" % (model, group)), "w", newline="") as f:
            fields = ["source_image", "edited_image", "instruction", "sementics_score", "quality_score",
                      "intersection_exist", "instruction_language"]
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            for r in group_rows:
                w.writerow(r)
    aggregates = {}
    for lang in ("en", "cn"):
        with contextlib.redirect_stdout(log):
            sem, qual, ov, sem_i, qual_i, ov_i = cs.analyze_scores(out_dir, [model], language=lang)
        # the figures as calculate_statistics.py's __main__ prints them (3 decimals)
        table = lambda s, q, o, avg: {**{g: ["%.3f" % s[model][g], "%.3f" % q[model][g], "%.3f" % o[model][g]]
                                         for g in tgs.GROUPS},
                                      "Average": ["%.3f" % s[model]["avg_semantics"], "%.3f" % q[model]["avg_quality"],
                                                  "%.3f" % o[model]["avg_overall"]]}
        aggregates[lang] = {"fullset": table(sem, qual, ov, True), "intersection": table(sem_i, qual_i, ov_i, True)}
    text = log.getvalue()
    shutil.rmtree(work)
    # what the official code said about items it could not score, and its guesses
    return {"items": items, "aggregates": aggregates,
            "failed": sorted(l for l in text.splitlines() if l.startswith("Failed to process")),
            "guesses": sorted(l for l in text.splitlines() if "Guess a value" in l)}


def run_imgedit(checkout, sample, edits, judge_url, seed):
    """Benchmark/Basic: basic_bench.process_json (its OpenAI client pointed
    at the judge), then step1's and step2's functions on its result.json.
    The rubrics are the sample's prompts.json (the one the replies were
    recorded with), passed to process_json as its --prompts_json."""
    basic = os.path.join(checkout, "Benchmark", "Basic")
    sys.path.insert(0, basic)
    import basic_bench
    import step1_get_avgscore as step1
    import step2_typescore as step2
    from openai import OpenAI

    basic_bench.OpenAI = lambda **kw: OpenAI(api_key="recorded", base_url=judge_url)
    work = tempfile.mkdtemp(prefix="imgedit-official-")
    edit_json = os.path.join(sample, "basic_edit.json")
    with open(edit_json, encoding="utf-8") as f:
        meta = json.load(f)
    for key, e in meta.items():
        shutil.copy(os.path.join(edits, "images", e["edit_type"], key + ".png"), os.path.join(work, key + ".png"))
    prompts = basic_bench.load_prompts(os.path.join(sample, "prompts.json"))
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        basic_bench.process_json(edit_json, work, os.path.join(sample, "singleturn"), 1, prompts)
    with open(os.path.join(work, "result.json"), encoding="utf-8") as f:
        result = json.load(f)
    avg = step1.compute_averages(result)
    types = step2.compute_edit_type_averages(avg, meta)
    shutil.rmtree(work)
    return {"items": avg, "aggregates": {"types": types}, "dropped": sorted(k for k in result if k not in avg)}


def _cell(v):
    """A pandas cell as JSON: NaN -> None, numpy numbers -> Python's."""
    import math

    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v.item() if hasattr(v, "item") else v


def run_rise(checkout, sample, edits, judge_url, seed, prompts=None):
    """gpt_eval.py's main() as its README runs it (--data, --output
    outputs/<model>, --input data), one process (--nproc 1, so the
    requests come in its order), its requests posted to the judge; the
    per-item judgements from the .xlsx it writes, the aggregates from its
    .csv (as printed: repr floats, empty for NaN)."""
    import pandas as pd

    sys.path.insert(0, checkout)
    import gpt_eval

    sample = os.path.abspath(sample)   # main() runs in its own working folder
    gpt_eval.api_base = judge_url + "/chat/completions"
    if prompts:   # stand-in prompts in place of utils.py's (eval_vanilla reads them as gpt_eval's globals)
        stand_in = {}
        with open(prompts, encoding="utf-8") as f:
            exec(compile(f.read(), prompts, "exec"), stand_in)
        for name, text in stand_in.items():
            if name.startswith("prompt_"):
                assert hasattr(gpt_eval, name), name
                setattr(gpt_eval, name, text)
    work = tempfile.mkdtemp(prefix="rise-official-")
    data = os.path.join(sample, "data", "data_total.json")
    with open(data, encoding="utf-8") as f:
        meta = json.load(f)
    out = os.path.join(work, "outputs", "evalhost")
    for it in meta:
        d = os.path.join(out, "images", it["category"])
        os.makedirs(d, exist_ok=True)
        shutil.copy(os.path.join(edits, "images", it["category"], it["index"] + ".png"), d)
    log, cwd, argv = io.StringIO(), os.getcwd(), sys.argv
    try:
        os.chdir(work)   # main() makes outputs/ in the working folder
        sys.argv = ["gpt_eval.py", "--data", data, "--output", out, "--input", os.path.join(sample, "data"),
                    "--nproc", "1"]
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            gpt_eval.main()
    finally:
        os.chdir(cwd)
        sys.argv = argv
    judged = pd.read_excel(os.path.join(out, "evalhost_judge.xlsx"))
    items = {}
    for _, row in judged.iterrows():
        items[row["index"]] = {k: _cell(row[k]) for k in
                               ("ApprConsistency", "Reasoning", "VisualPlausibility", "score", "complete", "match_log")}
    with open(os.path.join(out, "evalhost_judge.csv"), newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["-", "Score-Origin", "Score-Percentage", "Accuracy"], rows[0]
    table = [[r[0]] + [float(x) if x != "" else None for x in r[1:]] for r in rows[1:]]
    shutil.rmtree(work)
    return {"items": items, "aggregates": {"table": table}}


KRIS_SCRIPTS = (("metrics_common", "run_evaluation"), ("metrics_knowledge", "run_evaluation"),
                ("metrics_view_change", "run_evaluation"), ("metrics_multi_element", "run_multi_element_evaluation"),
                ("metrics_temporal_prediction", "run_temporal_evaluation"))
KRIS_SCORES = ("consistency_score", "instruction_score", "knowledge_score", "quality_score")


def run_kris(checkout, sample, edits, judge_url, seed):
    """Kris_Bench's five metrics_*.py scripts, each on its own categories
    (their run functions, max_workers=1), in a working folder holding
    KRIS_Bench/ (the sample) and results/evalhost/<category>/<id>.jpg
    (evalhost's edits: their bytes under the name the scripts read; the
    scripts send a file's bytes as they are). The scripts come from the
    checkout, utils/prompts.py from the sample (the stand-in prompts the
    replies were recorded with); each module's OpenAI client points at the
    judge. Items: every metrics.json entry's *_score fields, keyed
    "<category>/<id>". The repository has no aggregation code."""
    from openai import OpenAI

    sample, edits = os.path.abspath(sample), os.path.abspath(edits)
    bench = os.path.join(sample, "KRIS_Bench")
    work = tempfile.mkdtemp(prefix="kris-official-")
    os.symlink(bench, os.path.join(work, "KRIS_Bench"))
    cats = sorted(c for c in os.listdir(bench) if os.path.exists(os.path.join(bench, c, "annotation.json")))
    for cat in cats:
        with open(os.path.join(bench, cat, "annotation.json"), encoding="utf-8") as f:
            keys = list(json.load(f))
        d = os.path.join(work, "results", "evalhost", cat)
        os.makedirs(d)
        for key in keys:
            shutil.copy(os.path.join(edits, "images", cat, key + ".png"), os.path.join(d, key + ".jpg"))
    log, cwd, argv = io.StringIO(), os.getcwd(), sys.argv
    sys.path[:0] = [sample, checkout]
    os.environ.setdefault("OPENAI_API_KEY", "recorded")
    try:
        os.chdir(work)   # BENCH_DIR and RESULTS_DIR are relative
        sys.argv = ["metrics", "--models", "evalhost"]   # every script parses its arguments at import
        client = OpenAI(api_key="recorded", base_url=judge_url)
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            for name, fn in KRIS_SCRIPTS:
                mod = __import__(name)
                mod.client = client
                getattr(mod, fn)(max_workers=1)
    finally:
        os.chdir(cwd)
        sys.argv = argv
    items = {}
    for cat in cats:
        path = os.path.join(work, "results", "evalhost", cat, "metrics.json")
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            for key, rec in json.load(f).items():
                items["%s/%s" % (cat, key)] = {k: rec[k] for k in KRIS_SCORES if k in rec}
    shutil.rmtree(work)
    return {"items": items, "aggregates": {}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bench", choices=sorted(CHECKOUT_ENV))
    ap.add_argument("--checkout", help="the official repository (default: $EVALHOST_OFFICIAL_<BENCH>)")
    ap.add_argument("--sample", required=True)
    ap.add_argument("--edits", required=True, help="an evalhost run's output folder (its images/)")
    ap.add_argument("--replies", required=True)
    ap.add_argument("--log", help="the recorded judge's request log (JSON lines)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prompts", help="rise: a .py of stand-in prompt_* strings to use in place of utils.py's")
    a = ap.parse_args()
    checkout = a.checkout or os.environ.get(CHECKOUT_ENV[a.bench])
    if not checkout or not os.path.isdir(checkout):
        raise SystemExit("run_official: give --checkout or set %s to the official repository" % CHECKOUT_ENV[a.bench])
    with RecordedJudge(a.replies, log=a.log) as judge:
        run = {"gedit": run_gedit, "imgedit": run_imgedit, "rise": run_rise, "kris": run_kris}[a.bench]
        extra = {"prompts": a.prompts} if a.prompts else {}
        res = run(checkout, a.sample, a.edits, judge.url, a.seed, **extra)
        missing = [e["key"] for e in judge.log if not e["found"]]
    res["official"] = {"bench": a.bench, "revision": revision(checkout), "requests": len(judge.log),
                       "unrecorded_requests": missing}
    if a.prompts:
        res["official"]["prompts"] = os.path.basename(a.prompts)
    tmp = a.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(res, f, indent=1, ensure_ascii=False, sort_keys=True)
        f.write("\n")
    os.replace(tmp, a.out)
    print("run_official: %s: %d items, %d requests (%d unrecorded) -> %s"
          % (a.bench, len(res["items"]), len(judge.log), len(missing), a.out))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
