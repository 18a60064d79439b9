"""Judge replies read by each benchmark's official reply parser and by
evalhost's copy of it, side by side (issue 25): the official functions
imported from the user's checkout (never from this repository), evalhost's
from lua/evalhost/datasets/<bench>.lua through the evalhost binary.

  .venv/bin/python tools/protocols/parse_cases.py gedit --checkout CHECKOUT \
      --random 5000 --seed 1            # print every reply the two read differently
  .venv/bin/python tools/protocols/parse_cases.py gedit --checkout CHECKOUT \
      --write tests/data/protocols/gedit/parse_cases.json   # the committed cases, official readings

What is compared, per reply, is the figure the official code takes from it:
GEdit, the minimum of viescore's mllm_output_to_dict score list (no guess:
null where it gives up or the list is not numbers); ImgEdit, step1's item
average (null: the item is dropped); RISEBench, gpt_eval.py's extract list
(null for None and for an empty list, which main() treats alike); KRIS-Bench,
each extractor's rating, one per script family (null for None). Where the
official function raises, the reading is {"raises": "<exception type>"};
evalhost reads such a reply as no rating (null), which the comparison
accepts.
"""
import argparse
import contextlib
import io
import json
import math
import os
import random
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
BIN = os.environ.get("EVALHOST_BIN") or os.path.join(SRC, "build", "evalhost")

GEDIT_PQ = 10   # the PQ evalhost's side pairs each SC reply with: {"score": [10]}
# KRIS-Bench: (label, official module, function, evalhost call) per extractor
KRIS_READERS = (
    ("common.consistency", "metrics_common", "extract_consistency_score_and_reason", "common", "consistency", True),
    ("common.instruction", "metrics_common", "extract_instruction_score_and_reason", "common", "instruction", True),
    ("common.quality", "metrics_common", "extract_quality_score_and_reason", "common", "quality", True),
    ("plain.consistency", "metrics_common", "extract_score_and_reason", "common", "consistency", False),
    ("plain.quality", "metrics_common", "extract_score_and_reason", "common", "quality", False),
    ("knowledge.consistency", "metrics_knowledge", "extract_consistency_score", "knowledge", "consistency", None),
    ("knowledge.quality", "metrics_knowledge", "extract_quality_score", "knowledge", "quality", None),
    ("knowledge.dual", "metrics_knowledge", "extract_dual_scores", "dual", None, None),
)


# ---------------------------------------------------------------- official

def official_readers(bench, checkout, sample):
    """bench's official reader: reply -> reading (see the module's text)."""
    if bench == "gedit":
        sys.path.insert(0, os.path.join(checkout, "GEdit-Bench", "viescore"))
        with contextlib.redirect_stdout(io.StringIO()):
            from utils import mllm_output_to_dict   # viescore/utils.py

        def gedit(text):
            with contextlib.redirect_stdout(io.StringIO()):
                d = mllm_output_to_dict(text)
            if d is False:
                return None
            v = min(d["score"])           # as VIEScore.evaluate: extract_all_score
            o = math.sqrt(v * GEDIT_PQ)   # ... and O = sqrt(SC * PQ), PQ read from its own reply
            if not math.isfinite(o):
                return {"nonfinite": repr(o)}
            return int(v) if isinstance(v, bool) else v
        return gedit
    if bench == "imgedit":
        sys.path.insert(0, os.path.join(checkout, "Benchmark", "Basic"))
        from step1_get_avgscore import extract_scores_and_average
        return extract_scores_and_average
    if bench == "rise":
        sys.path.insert(0, checkout)
        import types
        for m in ("pandas", "requests", "tqdm"):   # gpt_eval.py imports them at the top; extract needs none
            sys.modules.setdefault(m, types.ModuleType(m))
        sys.modules["tqdm"].tqdm = lambda x, **k: x
        from gpt_eval import extract

        def rise(text):
            v = extract(text)
            return v or None
        return rise
    if bench == "kris":
        sys.path[:0] = [sample, checkout]
        os.environ.setdefault("OPENAI_API_KEY", "parse-cases")
        argv, sys.argv = sys.argv, ["metrics"]
        try:
            mods = {m: __import__(m) for m in ("metrics_common", "metrics_knowledge")}
        finally:
            sys.argv = argv

        def kris(text):
            out = {}
            for label, mod, fn, _, name, _ in KRIS_READERS:
                f = getattr(mods[mod], fn)
                try:
                    if fn == "extract_score_and_reason":
                        v = f(text, score_key=name + "_score", reason_fields=["reasoning", "reason"])[0]
                    elif fn == "extract_dual_scores":
                        d = f(text)
                        v = [d["instruction_score"], d["knowledge_score"]]
                    else:
                        v = f(text)
                        v = v[0] if isinstance(v, tuple) else v
                except Exception as e:   # noqa: BLE001 - the reading is the exception's type
                    v = {"raises": type(e).__name__}
                out[label] = v
            return out
        return kris
    raise SystemExit("unknown benchmark " + bench)


