-- Finishing a run: rows, statistics, reports, the closing lines.
local util = require "evalhost.util"
local base = require "evalhost.schedule.run"
local Run, log, stop, pair_id = base.Run, base.log, base.stop, base.pair_id
local stats = require "evalhost.stats"
local report = require "evalhost.report"
local banner = base.banner

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
