// ops.h — what the libtorch files of host/models/torch/ share (private; C
// callers see include/evalhost/torch_shim.h and the model headers): errors
// turned into eh_status, the module's flat buffers, one device scope, weight
// planning with one shape check, norms, rotary tables and attention.  Each
// architecture file (qwen3vl.cpp, qwen25vl_text_encoder.cpp,
// qwenimage_vae.cpp, qwenimage_dit.cpp) is its forward written over these,
// as llama.cpp's src/models/<arch>.cpp are over llama-graph.cpp's build_*.
#ifndef EVALHOST_TORCH_OPS_H
#define EVALHOST_TORCH_OPS_H

#include "evalhost/safetensors.h"
#include "evalhost/torch_shim.h"

#include <c10/core/Event.h>
#include <torch/script.h>

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace ehtorch
{

// Offsets in the flat buffers are rounded up to this, so every tensor starts
// aligned for vector loads and for the device's widest access.
constexpr int64_t kAlign = 256;

// err (may be NULL) gets code and the formatted line; returns code.
eh_status fail(eh_error *err, eh_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

// torch's messages run over many lines (hints, stacks); the first line says
// what happened, which is what a log line and a report cell can hold.
std::string first_line(const char *what);
std::string shape_str(at::IntArrayRef sizes);
inline std::string shape_str(const at::Tensor &t)
{
    return shape_str(t.sizes());
}

// Every exported function body runs inside this, so no exception crosses C:
// c10::Error and std::exception become code (EH_ENOMEM for allocation
// failures) with "what: " and torch's first line.
template <typename F> eh_status guarded(eh_error *err, eh_status code, const char *what, F &&f)
{
    try {
        return f();
    } catch (const c10::OutOfMemoryError &e) {
        return fail(err, EH_ENOMEM, "%s: out of memory: %s", what, first_line(e.what_without_backtrace()).c_str());
    } catch (const c10::Error &e) {
        std::string msg = first_line(e.what_without_backtrace());
        bool oom =
            msg.find("can't allocate memory") != std::string::npos || msg.find("out of memory") != std::string::npos;
        return fail(err, oom ? EH_ENOMEM : code, "%s: %s", what, msg.c_str());
    } catch (const std::bad_alloc &) {
        return fail(err, EH_ENOMEM, "%s: out of host memory", what);
    } catch (const std::exception &e) {
        return fail(err, code, "%s: %s", what, first_line(e.what()).c_str());
    } catch (...) {
        return fail(err, code, "%s: unknown C++ exception", what);
    }
}

std::optional<at::ScalarType> parse_dtype(const char *s);
// "cpu", "cuda", "cuda:N" → a device; nullopt with a reason otherwise.
std::optional<c10::Device> parse_device(const char *s, std::string &why);

// One tensor of the module: its place in the flat buffers.
struct slot {
    at::Tensor t;            // the module's own tensor object (set_data retargets it)
    at::ScalarType dtype;
    std::vector<int64_t> sizes;
    int64_t offset;          // bytes into the flat buffers
    int64_t nbytes;
};

// An overlapped load in flight (residency.cpp): the device buffer filled
// chunk by chunk, an event per chunk (CUDA: recorded on the copy stream) or
// a count of chunks arrived (the CPU's copier thread).
struct pending_load {
    std::vector<int64_t> ends;        // byte end of each chunk in the flat buffer, ascending
    std::vector<c10::Event> events;   // CUDA
    size_t waited = 0;                // CUDA: chunks the compute stream already waits for
    std::mutex mu;                    // CPU: arrived
    std::condition_variable cv;
    size_t arrived = 0;
    std::thread copier;
};

}  // namespace ehtorch

struct eh_torch_module {
    torch::jit::Module module;
    eh_torch_role role;
    at::ScalarType dtype;
    c10::Device device{ c10::kCPU };
    bool jit_optimize = false;
    bool cpu_copy = false;             // CPU: move through a second buffer as a GPU load does
    bool text_list = false;
    std::vector<ehtorch::slot> slots;
    int64_t total = 0;                 // bytes of the flat buffers (with alignment)
    int64_t footprint = 0;             // bytes of the tensors themselves
    at::Tensor host;                   // uint8 [total]: written once, never again
    at::Tensor dev;                    // uint8 [total] on the device when loaded
    eh_torch_host_kind host_kind = EH_TORCH_HOST_PLAIN;
    eh_torch_pin pin = EH_TORCH_PIN_AUTO;   // run.pin
    std::string host_note;             // how the host copy is held, in words
    std::optional<c10::Stream> copy_stream;
    bool on_device = false;
    int64_t overlap_chunk = 0;         // > 0: loads overlap the first forward (torch_shim.h)
    int overlap_delay_us = 0;          // tests: the CPU copier's sleep per chunk
    std::unique_ptr<ehtorch::pending_load> pending;   // while an overlapped copy may be in flight
};

namespace ehtorch
{

// ---- the flat buffers (residency.cpp) ------------------------------------
at::Tensor view_of(const at::Tensor &flat, const slot &s);
// Points every module tensor into `flat` (host or device buffer).
void retarget(eh_torch_module *m, const at::Tensor &flat);
// The host buffer: registered mmap, else torch pinned, on CUDA; plain on CPU.
at::Tensor alloc_host(int64_t bytes, bool pin, eh_torch_host_kind *kind);
// m's host buffer by its run.pin (torch_shim.h): kind and note set; a
// refusal under "always" throws naming the size.
at::Tensor alloc_module_host(eh_torch_module *m, int64_t bytes);
// An overlapped load's waits.  ready: t (a weight viewing the device
// buffer) once the chunk holding it has arrived: the current CUDA stream
// waits on that chunk's event (the host goes on), the CPU waits for the
// copier; at once when no copy is in flight.  ready_all: the same for the
// whole buffer.  finish_load: the host waits for the copy and drops the
// events (unload, free, reload).
void wait_chunk(eh_torch_module *m, const at::Tensor &t);
inline const at::Tensor &ready(eh_torch_module *m, const at::Tensor &t)
{
    if (m->pending)
        wait_chunk(m, t);
    return t;
}
void ready_all(eh_torch_module *m);
void finish_load(eh_torch_module *m);
// Reserves the next aligned stretch of the module's flat buffers.
slot &add_slot(eh_torch_module *m, at::ScalarType dtype, std::vector<int64_t> sizes);
// opt (NULL: the defaults) checked and copied into m.
eh_status setup(const eh_torch_options *opt, eh_torch_module *m, eh_error *err);

// The one prologue of every native forward: no autograd, and on a GPU the
// module's device current for the call.
struct device_scope {
    c10::InferenceMode inference;
    std::optional<c10::DeviceGuard> guard;
    explicit device_scope(const eh_torch_module *m)
    {
        if (m->device.is_cuda())
            guard.emplace(m->device);
    }
};

// ---- named weights (ops.cpp) ----------------------------------------------
// A weight map's tensors share their TensorImpls with the module's slots.
typedef std::map<std::string, at::Tensor> weight_map;

// One lookup for every model's named weights: a missing one is a c10::Error
// "weight 'NAME' is missing".
const at::Tensor &named_weight(const weight_map &w, const std::string &name);
bool ends_with(const std::string &s, const char *suffix);
std::optional<at::ScalarType> st_scalar(eh_st_dtype d);

// The one shape check (llama.cpp's check_tensor_dims): a c10::Error naming
// the tensor, the shape found and the shape the config needs.
void check_dims(const std::string &name, at::IntArrayRef found, at::IntArrayRef expected);
// named_weight, then check_dims.
const at::Tensor &checked_weight(const weight_map &w, const std::string &name, at::IntArrayRef expected);

// How a safetensors tensor becomes its slot: as it is, experts stored
// [E, in, out] transposed to [E, out, in], or a causal 3-D kernel's last
// temporal slice.
enum class stored_as { as_is, transposed_1_2, last_frame };

struct planned_weight {
    std::string name;             // the key in the model's weight map
    const eh_st_tensor *t;        // the file's tensor (read-only mapping)
    at::ScalarType dtype;         // as held
    std::vector<int64_t> sizes;   // as held
    stored_as how;
};

// A weight a config expects: its name and shape.
typedef std::vector<std::pair<std::string, std::vector<int64_t>>> expected_weights;

// The weights of `expected`, looked up in by_name and held in dtype: each
// is present (else "weight 'NAME' is missing"), floating and of the
// expected shape (check_dims), or a c10::Error says which.
std::vector<planned_weight> plan_expected(const expected_weights &expected,
                                          const std::map<std::string, const eh_st_tensor *> &by_name,
                                          at::ScalarType dtype);

// The native models' load: every planned weight gets a slot in one host
// buffer (pinned on CUDA), is converted into it, and w maps its name to a
// tensor viewing the buffer (retargeted when the module moves).
void place_weights(eh_torch_module *m, const std::vector<planned_weight> &plan, weight_map &w);

// The native models' handles (judge, VAE, MMDiT, text encoder) hold tm and
// w: free_weights releases both; load_weights sets x's module up from opt
// with role, then fill(m) lays the weights out (an exception becomes
// EH_EFORMAT "weights: ..."); *out = x, or x freed.
template <class M> void free_weights(M *x)
{
    if (!x)
        return;
    try {
        x->w.clear();
    } catch (...) {
    }
    eh_torch_module_free(x->tm);
    delete x;
}

template <class M, class Fill>
eh_status load_weights(M *x, const eh_torch_options *opt, eh_torch_role role, M **out, eh_error *err, Fill fill)
{
    x->tm = new (std::nothrow) eh_torch_module();
    eh_status rc = x->tm ? setup(opt, x->tm, err) : fail(err, EH_ENOMEM, "out of memory");
    if (rc == EH_OK)
        rc = guarded(err, EH_EFORMAT, "weights", [&]() -> eh_status {
            x->tm->role = role;
            return fill(x->tm);
        });
    if (rc != EH_OK) {
        free_weights(x);
        return rc;
    }
    *out = x;
    return EH_OK;
}

// A float32 host array as a tensor of `sizes` on the module's device in its
// dtype (a copy: the caller's memory is only read).
at::Tensor input(const eh_torch_module *m, const float *data, at::IntArrayRef sizes);
// t as float32 on the CPU into out (room for t.numel()).
void output(const at::Tensor &t, float *out);

// ---- norms ----------------------------------------------------------------
// transformers' RMSNorm: float32 statistics, weight times the input dtype.
at::Tensor rms_norm(const at::Tensor &x, const at::Tensor &wt, double eps);
// diffusers' RMSNorm: float32 statistics, the product in float32 unless the
// weight is half.
at::Tensor rms_norm_diffusers(const at::Tensor &x, const at::Tensor &wt, double eps);

// ---- rotary ---------------------------------------------------------------
// The one rotary table: 1 / theta^(arange(0, dim, 2) / dim) (float32, CPU),
// times positions [...] → angles [..., dim/2].
at::Tensor rope_inv_freq(double theta, int64_t dim);
at::Tensor rope_angles(const at::Tensor &pos, double theta, int64_t dim);
// The rotate-half form's table: angles [..., d/2] → [..., d] both halves.
inline at::Tensor rope_full(const at::Tensor &angles)
{
    return at::cat({ angles, angles }, -1);
}
at::Tensor rotate_half(const at::Tensor &x);
// x * cos + rotate_half(x) * sin
at::Tensor apply_rope(const at::Tensor &x, const at::Tensor &cosv, const at::Tensor &sinv);
// A vision tower's patch positions (row, column) in merge-block order, as
// the Qwen-VL processors lay patches out: rows = t * gh * gw.
void merge_block_positions(int64_t rows, int gh, int gw, int merge, std::vector<int64_t> &prow,
                           std::vector<int64_t> &pcol);
// The 2-D vision rotary over those positions: half the head's frequencies
// for rows, half for columns → [rows, head_dim] (rotate-half form, CPU).
at::Tensor vision_rope_2d(const std::vector<int64_t> &prow, const std::vector<int64_t> &pcol, double theta,
                          int head_dim);

// ---- attention ------------------------------------------------------------
// q [.., H, Lq, D], k/v [.., Hkv, Lk, D]: key/value heads repeated to H
// (grouped-query), then SDPA with the given scale (causal: top-left aligned).
// mask (bool, true = attend; broadcast over heads) replaces causal when given.
at::Tensor attention(const at::Tensor &q, at::Tensor k, at::Tensor v, bool causal, double scale,
                     const at::Tensor &mask = at::Tensor());

}  // namespace ehtorch

#endif