def official_readings(bench, checkout, sample, replies):
    read = official_readers(bench, checkout, sample)
    out = []
    for text in replies:
        try:
            out.append(read(text))
        except Exception as e:   # noqa: BLE001
            out.append({"raises": type(e).__name__})
    return out


# ---------------------------------------------------------------- evalhost

LUA = r"""
local eh = require "evalhost"
local bench = os.getenv("EH_BENCH")
local replies = eh.json.decode(io.open(os.getenv("EH_REPLIES"), "rb"):read("a"))
local mod = require("evalhost.datasets." .. bench)
local official = mod.profile.official
local readers = eh.json.decode(os.getenv("EH_READERS"))
local null = eh.json.null
local function v(x) if x == nil then return null end return x end
local out = {}
for i, text in ipairs(replies) do
  local r
  if bench == "gedit" then
    local s, d = official.combine({ SC = text, PQ = '{"score": [10]}' }, { pair = {} })   -- GEDIT_PQ
    r = s and d.SC or null
  elseif bench == "imgedit" then
    r = v((official.combine({ rating = text })))
  elseif bench == "rise" then
    r = v(official.extract(text))
  else
    r = {}
    for _, rd in ipairs(readers) do
      local label, kind, name, prefix = rd[1], rd[4], rd[5], rd[6]
      if kind == "common" then r[label] = v(official.extract_common(text, name, prefix))
      elseif kind == "knowledge" then r[label] = v(official.extract_knowledge(text, name))
      else local a, b = official.extract_dual(text); r[label] = { v(a), v(b) } end
    end
  end
  out[i] = r
end
io.stdout:write(eh.json.encode(out))
"""


def evalhost_readings(bench, replies):
    with tempfile.TemporaryDirectory() as d:
        path, script = os.path.join(d, "replies.json"), os.path.join(d, "read.lua")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(replies, f, ensure_ascii=False)
        with open(script, "w", encoding="utf-8") as f:
            f.write(LUA)
        r = subprocess.run([BIN, script], capture_output=True, timeout=300, cwd=SRC,
                           env=dict(os.environ, EH_BENCH=bench, EH_REPLIES=path,
                                    EH_READERS=json.dumps([list(x) for x in KRIS_READERS])))
        if r.returncode != 0:
            raise SystemExit("evalhost: " + r.stderr.decode("utf-8", "replace"))
        return json.loads(r.stdout)


def agrees(ours, theirs):
    """Equal readings; an official exception, or a score that is NaN or
    infinite, reads as no rating here."""
    if isinstance(theirs, dict) and ("raises" in theirs or "nonfinite" in theirs):
        return ours is None
    if isinstance(theirs, dict) and isinstance(ours, dict):
        return set(ours) == set(theirs) and all(agrees(ours[k], theirs[k]) for k in theirs)
    if isinstance(theirs, list) and isinstance(ours, list):
        return len(ours) == len(theirs) and all(agrees(a, b) for a, b in zip(ours, theirs))
    if isinstance(theirs, float) and isinstance(ours, (int, float)):
        return ours == theirs or (math.isnan(theirs) and math.isnan(ours))
    return ours == theirs and type(ours) is type(theirs) or (
        isinstance(ours, (int, float)) and isinstance(theirs, (int, float)) and not isinstance(theirs, bool)
        and ours == theirs)


