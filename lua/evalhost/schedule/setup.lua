-- Setting up a run: config checks, dataset, categories, prompts, models,
-- the run key and the journal (replayed on --resume).
local util = require "evalhost.util"
local prompts_mod = require "evalhost.prompts"
local runkey = require "evalhost.runkey"
local records = require "evalhost.records"
local shard_mod = require "evalhost.shard"
local base = require "evalhost.schedule.run"
local Run, log, ROLES = base.Run, base.log, base.ROLES

local setup = {}

local KEEP_BOTH = { auto = true, [true] = true, [false] = true }

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
  local missing
  path, missing = util.find_config_path(path, bench.data_path and "benchmark.data_path" or "dataset.path", true)
  local opts = {}
  for k, v in pairs(dcfg) do
    if k ~= "path" and k ~= "adapter" and k ~= "profile" and k ~= "more_images" and k ~= "protocol"
      and k ~= "official" then opts[k] = v end
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
  if not ds then return nil, missing or err end
  run.dataset, run.dataset_path = ds, path
  return true
end

-- benchmark.categories, in the config's order. A name the dataset lacks is
-- a config mistake: an error before any model loads, naming the known ones.
-- An unsafe name becomes a failure line and is skipped.
local function select_categories(run, cfg)
  local have, known = {}, run.dataset:categories()
  for _, c in ipairs(known) do have[c] = true end
  local given = (cfg.benchmark or {}).categories
  -- lmms-eval's habit: "物理,环境" as one string is the list [物理, 环境]
  -- (split at ASCII or full-width commas, unless the file has it as one name)
  if type(given) == "string" and not have[given] and given:find("[,，]") then
    local parts = {}
    for part in (given:gsub("，", ",") .. ","):gmatch("([^,]*),") do
      part = part:match("^%s*(.-)%s*$")
      if part ~= "" then parts[#parts + 1] = part end
    end
    given = parts
  end
  -- all: every category of the file, in its order (as leaving the key out)
  if (given == "all" or type(given) == "table" and #given == 1 and given[1] == "all") and not have.all then given = nil end
  local wanted = as_list(given) or known
  local unknown = {}
  for _, c in ipairs(wanted) do
    if not have[tostring(c)] then unknown[#unknown + 1] = ("%q"):format(tostring(c)) end
  end
  if #unknown > 0 then
    return nil, ("config: benchmark.categories: unknown categor%s %s (%s has: %s)"):format(#unknown > 1 and "ies" or "y",
      table.concat(unknown, ", "), run.dataset_path, table.concat(known, ", "))
  end
  local out, seen = {}, {}
  for _, c in ipairs(wanted) do
    c = tostring(c)
    local ok, why = util.safe_component(c)
    local err
    if not ok then
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
  return true
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


-- Checks the edited images a replayed run relies on; a missing or changed
-- file drops its edit (and the score made from it), so both are redone.
local function verify_images(run)
  local h = util.host()
  local redo = 0
  -- the edits replayed into memory and those left in the journal (their offsets)
  local cats = {}
  for _, by in ipairs({ run.steps.edit or {}, run.at and run.at.edit or {} }) do
    for cat, recs in pairs(by) do
      cats[cat] = cats[cat] or {}
      for id in pairs(recs) do cats[cat][#cats[cat] + 1] = id end
    end
  end
  for cat, ids in pairs(cats) do
    for _, id in ipairs(ids) do
      local rec = run:done("edit", cat, id)
      if type(rec) == "table" and rec.image and not rec.error then
        local path = util.join(run.out, rec.image)
        -- only the path Run:edit writes is trusted: a journal naming "../x" or "/etc/x" is never read
        local own = rec.image == run:image_rel(cat, id)
        -- no_follow, regular files only: a FIFO or a link to /dev/zero must not hang resume
        local got, why = nil, nil
        if own then got, why = h.hash_file(path, records.read_opts(rec.image)) end
        if got == nil or (rec.hash ~= nil and got ~= rec.hash) then
          log("warn", "resume: %s %s; redoing the edit of %s/%s", path, not own and "is not where this run keeps its images"
            or got and "does not match its recorded hash"
            or (not h.fs.exists(path) and "is missing") or ("cannot be used (%s)"):format(tostring(why)), cat, id)
          run:forget("edit", cat, id)
          run:forget("score", cat, id)
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
  -- one entry at a time: a replayed step stays in the journal (its offset), not in memory
  local each = j.each and j:each() or coroutine.wrap(function()
    for _, e in ipairs(j:entries()) do coroutine.yield(e) end
  end)
  local range, bad, redo_edits, n = records.score_range(run.config, run.sections.judge), 0, {}, 0
  for e in each do
    n = n + 1
    -- replayed like any input: a record that does not check out fails its pair, by file and line
    local rec, why, kind = records.check(e, { range = range, file = j:path() })
    if not rec and kind == "path" then
      -- an edit naming a file outside this run's images is never read: redone
      log("warn", "resume: %s, so it is not where this run keeps its images; redoing the edit", why)
      redo_edits[#redo_edits + 1] = { e.category, e.id }
      bad = bad + 1
    elseif not rec then
      if type(e.category) == "string" and type(e.id) == "string" and records.known_stage(e.stage) then
        log("warn", "resume: %s", why)
        run:remember(e.stage, e.category, e.id, records.failure(why))
      else
        log("warn", "resume: %s (ignored)", why)
      end
      bad = bad + 1
    -- a server's or network's failure is not the pair's: retried on resume
    elseif not (rec.error and records.transient(rec.code)) then
      if not run:replayed(e.stage, e.category, e.id, e.offset) then run:remember(e.stage, e.category, e.id, rec) end
    end
  end
  -- an edit redone is scored again: its score was made from the file it named
  for _, ci in ipairs(redo_edits) do
    run:forget("edit", ci[1], ci[2])
    run:forget("score", ci[1], ci[2])
  end
  -- the earlier processes' swaps and timings, for a report of the whole run
  for _, r in ipairs(j.runs and j:runs() or {}) do run:replay_totals(r, j:path()) end
  local redo = verify_images(run)
  log("info", "resume: %s: %d finished step(s) replayed%s%s", j:path(), n,
    redo > 0 and (", %d edit(s) to redo"):format(redo) or "",
    bad > 0 and (", %d bad record(s) failed their pairs"):format(bad) or "")
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
function setup.start(name, opts)
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
  ok, err = select_categories(run, cfg)
  if not ok then return nil, err end

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
    ok, err = require("evalhost.datasets.protocol").select(run, cfg.dataset or {}, jm)
    if not ok then return nil, err end
  end
  if run.sections.editor then
    run.editor_config = runkey.filter(cfg)[run.sections.editor] or {}
    run.editor_hash = h.hash(util.canonical(run.editor_config))
  end
  if runcfg.reuse_edits_from ~= nil then
    local src
    src, err = require("evalhost.runs").open(tostring(runcfg.reuse_edits_from))
    if not src then return nil, ("config: run.reuse_edits_from: %s"):format(err) end
    run.reuse = src
    run.sources[#run.sources + 1] = { role = "reuse_edits_from", dir = src.dir, run_key = src.run_key }
    -- said before any edit: with another editor config nothing will be reused
    local _, diff = run:reuse_editor()
    if #diff > 0 then
      log("warn", "run.reuse_edits_from: %s's editor config differs (%s): its edits are not reused", src.dir,
        table.concat(diff, ", "))
    end
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


return setup
