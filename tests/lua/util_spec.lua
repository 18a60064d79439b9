local util = require "evalhost.util"

describe("util", function()
  it("canonical text sorts keys at every level and is stable", function()
    local a = util.canonical({ b = 1, a = { z = 1.5, y = { 3, 2 } }, c = "x" })
    assert.are.equal('{"a":{"y":[3,2],"z":1.5},"b":1,"c":"x"}', a)
    assert.are.equal(a, util.canonical({ c = "x", a = { y = { 3, 2 }, z = 1.5 }, b = 1 }))
    assert.are_not.equal(util.canonical({ a = 1 }), util.canonical({ a = 2 }))
    assert.are_not.equal(util.canonical({ a = "1" }), util.canonical({ a = 1 }))
  end)

  it("refuses path components that leave the folder", function()
    assert.are.equal("pair_001", util.safe_component("pair_001"))
    assert.are.equal("物理", util.safe_component("物理"))
    for _, bad in ipairs({ "../x", "/etc", "a/b", "..", ".hidden", "", "a\\b" }) do
      local ok, err = util.safe_component(bad)
      assert.is_nil(ok, bad)
      assert.is_string(err)
    end
  end)

  it("escapes HTML and Markdown cells", function()
    assert.are.equal("&lt;a href=&quot;x&quot;&gt;&amp;&#39;", util.html("<a href=\"x\">&'"))
    assert.are.equal("a \\| b c", util.md_cell("a | b\nc"))
  end)

  it("joins paths and finds the folder", function()
    assert.are.equal("out/images/物理/p.png", util.join("out/", "images", "物理", "p.png"))
    assert.are.equal("/a/b", util.join("/a", "b"))
    assert.are.equal("config", util.dirname("config/x.yaml"))
    assert.are.equal(".", util.dirname("x.yaml"))
  end)
end)
