-- GEdit-Bench (stepfun-ai/GEdit-Bench) as evalhost pairs, from the JSONL +
-- images that tools/convert_gedit.py writes from the published dataset:
--   {"id": key, "category": task_type, "edit_instruction": ..., "image_path":
--    "images/<task_type>/<key>.png", "language": "en"|"cn", "intersection_exist": bool}
-- dataset.language (default en) keeps one instruction language, as the
-- benchmark scores each language apart (all: both, the report's tables
-- still apart); dataset.intersection=true keeps the intersection subset only.
--
-- Scoring profile (VIEScore, as GEdit-Bench reports it): semantic
-- consistency SC and perceptual quality PQ rated 0-10 (each the minimum of
-- its prompt's sub-scores), overall O = sqrt(SC * PQ) per pair; a task
-- type's figure is the mean over its pairs and the benchmark's the mean of
-- the task types' means (group mean: report.aggregate = categories).
local base = require "evalhost.datasets.base"
local pystr = require "evalhost.datasets.pystr"
local util = require "evalhost.util"

local M = { name = "gedit" }

function M.open(path, opts)
  opts = opts or {}
  local h = util.host()
  local lang = opts.language or "en"
  local ds, err = h.dataset.open(path, { format = "jsonl" })
  if not ds then return nil, "gedit: " .. tostring(err) end
  local digest = h.hash_file(path)
  local root = util.dirname(path)
  local specs, ds_langs = {}, {}
  for _, cat in ipairs(ds:categories()) do
    for _, p in ds:pairs(cat) do
      local fields = {}
      for _, k in ipairs({ "language", "intersection_exist", "image_path", "key" }) do fields[k] = p:field(k) end
      if fields.language ~= nil then ds_langs[tostring(fields.language)] = true end
      if (lang == "all" or fields.language == lang) and (opts.intersection ~= true or fields.intersection_exist == true) then
        local s = { id = p.id, category = cat, instruction = p.instruction, description = p.description,
          fields = fields, error = p.error }
        s.image_path = base.under(root, fields.image_path)
        if fields.image_path ~= nil and s.image_path == nil then
          s.error = ("gedit: %s: %s/%s: image path %q leaves %s"):format(path, cat, tostring(p.id), tostring(fields.image_path), root)
        end
        specs[#specs + 1] = s
      end
    end
  end
  ds:close()
  if #specs == 0 then
    local have = util.sorted_keys(ds_langs)
    local why = #have > 0 and ("its languages: %s; dataset.language: all for every one"):format(table.concat(have, ", "))
      or "no record has a \"language\" field: is it tools/convert_gedit.py's output?"
    return nil, ("gedit: %s has no pairs in language %q%s (%s)"):format(path, lang,
      opts.intersection == true and " in the intersection subset" or "", why)
  end
  return base.new(specs, path, h.hash(digest .. "\n" .. lang .. "\n" .. tostring(opts.intersection == true)), M.name)
end

M.profile = {
  dimensions = { "SC", "PQ" },
  scale = { 0, 10 },
  aggregate = "categories",
  -- one request per pair asking for both sub-score pairs (VIEScore asks in two
  -- requests; one keeps a pair one judge call); the last line is a plain
  -- overall score so any text parser finds one.
  template = {
    system = "You are a professional digital artist. You judge an image edit: the first image is the original, "
      .. "the second the edit.",
    user = "(id={{id}}) Editing instruction: {{instruction}}\n\n"
      .. "Rate from 0 to 10: (a) how well the edit follows the instruction, (b) how little it over-edits, "
      .. "(c) how natural the edited image looks, (d) how free it is of artifacts. Answer with the lines\n"
      .. "SC: a, b\nPQ: c, d\nScore: N (your overall 0-10)",
  },
}

-- VIEScore: SC and PQ are the minima of their sub-scores; O = sqrt(SC * PQ).
function M.profile.score(sc_scores, pq_scores)
  if type(sc_scores) ~= "table" or #sc_scores == 0 or type(pq_scores) ~= "table" or #pq_scores == 0 then return nil end
  local sc, pq = math.min(table.unpack(sc_scores)), math.min(table.unpack(pq_scores))
  return { SC = sc, PQ = pq, O = math.sqrt(sc * pq) }
end

-- The judge's reply -> O, {SC=, PQ=, O=}; or nil and why.
function M.profile.from_text(text)
  local sc, pq = base.labelled(text, "SC"), base.labelled(text, "PQ")
  local ok, why = base.check_range(sc, 1, 0, 10)
  if ok then ok, why = base.check_range(pq, 1, 0, 10) end
  if not ok then return nil, "gedit: SC/PQ lines: " .. why end
  for _, x in ipairs(sc) do if x > 10 then return nil, "gedit: SC rating outside 0..10" end end
  for _, x in ipairs(pq) do if x > 10 then return nil, "gedit: PQ rating outside 0..10" end end
  local r = M.profile.score(sc, pq)
  return r.O, r
end

function M.profile.summary(rows)
  local rs = {}
  for _, r in ipairs(rows) do
    if type(r.dims) == "table" then rs[#rs + 1] = { category = r.category, SC = r.dims.SC, PQ = r.dims.PQ, O = r.dims.O } end
  end
  local agg = M.profile.aggregate_rows(rs)
  agg.method = "VIEScore: SC, PQ = minima of their sub-scores, O = sqrt(SC*PQ); task-type means, then their mean"
  return agg
end

-- rows: {category=, SC=, PQ=, O=} -> group means per task type and their mean.
function M.profile.aggregate_rows(rows)
  local per, order = {}, {}
  for _, r in ipairs(rows) do
    local c = per[r.category]
    if not c then c = { SC = {}, PQ = {}, O = {} }; per[r.category], order[#order + 1] = c, r.category end
    for _, k in ipairs({ "SC", "PQ", "O" }) do table.insert(c[k], r[k]) end
  end
  local out = { categories = {}, order = order, overall = {} }
  for _, k in ipairs({ "SC", "PQ", "O" }) do
    local means = {}
    for _, cat in ipairs(order) do
      out.categories[cat] = out.categories[cat] or {}
      local m = base.mean(table.unpack(per[cat][k]))
      out.categories[cat][k] = m
      means[#means + 1] = m
    end
    out.overall[k] = base.mean(table.unpack(means))
  end
  return out
end

------------------------------------------------------------------------
-- The official protocol (dataset.protocol: official, the default), as
-- stepfun-ai/Step1X-Edit @570eba6 GEdit-Bench/ runs it with an OpenAI judge
-- (test_gedit_score.py, viescore/__init__.py task "tie",
-- viescore/mllm_tools/openai.py, calculate_statistics.py):
--   SC: VIEScore's SC prompt with the instruction, then [source, edit
--       resized to the source's size]; PQ: the PQ prompt, then [that edit];
--       one user message each, text first, pictures as JPEG quality 75
--       (PIL's default), no system message;
--   a reply -> its "score" list as mllm_output_to_dict reads it; SC, PQ =
--       the lists' minima, O = sqrt(SC * PQ);
--   a task type's SC/PQ/O = the mean over its pairs, the benchmark's = the
--       mean of the task types' means; per language, full set and the
--       Intersection_exist subset; printed to 3 decimals.
-- Where the official code re-asks an unparseable reply once and then counts
-- a random 0-10 guess, evalhost fails the pair; the summary shows both the
-- figure without the failed pairs and the official rule's expected figure
-- (the guess's mean over 0..10: `with_guess`).
------------------------------------------------------------------------
local protocol = require "evalhost.datasets.protocol"
local vie = require "evalhost.datasets.viescore_prompts"

local official = { aggregate = "categories", requests_per_pair = "2 requests per pair: SC and PQ" }
M.profile.official = official

-- The 11 task types calculate_statistics.py averages over, in its order.
official.GROUPS = { "background_change", "color_alter", "material_alter", "motion_change", "ps_human",
  "style_change", "subject-add", "subject-remove", "subject-replace", "text_change", "tone_transfer" }

local JPEG_QUALITY = 75   -- PIL's save(format="JPEG") default, which openai.py uses

function official.requests(ctx)
  local sw, sh = ctx.original:size()
  local ew, eh = ctx.edited:size()
  local edit = ctx.edited
  if ew ~= sw or eh ~= sh then
    -- .convert("RGB").resize(source size): PIL's default filter for RGB is bicubic
    local r, err = ctx.edited:resize(sw, sh, "bicubic")
    if not r then return nil, "gedit: resizing the edit to the source's size: " .. tostring(err) end
    edit = ctx:own(r)
  end
  return {
    { name = "SC", text = protocol.replace(vie.SC, "<instruction>", ctx.instruction),
      images = { ctx.original, edit }, text_first = true, jpeg_quality = JPEG_QUALITY },
    { name = "PQ", text = vie.PQ, images = { edit }, text_first = true, jpeg_quality = JPEG_QUALITY },
  }
end

-- viescore/utils.py does "import regex as re": its \w, \d and folds
local RE = pystr.regex
local function is_word_ci(s, w) return pystr.match_ci(s, 1, w, RE.fold) == #s + 1 end

-- Past one or more \d of s from byte k, or nil.
local function digit_run(s, k)
  local start = k
  while true do
    local c, nk = pystr.cp_at(s, k)
    if not RE.is_digit(c) then return k > start and k or nil end
    k = nk
  end
end

-- viescore/utils.py fix_json: every run of word characters right before
-- a ":" quoted (re.sub(r'(\w+):', ...)), then each '"key":value' up to the
-- next "," or "}" rewritten: a number wrapped in a list, true/false/null
-- kept, anything else quoted (re.sub(r'(".*?"):(.*?)(,|})', ...)).
local function fix_json(str)
  local out, i, run = {}, 1, nil
  while i <= #str do
    local cp, nx = pystr.cp_at(str, i)
    if RE.is_word(cp) then
      run = run or i
    else
      if run then out[#out + 1] = cp == 58 and '"' .. str:sub(run, i - 1) .. '"' or str:sub(run, i - 1) end
      run = nil
      out[#out + 1] = str:sub(i, nx - 1)
    end
    i = nx
  end
  if run then out[#out + 1] = str:sub(run) end
  local fixed = table.concat(out)
  return (fixed:gsub('(".-"):(.-)([,}])', function(key, value, comma)
    value = pystr.strip(value)
    local j = digit_run(value, value:sub(1, 1) == "-" and 2 or 1)   -- ^-?\d+(\.\d+)?$
    if j and value:sub(j, j) == "." then j = digit_run(value, j + 1) end
    if j and j > #value then
      value = "[" .. value .. "]"
    elseif not (is_word_ci(value, "true") or is_word_ci(value, "false") or is_word_ci(value, "null")) then
      value = '"' .. value .. '"'
    end
    return key .. ": " .. value .. comma
  end))
end

-- viescore/utils.py mllm_output_to_dict without its random guess: what it
-- returns as pystr.json_loads gives it (a table, a list, a number ...), or
-- nil for False or where it raises. Delimited JSON, else the text from the
-- first "{" to the last "}", else a bare "[a, b]" list or a bare 0..10.
function official.parse(text)
  if type(text) ~= "string" then return nil end
  local delim = "||V^=^V||"
  local count, at = 0, 1
  while true do
    local a = text:find(delim, at, true)
    if not a then break end
    count, at = count + 1, a + #delim
  end
  local body
  if count == 2 then
    local a = text:find(delim, 1, true)
    local b = 0
    for i = #text - #delim + 1, 1, -1 do
      if text:sub(i, i + #delim - 1) == delim then b = i; break end
    end
    body = text:sub(a + #delim, b - 1)
  else
    local a = text:find("{", 1, true)
    local b = text:match(".*()}")
    if a and b then
      body = text:sub(a, b)
    else
      local la, lb = text:find("[", 1, true), text:match(".*()%]")
      local list = (la and lb) and text:sub(la, lb) or ""
      local x, y = list:match("^%[(%d+), ?(%d+)%]$")
      if x then   -- json.loads of the list: a leading zero raises
        if (#x > 1 and x:sub(1, 1) == "0") or (#y > 1 and y:sub(1, 1) == "0") then return nil end
        return { score = setmetatable({ tonumber(x), tonumber(y) }, pystr.ARRAY) }
      end
      local v = pystr.int(text)
      if v and v >= 0 and v <= 10 then return { score = setmetatable({ v }, pystr.ARRAY) } end
      return nil
    end
  end
  if body == "" then return nil end
  body = pystr.strip(body):gsub("\n", "")
  local d = pystr.json_loads(body)
  if type(d) == "table" and not pystr.is_array(d) and d.score ~= nil then
    if not pystr.is_array(d.score) then d.score = setmetatable({ d.score }, pystr.ARRAY) end
    return d
  end
  return pystr.json_loads(fix_json(body))   -- returned as it parses (no list wrap)
end

-- min(d["score"]) as VIEScore.evaluate takes it (a bool counts as 0 / 1);
-- nil and why where Python raises or the minimum is not a finite number.
local function min_score(d, name)
  if d == nil then return nil, name .. " reply has no VIEScore JSON (official code: re-asked, then a random guess)" end
  local list = type(d) == "table" and not pystr.is_array(d) and d.score
  if not pystr.is_array(list) or #list == 0 then return nil, name .. " reply's \"score\" is not a list of numbers" end
  local m
  for _, v in ipairs(list) do
    if type(v) == "boolean" then v = v and 1 or 0 end
    if type(v) ~= "number" then return nil, name .. " reply's \"score\" holds a non-number" end
    if m == nil or v < m then m = v end
  end
  if m ~= m or m == math.huge or m == -math.huge then
    return nil, name .. " reply's score is not a finite number"
  end
  return m
end

function official.combine(replies, ctx)
  local fields = ctx.pair.fields or {}
  local lang, inter = fields.language, fields.intersection_exist == true
  local sc, why_sc = min_score(official.parse(replies.SC), "SC")
  local pq, why_pq = min_score(official.parse(replies.PQ), "PQ")
  if sc ~= nil and pq ~= nil and sc * pq < 0 then   -- math.sqrt raises: the official run stops
    sc, pq, why_sc = nil, nil, ("SC x PQ is negative (SC %s, PQ %s): the official code stops there (math domain error)")
      :format(sc, pq)
  end
  if sc == nil or pq == nil then
    local why = { why_sc, why_pq }
    return nil, "gedit: " .. table.concat(why, "; "),
      { SC = sc, PQ = pq, language = lang, intersection = inter, rule = "random 0-10 guess for an unparsed call" }
  end
  return math.sqrt(sc * pq), { SC = sc, PQ = pq, O = math.sqrt(sc * pq), language = lang, intersection = inter }
end

-- The expected O of a failed pair under the official random guess (0..10
-- uniform, integers) for each unparsed call.
local function expected(sc, pq)
  local function each(v) return v and { v } or { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 } end
  local s, o, p, n = 0.0, 0.0, 0.0, 0
  for _, a in ipairs(each(sc)) do
    for _, b in ipairs(each(pq)) do
      s, p, o, n = s + a, p + b, o + math.sqrt(a * b), n + 1
    end
  end
  return s / n, p / n, o / n
end

-- rows: {category, SC, PQ, O} -> the official table: per task type (in
-- GROUPS order, then any other) and the mean of the task types' means.
local function table_of(rows)
  local per = {}
  for _, r in ipairs(rows) do
    per[r.category] = per[r.category] or { SC = {}, PQ = {}, O = {} }
    for _, k in ipairs({ "SC", "PQ", "O" }) do table.insert(per[r.category][k], r[k]) end
  end
  local order, seen = {}, {}
  for _, g in ipairs(official.GROUPS) do
    if per[g] then order[#order + 1], seen[g] = g, true end
  end
  local rest = {}
  for g in pairs(per) do if not seen[g] then rest[#rest + 1] = g end end
  table.sort(rest)
  for _, g in ipairs(rest) do order[#order + 1] = g end
  -- np.mean as calculate_statistics.py takes it, and the average over its
  -- GROUPS only: another task type is shown but not averaged (extra)
  local out = { order = order, categories = {}, average = {}, missing = {}, extra = rest }
  local means = { SC = {}, PQ = {}, O = {} }
  for _, g in ipairs(order) do
    out.categories[g] = {}
    for _, k in ipairs({ "SC", "PQ", "O" }) do
      local m = protocol.np_mean(per[g][k])
      out.categories[g][k] = m
      if seen[g] then table.insert(means[k], m) end
    end
  end
  for _, k in ipairs({ "SC", "PQ", "O" }) do out.average[k] = protocol.np_mean(means[k]) end
  for _, g in ipairs(official.GROUPS) do
    if not per[g] then out.missing[#out.missing + 1] = g end
  end
  return out
end

function official.summary(rows)
  local by_lang, langs, failed = {}, {}, 0
  local function bucket(lang)
    lang = lang == nil and "(no language)" or tostring(lang)   -- a record without the field
    if not by_lang[lang] then
      by_lang[lang] = { full = {}, inter = {}, full_g = {}, inter_g = {}, failed = { fullset = 0, intersection = 0 } }
      langs[#langs + 1] = lang
    end
    return by_lang[lang]
  end
  for _, r in ipairs(rows) do
    local d = r.dims
    if type(d) == "table" and d.O then
      local b = bucket(d.language)
      local row = { category = r.category, SC = d.SC, PQ = d.PQ, O = d.O }
      for _, t in ipairs(d.intersection and { b.full, b.inter, b.full_g, b.inter_g } or { b.full, b.full_g }) do
        t[#t + 1] = row
      end
    elseif type(r.official) == "table" then
      failed = failed + 1
      local o = r.official
      local b = bucket(o.language)
      local s, p, ov = expected(o.SC, o.PQ)
      local row = { category = r.category, SC = s, PQ = p, O = ov }
      for _, t in ipairs(o.intersection and { b.full_g, b.inter_g } or { b.full_g }) do t[#t + 1] = row end
      b.failed.fullset = b.failed.fullset + 1
      if o.intersection then b.failed.intersection = b.failed.intersection + 1 end
    end
  end
  table.sort(langs)
  local out = {
    method = "GEdit-Bench (VIEScore, stepfun-ai/Step1X-Edit @570eba6): SC = min of [editing success, "
      .. "over-editing], PQ = min of [naturalness, artifacts], O = sqrt(SC*PQ), 0-10; task-type means, "
      .. "then their mean; per language, full set and Intersection_exist subset",
    protocol = "official", languages = {}, language_order = langs, unparsed = failed, tables = {},
  }
  for _, lang in ipairs(langs) do
    local b = by_lang[lang]
    local l = { fullset = table_of(b.full), intersection = table_of(b.inter) }
    if failed > 0 then
      l.with_guess = { fullset = table_of(b.full_g), intersection = table_of(b.inter_g) }
    end
    out.languages[lang] = l
    for _, part in ipairs({ { "fullset", "full set" }, { "intersection", "intersection subset" } }) do
      local t = l[part[1]]
      local tab = { title = ("GEdit-Bench %s, %s (SC / PQ / O, 0-10)"):format(lang, part[2]),
        header = { "task type", "SC", "PQ", "O" }, rows = {} }
      local extra = {}
      for _, g in ipairs(t.extra) do extra[g] = true end
      for _, g in ipairs(t.order) do
        local c = t.categories[g]
        tab.rows[#tab.rows + 1] = { extra[g] and g .. " (not a GEdit task type: not averaged)" or g, c.SC, c.PQ, c.O }
      end
      -- a task type without a scored pair is said, not left out silently
      for _, g in ipairs(t.missing) do tab.rows[#tab.rows + 1] = { g .. " (no scored pair)" } end
      tab.rows[#tab.rows + 1] = { #t.missing > 0 and ("Average of the %d task types scored"):format(#t.order - #t.extra)
        or "Average", t.average.SC, t.average.PQ, t.average.O }
      if #t.missing > 0 then   -- np.mean of an empty type is NaN, and so is the mean over all 11
        tab.rows[#tab.rows + 1] = { "Average as calculate_statistics.py prints it: nan (a task type has no pair)" }
      end
      -- this table's own unparsed pairs (a language's, a subset's), not the run's
      local n_failed = b.failed[part[1]]
      if l.with_guess and n_failed > 0 then
        local w = l.with_guess[part[1]].average
        tab.rows[#tab.rows + 1] = { ("Average, %d unparsed as the official guess (expected)"):format(n_failed),
          w.SC, w.PQ, w.O }
      end
      tab.digits = 3
      out.tables[#out.tables + 1] = tab
    end
  end
  return out
end

return M
