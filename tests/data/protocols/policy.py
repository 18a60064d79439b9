"""Deterministic judge replies for the protocol samples (record mode of
tools/recorded_judge.py): each benchmark's reply formats, scores drawn from
the request's text and picture sizes, so every item differs and the parsers
meet every form their official code accepts.

  .venv/bin/python tools/recorded_judge.py tests/data/protocols/gedit/replies.json \
      --policy tests/data/protocols/policy.py:reply
"""
import hashlib


def _h(text, sizes):
    return int(hashlib.sha256((text + "|" + ",".join(sizes)).encode("utf-8")).hexdigest()[:12], 16)


def gedit(text, sizes):
    """VIEScore replies: two 0-10 scores (SC: success, over-editing; PQ:
    naturalness, artifacts) in the forms mllm_output_to_dict reads."""
    h = _h(text, sizes)
    a, b = h % 11, (h >> 5) % 11
    form = (h >> 10) % 6
    if form == 0:
        return '{\n"score" : [%d, %d],\n"reasoning" : "The edit is mostly there."\n}' % (a, b)
    if form == 1:
        return '```json\n{"score": [%d, %d], "reasoning": "ok"}\n```' % (a, b)
    if form == 2:
        return '||V^=^V||\n{\n"score" : [%d, %d],\n"reasoning" : "delimited"\n}\n||V^=^V||' % (a, b)
    if form == 3:
        return "[%d, %d]" % (a, b)
    if form == 4:
        return '{"score": %d, "reasoning": "one number, not a list"}' % a
    return "{score: %d, reasoning: unquoted}" % a   # viescore's fix_json repairs it


def imgedit(text, sizes):
    """ImgEdit replies: "Name: N" lines (every one with exactly one ": " and
    digits after it counts), with lines that must not count."""
    h = _h(text, sizes)
    a, b, c = 1 + h % 5, 1 + (h >> 3) % 5, 1 + (h >> 6) % 5
    form = (h >> 9) % 4
    head = "Brief reasoning: the edit is partly done; colours: kept.\n"
    if form == 0:
        return head + "Prompt Compliance: %d\nVisual Naturalness: %d\nPhysical & Detail Integrity: %d" % (a, b, c)
    if form == 1:
        return head + "Prompt Compliance: %d\nVisual Naturalness: %d/5\nPhysical & Detail Integrity: %d" % (a, b, c)
    if form == 2:
        return "**Prompt Compliance**: %d\n  Visual Naturalness: %d  \nNote: a: b: %d" % (a, b, c)
    return head + "Prompt Compliance: %d\nVisual Naturalness: %d\nPhysical & Detail Integrity: %d\nOverall: %d" % (
        a, b, c, (a + b + c) // 3)


RISE_BINARY = ("**0** (inconsistent)", "(0 or 1)", "(0/1)", "Give 1 when same")


def rise(text, sizes):
    """RISEBench replies: reasoning, then a "Final Score" line in the forms
    gpt_eval.py's extract reads (bold, no colon, lower case, "Final
    Scores"); 1-5, or 0/1 for the logical prompts; mostly top marks, so
    some items are accurate."""
    h = _h(text, sizes)
    binary = any(m in text for m in RISE_BINARY)
    v = (h % 2 if (h >> 4) % 3 == 0 else 1) if binary else (5 if (h >> 4) % 3 else 1 + h % 5)
    form = (h >> 8) % 6
    head = "Step 1: compared the pictures; 2 details differ slightly.\n\n"
    if form == 0:
        return head + "**Final Score:** **%d**" % v
    if form == 1:
        return head + "Final Score: %d" % v
    if form == 2:
        return head + "**Final Score**: **%d**\n" % v
    if form == 3:
        return head + "final score %d/5" % v
    if form == 4:
        return head + "Final Scores: %d" % v
    return "**Final Score:**\n\n**%d**\n\nThe edit keeps most details." % v


def kris(text, sizes):
    """KRIS-Bench replies in the forms the scripts' extractors meet: a
    JSON block, one with a trailing comma (json.loads refuses it: the
    regexes decide, down to the first standalone digit), "score: N" lines,
    "N/5", "N out of 5"; the dual request's two scores together."""
    h = _h(text, sizes)
    a, b = 1 + h % 5, 1 + (h >> 3) % 5
    form = (h >> 6) % 5
    if "[dual]" in text:
        if form in (0, 1, 2):
            return 'Thinking.\n{\n  "instruction_score": %d,\n  "knowledge_score": %d,\n  "instruction_reasoning": "ok"\n}' % (a, b)
        return "Instruction score: %d\nKnowledge_score: %d\nBoth judged." % (a, b)
    metric = "consistency" if "[consistency]" in text else "instruction" if "[instruction]" in text else "quality"
    if form == 0:
        return '{\n"reasoning": "Compared the two.",\n"%s_score": %d\n}' % (metric, a)
    if form == 1:
        return 'Step 3 of the check.\n{\n"reasoning": "trailing comma",\n"%s_score": %d,\n}' % (metric, a)
    if form == 2:
        return "%s score: %d" % (metric.capitalize(), a)
    if form == 3:
        return "I would give it %d/5." % a
    return "Overall it earns %d out of 5." % a


def reply(text, sizes):
    if "KRIS stand-in" in text:
        return kris(text, sizes)
    if "Final Score" in text and "evaluator" in text:
        return rise(text, sizes)
    if "professional digital artist" in text:
        return gedit(text, sizes)
    if "ImgEdit stand-in rubric" in text:
        return imgedit(text, sizes)
    raise ValueError("policy: no benchmark recognised in %r" % text[:80])
