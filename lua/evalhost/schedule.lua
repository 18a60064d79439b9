-- What every schedule shares, so that a script reads as its order of work:
--
--   return schedule.main("two_stage", function(run)
--     for _, cat in ipairs(run.categories) do
--       run:edit_all(cat)      -- the editor is brought onto the GPU here
--       run:score_all(cat)     -- ... and swapped for the judge here
--     end
--   end)
--
-- Residency is lazy: a step asks for its model and the run swaps only when
-- the model on the GPU is the other one, so the order of the script's calls
-- *is* the swap schedule (and a step skipped on resume costs no swap).
--
-- Every "is this step done?" goes through Run:done and every result through
-- Run:record. Without a journal (evalhost.journal absent) results live in
-- memory only; with one, both also go to the journal, so resume stays local
-- to these two functions.
local util = require "evalhost.util"
local prompts_mod = require "evalhost.prompts"
local stats = require "evalhost.stats"
local report = require "evalhost.report"
local runkey = require "evalhost.runkey"
local shard_mod = require "evalhost.shard"

local schedule = {}

local ROLES = {
  editor = { "editor", "diffusion_model" },
  judge = { "judge", "reward_model" },
}
local KEEP_BOTH = { auto = true, [true] = true, [false] = true }
-- Free memory must exceed the second model's footprint by this factor before
-- "auto" keeps both models resident (activations, fragmentation).
local FIT_HEADROOM = 1.10

local Run = {}
Run.__index = Run

local function log(level, fmt, ...) util.host().log(level, fmt, ...) end

local function banner(text)
  log("info", "%s", ("="):rep(60))
  log("info", "%s", text)
  log("info", "%s", ("="):rep(60))
end
schedule.banner = banner

local function as_list(v)
  if v == nil then return nil end
  if type(v) == "table" then return v end
  return { v }
end

-- The first section present among a role's names: section name, table.
local function find_section(cfg, role)
  for _, name in ipairs(ROLES[role]) do
    if cfg[name] ~= nil then return name, cfg[name] end
  end
  return nil
end

------------------------------------------------------------------------
-- Setting up: config, output folder, dataset, prompts, models.
------------------------------------------------------------------------

local function open_dataset(run, cfg)
  local h = util.host()
  local dcfg = cfg.dataset or {}
  local bench = cfg.benchmark or {}
  local path = bench.data_path or dcfg.path
  if type(path) ~= "string" then
    return nil, "config: no dataset path (benchmark.data_path or dataset.path)"
  end
  local opts = {}
  for k, v in pairs(dcfg) do
    if k ~= "path" and k ~= "adapter" and k ~= "profile" and k ~= "more_images" then opts[k] = v end
  end
  local ds, err
  if dcfg.adapter ~= nil then
    -- another benchmark's layout read by a Lua adapter (lua/evalhost/datasets/)
    local ADAPTERS = { imgedit = true, kris = true, rise = true, gedit = true }
    if not ADAPTERS[dcfg.adapter] then
      return nil, ("config: dataset.adapter must be imgedit, kris, rise or gedit, got %s"):format(tostring(dcfg.adapter))
    end
    ds, err = require("evalhost.datasets." .. dcfg.adapter).open(path, opts)
  else
    ds, err = h.dataset.open(path, opts)
  end
  if not ds then return nil, err end
  run.dataset, run.dataset_path = ds, path
  return true
end

