-- lua/evalhost/stats.lua against numpy (tests/data/stats_reference.py).
local stats = require "evalhost.stats"
local ref = dofile("tests/data/stats_reference.lua")

local function near(a, b, tol)
  assert.is_number(a)
  assert(math.abs(a - b) <= (tol or 1e-12) * math.max(1, math.abs(b)),
    ("expected %.17g, got %.17g"):format(b, a))
end

describe("stats", function()
  it("xoshiro256** matches the Python reference bit for bit", function()
    local r = stats.rng(42)
    for i, want in ipairs(ref.prng_seed42) do assert.are.equal(want, r:next(), "draw " .. i) end
    r = stats.rng(-7)
    for i, want in ipairs(ref.prng_seed_minus7) do assert.are.equal(want, r:next(), "draw " .. i) end
  end)

  it("rejects a non-integer seed", function()
    assert.has_error(function() stats.rng(1.5) end, "stats.rng: seed must be an integer")
  end)

  for name, xs in pairs(ref.sets) do
    it("summary of " .. name .. " equals numpy", function()
      local want = ref.expected[name]
      local got = stats.summary(xs, 0, { resamples = ref.resamples, seed = ref.seed })
      assert.are.equal(want.n, got.n)
      near(got.mean, want.mean)
      if want.std == nil then assert.is_nil(got.std) else near(got.std, want.std) end
      near(got.median, want.median)
      assert.are.equal(want.min, got.min)
      assert.are.equal(want.max, got.max)
      near(got.ci95[1], want.ci95[1])
      near(got.ci95[2], want.ci95[2])
    end)
  end

  it("percentile interpolates like numpy's linear method", function()
    local s = { 1.0, 2.0, 4.0, 8.0 }
    assert.are.equal(1.0, stats.percentile_sorted(s, 0))
    assert.are.equal(8.0, stats.percentile_sorted(s, 100))
    near(stats.percentile_sorted(s, 50), 3.0)
    near(stats.percentile_sorted(s, 90), 6.8) -- numpy.percentile([1,2,4,8], 90)
    assert.is_nil(stats.percentile_sorted({}, 50))
  end)

  it("bootstrap is reproducible, seed-dependent and brackets the mean", function()
    local xs = ref.sets.uniform_37
    local a = stats.bootstrap_ci(xs, { seed = 7 })
    local b = stats.bootstrap_ci(xs, { seed = 7 })
    local c = stats.bootstrap_ci(xs, { seed = 8 })
    assert.are.same(a, b)
    assert.are_not.same(a, c)
    local m, sd = stats.mean(xs), stats.std(xs)
    assert.is_true(a[1] < m and m < a[2])
    -- width close to the normal approximation 2 * 1.96 * sd / sqrt(n)
    local w, approx = a[2] - a[1], 2 * 1.96 * sd / math.sqrt(#xs)
    assert.is_true(math.abs(w - approx) / approx < 0.15, ("width %g vs %g"):format(w, approx))
  end)

  it("bootstrap of a constant sample is that constant", function()
    assert.are.same({ 7.0, 7.0 }, stats.bootstrap_ci({ 7.0, 7.0, 7.0 }))
  end)

  it("an empty sample has n=0 and no numbers, not zeros", function()
    local s = stats.summary({}, 3)
    assert.are.equal(0, s.n)
    assert.are.equal(3, s.failed)
    assert.is_nil(s.mean)
    assert.is_nil(s.std)
    assert.is_nil(s.min)
    assert.is_nil(s.ci95)
  end)

  describe("aggregate", function()
    local function rows()
      local r = {}
      for _, x in ipairs(ref.sets.uniform_37) do r[#r + 1] = { category = "物理", score = x } end
      for _, x in ipairs(ref.sets.ties_odd) do r[#r + 1] = { category = "环境", score = x } end
      r[#r + 1] = { category = "物理", error = "judge reply has no score" }
      r[#r + 1] = { category = "社会", error = "image: bad base64" }
      return r
    end
    local opts = { resamples = ref.resamples, seed = ref.seed, order = { "物理", "环境" } }

    it("counts failed pairs apart and never as 0", function()
      local a = stats.aggregate(rows(), opts)
      assert.are.equal(37, a.categories["物理"].n)
      assert.are.equal(1, a.categories["物理"].failed)
      near(a.categories["物理"].mean, ref.expected.uniform_37.mean)
      assert.are.equal(0, a.categories["社会"].n)
      assert.are.equal(1, a.categories["社会"].failed)
      assert.are.equal(44, a.overall.n)
      assert.are.equal(2, a.overall.failed)
      assert.are.same({ "物理", "环境", "社会" }, a.order)
    end)

    it("rule pairs: mean over all pairs, equal to numpy", function()
      local a = stats.aggregate(rows(), opts)
      assert.are.equal("pairs", a.rule)
      near(a.overall.mean, ref.aggregate.pair_mean)
      near(a.overall.std, ref.aggregate.overall_std)
      near(a.overall.median, ref.aggregate.overall_median)
      near(a.overall.ci95[1], ref.aggregate.pairs_ci95[1])
      near(a.overall.ci95[2], ref.aggregate.pairs_ci95[2])
      near(a.overall.category_mean, ref.aggregate.category_mean)
    end)

    it("rule categories: mean of category means with a stratified bootstrap", function()
      local o = { rule = "categories", resamples = ref.resamples, seed = ref.seed, order = { "物理", "环境" } }
      local a = stats.aggregate(rows(), o)
      near(a.overall.mean, ref.aggregate.category_mean)
      near(a.overall.pair_mean, ref.aggregate.pair_mean)
      near(a.overall.ci95[1], ref.aggregate.categories_ci95[1])
      near(a.overall.ci95[2], ref.aggregate.categories_ci95[2])
    end)

    it("rejects an unknown rule by name", function()
      assert.has_error(function() stats.aggregate({}, { rule = "median" }) end,
        'stats: unknown aggregate rule "median" (pairs or categories)')
    end)
  end)
end)
