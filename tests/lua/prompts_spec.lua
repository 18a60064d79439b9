-- lua/evalhost/prompts.lua: the shipped config/prompts.yaml, overrides,
-- placeholders and the errors for bad templates.
local fake = require "fake_host"
local prompts = require "evalhost.prompts"

local CATS = { "物理", "环境", "社会", "因果", "指代" }
local pair = { id = "pair_007", instruction = "把杯子变成红色 {{id}} 100%", description = "一只白色的杯子" }

local function write(dir, name, text)
  local p = dir .. "/" .. name
  local f = assert(io.open(p, "w"))
  f:write(text)
  f:close()
  return p
end

describe("prompts", function()
  local dir
  fake.each_test(function(d) dir = d end, { install = true })

  it("finds config/prompts.yaml next to the library", function()
    assert.are.equal("./config/prompts.yaml", prompts.default_file())
  end)

  for _, lang in ipairs({ "zh", "en" }) do
    it("ships " .. lang .. " templates for the five categories and a default", function()
      local p = assert(prompts.load({ language = lang }))
      assert.are.equal(lang, p.language)
      for _, c in ipairs(CATS) do
        local _, where = p:template(c, "user")
        assert.are.equal(("%s.%s in ./config/prompts.yaml"):format(lang, c), where)
        local sys, user = p:render(c, pair)
        assert.is_true(#sys > 40)
        assert.truthy(user:find(pair.instruction, 1, true))
        assert.truthy(user:find("pair_007", 1, true))
        assert.truthy(user:find("一只白色的杯子", 1, true))
        assert.truthy(user:find("Score: N", 1, true), "asks for a parseable score")
        local rest = user:gsub(pair.instruction:gsub("%p", "%%%0"), "")
        assert.falsy(rest:find("{{", 1, true), "every placeholder filled")
      end
      local _, where = p:template("风格", "system")
      assert.are.equal(("%s.default in ./config/prompts.yaml"):format(lang), where)
      local _, user = p:render("风格", pair)
      assert.truthy(user:find("风格", 1, true))
    end)
  end

  it("defaults to the file's language (zh)", function()
    assert.are.equal("zh", assert(prompts.load(nil)).language)
  end)

  it("does not expand placeholders found inside values (templates are data)", function()
    local p = assert(prompts.load({ templates = { ["物理"] = { user = "[{{instruction}}]" } } }))
    local _, user = p:render("物理", pair)
    assert.are.equal("[把杯子变成红色 {{id}} 100%]", user)
  end)

  it("inline templates override one field and keep the other", function()
    local p = assert(prompts.load({ language = "en", templates = {
      ["物理"] = { user = "I={{ instruction }} D={{description}} C={{category}} #={{id}}" },
      default = { system = "SYS {{category}}" },
    } }))
    local sys, user = p:render("物理", pair)
    assert.are.equal("I=" .. pair.instruction .. " D=一只白色的杯子 C=物理 #=pair_007", user)
    assert.truthy(sys:find("physics", 1, true)) -- en 物理 system kept (more specific than inline default)
    sys = p:render("风格", pair)
    assert.are.equal("SYS 风格", sys)
  end)

  it("prompts.file replaces the shipped file, relative to the config's folder", function()
    write(dir, "mine.yaml", "language: en\nen:\n  default:\n    system: S\n    user: U {{id}}\n")
    _G.evalhost.config_path = dir .. "/run.yaml"
    local p = assert(prompts.load({ file = "mine.yaml" }))
    assert.are.equal(dir .. "/mine.yaml", p.file)
    local s, u = p:render("物理", pair)
    assert.are.equal("S", s)
    assert.are.equal("U pair_007", u)
  end)

  it("names the template that uses an unknown placeholder", function()
    local p, err = prompts.load({ templates = { ["环境"] = { user = "{{instruction}} {{score}}" } } })
    assert.is_nil(p)
    assert.are.equal("prompts: template 环境.user (config prompts.templates) names unknown placeholder {{score}}"
      .. " (known: category, description, id, instruction)", err)
  end)

  it("names the template in a prompt file with an unknown placeholder", function()
    write(dir, "bad.yaml", "zh:\n  因果:\n    system: ok\n    user: \"{{ instuction }}\"\n")
    local p, err = prompts.load({ file = dir .. "/bad.yaml" })
    assert.is_nil(p)
    assert.are.equal(("prompts: template 因果.user (zh, %s/bad.yaml) names unknown placeholder {{instuction}}"
      .. " (known: category, description, id, instruction)"):format(dir), err)
  end)

  it("reports a missing language, a missing file, an unknown key and a non-string template", function()
    local _, err = prompts.load({ language = "fr" })
    assert.are.equal('prompts: ./config/prompts.yaml has no language "fr" (has: en, zh)', err)
    _, err = prompts.load({ file = dir .. "/none.yaml" })
    assert.truthy(err:find("^prompts: cannot read " .. dir:gsub("%p", "%%%0") .. "/none%.yaml: "))
    _, err = prompts.load({ langauge = "en" })
    assert.are.equal('prompts: unknown key "langauge" (known: file, language, templates)', err)
    _, err = prompts.load({ templates = { ["物理"] = { user = 5 } } })
    assert.are.equal("prompts: template 物理.user (config prompts.templates) must be a string, got number", err)
    _, err = prompts.load({ templates = { ["物理"] = { users = "x" } } })
    assert.are.equal('prompts: config prompts.templates.物理 has unknown key "users" (system or user)', err)
  end)

  it("says when a category has no template and there is no default", function()
    write(dir, "nodef.yaml", "zh:\n  物理: {system: s, user: u}\n")
    local p = assert(prompts.load({ file = dir .. "/nodef.yaml" }))
    local s, err = p:render("环境", pair)
    assert.is_nil(s)
    assert.are.equal(("prompts: no system template for category 环境 (language zh, %s/nodef.yaml) and no default")
      :format(dir), err)
  end)
end)
