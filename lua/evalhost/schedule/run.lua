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

-- A stop signal (SIGINT/SIGTERM/SIGHUP) arrived: stop as a Stop does, here
-- between items, with the signal's exit code (128 + its number). Every
-- finished step is journaled already; no report is written.
function base.check_interrupt()
  local f = rawget(util.host(), "interrupted")
  local sig, name = nil, nil
  if f then sig, name = f() end
  if sig then
    error(setmetatable({ msg = ("%s received"):format(name), signal = sig, exit_code = 128 + sig }, Stop), 0)
  end
end

-- "section: message", unless the message names the section already (the
-- http client's messages start with it: no "judge: judge:").
function base.prefixed(section, msg)
  msg = tostring(msg)
  section = tostring(section)
  if msg:sub(1, #section + 2) == section .. ": " then return msg end
  return section .. ": " .. msg
end

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
