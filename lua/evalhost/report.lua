-- The run's reports: JSON (the record), Markdown (the seed's layout) and a
-- self-contained HTML page (tables, SVG histograms, image gallery; no
-- network). Written to <out>/results/evaluation_report_<YYYYMMDD_HHMMSS>.*
--
-- JSON schema (README "Report format"):
--   evalhost = {version}, run = {started, finished, script, schedule,
--   config_path, out, run_key, shard, wall_seconds}, config, config_hash,
--   dataset = {path, hash}, models = {editor, judge = info}, prompts,
--   swaps = evalhost.swaps(), timings = {edit_seconds, score_seconds,
--   swap_seconds, edit_per_item, score_per_item},
--   categories = {[cat] = {n, failed, mean, std, median, min, max, ci95}},
--   category_order = [cat...], overall = {... , pair_mean, category_mean},
--   aggregate = "pairs"|"categories", stats_method,
--   pairs = [{category, id, instruction, score, text, error, image,
--             edit_seconds, score_seconds}],
--   failures = [{category, id, stage, error}]
-- Missing values are JSON null, never 0.
local util = require "evalhost.util"

local report = {}

local SUMMARY_KEYS = { "n", "failed", "mean", "std", "median", "min", "max", "ci95" }

local function json() return util.host().json end

local function array(t)
  return setmetatable(t, json().array_mt)
end

-- A field's text, or "" when it is missing (nil or JSON null).
local function str(v)
  if v == nil or v == json().null then return "" end
  return tostring(v)
end

local function orNull(v)
  if v == nil then return json().null end
  return v
end

local function summary_out(s)
  local t = {}
  for _, k in ipairs(SUMMARY_KEYS) do t[k] = orNull(s[k]) end
  if s.ci95 then t.ci95 = array({ s.ci95[1], s.ci95[2] }) end
  if s.pair_mean ~= nil or s.category_mean ~= nil then
    t.pair_mean, t.category_mean = orNull(s.pair_mean), orNull(s.category_mean)
  end
  return t
end

