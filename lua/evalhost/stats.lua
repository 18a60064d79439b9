-- Statistics for the report: n, mean, sample std (ddof = 1), median, min,
-- max and a percentile-bootstrap 95% CI of the mean, per category and overall.
--
-- Choices (stated here and in the report's `stats` block):
-- * std is the sample standard deviation (divides by n-1); nil when n < 2.
-- * median, like numpy, averages the two middle values when n is even.
-- * the CI resamples the scores B times (default 2000) with xoshiro256**
--   seeded through splitmix64 (default seed 0), takes the mean of each
--   resample and reports numpy's "linear" 2.5th and 97.5th percentiles. The
--   PRNG is ours, not math.random's, so the interval is the same on every
--   Lua build and reproducible in Python (tests/data/stats_reference.py).
-- * every category's CI starts from the same seed, so a category's interval
--   does not depend on which other categories were run.
-- * failed pairs have no score: they are counted in `failed`, never as 0.
-- * overall: rule "pairs" is the mean over all scored pairs; rule
--   "categories" is the mean of the category means (GEdit-Bench style), with
--   a stratified bootstrap (resample within each category).
local stats = {}

stats.DEFAULT_RESAMPLES = 2000
stats.DEFAULT_SEED = 0

-- xoshiro256** (Blackman & Vigna) on Lua 5.4's wrapping 64-bit integers.
local Rng = {}
Rng.__index = Rng

local function splitmix64(state)
  state = state + 0x9e3779b97f4a7c15
  local z = state
  z = (z ~ (z >> 30)) * 0xbf58476d1ce4e5b9
  z = (z ~ (z >> 27)) * 0x94d049bb133111eb
  return state, z ~ (z >> 31)
end

local function rotl(x, k) return (x << k) | (x >> (64 - k)) end

function stats.rng(seed)
  assert(math.type(seed) == "integer", "stats.rng: seed must be an integer")
  local s, st = {}, seed
  for i = 1, 4 do st, s[i] = splitmix64(st) end
  return setmetatable({ s = s }, Rng)
end

function Rng:next()
  local s = self.s
  local result = rotl(s[2] * 5, 7) * 9
  local t = s[2] << 17
  s[3] = s[3] ~ s[1]
  s[4] = s[4] ~ s[2]
  s[2] = s[2] ~ s[3]
  s[1] = s[1] ~ s[4]
  s[3] = s[3] ~ t
  s[4] = rotl(s[4], 45)
  return result
end

-- Uniform integer in [1, n]: the top 53 bits as a float in [0,1), times n.
function Rng:index(n)
  return math.floor(((self:next() >> 11) * 2.0 ^ -53) * n) + 1
end

local function sum(xs)
  local acc = 0.0
  for i = 1, #xs do acc = acc + xs[i] end
  return acc
end

local function sorted_copy(xs)
  local c = table.move(xs, 1, #xs, 1, {})
  table.sort(c)
  return c
end

-- numpy.percentile(xs, q) with the default "linear" method, including its
-- two-sided lerp so the results match to the last bit.
function stats.percentile_sorted(sorted, q)
  local n = #sorted
  if n == 0 then return nil end
  local pos = q / 100 * (n - 1)
  local lo = math.floor(pos)
  local t = pos - lo
  local a = sorted[lo + 1]
  local b = sorted[math.min(lo + 2, n)]
  local d = b - a
  if t >= 0.5 then return b - d * (1 - t) end
  return a + d * t
end

function stats.mean(xs)
  if #xs == 0 then return nil end
  return sum(xs) / #xs
end

function stats.std(xs)
  local n = #xs
  if n < 2 then return nil end
  local m = sum(xs) / n
  local acc = 0.0
  for i = 1, n do
    local d = xs[i] - m
    acc = acc + d * d
  end
  return math.sqrt(acc / (n - 1))
end

function stats.median(xs)
  return stats.percentile_sorted(sorted_copy(xs), 50)
end

-- Percentile bootstrap CI of the mean. `groups` is an array of score arrays;
-- each resample draws len(g) values from every group g with replacement and
-- combines the group means with `combine` (one group: its mean).
-- The C loop (evalhost.bootstrap.means, the same draws and sums in the same
-- order: the same bits) when the host has it; this Lua copy otherwise.
local function c_means()
  local h = rawget(_G, "evalhost")
  if h == nil then
    local ok, m = pcall(require, "evalhost")
    h = ok and type(m) == "table" and m or nil
  end
  local b = h and rawget(h, "bootstrap")
  return b and b.means or nil
end
stats.use_c = true   -- false forces the Lua loop (tests compare the two)

local function bootstrap(groups, combine, resamples, seed, level)
  local means_c = stats.use_c and c_means()
  if means_c then
    local means = means_c(groups, resamples, seed)
    table.sort(means)
    local alpha = (1 - level) / 2 * 100
    return { stats.percentile_sorted(means, alpha), stats.percentile_sorted(means, 100 - alpha) }
  end
  -- Rng:next and Rng:index inlined on locals: the same draws, the same sums,
  -- several times faster (2000 resamples of 100k pairs is 2e8 draws)
  local st = stats.rng(seed).s
  local s1, s2, s3, s4 = st[1], st[2], st[3], st[4]
  local floor, scale = math.floor, 2.0 ^ -53
  local means = {}
  local gmeans = {}
  for b = 1, resamples do
    for g = 1, #groups do
      local xs = groups[g]
      local n = #xs
      local acc = 0.0
      for _ = 1, n do
        local r = s2 * 5
        r = ((r << 7) | (r >> 57)) * 9
        local t = s2 << 17
        s3 = s3 ~ s1
        s4 = s4 ~ s2
        s2 = s2 ~ s3
        s1 = s1 ~ s4
        s3 = s3 ~ t
        s4 = (s4 << 45) | (s4 >> 19)
        acc = acc + xs[floor(((r >> 11) * scale) * n) + 1]
      end
      gmeans[g] = acc / n
    end
    means[b] = combine(gmeans)
  end
  table.sort(means)
  local alpha = (1 - level) / 2 * 100
  return { stats.percentile_sorted(means, alpha), stats.percentile_sorted(means, 100 - alpha) }
end

local function mean_of(xs) return sum(xs) / #xs end

function stats.bootstrap_ci(xs, opts)
  opts = opts or {}
  if #xs == 0 then return nil end
  return bootstrap({ xs }, function(m) return m[1] end,
    opts.resamples or stats.DEFAULT_RESAMPLES, opts.seed or stats.DEFAULT_SEED, opts.level or 0.95)
end

-- Summary of one list of scores plus the number of failed pairs.
function stats.summary(xs, failed, opts)
  local s = sorted_copy(xs)
  return {
    n = #xs,
    failed = failed or 0,
    mean = stats.mean(xs),
    std = stats.std(xs),
    median = stats.percentile_sorted(s, 50),
    min = s[1],
    max = s[#s],
    ci95 = stats.bootstrap_ci(xs, opts),
  }
end

local RULES = { pairs = true, categories = true }

-- rows: array of {category=, score=number|nil}; opts: {rule=, resamples=,
-- seed=, order=array of category names}. Returns {categories={[cat]=summary},
-- overall=summary with pair_mean and category_mean, order=array, rule=}.
function stats.aggregate(rows, opts)
  opts = opts or {}
  local rule = opts.rule or "pairs"
  if not RULES[rule] then
    error(("stats: unknown aggregate rule %q (pairs or categories)"):format(tostring(rule)), 2)
  end
  local bopts = { resamples = opts.resamples, seed = opts.seed }
  local order, seen = {}, {}
  for _, c in ipairs(opts.order or {}) do
    if not seen[c] then order[#order + 1], seen[c] = c, true end
  end
  local scores, failed = {}, {}
  for _, r in ipairs(rows) do
    local c = r.category
    if not seen[c] then order[#order + 1], seen[c] = c, true end
    scores[c] = scores[c] or {}
    failed[c] = failed[c] or 0
    if type(r.score) == "number" then
      table.insert(scores[c], r.score)
    else
      failed[c] = failed[c] + 1
    end
  end

  local categories, all, groups, cmeans = {}, {}, {}, {}
  local nfailed = 0
  for _, c in ipairs(order) do
    local xs = scores[c] or {}
    categories[c] = stats.summary(xs, failed[c] or 0, bopts)
    nfailed = nfailed + (failed[c] or 0)
    table.move(xs, 1, #xs, #all + 1, all)
    if #xs > 0 then
      groups[#groups + 1] = xs
      cmeans[#cmeans + 1] = categories[c].mean
    end
  end

  local overall = stats.summary(all, nfailed, bopts)
  overall.pair_mean = overall.mean
  overall.category_mean = stats.mean(cmeans)
  if rule == "categories" then
    overall.mean = overall.category_mean
    overall.ci95 = #groups > 0 and bootstrap(groups, mean_of,
      opts.resamples or stats.DEFAULT_RESAMPLES, opts.seed or stats.DEFAULT_SEED, 0.95) or nil
  end
  return { categories = categories, overall = overall, order = order, rule = rule }
end

-- What the report says about how these numbers were made.
function stats.method(opts)
  opts = opts or {}
  return {
    std = "sample (ddof=1)",
    median = "midpoint of the two middle values when n is even",
    ci95 = "percentile bootstrap of the mean",
    resamples = opts.resamples or stats.DEFAULT_RESAMPLES,
    seed = opts.seed or stats.DEFAULT_SEED,
    rng = "xoshiro256** seeded by splitmix64",
  }
end

return stats
