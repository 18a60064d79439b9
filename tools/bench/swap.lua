-- tools/bench/swap.lua — the evalhost side of tools/bench/swap: a synthetic
-- torch model of many parameters, loaded and unloaded through the real Model
-- API, timed by the host's swap accounting.  After every load a forward
-- reads every weight back; its output (a PNG, base64) goes to the driver,
-- which checks it against the known value.  Parameters arrive in EH_SWAP as
-- JSON {bytes=, params=, reps=, dtype=, device=, pixel_png=}; one JSON line
-- goes to stdout.
local eh = require "evalhost"
local P = assert(eh.json.decode(assert(os.getenv("EH_SWAP"), "EH_SWAP not set")))

local m = assert(eh.model.open({backend = "torch", role = "editor", synthetic_bytes = P.bytes,
                                synthetic_params = P.params, dtype = P.dtype, device = P.device}, "editor"))
local img = assert(eh.image.decode_b64(P.pixel_png))

local function stats() return eh.swaps().by_model.editor end

local function checked_forward()
  local out = assert(m:edit(img, "check"))
  local b64 = out:b64("png")
  out:close()
  return b64
end

local t0 = eh.clock()
assert(m:load())
local first_total = eh.clock() - t0
local first_copy = stats().load_seconds
local loads, unloads, checks = {}, {}, { checked_forward() }
for r = 1, P.reps do
  local u0 = stats().unload_seconds
  assert(m:unload())
  unloads[r] = stats().unload_seconds - u0
  local l0 = stats().load_seconds
  assert(m:load())
  loads[r] = stats().load_seconds - l0
  checks[#checks + 1] = checked_forward()
end
local s = stats()
io.stdout:write(eh.json.encode({
  device = m:info().device, dtype = m:info().dtype, footprint = m:footprint(),
  bytes_per_load = s.bytes // s.loads,
  to_host_seconds = first_total - first_copy, first_copy_seconds = first_copy,
  load_seconds = loads, unload_seconds = unloads, checks = checks,
}), "\n")
m:close()