# ---------------------------------------------------------------- replies

COMMON = [" ", "  ", "\n", "\r\n", "\t", "\u00a0", "\u3000", "\u2003", ":", "\uff1a", ",", ".", "*", "**", "{", "}",
          "[", "]", '"', "'", "`", "```json\n", "\n```", "#", "-", "_", "/", "(", ")", "0", "1", "2", "3", "4", "5",
          "6", "7", "8", "9", "10", "11", "-1", "+3", "3.5", "4.0", "05", "\uff15", "\u0663", "\u00b2", "\u2075",
          "null", "true", "false", "NaN", "Infinity", "1e1", "a", "x", "\u00e9", "\u5206", "\u7b2c", "\u03b1",
          "score", "Score", "SCORE", "reasoning", "The edit is good.", "I rate it"]
WORDS = {
    "gedit": ['"score"', "score:", '"score":', '"reasoning"', "reasoning:", "||V^=^V||", "[5, 6]", "[5,6]",
              "[ 5, 6 ]", "[5, 6, 7]", "[10, 0]", "[11, 3]", "rate_limit_exceeded", '{"score": [', '"}',
              '{"score": ', '{score: ', "], ", '{"score": [7, 8], "reasoning": "fine"}', "'score'", "{}", "[]"],
    "imgedit": ["Prompt Compliance", "Visual Naturalness", "Physical & Detail Integrity", ": ", ":  ", "Overall",
                "Label", "Brief reasoning", "/5", " /5", "Note: a: b", "**", "Score: ", ": 3", ": 4 ", ": 12",
                "Prompt Compliance: 4", "\nVisual Naturalness: 5", "\n"],
    "rise": ["Final Score", "final score", "FINAL SCORE", "Final Scores", "Final score", "**Final Score**",
             "Final Score:", "Final Score: ", "**Final Score:**", "Final Scores: ", "Final  Score", "Final_Score",
             "Fin\u0430l Score", "Final Sco\u0280e", "Final \u017fcore", ", ", "*", "\n", "5", "1", "0", "3, 4",
             "Score", "Reasoning"],
    "kris": ['"consistency_score"', '"instruction_score"', '"knowledge_score"', '"quality_score"', "consistency",
             "instruction", "knowledge", "quality", "_score", " score", "consistency_score", "instruction_score",
             "knowledge_score", "quality_score", "Consistency Score", "out of", " out of 5", "of", "/5", "/ 5", " / 5",
             '"reasoning"', '"reason"', '"consistency_reasoning"', ": ", '": ', '"', "}", "{", '{"', "1", "5", "6",
             "0", "3.0", '"4"', "null", "_", "\uff1a", "\u00a0", "\n"],
}
TEMPLATES = {
    "gedit": ['{\n"score" : [%(a)d, %(b)d],\n"reasoning" : "%(w)s"\n}', '```json\n{"score": [%(a)d, %(b)d]}\n```',
              '||V^=^V||\n{"score": [%(a)d, %(b)d], "reasoning": "%(w)s"}\n||V^=^V||', "[%(a)d, %(b)d]", "%(a)d",
              '{"score": %(a)d, "reasoning": "%(w)s"}', "{score: %(a)d, reasoning: %(w)s}",
              '{"score": [%(a)d, %(b)d], "reasoning": "%(w)s"} and {"x": 1}', '{"score": ["%(a)d", %(b)d]}',
              '{"score": [%(a)d.5, %(b)d]}', "{'score': [%(a)d, %(b)d]}", '{"score": [], "reasoning": "%(w)s"}',
              '{"reasoning": "%(w)s"}', "%(w)s [%(a)d, %(b)d] %(w)s", " %(a)d ", "%(a)d\n"],
    "imgedit": ["Prompt Compliance: %(a)d\nVisual Naturalness: %(b)d\nPhysical & Detail Integrity: %(c)d",
                "%(w)s\nPrompt Compliance: %(a)d\r\nVisual Naturalness: %(b)d/5\nPhysical & Detail Integrity: %(c)d",
                "**Prompt Compliance**: %(a)d\n  Visual Naturalness: %(b)d  \nNote: a: b: %(c)d",
                "Prompt Compliance: %(a)d Visual Naturalness: %(b)d", "Prompt Compliance:%(a)d\nX: %(b)d",
                "Prompt Compliance: +%(a)d\nY: %(b)d.0\nZ: %(c)d", "%(w)s: %(a)d%(b)d", "%(w)s"],
    "rise": ["%(w)s\nFinal Score: %(a)d", "**Final Score**: %(a)d", "Final Score %(a)d", "final score: %(a)d, %(b)d",
             "Final Scores: %(a)d", "Final Score: **%(a)d**", "Final Score: none\nFinal Score: %(a)d",
             "Final Score:\n\n%(a)d", "%(w)s Final Scores %(a)d * %(b)d", "Final Score: %(a)d/5", "Final Score: x"],
    "kris": ['{"consistency_score": %(a)d, "reasoning": "%(w)s"}', '{"instruction_score": %(a)d, '
             '"knowledge_score": %(b)d, "instruction_reasoning": "%(w)s"}', '```json\n{"quality_score": %(a)d}\n```',
             "Consistency Score: %(a)d", "instruction score\uff1a%(a)d\nknowledge_score: %(b)d", "%(a)d/5",
             "%(a)d out of 5", "I give it a %(a)d.", '{"consistency_score": "%(a)d"}', '{"quality_score": null} %(a)d',
             '{"consistency_score": %(a)d.7}', '{"instruction_score": %(a)d, "knowledge_score": "x"} %(b)d/5',
             "Quality_score %(a)d", "score %(a)d", '{"consistency_score": %(a)d, "consistency_score": %(b)d}'],
}


