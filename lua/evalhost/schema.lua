-- The config schema: every key evalhost reads, one line each, in the section
-- of the code that reads it. lua/evalhost/config_check.lua checks a config
-- against it before the script runs (an unknown key at any depth, a wrong
-- type or a value out of range stops the run with file:line:col), and
-- `evalhost tools/config_doc.lua` renders README's configuration section from
-- it (tests/e2e/test_config_schema.py keeps the two equal).
--
-- To add a key: one line in its section,
--     name = { TYPE, DEFAULT, "what it does", min = .., max = .., one_of = {..} },
-- then `make config-doc` to refresh README. TYPE is one of string, integer,
-- number (integer or float), boolean, list, map (free-form), any, or several
-- joined by "|" ("string|list"). A list's items may be typed (items = "string");
-- a nested section has keys = { ... }; a map of free names whose values share
-- a shape has values = { ... } (one entry written like a key's).
-- DEFAULT is documentation (nil: none, or computed); the reader keeps its own.
local schema = {}

local S = {}
schema.sections = S

-- Section order in the README.
schema.order = {
  "benchmark", "dataset", "editor", "judge", "diffusion_model", "reward_model", "prompts", "run",
  "report", "image", "limits", "ui", "rejudge", "compare", "judge_repeat", "merge", "script",
}

------------------------------------------------------------------------
-- The data (lua/evalhost/schedule/setup.lua, inputs.lua; host/lua/l_dataset.c;
-- lua/evalhost/datasets/*.lua for an adapter's options).
------------------------------------------------------------------------

S.benchmark = { doc = "the benchmark file and the categories to run", keys = {
  data_path = { "string", nil, "the dataset file; a relative path is looked for from the current folder, the config's "
    .. "folder, then evalhost's own (its examples/)" },
  categories = { "list|string", nil, "categories to run, in this order (left out or all: every category of the file; one string splits at commas)",
    items = "string|number", nonempty = "name at least one category, or leave the key out to run them all" },
} }

S.dataset = { doc = "how the dataset is read (field names, format, adapters)", keys = {
  path = { "string", nil, "the dataset file or folder when benchmark.data_path is not set" },
  adapter = { "string", nil, "read another benchmark's layout", one_of = { "imgedit", "kris", "rise", "gedit" } },
  profile = { "boolean", true, "with an adapter: parse the judge's reply as that benchmark does" },
  format = { "string", "auto", "the file's layout", one_of = { "auto", "json", "jsonl" }, plain = true },
  id = { "string", "id", "the field holding a pair's id", plain = true },
  image = { "string", "original_image_b64", "the field holding the input image (base64, data: URL or a path)",
    plain = true },
  instruction = { "string", "edit_instruction", "the field holding the edit instruction", plain = true },
  description = { "string", "original_description", "the field holding the image's description", plain = true },
  category = { "string", "category", "the field holding the category (a flat list of records)", plain = true },
  more_images = { "string", nil, "the field holding a list of further input pictures" },
  images = { "string", nil, "imgedit, rise: the folder of the benchmark's images", adapter = { "imgedit", "rise" } },
  language = { "string", "en", "gedit: the instructions' language (all: both)", one_of = { "en", "cn", "all" },
    adapter = { "gedit" } },
  intersection = { "boolean", false, "gedit: only the pairs in both languages' intersection", adapter = { "gedit" } },
  protocol = { "string", "official", "with an adapter: official (the benchmark's own judge requests; an http judge, or a native one in mode: generate) "
    .. "or compact (one request per pair)", one_of = { "official", "compact" } },
  official = { "string", nil, "imgedit, rise, kris: the benchmark's checkout (its prompts load from it)",
    adapter = { "imgedit", "rise", "kris" } },
} }

------------------------------------------------------------------------
-- Models (host/models/model.c and backend_*.c read these; the same keys may
-- sit under params:, as in the seed's config).
------------------------------------------------------------------------

-- Keys every backend reads.
schema.model_common = {
  backend = { "string", "inferred", "which backend runs the model", one_of = { "builtin", "torch", "http", "native" } },
  name = { "string", nil, "builtin model name or Hugging Face id" },
  model_name = { "string", nil, "the seed's spelling of name" },
  model = { "string", nil, "http: the model the server serves (another spelling of name)" },
  path = { "string", nil, "a local checkpoint (file or folder)" },
  class_path = { "string", nil, "the seed's Python class; mapped to a backend by the model's name" },
  role = { "string", "from the section", "editor or judge, for a section of another name", one_of = { "editor", "judge" } },
  device = { "string", "auto", "cpu, cuda, cuda:N or auto" },
  dtype = { "string", "float32", "weights' dtype (bfloat16, float16, float32)" },
  batch_size = { "integer", 1, "pairs per call", min = 1, max = 4096 },
  revision = { "string", nil, "the Hugging Face revision (commit) to load" },
  footprint_mb = { "number", 0, "the model's device memory in MB, for residency decisions", min = 0 },
  activation_mb = { "number", 0, "with run.device_memory: the device MB a forward needs per batch item beyond the "
    .. "weights (a batch past what is free fails as a CUDA out-of-memory)", min = 0 },
  params = { "map", nil, "any of these keys, as the seed's config writes them" },
  score_range = { "list", "[0, 10]", "judge: the scores' range [lo, hi]", length = 2, increasing = true,
    items = { "integer", nil, "a bound", min = 0, max = 100 } },
}

-- One LoRA of the native editor's lora: list.
local LORA = {
  path = { "string", nil, "the LoRA's safetensors file" },
  scale = { "number", nil, "its scale (default lora_scale)" },
}

-- The overlapped load every libtorch backend reads (host/models/backend_overlap.c).
local OVERLAP = {
  overlap_load = { "boolean", false, "the device copy in chunks the first forward waits for one by one" },
  overlap_chunk_mb = { "number", 64, "bytes per overlapped chunk, MB", min = 0, max = 1e6 },
  overlap_test_delay_us = { "integer", 0, "tests: a sleep per chunk on the CPU's copy path", min = 0, max = 1000000 },
}

-- Keys of one backend. role = "editor"/"judge": only a model in that role reads it.
schema.model_backends = {
  builtin = {
    delay_ms = { "integer", 0, "sleep this long per call (tests)", min = 0 },
    load_ms = { "integer", 0, "sleep this long per load (tests)", min = 0 },
  },
  http = {
    base_url = { "string", nil, "the server, http:// or https://" },
    api_key_env = { "string", nil, "the environment variable holding the API key" },
    max_in_flight = { "integer", 8, "requests at once", min = 1, max = 1024 },
    retries = { "integer", 3, "retries of a failed request", min = 0 },
    timeout_s = { "number", 300, "a request's time limit, seconds", min = 0 },
    connect_timeout_s = { "number", 10, "the connection's time limit, seconds", min = 0 },
    first_byte_timeout_s = { "number", 120, "the longest wait for a reply's first byte, seconds", min = 0 },
    low_speed_bytes = { "integer", 1, "a reply slower than this many bytes/s for low_speed_s is cut", min = 0 },
    low_speed_s = { "number", 120, "how long a reply may stay under low_speed_bytes, seconds", min = 0 },
    backoff_s = { "number", 1, "first retry's wait, doubled each retry", min = 0 },
    backoff_max_s = { "number", 60, "the longest wait between retries", min = 0 },
    breaker_after = { "integer", 5, "consecutive failures that stop the run", min = 0 },
    verify_tls = { "boolean", true, "check the server's certificate" },
    ca_file = { "string", nil, "a CA bundle for verify_tls" },
    max_tokens = { "integer", 512, "judge: the reply's token limit", min = 1, role = "judge" },
    seed = { "integer", 0, "the sampling seed sent with each request" },
    logprobs = { "boolean", true, "judge: ask for logprobs (expected score)", role = "judge" },
    top_logprobs = { "integer", 20, "judge: alternatives per position", min = 0, role = "judge" },
    image_format = { "string", "jpeg", "how images are sent", one_of = { "png", "jpeg", "jpg" } },
    jpeg_quality = { "integer", 95, "JPEG quality when image_format is jpeg", min = 1, max = 100 },
    sleep_mode = { "boolean", false, "unload/load map to the server's sleep/wake (vLLM)" },
    sleep_level = { "integer", 1, "vLLM sleep level", min = 1, max = 2 },
    sleep_path = { "string", "/sleep?level=1", "the sleep endpoint" },
    wake_path = { "string", "/wake_up", "the wake endpoint" },
    allow_url_fetch = { "boolean", false, "editor: accept a reply's image URL and fetch it" },
    extra_body = { "map", nil, "merged into each request's JSON body" },
  },
  torch = {
    jit_optimize = { "boolean", false, "torch.jit optimisations on load" },
    cpu_copy = { "boolean", false, "keep a host copy when on the CPU" },
    synthetic_bytes = { "integer", 0, "tests: a synthetic module of this many bytes", min = 0 },
    synthetic_params = { "integer", 1000, "tests: parameters of the synthetic module", min = 1 },
    overlap_load = OVERLAP.overlap_load, overlap_chunk_mb = OVERLAP.overlap_chunk_mb,
    overlap_test_delay_us = OVERLAP.overlap_test_delay_us,
  },
  native = {
    cpu_copy = { "boolean", false, "keep a host copy when on the CPU" },
    mode = { "string", "logits", "judge: score from the logits or by generating", one_of = { "logits", "generate" },
      role = "judge" },
    max_new_tokens = { "integer", 512, "judge: tokens generated in generate mode", min = 1, role = "judge" },
    score_prefix = { "string", "", "judge: text the reply starts with before the score", role = "judge" },
    offload_text_encoder = { "boolean", false, "editor: text encoder off the GPU between prompts", role = "editor" },
    cfg_one_call = { "boolean", false, "editor: true CFG's two transformer passes as one call of twice the batch",
      role = "editor" },
    text_encoder_positions = { "string", "sequential", "editor: the text encoder's position ids", role = "editor" },
    lora = { "string|list|map", nil, "editor: LoRA file(s): path, [path...] or [{path, scale}...]", role = "editor",
      keys = LORA, items = { "string|map", nil, "one LoRA", keys = LORA } },
    lora_scale = { "number", 1.0, "editor: the LoRAs' default scale", role = "editor" },
    scheduler = { "map", nil, "editor: flow-matching scheduler settings over the checkpoint's", role = "editor",
      keys = {
        shift = { "number", nil, "the sigma shift" },
        base_shift = { "number", nil, "dynamic shifting's base" },
        max_shift = { "number", nil, "dynamic shifting's maximum" },
        shift_terminal = { "number|boolean", nil, "the last sigma (false: none)" },
        use_dynamic_shifting = { "boolean", nil, "shift by the image's sequence length" },
        base_image_seq_len = { "integer", nil, "sequence length of base_shift", min = 1 },
        max_image_seq_len = { "integer", nil, "sequence length of max_shift", min = 1 },
        time_shift_type = { "string", nil, "exponential or linear", one_of = { "exponential", "linear" } },
      } },
    num_inference_steps = { "integer", 50, "editor: denoising steps", min = 1, role = "editor" },
    steps = { "integer", 50, "editor: another spelling of num_inference_steps", min = 1, role = "editor" },
    true_cfg_scale = { "number", 4.0, "editor: classifier-free guidance scale", role = "editor" },
    width = { "integer", nil, "editor: output width (default: the input's, rounded)", min = 1, role = "editor" },
    height = { "integer", nil, "editor: output height", min = 1, role = "editor" },
    seed = { "integer", 0, "editor: the noise seed", role = "editor" },
    negative_prompt = { "string|boolean", " ", "editor: the negative prompt (false: none)", role = "editor" },
    overlap_load = OVERLAP.overlap_load, overlap_chunk_mb = OVERLAP.overlap_chunk_mb,
    overlap_test_delay_us = OVERLAP.overlap_test_delay_us,
  },
}

-- Names a builtin backend serves (the backend is inferred from them).
schema.builtin_models = { editor = { "identity", "imageops" }, judge = { "metrics" } }

S.editor = { doc = "the model that edits (alias: diffusion_model)", model = "editor" }
S.judge = { doc = "the model that scores (alias: reward_model)", model = "judge" }
S.diffusion_model = { doc = "the seed's name for editor", model = "editor" }
S.reward_model = { doc = "the seed's name for judge", model = "judge" }

------------------------------------------------------------------------
-- Prompts (lua/evalhost/prompts.lua).
------------------------------------------------------------------------

S.prompts = { doc = "the judge's prompt templates", keys = {
  file = { "string", "config/prompts.yaml", "a prompts file (relative: to the current folder, else the config's)" },
  language = { "string", "zh", "which language section of the prompts file" },
  templates = { "map", nil, "per-category templates over the file's: {category: {system, user}}; `default` for all",
    values = { "map", nil, "one category's templates", keys = {
      system = { "string", nil, "the system prompt" },
      user = { "string", nil, "the user prompt ({{instruction}}, {{description}}, {{category}}, {{id}})" },
    } } },
} }

------------------------------------------------------------------------
-- The run (lua/evalhost/schedule/setup.lua, prefetch.lua; runkey.lua).
------------------------------------------------------------------------

S.run = { doc = "where outputs go and how the run behaves", keys = {
  out = { "string", "outputs", "the output folder (results/, images/, journal.jsonl)" },
  keep_both = { "boolean|string", "auto", "keep both models on the GPU: auto (when both fit), true, false",
    one_of = { "auto", true, false } },
  reuse_edits_from = { "string", nil, "an earlier run's folder whose edits are reused when its editor config matches" },
  writes_in_flight = { "integer", 1, "edited images being saved at once", min = 1, max = 64 },
  device_memory = { "string|number", nil, "simulate a device of this capacity on the CPU (\"80GB\", bytes)" },
  pin = { "string", "auto", "page-lock CUDA models' host copies", one_of = { "auto", "always", "never" } },
} }

------------------------------------------------------------------------
-- The report (lua/evalhost/schedule/setup.lua, finish.lua; lua/evalhost/report.lua).
------------------------------------------------------------------------

S.report = { doc = "how results are summarised", keys = {
  aggregate = { "string", "pairs", "the overall mean: over all pairs, or of the category means",
    one_of = { "pairs", "categories" } },
  bootstrap = { "map", nil, "the 95% confidence intervals", keys = {
    resamples = { "integer", 2000, "bootstrap resamples", min = 1 },
    seed = { "integer", 0, "the resampling seed" },
  } },
  html = { "boolean", true, "write the HTML report" },
  thumb = { "integer", 192, "thumbnail size in the HTML report, pixels", min = 1 },
  embed = { "boolean", false, "images inside the HTML page instead of files beside it" },
  originals = { "boolean", true, "the HTML report shows the original images too" },
  chunk_rows = { "integer", nil, "pairs per data file of the HTML report", min = 1 },
  page_size = { "integer", nil, "pairs per page of the HTML report", min = 1 },
} }

------------------------------------------------------------------------
-- Limits (host/main.c, host/lua/l_dataset.c, l_json.c, l_tokenizer.c, backend_http.c).
------------------------------------------------------------------------

S.image = { doc = "image limits (checked from the header, before decoding)", keys = {
  max_pixels = { "number", 64000000, "the most pixels an image may have", min = 1 },
  max_side = { "integer", 65535, "the longest side", min = 1 },
  keep_alpha = { "boolean", true, "keep an alpha channel (the judge composites it onto white, the editor drops it)" },
} }

S.limits = { doc = "bounds on untrusted input", keys = {
  max_b64_len = { "number", 1073741824, "the longest base64 image string, bytes", min = 1 },
  max_json_depth = { "integer", 64, "nesting of JSON (datasets, evalhost.json)", min = 1, max = 100000 },
  max_pairs = { "integer", 1000000, "pairs in one dataset file", min = 1 },
  max_string = { "map", nil, "the longest dataset strings, bytes", keys = {
    id = { "integer", 256, "a pair's id", min = 1 },
    instruction = { "integer", 65536, "an instruction", min = 1 },
  } },
  max_tokenizer_input = { "integer", nil, "the longest text one tokenizer call takes, bytes", min = 0 },
  max_http_body = { "number", 67108864, "the largest HTTP reply, bytes", min = 1 },
  max_reply_chars = { "integer", 65536, "the characters of a judge's reply kept (journal, report)", min = 1 },
} }

------------------------------------------------------------------------
-- The console (lua/evalhost/schedule/run.lua, steps.lua, finish.lua).
------------------------------------------------------------------------

S.ui = { doc = "the console", keys = {
  language = { "string", "both", "labels, banners and progress in en, zh or both", one_of = { "en", "zh", "both" } },
} }

------------------------------------------------------------------------
-- Scripts' own sections (scripts/*.lua).
------------------------------------------------------------------------

S.rejudge = { doc = "scripts/rejudge.lua", keys = {
  from = { "string", nil, "the run folder whose edits are scored again" },
  only = { "string|list", "all", "all, failed, or a list of pair ids" },
  force = { "boolean", false, "rejudge even when the source run's key differs" },
} }

S.compare = { doc = "scripts/compare.lua", keys = {
  runs = { "list", nil, "the two run folders to compare", items = "string" },
  top = { "integer", 10, "pairs listed with the largest differences", min = 0 },
} }

S.judge_repeat = { doc = "scripts/judge_repeat.lua", keys = {
  k = { "integer", 3, "times each pair is scored", min = 2 },
  from = { "string", nil, "score an earlier run's edits instead of editing" },
} }

S.merge = { doc = "scripts/merge.lua", keys = {
  inputs = { "list|string", nil, "the shard folders (or a glob) to merge", items = "string" },
  force = { "boolean", false, "merge shards whose run keys differ" },
} }

S.script = { doc = "free-form: a user script's own settings (evalhost.config.script)", free = true }

return schema
