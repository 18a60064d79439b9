-- tools/bench/host_overhead.lua — the host's own work per pair, no model
-- compute (SPEC §8: ≤ 5 ms at 1 MP): what a schedule does around the models
-- for one pair, timed step by step on a 1 MP photo-like image:
--   decode the original from base64 (as the dataset hands it over), encode +
--   save the edited image (temp, fsync, rename), hash it, append two journal
--   records (fsync each), load the edited image back and decode the original
--   again for scoring. Then the same edits through evalhost.image_writer (what
--   Run:edit does): only what stays on the Lua thread is counted.
-- Run through the binary:
--   build/evalhost tools/bench/host_overhead.lua [--set script.pairs=40] [--set script.dir=/tmp/x]
--       [--set script.photo=/usr/share/backgrounds/firstgeneration.jpg] [--set script.model_ms=50]
local cfg = evalhost.config.script or {}
local N = cfg.pairs or 40
local dir = cfg.dir or os.tmpname() .. ".d"
os.remove(dir)
assert(evalhost.fs.mkdir(dir .. "/images"))

-- A 1 MP image with photo-like content (smooth gradients + texture), as JPEG
-- base64: benchmarks ship JPEGs and PNGs; JPEG is the common case.
local W, H = 1152, 864
local function make_source()
  local rows = {}
  for y = 0, H - 1 do
    local row = {}
    for x = 0, W - 1 do
      local n = ((x * 7 + y * 13) ~ (x * y)) % 32
      row[#row + 1] = string.char((x * 255 // W + n) % 256, (y * 255 // H + n) % 256, ((x + y) % 256))
    end
    rows[#rows + 1] = table.concat(row)
  end
  -- a PPM decoded by nobody: go through PNG then JPEG via the Image API
  local ppm = ("P6\n%d %d\n255\n"):format(W, H) .. table.concat(rows)
  local f = assert(io.open(dir .. "/src.ppm", "wb")); f:write(ppm); f:close()
  return ppm
end
make_source()
-- Build the source image through BMP (decoded by stb) to avoid a Pillow dependency.
local function bmp_from_ppm(path)
  local f = assert(io.open(path, "rb")); local data = f:read("a"); f:close()
  local pixels = data:sub(#("P6\n" .. W .. " " .. H .. "\n255\n") + 1)
  local row_bytes = W * 3
  local pad = (4 - row_bytes % 4) % 4
  local out = {}
  for y = H - 1, 0, -1 do
    local row = pixels:sub(y * row_bytes + 1, (y + 1) * row_bytes)
    out[#out + 1] = row:gsub("(.)(.)(.)", "%3%2%1") .. ("\0"):rep(pad)
  end
  local body = table.concat(out)
  local header = "BM" .. string.pack("<I4I2I2I4", 54 + #body, 0, 0, 54)
    .. string.pack("<I4i4i4I2I2I4I4i4i4I4I4", 40, W, H, 1, 24, 0, #body, 2835, 2835, 0, 0)
  return header .. body
end
-- A real photo when one is given (e.g. Debian's ukui-wallpapers), scaled to
-- 1 MP; else the synthetic pattern above (noisier: harder to compress).
local src
if cfg.photo then
  local photo = assert(evalhost.image.load(cfg.photo))
  local pw, ph = photo:size()
  local s = math.sqrt(1e6 / (pw * ph))
  W, H = math.floor(pw * s + 0.5), math.floor(ph * s + 0.5)
  src = assert(photo:resize(W, H))
  photo:close()
else
  src = assert(evalhost.image.decode(bmp_from_ppm(dir .. "/src.ppm")))
end
local b64 = src:b64("jpeg")
src:close()

local j = assert(evalhost.journal.open(dir .. "/journal", "bench"))
local clock = evalhost.clock
local t = { decode = 0, save = 0, hash = 0, journal = 0, reload = 0 }
local total0 = clock()
for i = 1, N do
  local t0 = clock()
  local original = assert(evalhost.image.decode_b64(b64))
  local t1 = clock()
  local rel = ("images/p%03d.png"):format(i)
  assert(original:save(dir .. "/" .. rel))          -- the identity edit, saved
  local t2 = clock()
  local hash = evalhost.hash_file(dir .. "/" .. rel)
  local t3 = clock()
  assert(j:record("edit", "c", "p" .. i, { image = rel, hash = hash, seconds = 0 }))
  original:close()
  local t4 = clock()
  local edited = assert(evalhost.image.load(dir .. "/" .. rel))
  local again = assert(evalhost.image.decode_b64(b64))
  local t5 = clock()
  assert(j:record("score", "c", "p" .. i, { score = 5.0, text = "Score: 5", seconds = 0 }))
  local t6 = clock()
  edited:close(); again:close()
  t.decode = t.decode + (t1 - t0)
  t.save = t.save + (t2 - t1)
  t.hash = t.hash + (t3 - t2)
  t.journal = t.journal + (t4 - t3) + (t6 - t5)
  t.reload = t.reload + (t5 - t4)
end
local total = clock() - total0

-- The schedule's path (Run:edit): the edit goes to evalhost.image_writer,
-- whose thread encodes, fsyncs and renames while the next pair's model call
-- runs; the edit's journal record follows its write's result. The model's
-- compute is stood in for by a wait of script.model_ms (default 50 ms: a
-- real editor takes seconds) that is not counted; what is counted is what
-- the Lua thread spends on the host's own work per pair.
local model_s = (cfg.model_ms or 50) / 1000
local w = assert(evalhost.image_writer.new({ in_flight = 4 }))
-- the reader: the next pair's original decodes on its thread while the
-- model runs (Run:each → Run:prefetch_original), taken when its turn comes
local reader = assert(evalhost.image_writer.new({ in_flight = 2 }))
local ready = {}
local function take(key)
  while not ready[key] do
    for _, r in ipairs(reader:collect(true)) do ready[r.path] = assert(r.image, r.error) end
  end
  local img = ready[key]
  ready[key] = nil
  return img
end
local a = { decode = 0, submit = 0, journal = 0 }
local function settle(list)
  for _, r in ipairs(list) do
    assert(r.hash, r.error)
    assert(j:record("edit", "c", r.path:match("(w%d+)%.png$"), { image = r.path, hash = r.hash, seconds = 0 }))
  end
end
assert(reader:decode("o1", b64, "base64"))
for i = 1, N do
  local t0 = clock()
  local original = take("o" .. i)
  if i < N then assert(reader:decode("o" .. (i + 1), b64, "base64")) end
  local t1 = clock()
  local wait_until = clock() + model_s      -- the editor's compute
  while clock() < wait_until do end
  local t2 = clock()
  assert(w:submit(original, ("%s/images/w%03d.png"):format(dir, i)))
  original:close()
  local t3 = clock()
  local done = w:collect()
  settle(done)
  local t4 = clock()
  a.decode = a.decode + (t1 - t0)
  a.submit = a.submit + (t3 - t2)
  a.journal = a.journal + (t4 - t3)
end
local t5 = clock()
settle(w:flush())
local tail = clock() - t5
w:close()

-- The scoring side as Run:score_pairs does it (batch size 1): the next pair's
-- edited image loads and its original decodes on the reader's thread while
-- the judge (an uncounted wait) scores this one; the score is journaled.
local b = { take = 0, decode = 0, journal = 0 }
local function path_of(i) return ("%s/images/w%03d.png"):format(dir, i) end
assert(reader:load(path_of(1)))
assert(reader:decode("s1", b64, "base64"))
for i = 1, N do
  local t0 = clock()
  local edited = take(path_of(i))
  local t1 = clock()
  local again = take("s" .. i)
  local t2 = clock()
  if i < N then
    assert(reader:load(path_of(i + 1)))
    assert(reader:decode("s" .. (i + 1), b64, "base64"))
  end
  local wait_until = clock() + model_s      -- the judge's compute
  while clock() < wait_until do end
  local t3 = clock()
  assert(j:record("score", "c", "w" .. i, { score = 5.0, text = "Score: 5", seconds = 0 }))
  edited:close(); again:close()
  local t4 = clock()
  b.take = b.take + (t1 - t0)
  b.decode = b.decode + (t2 - t1)
  b.journal = b.journal + (t4 - t3)
end
reader:close()
j:close()
local function ms(x) return x / N * 1000 end
print(("host overhead per pair at %dx%d (%.2f MP), %d pairs, %s"):format(W, H, W * H / 1e6, N, dir))
print(("  decode original (JPEG from base64)  %7.2f ms"):format(ms(t.decode)))
print(("  encode + save edit (PNG, fsync)      %7.2f ms"):format(ms(t.save)))
print(("  hash the saved file                  %7.2f ms"):format(ms(t.hash)))
print(("  journal: 2 records (fsync each)      %7.2f ms"):format(ms(t.journal)))
print(("  load edit + decode original again    %7.2f ms"):format(ms(t.reload)))
print(("  total                                %7.2f ms  (goal ≤ 5 ms)"):format(ms(total)))
print(("  total without the 3 fsyncs' disk     %7.2f ms"):format(ms(total - t.journal)))
print(("with the image writer (Run:edit's path; %.0f ms of model compute between submits, not counted):"):format(model_s * 1000))
print(("  take the prefetched original        %7.2f ms"):format(ms(a.decode)))
print(("  submit the edit (copy + enqueue)     %7.2f ms"):format(ms(a.submit)))
print(("  collect + journal the edit (fsync)   %7.2f ms"):format(ms(a.journal)))
print(("  waiting for the last writes at the end %5.1f ms in all"):format(tail * 1000))
print("  scoring (Run:score_pairs' path, the edited image and the original prefetched):")
print(("  take the prefetched edit             %7.2f ms"):format(ms(b.take)))
print(("  take the prefetched original        %7.2f ms"):format(ms(b.decode)))
print(("  journal the score (fsync)            %7.2f ms"):format(ms(b.journal)))
print(("  critical path per pair               %7.2f ms  (goal ≤ 5 ms; was the total above)"):format(
  ms(a.decode + a.submit + a.journal + b.take + b.decode + b.journal)))