-- benchmark.categories, in the config's order; unknown or unsafe names become
-- failure lines and are skipped.
local function select_categories(run, cfg)
  local have, known = {}, run.dataset:categories()
  for _, c in ipairs(known) do have[c] = true end
  local wanted = as_list((cfg.benchmark or {}).categories) or known
  local out, seen = {}, {}
  for _, c in ipairs(wanted) do
    c = tostring(c)
    local ok, why = util.safe_component(c)
    local err
    if not have[c] then
      err = ("unknown category %q (not in %s; it has: %s)"):format(c, run.dataset_path, table.concat(known, ", "))
    elseif not ok then
      err = ("category %q cannot name an output folder: %s"):format(c, why)
    end
    if err then
      log("error", "%s", err)
      run.failures[#run.failures + 1] = { category = c, stage = "data", error = err }
    elseif not seen[c] then
      out[#out + 1], seen[c] = c, true
    end
  end
  run.categories = out
end

local function open_models(run, cfg, roles)
  local h = util.host()
  for _, role in ipairs(roles) do
    local section, spec = find_section(cfg, role)
    if not section then
      return nil, ("config: no %s section (%s)"):format(role, table.concat(ROLES[role], " or "))
    end
    local m, err = h.model.open(spec, section)
    if not m then
      err = tostring(err)
      -- model errors already start with the section's name
      if err:sub(1, #section + 2) ~= section .. ": " then err = section .. ": " .. err end
      return nil, "config: " .. err
    end
    run.models[role] = m
    run.sections[role] = section
  end
  return true
end

-- A file-system failure that must stop the run without recording anything
-- against a pair (disk full, read-only folder): every finished step is in
-- the journal, so the same command with --resume continues.
local Stop = {}
Stop.__tostring = function(e) return e.msg end
local function stop(msg) error(setmetatable({ msg = msg }, Stop), 0) end
schedule.stop = stop

-- Checks the edited images a replayed run relies on; a missing or changed
-- file drops its edit (and the score made from it), so both are redone.
local function verify_images(run)
  local h = util.host()
  local redo = 0
  for cat, recs in pairs(run.steps.edit or {}) do
    for id, rec in pairs(recs) do
      if type(rec) == "table" and rec.image and not rec.error then
        local path = util.join(run.out, rec.image)
        -- only the path Run:edit writes is trusted: a journal naming "../x" or "/etc/x" is never read
        local own = rec.image == util.join("images", cat, tostring(id) .. ".png")
        local got = own and h.hash_file(path) or nil
        if got == nil or (rec.hash ~= nil and got ~= rec.hash) then
          log("warn", "resume: %s %s; redoing the edit of %s/%s", path, not own and "is not where this run keeps its images"
            or got and "does not match its recorded hash" or "is missing", cat, id)
          recs[id] = nil
          local s = run.steps.score and run.steps.score[cat]
          if s then s[id] = nil end
          redo = redo + 1
        end
      end
    end
  end
  return redo
end

-- The journal (issue 8): refuses a folder of another run, replays a killed one.
local function open_journal(run)
  local h = util.host()
  local J = rawget(h, "journal")
  if J == nil then
    if (h.options or {}).resume ~= "no" and (h.options or {}).resume ~= nil then
      log("warn", "--resume: this host has no journal; starting from the beginning")
    end
    return true
  end
  local j, err, old = J.open(run.out, run.run_key, { header = {
    parts = run.key_parts, config = run.key_config, script_path = rawget(h, "script_path"),
    schedule = run.name, dataset_path = run.dataset_path, started = run.started,
    shard = { index = run.shard.index, count = run.shard.count },
  } })
  if not j then
    if old then err = runkey.explain(util.join(run.out, J.file), old, run.key_parts, run.key_config, run.shard) end
    return nil, err
  end
  run.journal = j
  if j:is_new() then return true end
  local entries = j:entries()
  for _, e in ipairs(entries) do
    local rec = e.record
    -- a network failure is the server's, not the pair's: retried on resume
    if not (type(rec) == "table" and rec.error and rec.code == "ENET") then
      run:remember(e.stage, e.category, e.id, rec)
    end
  end
  local redo = verify_images(run)
  log("info", "resume: %s: %d finished step(s) replayed%s", j:path(), #entries,
    redo > 0 and (", %d edit(s) to redo"):format(redo) or "")
  return true
end

local function run_key(run, cfg)
  local h = util.host()
  local key, parts, filtered = runkey.compute({
    config = cfg, dataset_hash = run.dataset_hash, script_path = rawget(h, "script_path"),
    version = h.version, shard = run.shard,
  })
  run.key_parts, run.key_config = parts, filtered
  return key
end

-- Everything a run needs, or nil and a config/data message (exit 1).
function schedule.start(name, opts)
  opts = opts or {}
  local h = util.host()
  local cfg = h.config or {}
  local runcfg = cfg.run or {}
  local repcfg = cfg.report or {}
  local run = setmetatable({
    name = name,
    config = cfg,
    out = runcfg.out or "outputs",
    models = {},
    sections = {},
    steps = {},
    failures = {},
    load_errors = {},
    timings = { edit_seconds = 0.0, score_seconds = 0.0, edited = 0, scored = 0 },
    started = os.date("!%Y-%m-%dT%H:%M:%SZ"),
    t0 = h.clock(),
    made_dirs = {},
    shard = h.shard and h.shard() or { index = 0, count = 1 },
    aggregate = repcfg.aggregate or "pairs",
    bootstrap = repcfg.bootstrap or {},
    html = repcfg.html ~= false,
    score_stage = "score",   -- judge_repeat scores the same pairs under other stage names
    sources = {},            -- earlier runs this one took edits or scores from (report.sources)
  }, Run)

  local keep = runcfg.keep_both
  if keep == nil then keep = "auto" end
  if not KEEP_BOTH[keep] then
    return nil, ("config: run.keep_both must be auto, true or false, got %s"):format(tostring(keep))
  end
  run.keep_both = keep
  if run.aggregate ~= "pairs" and run.aggregate ~= "categories" then
    return nil, ("config: report.aggregate must be pairs or categories, got %s"):format(tostring(run.aggregate))
  end

  local ok, err = open_dataset(run, cfg)
  if not ok then return nil, err end
  -- an adapter's path may be a folder: it hashes what it read itself
  run.dataset_hash = run.dataset.adapter and run.dataset:hash() or h.hash_file(run.dataset_path)
  -- an adapter's scoring profile: its prompt unless the config names templates
  -- or a file, its aggregation unless report.aggregate is set, its reply parser
  local pcfg = cfg.prompts
  if run.dataset.adapter then
    run.profile = require("evalhost.datasets." .. run.dataset.adapter).profile
    if repcfg.aggregate == nil then run.aggregate = run.profile.aggregate or run.aggregate end
    if run.profile.template and (type(pcfg) ~= "table" or (pcfg.templates == nil and pcfg.file == nil)) then
      pcfg = { language = type(pcfg) == "table" and pcfg.language or nil, templates = { default = run.profile.template } }
    end
  end
  select_categories(run, cfg)

  local p
  p, err = prompts_mod.load(pcfg)
  if not p then return nil, err end
  run.prompts = p

  ok, err = open_models(run, cfg, opts.models or { "editor", "judge" })
  if not ok then return nil, err end
  -- the builtin judge reads no prompt, so a profile's ratings cannot come from it
  local jm = run.models.judge
  if run.profile and (cfg.dataset or {}).profile ~= false and not (jm and jm:info().backend == "builtin") then
    run.profile_parse = run.profile.from_text
  end
  if run.sections.editor then
    run.editor_hash = h.hash(util.canonical(runkey.filter(cfg)[run.sections.editor] or {}))
  end
  if runcfg.reuse_edits_from ~= nil then
    local src
    src, err = require("evalhost.runs").open(tostring(runcfg.reuse_edits_from))
    if not src then return nil, ("config: run.reuse_edits_from: %s"):format(err) end
    run.reuse = src
    run.sources[#run.sources + 1] = { role = "reuse_edits_from", dir = src.dir, run_key = src.run_key }
  end

  -- Shards (issue 8): a balanced split of each category, a folder of their own.
  run.split = shard_mod.new(run.dataset, run.shard.index, run.shard.count)
  run.out = shard_mod.folder(run.out, run.shard.index, run.shard.count)
  run.run_key = run_key(run, cfg)
  -- The journal first: it decides whether an existing output folder may be reused.
  ok, err = open_journal(run)
  if not ok then return nil, err end
  -- mkdir_beneath: a symlink planted in the output folder is refused, not followed
  local mk, merr = h.fs.mkdir_beneath(run.out, "results")
  if not mk then return nil, ("output: cannot create %s: %s"):format(run.out, tostring(merr)) end
  return run
end

------------------------------------------------------------------------
-- The two functions every step goes through (resume lives here).
------------------------------------------------------------------------

-- Store a step's result in memory only (used by replay and by record).
function Run:remember(stage, cat, id, tbl)
  local s = self.steps[stage] or {}
  self.steps[stage] = s
  s[cat] = s[cat] or {}
  s[cat][id] = tbl
end

-- The record of a finished step, or nil when it still has to run. An edit
-- whose image is still being saved is waited for: it is done only once
-- journaled.
function Run:done(stage, cat, id)
  if stage == "edit" and self.writing_ids and self.writing_ids[cat .. "\0" .. tostring(id)] then
    self:settle_writes(true)
  end
  local s = self.steps[stage]
  return s and s[cat] and s[cat][id] or nil
end

function Run:record(stage, cat, id, tbl)
  if self.journal then
    local ok, err = self.journal:record(stage, cat, id, tbl)
    if ok == nil and err then
      self.journal_failed = true
      stop(("journal: %s"):format(err))
    end
  end
  self:remember(stage, cat, id, tbl)
  return tbl
end

-- Edited images are saved by evalhost.image_writer's thread (encode, fsync,
-- rename) while the next pair is edited. An edit is journaled only from its
-- write's result, so still after its file is durable (SPEC §6); a kill loses
-- at most the writes in flight, redone on resume. `run.writes_in_flight`
-- (default 1: a kill loses the pair being edited and at most one being
-- saved) trades that for more overlap on fast editors.
-- nil on a host without the writer: Run:edit then saves in line.
function Run:writer()
  if self.image_writer == nil then
    local IW = rawget(util.host(), "image_writer")
    local n = math.tointeger((util.host().config.run or {}).writes_in_flight) or 1
    self.image_writer = IW and IW.new({ in_flight = math.max(1, math.min(n, 64)) }) or false
    self.writing, self.writing_ids = {}, {}
  end
  return self.image_writer or nil
end

-- Journals the edits whose images are saved (wait: all submitted ones), in
-- submission order. A failed save stops the run as an in-line save would,
-- once the saves that succeeded are journaled; on_stop: the run is stopping
-- already, failures are left for resume to redo.
function Run:settle_writes(wait, on_stop)
  local w = self.image_writer
  if not w or next(self.writing) == nil then return end
  local failed
  for _, r in ipairs(wait and w:flush() or w:collect()) do
    local p = self.writing[r.path]
    self.writing[r.path] = nil
    self.writing_ids[p.cat .. "\0" .. tostring(p.id)] = nil
    if r.error then
      failed = failed or ("cannot save the edit of %s/%s: %s"):format(p.cat, p.id, r.error)
    else
      p.rec.hash = r.hash   -- of the bytes written: lets a resumed run check the file (issue 8)
      self:record("edit", p.cat, p.id, p.rec)
    end
  end
  if failed and not on_stop then stop(failed) end
end

------------------------------------------------------------------------
-- Models and the GPU.
------------------------------------------------------------------------

local function cuda_device(info)
  local d = info and info.device
  if type(d) ~= "string" then return nil end
  if d == "cuda" then return "cuda:0" end
  if d:match("^cuda:%d+$") then return d end
  return nil
end

-- May `role` join the model already on the device without a swap?
function Run:fits_beside(role, other)
  if self.keep_both == true then return true end
  if self.keep_both == false then return false end
  local a, b = self.models[role], self.models[other]
  local da, db = cuda_device(a:info()), cuda_device(b:info())
  if not da or da ~= db then return false end
  local mem = util.host().gpu.memory(tonumber(da:match("%d+$")))
  local need = (a:footprint() or 0) * FIT_HEADROOM
  local fits = mem and mem.free and mem.free >= need
  log("info", "keep_both=auto: %s needs %.2f GB, %.2f GB free on %s: %s", role, need / 2 ^ 30,
    (mem and mem.free or 0) / 2 ^ 30, da, fits and "keeping both resident" or "swapping")
  return fits
end

-- The model for `role`, on the device; nil and a message when it cannot load.
function Run:model(role)
  local m = self.models[role]
  if m == nil then error(("schedule: no %s model opened for this run"):format(role), 2) end
  if self.load_errors[role] then return nil, self.load_errors[role] end
  if m:state() == "device" then return m end
  for other, om in pairs(self.models) do
    if other ~= role and om:state() == "device" then
      if self.resident_both == nil then self.resident_both = self:fits_beside(role, other) end
      if not self.resident_both then om:unload() end
    end
  end
  local ok, err, info = m:load()
  if ok == nil and type(info) == "table" and info.code == "ENET" then
    -- a server that does not wake up is not every pair's failure: stop, resumable
    stop(("%s: load failed: %s"):format(self.sections[role], tostring(err)))
  end
  if ok == nil and err then
    self.load_errors[role] = ("%s: load failed: %s"):format(self.sections[role], tostring(err))
    log("error", "%s", self.load_errors[role])
    return nil, self.load_errors[role]
  end
  return m
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

local function pair_id(pair) return pair.id or ("#" .. tostring(pair.index)) end

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
function Run:each(cat, label, fn)
  local bar = util.host().progress(("[%s] %s"):format(cat, label), self:count(cat))
  local list = {}
  for _, pair in self:pairs(cat) do list[#list + 1] = pair end
  for i, pair in ipairs(list) do
    if i == 1 then self:prefetch_original(cat, pair) end
    if list[i + 1] then self:prefetch_original(cat, list[i + 1]) end
    fn(pair)
    self:forget_original(cat, pair)
    bar:tick()
  end
  bar:close()
end

-- What an edit depends on in the data, as a hash: the pair's image field as
-- written in the file (a file named by path: its bytes), its instruction, id
-- and category. Cheap (no decode), so every edit record carries it and any run
-- can later serve as run.reuse_edits_from.
local IMAGE_FIELDS = { "original_image_b64", "image", "image_b64", "image_path" }

-- A dataset's image string that names a file (not base64, not a data: URL):
-- its path, beside the dataset file unless absolute; nil otherwise.
function Run:image_file(v)
  if type(v) ~= "string" or #v >= 4096 or v:find("^data:") then return nil end
  return util.is_absolute(v) and v or util.join(util.dirname(self.dataset_path), v)
end

-- What an input image adds to the input hash: a named file's bytes, else
-- the string as written.
function Run:image_digest(v)
  local h = util.host()
  local path = self:image_file(v)
  local fh = path and h.hash_file(path)
  if fh then v = "file:" .. fh end
  return type(v) == "string" and h.hash(v) or "none"
end

function Run:input_hash(cat, pair)
  local h = util.host()
  local want = (self.config.dataset or {}).image
  local v
  if type(pair.field) == "function" then
    for _, f in ipairs(want and { want } or IMAGE_FIELDS) do
      v = pair:field(f)
      if v ~= nil then break end
    end
  end
  if v == nil then v = pair.image_path end
  local more = self:more_images_field(pair)
  if type(more) == "table" then
    local digests = {}
    for i, m in ipairs(more) do digests[i] = self:image_digest(m) end
    more = digests
  end
  -- 64 bits are plenty to tell inputs apart and keep each journal line short
  return h.hash(util.canonical({ category = cat, id = pair.id, instruction = pair.instruction,
    image = self:image_digest(v),
    more_images = more ~= nil and h.hash(util.canonical(more)) or nil })):sub(1, 16)
end

-- dataset.more_images names a pair field holding the edit's further input
-- pictures (Qwen-Image-Edit-2509/2511's "Picture 2", ...): a list of base64
-- images, data: URLs, or paths beside the dataset file. Its raw value, or
-- nil when the config names none or the pair has none.
function Run:more_images_field(pair)
  local field = (self.config.dataset or {}).more_images
  if type(field) ~= "string" or type(pair.field) ~= "function" then return nil end
  local v = pair:field(field)
  if v == nil or v == (util.host().json or {}).null then return nil end
  return v
end

-- The further input pictures decoded: a list (maybe empty), or nil, err
-- naming the field and the entry.
function Run:more_images(pair)
  local v = self:more_images_field(pair)
  if v == nil then return {} end
  local field = self.config.dataset.more_images
  if type(v) ~= "table" then return nil, ("%s must be a list of images"):format(field) end
  local h, out = util.host(), {}
  local function fail(msg)
    for _, img in ipairs(out) do img:close() end
    return nil, msg
  end
  for i, s in ipairs(v) do
    if type(s) ~= "string" then return fail(("%s[%d] is not a string"):format(field, i)) end
    local img, err
    local path = self:image_file(s)
    if path then
      img, err = h.image.load(path)
    else
      img, err = h.image.decode_b64(s)
    end
    if not img then return fail(("%s[%d]: %s"):format(field, i, tostring(err))) end
    out[i] = img
  end
  return out
end

-- Takes the edit of (cat, id) from run.reuse_edits_from when its input hash
-- and that run's editor config (from its journal header) match this run's: the image is copied (hash-checked) and the
-- step recorded as this run's, with where it came from. True when reused.
function Run:reuse_edit(cat, id, input)
  local h = util.host()
  local src = self.reuse
  local rec = src:step("edit", cat, id)
  if src.editor_hash == nil then
    -- the source's editor section from its journal header (the run key's filtered config)
    local hc = type(src.header) == "table" and type(src.header.config) == "table" and src.header.config or {}
    local sec = hc.editor
    if sec == nil then sec = hc.diffusion_model end
    src.editor_hash = h.hash(util.canonical(sec or {}))
  end
  if not (rec and rec.image and not rec.error and rec.input == input and src.editor_hash == self.editor_hash) then
    return false
  end
  local bytes = h.fs.read(util.join(src.dir, rec.image))
  if not bytes or (rec.hash and h.hash(bytes) ~= rec.hash) then
    log("warn", "[%s] %s: %s changed since that run; editing again", cat, id, util.join(src.dir, rec.image))
    return false
  end
  local rel = util.join("images", cat, id .. ".png")
  local ok, err = h.fs.mkdir_beneath(self.out, util.join("images", cat))
  if ok then ok, err = h.fs.write(util.join(self.out, rel), bytes) end
  if not ok then stop(("cannot save the edit of %s/%s: %s"):format(cat, id, tostring(err))) end
  self.timings.reused = (self.timings.reused or 0) + 1
  self:record("edit", cat, id, { image = rel, seconds = rec.seconds, hash = rec.hash, input = input,
    from = { run = src.dir, run_key = src.run_key } })
  return true
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
    stop(("%s: %s"):format(self.sections.editor, tostring(err)))
  end
  if not edited then return self:fail("edit", cat, pair, "edit", err, info) and false end
  self.timings.edit_seconds = self.timings.edit_seconds + dt
  self.timings.edited = self.timings.edited + 1

  local dir = util.join(self.out, "images", cat)
  if not self.made_dirs[dir] then
    local ok, merr = h.fs.mkdir_beneath(self.out, util.join("images", cat))
    if not ok then
      edited:close()
      stop(("cannot create %s: %s"):format(dir, tostring(merr)))
    end
    self.made_dirs[dir] = true
  end
  local rel = util.join("images", cat, id .. ".png")
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

local function valid_score(res)
  if type(res) ~= "table" then return nil, "judge returned no result" end
  local s = res.score
  if type(s) ~= "number" or s ~= s then return nil, "judge reply has no score" end
  if s < 0 or s > 10 then return nil, ("judge score %s is outside 0..10"):format(tostring(s)) end
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
  local edited, err = self:load_edited(util.join(self.out, e.image))
  if not edited then
    return nil, self:fail(self.score_stage, cat, pair, "score", "edited image: " .. tostring(err)) and false
  end
  local original
  original, err = self:original(cat, pair)
  if not original then
    edited:close()
    return nil, self:fail(self.score_stage, cat, pair, "data", err) and false
  end
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
    stop(("%s: %s"):format(self.sections.judge, tostring(err)))
  end
  if not res then return self:fail(self.score_stage, cat, pair, "score", err, info) and false end
  local score
  score, err = valid_score(res)
  if not score then return self:fail(self.score_stage, cat, pair, "score", err) and false end
  local dims
  if self.profile_parse then
    -- the benchmark's own rule turns the reply's ratings into the pair's score
    score, dims = self.profile_parse(res.text, cat, pair)
    if not score then return self:fail(self.score_stage, cat, pair, "score", dims) and false end
  end
  self.timings.score_seconds = self.timings.score_seconds + dt
  self.timings.scored = self.timings.scored + 1
  self:record(self.score_stage, cat, pair_id(pair), { score = score, text = res.text, seconds = dt, dims = dims })
  return true
end

-- Score one edited pair; true when it has a score.
function Run:score(cat, pair)
  local req, has = self:score_request(cat, pair)
  if not req then return has end
  local judge, err = self:model("judge")
  local res, info
  local t0 = util.host().clock()
  if judge then res, err, info = judge:score(req) end
  return self:settle_score(cat, pair, req, res, err, info, util.host().clock() - t0)
end

-- The reader: a thread that loads the edited images the next batch scores
-- and decodes the next pairs' originals while a model works. Made on first
-- use, remade (empty) when a caller needs room for more in flight; false
-- where the host has no image_writer.
function Run:get_reader(in_flight)
  in_flight = math.min(in_flight, 64)
  if self.reader and self.reader_room < in_flight then
    self:drop_prefetched()
    self.reader:close()
    self.reader = nil
  end
  if self.reader == nil then
    local IW = rawget(util.host(), "image_writer")
    self.reader = IW and IW.new({ in_flight = in_flight }) or false
    self.reader_room = in_flight
    self.loading, self.prefetched = {}, {}
  end
  return self.reader
end

-- Takes key's prefetched Image (waiting only for the jobs queued before
-- it), or nil when it was never queued or failed.
function Run:take_prefetched(key)
  while self.loading and self.loading[key] do self:take_loads(false, true) end
  local img = self.prefetched and self.prefetched[key]
  if img then self.prefetched[key] = nil end
  return img
end

-- An edited image for scoring: the one prefetched on the reader's thread
-- (waited for when still loading), else loaded here.
function Run:load_edited(path)
  local img = self:take_prefetched(path)
  if img then return img end
  return util.host().image.load(path)   -- both values: an error names the file
end

local function original_key(cat, pair) return "<original>/" .. cat .. "/" .. pair_id(pair) end

-- Queues the decode of pair's original when a step of this run will want it
-- (its edit, or its score after a good edit).
function Run:prefetch_original(cat, pair)
  if type(pair) ~= "table" or type(pair.image_source) ~= "function" or pair.error then return end
  local id = pair_id(pair)
  local e = self:done("edit", cat, id)
  if e and (e.error or self:done(self.score_stage, cat, id)) then return end
  local reader = self:get_reader(2)
  local key = original_key(cat, pair)
  if not reader or self.loading[key] or self.prefetched[key] then return end
  local kind, data = pair:image_source()
  if kind and reader:decode(key, data, kind) then self.loading[key] = true end
end

-- pair's original: prefetched, else decoded here (a failed prefetch too:
-- pair:image then names the pair's place in the file).
function Run:original(cat, pair)
  local img = self:take_prefetched(original_key(cat, pair))
  if img then return img end
  return pair:image()   -- both values: an error names the pair's place in the file
end

-- Closes pair's prefetched original if nothing took it.
function Run:forget_original(cat, pair)
  if not self.reader then return end
  local img = self:take_prefetched(original_key(cat, pair))
  if img then img:close() end
end

-- Moves the reader's finished results into self.prefetched (wait: all of
-- them; oldest: at least the oldest outstanding one). A failed load is
-- dropped: loading in line repeats its error for the pair.
function Run:take_loads(wait, oldest)
  local got = wait and self.reader:flush() or self.reader:collect(oldest)
  for _, r in ipairs(got) do
    self.loading[r.path] = nil
    if r.image then self.prefetched[r.path] = r.image end
  end
end

-- Closes the prefetched images no request took (the list moved past them).
function Run:drop_prefetched()
  if not self.reader then return end
  self:take_loads(true)
  for path, img in pairs(self.prefetched) do
    img:close()
    self.prefetched[path] = nil
  end
end

-- Queues loads of the edited images of list[from..] the next batch will score
-- (at most size), so that they decode while the judge works on this batch.
function Run:prefetch(cat, list, from, size)
  size = math.min(size, 32)
  if not self:get_reader(2 * size) then return end
  self:drop_prefetched()
  local queued = 0
  for j = from, #list do
    if queued >= size then break end
    local id = pair_id(list[j])
    local e = not self:done(self.score_stage, cat, id) and self:done("edit", cat, id)
    if e and not e.error and type(e.image) == "string" then
      local path = util.join(self.out, e.image)
      if not self.loading[path] and self.reader:load(path) then
        self.loading[path] = true
        queued = queued + 1
        self:prefetch_original(cat, list[j])   -- the judge's other image
      end
    end
  end
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
    local reqs, owners = {}, {}
    while i <= #list and #reqs < size do
      local pair = list[i]
      local req = self:score_request(cat, pair)
      if req then
        reqs[#reqs + 1], owners[#owners + 1] = req, pair
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
      if judge then results, err, info = judge:score_batch(reqs) end
      local dt = (util.host().clock() - t0) / #reqs
      for k, req in ipairs(reqs) do
        local r = results and results[k]
        if results and r.error then
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
  self:each(cat, "编辑图像", function(pair) self:edit(cat, pair) end)
end

function Run:score_all(cat)
  local list = {}
  for _, pair in self:pairs(cat) do list[#list + 1] = pair end
  local bar = util.host().progress(("[%s] %s"):format(cat, "评分"), #list)
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
  log("info", "[%s] 平均分: %s (n=%d, 失败 %d)", cat, util.fmt(stats.mean(xs), 3), #xs, failed)
end

------------------------------------------------------------------------
-- Finishing: rows, statistics, reports, exit code.
------------------------------------------------------------------------

-- Which run made a step: a record taken from an earlier run says so in
-- `from`; anything else was made here.
function Run:origin(rec)
  if rec == nil or next(rec) == nil then return nil end
  if type(rec.from) == "table" then return rec.from end
  return { run = self.out, run_key = self.run_key }
end

function Run:rows()
  local rows = {}
  for _, cat in ipairs(self.categories) do
    for _, pair in self:pairs(cat) do
      local id = pair_id(pair)
      local e = self:done("edit", cat, id) or {}
      local s = self:done("score", cat, id) or {}
      local err, stage = e.error, e.stage
      if not err then err, stage = s.error, s.stage end
      if not err and not s.score then err, stage = "not scored", "schedule" end
      rows[#rows + 1] = {
        category = cat, id = id, index = pair.index, instruction = pair.instruction,
        description = pair.description,
        score = s.score, text = s.text, error = err, failed_stage = stage, dims = s.dims,
        image = e.image, edit_seconds = e.seconds, score_seconds = s.seconds,
        -- only a run built on others (rejudge, reuse_edits_from) says where each step came from
        provenance = #self.sources > 0 and { edit = self:origin(e), score = self:origin(s) } or nil,
      }
    end
  end
  return rows
end

-- Thumbnails for the HTML gallery: original and edited, as data URLs.
function Run:thumbnails(size)
  local h = util.host()
  local function thumb(img) return report.thumb_url(img, size) end
  return function(row)
    local pair = type(row.index) == "number" and self.dataset:pair(row.category, row.index) or nil
    local orig = pair and pair.error == nil and thumb((pair:image())) or nil
    local edited = type(row.image) == "string" and thumb((h.image.load(util.join(self.out, row.image)))) or nil
    return orig, edited
  end
end

function Run:finish()
  local h = util.host()
  self:settle_writes(true)
  if self.image_writer then self.image_writer:close() end
  if self.reader then self.reader:close() end
  for _, m in pairs(self.models) do
    if m:state() == "device" then m:unload() end
  end
  local rows = self:rows()
  local agg = stats.aggregate(rows, {
    rule = self.aggregate, order = self.categories,
    resamples = self.bootstrap.resamples, seed = self.bootstrap.seed,
  })
  local swaps = h.swaps()
  local t = self.timings
  local models = {}
  for role, m in pairs(self.models) do models[role] = m:info() end
  local rep = report.build({
    version = h.version,
    run = {
      started = self.started, finished = os.date("!%Y-%m-%dT%H:%M:%SZ"),
      script = rawget(h, "script_path") or self.name, schedule = self.name,
      config_path = rawget(h, "config_path"), out = self.out, run_key = self.run_key,
      shard = self.shard, wall_seconds = h.clock() - self.t0,
    },
    config = self.config,
    config_hash = h.hash(util.canonical(self.config)),
    dataset = { path = self.dataset_path, hash = self.dataset_hash },
    models = models,
    prompts = self.prompts:describe(self.categories, h.hash),
    judge_identity = self.models.judge and report.judge_identity(self.models.judge:info(),
      self.config[self.sections.judge], self.prompts:describe(self.categories, h.hash)) or nil,
    sources = self.sources,
    extra = self.profile_parse and self.profile.summary and (function()
      local x = {}
      for k, v in pairs(self.report_extra or {}) do x[k] = v end
      x.profile = self.profile.summary(rows)
      x.profile.adapter = self.dataset.adapter
      return x
    end)() or self.report_extra,
    swaps = swaps,
    timings = {
      edit_seconds = t.edit_seconds, score_seconds = t.score_seconds, swap_seconds = swaps.seconds,
      edit_per_item = t.edited > 0 and t.edit_seconds / t.edited or nil,
      score_per_item = t.scored > 0 and t.score_seconds / t.scored or nil,
      edits_reused = t.reused,
    },
    stats = agg,
    stats_method = stats.method(self.bootstrap),
    rows = rows,
    extra_failures = self.failures,
  })
  local paths, err = report.write(rep, self.out, {
    html = self.html,
    thumbnail = self.html and self:thumbnails((self.config.report or {}).thumb or 192) or nil,
  })
  if not paths then stop(("report: %s"):format(err)) end
  self.dataset:close()
  for _, m in pairs(self.models) do m:close() end
  if self.journal and self.journal.close then self.journal:close() end

  banner("评估完成 / evaluation finished")
  log("info", "总体平均分 (%s): %s, n=%d, 失败 %d; 模型交换 %d 次 (%.2f s)",
    self.aggregate, util.fmt(agg.overall.mean, 3), agg.overall.n, #rep.failures, swaps.count, swaps.seconds or 0)
  for _, p in ipairs(paths) do log("info", "report: %s", p) end
  self.report, self.report_paths = rep, paths
  return #rep.failures > 0 and 1 or 0
end

-- Set up, run body(run), write the reports; the exit code (0 all scored, 1
-- some pair or the setup failed). A script bug raises (exit 2).
function schedule.main(name, body, opts)
  local run, err = schedule.start(name, opts)
  if not run then
    log("error", "%s", err)
    return 1
  end
  banner(("evalhost %s: %d 个类别, %d 对 / categories, pairs"):format(name, #run.categories, #run.dataset))
  local ok, e = xpcall(function() body(run); return run:finish() end, function(m)
    if getmetatable(m) == Stop then return m end
    return debug.traceback(tostring(m), 2)
  end)
  if ok then return e end
  if getmetatable(e) ~= Stop then error(e, 0) end
  log("error", "%s", e.msg)
  if run.image_writer then
    -- the saves already under way finish; unless the journal failed, the edits they
    -- saved are journaled, so that resume does not redo them
    if not run.journal_failed then
      local okw, ew = pcall(run.settle_writes, run, true, true)
      if not okw then log("error", "%s", tostring(ew)) end
    end
    run.image_writer:close()
  end
  if run.reader then run.reader:close() end
  if run.journal then
    log("error", "stopped: every finished step is in %s; fix the cause and run the same command with --resume",
      run.journal:path())
    run.journal:close()
  end
  return 1
end

return schedule
