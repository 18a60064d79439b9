-- Paired statistics for two runs over the same pairs (compare.lua) and for
-- repeated judgements of the same pairs (judge_repeat.lua).
--
-- Choices, stated here and in the comparison report's `method` block:
-- * differences are B - A, per pair; the mean difference is their mean.
-- * the 95% CI is the paired bootstrap: resample pairs with replacement and
--   take the mean difference, with stats.lua's generator and percentiles
--   (the same numbers as stats.bootstrap_ci over the differences).
-- * sign test: exact two-sided binomial test (p = 1/2) on the non-zero
--   differences, as scipy.stats.binomtest(k, n).pvalue.
-- * Wilcoxon signed-rank: scipy.stats.wilcoxon's defaults (scipy 1.17:
--   zero_method="wilcox" drops zero differences, correction=False,
--   method="auto"). With n the number of differences (zeros included):
--   n <= 50 and no ties or zeros -> exact null distribution; n <= 13 with
--   ties or zeros -> exact permutation over all 2^n sign flips (what scipy's
--   permutation test computes for such n); otherwise the normal
--   approximation with the tie correction, z = (R+ - n'(n'+1)/4) / se, n' the
--   non-zero count. The statistic reported is min(R+, R-) as scipy's.
-- * Spearman's rank correlation: Pearson's r of average ranks (spearmanr).
local stats = require "evalhost.stats"

local compare = {}

------------------------------------------------------------------------
-- Normal tail
------------------------------------------------------------------------

-- erfc(x) for x >= 0, to about 1e-14 relative: the Taylor series of erf
-- below 3, a continued fraction (modified Lentz) above.
local function erfc(x)
  if x < 3 then
    local term, sum, x2 = x, x, x * x
    for n = 1, 200 do
      term = -term * x2 / n
      local t = term / (2 * n + 1)
      sum = sum + t
      if math.abs(t) < 1e-17 * math.abs(sum) then break end
    end
    return 1 - 2 / math.sqrt(math.pi) * sum
  end
  -- erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...))))
  local tiny = 1e-300
  local f = x
  local C, D = x, 0.0
  for k = 1, 300 do
    local a = k / 2
    D = x + a * D
    if D == 0 then D = tiny end
    C = x + a / C
    if C == 0 then C = tiny end
    D = 1 / D
    local delta = C * D
    f = f * delta
    if math.abs(delta - 1) < 1e-16 then break end
  end
  return math.exp(-x * x) / math.sqrt(math.pi) / f
end

-- Two-sided normal p-value for z: 2 * (1 - Phi(|z|)).
function compare.normal_two_sided(z)
  return erfc(math.abs(z) / math.sqrt(2))
end

------------------------------------------------------------------------
-- Ranks
------------------------------------------------------------------------

