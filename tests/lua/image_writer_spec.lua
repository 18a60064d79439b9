-- Run:edit's saves through evalhost.image_writer (fake_host's writer runs a
-- job only once more than in_flight are queued, or on flush): an edit is
-- journaled only once its file exists with the recorded hash, scores match
-- in-line saving, a pair scored right after its edit waits for its write,
-- edited images are prefetched for scoring, originals are decoded off the
-- Lua thread, and a stop journals the saves that finished.
local fake = require "fake_host"

local DATA = {
  categories = { "a", "b" },
  data = {
    a = { { id = "a1", instruction = "red" }, { id = "a2", instruction = "flip" }, { id = "a3", instruction = "rotate" } },
    b = { { id = "b1", instruction = "snow" }, { id = "b2", instruction = "night" } },
  },
}

-- A journal that checks, at each edit record, the file it names.
local function checking_journal(lines)
  return {
    file = "journal.jsonl",
    open = function(out)
      local j = {}
      function j.is_new() return true end
      function j.record(_, stage, cat, id, rec)
        if stage == "edit" and rec.image then
          local bytes = _G.evalhost.fs.read(out .. "/" .. rec.image)
          assert(bytes, ("edit of %s/%s journaled before %s exists"):format(cat, id, rec.image))
          assert(_G.evalhost.hash(bytes) == rec.hash, "recorded hash is not the file's")
        end
        lines[#lines + 1] = ("%s %s/%s"):format(stage, cat, id)
        return true
      end
      function j.path() return out .. "/journal.jsonl" end
      function j.close() end
      return j
    end,
  }
end

local function setup(dir, opts)
  opts = opts or {}
  local h, st = fake.install({ config = {
    benchmark = { data_path = "bench.json" },
    editor = { backend = "builtin", name = "imageops" },
    judge = { backend = "builtin", name = "metrics", batch_size = opts.batch_size },
    run = { out = dir .. "/out", writes_in_flight = opts.writes_in_flight },
    report = { bootstrap = { resamples = 50 } },
  }, datasets = { ["bench.json"] = DATA } })
  local lines = {}
  if opts.writer == false then h.image_writer = nil end
  h.journal = checking_journal(lines)
  return h, st, lines
end

local function scores(dir)
  local h = _G.evalhost
  local names = h.fs.list(dir .. "/out/results")
  return fake.scores(assert(h.json.decode(assert(h.fs.read(dir .. "/out/results/" .. names[2])))))
end

describe("saving edits through the image writer", function()
  local dir
  fake.each_test(function(d) dir = d end)

  it("by default holds one save in flight, so a kill loses at most one saved-but-unjournaled edit", function()
    local _, st = setup(dir, { batch_size = 2 })
    assert.are.equal(0, dofile("scripts/two_stage.lua"))
    assert.are.equal(5, st.writes_submitted)
    assert.is_true(st.max_writes_queued <= 2)    -- the one in flight and the one being handed over
  end)

  it("journals each edit after its file, prefetches for scoring (originals too), and scores as in-line saving does",
    function()
    local _, st, lines = setup(dir, { batch_size = 2, writes_in_flight = 4 })
    assert.are.equal(0, dofile("scripts/two_stage.lua"))
    assert.are.equal(5, st.writes_submitted)
    assert.are.equal(3, st.max_writes_queued)   -- a category's edits were in flight together
    assert.are.equal(5, st.loads_submitted)     -- every edited image read for scoring off the Lua thread
    assert.are.equal(10, st.decodes_submitted)   -- each original decoded there twice: its edit, its score
    assert.are.equal(0, st.live_images, "every image closed")
    assert.are.same({ "edit a/a1", "edit a/a2", "edit a/a3", "score a/a1", "score a/a2", "score a/a3",
      "edit b/b1", "edit b/b2", "score b/b1", "score b/b2" }, lines)
    local with = scores(dir)
    fake.uninstall()
    fake.rmtree(dir)
    dir = fake.tmpdir()
    local _, st2 = setup(dir, { writer = false, batch_size = 2 })
    assert.are.equal(0, dofile("scripts/two_stage.lua"))
    assert.is_nil(st2.writes_submitted)
    -- in line without a writer: those 10, and the report's thumbnails in both runs
    assert.are.equal(10, st2.inline_decodes - (st.inline_decodes or 0))
    assert.are.same(scores(dir), with)
    assert.are.equal(5, #(function() local n = {} for k in pairs(with) do n[#n + 1] = k end return n end)())
  end)

  it("a pair scored right after its edit waits for its write", function()
    local _, st, lines = setup(dir)
    assert.are.equal(0, dofile("scripts/single_stage.lua"))
    assert.are.equal(5, st.writes_submitted)
    assert.are.equal("edit a/a1", lines[1])
    assert.are.equal("score a/a1", lines[2])
    for _, v in pairs(scores(dir)) do assert.is_number(v) end
  end)

  it("a stop journals the saves that finished; a failed save stops with its path", function()
    local h, st, lines = setup(dir)
    local open = h.model.open
    h.model.open = function(spec, section)
      local m = open(spec, section)
      if section == "editor" then
        local edit = m.edit
        function m.edit(self, img, instruction)
          if instruction == "rotate" then return nil, "server gone", { whole = true } end
          return edit(self, img, instruction)
        end
      end
      return m
    end
    assert.are.equal(1, dofile("scripts/two_stage.lua"))
    assert.truthy(fake.log_text(st, "error"):find("editor: server gone", 1, true))
    assert.are.same({ "edit a/a1", "edit a/a2" }, lines)
    fake.uninstall()
    fake.rmtree(dir)
    dir = fake.tmpdir()
    st, lines = select(2, setup(dir))
    st.fail_save = true
    assert.are.equal(1, dofile("scripts/two_stage.lua"))
    assert.truthy(fake.log_text(st, "error"):find("^cannot save the edit of a/a1: save: disk full %(" .. dir
      .. "/out/images/a/a1.png%)"))
    assert.are.same({}, lines)
  end)
end)
