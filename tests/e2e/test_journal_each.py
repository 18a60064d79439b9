"""evalhost.journal's replay one entry at a time (issue 20, flat memory on
--resume): j:each() yields the step lines in file order, each with the byte
offset where its line starts, so a resumed run keeps offsets, not records;
j:entries() is the same list; j:done() reads the last line of a step."""
import json

from conftest import run_evalhost

SCRIPT = r"""
local eh = require "evalhost"
local dir = assert(os.getenv("EH_DIR"))
local j = assert(eh.journal.open(dir, "key-1"))
assert(j:record("edit", "c", "a", {image = "images/c/a.png"}))
assert(j:record("score", "c", "a", {score = 3}))
assert(j:record_run({swaps = 1}))
assert(j:record("score", "c", "a", {score = 7}))   -- a later line replaces the earlier one
assert(j:record("edit", "c", "b", {error = "bad image"}))
j:close()
j = assert(eh.journal.open(dir, "key-1", {resume = "yes"}))
local out, f = {}, assert(io.open(j:path(), "rb"))
for e in j:each() do
  f:seek("set", e.offset)
  local back = eh.json.decode(f:read("l"))
  out[#out + 1] = {stage = e.stage, category = e.category, id = e.id, line = e.line,
                   score = e.record.score, back_same = back.stage == e.stage and back.id == e.id
                     and eh.json.encode(back.record) == eh.json.encode(e.record)}
end
local listed = j:entries()
io.stdout:write(eh.json.encode({each = out, entries = #listed, entries_offset = listed[3].offset,
  done = j:done("score", "c", "a").score, none = j:done("score", "c", "b") == nil}), "\n")
"""


def test_each_yields_every_step_with_the_offset_of_its_line(tmp_path):
    script = tmp_path / "each.lua"
    script.write_text(SCRIPT)
    r = run_evalhost(script, env={"EH_DIR": str(tmp_path / "out")})
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    each = got["each"]
    # four step lines (the run line is not a step), in file order, line numbers after the header
    assert [(e["stage"], e["id"], e.get("score")) for e in each] == [
        ("edit", "a", None), ("score", "a", 3), ("score", "a", 7), ("edit", "b", None)]
    assert [e["line"] for e in each] == [2, 3, 5, 6]
    assert all(e["back_same"] for e in each), each
    assert got["entries"] == 4
    lines = (tmp_path / "out" / "journal.jsonl").read_bytes().split(b"\n")
    assert got["entries_offset"] == sum(len(x) + 1 for x in lines[:4])   # header, 2 steps, the run line
    assert got["done"] == 7 and got["none"] is True
