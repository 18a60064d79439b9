-- A synthetic run's report written by report.write, as Run:finish writes
-- one, without editing or judging anything: for the report benchmark and
-- the 100k-pair browser test.
--
--   evalhost tools/bench/report/synthetic.lua config/example.yaml \
--     --set script.pairs=100000 --set run.out=/tmp/r [--set script.thumbs=DIR] [--set script.resamples=B]
--     [--set script.lua_bootstrap=true]
--
-- Rows are deterministic (a linear congruential generator): five categories,
-- CJK and Latin instructions, a judge text of about 300 characters, 2% failed
-- pairs, probs over 0..10 on half of them. With script.thumbs (a folder under
-- run.out holding a.jpg and b.jpg) every pair points at those two pictures.
-- Prints "report: <pairs> pairs in <seconds> s" and the paths.
local report = require "evalhost.report"
local stats = require "evalhost.stats"

local h = evalhost
local cfg = h.config
local n = tonumber((cfg.script or {}).pairs) or 1000
local thumbs = (cfg.script or {}).thumbs
local resamples = tonumber((cfg.script or {}).resamples) or 200   -- the CI's bootstrap, as report.bootstrap.resamples
-- script.lua_bootstrap=true: stats.lua's Lua loop instead of the host's C one (the bench's side-by-side line)
if (cfg.script or {}).lua_bootstrap == true then stats.use_c = false end
local out = (cfg.run or {}).out or "outputs/synthetic"
local CATS = { "物理", "环境", "社会", "因果", "指代" }
local VERBS = { "把天空变成晚霞 / turn the sky to sunset", "让杯子倒下 / tip the cup over", "加一场雪 / add snow",
  "移除路人 / remove the passer-by", "把左边的猫换成狗 / swap the left cat for a dog" }

local seed = 12345
local function rnd()
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed / 2147483648
end

local function rows(emit)
  seed = 12345
  local per = n // #CATS
  for ci, cat in ipairs(CATS) do
    local count = ci == #CATS and n - per * (#CATS - 1) or per
    for i = 1, count do
      local id = ("pair_%06d"):format(i)
      local failed = rnd() < 0.02
      local score = not failed and math.floor(rnd() * 101) / 10 or nil
      local probs
      if score and rnd() < 0.5 then
        probs = setmetatable({}, h.json.array_mt)
        local z = 0
        for k = 0, 10 do
          local p = math.exp(-((k - score) ^ 2) / (1 + 3 * rnd()))
          probs[k + 1], z = p, z + p
        end
        for k = 1, 11 do probs[k] = math.floor(probs[k] / z * 1e4) / 1e4 end
      end
      emit({
        category = cat, id = id, index = i, instruction = VERBS[(i % #VERBS) + 1] .. " #" .. i,
        description = "一张照片 / a photo, item " .. i,
        score = score, score_method = score and (probs and "logprobs" or "text") or nil, probs = probs,
        text = failed and nil or ("The edit follows the instruction %s. 编辑基本符合指令，细节保持良好。"):format(
          i % 7 == 0 and "partly" or "well") .. (" Detail %d."):rep(20):format(i, i, i, i, i, i, i, i, i, i, i, i, i, i,
          i, i, i, i, i, i) .. ("\nScore: %s"):format(score and tostring(score) or "?"),
        error = failed and "judge reply has no score" or nil, failed_stage = failed and "score" or nil,
        image = not failed and ("images/%s/%s.png"):format(cat, id) or nil,
        edit_seconds = 0.5 + rnd() * 5, score_seconds = failed and nil or 0.2 + rnd(),
      })
    end
  end
end

local t0 = h.clock()
local light = {}
rows(function(r) light[#light + 1] = { category = r.category, score = r.score } end)
local agg = stats.aggregate(light, { order = CATS, resamples = resamples })
light = nil
local rep = report.build({
  version = h.version,
  run = { started = os.date("!%Y-%m-%dT%H:%M:%SZ"), finished = os.date("!%Y-%m-%dT%H:%M:%SZ"), script = "synthetic",
    schedule = "synthetic", config_path = rawget(h, "config_path"), out = out, run_key = "synthetic" },
  config = cfg, config_hash = h.hash("synthetic"), dataset = { path = "synthetic", hash = h.hash("synthetic") },
  models = { editor = { backend = "builtin", name = "synthetic", device = "cpu" },
    judge = { backend = "builtin", name = "synthetic", device = "cpu" } },
  prompts = {}, swaps = h.swaps(), timings = { edit_seconds = 0, score_seconds = 0 },
  stats = agg, stats_method = stats.method({ resamples = resamples }), rows = rows,
})
local files = thumbs and function(_, row)
  return { thumb_original = thumbs .. "/a.jpg", thumb_edited = row.image and thumbs .. "/b.jpg" or nil,
    original = thumbs .. "/a.jpg" }
end or nil
local paths, err = report.write(rep, out, { files = files, score_range = { 0, 10 } })
if not paths then
  h.log("error", "synthetic: %s", err)
  return 1
end
h.log("info", "report: %d pairs in %.2f s", n, h.clock() - t0)
for _, p in ipairs(paths) do h.log("info", "report: %s", p) end
return 0
