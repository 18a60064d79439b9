-- lua/evalhost/compare.lua against scipy 1.17.1. The reference numbers were
-- printed by the venv (scipy.stats.wilcoxon(d) and binomtest(k, n) with
-- their defaults, spearmanr, 2*norm.sf(z)); tests/e2e/test_compare.py checks
-- the same functions through the binary against scipy computed live.
local compare = require "evalhost.compare"
local stats = require "evalhost.stats"

local function near(a, b, tol)
  assert.is_number(a)
  assert(math.abs(a - b) <= (tol or 1e-12) * math.max(1e-300, math.abs(b)),
    ("expected %.17g, got %.17g"):format(b, a))
end

local CASES = {
  -- name, differences, method, statistic, wilcoxon p, sign p
  { "exact", { 0.5, -1.25, 2.0, 3.5, -0.75, 1.5, 4.0, 2.25 }, "exact", 5.0, 0.078125, 0.2890625 },
  { "ties and zeros, n <= 13", { 1, 0, -1, 2, 1, 0, 3, -2, 1, 1 }, "permutation", 9.5, 0.3046875, 0.2890625 },
  { "ties, n > 13", { 1, -1, 2, 2, 0, 1, 3, -2, 1, 1, 2, -1, 1, 0, 2, 1, 1, -3, 2, 1 }, "approx", 42.0,
    0.052226949925083026, 0.0308837890625 },
}
local large = {}
for i = 1, 40 do large[i] = ((i * 37) % 23 - 9) + i / 100 end
CASES[#CASES + 1] = { "exact, n = 40", large, "exact", 264.0, 0.049760567819248536, 0.26818725105476915 }

describe("compare", function()
  for _, c in ipairs(CASES) do
    it("Wilcoxon and sign test equal scipy: " .. c[1], function()
      local w = compare.wilcoxon(c[2])
      assert.are.equal(c[3], w.method)
      near(w.statistic, c[4])
      near(w.p, c[5], 1e-9)
      near(compare.sign_test(c[2]).p, c[6], 1e-12)
    end)
  end

  it("more than 50 differences use the normal approximation even without ties", function()
    local d = {}
    for i = 1, 60 do d[i] = (i % 2 == 0 and 1 or -1) * (i + 0.5) end
    local w = compare.wilcoxon(d)
    assert.are.equal("approx", w.method)
    -- R+ = sum of the even positions' ranks; z from its mean and variance
    local rplus = 0
    for i = 2, 60, 2 do rplus = rplus + i end
    near(w.r_plus, rplus)
    near(w.z, (rplus - 60 * 61 / 4) / math.sqrt(60 * 61 * 121 / 24))
  end)

  it("the normal tail equals scipy's 2*norm.sf", function()
    near(compare.normal_two_sided(1.96), 0.04999579029644087, 1e-12)
    near(compare.normal_two_sided(-4.5), 6.795346249460107e-06, 1e-11)
    near(compare.normal_two_sided(0.3), 0.7641771556220948, 1e-13)
  end)

  it("all-zero differences give no p-value, never 0 or 1", function()
    local w = compare.wilcoxon({ 0, 0, 0 })
    assert.is_nil(w.p)
    assert.are.equal(3, w.zeros)
    local s = compare.sign_test({ 0, 0 })
    assert.is_nil(s.p)
    assert.are.equal(2, s.zero)
  end)

  it("an even split has sign p = 1", function()
    assert.are.equal(1.0, compare.sign_test({ 1, -1, 2, -2 }).p)
  end)

  it("Spearman equals scipy.stats.spearmanr, with ties, and is nil for constant input", function()
    near(compare.spearman({ 3, 1, 4, 1, 5, 9, 2, 6, 5, 3 }, { 2, 7, 1, 8, 2, 8, 1, 8, 2, 8 }), 0.13471506281091267)
    assert.is_nil(compare.spearman({ 1, 1, 1 }, { 1, 2, 3 }))
    assert.has_error(function() compare.spearman({ 1 }, { 1, 2 }) end, "compare.spearman: lists of different lengths")
  end)

  it("paired: the CI is the bootstrap of the differences, the mean is B - A", function()
    local a = { 5, 6, 7, 8, 9 }
    local b = { 6, 6, 9, 7, 10 }
    local p = compare.paired(a, b, { resamples = 200, seed = 3 })
    near(p.mean_diff, 0.6)
    near(p.mean_a, 7)
    near(p.mean_b, 7.6)
    local ci = stats.bootstrap_ci({ 1, 0, 2, -1, 1 }, { resamples = 200, seed = 3 })
    assert.are.same(ci, p.ci95)
    assert.are.same({ positive = 3, negative = 1, zero = 1, n = 4, p = 0.625 }, p.sign)
  end)

  it("runs: pairs only one run has, and pairs not scored by both, are listed, not dropped", function()
    local A = {
      { category = "x", id = "p1", score = 5 }, { category = "x", id = "p2", score = 6 },
      { category = "y", id = "p3", score = 7 }, { category = "y", id = "p4", score = 2 },
    }
    local B = {
      { category = "x", id = "p1", score = 8 }, { category = "x", id = "p2", score = nil, error = "judge down" },
      { category = "y", id = "p4", score = 3 }, { category = "y", id = "p5", score = 1 },
    }
    local r = compare.runs(A, B, { resamples = 20 })
    assert.are.same({ "x", "y" }, r.order)
    assert.are.equal(2, r.overall.n)
    near(r.overall.mean_diff, 2)
    near(r.overall.category_mean_diff, 2)
    assert.are.same({ { category = "y", id = "p3", score = 7 } }, r.only_a)
    assert.are.same({ { category = "y", id = "p5", score = 1 } }, r.only_b)
    assert.are.equal("p2", r.unscored[1].id)
    assert.are.equal("judge down", r.unscored[1].error_b)
    assert.are.equal("p1", r.moved[1].id)
    assert.are.equal(3, r.moved[1].diff)
    assert.are.equal(2, #r.moved)
  end)
end)