# replies where a reader that is not Python's reads otherwise: Unicode digits,
# spaces, line breaks and case folds, strict JSON, Python's int() and min()
HAND = {
    "gedit": ["\u30007", "\u0663", "[07, 8]", "[7, 8]", '{"score": [true, 5]}', '{"score": NaN}', '{"score": [-2]}',
              '{"score": [5, "x"]}', "{score: true}", '{"score": [3], "score": [7]}', '{"score":[5]} {"x":1}',
              '{"score": "\\u0035"}', '||V^=^V||{"score": [3, 4], "r": "a\rb"}||V^=^V||', "{score: 1, rea\u0663oning: x}",
              '{"Score": 5}', '{"score": [4, 1e1]}', '{"score": []}', "rate_limit_exceeded", "||V^=^V||[5, 6]||V^=^V||",
              '{"score": Infinity}', '{"score": [1.5, 2]}', "{score: 2_0}", "10", "11", " 5\n", "1_0",
              '\ufeff{"score": [5]}', '{"score": [6, 2], "reasoning": "fine"', "{score: \uff15, reasoning: x}",
              "{score: TRUE, r: NULL}", "{score: 7, reas\u00b2oning: 11}", "||V^=^V||||V^=^V||", "}{", '{"score": {"a": 1}}', "{\u017fcore: 4}"],
    "imgedit": ["Prompt Compliance: \u00b2", "A: \uff13\nB: 4", "A: 4\rB: 2", "A: 4\u2028B: 2", "\u3000A: 3\u3000",
                "A: 3: 4", "A: 03", "A: -1", "A: 1_0", "A:3", "A: 3\r\n\r\nB: 5", "A: 4\x85B: 1", "A:  5", "A: 5 ",
                "A: 3\x0cB: 2"],
    "rise": ["Final \u017fcore: 5", "F\u0130NAL SCORE 4", "Final Score: \uff15", "Final Score: \u06634",
             "Final Score: **5**", "Final Score:\u30003, 4", "Final Scores: x", "Final Score** 2",
             "final score none final score 3", "Final Score\u00a0:5", "Final Score: 3\n\n4", "Final  Score: 4"],
    "kris": ["\u00b21", "\u20754", '{"quality_score": 05}', '{"consistency_score": "\u0663"}',
             '{"consistency_score": 1e400}', "CON\u017fISTENCY SCORE: 4", "quality\u3000score\uff1a3", "3 OUT OF 5",
             '{"consistency_score": null} 4', '{"instruction_score": 4, "knowledge_score": null}',
             '{"consistency_score": 2, "consistency_score": 4}', '{"consistency_score": true}',
             '{"consistency_score": 4.9}', '{"consistency_score": "4 "}', '{"quality_score": "1_2"} 3/5',
             "instruction_score: 4\nknowledge score\uff1a 2", "\u00e93", "3\u00e9 2", "\u03b14 5"],
}


