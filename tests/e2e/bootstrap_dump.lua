-- bootstrap_dump.lua — for test_bootstrap.py: the report's bootstrap CIs
-- through the host's C loop and through stats.lua's Lua loop, on the
-- reference data of tests/data/stats_reference.lua plus larger samples,
-- printed as JSON ({c=, lua=} per case, %.17g so the bits compare).
local stats = require "evalhost.stats"
local ref = dofile(assert(os.getenv("STATS_REF"), "STATS_REF unset"))
assert(evalhost.bootstrap and evalhost.bootstrap.means, "this host has no evalhost.bootstrap")

local cases = {}
local function case(name, fn)
  stats.use_c = true
  local c = fn()
  stats.use_c = false
  local l = fn()
  stats.use_c = true
  cases[#cases + 1] = ('"%s":{"c":[%.17g,%.17g],"lua":[%.17g,%.17g]}'):format(name, c[1], c[2], l[1], l[2])
end

-- scores as the journal gives them: integers and floats mixed
local big = {}
for i = 1, 5000 do big[i] = (i * 7919) % 11 + ((i % 3 == 0) and 0.5 or 0) end
for name, xs in pairs(ref.sets) do
  if #xs > 0 then
    case("ref_" .. name, function() return stats.bootstrap_ci(xs, { seed = ref.seed, resamples = ref.resamples }) end)
  end
end
case("big_seed0", function() return stats.bootstrap_ci(big, { seed = 0, resamples = 500 }) end)
case("big_seed_neg", function() return stats.bootstrap_ci(big, { seed = -12345, resamples = 300 }) end)
case("stratified", function()
  local rows = {}
  for i = 1, 900 do
    rows[i] = { category = ({ "a", "b", "c" })[i % 3 + 1], score = (i * 31) % 11 }
  end
  return stats.aggregate(rows, { rule = "categories", order = { "a", "b", "c" }, resamples = 400, seed = 3 }).overall.ci95
end)
io.write("{", table.concat(cases, ","), "}\n")
