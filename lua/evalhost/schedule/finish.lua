-- Finishing a run: rows, statistics, reports, the closing lines.
local util = require "evalhost.util"
local base = require "evalhost.schedule.run"
local Run, log, stop, pair_id = base.Run, base.log, base.stop, base.pair_id
local stats = require "evalhost.stats"
local records = require "evalhost.records"
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

-- Display width of a console cell: CJK characters take two columns.
local function width(s)
  local w = 0
  for _, c in utf8.codes(s) do w = w + (c >= 0x2E80 and 2 or 1) end
  return w
end

local function pad(s, n, right)
  local fill = (" "):rep(math.max(0, n - width(s)))
  return right and fill .. s or s .. fill
end

-- The closing lines on stderr: per category n, mean, 95% CI, failed (as the
-- Markdown report's table), the overall line, edits reused, the reports'
-- paths (printed under --quiet too: they are what the run made).
function Run:summary(agg, rep, swaps, paths)
  local h, say = util.host(), base.say
  local quiet = (h.options or {}).quiet
  if not quiet then
    banner(say("评估完成", "evaluation finished"))
    local head = { say("类别", "category"), "n", say("平均分", "mean"), "95% CI", say("失败", "failed") }
    local lines = {}
    local function row(name, st)
      local ci = type(st.ci95) == "table" and ("[%s, %s]"):format(util.fmt(st.ci95[1]), util.fmt(st.ci95[2])) or "—"
      lines[#lines + 1] = { name, tostring(st.n), util.fmt(st.mean, 3), ci, tostring(st.failed or 0) }
    end
    for _, cat in ipairs(self.categories) do
      if agg.categories[cat] then row(cat, agg.categories[cat]) end
    end
    -- the aggregate's name in the table's language (both: the English one, after the pair of labels)
    local AGG_ZH = { pairs = "按对", categories = "按类别" }
    local zh_only = say("zh", "en") == "zh"
    row(zh_only and ("总体 (%s)"):format(AGG_ZH[self.aggregate] or self.aggregate)
      or say("总体", "overall") .. " (" .. self.aggregate .. ")", agg.overall)
    local w = {}
    for i, cell in ipairs(head) do w[i] = width(cell) end
    for _, l in ipairs(lines) do
      for i, cell in ipairs(l) do w[i] = math.max(w[i], width(cell)) end
    end
    local function text(l)
      return ("%s  %s  %s  %s  %s"):format(pad(l[1], w[1]), pad(l[2], w[2], true), pad(l[3], w[3], true),
        pad(l[4], w[4]), pad(l[5], w[5], true))
    end
    log("info", "%s", text(head))
    for _, l in ipairs(lines) do log("info", "%s", text(l)) end
    log("info", "%s", say(("%d 对失败; 模型交换 %d 次 (%.2f s)"):format(#rep.failures, swaps.count, swaps.seconds or 0),
      ("%d failed; %d model exchange(s) (%.2f s)"):format(#rep.failures, swaps.count, swaps.seconds or 0)))
    if self.reuse then
      -- each edit not reused counted by why, so "0 reused" is never a riddle
      local WHY = { editor = "the editor config differs", absent = "that run has no edit of the pair",
        failed = "that run's edit failed", input = "the pair's inputs differ (image or instruction)",
        changed = "the edited file changed since" }
      local missed = {}
      for _, k in ipairs({ "editor", "absent", "failed", "input", "changed" }) do
        local n = (self.reuse_misses or {})[k]
        if n then
          local keys = k == "editor" and select(2, self:reuse_editor()) or {}
          missed[#missed + 1] = ("%d: %s%s"):format(n, WHY[k], #keys > 0 and (" (%s)"):format(table.concat(keys, ", ")) or "")
        end
      end
      log("info", "run.reuse_edits_from: %d edit(s) reused from %s, %d made here%s", self.timings.reused or 0,
        tostring(self.reuse.dir), self.timings.edited or 0,
        #missed > 0 and ("; not reused: " .. table.concat(missed, "; ")) or "")
    end
  end
  for _, p in ipairs(paths) do
    if quiet then io.stderr:write("report: ", p, "\n") else log("info", "report: %s", p) end
  end
end

-- Every pair's row, one at a time, to fn(row): the report is written in
-- one streaming pass, so no list of 100k rows is ever held.
function Run:each_row(fn)
  for _, cat in ipairs(self.categories) do
    for _, pair in self:pairs(cat) do
      local id = pair_id(pair)
      local e = self:done("edit", cat, id) or {}
      local s = self:done("score", cat, id) or {}
      local err, stage = e.error, e.stage
      if not err then err, stage = s.error, s.stage end
      if not err and not s.score then err, stage = "not scored", "schedule" end
      fn({
        category = cat, id = id, index = pair.index, instruction = pair.instruction,
        description = pair.description,
        score = s.score, text = s.text, error = err, failed_stage = stage, dims = s.dims,
        official = s.official,   -- what a benchmark's official code counts for a reply ours fails (issue 25)
        score_method = s.score_method, probs = s.probs,
        image = e.image, image_hash = e.hash, edit_seconds = e.seconds, score_seconds = s.seconds,
        -- only a run built on others (rejudge, reuse_edits_from) says where each step came from
        provenance = #self.sources > 0 and { edit = self:origin(e), score = self:origin(s) } or nil,
      })
    end
  end
end

function Run:rows()
  local rows = {}
  self:each_row(function(r) rows[#rows + 1] = r end)
  return rows
end

-- The page's pictures as files beside the report, each made once by an
-- ImageWriter thread while the report is written: the original at full
-- size (originals/<cat>/<id>.png) and its thumbnail, the edit's thumbnail
-- (named by the edit's hash, so a redone edit gets a new one), the extra
-- input pictures. Returns files(p, row) -> paths relative to run.out, and
-- done() which waits for the pictures and closes the writer.
function Run:report_pictures(size)
  local h = util.host()
  local IW = rawget(h, "image_writer")
  local w = IW and IW.new({ in_flight = 8 }) or nil
  if not w then return nil, function() end end
  local rcfg = self.config.report or {}
  local originals = rcfg.originals ~= false
  local made, failed, first = {}, 0, nil
  local function note(results)
    for _, r in ipairs(results) do
      if r.error then
        failed = failed + 1
        first = first or r.error
        log("debug", "report: picture %s", r.error)
      end
    end
  end
  local function want(rel, data, kind, side, read_opts)
    if not data then return nil end
    local path = util.join(self.out, rel)
    if h.fs.exists(path) then return rel end
    local folder = rel:match("^(.*)/[^/]*$")
    if not made[folder] then
      local ok = h.fs.mkdir_beneath(self.out, folder)
      if not ok then return nil end
      made[folder] = true
    end
    if not w:convert(path, data, kind, side, read_opts) then return nil end
    note(w:collect())
    return rel
  end
  local function files(_, row)
    local cat, id = row.category, row.id
    local f = {}
    local pair = type(row.index) == "number" and self.dataset:pair(cat, row.index) or nil
    if pair and pair.error == nil then
      local kind, data = pair:image_source()
      if kind then
        f.thumb_original = want(util.join("thumbs", cat, id .. ".orig.jpg"), data, kind, size)
        if originals then f.original = want(util.join("originals", cat, id .. ".png"), data, kind, 0) end
      end
      local more = self:more_images_field(pair)
      if type(more) == "table" then
        f.more = {}
        for i, src in ipairs(more) do
          if type(src) == "string" then
            local p = self:image_file(src)
            f.more[#f.more + 1] = want(util.join("originals", cat, ("%s.%d.png"):format(id, i + 1)),
              p or src, p and "path" or "base64", 0)
          end
        end
      end
    end
    if type(row.image) == "string" then
      local tag = type(row.image_hash) == "string" and ("." .. row.image_hash:sub(1, 12)) or ""
      f.thumb_edited = want(util.join("thumbs", cat, id .. ".edit" .. tag .. ".jpg"),
        util.join(self.out, row.image), "path", size, records.read_opts(row.image))   -- a link planted in images/ is not followed
    end
    return f
  end
  local function done()
    note(w:flush())
    w:close()
    if failed > 0 then log("info", "report: %d picture(s) could not be made (first: %s)", failed, first) end
  end
  return files, done
end

-- Thumbnails for the HTML gallery: original and edited, as data URLs.
function Run:thumbnails(size)
  local h = util.host()
  local function thumb(img) return report.thumb_url(img, size) end
  return function(row)
    local pair = type(row.index) == "number" and self.dataset:pair(row.category, row.index) or nil
    local orig = pair and pair.error == nil and thumb((pair:image())) or nil
    local edited = type(row.image) == "string" and thumb((h.image.load(util.join(self.out, row.image), records.read_opts(row.image)))) or nil
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
  -- the statistics from a light pass (category, score, a profile's ratings);
  -- the report's own pass streams the full rows
  local rows = {}
  self:each_row(function(r)
    rows[#rows + 1] = { category = r.category, score = r.score, dims = r.dims, official = r.official,
      failed_stage = r.failed_stage }
  end)
  local agg = stats.aggregate(rows, {
    rule = self.aggregate, order = self.categories,
    resamples = self.bootstrap.resamples, seed = self.bootstrap.seed,
  })
  -- a resumed run's figures add the earlier processes' (journaled at their stop)
  local swaps, t = self:whole_run(h.swaps())
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
      processes = swaps.processes, covers = swaps.covers,   -- a resumed run's figures are the whole run's
    },
    stats = agg,
    stats_method = stats.method(self.bootstrap),
    rows = function(emit) self:each_row(emit) end,
    extra_failures = self.failures,
  })
  rows = nil
  local rcfg = self.config.report or {}
  local size = rcfg.thumb or 192
  local embed = rcfg.embed == true
  local files, pictures_done
  if self.html and not embed then files, pictures_done = self:report_pictures(size) end
  local jm = self.models.judge and self.models.judge:info() or {}
  local paths, err = report.write(rep, self.out, {
    html = self.html, embed = embed, files = files,
    thumbnail = self.html and embed and self:thumbnails(size) or nil,
    chunk_rows = rcfg.chunk_rows, page_size = rcfg.page_size,
    score_range = type(jm.score_range) == "table" and jm.score_range or nil,
  })
  if pictures_done then pictures_done() end
  if not paths then stop(("report: %s"):format(err)) end
  self.dataset:close()
  for _, m in pairs(self.models) do m:close() end
  if self.journal and self.journal.close then
    self:journal_totals()
    self.journal:close()
  end

  self:summary(agg, rep, swaps, paths)
  self.report, self.report_paths = rep, paths
  return #rep.failures > 0 and 1 or 0
end