def random_replies(bench, n, seed):
    rnd = random.Random(seed)
    words = COMMON + WORDS[bench] * 3
    out = []
    for _ in range(n):
        if rnd.random() < 0.4:
            t = rnd.choice(TEMPLATES[bench]) % {"a": rnd.randint(-1, 11), "b": rnd.randint(-1, 11),
                                                "c": rnd.randint(0, 6), "w": rnd.choice(words)}
            for _ in range(rnd.randint(0, 3)):   # a few edits of the template
                i = rnd.randint(0, len(t))
                t = t[:i] + rnd.choice(words) + t[i + rnd.choice((0, 0, 1)):]
        else:
            t = "".join(rnd.choice(words) for _ in range(rnd.randint(1, 14)))
        out.append(t)
    return out


# ---------------------------------------------------------------- main

def revision(checkout):
    """The checkout's commit (git, or the REVISION file of an exported tree)."""
    sys.path.insert(0, HERE)
    from run_official import revision as rev
    return rev(checkout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bench", choices=("gedit", "imgedit", "rise", "kris"))
    ap.add_argument("--checkout", required=True, help="the benchmark's official repository")
    ap.add_argument("--sample", help="kris: the folder whose utils/prompts.py the scripts import "
                    "(default tests/data/protocols/kris)")
    ap.add_argument("--cases", help="a parse_cases.json whose replies to read (default: --random)")
    ap.add_argument("--random", type=int, default=0, help="this many generated replies")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write", help="write the replies and the official readings here")
    ap.add_argument("--show", type=int, default=30, help="print at most this many disagreements")
    a = ap.parse_args()
    sample = a.sample or os.path.join(SRC, "tests", "data", "protocols", "kris")
    replies = []
    if a.cases:
        with open(a.cases, encoding="utf-8") as f:
            replies = [c["reply"] for c in json.load(f)["cases"]]
    if a.random:
        replies += HAND[a.bench] + random_replies(a.bench, a.random, a.seed)
    theirs = official_readings(a.bench, os.path.abspath(a.checkout), sample, replies)
    ours = evalhost_readings(a.bench, replies)
    bad = [i for i, (o, t) in enumerate(zip(ours, theirs)) if not agrees(o, t)]
    for i in bad[:a.show]:
        print("reply %r\n  official %s\n  evalhost %s" % (replies[i], json.dumps(theirs[i]), json.dumps(ours[i])))
    print("%s: %d replies, %d read differently" % (a.bench, len(replies), len(bad)))
    if a.write:
        head = {"format": "evalhost-parse-cases/1", "bench": a.bench, "revision": revision(a.checkout)}
        with open(a.write, "w", encoding="utf-8") as f:   # a case a line
            f.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "cases": [\n')
            f.write(",\n".join(json.dumps({"reply": r, "official": t}, ensure_ascii=False)
                               for r, t in zip(replies, theirs)))
            f.write("\n]}\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
