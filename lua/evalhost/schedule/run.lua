-- The Run class and the few helpers every part of the schedule library
-- shares: the log, banners, the Stop error and a pair's id.
local util = require "evalhost.util"

local base = {}

local Run = {}
Run.__index = Run
base.Run = Run

base.ROLES = {
  editor = { "editor", "diffusion_model" },
  judge = { "judge", "reward_model" },
}

function base.log(level, fmt, ...) util.host().log(level, fmt, ...) end

function base.banner(text)
  base.log("info", "%s", ("="):rep(60))
  base.log("info", "%s", text)
  base.log("info", "%s", ("="):rep(60))
end

-- A file-system failure that must stop the run without recording anything
-- against a pair (disk full, read-only folder): every finished step is in
-- the journal, so the same command with --resume continues.
local Stop = {}
Stop.__tostring = function(e) return e.msg end
base.Stop = Stop
function base.stop(msg) error(setmetatable({ msg = msg }, Stop), 0) end

-- A console text in ui.language (en, zh or both, the default: "中文 / English").
function base.say(zh, en)
  local ui = (util.host().config or {}).ui
  local lang = type(ui) == "table" and ui.language or "both"
  if lang == "zh" then return zh end
  if lang == "en" then return en end
  return zh .. " / " .. en
end

function base.pair_id(pair) return pair.id or ("#" .. tostring(pair.index)) end

return base