-- One pair as the report's JSON has it (a row: finish.lua's Run:each_row).
-- score_method and probs (the judge's distribution over the score range)
-- pass through when the judge gave them.
function report.pair_out(row)
  return {
    category = row.category, id = row.id, instruction = orNull(row.instruction),
    description = orNull(row.description),
    score = orNull(row.score), text = orNull(row.text), error = orNull(row.error),
    score_method = row.score_method, probs = row.probs,
    image = orNull(row.image), edit_seconds = orNull(row.edit_seconds),
    score_seconds = orNull(row.score_seconds), index = orNull(row.index),
    dims = row.dims,   -- a benchmark profile's ratings (dataset.adapter)
    provenance = row.provenance and {
      edit = orNull(row.provenance.edit), score = orNull(row.provenance.score),
    } or nil,
  }
end

-- Assemble the report table from what a run collected (see schedule.finish).
-- r.rows is an array, or a function(emit) calling emit(row) once per pair:
-- then rep.pairs is such a function too (report.write streams it, once) and
-- the pairs' failures join rep.failures as it runs.
function report.build(r)
  local categories = {}
  for _, c in ipairs(r.stats.order) do categories[c] = summary_out(r.stats.categories[c]) end
  local pairs_out, failures = array({}), array({})
  for _, f in ipairs(r.extra_failures or {}) do
    failures[#failures + 1] = { category = f.category, id = orNull(f.id), stage = f.stage, error = f.error }
  end
  local function failed(row)
    if row.error then
      failures[#failures + 1] = { category = row.category, id = row.id, stage = row.failed_stage or "unknown", error = row.error }
    end
  end
  if type(r.rows) == "function" then
    local each = r.rows
    pairs_out = function(emit)
      each(function(row)
        failed(row)
        emit(report.pair_out(row), row)
      end)
    end
  else
    for _, row in ipairs(r.rows) do
      pairs_out[#pairs_out + 1] = report.pair_out(row)
      failed(row)
    end
  end
  local timings = {}
  for k, v in pairs(r.timings) do timings[k] = v end
  for _, k in ipairs({ "edit_seconds", "score_seconds", "swap_seconds", "edit_per_item", "score_per_item" }) do
    timings[k] = orNull(timings[k])
  end
  local out = {
    evalhost = { version = r.version },
    run = r.run,
    config = r.config,
    config_hash = r.config_hash,
    dataset = r.dataset,
    models = r.models,
    prompts = r.prompts,
    judge_identity = r.judge_identity,
    sources = array(table.move(r.sources or {}, 1, #(r.sources or {}), 1, {})),
    swaps = r.swaps,
    timings = timings,
    categories = categories,
    category_order = array(table.move(r.stats.order, 1, #r.stats.order, 1, {})),
    overall = summary_out(r.stats.overall),
    aggregate = r.stats.rule,
    stats_method = r.stats_method,
    pairs = pairs_out,
    failures = failures,
  }
  -- sections a script adds (judge_repeat's noise figures ...)
  for k, v in pairs(r.extra or {}) do
    if out[k] == nil then out[k] = v end
  end
  return out
end

------------------------------------------------------------------------
-- The judge's identity: what must be equal for two runs' scores to come
-- from the same judge (README "Judge reproducibility").
------------------------------------------------------------------------

-- The Hugging Face snapshot a model resolves to: from a path inside the
-- cache (.../snapshots/<hash>/...), else from the cache's refs/<revision>
-- file for a hub id. Returns hash, where it was found; or nil.
function report.hf_revision(path, name, ref)
  if type(path) == "string" then
    local snap = path:match("/snapshots/(%x+)")
    if snap then return snap, "path" end
  end
  if type(name) ~= "string" or not name:find("^[%w._-]+/[%w._-]+$") then return nil end
  local hub = os.getenv("HF_HUB_CACHE")
  if not hub then
    local home = os.getenv("HF_HOME") or ((os.getenv("HOME") or "") .. "/.cache/huggingface")
    hub = home .. "/hub"
  end
  local f = io.open(("%s/models--%s/refs/%s"):format(hub, name:gsub("/", "--"), tostring(ref or "main")), "r")
  if not f then return nil end
  local rev = (f:read("l") or ""):match("^%s*(%x+)")
  f:close()
  if rev then return rev, "hf cache" end
  return nil
end

-- info: Model:info(); spec: the judge's config section; prompts: Prompts:describe().
function report.judge_identity(info, spec, prompts)
  spec = type(spec) == "table" and spec or {}
  local params = type(spec.params) == "table" and spec.params or {}
  local function opt(k)
    if spec[k] ~= nil then return spec[k] end
    return params[k]
  end
  local backend = info.backend
  local revision, where = opt("revision"), "config"
  if revision == nil or type(revision) == "string" and not revision:find("^%x+$") then
    local snap, w = report.hf_revision(opt("path"), info.name, revision)
    if snap then revision, where = snap, w end
  end
  if revision == nil and info.revision then
    -- what the backend found: native the HF snapshot, http the server's model
    revision, where = info.revision, backend == "http" and "server" or "model"
  end
  if revision == nil then
    where = backend == "http" and "not reported: the http backend does not pass on the server's model field"
      or backend == "builtin" and "builtin (part of this evalhost version)" or "unknown"
  end
  -- the http backend always sends temperature 0 and seed (default 0)
  local temperature, seed = opt("temperature"), opt("seed")
  if backend == "http" then
    if temperature == nil then temperature = 0 end
    if seed == nil then seed = 0 end
  end
  return {
    backend = backend, name = info.name, revision = orNull(revision), revision_source = where,
    dtype = orNull(info.dtype), device = orNull(info.device),
    temperature = orNull(temperature), seed = orNull(seed),
    deterministic = backend == "builtin" or nil,
    prompt_file = prompts and prompts.file or nil, prompt_language = prompts and prompts.language or nil,
    prompt_templates = prompts and prompts.templates or nil,
  }
end

-- One line for people: "http/Qwen... rev abc123, bfloat16, T=0, seed 0".
function report.identity_line(id)
  if type(id) ~= "table" then return "—" end
  local rev = id.revision ~= nil and id.revision ~= json().null and ("rev " .. tostring(id.revision)) or "rev ?"
  local t = id.temperature ~= nil and id.temperature ~= json().null and ("T=" .. tostring(id.temperature)) or "T=—"
  local sd = id.seed ~= nil and id.seed ~= json().null and ("seed " .. tostring(id.seed)) or "seed —"
  return ("%s/%s %s, %s, %s, %s"):format(tostring(id.backend), tostring(id.name), rev, str(id.dtype), t, sd)
end

------------------------------------------------------------------------
-- Markdown
------------------------------------------------------------------------

local function val(v, d)
  if v == json().null then return util.fmt(nil) end
  return util.fmt(v, d)
end

local function ci(s)
  if type(s.ci95) ~= "table" then return "—" end
  return ("[%s, %s]"):format(util.fmt(s.ci95[1]), util.fmt(s.ci95[2]))
end

-- First n characters (not bytes) of a UTF-8 string, with an ellipsis.
local function clip(s, n)
  if type(s) ~= "string" then return "" end
  local ok, len = pcall(utf8.len, s)
  if not ok or not len or len <= n then return s end
  return s:sub(1, utf8.offset(s, n + 1) - 1) .. "…"
end
report.clip = clip

local function model_line(info)
  if type(info) ~= "table" then return "—" end
  return ("%s/%s on %s"):format(tostring(info.backend or "?"), tostring(info.name or "?"), tostring(info.device or "?"))
end

local STAT_HEAD = "| 类别 / category | n | 失败 / failed | 平均分 / mean | 标准差 / std | 中位数 / median | 最低分 / min | 最高分 / max | 95% CI |"
local STAT_RULE = "|---|---:|---:|---:|---:|---:|---:|---:|---|"

local function stat_row(name, s)
  return ("| %s | %d | %d | %s | %s | %s | %s | %s | %s |"):format(util.md_cell(name), s.n, s.failed,
    val(s.mean, 3), val(s.std, 3), val(s.median), val(s.min), val(s.max), ci(s))
end

-- A per-category table (the report's and the comparison's): head, rule,
-- one row a category in order, then the overall row.
local function add_category_table(add, head, rule, row, order, cats, overall)
  add(head)
  add(rule)
  for _, c in ipairs(order) do add(row(c, cats[c])) end
  add(row("**总体 / overall**", overall))
end

-- Everything before the per-pair section: run, per category, failures.
local function markdown_head(rep, add)
  local run, t, sw = rep.run, rep.timings, rep.swaps
  add("# 图像编辑评估报告 / Image-edit evaluation report")
  add("")
  add("## 运行信息 / Run")
  add("")
  add("- 开始 / started: %s, 结束 / finished: %s", tostring(run.started), tostring(run.finished))
  add("- 调度 / schedule: %s (`%s`)", tostring(run.schedule), tostring(run.script))
  add("- 配置 / config: `%s` (hash `%s`)", tostring(run.config_path), tostring(rep.config_hash))
  add("- 数据集 / dataset: `%s` (hash `%s`)", tostring(rep.dataset.path), tostring(rep.dataset.hash))
  add("- 编辑模型 / editor: %s; 评测模型 / judge: %s", model_line(rep.models.editor), model_line(rep.models.judge))
  add("- 评测模型身份 / judge identity: %s", report.identity_line(rep.judge_identity))
  for _, src in ipairs(rep.sources or {}) do
    add("- 来源 / source (%s): `%s` (run key `%s`)", tostring(src.role), tostring(src.dir), tostring(src.run_key))
  end
  add("- 模型交换 / swaps: %d (%s s, %.1f MB moved)", sw.count or 0, util.fmt(sw.seconds), (sw.bytes or 0) / 1e6)
  add("- 用时 / timings: edit %s s (%s s/pair), score %s s (%s s/pair), swaps %s s",
    val(t.edit_seconds), val(t.edit_per_item, 3), val(t.score_seconds), val(t.score_per_item, 3), val(t.swap_seconds))
  add("- 汇总规则 / aggregate: %s; std = %s; CI = %s (B=%s, seed=%s)", rep.aggregate,
    rep.stats_method.std, rep.stats_method.ci95, tostring(rep.stats_method.resamples), tostring(rep.stats_method.seed))
  add("- evalhost %s", tostring(rep.evalhost.version))
  add("")
  add("## 各类别统计 / Per category")
  add("")
  add_category_table(add, STAT_HEAD, STAT_RULE, stat_row, rep.category_order, rep.categories, rep.overall)
  add("")
  -- a benchmark profile's official tables (issue 25)
  for _, line in ipairs(require("evalhost.report_profile").markdown(rep.profile)) do add("%s", line) end
  add("## 失败 / Failures (%d)", #rep.failures)
  add("")
  if #rep.failures == 0 then
    add("无 / none")
  else
    add("| 类别 / category | ID | 阶段 / stage | 原因 / reason |")
    add("|---|---|---|---|")
    for _, f in ipairs(rep.failures) do
      add("| %s | %s | %s | %s |", util.md_cell(f.category), util.md_cell(f.id ~= json().null and f.id or "—"),
        util.md_cell(f.stage), util.md_cell(f.error))
    end
  end
  add("")
  add("## 详细结果 / Per pair")
end

-- The per-pair section as pairs arrive: a "### category" table each time
-- the category changes. Returns add_pair(p).
local function markdown_pairs(rep, add)
  -- a run built on earlier runs (rejudge, reuse_edits_from) names each pair's origin
  local prov = #(rep.sources or {}) > 0
  local current
  return function(p)
    if p.category ~= current then
      current = p.category
      add("")
      add("### %s", current)
      add("")
      add("| ID | 指令 / instruction | 得分 / score | 图像 / image | 评语 / judge |" .. (prov and " 来源 / from (edit; score) |" or ""))
      add("|---|---|---:|---|---|" .. (prov and "---|" or ""))
    end
    local score = p.score ~= json().null and util.fmt(p.score) or ("失败 / failed: " .. util.md_cell(p.error))
    local img = p.image ~= json().null and ("[png](../%s)"):format(p.image) or "—"
    local text = util.md_cell(clip(str(p.text), 160))
    local from = ""
    if prov then
      local pv = type(p.provenance) == "table" and p.provenance or {}
      local function dir(x) return type(x) == "table" and util.md_cell(str(x.run)) or "—" end
      from = (" %s; %s |"):format(dir(pv.edit), dir(pv.score))
    end
    add("| %s | %s | %s | %s | %s |%s", util.md_cell(p.id), util.md_cell(str(p.instruction)),
      score, img, text, from)
  end
end

-- The pairs of a report in category order (a streamed report as it comes).
local function each_pair(rep, emit)
  if type(rep.pairs) == "function" then return rep.pairs(emit) end
  local known = {}
  for _, c in ipairs(rep.category_order) do
    known[c] = true
    for _, p in ipairs(rep.pairs) do
      if p.category == c then emit(p) end
    end
  end
  for _, p in ipairs(rep.pairs) do   -- a category the order lacks still reaches every file
    if not known[p.category] then emit(p) end
  end
end

-- The whole Markdown report of an in-memory report (report.write streams it).
function report.markdown(rep)
  local L = {}
  local function add(fmt, ...) L[#L + 1] = select("#", ...) > 0 and fmt:format(...) or fmt end
  local body = {}
  local add_pair = markdown_pairs(rep, function(fmt, ...)
    body[#body + 1] = select("#", ...) > 0 and fmt:format(...) or fmt
  end)
  each_pair(rep, add_pair)
  markdown_head(rep, add)
  table.move(body, 1, #body, #L + 1, L)
  add("")
  return table.concat(L, "\n")
end

------------------------------------------------------------------------
-- HTML
------------------------------------------------------------------------

local H = util.html
local page = require "evalhost.report_page"

-- Histogram of scores in ten bins [0,1) ... [9,10] as an inline SVG.
function report.histogram_svg(scores, title)
  local bins = {}
  for i = 1, 10 do bins[i] = 0 end
  for _, s in ipairs(scores) do
    local b = math.min(10, math.floor(s) + 1)
    bins[b] = bins[b] + 1
  end
  local maxc = 1
  for i = 1, 10 do maxc = math.max(maxc, bins[i]) end
  local W, Ht, pad, bw = 320, 140, 20, 28
  local out = { ('<svg class="hist" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">')
    :format(W, Ht, W, Ht, H(title)) }
  out[#out + 1] = ('<text x="%d" y="14" font-size="12">%s</text>'):format(pad, H(title))
  local base = Ht - pad
  for i = 1, 10 do
    local h = math.floor((base - 30) * bins[i] / maxc + 0.5)
    local x = pad + (i - 1) * (bw + 1)
    out[#out + 1] = ('<rect x="%d" y="%d" width="%d" height="%d" fill="#4a78c2"><title>%d–%d: %d</title></rect>')
      :format(x, base - h, bw, h, i - 1, i, bins[i])
    if bins[i] > 0 then
      out[#out + 1] = ('<text x="%d" y="%d" font-size="10" text-anchor="middle">%d</text>'):format(x + bw // 2, base - h - 2, bins[i])
    end
    out[#out + 1] = ('<text x="%d" y="%d" font-size="10" text-anchor="middle">%d</text>'):format(x, base + 12, i - 1)
  end
  out[#out + 1] = ('<text x="%d" y="%d" font-size="10" text-anchor="middle">10</text>'):format(pad + 10 * (bw + 1), base + 12)
  out[#out + 1] = ('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>'):format(pad, base, pad + 10 * (bw + 1), base)
  out[#out + 1] = "</svg>"
  return table.concat(out)
end

local function stat_tr(name, s, class)
  return ('<tr%s><td class="l">%s</td><td>%d</td><td>%d</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>')
    :format(class and (' class="%s"'):format(class) or "", H(name), s.n, s.failed, val(s.mean, 3), val(s.std, 3),
      val(s.median), val(s.min), val(s.max), H(ci(s)))
end

-- A JPEG data URL of img scaled to fit size x size; closes img. nil on failure.
function report.thumb_url(img, size)
  if not img then return nil end
  local w, ht = img:size()
  local scale = math.min(1, size / math.max(w, ht))
  local t = img:resize(math.max(1, math.floor(w * scale + 0.5)), math.max(1, math.floor(ht * scale + 0.5)))
  img:close()
  if not t then return nil end
  local text = t:b64("jpeg")
  t:close()
  return text and ("data:image/jpeg;base64," .. text) or nil
end

-- A value for the page: nil for JSON null (the row's key then stays out).
local function nn(v)
  if v == json().null then return nil end
  return v
end

-- "../<path>" for a path relative to the run folder, seen from results/.
local function up(path)
  if type(path) ~= "string" or path == "" then return nil end
  return "../" .. path
end

local JSON_ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

-- A JSON string for one of our own paths or data URLs (no cJSON round trip
-- per pair: the page's pictures are built by hand, the pair is encoded once).
local function json_str(v)
  if type(v) ~= "string" then return "null" end
  return '"' .. v:gsub('[%c"\\]', function(c) return JSON_ESC[c] or ("\\u%04x"):format(c:byte()) end) .. '"'
end

-- A pair's pictures for the page, as the JSON array [thumb of the
-- original, thumb of the edit, original, [more pictures], edited image]:
-- paths relative to the page, or embed's data URLs (then no files).
-- files: what opts.files gave (paths relative to the run folder).
function report.page_files(p, files)
  files = files or {}
  local emb = files.embedded
  local function path(x) return emb and x or up(x) end
  local more = "null"
  if type(files.more) == "table" and #files.more > 0 then
    local m = {}
    for i, x in ipairs(files.more) do m[i] = json_str(path(x)) end
    more = "[" .. table.concat(m, ",") .. "]"
  end
  return ("[%s,%s,%s,%s,%s]"):format(json_str(path(files.thumb_original)), json_str(path(files.thumb_edited)),
    emb and "null" or json_str(up(files.original)), more, emb and "null" or json_str(up(nn(p.image))))
end

-- Rows as a script chunk: the pairs as the JSON report has them and their
-- pictures, "<" escaped so that no text can close the <script> it sits in.
local function chunk_js(k, encoded, pictures)
  return ("EH.chunk(%d,[%s],\n[%s]);\n"):format(k, (table.concat(encoded, ",\n"):gsub("<", "\\u003c")),
    (table.concat(pictures, ",\n"):gsub("<", "\\u003c")))
end

-- What one pass over the pairs gathers for the page: scores per category
-- for the histograms, the score_method values seen, the rows in chunks of
-- `size` (given to flush(k, encoded, pictures) as they fill).
local function page_pass(size, flush)
  local g = { scores = {}, all = {}, methods = {}, seen = {}, buf = {}, pics = {}, k = 0, n = 0 }
  -- line: p as JSON when the caller has it already
  function g.add(p, files, line)
    if type(p.score) == "number" then
      local xs = g.scores[p.category] or {}
      g.scores[p.category] = xs
      xs[#xs + 1] = p.score
      g.all[#g.all + 1] = p.score
    end
    local m = nn(p.score_method)
    if m ~= nil and not g.seen[m] then g.seen[m] = true; g.methods[#g.methods + 1] = tostring(m) end
    g.buf[#g.buf + 1] = line or json().encode(p)
    g.pics[#g.pics + 1] = report.page_files(p, files)
    g.n = g.n + 1
    if #g.buf >= size then g.flush() end
  end
  function g.flush()
    if #g.buf == 0 then return end
    flush(g.k, g.buf, g.pics)
    g.k, g.buf, g.pics = g.k + 1, {}, {}
  end
  return g
end

-- The page around the gathered data: the run, per-category table,
-- histograms, failures, the explorer. data: {chunks = {file names}} or
-- {inline = {chunk scripts}}.
local function html_page(rep, g, data, opts)
  local L = {}
  local function add(x) L[#L + 1] = x end
  local run, sw, t = rep.run, rep.swaps, rep.timings
  add('<!DOCTYPE html><html lang="zh"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">')
  add("<title>evalhost report — " .. H(run.schedule) .. "</title><style>" .. page.CSS .. "</style></head><body>")
  add("<h1>图像编辑评估报告 / Image-edit evaluation report</h1>")
  add('<dl class="run">')
  local info = {
    { "schedule", ("%s (%s)"):format(tostring(run.schedule), tostring(run.script)) },
    { "finished", run.finished }, { "config", ("%s (hash %s)"):format(tostring(run.config_path), tostring(rep.config_hash)) },
    { "dataset", ("%s (hash %s)"):format(tostring(rep.dataset.path), tostring(rep.dataset.hash)) },
    { "editor", model_line(rep.models.editor) }, { "judge", model_line(rep.models.judge) },
    { "judge identity", report.identity_line(rep.judge_identity) },
    { "swaps", ("%d (%s s)"):format(sw.count or 0, util.fmt(sw.seconds)) },
    { "timings", ("edit %s s, score %s s, swaps %s s"):format(val(t.edit_seconds), val(t.score_seconds), val(t.swap_seconds)) },
    { "aggregate", ("%s; std %s; CI %s"):format(rep.aggregate, rep.stats_method.std, rep.stats_method.ci95) },
    { "evalhost", rep.evalhost.version },
  }
  for _, src in ipairs(rep.sources or {}) do
    info[#info + 1] = { "source (" .. tostring(src.role) .. ")", ("%s (run key %s)"):format(tostring(src.dir), tostring(src.run_key)) }
  end
  for _, kv in ipairs(info) do add(("<dt>%s</dt><dd>%s</dd>"):format(H(kv[1]), H(kv[2]))) end
  add("</dl>")

  add('<h2>各类别统计 / Per category</h2><table id="categories"><thead><tr><th class="l">类别 / category</th><th>n</th>'
    .. "<th>失败 / failed</th><th>mean</th><th>std</th><th>median</th><th>min</th><th>max</th><th>95% CI</th></tr></thead><tbody>")
  for _, c in ipairs(rep.category_order) do add(stat_tr(c, rep.categories[c])) end
  add(stat_tr("总体 / overall", rep.overall, "overall"))
  add("</tbody></table>")
  add(require("evalhost.report_profile").html(rep.profile))   -- a benchmark profile's official tables

  add('<h2>分数分布 / Score histograms</h2><div class="hists">')
  for _, c in ipairs(rep.category_order) do add(report.histogram_svg(g.scores[c] or {}, c)) end
  add(report.histogram_svg(g.all, "总体 / overall"))
  add("</div>")

  add(('<h2>失败 / Failures (%d)</h2>'):format(#rep.failures))
  if #rep.failures > 0 then
    local cap = opts.max_failures or report.MAX_FAILURES_LISTED
    add('<table id="failures"><thead><tr><th class="l">category</th><th class="l">id</th><th class="l">stage</th><th class="l">reason</th></tr></thead><tbody>')
    for i, f in ipairs(rep.failures) do
      if i > cap then break end
      add(('<tr><td class="l">%s</td><td class="l">%s</td><td class="l">%s</td><td class="l fail">%s</td></tr>')
        :format(H(f.category), H(f.id ~= json().null and f.id or "—"), H(f.stage), H(f.error)))
    end
    add("</tbody></table>")
    if #rep.failures > cap then
      add(("<p>… %d more in the JSON report and in the explorer below (status: failed)</p>"):format(#rep.failures - cap))
    end
  end

  add(page.controls(H, rep.category_order, g.methods))
  add("<script>" .. page.LOADER .. "</script>")
  local meta = {
    page_size = opts.page_size or report.PAGE_SIZE, run_dir = run.out,
    score_range = opts.score_range and array({ opts.score_range[1], opts.score_range[2] }) or nil,
    chunks = array(data.chunks or {}), pairs = g.n,
  }
  add("<script>EH.meta=" .. (json().encode(meta):gsub("<", "\\u003c")) .. ";</script>")
  for _, js in ipairs(data.inline or {}) do add("<script>" .. js .. "</script>") end
  add("<script>" .. page.JS .. "</script>")
  add("</body></html>")
  return table.concat(L, "\n")
end

report.PAGE_SIZE = 60              -- report.page_size: cards per gallery page
report.CHUNK_ROWS = 5000           -- report.chunk_rows: pairs per data file the page loads
report.MAX_FAILURES_LISTED = 1000  -- failures the page's table shows (all are in the JSON and the explorer)

-- The single-file page of an in-memory report (report.embed): data inline,
-- pictures as opts.thumbnail(pair) -> original, edited data URLs.
function report.html(rep, opts)
  opts = opts or {}
  local inline = {}
  local g = page_pass(opts.chunk_rows or report.CHUNK_ROWS, function(k, enc, pics)
    inline[#inline + 1] = chunk_js(k, enc, pics)
  end)
  each_pair(rep, function(p)
    local files = { embedded = true }
    if opts.thumbnail then files.thumb_original, files.thumb_edited = opts.thumbnail(p) end
    g.add(p, files)
  end)
  g.flush()
  return html_page(rep, g, { inline = inline }, opts)
end

------------------------------------------------------------------------
-- Comparison of two runs (scripts/compare.lua; lua/evalhost/compare.lua)
------------------------------------------------------------------------

local function paired_out(p)
  local function n(v) return orNull(v) end
  return {
    n = p.n, mean_a = n(p.mean_a), mean_b = n(p.mean_b), mean_diff = n(p.mean_diff), std_diff = n(p.std_diff),
    ci95 = p.ci95 and array({ p.ci95[1], p.ci95[2] }) or json().null,
    category_mean_diff = p.category_mean_diff,
    sign_test = { positive = p.sign.positive, negative = p.sign.negative, zero = p.sign.zero, p = n(p.sign.p) },
    wilcoxon = { statistic = n(p.wilcoxon.statistic), r_plus = n(p.wilcoxon.r_plus), r_minus = n(p.wilcoxon.r_minus),
      z = n(p.wilcoxon.z), p = n(p.wilcoxon.p), method = n(p.wilcoxon.method), nonzero = p.wilcoxon.nonzero,
      zeros = p.wilcoxon.zeros },
  }
end

-- res: compare.runs(); meta: {a={dir,run_key,judge_identity,...}, b=..., method=, changed=}.
function report.comparison(res, meta)
  local cats = {}
  for _, c in ipairs(res.order) do cats[c] = paired_out(res.categories[c]) end
  local function list(xs, f)
    local out = array({})
    for _, x in ipairs(xs) do out[#out + 1] = f(x) end
    return out
  end
  local pair = function(m)
    return { category = m.category, id = m.id, a = m.a, b = m.b, diff = m.diff,
      text_a = orNull(m.row_a.text), text_b = orNull(m.row_b.text),
      image_a = orNull(m.row_a.image), image_b = orNull(m.row_b.image) }
  end
  return {
    evalhost = { version = util.host().version },
    comparison = { a = meta.a, b = meta.b, created = os.date("!%Y-%m-%dT%H:%M:%SZ"), changed = meta.changed },
    method = meta.method,
    category_order = array(table.move(res.order, 1, #res.order, 1, {})),
    categories = cats,
    overall = paired_out(res.overall),
    moved = list(res.moved, pair),
    pairs = list(res.paired, function(m) return { category = m.category, id = m.id, a = m.a, b = m.b, diff = m.diff } end),
    only_a = list(res.only_a, function(x) return { category = x.category, id = x.id, score = orNull(x.score) } end),
    only_b = list(res.only_b, function(x) return { category = x.category, id = x.id, score = orNull(x.score) } end),
    unscored = list(res.unscored, function(x)
      return { category = x.category, id = x.id, a = orNull(x.a), b = orNull(x.b),
        error_a = orNull(x.error_a), error_b = orNull(x.error_b) } end),
  }
end

local function pval(p)
  if type(p) ~= "number" then return "—" end
  if p < 1e-4 then return ("%.1e"):format(p) end
  return ("%.4f"):format(p)
end
report.pval = pval   -- the console prints p as the Markdown does (scripts/compare.lua)

-- "p (method)", or "—" when no difference was non-zero
local function wpval(w)
  local m = str(w.method)
  return m == "" and "—" or ("%s (%s)"):format(pval(w.p), m)
end

local CMP_HEAD = "| 类别 / category | n | mean A | mean B | Δ (B−A) | 95% CI | +/−/0 | sign p | Wilcoxon p (method) |"
local CMP_RULE = "|---|---:|---:|---:|---:|---|---|---:|---|"

local function cmp_row(name, p)
  local ci95 = type(p.ci95) == "table" and ("[%s, %s]"):format(util.fmt(p.ci95[1], 3), util.fmt(p.ci95[2], 3)) or "—"
  return ("| %s | %d | %s | %s | %s | %s | %d/%d/%d | %s | %s |"):format(util.md_cell(name), p.n,
    val(p.mean_a, 3), val(p.mean_b, 3), val(p.mean_diff, 3), ci95, p.sign_test.positive, p.sign_test.negative,
    p.sign_test.zero, pval(p.sign_test.p), wpval(p.wilcoxon))
end

local function side_line(side)
  return ("`%s` (run key `%s`; judge %s)"):format(str(side.dir), str(side.run_key), report.identity_line(side.judge_identity))
end

function report.comparison_markdown(c)
  local L = {}
  local function add(fmt, ...) L[#L + 1] = select("#", ...) > 0 and fmt:format(...) or fmt end
  add("# 运行对比 / Run comparison")
  add("")
  add("- A: %s", side_line(c.comparison.a))
  add("- B: %s", side_line(c.comparison.b))
  for _, ch in ipairs(c.comparison.changed or {}) do add("- 变化 / changed: %s", ch) end
  add("- Δ = B − A on pairs both runs scored; CI: %s", c.method.ci95)
  add("- sign test: %s; Wilcoxon: %s", c.method.sign_test, c.method.wilcoxon)
  add("")
  add_category_table(add, CMP_HEAD, CMP_RULE, cmp_row, c.category_order, c.categories, c.overall)
  add("")
  add("## 变化最大的样本 / Pairs that moved most")
  add("")
  if #c.moved == 0 then add("无 / none") else
    add("| 类别 / category | ID | A | B | Δ | judge A | judge B |")
    add("|---|---|---:|---:|---:|---|---|")
    for _, m in ipairs(c.moved) do
      add("| %s | %s | %s | %s | %+.2f | %s | %s |", util.md_cell(m.category), util.md_cell(m.id), util.fmt(m.a),
        util.fmt(m.b), m.diff, util.md_cell(clip(str(m.text_a), 80)), util.md_cell(clip(str(m.text_b), 80)))
    end
  end
  add("")
  local function side_list(title, xs, f)
    add("## %s (%d)", title, #xs)
    add("")
    if #xs == 0 then add("无 / none") end
    for _, x in ipairs(xs) do add("- %s", f(x)) end
    add("")
  end
  side_list("只在 A / only in A", c.only_a, function(x) return ("%s/%s"):format(x.category, x.id) end)
  side_list("只在 B / only in B", c.only_b, function(x) return ("%s/%s"):format(x.category, x.id) end)
  side_list("未同时评分 / not scored by both", c.unscored, function(x)
    return ("%s/%s: A %s, B %s"):format(x.category, x.id,
      type(x.a) == "number" and util.fmt(x.a) or ("failed: " .. str(x.error_a)),
      type(x.b) == "number" and util.fmt(x.b) or ("failed: " .. str(x.error_b)))
  end)
  return table.concat(L, "\n")
end

-- A side of a comparison in words for the page (no Markdown marks).
local function side_html(label, side)
  return ('<span class="ab %s">%s</span> %s <small>(run key %s; judge %s)</small>'):format(label:lower(), label,
    H(str(side.dir)), H(str(side.run_key)), H(report.identity_line(side.judge_identity)))
end

-- Δ (B − A) per category with its 95% CI as an SVG chart: a row per
-- category, the zero line, the mean as a dot, the CI as a bar.
function report.delta_svg(c)
  local names, ps = {}, {}
  for _, cat in ipairs(c.category_order) do names[#names + 1], ps[#ps + 1] = cat, c.categories[cat] end
  names[#names + 1], ps[#ps + 1] = "总体 / overall", c.overall
  local lo, hi = -0.5, 0.5
  for _, p in ipairs(ps) do
    for _, v in ipairs({ nn(p.mean_diff), type(p.ci95) == "table" and p.ci95[1] or nil,
      type(p.ci95) == "table" and p.ci95[2] or nil }) do
      if type(v) == "number" then lo, hi = math.min(lo, v), math.max(hi, v) end
    end
  end
  local W, left, row = 560, 150, 26
  local Ht = row * #ps + 30
  local function x(v) return left + (W - left - 20) * (v - lo) / (hi - lo) end
  local o = { ('<svg class="delta" id="delta-chart" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img" '
    .. 'aria-label="Δ (B − A) per category with 95%% CI">'):format(W, Ht) }
  o[#o + 1] = ('<line x1="%.1f" y1="4" x2="%.1f" y2="%d" stroke="#999" stroke-dasharray="3,3"/>'):format(x(0), x(0), Ht - 22)
  o[#o + 1] = ('<text x="%.1f" y="%d" font-size="10" text-anchor="middle">%s</text>'):format(x(lo), Ht - 8, util.fmt(lo))
  o[#o + 1] = ('<text x="%.1f" y="%d" font-size="10" text-anchor="middle">0</text>'):format(x(0), Ht - 8)
  o[#o + 1] = ('<text x="%.1f" y="%d" font-size="10" text-anchor="middle">%s</text>'):format(x(hi), Ht - 8, util.fmt(hi))
  for i, p in ipairs(ps) do
    local y = (i - 1) * row + 16
    o[#o + 1] = ('<text x="4" y="%d" font-size="12">%s</text>'):format(y + 4, H(names[i]))
    if type(p.ci95) == "table" then
      o[#o + 1] = ('<line class="ci" x1="%.1f" y1="%d" x2="%.1f" y2="%d"><title>95%% CI [%s, %s]</title></line>')
        :format(x(p.ci95[1]), y, x(p.ci95[2]), y, util.fmt(p.ci95[1], 3), util.fmt(p.ci95[2], 3))
    end
    if type(nn(p.mean_diff)) == "number" then
      o[#o + 1] = ('<circle cx="%.1f" cy="%d" r="4"><title>%s: Δ %s (n=%d)</title></circle>')
        :format(x(p.mean_diff), y, H(names[i]), util.fmt(p.mean_diff, 3), p.n)
    end
  end
  o[#o + 1] = "</svg>"
  return table.concat(o)
end

-- opts.thumbnail(side, image_path) -> data URL or nil (the moved pairs' edits).
function report.comparison_html(c, opts)
  opts = opts or {}
  local L = {}
  local function add(x) L[#L + 1] = x end
  add('<!DOCTYPE html><html lang="zh"><head><meta charset="utf-8"><title>evalhost comparison</title><style>'
    .. page.CSS .. "</style></head><body><h1>运行对比 / Run comparison</h1><dl>")
  add(("<dt>A</dt><dd>%s</dd><dt>B</dt><dd>%s</dd>"):format(side_html("A", c.comparison.a), side_html("B", c.comparison.b)))
  for _, ch in ipairs(c.comparison.changed or {}) do add(("<dt>changed</dt><dd>%s</dd>"):format(H(ch))) end
  add(("<dt>method</dt><dd>Δ = B − A; %s; %s; %s</dd></dl>"):format(H(c.method.ci95), H(c.method.sign_test), H(c.method.wilcoxon)))
  add('<table id="comparison"><thead><tr><th class="l">category</th><th>n</th><th>mean <span class="ab a">A</span></th>'
    .. '<th>mean <span class="ab b">B</span></th><th>Δ (B−A)</th><th>95% CI</th><th>+/−/0</th><th>sign p</th><th>Wilcoxon p</th></tr></thead><tbody>')
  local function tr(name, p, class)
    local ci95 = type(p.ci95) == "table" and ("[%s, %s]"):format(util.fmt(p.ci95[1], 3), util.fmt(p.ci95[2], 3)) or "—"
    add(('<tr%s><td class="l">%s</td><td>%d</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%d/%d/%d</td><td>%s</td><td>%s</td></tr>')
      :format(class and ' class="overall"' or "", H(name), p.n, val(p.mean_a, 3), val(p.mean_b, 3), val(p.mean_diff, 3),
        H(ci95), p.sign_test.positive, p.sign_test.negative, p.sign_test.zero, pval(p.sign_test.p), H(wpval(p.wilcoxon))))
  end
  for _, cat in ipairs(c.category_order) do tr(cat, c.categories[cat]) end
  tr("总体 / overall", c.overall, true)
  add("</tbody></table>")
  add("<h2>Δ per category (95% CI)</h2>" .. report.delta_svg(c))
  add(('<h2>变化最大的样本 / Pairs that moved most (%d)</h2><div class="gallery" id="moved">'):format(#c.moved))
  for _, m in ipairs(c.moved) do
    local ia = opts.thumbnail and opts.thumbnail("a", m.image_a)
    local ib = opts.thumbnail and opts.thumbnail("b", m.image_b)
    local function img(url, alt)
      if not url then return ('<span class="noimg">%s: none</span>'):format(alt) end
      return ('<img src="%s" alt="%s">'):format(url, alt)
    end
    add(('<figure class="card" id="moved-%s-%s"><div class="imgs"><div>%s<div class="lbl">A · edit · %s</div></div>'
      .. '<div>%s<div class="lbl">B · edit · %s</div></div></div><figcaption><b>%s/%s</b> <span class="ab a">A</span> '
      .. '<span class="score">%s</span> → <span class="ab b">B</span> <span class="score">%s</span> (Δ %+.2f)'
      .. '<br><small>A: %s</small><br><small>B: %s</small></figcaption></figure>')
      :format(H(m.category), H(m.id), img(ia, "edit A"), util.fmt(m.a), img(ib, "edit B"), util.fmt(m.b),
        H(m.category), H(m.id), util.fmt(m.a), util.fmt(m.b), m.diff, H(clip(str(m.text_a), 300)), H(clip(str(m.text_b), 300))))
  end
  add("</div>")
  -- every paired pair, with the report page's kind of filters (hash parameters)
  add(page.compare_controls(H, c.category_order))
  local rows = {}
  for _, p in ipairs(c.pairs) do rows[#rows + 1] = json().encode({ c = p.category, i = p.id, a = p.a, b = p.b, d = p.diff }) end
  add("<script>window.EHC=[" .. (table.concat(rows, ",\n"):gsub("<", "\\u003c")) .. "];</script>")
  add("<script>" .. page.COMPARE_JS .. "</script>")
  for _, part in ipairs({ { "only in A", c.only_a }, { "only in B", c.only_b }, { "not scored by both", c.unscored } }) do
    add(("<h2>%s (%d)</h2><ul>"):format(H(part[1]), #part[2]))
    for _, x in ipairs(part[2]) do add(("<li>%s/%s</li>"):format(H(x.category), H(x.id))) end
    add("</ul>")
  end
  add("</body></html>")
  return table.concat(L, "\n")
end

-- Writes results/comparison_<stamp>.{json,md,html}; paths, or nil and a message.
function report.write_comparison(c, out, opts)
  opts = opts or {}
  local h = util.host()
  local ok, err = h.fs.mkdir_beneath(out, "results")
  if not ok then return nil, ("cannot create %s: %s"):format(util.join(out, "results"), tostring(err)) end
  local stem = util.join(out, "results", "comparison_" .. (opts.stamp or os.date("%Y%m%d_%H%M%S")))
  local files = {
    { stem .. ".json", function() return h.json.encode(c, { pretty = true }) end },
    { stem .. ".md", function() return report.comparison_markdown(c) end },
    { stem .. ".html", function() return report.comparison_html(c, opts) end },
  }
  local paths = {}
  for _, f in ipairs(files) do
    ok, err = h.fs.write(f[1], f[2]())
    if not ok then return nil, ("cannot write %s: %s"):format(f[1], tostring(err)) end
    paths[#paths + 1] = f[1]
  end
  return paths
end

------------------------------------------------------------------------
-- Files
------------------------------------------------------------------------

-- A report file being written: to "<path>.tmp", renamed into place by
-- commit, so that a run that fails half-way leaves no half-written report.
local Out = {}
Out.__index = Out
local WriteFailed = {}   -- the error a failed write raises inside report.write

local function out_open(path, opened)
  local tmp = path .. ".tmp"
  os.remove(tmp)   -- a stale one from a killed run (a planted link is replaced, not followed)
  local f, err = io.open(tmp, "wb")
  if not f then error(setmetatable({ msg = ("cannot write %s: %s"):format(path, tostring(err)) }, WriteFailed), 0) end
  local o = setmetatable({ f = f, path = path, tmp = tmp }, Out)
  opened[#opened + 1] = o
  return o
end

function Out:write(s)
  local ok, err = self.f:write(s)
  if not ok then error(setmetatable({ msg = ("cannot write %s: %s"):format(self.path, tostring(err)) }, WriteFailed), 0) end
end

function Out:commit()
  local ok, err = self.f:close()
  self.f = nil
  if ok then ok, err = os.rename(self.tmp, self.path) end
  if not ok then error(setmetatable({ msg = ("cannot write %s: %s"):format(self.path, tostring(err)) }, WriteFailed), 0) end
  self.committed = true
end

-- A report is all or none (issue 20): a failure later in report.write
-- removes the files this write already renamed into place, too.
function Out:abort()
  if self.f then self.f:close(); self.f = nil end
  os.remove(self.tmp)
  if self.committed then os.remove(self.path) end
end

-- Writes the rest of the open file f to o, in blocks.
local function copy_blocks(f, o)
  while true do
    local block = f:read(1 << 20)
    if not block then break end
    o:write(block)
  end
end

-- Copies a finished file (latest.*), in blocks.
local function copy_file(from, to, opened)
  local f = io.open(from, "rb")
  if not f then error(setmetatable({ msg = ("cannot read %s"):format(from) }, WriteFailed), 0) end
  local o = out_open(to, opened)
  copy_blocks(f, o)
  f:close()
  o:commit()
end

-- A data folder of ours and its files (no deeper folders are made there).
local function remove_folder(path)
  local names = util.host().fs.list(path)
  if not names then return end
  for _, n in ipairs(names) do os.remove(util.join(path, n)) end
  os.remove(path)
end

-- Writes the reports in one pass over the pairs (rep.pairs an array, or
-- report.build's streaming function): results/evaluation_report_<stamp>.json,
-- .md and .html (the page's data in <stem>_files/ beside it, or inline with
-- opts.embed), results/samples.jsonl, and results/latest.{json,md,html}
-- as copies of these. Memory holds one chunk of rows, the scores and the
-- failures. opts: stamp, html (false: none), embed, thumbnail (embed's
-- data URLs), files(p, row) (thumbnail and original paths relative to
-- out), chunk_rows, page_size, score_range. Returns the paths, or nil and a message.
function report.write(rep, out, opts)
  opts = opts or {}
  local h = util.host()
  local dir = util.join(out, "results")
  local ok, err = h.fs.mkdir_beneath(out, "results")   -- a planted symlink is refused, not followed
  if not ok then return nil, ("cannot create %s: %s"):format(dir, tostring(err)) end
  local name = "evaluation_report_" .. (opts.stamp or os.date("%Y%m%d_%H%M%S"))
  -- two runs in one second (or one stamp): the later report is <name>_2, _3, ..., never the earlier's files
  local base_name, n = name, 1
  while h.fs.exists(util.join(dir, name .. ".json")) do
    n = n + 1
    name = ("%s_%d"):format(base_name, n)
  end
  local stem = util.join(dir, name)
  local html = opts.html ~= false
  local embed = html and opts.embed == true
  local opened, made_dir, placed_dir = {}, nil, nil
  local function run_pass()
    local js = out_open(stem .. ".json", opened)
    local samples = out_open(util.join(dir, "samples.jsonl"), opened)
    local mdpairs = out_open(stem .. ".md.pairs", opened)   -- the per-pair section, joined after the head
    local files_dir = name .. "_files"
    local chunk_names, inline = {}, {}
    if html and not embed then
      made_dir = util.join(dir, files_dir .. ".tmp")
      ok, err = h.fs.mkdir_beneath(dir, files_dir .. ".tmp")
      if not ok then error(setmetatable({ msg = ("cannot create %s: %s"):format(made_dir, tostring(err)) }, WriteFailed), 0) end
    end
    local g = page_pass(opts.chunk_rows or report.CHUNK_ROWS, function(k, enc, pics)
      if embed then inline[#inline + 1] = chunk_js(k, enc, pics); return end
      local fname = ("data-%05d.js"):format(k)
      local o = out_open(util.join(made_dir, fname), opened)
      o:write(chunk_js(k, enc, pics))
      o:commit()
      chunk_names[#chunk_names + 1] = files_dir .. "/" .. fname
    end)
    local add_md = markdown_pairs(rep, function(fmt, ...)
      mdpairs:write((select("#", ...) > 0 and fmt:format(...) or fmt) .. "\n")
    end)
    -- the JSON report: its small fields, then the pairs one per line, then the failures
    local keys = {}
    for k in pairs(rep) do
      if k ~= "pairs" and k ~= "failures" then keys[#keys + 1] = k end
    end
    table.sort(keys)
    js:write("{\n")
    for _, k in ipairs(keys) do js:write(("%s: %s,\n"):format(json().encode(k), json().encode(rep[k], { pretty = true }))) end
    js:write('"pairs": [')
    local first = true
    each_pair(rep, function(p, row)
      -- one encoding serves the JSON report, samples.jsonl and the page
      local line = json().encode(p)
      js:write((first and "\n" or ",\n") .. line)
      first = false
      samples:write(line .. "\n")
      add_md(p)
      if html then
        local files
        if embed then
          files = { embedded = true }
          if opts.thumbnail then files.thumb_original, files.thumb_edited = opts.thumbnail(p, row) end
        elseif opts.files then
          files = opts.files(p, row)
        end
        g.add(p, files, line)
      end
    end)
    g.flush()
    js:write("\n],\n" .. '"failures": ' .. json().encode(rep.failures, { pretty = true }) .. "\n}\n")
    js:commit()
    samples:commit()
    mdpairs:commit()
    local md = out_open(stem .. ".md", opened)
    markdown_head(rep, function(fmt, ...) md:write((select("#", ...) > 0 and fmt:format(...) or fmt) .. "\n") end)
    local part = assert(io.open(stem .. ".md.pairs", "rb"))
    copy_blocks(part, md)
    part:close()
    os.remove(stem .. ".md.pairs")
    md:write("\n")
    md:commit()
    local paths = { stem .. ".json", stem .. ".md" }
    if html then
      if not embed then
        -- the data folder takes its name only now: a page never points at a half-written one
        remove_folder(util.join(dir, files_dir))   -- a same-stamp report's, replaced
        local rok, rerr = os.rename(made_dir, util.join(dir, files_dir))
        if not rok then error(setmetatable({ msg = ("cannot write %s: %s"):format(util.join(dir, files_dir), tostring(rerr)) }, WriteFailed), 0) end
        made_dir, placed_dir = nil, util.join(dir, files_dir)
      end
      local page_out = out_open(stem .. ".html", opened)
      page_out:write(html_page(rep, g, { chunks = chunk_names, inline = inline }, opts))
      page_out:commit()
      paths[#paths + 1] = stem .. ".html"
    end
    for _, p in ipairs(paths) do copy_file(p, util.join(dir, "latest" .. p:match("%.%w+$")), opened) end
    -- without a page this time, an older run's latest.html would pass for this run's
    if not html then os.remove(util.join(dir, "latest.html")) end
    return paths
  end
  local okp, res = pcall(run_pass)
  if okp then return res end
  for _, o in ipairs(opened) do o:abort() end
  os.remove(stem .. ".md.pairs")
  if made_dir then remove_folder(made_dir) end
  if placed_dir then remove_folder(placed_dir) end   -- all or none: a page's data folder too
  if getmetatable(res) == WriteFailed then return nil, res.msg end
  error(res, 0)
end

return report