-- Average ranks (1-based) of xs and the sizes of the tie groups.
function compare.ranks(xs)
  local n = #xs
  local idx = {}
  for i = 1, n do idx[i] = i end
  table.sort(idx, function(a, b)
    if xs[a] ~= xs[b] then return xs[a] < xs[b] end
    return a < b
  end)
  local r, ties = {}, {}
  local i = 1
  while i <= n do
    local j = i
    while j < n and xs[idx[j + 1]] == xs[idx[i]] do j = j + 1 end
    local avg = (i + j) / 2
    for k = i, j do r[idx[k]] = avg end
    ties[#ties + 1] = j - i + 1
    i = j + 1
  end
  return r, ties
end

local function pearson(a, b)
  local n = #a
  if n < 2 then return nil end
  local ma, mb = stats.mean(a), stats.mean(b)
  local sab, saa, sbb = 0.0, 0.0, 0.0
  for i = 1, n do
    local da, db = a[i] - ma, b[i] - mb
    sab, saa, sbb = sab + da * db, saa + da * da, sbb + db * db
  end
  if saa == 0 or sbb == 0 then return nil end   -- constant input: undefined, as scipy's nan
  return sab / math.sqrt(saa * sbb)
end

function compare.spearman(a, b)
  assert(#a == #b, "compare.spearman: lists of different lengths")
  return pearson((compare.ranks(a)), (compare.ranks(b)))
end

------------------------------------------------------------------------
-- Tests
------------------------------------------------------------------------

-- Exact two-sided binomial test with p = 1/2 on the signs of d.
function compare.sign_test(d)
  local pos, neg, zero = 0, 0, 0
  for _, x in ipairs(d) do
    if x > 0 then pos = pos + 1 elseif x < 0 then neg = neg + 1 else zero = zero + 1 end
  end
  local n = pos + neg
  local t = { positive = pos, negative = neg, zero = zero, n = n }
  if n == 0 then return t end
  local k = math.min(pos, neg)
  -- sum of C(n,i)/2^n for i <= k, in logs (2^n underflows for large n)
  local logc, acc = 0.0, 0.0
  local base = n * math.log(2)
  for i = 0, k do
    if i > 0 then logc = logc + math.log(n - i + 1) - math.log(i) end
    acc = acc + math.exp(logc - base)
  end
  t.p = (2 * k == n) and 1.0 or math.min(1.0, 2 * acc)
  return t
end

-- Counts of sign assignments by sum of the positive ranks, ranks doubled to
-- stay integral (ties give halves). Returns counts[0..max], total.
local function rank_sum_counts(r2)
  local counts, max = { [0] = 1 }, 0
  for _, w in ipairs(r2) do
    for s = max, 0, -1 do
      local c = counts[s]
      if c then counts[s + w] = (counts[s + w] or 0) + c end
    end
    max = max + w
  end
  return counts, max
end

function compare.wilcoxon(d)
  local nz, nzero = {}, 0
  for _, x in ipairs(d) do
    if x ~= 0 then nz[#nz + 1] = x else nzero = nzero + 1 end
  end
  local n = #nz
  local out = { n = #d, nonzero = n, zeros = nzero, zero_method = "wilcox", correction = false }
  if n == 0 then return out end
  local abs = {}
  for i = 1, n do abs[i] = math.abs(nz[i]) end
  local r, ties = compare.ranks(abs)
  local rplus, rminus = 0.0, 0.0
  local has_ties = false
  for i = 1, n do
    if nz[i] > 0 then rplus = rplus + r[i] else rminus = rminus + r[i] end
  end
  local tie_sum = 0.0
  for _, t in ipairs(ties) do
    if t > 1 then has_ties = true end
    tie_sum = tie_sum + (t ^ 3 - t)
  end
  out.statistic, out.r_plus, out.r_minus = math.min(rplus, rminus), rplus, rminus
  local mn = n * (n + 1) / 4
  local se = math.sqrt((n * (n + 1) * (2 * n + 1) - tie_sum / 2) / 24)
  out.z = se > 0 and (rplus - mn) / se or nil

  local method
  if #d <= 50 and not has_ties and nzero == 0 then
    method = "exact"
  elseif #d <= 13 then
    method = "permutation"
  else
    method = "approx"
  end
  out.method = method
  if method == "approx" then
    out.p = out.z and compare.normal_two_sided(out.z) or nil
    return out
  end
  -- exact and permutation: the null distribution of R+ over all 2^n' sign
  -- flips of the (tied) ranks; scipy's exact test rounds a half statistic
  -- up for the cdf and down for the sf, the permutation test compares the
  -- value as it is -- with integral ranks both are the same count.
  local r2 = {}
  for i = 1, n do r2[i] = math.floor(2 * r[i] + 0.5) end
  local counts, max = rank_sum_counts(r2)
  local total = 2.0 ^ n
  local obs = math.floor(2 * rplus + 0.5)
  local lo_lim, hi_lim = obs, obs
  if method == "exact" and obs % 2 == 1 then lo_lim, hi_lim = obs + 1, obs - 1 end
  local le, ge = 0.0, 0.0
  for s = 0, max do
    local c = counts[s]
    if c then
      if s <= lo_lim then le = le + c end
      if s >= hi_lim then ge = ge + c end
    end
  end
  out.p = math.min(1.0, 2 * math.min(le, ge) / total)
  return out
end

------------------------------------------------------------------------
-- One comparison
------------------------------------------------------------------------

-- a, b: arrays of numbers of the same length (pair i in both). opts:
-- {resamples=, seed=}. Returns {n, mean_a, mean_b, mean_diff, std_diff,
-- ci95, sign, wilcoxon}.
function compare.paired(a, b, opts)
  assert(#a == #b, "compare.paired: lists of different lengths")
  opts = opts or {}
  local d = {}
  for i = 1, #a do d[i] = b[i] - a[i] end
  return {
    n = #d,
    mean_a = stats.mean(a), mean_b = stats.mean(b),
    mean_diff = stats.mean(d), std_diff = stats.std(d),
    ci95 = stats.bootstrap_ci(d, { resamples = opts.resamples, seed = opts.seed }),
    sign = compare.sign_test(d),
    wilcoxon = compare.wilcoxon(d),
  }
end

-- rows_a, rows_b: arrays of {category=, id=, score=, ...} (runs:scores()).
-- Returns {categories={[cat]=paired}, overall=paired, order, moved (top
-- `top` by |B-A|), only_a, only_b, unscored (scored in neither or one)}.
function compare.runs(rows_a, rows_b, opts)
  opts = opts or {}
  local function key(r) return r.category .. "\t" .. r.id end
  local in_b, order, seen = {}, {}, {}
  for _, r in ipairs(rows_b) do in_b[key(r)] = r end
  local in_a = {}
  for _, r in ipairs(rows_a) do in_a[key(r)] = r end
  local per = {}
  local all_a, all_b, moved, only_a, only_b, unscored = {}, {}, {}, {}, {}, {}
  for _, ra in ipairs(rows_a) do
    local rb = in_b[key(ra)]
    if not rb then
      only_a[#only_a + 1] = { category = ra.category, id = ra.id, score = ra.score }
    elseif type(ra.score) == "number" and type(rb.score) == "number" then
      local c = ra.category
      if not seen[c] then order[#order + 1], seen[c], per[c] = c, true, { a = {}, b = {} } end
      table.insert(per[c].a, ra.score)
      table.insert(per[c].b, rb.score)
      all_a[#all_a + 1], all_b[#all_b + 1] = ra.score, rb.score
      moved[#moved + 1] = { category = c, id = ra.id, a = ra.score, b = rb.score, diff = rb.score - ra.score,
        row_a = ra, row_b = rb }
    else
      unscored[#unscored + 1] = { category = ra.category, id = ra.id,
        a = ra.score, b = rb.score, error_a = ra.error, error_b = rb.error }
    end
  end
  for _, rb in ipairs(rows_b) do
    if not in_a[key(rb)] then only_b[#only_b + 1] = { category = rb.category, id = rb.id, score = rb.score } end
  end
  local categories = {}
  for _, c in ipairs(order) do categories[c] = compare.paired(per[c].a, per[c].b, opts) end
  local overall = compare.paired(all_a, all_b, opts)
  local cm = {}
  for _, c in ipairs(order) do cm[#cm + 1] = categories[c].mean_diff end
  overall.category_mean_diff = stats.mean(cm)
  table.sort(moved, function(x, y)
    local ax, ay = math.abs(x.diff), math.abs(y.diff)
    if ax ~= ay then return ax > ay end
    if x.category ~= y.category then return x.category < y.category end
    return x.id < y.id
  end)
  local top = {}
  for i = 1, math.min(opts.top or 10, #moved) do
    if moved[i].diff ~= 0 then top[#top + 1] = moved[i] end
  end
  return { categories = categories, overall = overall, order = order, moved = top, paired = moved,
    only_a = only_a, only_b = only_b, unscored = unscored }
end

-- What the comparison report says about how its numbers were made.
function compare.method(opts)
  opts = opts or {}
  return {
    difference = "B - A per pair, on pairs both runs scored",
    ci95 = "paired percentile bootstrap of the mean difference (xoshiro256**, seed "
      .. tostring(opts.seed or stats.DEFAULT_SEED) .. ", B=" .. tostring(opts.resamples or stats.DEFAULT_RESAMPLES) .. ")",
    sign_test = "exact two-sided binomial, zeros dropped (scipy.stats.binomtest)",
    wilcoxon = "scipy.stats.wilcoxon defaults (zero_method=wilcox, correction=False, method=auto: "
      .. "exact for n<=50 without ties/zeros, exact permutation for n<=13 with them, else normal approximation)",
  }
end

return compare
