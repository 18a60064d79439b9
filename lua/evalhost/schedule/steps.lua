-- The steps: every "is this done?" and every result goes through Run:done
-- and Run:record (resume lives there); editing and scoring a pair, a list,
-- a category.
local util = require "evalhost.util"
local base = require "evalhost.schedule.run"
local Run, log, stop, pair_id = base.Run, base.log, base.stop, base.pair_id
local stats = require "evalhost.stats"
local records = require "evalhost.records"

------------------------------------------------------------------------
-- The two functions every step goes through (resume lives here).
------------------------------------------------------------------------

-- Flat memory (issue 20): a step recorded here lives in the journal, not in
-- memory. What stays is where its line starts (self.at[stage][cat][id], one
-- integer per step) and the last few records (self.recent); Run:done reads an
-- older one back from the journal. Replayed steps (resume) and runs without a
-- journal file (a host without evalhost.fs.open, a test's journal) keep their
-- records in self.steps as before.

local RECENT = 256   -- records kept per generation: a batch and the writes in flight

-- Store a step's result in memory (used by replay and without a journal file).
function Run:remember(stage, cat, id, tbl)
  local s = self.steps[stage] or {}
  self.steps[stage] = s
  s[cat] = s[cat] or {}
  s[cat][id] = tbl
  local a = self.at and self.at[stage]
  if a and a[cat] then a[cat][id] = nil end
end

-- A replayed step (resume) left in the journal: where its line starts, as
-- for the steps this process writes. Returns false when the journal cannot
-- be read back (the caller keeps the record in memory instead).
function Run:replayed(stage, cat, id, off)
  if not (off and self:journal_reader()) then return false end
  local a = self.at[stage] or {}
  self.at[stage] = a
  a[cat] = a[cat] or {}
  a[cat][id] = off
  local s = self.steps[stage]
  if s and s[cat] then s[cat][id] = nil end
  return true
end

-- Drops a finished step, in memory or in the journal, so that it runs again.
function Run:forget(stage, cat, id)
  local s = self.steps[stage]
  if s and s[cat] then s[cat][id] = nil end
  local a = self.at and self.at[stage]
  if a and a[cat] then a[cat][id] = nil end
  if self.recent then
    local k = stage .. "\0" .. cat .. "\0" .. tostring(id)
    self.recent[k], self.recent_old[k] = nil, nil
  end
end

-- The journal opened for reading back (no links, regular file), its end, or
-- false when the journal is not a file this process can read.
function Run:journal_reader()
  if self.jread == nil then
    local h = util.host()
    local open = rawget(h.fs, "open")
    local path = self.journal and self.journal.path and self.journal:path()
    local f = open and path and open(path, { no_follow = true }) or nil
    self.jread = f or false
    if f then
      self.jend = f:seek("end")
      self.at, self.recent, self.recent_old, self.recent_n = {}, {}, {}, 0
    end
  end
  return self.jread
end

local function recent_key(stage, cat, id) return stage .. "\0" .. cat .. "\0" .. tostring(id) end

-- The record of the journal line at `off`, checked to be (stage, cat, id)'s.
function Run:read_step(off, stage, cat, id)
  local f = self.jread
  f:seek("set", off)
  local line = f:read("l")
  local e = line and util.host().json.decode(line)
  if type(e) ~= "table" or e.type ~= "step" or e.stage ~= stage or e.category ~= cat or e.id ~= tostring(id) then
    stop(("journal: %s at byte %d is not the line of %s %s/%s this run wrote (changed under the run?)"):format(
      self.journal:path(), off, stage, cat, tostring(id)))
  end
  return e.record
end

-- The record of a finished step, or nil when it still has to run. An edit
-- whose image is still being saved is waited for: it is done only once
-- journaled.
function Run:done(stage, cat, id)
  if stage == "edit" and self.writing_ids and self.writing_ids[cat .. "\0" .. tostring(id)] then
    self:settle_writes(true)
  end
  local s = self.steps[stage]
  local rec = s and s[cat] and s[cat][id]
  if rec ~= nil then return rec end
  local a = self.at and self.at[stage]
  local off = a and a[cat] and a[cat][id]
  if off == nil then return nil end
  local k = recent_key(stage, cat, id)
  rec = self.recent[k] or self.recent_old[k]
  if rec ~= nil then return rec end
  rec = self:read_step(off, stage, cat, id)
  self:keep_recent(k, rec)   -- a pair's prefetch, request and row ask again soon
  return rec
end

-- Two generations of RECENT records: the older is dropped when the newer fills.
function Run:keep_recent(k, rec)
  if self.recent_n >= RECENT then
    self.recent_old, self.recent, self.recent_n = self.recent, {}, 0
  end
  self.recent[k] = rec
  self.recent_n = self.recent_n + 1
end

function Run:record(stage, cat, id, tbl)
  if self.journal then
    local f = self:journal_reader()   -- opened before the first append: jend is where that line starts
    local ok, err = self.journal:record(stage, cat, id, tbl)
    if ok == nil and err then
      self.journal_failed = true
      stop(("journal: %s"):format(err))
    end
    if f then
      -- the line just appended starts at the journal's previous end
      local a = self.at[stage] or {}
      self.at[stage] = a
      a[cat] = a[cat] or {}
      a[cat][id] = self.jend
      self.jend = f:seek("end")
      local s = self.steps[stage]
      if s and s[cat] then s[cat][id] = nil end   -- a replayed record redone here
      local k = recent_key(stage, cat, id)
      self.recent_old[k] = nil   -- an older record of the same step must not come back
      self:keep_recent(k, tbl)
      return tbl
    end
  end
  self:remember(stage, cat, id, tbl)
  return tbl
end

------------------------------------------------------------------------
-- Pairs and steps.
------------------------------------------------------------------------

-- The pairs of a category this process handles (evalhost.shard's split).
function Run:pairs(cat)
  local it, st, ctl = self.dataset:pairs(cat)
  local split = self.split
  return function()
    while true do
      local i, pair = it(st, ctl)
      ctl = i
      if i == nil then return nil end
      if split:owns(cat, i) then return i, pair end
    end
  end
end

function Run:count(cat)
  return self.split:size(cat)
end


-- Records a pair's failure; `info` is a model call's third value
-- ({code=, whole=}), kept so that --resume retries network failures.
function Run:fail(stage, cat, pair, failed_stage, err, info)
  local id = pair_id(pair)
  log("warn", "[%s] %s: %s failed: %s (%s)", cat, id, failed_stage, tostring(err), self.dataset_path)
  local code = type(info) == "table" and info.code or nil
  return self:record(stage, cat, id, { error = tostring(err), stage = failed_stage, code = code })
end

-- Runs fn(pair) over a category's pairs under a progress bar; the next
-- pair's original decodes on the reader's thread while fn's model call runs.
-- The pairs stream from the dataset with one of lookahead: no list of a
-- category's pairs is held (flat memory).
function Run:each(cat, label, fn)
  local bar = util.host().progress(("[%s] %s"):format(cat, label), self:count(cat))
  local it = self:pairs(cat)
  local _, nxt = it()
  local first = true
  while nxt ~= nil do
    local pair = nxt
    _, nxt = it()
    base.check_interrupt()   -- a stop signal: stop after the item under way
    if first then self:prefetch_original(cat, pair) end
    first = false
    if nxt ~= nil then self:prefetch_original(cat, nxt) end
    fn(pair)
    self:forget_original(cat, pair)
    bar:tick()
  end
  bar:close()
end

-- A category's pairs as a list read on demand (list[i], #list): entries
-- are pulled from the dataset as they are asked for and dropped `keep`
-- behind the furthest one, so scoring holds a window of pairs, not the
-- category (callers read list[i] in order, looking at most keep/2 ahead).
function Run:pair_window(cat, keep)
  local it, n = self:pairs(cat), self:count(cat)
  local got, hi = {}, 0
  return setmetatable({}, {
    __len = function() return n end,
    __index = function(_, i)
      if type(i) ~= "number" then return nil end
      while hi < i do
        local _, pair = it()
        if pair == nil then
          n = hi   -- fewer than counted: the list ends here
          return nil
        end
        hi = hi + 1
        got[hi] = pair
        got[hi - keep] = nil
      end
      return got[i]
    end,
  })
end

-- Where a pair's edited image lives inside the run folder: one rule for
-- writing it, for reusing it and for trusting a replayed journal's path.
-- A long id or category becomes a prefix and a hash (util.file_stem); the
-- journal records the path, so a report finds the file whatever its name.
function Run.image_rel(_, cat, id)   -- self unused: the rule depends on the names only
  return util.join("images", util.file_stem(cat), util.file_stem(tostring(id)) .. ".png")
end

-- Edit one pair and save the result; true when an edited image exists.
function Run:edit(cat, pair)
  local h = util.host()
  local id = pair_id(pair)
  local rec = self:done("edit", cat, id)
  if rec then return rec.error == nil end
  if pair.error then return self:fail("edit", cat, pair, "data", pair.error) and false end
  local okid, why = util.safe_component(pair.id)
  if not okid then return self:fail("edit", cat, pair, "data", "id: " .. why) and false end
  local input = self:input_hash(cat, pair)
  if self.reuse and self:reuse_edit(cat, id, input) then return true end

  local img, err = self:original(cat, pair)
  if not img then return self:fail("edit", cat, pair, "data", err) and false end
  local editor
  editor, err = self:model("editor")
  if not editor then
    img:close()
    return self:fail("edit", cat, pair, "edit", err) and false
  end
  local more, more_err = self:more_images(pair)
  if not more then
    img:close()
    return self:fail("edit", cat, pair, "data", more_err) and false
  end
  local t0 = h.clock()
  local edited, info
  edited, err, info = editor:edit(#more > 0 and { img, table.unpack(more) } or img, pair.instruction)
  local dt = h.clock() - t0
  img:close()
  for _, m in ipairs(more) do m:close() end
  -- the call failed as a whole (server down, out of memory): nothing is
  -- recorded for the pair, the run stops resumably
  if not edited and type(info) == "table" and info.whole then
    stop(base.prefixed(self.sections.editor, err))
  end
  self:note_call("editor", nil, not edited and info or nil, err)   -- out of memory twice in a row: stop
  if not edited then return self:fail("edit", cat, pair, "edit", err, info) and false end
  self.timings.edit_seconds = self.timings.edit_seconds + dt
  self.timings.edited = self.timings.edited + 1

  local rel = self:image_rel(cat, id)
  local dir = util.join(self.out, util.dirname(rel))
  if not self.made_dirs[dir] then
    local ok, merr = h.fs.mkdir_beneath(self.out, util.dirname(rel))
    if not ok then
      edited:close()
      stop(("cannot create %s: %s"):format(dir, tostring(merr)))
    end
    self.made_dirs[dir] = true
  end
  local path = util.join(self.out, rel)
  local w = self:writer()
  if w then
    local ok, serr = w:submit(edited, path)
    edited:close()
    if not ok then stop(("cannot save the edit of %s/%s: %s"):format(cat, id, tostring(serr))) end
    self.writing[path] = { cat = cat, id = id, rec = { image = rel, seconds = dt, input = input } }
    self.writing_ids[cat .. "\0" .. tostring(id)] = true
    self:settle_writes(false)
    return true
  end
  local ok, serr = edited:save(path)
  edited:close()
  -- never journaled as the pair's failure: a full disk is not the pair's fault
  if not ok then stop(("cannot save the edit of %s/%s: %s"):format(cat, id, tostring(serr))) end
  -- The hash lets a resumed run check the file it relies on (issue 8).
  self:record("edit", cat, id, { image = rel, seconds = dt, hash = h.hash_file(util.join(self.out, rel)),
    input = input })
  return true
end

local function valid_score(res, range)
  if type(res) ~= "table" then return nil, "judge returned no result" end
  local s = res.score
  if type(s) ~= "number" or s ~= s then return nil, "judge reply has no score" end
  if s < range[1] or s > range[2] then
    return nil, ("judge score %s is outside %s..%s"):format(tostring(s), tostring(range[1]), tostring(range[2]))
  end
  return s
end

-- Score one edited pair; true when it has a score.
-- The judge's request for a pair, or nil and true/false when there is
-- nothing to score (true: a score exists). The request owns two Images
-- that settle_score closes.
function Run:score_request(cat, pair)
  local id = pair_id(pair)
  local rec = self:done(self.score_stage, cat, id)
  if rec then return nil, rec.error == nil end
  local e = self:done("edit", cat, id)
  if e == nil or e.error then return nil, false end -- nothing to score; the edit's failure is recorded

  local system, user = self.prompts:render(cat, pair)
  if not system then return nil, self:fail(self.score_stage, cat, pair, "prompt", user) and false end
  local edited, err = self:load_edited(util.join(self.out, e.image), e.image)
  if not edited then
    return nil, self:fail(self.score_stage, cat, pair, "score", "edited image: " .. tostring(err)) and false
  end
  local original
  original, err = self:original(cat, pair)
  if not original then
    edited:close()
    return nil, self:fail(self.score_stage, cat, pair, "data", err) and false
  end
  if self.profile_requests then return self:profile_group(cat, pair, edited, original) end
  return {
    image = edited, original = original, instruction = pair.instruction,
    description = pair.description, system_prompt = system, user_prompt = user,
    category = cat, id = id,
  }
end

-- Records the judge's answer to a request (res, or nil + err + info) and
-- closes its images; true when the pair has a score.
function Run:settle_score(cat, pair, req, res, err, info, dt)
  req.image:close()
  req.original:close()
  if not res and type(info) == "table" and info.whole then
    stop(base.prefixed(self.sections.judge, err))
  end
  if not res then return self:fail(self.score_stage, cat, pair, "score", err, info) and false end
  local score
  self.score_range = self.score_range or records.score_range(self.config, self.sections.judge)
  score, err = valid_score(res, self.score_range)
  if not score then return self:fail(self.score_stage, cat, pair, "score", err) and false end
  local dims
  if self.profile_parse then
    -- the benchmark's own rule turns the reply's ratings into the pair's score
    score, dims = self.profile_parse(res.text, cat, pair)
    if not score then return self:fail(self.score_stage, cat, pair, "score", dims) and false end
  end
  self.timings.score_seconds = self.timings.score_seconds + dt
  self.timings.scored = self.timings.scored + 1
  -- how the score was obtained (issue 19): the backend says; a profile's
  -- parser reads the text; a distribution without a word is an expectation
  local method = self.profile_parse and "text" or res.score_method or (res.probs and "logprobs" or "text")
  self:record(self.score_stage, cat, pair_id(pair), { score = score, text = res.text, seconds = dt, dims = dims,
    score_method = method, probs = res.probs, argmax = res.argmax })
  return true
end

------------------------------------------------------------------------
-- A benchmark's own protocol (issue 25): a profile with requests(ctx) asks
-- the judge several times per pair, each request with its own prompt and
-- pictures in the benchmark's order; combine(replies, ctx) turns the replies
-- into the pair's score. The group is one pair: batched with the others,
-- journaled once its replies are combined (a resumed run asks again).
------------------------------------------------------------------------

local function close_group(g)
  g.image:close()
  g.original:close()
  for _, img in ipairs(g.owned) do img:close() end
end

-- What a profile sees of a pair: its pictures, fields and helpers.
function Run:profile_ctx(cat, pair, edited, original)
  local owned = {}
  return {
    category = cat, id = pair_id(pair), pair = pair, instruction = pair.instruction,
    edited = edited, original = original, state = self.profile_state, owned = owned,
    -- an Image the profile made (resized, a reference picture): closed with the group
    own = function(_, img) owned[#owned + 1] = img; return img end,
  }
end

function Run:profile_group(cat, pair, edited, original)
  local ctx = self:profile_ctx(cat, pair, edited, original)
  local parts, why = self.profile_requests(ctx)
  local g = { image = edited, original = original, owned = ctx.owned, ctx = ctx, parts = {}, names = {} }
  if not parts then
    close_group(g)
    return nil, self:fail(self.score_stage, cat, pair, "data", why) and false
  end
  for k, p in ipairs(parts) do
    g.names[k] = p.name
    g.parts[k] = {
      images = p.images, image = p.images[#p.images], user_prompt = p.text, system_prompt = p.system,
      text_first = p.text_first, text_only = true, jpeg_quality = p.jpeg_quality,
      messages = p.messages,   -- a layout with text between the pictures (KRIS-Bench's labels)
      instruction = pair.instruction, category = cat, id = ctx.id,
    }
  end
  return g
end

-- The judge's replies to a group (results[k] for parts[k]; nil with err,
-- info when the whole call failed); true when the pair has a score.
function Run:settle_group(cat, pair, g, results, err, info, dt)
  close_group(g)
  if not results and type(info) == "table" and info.whole then
    stop(("%s: %s"):format(self.sections.judge, tostring(err)))
  end
  if not results then return self:fail(self.score_stage, cat, pair, "score", err, info) and false end
  local replies = {}
  for k, name in ipairs(g.names) do
    local r = results[k]
    if r.error then
      return self:fail(self.score_stage, cat, pair, "score", ("%s: %s"):format(name, r.error), { code = r.code }) and false
    end
    replies[name] = r.text
  end
  local score, dims, official = self.profile_combine(replies, g.ctx)
  local text = {}
  for _, name in ipairs(g.names) do text[#text + 1] = ("[%s]\n%s"):format(name, replies[name]) end
  text = table.concat(text, "\n\n")
  if not score then
    -- the benchmark's parser found no rating: ours is a failure; `official`
    -- keeps what the official code would count instead (the report shows both)
    log("warn", "[%s] %s: score failed: %s (%s)", cat, g.ctx.id, tostring(dims), self.dataset_path)
    self:record(self.score_stage, cat, g.ctx.id, { error = tostring(dims), stage = "score", text = text,
      official = official, replies = replies })
    return false
  end
  self.timings.score_seconds = self.timings.score_seconds + dt * #g.parts
  self.timings.scored = self.timings.scored + 1
  self:record(self.score_stage, cat, g.ctx.id, { score = score, text = text, seconds = dt * #g.parts, dims = dims,
    replies = replies })
  return true
end

-- Score one edited pair; true when it has a score.
function Run:score(cat, pair)
  local req, has = self:score_request(cat, pair)
  if not req then return has end
  local judge, err = self:model("judge")
  local res, info
  local t0 = util.host().clock()
  if req.parts then
    if judge then res, err, info = judge:score_batch(req.parts) end
    return self:settle_group(cat, pair, req, res, err, info, (util.host().clock() - t0) / #req.parts)
  end
  if judge then res, err, info = judge:score(req) end
  return self:settle_score(cat, pair, req, res, err, info, util.host().clock() - t0)
end

-- Score a list of pairs through score_batch (one call per batch_size pairs:
-- real batches for torch, requests in flight for http). Calls tick() per pair.
function Run:score_pairs(cat, list, tick)
  self:settle_writes(true)   -- a stage boundary: every edit journaled before its score
  local size = 1
  local m = self.models.judge
  if m and not self.load_errors.judge then size = math.max(1, m:info().batch_size or 1) end
  self:prefetch(cat, list, 1, size)   -- the first batch's images load while its originals decode
  local i = 1
  while i <= #list do
    base.check_interrupt()   -- a stop signal: stop after the batch under way
    -- flat: the judge requests in order (a group's parts one after another);
    -- first[k]: where reqs[k]'s start
    local reqs, owners, flat, first = {}, {}, {}, {}
    while i <= #list and #flat < size do
      local pair = list[i]
      local req = self:score_request(cat, pair)
      if req then
        reqs[#reqs + 1], owners[#owners + 1], first[#reqs + 1] = req, pair, #flat + 1
        for _, part in ipairs(req.parts or { req }) do flat[#flat + 1] = part end
      else
        tick()
      end
      i = i + 1
    end
    if #reqs > 0 then
      self:prefetch(cat, list, i, size)
      local judge, err = self:model("judge")
      local results, info
      local t0 = util.host().clock()
      if judge then results, err, info = judge:score_batch(flat) end
      self:note_call("judge", results, info, err)   -- out of memory twice in a row: stop
      local dt = (util.host().clock() - t0) / #flat
      for k, req in ipairs(reqs) do
        local r = results and results[first[k]]
        if req.parts then
          self:settle_group(cat, owners[k], req, results and table.move(results, first[k], first[k] + #req.parts - 1, 1, {}),
            err, info, dt)
        elseif results and r.error then
          self:settle_score(cat, owners[k], req, nil, r.error, { code = r.code, whole = false }, dt)
        else
          self:settle_score(cat, owners[k], req, r, err, info, dt)
        end
        tick()
      end
    end
  end
  self:drop_prefetched()
end

function Run:edit_all(cat)
  self:each(cat, base.say("编辑图像", "edit"), function(pair) self:edit(cat, pair) end)
end

function Run:score_all(cat)
  local list = self:pair_window(cat, 512)   -- the batch, the prefetch ahead and margin
  local bar = util.host().progress(("[%s] %s"):format(cat, base.say("评分", "score")), #list)
  self:score_pairs(cat, list, function() bar:tick() end)
  bar:close()
  self:log_category(cat)
end

-- The seed's per-category line: mean score, n, failures.
function Run:log_category(cat)
  local xs, failed = {}, 0
  for _, pair in self:pairs(cat) do
    local s = self:done("score", cat, pair_id(pair))
    local e = self:done("edit", cat, pair_id(pair))
    if s and s.score then
      xs[#xs + 1] = s.score
    elseif (s and s.error) or (e and e.error) then
      failed = failed + 1
    end
  end
  log("info", "[%s] %s: %s (n=%d, %s %d)", cat, base.say("平均分", "mean"), util.fmt(stats.mean(xs), 3), #xs,
    base.say("失败", "failed"), failed)
end
