"""How each score was obtained (issue 19): the http judge against the
scripted server (fake_openai_server.py) through two_stage.lua.

* A server that ignores logprobs (the `text` scenario: like transformers
  serve 5.24, the reply has none although they were asked for): one
  warning for the whole run, `score_method: text` on every pair in the
  journal and the JSON report, the parsed scores.
* A server with logprobs: "10" arrives as "1","0" and is combined along the
  path (P(10) = P("1") P("0" | "1")), `score_method` logprobs (or
  logprobs-approx where a "1" beside a 0 borrows the next position), with
  `probs` over the range in the journal.
"""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_openai_server import FakeOpenAI, expected_logprob_score, expected_score  # noqa: E402
from test_http_backend import by_id, judge_yaml, report, two_stage, write_config  # noqa: E402

WARNING = "carry no logprobs although they were asked for"


def scored(out):
    """(category, id) -> the journal's score record."""
    got = {}
    with open(os.path.join(out, "journal.jsonl"), encoding="utf-8") as f:
        for ln in f:
            r = json.loads(ln)
            if r.get("type") == "step" and r.get("stage") == "score":
                got[(r["category"], r["id"])] = r["record"]
    return got


def test_no_logprobs_warned_once_and_recorded_as_text(binary, tmp_path):
    with FakeOpenAI() as srv:
        cfg, out = write_config(tmp_path, srv.url, "text", per_category=5)
        r = two_stage(cfg)
        assert r.returncode == 0, r.stderr
        reqs = srv.requests()
    assert reqs and all(e["request"]["logprobs"] is True for e in reqs)   # asked for
    assert r.stderr.count(WARNING) == 1, r.stderr
    rep = report(out)
    pairs = by_id(rep)
    assert len(pairs) == 5
    for (cat, pid), p in pairs.items():
        assert p["score"] == expected_score(pid)
        assert p["score_method"] == "text", p
    recs = scored(out)
    assert len(recs) == 5 and all(v["score_method"] == "text" for v in recs.values()), recs


def test_logprobs_combined_along_the_path(binary, tmp_path):
    with FakeOpenAI() as srv:
        cfg, out = write_config(tmp_path, srv.url, "logprobs", per_category=11,
                                judge=judge_yaml(srv.url, "logprobs", max_tokens=64))
        r = two_stage(cfg)
        assert r.returncode == 0, r.stderr
    assert WARNING not in r.stderr
    rep = report(out)
    recs = scored(out)
    seen = set()
    for (cat, pid), p in by_id(rep).items():
        s = expected_score(pid)
        assert p["score"] == pytest.approx(expected_logprob_score(s), abs=1e-9), (pid, p)
        # a "1" beside an observed 0 could start 10: its continuation is borrowed
        want = "logprobs-approx" if s == 0 else "logprobs"
        assert p["score_method"] == want, (pid, p)
        rec = recs[(cat, pid)]
        assert rec["score_method"] == want and len(rec["probs"]) == 11
        seen.add(s)
        if s == 10:
            assert rec["argmax"] == 10 and rec["probs"][10] > 0.6   # not read as a 1
    assert 10 in seen and 0 in seen
