-- What a schedule does first: open the benchmark, list its categories, take
-- the first pair and decode its image.  Run by tools/bench/dataset.
local h = require "evalhost"

local function status_mib(key)
  local f = io.open("/proc/self/status")
  if not f then return -1 end
  local text = f:read("a")
  f:close()
  return (tonumber(text:match(key .. ":%s*(%d+)")) or -1) / 1024
end

local t0, c0 = h.clock(), os.clock()   -- wall and CPU (busy machines slow the wall clock)
local ds = assert(h.dataset.open(h.config.script.data))
local t_open, c_open = h.clock() - t0, os.clock() - c0
local cats = ds:categories()
local _, pair = ds:pairs(cats[1])()
local img = assert(pair:image())
local t_first, c_first = h.clock() - t0, os.clock() - c0
local w, hh = img:size()
img:close()
local f = assert(io.open(h.config.script.data))
local size = f:seek("end") / 2 ^ 20
f:close()
print(("open          %.3f s wall, %.3f s CPU (%d pairs in %d categories)"):format(t_open, c_open, #ds, #cats))
print(("first pair    %.3f s wall, %.3f s CPU (%s/%s, image %dx%d decoded)"):format(
  t_first, c_first, cats[1], pair.id, w, hh))
print(("RSS           %.1f MiB now, peak %.1f MiB = %.2f%% of the file (%.0f MiB)"):format(
  status_mib("VmRSS"), status_mib("VmHWM"), 100 * status_mib("VmHWM") / size, size))
ds:close()
return 0
