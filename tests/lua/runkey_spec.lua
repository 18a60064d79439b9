-- lua/evalhost/runkey.lua: the judge's chat layout is part of the run key,
-- so a journal scored with other messages is not resumed as this run.
local fake = require "fake_host"

describe("runkey", function()
  local runkey, chat
  setup(function()
    fake.install()
    runkey = require "evalhost.runkey"
    chat = require "evalhost.chat"
  end)

  local function key(extra)
    local opts = {config = {judge = {name = "j"}}, dataset_hash = "d", version = "v"}
    for k, v in pairs(extra or {}) do opts[k] = v end
    return runkey.compute(opts)
  end

  it("carries the chat layout among its parts", function()
    local _, parts = key()
    assert.equals(chat.LAYOUT, parts.chat)
  end)

  it("changes with the chat layout and says so", function()
    local k1, p1, cfg = key()
    local k2, p2 = key({chat = "1 (edited first, unlabelled)"})
    assert.are_not.equal(k1, k2)
    local why = runkey.explain("out/journal.jsonl", {parts = p2, config = cfg}, p1, cfg)
    assert.truthy(why:find("the judge's chat layout differs (1 (edited first, unlabelled), now " .. chat.LAYOUT .. ")",
      1, true), why)
    -- a journal from before layouts were named
    p2.chat = nil
    why = runkey.explain("out/journal.jsonl", {parts = p2, config = cfg}, p1, cfg)
    assert.truthy(why:find("before layouts were named", 1, true), why)
    assert.falsy(why:find("dataset differs", 1, true), why)
  end)
end)
