-- A stand-in for the C host's `evalhost` table, so the Lua library can be
-- specified under plain lua5.4 + busted. It follows the contract in SPEC §3:
-- JSON via dkjson, YAML via lyaml, real files for fs, and fake images,
-- models and datasets whose behaviour the specs control.
local dkjson = require "dkjson"
local lyaml = require "lyaml"

local fake = {}

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- FNV-1a 64 as 32 hex chars: deterministic and content-sensitive, enough for specs.
local function fnv(s)
  local h = -3750763034362895579 -- 0xcbf29ce484222325
  for i = 1, #s do h = (h ~ s:byte(i)) * 0x100000001b3 end
  return ("%016x%016x"):format(h, h ~ #s)
end

function fake.tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(os.execute("mkdir -p " .. shell_quote(p)))
  return p
end

function fake.rmtree(p) os.execute("rm -rf " .. shell_quote(p)) end

------------------------------------------------------------------------
-- Images: a table {w, h, data}; saved as text so that load reads it back.
------------------------------------------------------------------------
local Image = {}
Image.__index = Image
Image.__call = function(img) return img end   -- as the C Image: lets pair.image serve pair:image()

local function check(img)
  assert(not img.closed, "attempt to use a closed image")
  return img
end

function fake.image(w, h, data, state)
  local img = setmetatable({ w = w, h = h, data = data, state = state }, Image)
  if state then state.live_images = state.live_images + 1 end
  return img
end

function Image:size() check(self) return self.w, self.h end
function Image:resize(w, h) check(self) return fake.image(w, h, self.data .. "@" .. w .. "x" .. h, self.state) end
function Image:png() check(self) return "PNG:" .. self.data end
function Image:jpeg(q) check(self) return ("JPEG%d:%s"):format(q or 90, self.data) end
function Image:b64(fmt) check(self) return ("B64(%s):%s"):format(fmt or "png", self.data) end
function Image:save(path)
  check(self)
  if self.state and self.state.fail_save then return nil, "save: disk full (" .. path .. ")" end
  local f, err = io.open(path, "wb")
  if not f then return nil, err end
  f:write(("%d %d %s"):format(self.w, self.h, self.data))
  f:close()
  return true
end
function Image:close()
  if not self.closed and self.state then self.state.live_images = self.state.live_images - 1 end
  self.closed = true
end

------------------------------------------------------------------------
-- ImageWriter: images saved later, as by the C writer's thread. A write
-- finishes when more than in_flight are queued (the C submit waits for
-- room) or on flush, so results lag behind submits as they would.
------------------------------------------------------------------------
local Writer = {}
Writer.__index = Writer

local function check_writer(w)
  assert(not w.closed, "attempt to use a closed ImageWriter")
  return w
end

function Writer:write_oldest()
  local job = table.remove(self.queue, 1)
  if job.decode then   -- pair:image_source()'s text: "w h data", or "bad"
    local w, h, data = job.data:match("^(%d+) (%d+) (.*)$")
    local img = w and fake.image(tonumber(w), tonumber(h), data, self.state)
    self.done[#self.done + 1] = { path = job.path, image = img, error = not img and "not an image" or nil }
    return
  end
  if job.load then
    local img, err = self.load_image(job.path)
    self.done[#self.done + 1] = { path = job.path, image = img, error = err }
    return
  end
  if job.convert then   -- decoded as a decode or a load, shrunk to fit, then written
    local img, err
    if job.kind == "path" then
      img, err = self.load_image(job.data)
    else
      local w, h, data = job.data:match("^(%d+) (%d+) (.*)$")
      img = w and fake.image(tonumber(w), tonumber(h), data, self.state)
      err = not img and "not an image" or nil
    end
    if not img then
      self.done[#self.done + 1] = { path = job.path, error = job.path .. ": " .. tostring(err) }
      return
    end
    local s = job.max_side or 0
    local scale = (s > 0 and math.max(img.w, img.h) > s) and s / math.max(img.w, img.h) or 1
    job.w, job.h, job.data = math.max(1, math.floor(img.w * scale + 0.5)), math.max(1, math.floor(img.h * scale + 0.5)), img.data
    img:close()
  end
  local copy = setmetatable({ w = job.w, h = job.h, data = job.data, state = self.state }, Image)
  local ok, err = copy:save(job.path)
  if ok then
    local f = io.open(job.path, "rb")
    local bytes = f:read("a")
    f:close()
    self.done[#self.done + 1] = { path = job.path, hash = self.hash(bytes) }
  else
    self.done[#self.done + 1] = { path = job.path, error = err }
  end
end

function Writer:submit(img, path)
  check_writer(self)
  check(img)
  self.queue[#self.queue + 1] = { w = img.w, h = img.h, data = img.data, path = path }
  if self.state then
    self.state.writes_submitted = (self.state.writes_submitted or 0) + 1
    self.state.max_writes_queued = math.max(self.state.max_writes_queued or 0, #self.queue)
  end
  while #self.queue > self.in_flight do self:write_oldest() end
  return true
end

function Writer:load(path)
  check_writer(self)
  local held = #self.queue
  for _, r in ipairs(self.done) do if r.image then held = held + 1 end end
  if held >= self.in_flight then
    return nil, ("image writer: %d loads not collected (in flight at most %d; %s)"):format(held, self.in_flight, path)
  end
  self.queue[#self.queue + 1] = { load = true, path = path }
  if self.state then self.state.loads_submitted = (self.state.loads_submitted or 0) + 1 end
  return true
end

function Writer:decode(key, data, kind)
  check_writer(self)
  assert(kind == "base64" or kind == "bytes" or kind == "path", "decode: unknown kind")
  local held = #self.queue
  for _, r in ipairs(self.done) do if r.image then held = held + 1 end end
  if held >= self.in_flight then return nil, "image writer: loads not collected" end
  self.queue[#self.queue + 1] = { decode = true, path = key, data = data }
  if self.state then self.state.decodes_submitted = (self.state.decodes_submitted or 0) + 1 end
  return true
end

function Writer:convert(path, data, kind, max_side)
  check_writer(self)
  assert(kind == "base64" or kind == "bytes" or kind == "path", "convert: unknown kind")
  self.queue[#self.queue + 1] = { convert = true, path = path, data = data, kind = kind, max_side = max_side }
  if self.state then self.state.converts_submitted = (self.state.converts_submitted or 0) + 1 end
  while #self.queue > self.in_flight do self:write_oldest() end
  return true
end

function Writer:collect(wait)
  check_writer(self)
  if wait and #self.done == 0 and #self.queue > 0 then self:write_oldest() end   -- the C collect(true) waits for the oldest
  local out = self.done
  self.done = {}
  return out
end

function Writer:flush()
  check_writer(self)
  while #self.queue > 0 do self:write_oldest() end
  return self:collect()
end

function Writer:pending() check_writer(self) return #self.queue + #self.done end

function Writer:close()
  if self.closed then return end
  while #self.queue > 0 do self:write_oldest() end
  for _, r in ipairs(self.done) do if r.image then r.image:close() end end
  self.closed = true
end

------------------------------------------------------------------------
-- Models: editor appends the instruction; judge scores from the data.
------------------------------------------------------------------------
local Model = {}
Model.__index = Model

function Model:state() return self.where end
function Model:footprint() return self.spec.footprint or 1000 end
function Model:info()
  return { section = self.section, backend = self.spec.backend or "builtin", name = self.spec.name,
    device = self.spec.device or "cpu", dtype = "float32", batch_size = self.spec.batch_size or 1 }
end

function Model:load()
  local st = self.state_
  if self.spec.load_error then return nil, self.spec.load_error end
  if self.where == "device" then return true end
  -- The C host's rule: an exchange is a load after a *different* model's unload.
  if st.last_unloaded and st.last_unloaded ~= self then st.swaps.count = st.swaps.count + 1 end
  st.last_unloaded = nil
  self.where = "device"
  st.swaps.moves = st.swaps.moves + 1
  st.events[#st.events + 1] = "load " .. self.section
  return true
end

function Model:unload()
  local st = self.state_
  if self.where ~= "device" then return true end
  self.where = "host"
  st.last_unloaded = self
  st.swaps.moves = st.swaps.moves + 1
  st.events[#st.events + 1] = "unload " .. self.section
  return true
end

function Model:edit(img, instruction)
  assert(self.where == "device", "edit with the editor off the device")
  local st = self.state_
  st.events[#st.events + 1] = "edit " .. instruction
  if self.spec.fail_on and instruction:find(self.spec.fail_on, 1, true) then
    return nil, "editor: refused (" .. instruction .. ")"
  end
  return fake.image(img.w, img.h, img.data .. "+" .. instruction, st)
end

function Model:score(req)
  assert(self.where == "device", "score with the judge off the device")
  local st = self.state_
  st.events[#st.events + 1] = "score " .. req.id
  st.requests[#st.requests + 1] = req
  if self.spec.fail_on and req.instruction:find(self.spec.fail_on, 1, true) then
    return nil, "judge: HTTP 503 after 3 retries"
  end
  if self.spec.no_score then return { text = "looks fine" } end
  if self.spec.fixed_score then return { score = self.spec.fixed_score, text = "Score: ?" } end
  -- A deterministic score from the edited image's content.
  local h = 0
  for i = 1, #req.image.data do h = (h * 31 + req.image.data:byte(i)) % 1000003 end
  return { score = h % 11 + 0.0, text = "Score: " .. (h % 11) }
end

-- As the C binding: per-item failures in the results, a failure of the
-- whole call (spec.down: "the server looks down") as nil, msg, {whole=true}.
function Model:score_batch(list)
  local st = self.state_
  st.batches = st.batches or {}
  st.batches[#st.batches + 1] = #list
  if self.spec.down then
    return nil, "judge: the server looks down (5 failures in a row)", { code = "ENET", whole = true }
  end
  local out = {}
  for i, req in ipairs(list) do
    local res, err = self:score(req)
    out[i] = res or { error = err, code = "EMODEL" }
  end
  return out
end

function Model:close() self.closed = true end

------------------------------------------------------------------------
-- Datasets from Lua tables: {categories = {...}, data = {[cat] = {pairs}}}.
------------------------------------------------------------------------
local Dataset = {}
Dataset.__index = Dataset
Dataset.__len = function(self)
  local n = 0
  for _, c in ipairs(self.spec.categories) do n = n + #self.spec.data[c] end
  return n
end

local function make_pair(ds, cat, i)
  local raw = ds.spec.data[cat][i]
  local p = { id = raw.id, category = cat, index = i, instruction = raw.instruction,
    description = raw.description, fields = {}, error = raw.error }
  function p.image()
    if raw.bad_image then return nil, "image: not a PNG/JPEG/WebP (" .. cat .. "/" .. tostring(raw.id) .. ")" end
    if ds.state then ds.state.inline_decodes = (ds.state.inline_decodes or 0) + 1 end
    return fake.image(raw.w or 64, raw.h or 48, "img:" .. tostring(raw.id), ds.state)
  end
  function p.image_source()   -- what the fake writer's decode turns into the same image
    if raw.bad_image then return "base64", "bad" end
    return "base64", ("%d %d img:%s"):format(raw.w or 64, raw.h or 48, tostring(raw.id))
  end
  return p
end

function Dataset:categories()
  return table.move(self.spec.categories, 1, #self.spec.categories, 1, {})
end
function Dataset:count(cat) return #self.spec.data[cat] end
function Dataset:pair(cat, i) return make_pair(self, cat, i) end
function Dataset:pairs(cat)
  local n = #self.spec.data[cat]
  return function(_, i)
    if i >= n then return nil end
    return i + 1, make_pair(self, cat, i + 1)
  end, self, 0
end
function Dataset:close() self.closed = true end

------------------------------------------------------------------------
-- The host table.
------------------------------------------------------------------------
function fake.new(opts)
  opts = opts or {}
  local st = {
    logs = {}, bars = {}, events = {}, requests = {}, live_images = 0,
    swaps = { count = 0, moves = 0, bytes = 0, seconds = 0.0, by_model = {} },
    datasets = opts.datasets or {}, gpu = opts.gpu or { free = 0, total = 0 },
    clock = 0.0,
  }
  local null = dkjson.null
  local function load_image(path)
    local f = io.open(path, "rb")
    if not f then return nil, "image: cannot open " .. path end
    local d = f:read("a")
    f:close()
    local w, hh, data = d:match("^(%d+) (%d+) (.*)$")
    if not w then return nil, "image: not an image (" .. path .. ")" end
    return fake.image(tonumber(w), tonumber(hh), data, st)
  end
  local h = {
    version = "0.0-spec",
    config = opts.config or {},
    config_path = opts.config_path,
    script_path = opts.script_path,
    options = opts.options or { resume = "no", quiet = true },
    args = {},
    json = {
      null = null,
      array_mt = { __jsontype = "array" },
      encode = function(v, o) return dkjson.encode(v, { indent = o and o.pretty }) end,
      decode = function(s)
        local v, _, err = dkjson.decode(s, 1, null)
        if err then return nil, err end
        return v
      end,
    },
    yaml = {
      load = function(path)
        local f, err = io.open(path, "rb")
        if not f then return nil, err end
        local text = f:read("a")
        f:close()
        local ok, v = pcall(lyaml.load, text)
        if not ok then return nil, path .. ": " .. tostring(v) end
        return v
      end,
    },
    hash = fnv,
    hash_file = function(path)
      local f, err = io.open(path, "rb")
      if not f then return nil, err end
      local d = f:read("a")
      f:close()
      return fnv(d)
    end,
    fs = {
      mkdir = function(p)
        if opts.readonly and p:find(opts.readonly, 1, true) == 1 then return nil, "Permission denied (" .. p .. ")" end
        local ok = os.execute("mkdir -p " .. shell_quote(p) .. " 2>/dev/null")
        if not ok then return nil, "mkdir failed (" .. p .. ")" end
        return true
      end,
      mkdir_beneath = function(root, rel)   -- the real one refuses symlinks below root
        if rel:sub(1, 1) == "/" or ("/" .. rel .. "/"):find("/../", 1, true) then
          return nil, rel .. ": leaves the folder (refused)"
        end
        local p = root .. "/" .. rel
        if opts.readonly and p:find(opts.readonly, 1, true) == 1 then return nil, "Permission denied (" .. p .. ")" end
        if not os.execute("mkdir -p " .. shell_quote(p) .. " 2>/dev/null") then return nil, "mkdir failed (" .. p .. ")" end
        return true
      end,
      write = function(p, data)
        local f, err = io.open(p, "wb")
        if not f then return nil, err end
        f:write(data)
        f:close()
        return true
      end,
      read = function(p)
        local f, err = io.open(p, "rb")
        if not f then return nil, err end
        local d = f:read("a")
        f:close()
        return d
      end,
      exists = function(p)
        local f = io.open(p, "rb")
        if f then f:close() return true end
        return false
      end,
      list = function(dir)
        local names = {}
        local pipe = io.popen("ls -1 " .. shell_quote(dir) .. " 2>/dev/null")
        for line in pipe:lines() do names[#names + 1] = line end
        pipe:close()
        return names
      end,
    },
    image_writer = {
      new = function(o)
        return setmetatable({ in_flight = (o or {}).in_flight or 4, queue = {}, done = {}, state = st, hash = fnv,
          load_image = load_image }, Writer)
      end,
    },
    image = { load = load_image },
    dataset = {
      open = function(path)
        local spec = st.datasets[path]
        if not spec then return nil, "dataset: cannot open " .. path .. ": No such file or directory" end
        return setmetatable({ spec = spec, state = st }, Dataset)
      end,
    },
    model = {
      open = function(spec, section)
        if spec.name == "nonexistent" then return nil, "unknown builtin model \"nonexistent\"" end
        return setmetatable({ spec = spec, section = section, where = "disk", state_ = st }, Model)
      end,
    },
    gpu = { memory = function() return st.gpu end },
    swaps = function()
      local s = {}
      for k, v in pairs(st.swaps) do s[k] = v end
      return s
    end,
    log = function(level, fmt, ...) st.logs[#st.logs + 1] = { level = level, msg = fmt:format(...) } end,
    clock = function()
      st.clock = st.clock + 0.25
      return st.clock
    end,
    progress = function(label, total)
      local bar = { label = label, total = total, ticks = 0 }
      st.bars[#st.bars + 1] = bar
      function bar.tick(b, n) b.ticks = b.ticks + (n or 1) end
      function bar.close(b) b.closed = true end
      return bar
    end,
    shard = function() return opts.shard or { index = 0, count = 1 } end,
  }
  return h, st
end

-- Install a fresh fake as the global `evalhost`; returns host, state.
function fake.install(opts)
  local h, st = fake.new(opts)
  _G.evalhost = h
  return h, st
end

function fake.uninstall() _G.evalhost = nil end

-- The specs' per-test setup, registered in the enclosing describe: before
-- each test a fresh temporary folder (and, with opts.install, a fresh fake
-- host first), handed to set(dir, host, state); after it the folder is
-- removed and the fake uninstalled. Hooks come from require "busted": in a
-- required module before_each is no global.
function fake.each_test(set, opts)
  local busted = require "busted"
  local dir
  busted.before_each(function()
    local h, st
    if opts and opts.install then h, st = fake.install() end
    dir = fake.tmpdir()
    set(dir, h, st)
  end)
  busted.after_each(function()
    fake.rmtree(dir)
    fake.uninstall()
  end)
end

-- A report's scores keyed "category/id", for comparing two runs in specs.
function fake.scores(rep)
  local t = {}
  for _, p in ipairs(rep.pairs) do t[p.category .. "/" .. p.id] = p.score end
  return t
end

-- The log lines at `level` (or all) joined, for matching in specs.
function fake.log_text(st, level)
  local out = {}
  for _, l in ipairs(st.logs) do
    if level == nil or l.level == level then out[#out + 1] = l.msg end
  end
  return table.concat(out, "\n")
end

return fake
