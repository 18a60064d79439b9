-- luacheck settings for evalhost's Lua: the library and scripts run inside
-- the host (Lua 5.4, `evalhost` preloaded); specs run under busted.
std = "lua54"
max_line_length = 160
read_globals = { "evalhost" }

files["tests/lua"] = {
  std = "+busted",
  -- specs install and remove a fake host as the global `evalhost`
  globals = { "evalhost" },
}
