-- lua/evalhost/datasets/protocol.lua and the official profiles' pieces that
-- reproduce the benchmarks' Python (issue 25): VIEScore's reply reader,
-- Python's str.format / replace / round, PIL's thumbnail size, and which
-- protocol a run gets. The end-to-end comparison with the official code is
-- tests/e2e/test_protocols.py.
local fake = require "fake_host"

describe("benchmark protocols", function()
  before_each(function() fake.install() end)
  after_each(function() fake.uninstall() end)

  it("gedit: reads every reply form mllm_output_to_dict reads, and nothing else", function()
    local parse = require("evalhost.datasets.gedit").profile.official.parse
    local function sc(t) local d = parse(t); return d and d.score end
    assert.are.same({ 5, 9 }, sc('{\n"score" : [5, 9],\n"reasoning" : "fine"\n}'))
    assert.are.same({ 3, 4 }, sc('```json\n{"score": [3, 4], "reasoning": "ok"}\n```'))
    assert.are.same({ 7, 1 }, sc('||V^=^V||\n{"score": [7, 1], "reasoning": "d"}\n||V^=^V||'))
    assert.are.same({ 6, 0 }, sc("[6, 0]"))
    assert.are.same({ 6, 0 }, sc("[6,0]"))
    assert.are.same({ 8 }, sc(" 8 "))
    assert.are.same({ 4 }, sc('{"score": 4, "reasoning": "not a list"}'))
    assert.are.same({ 2 }, sc("{score: 2, reasoning: unquoted}"))   -- fix_json's repair
    assert.is_nil(parse("I would rather not give numbers."))
    assert.is_nil(parse("11"))                 -- a bare number outside 0..10
    assert.is_nil(parse("[6, 0, 2]"))          -- a bare list of three is not read
    assert.is_nil(parse("}{"))
    assert.is_nil(parse('{"score": [5, "x"'))  -- broken JSON fix_json cannot mend
  end)

  it("gedit: SC and PQ are their lists' minima, O their geometric mean; a failed call keeps the other", function()
    local off = require("evalhost.datasets.gedit").profile.official
    local ctx = { pair = { fields = { language = "en", intersection_exist = true } } }
    local s, d = off.combine({ SC = '{"score": [8, 5]}', PQ = "[9, 4]" }, ctx)
    assert.are.equal(math.sqrt(20), s)
    assert.are.same({ SC = 5, PQ = 4, O = math.sqrt(20), language = "en", intersection = true }, d)
    local neg, why_neg = off.combine({ SC = '{"score": [-1]}', PQ = "[9, 4]" }, ctx)   -- sqrt raises there
    assert.is_nil(neg)
    assert.matches("SC x PQ is negative (SC -1, PQ 4)", why_neg, 1, true)
    assert.are.equal(math.sqrt(2), (off.combine({ SC = '{"score": [-1]}', PQ = '{"score": [-2]}' }, ctx)))
    local none, why, official = off.combine({ SC = "no", PQ = "[9, 4]" }, ctx)
    assert.is_nil(none)
    assert.matches("SC reply has no VIEScore JSON", why)
    assert.are.equal(4, official.PQ)
    assert.is_nil(official.SC)
  end)

  it("gedit: the summary averages task types, per language, full set and intersection", function()
    local off = require("evalhost.datasets.gedit").profile.official
    local rows = {
      { category = "color_alter", dims = { SC = 8, PQ = 2, O = 4, language = "en", intersection = true } },
      { category = "color_alter", dims = { SC = 4, PQ = 4, O = 4, language = "en", intersection = false } },
      { category = "background_change", dims = { SC = 9, PQ = 1, O = 3, language = "en", intersection = false } },
      { category = "background_change", error = "x", official = { PQ = 4, language = "en", intersection = false } },
    }
    local sum = off.summary(rows)
    local en = sum.languages.en
    assert.are.same({ "background_change", "color_alter" }, en.fullset.order)   -- the official GROUPS order
    assert.are.equal(6, en.fullset.categories.color_alter.SC)
    assert.are.equal((9 + 6) / 2, en.fullset.average.SC)
    assert.are.same({ "color_alter" }, en.intersection.order)
    assert.are.equal(1, sum.unparsed)
    local o = 0
    for u = 0, 10 do o = o + math.sqrt(u * 4) end
    assert.are.equal((3 + o / 11) / 2, en.with_guess.fullset.categories.background_change.O)
    assert.are.equal(11, #off.GROUPS)
    assert.are.equal(2, #sum.tables)
    assert.are.same({ "task type", "SC", "PQ", "O" }, sum.tables[1].header)
    -- a task type calculate_statistics.py does not know is shown, not averaged
    rows[#rows + 1] = { category = "my_type", dims = { SC = 0, PQ = 0, O = 0, language = "en", intersection = false } }
    en = off.summary(rows).languages.en
    assert.are.same({ "background_change", "color_alter", "my_type" }, en.fullset.order)
    assert.are.same({ "my_type" }, en.fullset.extra)
    assert.are.equal((9 + 6) / 2, en.fullset.average.SC)
    local t = off.summary(rows).tables[1]
    assert.are.equal("my_type (not a GEdit task type: not averaged)", t.rows[3][1])
    local names = {}
    for i, r in ipairs(t.rows) do names[i] = r[1] end
    local at = #names - 2   -- then the official NaN, then the expected figure with the guess
    assert.are.equal("Average of the 2 task types scored", names[at])
    assert.matches("as calculate_statistics.py prints it: nan", names[at + 1], 1, true)
    assert.matches("unparsed as the official guess", names[at + 2], 1, true)
  end)

  it("imgedit: every line splitting on ': ' into two parts, digits after, is a rating; item = round(mean, 2)", function()
    local off = require("evalhost.datasets.imgedit").profile.official
    assert.are.same({ 4, 3, 5 }, off.ratings("Brief reasoning: fine; a: b\nPrompt Compliance: 4\n  Visual: 3  \nX: 5\r"))
    assert.are.same({}, off.ratings("Score: 4/5\nA: b: 3\nB:4\nC: four"))
    local s, d = off.combine({ rating = "A: 1\nB: 2\nC: 2" })
    assert.are.equal(1.67, s)
    assert.are.same({ 1, 2, 2 }, d.ratings)
    local none, why, official = off.combine({ rating = "no ratings" })
    assert.is_nil(none)
    assert.matches("drop the item", why)
    assert.is_true(official.dropped)
  end)

  it("rise: an unreadable reply leaves our accuracy's denominator and counts as inaccurate in the official one", function()
    local rp = require("evalhost.datasets.rise").profile
    local rows = {
      { category = "temporal_reasoning", dims = { consistency = 5, reasoning = 5, plausibility = 5 } },
      { category = "temporal_reasoning", dims = { consistency = 5, reasoning = 4, plausibility = 5 } },
      { category = "temporal_reasoning", failed_stage = "score" },
      { category = "temporal_reasoning", failed_stage = "edit" },   -- no edit: gpt_eval.py stops; not counted
    }
    local s = rp.summary(rows)
    assert.are.equal(0.5, s.accuracy.overall)
    assert.are.equal(1, s.unparsed)
    assert.are.equal(1 / 3, s.accuracy_with_unparsed)
  end)

  it("python's format, replace and round; PIL's thumbnail size", function()
    local p = require "evalhost.datasets.protocol"
    assert.are.equal("a {x} b", p.format("a {{x}} {y}", { y = "b" }))
    local none, why = p.format("{nope}", {})
    assert.is_nil(none)
    assert.matches("{nope}", why)
    assert.are.equal("a } {b}} c", p.format("a } {{b}}} {x}", { x = "c" }))   -- a lone "}" is kept
    none, why = p.format("x {open", {})
    assert.is_nil(none)
    assert.are.equal("unmatched '{' in a prompt", why)
    assert.are.equal("1 % 1", p.replace("<i> % <i>", "<i>", "1"))
    -- dataset.official: the checkout (the file inside it) or the file itself
    assert.are.equal("/c/utils/prompts.py", p.official_file({ official = "/c" }, "B", "utils/prompts.py", "prompts"))
    assert.are.equal("/x/p.py", p.official_file({ official = "/x/p.py" }, "B", "utils/prompts.py", "prompts"))
    none, why = p.official_file({}, "ImgEdit", "Benchmark/Basic/prompts.json", "rubrics")
    assert.is_nil(none)
    assert.matches("dataset.official must name the ImgEdit checkout (or its Benchmark/Basic/prompts.json): "
      .. "the official protocol's rubrics load from it", why, 1, true)
    assert.are.equal(3.33, p.round2(3.335))   -- the binary value is below .335, as Python rounds it
    assert.are.equal(2.67, p.round2(2.675))
    assert.are.equal(4.0, p.round2(4.005))
    for _, c in ipairs({ { 1000, 500, 768, 384 }, { 769, 768, 768, 767 }, { 1023, 767, 768, 576 },
      { 500, 1000, 384, 768 }, { 3000, 7, 768, 2 }, { 7, 3000, 2, 768 }, { 800, 800, 768, 768 },
      { 768, 1024, 576, 768 }, { 1365, 2048, 512, 768 }, { 640, 480, 640, 480 } }) do
      local w, h = p.thumbnail_size(c[1], c[2], 768)
      assert.are.same({ c[3], c[4] }, { w, h }, ("%dx%d"):format(c[1], c[2]))
    end
  end)

  it("an official protocol needs an http or native judge; compact and bad values", function()
    local p = require "evalhost.datasets.protocol"
    local gedit = require("evalhost.datasets.gedit").profile
    local function judge(b) return { info = function() return { backend = b } end } end
    local run = { profile = gedit, dataset = { adapter = "gedit" }, config = {} }
    local ok, why = p.select(run, {}, judge("torch"))
    assert.is_nil(ok)
    assert.matches("need an http or native judge; the torch judge builds its own chat", why, 1, true)
    assert.matches("dataset.protocol: compact", why, 1, true)
    run = { profile = gedit, dataset = { adapter = "gedit" }, config = {} }
    assert.is_true(p.select(run, { protocol = "compact" }, judge("native")))
    assert.is_nil(run.profile_requests)
    ok, why = p.select(run, { protocol = "viescore" }, judge("http"))
    assert.is_nil(ok)
    assert.matches("dataset.protocol must be official or compact, got viescore", why, 1, true)
    run = { profile = gedit, dataset = { adapter = "gedit" }, config = { judge = { mode = "generate" } } }
    assert.is_true(p.select(run, {}, judge("native")))
    assert.are.equal(gedit.official.requests, run.profile_requests)
    -- mode logits (the default) replies with a distribution, not the text the benchmark's parser reads
    for _, cfg in ipairs({ {}, { judge = { mode = "logits" } }, { scorer = { params = { mode = "logits" } } } }) do
      run = { profile = gedit, dataset = { adapter = "gedit" }, config = cfg, sections = { judge = "scorer" } }
      ok, why = p.select(run, {}, judge("native"))
      assert.is_nil(ok)
      assert.matches("gedit's parser reads the judge's reply text: set mode: generate on the native judge", why, 1, true)
    end
    run = { profile = gedit, dataset = { adapter = "gedit" }, sections = { judge = "scorer" },
      config = { scorer = { params = { mode = "generate" } } } }
    assert.is_true(p.select(run, {}, judge("native")))
    run = { profile = gedit, dataset = { adapter = "gedit" }, config = {} }
    assert.is_true(p.select(run, {}, judge("http")))
    assert.are.equal(gedit.official.requests, run.profile_requests)
    assert.are.equal("categories", run.aggregate)
    assert.are.equal(gedit.official.summary, run.profile.summary)
    assert.are.equal(gedit.dimensions, run.profile.dimensions)   -- the compact profile's fields show through
  end)

  it("rise: extract reads the numbers after the first Final Score that has some, as gpt_eval.py does", function()
    local ex = require("evalhost.datasets.rise").profile.official.extract
    assert.are.same({ 4 }, ex("Reasoning...\n**Final Score:** **4**"))
    assert.are.same({ 1 }, ex("**Final Score**: **1**\n"))
    assert.are.same({ 5 }, ex("final score 5/5"))                 -- case-insensitive; stops at "/"
    assert.are.same({ 3 }, ex("Final Scores: 3"))                 -- the "Final Scores" fallback
    assert.are.same({ 2 }, ex("**Final Score:**\n\n**2**\n\nok"))   -- stars, blank lines
    assert.are.same({ 3, 4 }, ex("Final Score: 3, 4"))
    assert.are.same({ 4, 5 }, ex("Final Score: 4\n\n5"))           -- a later number in the run counts too
    assert.are.same({ 2 }, ex("Final Score: (see below)\nFinal Score: 2"))   -- the first one without digits is passed
    assert.are.same({ 7 }, ex("Final Score: 7"))                  -- no range check there
    assert.is_nil(ex("Final Score***: 4"))                        -- three stars: the run starts at ":"
    assert.is_nil(ex("Score: 4"))
    assert.is_nil(ex("Final Score: four"))
    assert.is_nil(ex(nil))
  end)

  it("rise: main()'s reading of the replies -- shifted ratings, the logical mapping, NaN", function()
    local o = require("evalhost.datasets.rise").profile.official
    assert.are.same({ C = 4, R = 5, P = 3 }, o.read("temporal_reasoning", false,
      { consistency = { 4 }, reasoning = { 5 }, quality = { 3 } }))
    assert.are.same({ R = 5, P = 3 }, o.read("spatial_reasoning", true, { reasoning = { 5 }, quality = { 3 } }))
    assert.are.same({ C = 5, R = 1 }, o.read("logical_reasoning", false, { consistency = { 3 }, reasoning = { 0 } }))
    -- two numbers in a logical consistency reply: gpt_eval.py reads C, R, P from the three numbers as they are
    assert.are.same({ C = 0, R = 1, P = 1 }, o.read("logical_reasoning", false,
      { consistency = { 0, 1 }, reasoning = { 1 } }))
    assert.is_nil(o.read("causal_reasoning", false, { consistency = { 4, 4 }, reasoning = { 5 }, quality = { 3 } }))
    assert.are.same({ unread = true }, o.read("causal_reasoning", false, { consistency = { 4 }, quality = { 3 } }))
  end)

  it("rise: calculate_score and calculate_completion, consistency_free as pandas sees it", function()
    local o = require("evalhost.datasets.rise").profile.official
    assert.are.equal(0.3 * 4 + 0.5 * 5 + 0.2 * 3, o.score("causal_reasoning", { C = 4, R = 5, P = 3 }, false))
    assert.are.equal(0.2 * 3 + 0.8 * 5, o.score("causal_reasoning", { C = 4, R = 5, P = 3 }, true))
    assert.are.equal(1, o.score("temporal_reasoning", { C = 1, R = 1, P = 1 }, false))   -- halved, not below 1
    assert.are.equal((0.3 * 5 + 0.5 * 1 + 0.2 * 5) * 0.5, o.score("temporal_reasoning", { C = 5, R = 1, P = 5 }, false))
    assert.are.equal(0.3 * 5 + 0.7 * 5, o.score("logical_reasoning", { C = 5, R = 5 }, true))
    assert.is_nil(o.score("causal_reasoning", { R = 5, P = 3 }, false))   -- NaN
    -- a NaN rating with R = 1: "1 if score<1 else score" keeps the NaN; the compact profile's score is the same rule
    local nan = 0 / 0
    local s = o.score("causal_reasoning", { C = nan, R = 1, P = 3 }, false)
    assert.is_true(s ~= s)
    local rp = require("evalhost.datasets.rise").profile
    s = rp.score({ consistency = nan, reasoning = 1, plausibility = 3 }, "causal_reasoning", false)
    assert.is_true(s ~= s)
    assert.are.equal(1, rp.score({ consistency = 1, reasoning = 1, plausibility = 1 }, "causal_reasoning", false))
    assert.are.equal(1, o.complete("spatial_reasoning", { R = 5, P = 5 }, true))
    assert.are.equal(0, o.complete("spatial_reasoning", { R = 5, P = 5 }, false))
    assert.are.equal(0, o.complete("logical_reasoning", {}, false))
  end)

  it("rise: eval_vanilla's prompt and picture choice per item, column tests included", function()
    local o = require("evalhost.datasets.rise").profile.official
    local null = require("evalhost.util").host().json.null
    local P = {}
    for _, n in ipairs(o.PROMPTS) do P[n] = n .. ":{instruct}|{reference}" end
    P.prompt_logical_cons, P.prompt_logical_img = "lc:{instruct}", "li:{instruct}"
    P.prompt_generation, P.prompt_spatial_qual, P.prompt_logical_img_wo_q = "gen", "squal", "woq"
    local x = assert(o.plan("temporal_reasoning", { instruction = "i", reference = "r", reasoning_img = null }, {}, P))
    assert.are.same({ "prompt_reasoning:i|r", "prompt_consist:i|r", "gen", false, false },
      { x.rea, x.cons, x.qua, x.rea_img, x.free })
    x = assert(o.plan("causal_reasoning", { instruction = "i", reasoning_img = true, consistency_free = true }, {}, P))
    assert.are.same({ "prompt_reasoning_w_input:i|nan", true, true }, { x.rea, x.rea_img, x.free })   -- NaN prints nan
    x = assert(o.plan("spatial_reasoning", { instruction = "i", reference = "r", reference_img = "a.png" }, {}, P))
    assert.are.same({ "prompt_spatial_ref_img:i|r", "a.png", "prompt_spatial_cons:i|r", "squal" },
      { x.rea, x.ref, x.cons, x.qua })
    x = assert(o.plan("logical_reasoning", { instruction = "i", reference_txt = "t {0}" }, {}, P))
    assert.are.same({ "prompt_logical_txt:i|t {0}", "prompt_logical_cons_ans:i|t {0}", false },
      { x.rea, x.cons, x.rea_img })
    x = assert(o.plan("logical_reasoning", { instruction = "i", reference_img = "b.png" }, {}, P))
    assert.are.same({ "li:i", "lc:i", "b.png" }, { x.rea, x.cons, x.ref })
    -- one item with reasoning_wo_ins makes it a column: every reference_img item gets that prompt
    x = assert(o.plan("logical_reasoning", { instruction = "i", reference_img = "b.png" }, { reasoning_wo_ins = true }, P))
    assert.are.equal("woq", x.rea)
    local none, why = o.plan("logical_reasoning", { instruction = "i" }, {}, P)
    assert.is_nil(none)
    assert.matches("needs reference_txt or reference_img", why)
  end)

  it("rise: numpy's pairwise sum, and utils.py's strings read as Python reads them", function()
    local o = require("evalhost.datasets.rise").profile.official
    local np_sum = require("evalhost.datasets.protocol").np_sum
    local xs = { 5, 5, 3.4000000000000004, 5, 5, 2.6, 4.2, 5, 5, 4.8, 3.6, 5, 1.1, 5, 5, 5 }
    assert.are.equal("4.3562499999999993", ("%.17g"):format(np_sum(xs) / 16))   -- numpy's, not 4.35625
    local seq = 0.0
    for _, v in ipairs(xs) do seq = seq + v end
    assert.are.equal("4.3562500000000002", ("%.17g"):format(seq / 16))            -- a plain loop's
    local p = assert(o.read_prompts('\nx = 1\nprompt_a = """say \\"hi\\"\\n{instruct}\\\nend"""\nprompt_b = r"""a\\nb"""\n'))
    assert.are.equal('say "hi"\n{instruct}end', p.prompt_a)
    assert.are.equal("a\\nb", p.prompt_b)
    local none, why = o.read_prompts('\nprompt_c = """\\x41"""\n')
    assert.is_nil(none)
    assert.matches("prompt_c: escape \\x is not read here", why, 1, true)
  end)

  it("kris: each script's extractor gives what the Python one gives (cases run through metrics_*.py)", function()
    local o = require("evalhost.datasets.kris").profile.official
    -- text, metrics_common's extract_consistency_score_and_reason, extract_score_and_reason without a
    -- prefix (temporal, multi-element), metrics_knowledge's extract_consistency_score
    local cases = {
      { "{\"reasoning\": \"fine\", \"consistency_score\": 4}", 4, 4, 4 },
      { "{\"reasoning\": \"fine\", \"consistency_score\": \"3\"}", 3, 3, 3 },
      { "{\"reasoning\": \"fine\", \"consistency_score\": 4.7}", 4, 4, 4 },
      { "{\"reasoning\": \"fine\", \"consistency_score\": 9}", 9, 9, 9 },
      { "{\"reasoning\": \"fine\", \"consistency_score\": null} then 2/5", 2, 2, nil },
      { "{\"reasoning\": \"trailing\", \"consistency_score\": 4,}", 4, 4, 4 },
      { "{\"reasoning\": \"line\nbreak\", \"consistency_score\": 4}", 4, 4, 4 },
      { "Step 3 done.\n{\"reasoning\": \"x\", \"consistency_score\": 5,}", 3, 3, 3 },
      { "Consistency score 4", 4, 4, 4 },
      { "consistency_score: 2 and 5/5", 2, 5, 2 },
      { "CONSISTENCY SCORE：3", 3, 3, 3 },
      { "I give it 3 / 5.", 3, 3, 3 },
      { "It earns 4 out of 5", 4, 4, 4 },
      { "It earns 4 OUT  OF\n5", 4, 4, 4 },
      { "version2 has 15 issues, rating 3.", 3, 3, 3 },
      { "得分3分，or 4", 4, 4, 4 },
      { "score 45", nil, nil, nil },
      { "nothing here", nil, nil, nil },
      { "{\"a\": {\"consistency_score\": 4}}", 4, 4, 4 },
      { "\"consistency_score\": 4", 4, 4, 4 },
    }
    for _, c in ipairs(cases) do
      assert.are.equal(c[2], o.extract_common(c[1], "consistency", true), c[1])
      assert.are.equal(c[3], o.extract_common(c[1], "consistency", false), c[1])
      assert.are.equal(c[4], o.extract_knowledge(c[1], "consistency"), c[1])
    end
    -- metrics_knowledge's extract_dual_scores: instruction, knowledge
    local duals = {
      { "{\"instruction_score\": 4, \"knowledge_score\": 2}", 4, 2 },
      { "{\"instruction_score\": 4}", 4, nil },
      { "{\"instruction_score\": \"x\", \"knowledge_score\": 2} Instruction score: 3\nKnowledge score: 5", 3, 5 },
      { "instruction_score: 4\nknowledge score：1", 4, 1 },
      { "Instruction score 4, knowledge score 3", nil, nil },
      { "{\"instruction_score\": 4,}", nil, nil },
    }
    for _, c in ipairs(duals) do
      local i, k = o.extract_dual(c[1])
      assert.are.same({ c[2], c[3] }, { i, k }, c[1])
    end
  end)

  it("kris: the temporal script's frame numbers, and the requests' labels per script", function()
    local o = require("evalhost.datasets.kris").profile.official
    assert.are.same({ { 2, 3, 4 }, 1 }, { o.frames({ "5-2.jpg", "5-3.jpg", "5-4.jpg" }) })
    assert.are.same({ { 1, 2, 4 }, 3 }, { o.frames({ "5-1.jpg", "5-2.jpg", "5-4.jpg" }) })
    assert.are.same({ { 1, 2 }, 3 }, { o.frames({ "5-1.jpg", "5-2.jpg" }) })   -- two missing: the next frame
    assert.are.equal("common", o.SCRIPTS.anomaly_correction)
    assert.are.equal("knowledge", o.SCRIPTS["rule-based_reasoning"])
    assert.are.equal(20, #o.ORDER)
  end)

  it("rise: combine fails what gpt_eval.py misreads or takes off-scale, keeping its reading", function()
    local o = require("evalhost.datasets.rise").profile.official
    local function ctx(cat, free)
      return { category = cat, id = "x", pair = { fields = { subtask = "Puzzle Solving" } }, rise = { free = free },
        state = { columns = {}, positions = { [cat .. "\0x"] = 7 } } }
    end
    local s, d = o.combine({ consistency = "Final Score: 1", reasoning = "Final Score: 1" }, ctx("logical_reasoning"))
    assert.are.equal(0.3 * 5 + 0.7 * 5, s)
    assert.are.same({ 5, 5, 1, 7, "Puzzle Solving" }, { d.consistency, d.reasoning, d.complete, d.position, d.subtask })
    local none, why, info = o.combine({ consistency = "Final Score: 3", reasoning = "Final Score: 1" },
      ctx("logical_reasoning"))
    assert.is_nil(none)
    assert.matches("the consistency rating 3 is outside 0..1 (gpt_eval.py takes it as it is)", why, 1, true)
    assert.are.same({ 5, 5, 1 }, { info.consistency, info.reasoning, info.complete })   -- its 4 * min(3, 1) + 1
    none, why, info = o.combine({ consistency = "Final Score: 4, 5", reasoning = "Final Score: 5",
      quality = "Final Score: 5" }, ctx("causal_reasoning"))
    assert.is_nil(none)
    assert.matches("several numbers (gpt_eval.py stops on the item)", why, 1, true)
    assert.is_true(info.stops)
    none, why, info = o.combine({ consistency = "Final Score: 6", reasoning = "Final Score: 5",
      quality = "Final Score: 5" }, ctx("causal_reasoning"))
    assert.is_nil(none)
    assert.matches("the consistency rating 6 is outside 1..5", why, 1, true)
    assert.are.equal(0.3 * 6 + 0.5 * 5 + 0.2 * 5, info.score)
  end)

  it("kris: combine fails a null or off-scale rating, keeping what the script stores", function()
    local o = require("evalhost.datasets.kris").profile.official
    local s, d = o.combine({ consistency = '{"consistency_score": 4}', dual = '{"instruction_score": 3, "knowledge_score": 2}',
      quality = "quality score: 5" }, { category = "chemistry" })
    assert.are.equal((4 + 3 + 2 + 5) / 4, s)
    assert.are.same({ 4, 3, 2, 5 }, { d.consistency, d.instruction, d.knowledge, d.quality })
    local none, why, info = o.combine({ consistency = '{"consistency_score": 7}', instruction = "4/5",
      quality = "3 out of 5" }, { category = "count_change" })
    assert.is_nil(none)
    assert.matches("the consistency rating 7 is outside 1..5 (the script stores it as it is)", why, 1, true)
    assert.are.same({ 7, 4, 3 }, { info.ratings.consistency, info.ratings.instruction, info.ratings.quality })
    none, why, info = o.combine({ consistency = "4/5", dual = '{"instruction_score": 4}', quality = "5/5" },
      { category = "physics" })
    assert.is_nil(none)
    assert.matches("no knowledge rating in the reply (the script stores null)", why, 1, true)
    assert.is_nil(info.ratings.knowledge)
  end)
end)
