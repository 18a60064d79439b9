-- lua/evalhost/datasets/pystr.lua: Python's str, re and json as the
-- official reply parsers meet them (issue 25). tests/e2e/test_protocols.py
-- checks whole readers against the official code on recorded readings.
local fake = require "fake_host"

describe("pystr", function()
  local P
  before_each(function()
    fake.install()
    P = require "evalhost.datasets.pystr"
  end)
  after_each(function() fake.uninstall() end)

  it("int() reads digits of every script, whitespace, a sign and single underscores; refuses the rest", function()
    assert.are.equal(12, P.int(" 12\n"))
    assert.are.equal(7, P.int("\u{3000}7\u{a0}"))
    assert.are.equal(34, P.int("\u{663}4"))          -- Arabic-Indic three, ASCII four
    assert.are.equal(5, P.int("\u{ff15}"))           -- fullwidth five
    assert.are.equal(-3, P.int("-3"))
    assert.are.equal(10, P.int("1_0"))
    for _, bad in ipairs({ "1__0", "_1", "1_", "", " ", "+", "3.0", "\u{b2}", "0x5" }) do
      assert.is_nil(P.int(bad), bad)
    end
  end)

  it("isdigit takes superscripts that int() refuses", function()
    assert.is_true(P.isdigit("\u{b2}"))
    assert.is_true(P.isdigit("\u{ff13}5"))
    assert.is_false(P.isdigit("3.5"))
    assert.is_false(P.isdigit(""))
  end)

  it("strip and splitlines use Python's whitespace and line breaks", function()
    assert.are.equal("a b", P.strip("\u{3000} a b \u{a0}\t\u{2003}"))
    assert.are.same({ "a", "b", "c", "", "d", "e" }, P.splitlines("a\r\nb\rc\n\nd\u{2028}e\n"))
    assert.are.same({ "x", "y" }, P.splitlines("x\u{85}y"))
  end)

  it("\\w, \\b's word characters and IGNORECASE follow Python's re", function()
    assert.is_true(P.is_word(0xB2))       -- superscript two
    assert.is_true(P.is_word(0x7B2C))     -- a CJK ideograph
    assert.is_false(P.is_word(0x3000))
    assert.is_false(P.regex.is_word(0xB2))   -- the regex package's \w leaves superscripts out
    assert.is_true(P.regex.is_word(0x7B2C))
    local a, b = P.find_ci("x FINAL \u{17F}CORE: 4", "final score")
    assert.are.equal(3, a)
    assert.are.equal(15, b)               -- the long s is two bytes
    assert.is_nil(P.find_ci("Fin\u{430}l Score", "final score"))   -- a Cyrillic a is not an a
  end)

  it("json_loads is Python's strict json.loads", function()
    local null = evalhost.json.null
    local t = P.json_loads(' {"a": [1, 2.5, NaN, null], "a2": -Infinity, "k": 1, "k": 2} ')
    assert.are.equal(2, t.k)                               -- the last of a repeated key
    assert.is_true(P.is_array(t.a) and t.a[3] ~= t.a[3] and t.a[4] == null)
    assert.are.equal(-math.huge, t.a2)
    assert.is_false(P.is_array(P.json_loads("{}")))
    assert.is_true(P.is_array(P.json_loads("[]")))
    assert.are.equal("\u{e9}\u{1F600}", P.json_loads('"\\u00e9\\ud83d\\ude00"'))
    for _, bad in ipairs({ '{"a": 01}', '{"a": 1,}', '{"a": "x\ny"}', '{"a": 1} x', '"\\q"', "\u{feff}{}", "{'a': 1}" }) do
      assert.is_nil(P.json_loads(bad), bad)
    end
  end)
end)
