-- Judge-only re-run: scores an earlier run's edited images with the current
-- judge and prompts. The editor is never opened (no swap, no edit time).
--
--   evalhost scripts/rejudge.lua CONFIG --set rejudge.from=outputs/a --set run.out=outputs/a-rj
--
-- rejudge.only: all (default) | failed (pairs without a score in the source)
-- | [ids] (an id, or category/id). Pairs not chosen keep the source's score,
-- so the new report is the merged round; every pair's provenance says which
-- run made its edit and its score. rejudge.force=true accepts a source made
-- from a different dataset file. The edited images are copied (hash-checked)
-- into run.out, so the new folder stands alone and can itself be a source.
local schedule = require "evalhost.schedule"
local runs = require "evalhost.runs"
local util = require "evalhost.util"

local h = evalhost
local rcfg = h.config.rejudge or {}

-- A predicate (cat, id, source score record) -> rescore?; or nil, message.
local function chooser(only)
  if only == nil or only == "all" then return function() return true end end
  if only == "failed" then
    return function(_, _, s) return s == nil or s.error ~= nil end
  end
  if type(only) ~= "table" then
    return nil, ("rejudge: rejudge.only must be all, failed or a list of ids, got %s"):format(tostring(only))
  end
  local want = {}
  for _, x in ipairs(only) do want[tostring(x)] = true end
  return function(cat, id) return want[id] or want[cat .. "/" .. id] or false end
end

-- Config and source checked before any output folder is made.
local choose, src, err
choose, err = chooser(rcfg.only)
if choose then
  src, err = runs.open(tostring(rcfg.from or ""))
  if not src then err = "rejudge: set rejudge.from to an earlier run's folder; " .. err end
end
if src and not src.header then err = ("rejudge: %s has no journal to take edits from"):format(src.dir) end
if src and util.join(src.dir, "") == util.join(tostring((h.config.run or {}).out or "outputs"), "") then
  err = "rejudge: run.out must differ from rejudge.from (the source stays as it was)"
end
if err then
  h.log("error", "%s", err)
  return 1
end

return schedule.main("rejudge", function(run)
  local sd = type(src.header.parts) == "table" and src.header.parts.dataset
  if sd ~= run.dataset_hash then
    local msg = ("rejudge: %s was made from another dataset (hash %s, %s has %s)")
      :format(src.dir, tostring(sd), run.dataset_path, tostring(run.dataset_hash))
    if rcfg.force ~= true then schedule.stop(msg .. "; set rejudge.force=true to rejudge it anyway") end
    h.log("warn", "%s; going on (rejudge.force)", msg)
  end
  run.sources[#run.sources + 1] = { role = "rejudge.from", dir = src.dir, run_key = src.run_key,
    schedule = src.header.schedule }
  local n = 0
  for _, cat in ipairs(run.categories) do
    schedule.banner(schedule.say("重新评分: " .. cat, "rejudge: " .. cat))
    local list = {}
    for _, pair in run:pairs(cat) do
      local id = pair.id or ("#" .. tostring(pair.index))
      if run:done("edit", cat, id) == nil then runs.take_edit(run, src, cat, id) end
      local s = src:step("score", cat, id)
      if choose(cat, id, s) then
        list[#list + 1] = pair
      elseif run:done("score", cat, id) == nil and s then
        run:record("score", cat, id, runs.carried(s, src))   -- kept from the earlier round
      end
    end
    n = n + #list
    local bar = h.progress(("[%s] %s"):format(cat, schedule.say("重新评分", "rejudge")), #list)
    run:score_pairs(cat, list, function() bar:tick() end)
    bar:close()
    run:log_category(cat)
  end
  h.log("info", "rejudge: %d pair(s) scored again from %s (run key %s)", n, src.dir, tostring(src.run_key))
end, { models = { "judge" } })
