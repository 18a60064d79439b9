// torch_shim.cpp — the only C++ in evalhost: TorchScript modules held as one
// immutable flat host buffer plus, when loaded, one flat device buffer of the
// same layout.  Every exported function catches c10::Error and
// std::exception and turns them into an eh_status and a one-line message;
// nothing C++ leaves this file (see include/evalhost/torch_shim.h).
#include "evalhost/torch_shim.h"

#include <ATen/core/grad_mode.h>
#include <c10/core/CachingDeviceAllocator.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <torch/cuda.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/script.h>
#if __has_include(<torch/headeronly/version.h>)
#include <torch/headeronly/version.h>
#elif __has_include(<torch/version.h>)
#include <torch/version.h>
#endif
#ifndef TORCH_VERSION
#define TORCH_VERSION "unknown"
#endif

#include <dlfcn.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <sstream>
#include <string>
#include <unordered_set>
#include <vector>

namespace {

// Offsets in the flat buffers are rounded up to this, so every tensor starts
// aligned for vector loads and for the device's widest access.
constexpr int64_t kAlign = 256;

eh_status fail(eh_error *err, eh_status code, const char *fmt, ...)
{
    if (err) {
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

// torch's messages run over many lines (hints, stacks); the first line says
// what happened, which is what a log line and a report cell can hold.
std::string first_line(const char *what)
{
    std::string s(what ? what : "unknown error");
    size_t start = s.find_first_not_of(" \t\r\n");
    s = start == std::string::npos ? std::string("unknown error") : s.substr(start);
    size_t nl = s.find('\n');
    if (nl != std::string::npos)
        s.resize(nl);
    // "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: ..."
    // says where in torch; the reader wants what, which follows
    if (s.rfind("[enforce fail at ", 0) == 0) {
        size_t what_at = s.find(". ", s.find("] "));
        if (what_at != std::string::npos)
            s = s.substr(what_at + 2);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\r'))
        s.pop_back();
    if (s.size() > 400)
        s = s.substr(0, 400) + "...";
    return s;
}

std::string shape_str(const at::Tensor &t)
{
    std::ostringstream os;
    os << t.sizes();
    return os.str();
}

// Every exported function body runs inside this, so no exception crosses C.
template <typename F>
eh_status guarded(eh_error *err, eh_status code, const char *what, F &&f)
{
    try {
        return f();
    } catch (const c10::OutOfMemoryError &e) {
        return fail(err, EH_ENOMEM, "%s: out of memory: %s", what, first_line(e.what_without_backtrace()).c_str());
    } catch (const c10::Error &e) {
        std::string msg = first_line(e.what_without_backtrace());
        bool oom = msg.find("can't allocate memory") != std::string::npos ||
                   msg.find("out of memory") != std::string::npos;
        return fail(err, oom ? EH_ENOMEM : code, "%s: %s", what, msg.c_str());
    } catch (const std::bad_alloc &) {
        return fail(err, EH_ENOMEM, "%s: out of host memory", what);
    } catch (const std::exception &e) {
        return fail(err, code, "%s: %s", what, first_line(e.what()).c_str());
    } catch (...) {
        return fail(err, code, "%s: unknown C++ exception", what);
    }
}

std::optional<at::ScalarType> parse_dtype(const char *s)
{
    if (!s)
        return at::kFloat;
    std::string d(s);
    if (d == "float32" || d == "fp32" || d == "float")
        return at::kFloat;
    if (d == "float16" || d == "fp16" || d == "half")
        return at::kHalf;
    if (d == "bfloat16" || d == "bf16")
        return at::kBFloat16;
    return std::nullopt;
}

// "cpu", "cuda", "cuda:N" → a device; nullopt with a reason otherwise.
std::optional<c10::Device> parse_device(const char *s, std::string &why)
{
    std::string d(s ? s : "cpu");
    if (d == "cpu")
        return c10::Device(c10::kCPU);
    if (d == "cuda" || d.rfind("cuda:", 0) == 0) {
        int idx = 0;
        if (d.size() > 5) {
            char *end = nullptr;
            long v = strtol(d.c_str() + 5, &end, 10);
            if (*end || v < 0 || v > 127 || end == d.c_str() + 5) {
                why = "bad device '" + d + "' (expected cpu, cuda, cuda:N or auto)";
                return std::nullopt;
            }
            idx = (int)v;
        }
        if (!torch::cuda::is_available()) {
            why = "device '" + d + "' requested but CUDA is not available (libtorch " TORCH_VERSION
                  " without a usable GPU)";
            return std::nullopt;
        }
        int count = (int)torch::cuda::device_count();
        if (idx >= count) {
            why = "device '" + d + "' requested but only " + std::to_string(count) + " CUDA device(s) are visible";
            return std::nullopt;
        }
        return c10::Device(c10::kCUDA, (c10::DeviceIndex)idx);
    }
    why = "bad device '" + d + "' (expected cpu, cuda, cuda:N or auto)";
    return std::nullopt;
}

// cudaHostRegister, found at run time in the CUDA runtime torch already
// loaded: page-locking our own mmap'd buffer pins exactly the bytes we need,
// where torch's pinned allocator would round 40 GB up to 64 GB.  No CUDA
// header or library is needed at build time, so the CPU build is the same code.
typedef int (*host_register_fn)(void *, size_t, unsigned int);
typedef int (*host_unregister_fn)(void *);

struct cuda_rt {
    host_register_fn reg = nullptr;
    host_unregister_fn unreg = nullptr;
};

cuda_rt find_cuda_rt()
{
    cuda_rt rt;
    rt.reg = reinterpret_cast<host_register_fn>(dlsym(RTLD_DEFAULT, "cudaHostRegister"));
    rt.unreg = reinterpret_cast<host_unregister_fn>(dlsym(RTLD_DEFAULT, "cudaHostUnregister"));
    if (!rt.reg || !rt.unreg)
        rt.reg = nullptr, rt.unreg = nullptr;
    return rt;
}

// One tensor of the module: its place in the flat buffers.
struct slot {
    at::Tensor t;            // the module's own tensor object (set_data retargets it)
    at::ScalarType dtype;
    std::vector<int64_t> sizes;
    int64_t offset;          // bytes into the flat buffers
    int64_t nbytes;
};

}  // namespace

struct eh_torch_module {
    torch::jit::Module module;
    eh_torch_role role;
    at::ScalarType dtype;
    c10::Device device{c10::kCPU};
    bool jit_optimize = false;
    bool cpu_copy = false;             // CPU: move through a second buffer as a GPU load does
    bool text_list = false;
    std::vector<slot> slots;
    int64_t total = 0;                 // bytes of the flat buffers (with alignment)
    int64_t footprint = 0;             // bytes of the tensors themselves
    at::Tensor host;                   // uint8 [total]: written once, never again
    at::Tensor dev;                    // uint8 [total] on the device when loaded
    eh_torch_host_kind host_kind = EH_TORCH_HOST_PLAIN;
    std::optional<c10::Stream> copy_stream;
    bool on_device = false;
};

namespace {

at::Tensor view_of(const at::Tensor &flat, const slot &s)
{
    return flat.narrow(0, s.offset, s.nbytes).view(s.dtype).view(s.sizes);
}

// Points every module tensor into `flat` (host or device buffer).
void retarget(eh_torch_module *m, const at::Tensor &flat)
{
    at::NoGradGuard no_grad;
    for (auto &s : m->slots)
        s.t.set_data(view_of(flat, s));
}

// The host buffer: registered mmap, else torch pinned, on CUDA; plain on CPU.
at::Tensor alloc_host(int64_t bytes, bool pin, eh_torch_host_kind *kind)
{
    *kind = EH_TORCH_HOST_PLAIN;
    if (bytes == 0)
        bytes = kAlign;   // a module without weights still gets a (tiny) buffer
    if (pin) {
        cuda_rt rt = find_cuda_rt();
        if (rt.reg) {
            void *p = mmap(nullptr, (size_t)bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED)
                throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
            madvise(p, (size_t)bytes, MADV_HUGEPAGE);   // fewer pages to pin, faster DMA setup
#endif
            if (rt.reg(p, (size_t)bytes, 1u /* cudaHostRegisterPortable */) == 0) {
                *kind = EH_TORCH_HOST_REGISTERED;
                size_t len = (size_t)bytes;
                host_unregister_fn unreg = rt.unreg;
                return at::from_blob(
                    p, { bytes },
                    [len, unreg](void *ptr) {
                        unreg(ptr);
                        munmap(ptr, len);
                    },
                    at::TensorOptions().dtype(at::kByte));
            }
            // locked-memory limit, or no context: fall back, and clear the
            // runtime's last error so torch's next launch check does not see it
            typedef int (*get_last_error_fn)(void);
            if (auto clear = reinterpret_cast<get_last_error_fn>(dlsym(RTLD_DEFAULT, "cudaGetLastError")))
                clear();
            munmap(p, (size_t)bytes);
        }
        *kind = EH_TORCH_HOST_TORCH_PINNED;
        return at::empty({ bytes }, at::TensorOptions().dtype(at::kByte).pinned_memory(true));
    }
    return at::empty({ bytes }, at::TensorOptions().dtype(at::kByte));
}

// Reserves the next aligned stretch of the module's flat buffers.
slot &add_slot(eh_torch_module *m, at::ScalarType dtype, std::vector<int64_t> sizes)
{
    slot s;
    s.dtype = dtype;
    s.sizes = std::move(sizes);
    int64_t numel = 1;
    for (int64_t d : s.sizes)
        numel *= d;
    s.nbytes = numel * (int64_t)c10::elementSize(s.dtype);
    s.offset = m->total;
    m->total += (s.nbytes + kAlign - 1) / kAlign * kAlign;
    m->footprint += s.nbytes;
    m->slots.push_back(std::move(s));
    return m->slots.back();
}

// Collects the module's tensors once each (a shared submodule lists them
// twice), casts floating ones to the dtype and packs them into the host
// buffer; each tensor then views the buffer and its loaded copy is freed
// on the spot.  The peak is still about twice the model (torch::jit::load
// reads every tensor before the first is packed).
void pack(eh_torch_module *m)
{
    std::unordered_set<const c10::TensorImpl *> seen;
    for (const auto &a : m->module.named_attributes(/*recurse=*/true)) {
        if (!a.value.isTensor())
            continue;
        at::Tensor t = a.value.toTensor();
        if (!t.defined() || !seen.insert(t.unsafeGetTensorImpl()).second)
            continue;
        TORCH_CHECK(!t.is_sparse() && !t.is_quantized(), "tensor '", a.name,
                    "' is sparse or quantized, which this backend does not hold");
        add_slot(m, at::isFloatingType(t.scalar_type()) ? m->dtype : t.scalar_type(), t.sizes().vec()).t = t;
    }
    bool pin = m->device.is_cuda();
    m->host = alloc_host(m->total, pin, &m->host_kind);
    at::NoGradGuard no_grad;
    for (auto &s : m->slots) {
        at::Tensor v = view_of(m->host, s);
        v.copy_(s.t.detach());
        s.t.set_data(v);
        s.t.requires_grad_(false);
    }
}

bool is_tensor_type(const c10::TypePtr &t)
{
    return t->kind() == c10::TypeKind::TensorType;
}

bool is_str_type(const c10::TypePtr &t)
{
    return t->kind() == c10::TypeKind::StringType;
}

bool is_str_list_type(const c10::TypePtr &t)
{
    return t->kind() == c10::TypeKind::ListType && t->containedTypes().size() == 1 &&
           is_str_type(t->containedTypes()[0]);
}

// forward must match the role; returns "" when it does, else why not.
std::string check_signature(eh_torch_module *m)
{
    auto method = m->module.find_method("forward");
    if (!method)
        return "the module has no forward method";
    const c10::FunctionSchema &schema = method->function().getSchema();
    const auto &args = schema.arguments();   // args[0] is self
    std::ostringstream got;
    got << schema;
    std::string want = m->role == EH_TORCH_EDITOR
                           ? "an editor needs forward(Tensor img, str instruction) -> Tensor"
                           : "a judge needs forward(Tensor edited, Tensor original, str prompt) -> Tensor";
    size_t n = m->role == EH_TORCH_EDITOR ? 3 : 4;
    bool ok = args.size() == n && schema.returns().size() == 1 && is_tensor_type(schema.returns()[0].type());
    for (size_t i = 1; ok && i + 1 < n; i++)
        ok = is_tensor_type(args[i].type());
    if (ok) {
        const auto &text = args[n - 1].type();
        ok = is_str_type(text) || is_str_list_type(text);
        m->text_list = is_str_list_type(text);
    }
    if (ok)
        return "";
    return "forward has the wrong signature: " + got.str() + "; " + want + " (List[str] also accepted)";
}

eh_status setup(const eh_torch_options *opt, eh_torch_module *m, eh_error *err)
{
    eh_torch_options o = opt ? *opt : eh_torch_default_options();
    return guarded(err, EH_EINVAL, "options", [&]() -> eh_status {
        auto dt = parse_dtype(o.dtype);
        if (!dt)
            return fail(err, EH_EINVAL, "unknown dtype '%s' (float32, float16 or bfloat16)", o.dtype);
        std::string why;
        auto dev = parse_device(o.device, why);
        if (!dev)
            return fail(err, EH_EINVAL, "%s", why.c_str());
        m->role = o.role;
        m->dtype = *dt;
        m->device = *dev;
        m->jit_optimize = o.jit_optimize != 0;
        m->cpu_copy = o.cpu_copy != 0;
        return EH_OK;
    });
}

at::Tensor input_tensor(eh_torch_module *m, const float *data, int n, int h, int w)
{
    at::Tensor t = at::from_blob(const_cast<float *>(data), { n, 3, h, w }, at::TensorOptions().dtype(at::kFloat));
    return t.to(m->device, m->dtype, /*non_blocking=*/false, /*copy=*/true);
}

c10::IValue text_value(eh_torch_module *m, const char *const *texts, int n)
{
    if (m->text_list) {
        c10::List<std::string> list;
        for (int i = 0; i < n; i++)
            list.push_back(texts[i] ? texts[i] : "");
        return list;
    }
    for (int i = 1; i < n; i++)
        TORCH_CHECK(!strcmp(texts[i] ? texts[i] : "", texts[0] ? texts[0] : ""),
                    "a str-typed forward takes one text per batch; group items by text");
    return std::string(texts[0] ? texts[0] : "");
}

at::Tensor run_forward(eh_torch_module *m, std::vector<c10::IValue> inputs)
{
    torch::jit::GraphOptimizerEnabledGuard opt_guard(m->jit_optimize);
    c10::InferenceMode inference;
    c10::IValue out = m->module.forward(std::move(inputs));
    TORCH_CHECK(out.isTensor(), "forward returned ", out.tagKind(), ", not a Tensor");
    return out.toTensor();
}

// The native models' handles (judge, VAE, MMDiT, text encoder): the
// weights' views in w over tm's flat buffers and residency.
template <class M>
void free_weights(M *x)
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

// x's module set up from opt with role, then fill(m) lays the weights out
// (an exception becomes EH_EFORMAT "weights: ..."); *out = x, or x freed.
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

}  // namespace

extern "C" {

const char *eh_torch_version(void)
{
    return TORCH_VERSION;
}

int eh_torch_cuda_available(void)
{
    try {
        return torch::cuda::is_available() ? 1 : 0;
    } catch (...) {
        return 0;
    }
}

int eh_torch_cuda_device_count(void)
{
    try {
        return (int)torch::cuda::device_count();
    } catch (...) {
        return 0;
    }
}

eh_status eh_torch_cuda_memory(int device, int64_t *free_bytes, int64_t *total_bytes, eh_error *err)
{
    *free_bytes = 0;
    *total_bytes = 0;
    return guarded(err, EH_EMODEL, "gpu.memory", [&]() -> eh_status {
        if (!torch::cuda::is_available())
            return EH_OK;
        if (device < 0 || device >= (int)torch::cuda::device_count())
            return fail(err, EH_EINVAL, "gpu.memory: no CUDA device %d (%d visible)", device,
                        (int)torch::cuda::device_count());
        // cudaMemGetInfo from the runtime torch loaded (no CUDA headers at
        // build time); the allocator's own query where that is missing.
        typedef int (*mem_get_info_fn)(size_t *, size_t *);
        auto get_info = reinterpret_cast<mem_get_info_fn>(dlsym(RTLD_DEFAULT, "cudaMemGetInfo"));
        if (get_info) {
            c10::DeviceGuard guard(c10::Device(c10::kCUDA, (c10::DeviceIndex)device));
            size_t f = 0, t = 0;
            if (get_info(&f, &t) != 0)
                return fail(err, EH_EMODEL, "gpu.memory: cudaMemGetInfo failed on device %d", device);
            *free_bytes = (int64_t)f;
            *total_bytes = (int64_t)t;
            return EH_OK;
        }
        auto info = at::getDeviceAllocator(c10::kCUDA)->getMemoryInfo((c10::DeviceIndex)device);
        *free_bytes = (int64_t)info.first;
        *total_bytes = (int64_t)info.second;
        return EH_OK;
    });
}

eh_torch_options eh_torch_default_options(void)
{
    eh_torch_options o;
    o.role = EH_TORCH_EDITOR;
    o.dtype = "float32";
    o.device = "cpu";
    o.jit_optimize = 0;
    o.cpu_copy = 0;
    return o;
}

eh_status eh_torch_check_dtype(const char *dtype, eh_error *err)
{
    return guarded(err, EH_EINVAL, "dtype", [&]() -> eh_status {
        if (!parse_dtype(dtype))
            return fail(err, EH_EINVAL, "unknown dtype '%s' (float32, float16 or bfloat16)", dtype ? dtype : "");
        return EH_OK;
    });
}

eh_status eh_torch_check_device(const char *device, eh_error *err)
{
    return guarded(err, EH_EINVAL, "device", [&]() -> eh_status {
        std::string why;
        if (!parse_device(device, why))
            return fail(err, EH_EINVAL, "%s", why.c_str());
        return EH_OK;
    });
}

eh_status eh_torch_module_load(const char *path, const eh_torch_options *opt, eh_torch_module **out, eh_error *err)
{
    *out = nullptr;
    eh_torch_module *m = new (std::nothrow) eh_torch_module();
    if (!m)
        return fail(err, EH_ENOMEM, "out of memory");
    eh_status rc = setup(opt, m, err);
    if (rc != EH_OK) {
        delete m;
        return rc;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        delete m;
        return fail(err, EH_EIO, "%s: %s", path, strerror(e));
    }
    rc = guarded(err, EH_EFORMAT, path, [&]() -> eh_status {
        m->module = torch::jit::load(path, c10::Device(c10::kCPU));
        return EH_OK;
    });
    if (rc == EH_EFORMAT && err)
        snprintf(err->msg + strlen(err->msg), sizeof err->msg - strlen(err->msg), " (not a TorchScript archive?)");
    if (rc == EH_OK) {
        std::string bad = check_signature(m);
        if (!bad.empty())
            rc = fail(err, EH_EFORMAT, "%s: %s", path, bad.c_str());
    }
    if (rc == EH_OK)
        rc = guarded(err, EH_EFORMAT, path, [&]() -> eh_status {
            m->module.eval();
            pack(m);
            return EH_OK;
        });
    if (rc != EH_OK) {
        delete m;
        return rc;
    }
    *out = m;
    return EH_OK;
}

eh_status eh_torch_module_synthetic(int64_t bytes, int n_params, const eh_torch_options *opt, eh_torch_module **out,
                                    eh_error *err)
{
    *out = nullptr;
    if (n_params < 1 || bytes < n_params)
        return fail(err, EH_EINVAL, "synthetic model: need n_params >= 1 and bytes >= n_params");
    eh_torch_module *m = new (std::nothrow) eh_torch_module();
    if (!m)
        return fail(err, EH_ENOMEM, "out of memory");
    eh_status rc = setup(opt, m, err);
    if (rc != EH_OK) {
        delete m;
        return rc;
    }
    rc = guarded(err, EH_EMODEL, "synthetic model", [&]() -> eh_status {
        m->module = torch::jit::Module("__torch__.EvalhostSynthetic");
        int64_t per = bytes / n_params / (int64_t)c10::elementSize(m->dtype);
        if (per < 1)
            per = 1;
        for (int i = 0; i < n_params; i++) {
            std::string name = "p" + std::to_string(i);
            at::Tensor p = at::full({ per }, (double)((i % 7) + 1) / 8.0, at::TensorOptions().dtype(m->dtype));
            m->module.register_parameter(name, p, /*is_buffer=*/false);
        }
        // forward reads every weight back (the mean of their means), so a
        // caller can check that a load delivered them intact.
        std::string src;
        if (m->role == EH_TORCH_EDITOR)
            src = "def forward(self, img: Tensor, instruction: str) -> Tensor:\n";
        else
            src = "def forward(self, edited: Tensor, original: Tensor, prompt: str) -> Tensor:\n";
        src += "    s = 0.0\n";
        for (int i = 0; i < n_params; i++)
            src += "    s += float(self.p" + std::to_string(i) + ".double().mean())\n";
        src += "    s = s / " + std::to_string(n_params) + ".0\n";
        if (m->role == EH_TORCH_EDITOR)
            src += "    return torch.zeros_like(img) + s\n";
        else
            src += "    return torch.zeros_like(edited[:, 0, 0, 0]) + s * 10.0\n";
        m->module.define(src);
        std::string bad = check_signature(m);
        TORCH_CHECK(bad.empty(), bad);
        pack(m);
        return EH_OK;
    });
    if (rc != EH_OK) {
        delete m;
        return rc;
    }
    *out = m;
    return EH_OK;
}

void eh_torch_module_free(eh_torch_module *m)
{
    if (!m)
        return;
    try {
        if (m->on_device) {
            retarget(m, m->host);
            m->dev = at::Tensor();
        }
        m->slots.clear();
        m->module = torch::jit::Module();
        m->host = at::Tensor();
    } catch (...) {
        // freeing must not throw into C; what is left is reclaimed at exit
    }
    delete m;
}

eh_status eh_torch_module_to_device(eh_torch_module *m, int64_t *bytes, eh_error *err)
{
    *bytes = 0;
    if (m->on_device) {
        return EH_OK;
    }
    if (!m->device.is_cuda() && !m->cpu_copy) {
        // the host buffer is the CPU's copy: nothing moves, the bytes count as moved
        m->on_device = true;
        *bytes = m->footprint;
        return EH_OK;
    }
    if (!m->device.is_cuda()) {
        eh_status rc = guarded(err, EH_EMODEL, "load", [&]() -> eh_status {
            m->dev = at::empty({ m->host.numel() }, at::TensorOptions().dtype(at::kByte));
            m->dev.copy_(m->host);
            retarget(m, m->dev);
            return EH_OK;
        });
        if (rc != EH_OK) {
            m->dev = at::Tensor();
            return rc;
        }
        m->on_device = true;
        *bytes = m->total;
        return EH_OK;
    }
    eh_status rc = guarded(err, EH_EMODEL, "load", [&]() -> eh_status {
        c10::impl::VirtualGuardImpl impl(c10::kCUDA);
        c10::DeviceGuard device_guard(m->device);
        // Allocated on the current stream (the one forward runs on), so the
        // caching allocator orders its reuse after our kernels; filled on a
        // stream of its own with one copy of the whole buffer.
        m->dev = at::empty({ m->host.numel() }, at::TensorOptions().dtype(at::kByte).device(m->device));
        if (!m->copy_stream)
            m->copy_stream = impl.getStreamFromGlobalPool(m->device, /*isHighPriority=*/false);
        {
            c10::StreamGuard stream_guard(*m->copy_stream);
            m->dev.copy_(m->host, /*non_blocking=*/m->host_kind != EH_TORCH_HOST_PLAIN);
        }
        m->copy_stream->synchronize();
        retarget(m, m->dev);
        return EH_OK;
    });
    if (rc != EH_OK) {
        // a partial failure leaves the module where it was: on the host
        try {
            retarget(m, m->host);
        } catch (...) {
        }
        m->dev = at::Tensor();
        return rc;
    }
    m->on_device = true;
    *bytes = m->total;
    return EH_OK;
}

eh_status eh_torch_module_off_device(eh_torch_module *m, eh_error *err)
{
    if (!m->on_device)
        return EH_OK;
    if (!m->device.is_cuda()) {
        return guarded(err, EH_EMODEL, "unload", [&]() -> eh_status {
            if (m->dev.defined())
                retarget(m, m->host);
            m->dev = at::Tensor();
            m->on_device = false;
            return EH_OK;
        });
    }
    return guarded(err, EH_EMODEL, "unload", [&]() -> eh_status {
        c10::DeviceGuard device_guard(m->device);
        retarget(m, m->host);
        m->dev = at::Tensor();
        m->on_device = false;
        // Hand the freed block back to the driver, so gpu.memory() and other
        // processes see it free (the other model's load re-reserves it).  The
        // model is on the host by now whatever this says.
        try {
            at::getDeviceAllocator(c10::kCUDA)->emptyCache();
        } catch (const std::exception &) {
        }
        return EH_OK;
    });
}

int64_t eh_torch_module_footprint(const eh_torch_module *m)
{
    return m->footprint;
}

int eh_torch_module_on_device(const eh_torch_module *m)
{
    return m->on_device ? 1 : 0;
}

int eh_torch_module_tensor_count(const eh_torch_module *m)
{
    return (int)m->slots.size();
}

eh_torch_host_kind eh_torch_module_host_kind(const eh_torch_module *m)
{
    return m->host_kind;
}

int eh_torch_module_text_is_list(const eh_torch_module *m)
{
    return m->text_list ? 1 : 0;
}

eh_status eh_torch_module_edit(eh_torch_module *m, const float *images, int n, int h, int w, const char *const *texts,
                               float **out, int *oh, int *ow, eh_error *err)
{
    *out = nullptr;
    if (m->role != EH_TORCH_EDITOR)
        return fail(err, EH_ESTATE, "this module is a judge");
    if (!m->on_device)
        return fail(err, EH_ESTATE, "module is not loaded");
    return guarded(err, EH_EMODEL, "forward", [&]() -> eh_status {
        at::Tensor y = run_forward(m, { input_tensor(m, images, n, h, w), text_value(m, texts, n) });
        if (y.dim() == 3 && n == 1)
            y = y.unsqueeze(0);
        if (y.dim() != 4 || y.size(0) != n || (y.size(1) != 3 && y.size(1) != 1 && y.size(1) != 4) ||
            y.size(2) < 1 || y.size(3) < 1)
            return fail(err, EH_EMODEL, "forward returned a tensor of shape %s; an editor returns [%d, 3, H, W]",
                        shape_str(y).c_str(), n);
        if (!at::isFloatingType(y.scalar_type()))
            return fail(err, EH_EMODEL, "forward returned %s values; an editor returns floats in [0, 1]",
                        c10::toString(y.scalar_type()));
        if (y.size(1) == 1)
            y = y.expand({ -1, 3, -1, -1 });   // grey output: the same plane in R, G and B
        else if (y.size(1) == 4)
            y = y.narrow(1, 0, 3);             // alpha dropped, as image decoding does
        y = y.to(at::kCPU, at::kFloat).contiguous();
        size_t count = (size_t)y.numel();
        float *buf = (float *)malloc(count * sizeof(float));
        if (!buf)
            return fail(err, EH_ENOMEM, "out of memory for the output image");
        memcpy(buf, y.data_ptr<float>(), count * sizeof(float));
        *out = buf;
        *oh = (int)y.size(2);
        *ow = (int)y.size(3);
        return EH_OK;
    });
}

eh_status eh_torch_module_judge(eh_torch_module *m, const float *edited, int h, int w, const float *original, int h2,
                                int w2, int n, const char *const *prompts, double *out, int *k, eh_error *err)
{
    *k = 0;
    if (m->role != EH_TORCH_JUDGE)
        return fail(err, EH_ESTATE, "this module is an editor");
    if (!m->on_device)
        return fail(err, EH_ESTATE, "module is not loaded");
    return guarded(err, EH_EMODEL, "forward", [&]() -> eh_status {
        at::Tensor y = run_forward(
            m, { input_tensor(m, edited, n, h, w), input_tensor(m, original, n, h2, w2), text_value(m, prompts, n) });
        int kk;
        if (y.dim() == 0 && n == 1)
            y = y.reshape({ 1, 1 });
        else if (y.dim() == 1 && n == 1 && y.size(0) == 11)
            y = y.reshape({ 1, 11 });   // one item's logits
        else if (y.dim() == 1 && y.size(0) == n)
            y = y.reshape({ n, 1 });    // one score per item
        if (y.dim() == 2 && y.size(0) == n && (y.size(1) == 1 || y.size(1) == 11)) {
            kk = (int)y.size(1);
        } else {
            return fail(err, EH_EMODEL,
                        "forward returned a tensor of shape %s; a judge returns [%d] scores or [%d, 11] logits over "
                        "\"0\"..\"10\"",
                        shape_str(y).c_str(), n, n);
        }
        if (!at::isFloatingType(y.scalar_type()) && !at::isIntegralType(y.scalar_type(), false))
            return fail(err, EH_EMODEL, "forward returned %s values", c10::toString(y.scalar_type()));
        y = y.to(at::kCPU, at::kDouble).contiguous();
        memcpy(out, y.data_ptr<double>(), sizeof(double) * (size_t)n * (size_t)kk);
        *k = kk;
        return EH_OK;
    });
}

}  // extern "C"

// ===========================================================================
// Qwen3-VL: the native judge's forward (issue 12).  Everything below follows
// transformers' modeling_qwen3_vl.py / modeling_qwen3_vl_moe.py op by op, in
// the same dtypes (float32 where it upcasts), so the logits match it within
// float rounding.  Weights are slots of an eh_torch_module, so residency is
// the same one-copy moves as a TorchScript model's.
// ===========================================================================
extern "C" {
#include "evalhost/safetensors.h"
}

#include <algorithm>
#include <array>
#include <map>

struct eh_qwen3vl {
    eh_torch_module *tm = nullptr;
    eh_qwen3vl_config cfg;
    std::map<std::string, at::Tensor> w;   // share their TensorImpls with tm->slots
};

namespace {

// One lookup for every model's named weights (Qwen3-VL, the Qwen-Image VAE
// and MMDiT): a missing one is a c10::Error naming it.
const at::Tensor &named_weight(const std::map<std::string, at::Tensor> &w, const std::string &name)
{
    auto it = w.find(name);
    TORCH_CHECK(it != w.end(), "weight '", name, "' is missing");
    return it->second;
}

const at::Tensor &qw(eh_qwen3vl *q, const std::string &name)
{
    return named_weight(q->w, name);
}

bool ends_with(const std::string &s, const char *suffix)
{
    size_t n = strlen(suffix);
    return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

std::optional<at::ScalarType> st_scalar(eh_st_dtype d)
{
    switch (d) {
    case EH_ST_F32: return at::kFloat;
    case EH_ST_F16: return at::kHalf;
    case EH_ST_BF16: return at::kBFloat16;
    case EH_ST_F64: return at::kDouble;
    case EH_ST_I64: return at::kLong;
    case EH_ST_I32: return at::kInt;
    case EH_ST_I16: return at::kShort;
    case EH_ST_I8: return at::kChar;
    case EH_ST_U8: return at::kByte;
    case EH_ST_BOOL: return at::kBool;
    default: return std::nullopt;
    }
}

// How a safetensors tensor becomes its slot: as it is, experts stored
// [E, in, out] transposed to [E, out, in], or a causal 3-D kernel's last
// temporal slice.
enum class stored_as { as_is, transposed_1_2, last_frame };

struct planned_weight {
    std::string name;          // the key in the model's weight map
    const eh_st_tensor *t;     // the file's tensor (read-only mapping)
    at::ScalarType dtype;      // as held
    std::vector<int64_t> sizes;   // as held
    stored_as how;
};

// The native models' load: every planned weight gets a slot in one host
// buffer (pinned on CUDA), is converted into it, and w maps its name to a
// tensor viewing the buffer (retargeted when the module moves).
void place_weights(eh_torch_module *m, const std::vector<planned_weight> &plan, std::map<std::string, at::Tensor> &w)
{
    size_t first = m->slots.size();
    for (const auto &p : plan)
        add_slot(m, p.dtype, p.sizes);
    m->host = alloc_host(m->total, m->device.is_cuda(), &m->host_kind);
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < plan.size(); i++) {
        const planned_weight &p = plan[i];
        slot &s = m->slots[first + i];
        at::Tensor dst = view_of(m->host, s);
        std::vector<int64_t> file_sizes(p.t->shape, p.t->shape + p.t->ndim);
        at::Tensor from = at::from_blob(const_cast<void *>(p.t->data), file_sizes,
                                        at::TensorOptions().dtype(*st_scalar(p.t->dtype)));
        if (p.how == stored_as::transposed_1_2)
            from = from.transpose(1, 2);
        else if (p.how == stored_as::last_frame)
            from = from.select(2, from.size(2) - 1);
        dst.copy_(from);
        s.t = at::empty({ 0 }, at::TensorOptions().dtype(s.dtype));
        s.t.set_data(dst);
        w[p.name] = s.t;
    }
}

// The weights a config expects (name, shape), looked up in by_name, held
// in dtype: a missing one, or one of another shape or a non-float dtype,
// is EH_EFORMAT naming it.
eh_status plan_expected(const std::vector<std::pair<std::string, std::vector<int64_t>>> &expected,
                        const std::map<std::string, const eh_st_tensor *> &by_name, at::ScalarType dtype,
                        std::vector<planned_weight> &plan, eh_error *err)
{
    for (const auto &ex : expected) {
        auto it = by_name.find(ex.first);
        if (it == by_name.end())
            return fail(err, EH_EFORMAT, "weights: weight '%s' is missing", ex.first.c_str());
        const eh_st_tensor *t = it->second;
        std::vector<int64_t> got(t->shape, t->shape + t->ndim);
        auto sd = st_scalar(t->dtype);
        if (got != ex.second || !sd || !at::isFloatingType(*sd)) {
            std::ostringstream want;
            want << at::IntArrayRef(ex.second);
            return fail(err, EH_EFORMAT, "%s: tensor '%s' is %s %s where %s floats are expected", t->file, t->name,
                        eh_st_dtype_name(t->dtype), shape_str(at::empty(got, at::kByte)).c_str(), want.str().c_str());
        }
        plan.push_back({ ex.first, t, dtype, got, stored_as::as_is });
    }
    return EH_OK;
}

// transformers' RMSNorm: float32 statistics, weight times the input dtype.
at::Tensor rms_norm(const at::Tensor &x, const at::Tensor &wt, double eps)
{
    at::Tensor h = x.to(at::kFloat);
    at::Tensor var = h.pow(2).mean(-1, true);
    h = h * at::rsqrt(var + eps);
    return wt * h.to(x.scalar_type());
}

at::Tensor rotate_half(const at::Tensor &x)
{
    int64_t half = x.size(-1) / 2;
    return at::cat({ -x.narrow(-1, half, half), x.narrow(-1, 0, half) }, -1);
}

at::Tensor qlinear(eh_qwen3vl *q, const at::Tensor &x, const std::string &p, bool bias = true)
{
    return bias ? at::linear(x, qw(q, p + ".weight"), qw(q, p + ".bias")) : at::linear(x, qw(q, p + ".weight"));
}

// Qwen3VLVisionPatchMerger: LayerNorm (before or after the 2x2 shuffle), fc1, GELU (erf), fc2.
at::Tensor vision_merger(eh_qwen3vl *q, const at::Tensor &x, const std::string &p, bool postshuffle)
{
    const eh_qwen3vl_config &c = q->cfg;
    int64_t merged = (int64_t)c.v_hidden * c.merge_size * c.merge_size;
    at::Tensor h = postshuffle ? x.reshape({ -1, merged }) : x;
    h = at::layer_norm(h, { h.size(-1) }, qw(q, p + ".norm.weight"), qw(q, p + ".norm.bias"), 1e-6);
    h = h.reshape({ -1, merged });
    return qlinear(q, at::gelu(qlinear(q, h, p + ".linear_fc1")), p + ".linear_fc2");
}

// k images of one grid through the vision tower together (each attends to
// itself only): per image, merged embeddings [tokens, out] and the deepstack
// features [tokens, out] of each level.
void vision_forward(eh_qwen3vl *q, const std::vector<const float *> &patches, int t, int gh, int gw,
                    std::vector<at::Tensor> &embeds, std::vector<std::vector<at::Tensor>> &deep)
{
    const eh_qwen3vl_config &c = q->cfg;
    at::TensorOptions fopt = at::TensorOptions().dtype(at::kFloat);
    at::Device dev = q->tm->device;
    at::ScalarType dt = q->tm->dtype;
    int64_t rows = (int64_t)t * gh * gw, dim = 3LL * c.temporal_patch_size * c.patch_size * c.patch_size;
    int m = c.merge_size;
    TORCH_CHECK(gh % m == 0 && gw % m == 0, "image grid ", gh, "x", gw, " is not a multiple of merge_size ", m);
    int64_t k = (int64_t)patches.size();
    std::vector<at::Tensor> parts;
    for (const float *pp : patches)
        parts.push_back(at::from_blob(const_cast<float *>(pp), { rows, dim }, fopt));
    at::Tensor x = (k == 1 ? parts[0] : at::cat(parts, 0)).to(dev, dt);   // [k * rows, dim]
    // Conv3d with kernel = stride = the patch is a matmul over the flattened patch
    at::Tensor pw = qw(q, "model.visual.patch_embed.proj.weight").reshape({ c.v_hidden, dim });
    x = at::linear(x, pw, qw(q, "model.visual.patch_embed.proj.bias"));

    // patch (row, col) in merge-block order, as the processor lays patches out
    std::vector<int64_t> prow(rows), pcol(rows);
    for (int64_t i = 0; i < rows; i++) {
        int64_t within = i % ((int64_t)gh * gw);
        int64_t bw = gw / m;
        int64_t in_col = within % m, in_row = (within / m) % m;
        int64_t bcol = (within / (m * m)) % bw, brow = within / ((int64_t)m * m * bw);
        prow[i] = brow * m + in_row;
        pcol[i] = bcol * m + in_col;
    }
    // learned position table (side x side) resampled bilinearly, align_corners
    int side = (int)std::lround(std::sqrt((double)c.num_position_embeddings));
    std::vector<int64_t> idx(rows * 4);
    std::vector<float> wts(rows * 4);
    auto taps = [side](int64_t i, int size, int64_t *tp, float *wp) {
        float src = (float)i * (float)(side - 1) / (float)std::max(size - 1, 1);
        float fl = std::floor(src);
        for (int o = 0; o < 2; o++) {
            int64_t raw = (int64_t)fl + o;
            tp[o] = std::min<int64_t>(std::max<int64_t>(raw, 0), side - 1);
            wp[o] = std::max(0.0f, 1.0f - std::fabs(src - fl - (float)o));
        }
    };
    for (int64_t i = 0; i < rows; i++) {
        int64_t ht[2], wt2[2];
        float hw[2], ww[2];
        taps(prow[i], gh, ht, hw);
        taps(pcol[i], gw, wt2, ww);
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++) {
                idx[i * 4 + a * 2 + b] = ht[a] * side + wt2[b];
                wts[i * 4 + a * 2 + b] = hw[a] * ww[b];
            }
    }
    at::Tensor ti = at::from_blob(idx.data(), { rows, 4 }, at::TensorOptions().dtype(at::kLong)).to(dev);
    at::Tensor tw = at::from_blob(wts.data(), { rows, 4 }, fopt).to(dev);
    at::Tensor pos = at::embedding(qw(q, "model.visual.pos_embed.weight"), ti);   // [rows, 4, hidden]
    pos = (pos * tw.unsqueeze(-1).to(pos.scalar_type())).sum(1);
    x = x + pos.to(x.scalar_type()).repeat({ k, 1 });

    // 2-D rotary: half the head's frequencies for rows, half for columns
    int hd = c.v_hidden / c.v_heads;
    int sd = hd / 2;
    at::Tensor inv = 1.0 / at::pow(c.v_rope_theta, at::arange(0, sd, 2, fopt) / (double)sd);
    at::Tensor ph = at::from_blob(prow.data(), { rows }, at::TensorOptions().dtype(at::kLong)).to(at::kFloat);
    at::Tensor pc = at::from_blob(pcol.data(), { rows }, at::TensorOptions().dtype(at::kLong)).to(at::kFloat);
    at::Tensor fr = at::cat({ ph.unsqueeze(-1) * inv, pc.unsqueeze(-1) * inv }, -1);   // [rows, sd]
    fr = at::cat({ fr, fr }, -1).repeat({ k, 1 }).to(dev);
    at::Tensor cosv = fr.cos().unsqueeze(-2), sinv = fr.sin().unsqueeze(-2);

    for (int l = 0; l < c.v_depth; l++) {
        std::string p = "model.visual.blocks." + std::to_string(l);
        at::Tensor h = at::layer_norm(x, { c.v_hidden }, qw(q, p + ".norm1.weight"), qw(q, p + ".norm1.bias"), 1e-6);
        at::Tensor qkv =
            qlinear(q, h, p + ".attn.qkv").reshape({ k * rows, 3, c.v_heads, hd }).permute({ 1, 0, 2, 3 });
        at::Tensor qs = qkv[0], ks = qkv[1], vs = qkv[2];
        at::Tensor qf = qs.to(at::kFloat), kf = ks.to(at::kFloat);
        qs = (qf * cosv + rotate_half(qf) * sinv).to(dt);
        ks = (kf * cosv + rotate_half(kf) * sinv).to(dt);
        auto per_image = [&](const at::Tensor &z) { return z.reshape({ k, rows, c.v_heads, hd }).transpose(1, 2); };
        at::Tensor a = at::scaled_dot_product_attention(per_image(qs), per_image(ks), per_image(vs), {}, 0.0, false,
                                                        1.0 / std::sqrt((double)hd));
        a = a.transpose(1, 2).reshape({ k * rows, c.v_hidden });
        x = x + qlinear(q, a, p + ".attn.proj");
        h = at::layer_norm(x, { c.v_hidden }, qw(q, p + ".norm2.weight"), qw(q, p + ".norm2.bias"), 1e-6);
        x = x + qlinear(q, at::gelu(qlinear(q, h, p + ".mlp.linear_fc1"), "tanh"), p + ".mlp.linear_fc2");
        for (int d = 0; d < c.n_deepstack; d++)
            if (c.deepstack[d] == l) {
                auto split = vision_merger(q, x, "model.visual.deepstack_merger_list." + std::to_string(d), true)
                                 .chunk(k, 0);
                for (int64_t i = 0; i < k; i++)
                    deep[i][d] = split[i];
            }
    }
    embeds = vision_merger(q, x, "model.visual.merger", false).chunk(k, 0);
}

// Per layer keys and values [1, kv_heads, T, head_dim] after the rotary,
// and the rotary position of the next token (text positions continue from
// the largest multimodal position).
struct kv_cache {
    std::vector<at::Tensor> k, v;
    int64_t next_pos = 0;
};

// Qwen3VLMoeTextSparseMoeBlock: softmax router in float32, top-k
// renormalised, each hit expert run on its tokens.
at::Tensor moe_mlp(eh_qwen3vl *q, const at::Tensor &x, const std::string &p)
{
    const eh_qwen3vl_config &c = q->cfg;
    at::Tensor h = x.reshape({ -1, c.hidden_size });
    at::Tensor logits = at::linear(h, qw(q, p + ".gate.weight"));
    at::Tensor probs = at::softmax(logits, -1, at::kFloat);
    auto top = at::topk(probs, c.experts_per_tok, -1);
    at::Tensor tw = std::get<0>(top);
    tw = (tw / tw.sum(-1, true)).to(logits.scalar_type());
    at::Tensor ti = std::get<1>(top);
    const at::Tensor &gu = qw(q, p + ".experts.gate_up_proj"), &dn = qw(q, p + ".experts.down_proj");
    at::Tensor out = at::zeros_like(h);
    // which experts any token chose, read once (one device sync, not one per expert)
    at::Tensor ti_cpu = ti.to(at::kCPU).contiguous();
    std::vector<char> used(c.num_experts, 0);
    const int64_t *tp = ti_cpu.data_ptr<int64_t>();
    for (int64_t i = 0; i < ti_cpu.numel(); i++)
        used[tp[i]] = 1;
    for (int e = 0; e < c.num_experts; e++) {
        if (!used[e])
            continue;
        at::Tensor hit = (ti == e);
        auto where = at::where(hit);   // token index, top-k position
        at::Tensor tok = where[0], pos = where[1];
        at::Tensor cur = h.index_select(0, tok);
        auto gate_up = at::linear(cur, gu[e]).chunk(2, -1);
        at::Tensor y = at::linear(at::silu(gate_up[0]) * gate_up[1], dn[e]);
        y = y * tw.index({ tok, pos }).unsqueeze(-1);
        out.index_add_(0, tok, y.to(out.scalar_type()));
    }
    return out.reshape(x.sizes());
}

// The decoder layers over h [n, L, hidden].  prefill: causal attention
// over h itself (and, with a cache, its keys/values kept per layer);
// otherwise one new token per item attending to the cache and itself.
at::Tensor run_layers(eh_qwen3vl *q, at::Tensor h, const at::Tensor &cosv, const at::Tensor &sinv,
                      const at::Tensor &vmask, const std::vector<at::Tensor> &deep, kv_cache *cache, bool prefill)
{
    const eh_qwen3vl_config &c = q->cfg;
    int64_t n = h.size(0), L = h.size(1);
    int hd = c.head_dim;
    double scale = 1.0 / std::sqrt((double)hd);
    int rep = c.num_heads / c.num_kv_heads;
    for (int l = 0; l < c.num_layers; l++) {
        std::string p = "model.language_model.layers." + std::to_string(l);
        at::Tensor x = rms_norm(h, qw(q, p + ".input_layernorm.weight"), c.rms_norm_eps);
        // Qwen2.5-VL (the editor's text encoder): q/k/v biases, no QK norm
        bool qkv_bias = q->w.count(p + ".self_attn.q_proj.bias") > 0;
        at::Tensor qs = qlinear(q, x, p + ".self_attn.q_proj", qkv_bias).view({ n, L, -1, hd });
        at::Tensor ks = qlinear(q, x, p + ".self_attn.k_proj", qkv_bias).view({ n, L, -1, hd });
        if (q->w.count(p + ".self_attn.q_norm.weight")) {
            qs = rms_norm(qs, qw(q, p + ".self_attn.q_norm.weight"), c.rms_norm_eps);
            ks = rms_norm(ks, qw(q, p + ".self_attn.k_norm.weight"), c.rms_norm_eps);
        }
        qs = qs.transpose(1, 2);
        ks = ks.transpose(1, 2);
        at::Tensor vs = qlinear(q, x, p + ".self_attn.v_proj", qkv_bias).view({ n, L, -1, hd }).transpose(1, 2);
        qs = qs * cosv + rotate_half(qs) * sinv;
        ks = ks * cosv + rotate_half(ks) * sinv;
        if (cache) {
            if (!prefill) {
                ks = at::cat({ cache->k[l], ks }, 2);
                vs = at::cat({ cache->v[l], vs }, 2);
            }
            cache->k[l] = ks;
            cache->v[l] = vs;
        }
        int64_t T = ks.size(2);
        if (rep > 1) {
            ks = ks.unsqueeze(2).expand({ n, c.num_kv_heads, rep, T, hd }).reshape({ n, c.num_heads, T, hd });
            vs = vs.unsqueeze(2).expand({ n, c.num_kv_heads, rep, T, hd }).reshape({ n, c.num_heads, T, hd });
        }
        // a decode step's one query sees every cached key: no mask (sdpa's
        // causal mask is top-left aligned and would hide all but the first)
        at::Tensor a = at::scaled_dot_product_attention(qs, ks, vs, {}, 0.0, prefill, scale);
        a = a.transpose(1, 2).reshape({ n, L, -1 });
        h = h + qlinear(q, a, p + ".self_attn.o_proj", false);
        x = rms_norm(h, qw(q, p + ".post_attention_layernorm.weight"), c.rms_norm_eps);
        bool sparse = c.num_experts > 0 && !c.mlp_only[l] && (l + 1) % std::max(c.decoder_sparse_step, 1) == 0;
        if (sparse) {
            h = h + moe_mlp(q, x, p + ".mlp");
        } else {
            at::Tensor g = qlinear(q, x, p + ".mlp.gate_proj", false), u = qlinear(q, x, p + ".mlp.up_proj", false);
            h = h + qlinear(q, at::silu(g) * u, p + ".mlp.down_proj", false);
        }
        if (prefill && l < (int)deep.size()) {
            // deepstack: the l-th vision level added onto the image rows
            at::Tensor rows = h.index({ vmask }) + deep[l];
            h = h.clone();
            h.index_put_({ vmask }, rows);
        }
    }
    return h;
}

// The prefill of n right-padded prompts → last-position logits [n, vocab]
// in float32.  With a cache (one item), its keys and values are kept for
// decoding.
at::Tensor qwen_forward(eh_qwen3vl *q, const eh_qwen3vl_item *items, int n, kv_cache *cache = nullptr)
{
    const eh_qwen3vl_config &c = q->cfg;
    at::Device dev = q->tm->device;
    at::ScalarType dt = q->tm->dtype;
    at::TensorOptions lopt = at::TensorOptions().dtype(at::kLong);
    int64_t L = 0;
    for (int i = 0; i < n; i++) {
        TORCH_CHECK(items[i].n_ids > 0, "item ", i, " has no tokens");
        L = std::max(L, items[i].n_ids);
    }
    // ids right-padded with token 0 (never attended to by real tokens: causal)
    std::vector<int64_t> ids((size_t)n * L, 0), pos((size_t)3 * n * L, 0);
    std::vector<at::Tensor> img_embeds;
    std::vector<std::vector<at::Tensor>> deep_parts(c.n_deepstack);
    // every image, in prompt order, encoded in groups of one grid size (the
    // edited images of a batch usually share theirs)
    std::vector<at::Tensor> job_embeds;
    std::vector<std::vector<at::Tensor>> job_deep;
    {
        std::vector<std::array<int, 3>> grid;
        std::vector<const float *> data;
        for (int i = 0; i < n; i++)
            for (int g = 0; g < items[i].n_images; g++) {
                const int *gt = items[i].grid_thw + 3 * g;
                TORCH_CHECK(gt[0] >= 1 && gt[1] >= 1 && gt[2] >= 1 && gt[1] % c.merge_size == 0 &&
                                gt[2] % c.merge_size == 0,
                            "item ", i, ": image ", g, " has grid ", gt[0], "x", gt[1], "x", gt[2],
                            " (sides must be multiples of merge_size ", c.merge_size, ")");
                grid.push_back({ gt[0], gt[1], gt[2] });
                data.push_back(items[i].patches[g]);
            }
        job_embeds.resize(grid.size());
        job_deep.assign(grid.size(), std::vector<at::Tensor>(c.n_deepstack));
        std::vector<char> done(grid.size(), 0);
        for (size_t a = 0; a < grid.size(); a++) {
            if (done[a])
                continue;
            std::vector<size_t> members;
            std::vector<const float *> ptrs;
            for (size_t b = a; b < grid.size(); b++)
                if (!done[b] && grid[b] == grid[a]) {
                    done[b] = 1;
                    members.push_back(b);
                    ptrs.push_back(data[b]);
                }
            std::vector<at::Tensor> e;
            std::vector<std::vector<at::Tensor>> d(members.size(), std::vector<at::Tensor>(c.n_deepstack));
            vision_forward(q, ptrs, grid[a][0], grid[a][1], grid[a][2], e, d);
            for (size_t j = 0; j < members.size(); j++) {
                job_embeds[members[j]] = e[j];
                job_deep[members[j]] = d[j];
            }
        }
    }
    size_t job = 0;
    for (int i = 0; i < n; i++) {
        const eh_qwen3vl_item &it = items[i];
        int64_t cur = 0, j = 0;
        int img = 0;
        while (j < it.n_ids) {
            if (it.ids[j] == c.image_token_id) {
                TORCH_CHECK(img < it.n_images, "item ", i, ": more image placeholders than images");
                int gt = it.grid_thw[3 * img], gh = it.grid_thw[3 * img + 1], gw = it.grid_thw[3 * img + 2];
                int m = c.merge_size;
                int64_t toks = (int64_t)gt * (gh / m) * (gw / m);
                TORCH_CHECK(j + toks <= it.n_ids, "item ", i, ": image ", img, " needs ", toks, " placeholder tokens");
                for (int64_t k = 0; k < toks; k++) {
                    TORCH_CHECK(it.ids[j + k] == c.image_token_id, "item ", i, ": image ", img, " needs ", toks,
                                " consecutive placeholder tokens");
                    int64_t tt = k / ((gh / m) * (gw / m)), hh = (k / (gw / m)) % (gh / m), ww = k % (gw / m);
                    size_t at_ = (size_t)i * L + j + k;
                    ids[at_] = c.image_token_id;
                    pos[at_] = tt + cur;
                    pos[(size_t)n * L + at_] = hh + cur;
                    pos[(size_t)2 * n * L + at_] = ww + cur;
                }
                img_embeds.push_back(job_embeds[job]);
                for (int k = 0; k < c.n_deepstack; k++)
                    deep_parts[k].push_back(job_deep[job][k]);
                job++;
                cur += std::max(gh, gw) / m;
                j += toks;
                img++;
            } else {
                TORCH_CHECK(it.ids[j] >= 0 && it.ids[j] < c.vocab_size, "item ", i, ": token id ", it.ids[j],
                            " is outside the vocabulary (", c.vocab_size, ")");
                size_t at_ = (size_t)i * L + j;
                ids[at_] = it.ids[j];
                pos[at_] = pos[(size_t)n * L + at_] = pos[(size_t)2 * n * L + at_] = cur++;
                j++;
            }
        }
        TORCH_CHECK(img == it.n_images, "item ", i, ": ", it.n_images, " images but ", img, " placeholders");
    }
    at::Tensor tid = at::from_blob(ids.data(), { n, L }, lopt).to(dev);
    at::Tensor h = at::embedding(qw(q, "model.language_model.embed_tokens.weight"), tid);
    at::Tensor vmask = (tid == c.image_token_id);
    // image rows never hold padding, so the mask's row-major order is the
    // order the images were encoded in
    at::Tensor vis;
    std::vector<at::Tensor> deep;
    if (!img_embeds.empty()) {
        vis = at::cat(img_embeds, 0).to(dt);
        h = h.masked_scatter(vmask.unsqueeze(-1), vis);
        for (int k = 0; k < c.n_deepstack; k++)
            deep.push_back(at::cat(deep_parts[k], 0).to(dt));
    }

    // multimodal rotary: frequencies from T, with H and W interleaved in
    at::TensorOptions fopt = at::TensorOptions().dtype(at::kFloat);
    int hd = c.head_dim;
    at::Tensor inv = 1.0 / at::pow(c.rope_theta, at::arange(0, hd, 2, fopt) / (double)hd);
    at::Tensor tp = at::from_blob(pos.data(), { 3, n, L }, lopt).to(at::kFloat);
    at::Tensor fr = tp.unsqueeze(-1) * inv;    // [3, n, L, hd/2]
    at::Tensor f = fr[0].clone();
    for (int d = 1; d <= 2; d++) {
        int64_t len = std::min<int64_t>((int64_t)c.mrope_section[d] * 3, hd / 2);
        for (int64_t k = d; k < len; k += 3)
            f.select(-1, k).copy_(fr[d].select(-1, k));
    }
    f = at::cat({ f, f }, -1).to(dev);
    at::Tensor cosv = f.cos().to(dt).unsqueeze(1), sinv = f.sin().to(dt).unsqueeze(1);   // [n,1,L,hd]

    if (cache) {
        TORCH_CHECK(n == 1, "a cached prefill takes one item");
        cache->k.assign(c.num_layers, at::Tensor());
        cache->v.assign(c.num_layers, at::Tensor());
        cache->next_pos = *std::max_element(pos.begin(), pos.begin() + 3 * L) + 1;
    }
    h = run_layers(q, h, cosv, sinv, vmask, deep, cache, true);
    h = rms_norm(h, qw(q, "model.language_model.norm.weight"), c.rms_norm_eps);
    std::vector<int64_t> last(n);
    for (int i = 0; i < n; i++)
        last[i] = items[i].n_ids - 1;
    at::Tensor li = at::from_blob(last.data(), { n }, lopt).to(dev);
    at::Tensor hl = h.index({ at::arange(n, lopt.device(dev)), li });   // [n, hidden]
    std::string head = q->w.count("lm_head.weight") ? "lm_head.weight" : "model.language_model.embed_tokens.weight";
    return at::linear(hl, qw(q, head)).to(at::kFloat);
}

// One greedy step: the token's embedding through the layers with the cache
// → the next token's logits [vocab] (float32).
at::Tensor qwen_decode_step(eh_qwen3vl *q, int64_t token, kv_cache &cache)
{
    const eh_qwen3vl_config &c = q->cfg;
    at::Device dev = q->tm->device;
    at::ScalarType dt = q->tm->dtype;
    TORCH_CHECK(token >= 0 && token < c.vocab_size, "token id ", token, " is outside the vocabulary");
    at::Tensor tid = at::full({ 1, 1 }, token, at::TensorOptions().dtype(at::kLong).device(dev));
    at::Tensor h = at::embedding(qw(q, "model.language_model.embed_tokens.weight"), tid);
    at::TensorOptions fopt = at::TensorOptions().dtype(at::kFloat);
    int hd = c.head_dim;
    at::Tensor inv = 1.0 / at::pow(c.rope_theta, at::arange(0, hd, 2, fopt) / (double)hd);
    // the three axes share the position, so the interleave is the identity
    at::Tensor f = at::full({ 1, 1, 1 }, (double)cache.next_pos, fopt) * inv;
    f = at::cat({ f, f }, -1).to(dev);
    at::Tensor cosv = f.cos().to(dt).unsqueeze(1), sinv = f.sin().to(dt).unsqueeze(1);
    h = run_layers(q, h, cosv, sinv, at::Tensor(), {}, &cache, false);
    cache.next_pos++;
    h = rms_norm(h, qw(q, "model.language_model.norm.weight"), c.rms_norm_eps);
    std::string head = q->w.count("lm_head.weight") ? "lm_head.weight" : "model.language_model.embed_tokens.weight";
    return at::linear(h[0][0], qw(q, head)).to(at::kFloat);
}

// A required weight with its expected shape.
void want(eh_qwen3vl *q, const std::string &name, std::vector<int64_t> shape)
{
    const at::Tensor &t = qw(q, name);
    TORCH_CHECK(t.sizes().vec() == shape, "weight '", name, "' has shape ", t.sizes(), ", the config needs ",
                at::IntArrayRef(shape));
}

void check_weights(eh_qwen3vl *q)
{
    const eh_qwen3vl_config &c = q->cfg;
    int64_t H = c.hidden_size, hd = c.head_dim, vh = c.v_hidden, mm = (int64_t)vh * c.merge_size * c.merge_size;
    want(q, "model.language_model.embed_tokens.weight", { c.vocab_size, H });
    if (q->w.count("lm_head.weight"))
        want(q, "lm_head.weight", { c.vocab_size, H });
    else
        TORCH_CHECK(c.tie_word_embeddings, "weight 'lm_head.weight' is missing and tie_word_embeddings is false");
    for (int l = 0; l < c.num_layers; l++) {
        std::string p = "model.language_model.layers." + std::to_string(l);
        want(q, p + ".self_attn.q_proj.weight", { (int64_t)c.num_heads * hd, H });
        want(q, p + ".self_attn.k_proj.weight", { (int64_t)c.num_kv_heads * hd, H });
        want(q, p + ".self_attn.v_proj.weight", { (int64_t)c.num_kv_heads * hd, H });
        want(q, p + ".self_attn.o_proj.weight", { H, (int64_t)c.num_heads * hd });
        want(q, p + ".self_attn.q_norm.weight", { hd });
        want(q, p + ".input_layernorm.weight", { H });
        bool sparse = c.num_experts > 0 && !c.mlp_only[l] && (l + 1) % std::max(c.decoder_sparse_step, 1) == 0;
        if (sparse) {
            want(q, p + ".mlp.gate.weight", { c.num_experts, H });
            want(q, p + ".mlp.experts.gate_up_proj", { c.num_experts, 2LL * c.moe_intermediate_size, H });
            want(q, p + ".mlp.experts.down_proj", { c.num_experts, H, c.moe_intermediate_size });
        } else {
            want(q, p + ".mlp.gate_proj.weight", { c.intermediate_size, H });
            want(q, p + ".mlp.down_proj.weight", { H, c.intermediate_size });
        }
    }
    want(q, "model.visual.patch_embed.proj.weight", { vh, 3, c.temporal_patch_size, c.patch_size, c.patch_size });
    want(q, "model.visual.pos_embed.weight", { c.num_position_embeddings, vh });
    for (int l = 0; l < c.v_depth; l++)
        want(q, "model.visual.blocks." + std::to_string(l) + ".attn.qkv.weight", { 3 * vh, vh });
    want(q, "model.visual.merger.linear_fc1.weight", { mm, mm });
    want(q, "model.visual.merger.linear_fc2.weight", { c.v_out, mm });
    TORCH_CHECK(c.v_out == H, "vision out_hidden_size ", c.v_out, " differs from the text hidden_size ", H);
    for (int d = 0; d < c.n_deepstack; d++)
        want(q, "model.visual.deepstack_merger_list." + std::to_string(d) + ".linear_fc2.weight", { c.v_out, mm });
}

}  // namespace

extern "C" {

eh_status eh_qwen3vl_load(const eh_qwen3vl_config *cfg, const struct eh_st_tensor *const *tensors, size_t n,
                          const eh_torch_options *opt, eh_qwen3vl **out, eh_error *err)
{
    *out = nullptr;
    const eh_qwen3vl_config &c = *cfg;
    if (c.hidden_size < 1 || c.num_layers < 1 || c.num_layers > 256 || c.num_heads < 1 || c.num_kv_heads < 1 ||
        c.num_heads % c.num_kv_heads || c.head_dim < 2 || c.head_dim % 2 || c.vocab_size < 1 || c.v_depth < 1 ||
        c.v_heads < 1 || c.v_hidden % c.v_heads || (c.v_hidden / c.v_heads) % 4 || c.merge_size < 1 ||
        c.patch_size < 1 || c.temporal_patch_size < 1 || c.n_deepstack < 0 || c.n_deepstack > 16 ||
        c.num_position_embeddings < 1 || (c.num_experts > 0 && (c.experts_per_tok < 1 || c.experts_per_tok > c.num_experts)))
        return fail(err, EH_EFORMAT, "config: inconsistent sizes (heads, head_dim, layers, experts or vision)");
    eh_qwen3vl *q = new (std::nothrow) eh_qwen3vl();
    if (!q)
        return fail(err, EH_ENOMEM, "out of memory");
    q->cfg = c;
    return load_weights(q, opt, EH_TORCH_JUDGE, out, err, [&](eh_torch_module *m) -> eh_status {
        std::vector<planned_weight> plan;
        for (size_t i = 0; i < n; i++) {
            const eh_st_tensor *t = tensors[i];
            std::string name(t->name);
            if (name.rfind("model.", 0) != 0 && name != "lm_head.weight")
                continue;
            auto sd = st_scalar(t->dtype);
            if (!sd)
                return fail(err, EH_EFORMAT, "%s: tensor '%s' has a dtype (%d) the native judge cannot use",
                            t->file, t->name, (int)t->dtype);
            planned_weight s{ name, t, at::isFloatingType(*sd) ? m->dtype : *sd,
                              std::vector<int64_t>(t->shape, t->shape + t->ndim), stored_as::as_is };
            // Hub checkpoints of the MoE models store the experts as
            // [E, in, out]; transformers transposes them at load when
            // the shape is not its own [E, out, in] (Transpose(1, 2,
            // check_dims=True) in conversion_mapping.py), and so do we.
            bool gate_up = ends_with(name, ".mlp.experts.gate_up_proj");
            if ((gate_up || ends_with(name, ".mlp.experts.down_proj")) && t->ndim == 3) {
                std::vector<int64_t> ours = gate_up ? std::vector<int64_t>{ c.num_experts, 2LL * c.moe_intermediate_size,
                                                                            c.hidden_size }
                                                    : std::vector<int64_t>{ c.num_experts, c.hidden_size,
                                                                            c.moe_intermediate_size };
                if (s.sizes != ours) {
                    std::swap(s.sizes[1], s.sizes[2]);
                    s.how = stored_as::transposed_1_2;
                }
            }
            plan.push_back(std::move(s));
        }
        place_weights(m, plan, q->w);
        check_weights(q);
        return EH_OK;
    });
}

void eh_qwen3vl_free(eh_qwen3vl *q)
{
    free_weights(q);
}

eh_torch_module *eh_qwen3vl_module(eh_qwen3vl *q)
{
    return q->tm;
}

eh_status eh_qwen3vl_score(eh_qwen3vl *q, const eh_qwen3vl_item *items, int n, const int32_t *cand, int n_cand,
                           double *out, float *full, eh_error *err)
{
    if (!q->tm->on_device)
        return fail(err, EH_ESTATE, "model is not loaded");
    if (n < 1)
        return EH_OK;
    return guarded(err, EH_EMODEL, "forward", [&]() -> eh_status {
        c10::InferenceMode inference;
        std::optional<c10::DeviceGuard> guard;
        if (q->tm->device.is_cuda())
            guard.emplace(q->tm->device);
        at::Tensor logits = qwen_forward(q, items, n).to(at::kCPU).contiguous();   // [n, vocab]
        const float *lp = logits.data_ptr<float>();
        int64_t V = logits.size(1);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n_cand; j++)
                out[(size_t)i * n_cand + j] = cand[j] >= 0 && cand[j] < V ? (double)lp[i * V + cand[j]] : -INFINITY;
        if (full)
            memcpy(full, lp, sizeof(float) * (size_t)n * (size_t)V);
        return EH_OK;
    });
}

eh_status eh_qwen3vl_generate(eh_qwen3vl *q, const eh_qwen3vl_item *item, int max_new, const int32_t *stop,
                              int n_stop, int32_t *out, int *n_out, eh_error *err)
{
    *n_out = 0;
    if (!q->tm->on_device)
        return fail(err, EH_ESTATE, "model is not loaded");
    if (max_new < 1)
        return EH_OK;
    return guarded(err, EH_EMODEL, "generate", [&]() -> eh_status {
        c10::InferenceMode inference;
        std::optional<c10::DeviceGuard> guard;
        if (q->tm->device.is_cuda())
            guard.emplace(q->tm->device);
        kv_cache cache;
        at::Tensor logits = qwen_forward(q, item, 1, &cache)[0];
        for (int i = 0; i < max_new; i++) {
            int64_t next = logits.argmax().item<int64_t>();
            out[(*n_out)++] = (int32_t)next;
            bool stopped = false;
            for (int j = 0; j < n_stop; j++)
                stopped |= stop[j] == next;
            if (stopped || i + 1 == max_new)
                break;
            logits = qwen_decode_step(q, next, cache);
        }
        return EH_OK;
    });
}

}  // extern "C"

// ===========================================================================
// Qwen-Image VAE: the native editor's image <-> latents (issue 14).  Follows
// diffusers' autoencoder_kl_qwenimage.py (AutoencoderKLQwenImage) for one
// frame: a causal Conv3d over a one-frame input pads two zero frames in
// front, so only its last temporal kernel slice meets data, and the load
// keeps that slice as a Conv2d kernel (a third of the weights and of the
// multiply-adds); upsample3d/downsample3d run their time_conv only from the
// second frame on, so a first frame is their 2-D path.  Weights are slots of
// an eh_torch_module, so residency is the usual one-copy moves.
// ===========================================================================
struct eh_qwenimage_vae {
    eh_torch_module *tm = nullptr;
    eh_qwenimage_vae_config cfg;
    std::map<std::string, at::Tensor> w;
};

namespace {

const at::Tensor &vw(eh_qwenimage_vae *v, const std::string &name)
{
    return named_weight(v->w, name);
}

// A (former causal 3-D) convolution: pad 1 for 3x3 kernels, as diffusers'
// padding=1; the channel check names the tensor, which conv2d would not.
at::Tensor vconv(eh_qwenimage_vae *v, const at::Tensor &x, const std::string &p, int64_t stride = 1, int64_t pad = -1)
{
    const at::Tensor &wt = vw(v, p + ".weight");
    TORCH_CHECK(wt.dim() == 4 && wt.size(1) == x.size(1), "weight '", p, ".weight' has shape ", shape_str(wt),
                " where ", x.size(1), " input channels are expected");
    if (pad < 0)
        pad = wt.size(2) / 2;
    return at::conv2d(x, wt, vw(v, p + ".bias"), { stride, stride }, { pad, pad });
}

// QwenImageRMS_norm: F.normalize over channels (float32 for half types),
// times sqrt(C), times gamma.
at::Tensor vnorm(eh_qwenimage_vae *v, const at::Tensor &x, const std::string &p)
{
    const at::Tensor &g = vw(v, p + ".gamma");
    TORCH_CHECK(g.numel() == x.size(1), "weight '", p, ".gamma' has ", g.numel(), " elements where ", x.size(1),
                " channels are expected");
    bool up = x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16;
    at::Tensor h = up ? x.to(at::kFloat) : x;
    at::Tensor n = (h / at::linalg_vector_norm(h, 2, at::IntArrayRef{ 1 }, true).clamp_min(1e-12)).to(x.scalar_type());
    return n * std::sqrt((double)x.size(1)) * g.reshape({ -1, 1, 1 });
}

at::Tensor vres(eh_qwenimage_vae *v, const at::Tensor &x, const std::string &p, bool shortcut)
{
    at::Tensor h = shortcut ? vconv(v, x, p + ".conv_shortcut") : x;
    at::Tensor y = vconv(v, at::silu(vnorm(v, x, p + ".norm1")), p + ".conv1");
    y = vconv(v, at::silu(vnorm(v, y, p + ".norm2")), p + ".conv2");   // dropout: eval
    return y + h;
}

// QwenImageAttentionBlock: one head over the H*W positions.
at::Tensor vattn(eh_qwenimage_vae *v, const at::Tensor &x, const std::string &p)
{
    int64_t b = x.size(0), c = x.size(1), hh = x.size(2), ww = x.size(3);
    at::Tensor qkv = vconv(v, vnorm(v, x, p + ".norm"), p + ".to_qkv");
    qkv = qkv.reshape({ b, 1, c * 3, -1 }).permute({ 0, 1, 3, 2 }).contiguous();
    auto parts = qkv.chunk(3, -1);
    at::Tensor o = at::scaled_dot_product_attention(parts[0], parts[1], parts[2]);
    o = o.squeeze(1).permute({ 0, 2, 1 }).reshape({ b, c, hh, ww });
    return vconv(v, o, p + ".proj") + x;
}

at::Tensor vmid(eh_qwenimage_vae *v, at::Tensor x, const std::string &p)
{
    x = vres(v, x, p + ".resnets.0", false);
    x = vattn(v, x, p + ".attentions.0");
    return vres(v, x, p + ".resnets.1", false);
}

// QwenImageEncoder3d then quant_conv; returns the posterior's mode (its
// first z_dim channels), not yet normalised.
at::Tensor vae_encode(eh_qwenimage_vae *v, at::Tensor x)
{
    const eh_qwenimage_vae_config &c = v->cfg;
    x = vconv(v, x, "encoder.conv_in");
    int idx = 0, in = c.base_dim;
    for (int i = 0; i < c.n_levels; i++) {
        int out = c.base_dim * c.dim_mult[i];
        for (int r = 0; r < c.num_res_blocks; r++, idx++) {
            x = vres(v, x, "encoder.down_blocks." + std::to_string(idx), in != out);
            in = out;
        }
        if (i != c.n_levels - 1) {
            // ZeroPad2d((0, 1, 0, 1)) then a stride-2 3x3 convolution
            x = vconv(v, at::constant_pad_nd(x, { 0, 1, 0, 1 }, 0), "encoder.down_blocks." + std::to_string(idx++) +
                      ".resample.1", 2, 0);
        }
    }
    x = vmid(v, x, "encoder.mid_block");
    x = vconv(v, at::silu(vnorm(v, x, "encoder.norm_out")), "encoder.conv_out");
    x = vconv(v, x, "quant_conv");
    return x.narrow(1, 0, c.z_dim);
}

at::Tensor vae_decode(eh_qwenimage_vae *v, at::Tensor z)
{
    const eh_qwenimage_vae_config &c = v->cfg;
    at::Tensor x = vconv(v, z, "post_quant_conv");
    x = vconv(v, x, "decoder.conv_in");
    x = vmid(v, x, "decoder.mid_block");
    int top = c.base_dim * c.dim_mult[c.n_levels - 1];
    for (int i = 0; i < c.n_levels; i++) {
        std::string p = "decoder.up_blocks." + std::to_string(i);
        int in = i == 0 ? top : c.base_dim * c.dim_mult[c.n_levels - i] / 2;
        int out = c.base_dim * c.dim_mult[c.n_levels - 1 - i];
        for (int r = 0; r <= c.num_res_blocks; r++) {
            x = vres(v, x, p + ".resnets." + std::to_string(r), in != out);
            in = out;
        }
        if (i != c.n_levels - 1) {
            // nearest-exact 2x in float32, back to the dtype, then a 3x3 conv
            at::Tensor u = at::_upsample_nearest_exact2d(x.to(at::kFloat), { x.size(2) * 2, x.size(3) * 2 }, 2.0, 2.0);
            x = vconv(v, u.to(x.scalar_type()), p + ".upsamplers.0.resample.1");
        }
    }
    x = vconv(v, at::silu(vnorm(v, x, "decoder.norm_out")), "decoder.conv_out");
    return x.clamp(-1.0, 1.0);
}

at::Tensor vae_stat(eh_qwenimage_vae *v, const float *src, const at::TensorOptions &o)
{
    return at::from_blob(const_cast<float *>(src), { 1, v->cfg.z_dim, 1, 1 }, at::kFloat).to(o);
}

}  // namespace

extern "C" {

eh_status eh_qwenimage_vae_load(const eh_qwenimage_vae_config *cfg, const struct eh_st_tensor *const *tensors,
                                size_t n, const eh_torch_options *opt, eh_qwenimage_vae **out, eh_error *err)
{
    *out = nullptr;
    const eh_qwenimage_vae_config &c = *cfg;
    if (c.n_levels < 2 || c.n_levels > EH_QWENIMAGE_MAX_LEVELS || c.z_dim < 1 || c.z_dim > EH_QWENIMAGE_MAX_Z ||
        c.base_dim < 1 || c.num_res_blocks < 1)
        return fail(err, EH_EFORMAT, "config: inconsistent sizes (levels, z_dim, base_dim or res blocks)");
    for (int i = 0; i < c.n_levels; i++)
        if (c.dim_mult[i] < 1 || (i > 0 && (c.base_dim * c.dim_mult[i]) % 2))
            return fail(err, EH_EFORMAT, "config: dim_mult[%d] gives a width the decoder cannot halve", i);
    eh_qwenimage_vae *v = new (std::nothrow) eh_qwenimage_vae();
    if (!v)
        return fail(err, EH_ENOMEM, "out of memory");
    v->cfg = c;
    return load_weights(v, opt, EH_TORCH_EDITOR, out, err, [&](eh_torch_module *m) -> eh_status {
        std::vector<planned_weight> plan;
        for (size_t i = 0; i < n; i++) {
            const eh_st_tensor *t = tensors[i];
            std::string name(t->name);
            bool ours = name.rfind("encoder.", 0) == 0 || name.rfind("decoder.", 0) == 0 ||
                        name.rfind("quant_conv.", 0) == 0 || name.rfind("post_quant_conv.", 0) == 0;
            if (!ours || name.find(".time_conv.") != std::string::npos)
                continue;
            auto sd = st_scalar(t->dtype);
            if (!sd || !at::isFloatingType(*sd))
                return fail(err, EH_EFORMAT, "%s: tensor '%s' has a dtype (%s) the VAE cannot use", t->file,
                            t->name, eh_st_dtype_name(t->dtype));
            planned_weight s{ name, t, m->dtype, std::vector<int64_t>(t->shape, t->shape + t->ndim), stored_as::as_is };
            if (t->ndim == 5) {   // [out, in, kt, kh, kw] → its last temporal slice
                s.sizes.erase(s.sizes.begin() + 2);
                s.how = stored_as::last_frame;
            } else if (t->ndim == 4 && ends_with(name, ".weight") && name.find(".resample.") == std::string::npos &&
                     name.find(".to_qkv.") == std::string::npos && name.find(".proj.") == std::string::npos)
                return fail(err, EH_EFORMAT, "%s: tensor '%s' is 4-D where a 5-D causal conv kernel is expected",
                            t->file, t->name);
            plan.push_back(std::move(s));
        }
        place_weights(m, plan, v->w);
        // a dry pass on the host copy: every weight the config needs is
        // looked up, and each convolution checks its input channels
        c10::InferenceMode inference;
        int64_t sc = 1LL << (c.n_levels - 1);
        at::TensorOptions o = at::TensorOptions().dtype(m->dtype);
        vae_encode(v, at::zeros({ 1, 3, sc, sc }, o));
        vae_decode(v, at::zeros({ 1, c.z_dim, 1, 1 }, o));
        return EH_OK;
    });
}

void eh_qwenimage_vae_free(eh_qwenimage_vae *v)
{
    free_weights(v);
}

eh_torch_module *eh_qwenimage_vae_module(eh_qwenimage_vae *v)
{
    return v->tm;
}

int eh_qwenimage_vae_scale(const eh_qwenimage_vae *v)
{
    return 1 << (v->cfg.n_levels - 1);
}

eh_status eh_qwenimage_vae_encode(eh_qwenimage_vae *v, const float *images, int n, int h, int w, float *latents,
                                  eh_error *err)
{
    if (!v->tm->on_device)
        return fail(err, EH_ESTATE, "model is not loaded");
    int s = eh_qwenimage_vae_scale(v);
    if (n < 1 || h < s || w < s || h % s || w % s)
        return fail(err, EH_EINVAL, "vae encode: %dx%d is not a positive multiple of %d (n %d)", w, h, s, n);
    return guarded(err, EH_EMODEL, "vae encode", [&]() -> eh_status {
        c10::InferenceMode inference;
        std::optional<c10::DeviceGuard> guard;
        if (v->tm->device.is_cuda())
            guard.emplace(v->tm->device);
        at::TensorOptions o = at::TensorOptions().dtype(v->tm->dtype).device(v->tm->device);
        at::Tensor x = at::from_blob(const_cast<float *>(images), { n, 3, h, w }, at::kFloat).to(o);
        at::Tensor z = vae_encode(v, x);
        z = (z - vae_stat(v, v->cfg.latents_mean, o)) / vae_stat(v, v->cfg.latents_std, o);
        at::Tensor host = z.to(at::kFloat).to(at::kCPU).contiguous();
        memcpy(latents, host.data_ptr<float>(), (size_t)host.numel() * sizeof(float));
        return EH_OK;
    });
}

eh_status eh_qwenimage_vae_decode(eh_qwenimage_vae *v, const float *latents, int n, int lh, int lw, float *images,
                                  eh_error *err)
{
    if (!v->tm->on_device)
        return fail(err, EH_ESTATE, "model is not loaded");
    if (n < 1 || lh < 1 || lw < 1)
        return fail(err, EH_EINVAL, "vae decode: latents %dx%d (n %d) are empty", lw, lh, n);
    return guarded(err, EH_EMODEL, "vae decode", [&]() -> eh_status {
        c10::InferenceMode inference;
        std::optional<c10::DeviceGuard> guard;
        if (v->tm->device.is_cuda())
            guard.emplace(v->tm->device);
        at::TensorOptions o = at::TensorOptions().dtype(v->tm->dtype).device(v->tm->device);
        at::Tensor z = at::from_blob(const_cast<float *>(latents), { n, v->cfg.z_dim, lh, lw }, at::kFloat).to(o);
        // the pipeline's latents / (1 / std) + mean
        z = z / (1.0 / vae_stat(v, v->cfg.latents_std, o)) + vae_stat(v, v->cfg.latents_mean, o);
        at::Tensor host = vae_decode(v, z).to(at::kFloat).to(at::kCPU).contiguous();
        memcpy(images, host.data_ptr<float>(), (size_t)host.numel() * sizeof(float));
        return EH_OK;
    });
}

}  // extern "C"

// ===========================================================================
// Qwen-Image MMDiT: the native editor's transformer (issue 14).  Follows
// diffusers' transformer_qwenimage.py (QwenImageTransformer2DModel with
// QwenDoubleStreamAttnProcessor2_0 and the native attention backend) op by
// op: the rotary tables are built for the positions in use only (diffusers
// slices a 4096-row table of the same values), in complex64 as diffusers.
// ===========================================================================
struct eh_qwenimage_dit {
    eh_torch_module *tm = nullptr;
    eh_qwenimage_dit_config cfg;
    std::map<std::string, at::Tensor> w;
};

namespace {

const at::Tensor &dw(eh_qwenimage_dit *d, const std::string &name)
{
    return named_weight(d->w, name);
}

at::Tensor dlinear(eh_qwenimage_dit *d, const at::Tensor &x, const std::string &p)
{
    return at::linear(x, dw(d, p + ".weight"), dw(d, p + ".bias"));
}

// diffusers' RMSNorm: float32 statistics, the product in float32 unless the
// weight is half.
at::Tensor drms(const at::Tensor &x, const at::Tensor &wt, double eps)
{
    at::Tensor var = x.to(at::kFloat).pow(2).mean(-1, true);
    at::Tensor h = x * at::rsqrt(var + eps);
    if (wt.scalar_type() == at::kHalf || wt.scalar_type() == at::kBFloat16)
        h = h.to(wt.scalar_type());
    return h * wt;
}

at::Tensor dlayer_norm(const at::Tensor &x)
{
    return at::layer_norm(x, { x.size(-1) }, {}, {}, 1e-6);
}

// 1 / theta^(arange(0, dim, 2) / dim) times the positions → polar, [S, dim/2]
at::Tensor rope_axis(const at::Tensor &pos, int dim)
{
    at::Tensor inv = 1.0 / at::pow(10000, at::arange(0, dim, 2, at::kLong).to(at::kFloat).div(dim));
    at::Tensor f = at::outer(pos.to(at::kFloat), inv);
    return at::polar(at::ones_like(f), f);
}

// The image tokens' rotary (each image idx: frame positions idx.., centred
// height and width positions, scale_rope) and the text's after the largest
// half-size, as QwenEmbedRope; complex64 [S, head_dim/2].
std::pair<at::Tensor, at::Tensor> dit_rope(const eh_qwenimage_dit_config &c, const int *shapes, int n_shapes,
                                           int txt_len)
{
    std::vector<at::Tensor> vids;
    int64_t max_vid = 0;
    for (int i = 0; i < n_shapes; i++) {
        int64_t f = shapes[3 * i], h = shapes[3 * i + 1], w = shapes[3 * i + 2];
        at::Tensor pf = rope_axis(at::arange(i, i + f, at::kLong), c.axes_dims_rope[0]);
        at::Tensor ph = rope_axis(at::arange(0, h, at::kLong) - (h - h / 2), c.axes_dims_rope[1]);
        at::Tensor pw = rope_axis(at::arange(0, w, at::kLong) - (w - w / 2), c.axes_dims_rope[2]);
        int64_t a0 = pf.size(1), a1 = ph.size(1), a2 = pw.size(1);
        at::Tensor t = at::cat({ pf.view({ f, 1, 1, a0 }).expand({ f, h, w, a0 }),
                                 ph.view({ 1, h, 1, a1 }).expand({ f, h, w, a1 }),
                                 pw.view({ 1, 1, w, a2 }).expand({ f, h, w, a2 }) },
                               -1)
                           .reshape({ f * h * w, -1 });
        vids.push_back(t);
        max_vid = std::max({ max_vid, h / 2, w / 2 });
    }
    at::Tensor tp = at::arange(max_vid, max_vid + txt_len, at::kLong);
    at::Tensor txt = at::cat({ rope_axis(tp, c.axes_dims_rope[0]), rope_axis(tp, c.axes_dims_rope[1]),
                               rope_axis(tp, c.axes_dims_rope[2]) },
                             1);
    return { at::cat(vids, 0), txt };
}

// apply_rotary_emb_qwen(use_real=False): x [B, S, H, D] as D/2 complex pairs
at::Tensor dit_rotary(const at::Tensor &x, const at::Tensor &freqs)
{
    auto sz = x.sizes().vec();
    sz.back() /= 2;
    sz.push_back(2);
    at::Tensor xc = at::view_as_complex(x.to(at::kFloat).reshape(sz));
    return at::view_as_real(xc * freqs.unsqueeze(1)).flatten(3).to(x.scalar_type());
}

// get_timestep_embedding(t, 256, flip_sin_to_cos=True, shift 0, scale 1000)
at::Tensor dit_time_proj(const at::Tensor &t)
{
    const int half = 128;
    at::Tensor ex = -std::log(10000.0) * at::arange(0, half, at::TensorOptions().dtype(at::kFloat).device(t.device()));
    ex = ex / (double)half;
    at::Tensor emb = at::exp(ex);   // float32, whatever the timestep's dtype (get_timestep_embedding)
    emb = t.unsqueeze(1).to(at::kFloat) * emb.unsqueeze(0);
    emb = 1000 * emb;
    emb = at::cat({ at::sin(emb), at::cos(emb) }, -1);
    return at::cat({ emb.narrow(1, half, half), emb.narrow(1, 0, half) }, -1);
}

// mod [B, 3d] (shift, scale, gate), or with zero_cond_t [2B, 3d]: the
// step's rows for the first `noised` tokens, timestep 0's for the rest
// (torch.where over the tokens, as QwenImageTransformerBlock._modulate).
std::pair<at::Tensor, at::Tensor> dit_modulate(const at::Tensor &x, const at::Tensor &mod, int64_t noised = -1)
{
    auto p = mod.chunk(3, -1);
    if (noised < 0)
        return { x * (1 + p[1].unsqueeze(1)) + p[0].unsqueeze(1), p[2].unsqueeze(1) };
    int64_t b = x.size(0), rest = x.size(1) - noised;
    auto per_token = [&](const at::Tensor &v) {
        return at::cat({ v.narrow(0, 0, b).unsqueeze(1).expand({ b, noised, v.size(1) }),
                         v.narrow(0, b, b).unsqueeze(1).expand({ b, rest, v.size(1) }) }, 1);
    };
    return { x * (1 + per_token(p[1])) + per_token(p[0]), per_token(p[2]) };
}

at::Tensor dit_mlp(eh_qwenimage_dit *d, const at::Tensor &x, const std::string &p)
{
    at::Tensor h = at::gelu(dlinear(d, x, p + ".net.0.proj"), "tanh");
    return dlinear(d, h, p + ".net.2");
}

// temb: [B, dim], or with zero_cond_t [2B, dim] (the step's, then
// timestep 0's) and `noised` the noised latents' token count.
void dit_block(eh_qwenimage_dit *d, int layer, at::Tensor &img, at::Tensor &txt, const at::Tensor &temb,
               const at::Tensor &img_freqs, const at::Tensor &txt_freqs, const at::Tensor &mask, int64_t noised)
{
    const eh_qwenimage_dit_config &c = d->cfg;
    std::string p = "transformer_blocks." + std::to_string(layer);
    auto img_mod = dlinear(d, at::silu(temb), p + ".img_mod.1").chunk(2, -1);
    at::Tensor ttemb = noised < 0 ? temb : temb.narrow(0, 0, temb.size(0) / 2);
    auto txt_mod = dlinear(d, at::silu(ttemb), p + ".txt_mod.1").chunk(2, -1);
    auto im1 = dit_modulate(dlayer_norm(img), img_mod[0], noised);
    auto tm1 = dit_modulate(dlayer_norm(txt), txt_mod[0]);

    std::string a = p + ".attn";
    auto heads = [&](const at::Tensor &x) { return x.unflatten(-1, { -1, c.head_dim }); };
    at::Tensor iq = heads(dlinear(d, im1.first, a + ".to_q")), ik = heads(dlinear(d, im1.first, a + ".to_k"));
    at::Tensor iv = heads(dlinear(d, im1.first, a + ".to_v"));
    at::Tensor tq = heads(dlinear(d, tm1.first, a + ".add_q_proj")), tk = heads(dlinear(d, tm1.first, a + ".add_k_proj"));
    at::Tensor tv = heads(dlinear(d, tm1.first, a + ".add_v_proj"));
    iq = dit_rotary(drms(iq, dw(d, a + ".norm_q.weight"), 1e-6), img_freqs);
    ik = dit_rotary(drms(ik, dw(d, a + ".norm_k.weight"), 1e-6), img_freqs);
    tq = dit_rotary(drms(tq, dw(d, a + ".norm_added_q.weight"), 1e-6), txt_freqs);
    tk = dit_rotary(drms(tk, dw(d, a + ".norm_added_k.weight"), 1e-6), txt_freqs);
    at::Tensor q = at::cat({ tq, iq }, 1).permute({ 0, 2, 1, 3 });
    at::Tensor k = at::cat({ tk, ik }, 1).permute({ 0, 2, 1, 3 });
    at::Tensor v = at::cat({ tv, iv }, 1).permute({ 0, 2, 1, 3 });
    at::Tensor o = at::scaled_dot_product_attention(q, k, v, mask.defined() ? std::optional<at::Tensor>(mask) : std::nullopt).permute({ 0, 2, 1, 3 }).flatten(2, 3).to(q.scalar_type());
    int64_t st = txt.size(1);
    at::Tensor img_attn = dlinear(d, o.narrow(1, st, o.size(1) - st).contiguous(), a + ".to_out.0");
    at::Tensor txt_attn = dlinear(d, o.narrow(1, 0, st).contiguous(), a + ".to_add_out");
    img = img + im1.second * img_attn;
    txt = txt + tm1.second * txt_attn;

    auto im2 = dit_modulate(dlayer_norm(img), img_mod[1], noised);
    img = img + im2.second * dit_mlp(d, im2.first, p + ".img_mlp");
    auto tm2 = dit_modulate(dlayer_norm(txt), txt_mod[1]);
    txt = txt + tm2.second * dit_mlp(d, tm2.first, p + ".txt_mlp");
    if (txt.scalar_type() == at::kHalf)
        txt = txt.clip(-65504, 65504);
    if (img.scalar_type() == at::kHalf)
        img = img.clip(-65504, 65504);
}

// name → expected shape, for the load's check
std::vector<std::pair<std::string, std::vector<int64_t>>> dit_expected(const eh_qwenimage_dit_config &c)
{
    int64_t dim = (int64_t)c.num_heads * c.head_dim, ff = 4 * dim;
    std::vector<std::pair<std::string, std::vector<int64_t>>> e;
    auto lin = [&](const std::string &p, int64_t out, int64_t in) {
        e.push_back({ p + ".weight", { out, in } });
        e.push_back({ p + ".bias", { out } });
    };
    lin("img_in", dim, c.in_channels);
    lin("txt_in", dim, c.joint_attention_dim);
    e.push_back({ "txt_norm.weight", { c.joint_attention_dim } });
    lin("time_text_embed.timestep_embedder.linear_1", dim, 256);
    lin("time_text_embed.timestep_embedder.linear_2", dim, dim);
    lin("norm_out.linear", 2 * dim, dim);
    lin("proj_out", (int64_t)c.patch_size * c.patch_size * c.out_channels, dim);
    for (int l = 0; l < c.num_layers; l++) {
        std::string p = "transformer_blocks." + std::to_string(l);
        for (const char *s : { "img", "txt" }) {
            lin(p + "." + s + "_mod.1", 6 * dim, dim);
            lin(p + "." + s + "_mlp.net.0.proj", ff, dim);
            lin(p + "." + s + "_mlp.net.2", dim, ff);
        }
        for (const char *s : { "to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj", "to_out.0", "to_add_out" })
            lin(p + ".attn." + s, dim, dim);
        for (const char *s : { "norm_q", "norm_k", "norm_added_q", "norm_added_k" })
            e.push_back({ p + ".attn." + s + ".weight", { c.head_dim } });
    }
    return e;
}

}  // namespace

extern "C" {

eh_status eh_qwenimage_dit_load(const eh_qwenimage_dit_config *cfg, const struct eh_st_tensor *const *tensors,
                                size_t n, const eh_torch_options *opt, eh_qwenimage_dit **out, eh_error *err)
{
    *out = nullptr;
    const eh_qwenimage_dit_config &c = *cfg;
    if (c.num_layers < 1 || c.num_heads < 1 || c.head_dim < 2 || c.patch_size < 1 || c.in_channels < 1 ||
        c.out_channels < 1 || c.joint_attention_dim < 1 ||
        c.axes_dims_rope[0] + c.axes_dims_rope[1] + c.axes_dims_rope[2] != c.head_dim)
        return fail(err, EH_EFORMAT, "config: inconsistent sizes (layers, heads, head_dim or axes_dims_rope)");
    eh_qwenimage_dit *d = new (std::nothrow) eh_qwenimage_dit();
    if (!d)
        return fail(err, EH_ENOMEM, "out of memory");
    d->cfg = c;
    return load_weights(d, opt, EH_TORCH_EDITOR, out, err, [&](eh_torch_module *m) -> eh_status {
        std::map<std::string, const eh_st_tensor *> by_name;
        for (size_t i = 0; i < n; i++)
            by_name[tensors[i]->name] = tensors[i];
        std::vector<planned_weight> plan;
        if (plan_expected(dit_expected(c), by_name, m->dtype, plan, err) != EH_OK)
            return err ? err->code : EH_EFORMAT;
        place_weights(m, plan, d->w);
        return EH_OK;
    });
}

void eh_qwenimage_dit_free(eh_qwenimage_dit *d)
{
    free_weights(d);
}

eh_torch_module *eh_qwenimage_dit_module(eh_qwenimage_dit *d)
{
    return d->tm;
}

int eh_qwenimage_dit_weight_count(const eh_qwenimage_dit *d)
{
    return (int)d->w.size();
}

const char *eh_qwenimage_dit_weight_name(const eh_qwenimage_dit *d, int i)
{
    if (i < 0 || i >= (int)d->w.size())
        return nullptr;
    auto it = d->w.begin();
    std::advance(it, i);
    return it->first.c_str();
}

// W += scale * up @ down, computed in float32 and rounded once to the
// host copy's dtype (PEFT's merge on the CPU does the same).  Only before
// the first load: the host copy is immutable once a device holds it.
eh_status eh_qwenimage_dit_add_lora(eh_qwenimage_dit *d, const char *module, const struct eh_st_tensor *down,
                                    const struct eh_st_tensor *up, double scale, eh_error *err)
{
    if (d->tm->on_device || d->tm->dev.defined())
        return fail(err, EH_ESTATE, "LoRA '%s': the transformer is already loaded (merge before the first load)", module);
    auto it = d->w.find(std::string(module) + ".weight");
    if (it == d->w.end())
        return fail(err, EH_EFORMAT, "LoRA: the transformer has no linear layer '%s'", module);
    at::Tensor w = it->second;
    auto ds = st_scalar(down->dtype), us = st_scalar(up->dtype);
    if (!ds || !us || !at::isFloatingType(*ds) || !at::isFloatingType(*us) || down->ndim != 2 || up->ndim != 2 ||
        w.dim() != 2 || up->shape[1] != down->shape[0] || up->shape[0] != w.size(0) || down->shape[1] != w.size(1))
        return fail(err, EH_EFORMAT, "LoRA '%s': down %s [%lld, %lld] and up %s [%lld, %lld] do not fit the weight %s",
                    module, eh_st_dtype_name(down->dtype), (long long)down->shape[0],
                    (long long)(down->ndim > 1 ? down->shape[1] : 0), eh_st_dtype_name(up->dtype),
                    (long long)up->shape[0], (long long)(up->ndim > 1 ? up->shape[1] : 0), shape_str(w).c_str());
    return guarded(err, EH_EMODEL, "LoRA", [&]() -> eh_status {
        at::NoGradGuard no_grad;
        at::Tensor a = at::from_blob(const_cast<void *>(down->data), { down->shape[0], down->shape[1] },
                                     at::TensorOptions().dtype(*ds)).to(at::kFloat);
        at::Tensor b = at::from_blob(const_cast<void *>(up->data), { up->shape[0], up->shape[1] },
                                     at::TensorOptions().dtype(*us)).to(at::kFloat);
        at::Tensor delta = at::mm(b, a);
        if (scale != 1.0)
            delta.mul_(scale);
        w.copy_(w.to(at::kFloat).add_(delta));
        return EH_OK;
    });
}

eh_status eh_qwenimage_dit_forward(eh_qwenimage_dit *d, const float *hidden, int n, const int *shapes, int n_shapes,
                                   const float *text, const int32_t *mask, int txt_len, const float *timestep,
                                   float *out, eh_error *err)
{
    if (!d->tm->on_device)
        return fail(err, EH_ESTATE, "model is not loaded");
    const eh_qwenimage_dit_config &c = d->cfg;
    int64_t tokens = 0;
    for (int i = 0; i < n_shapes; i++) {
        if (shapes[3 * i] < 1 || shapes[3 * i + 1] < 1 || shapes[3 * i + 2] < 1)
            return fail(err, EH_EINVAL, "transformer: image %d has an empty shape", i);
        tokens += (int64_t)shapes[3 * i] * shapes[3 * i + 1] * shapes[3 * i + 2];
    }
    if (n < 1 || n_shapes < 1 || txt_len < 1)
        return fail(err, EH_EINVAL, "transformer: %d items, %d images, %d text tokens: none may be 0", n, n_shapes,
                    txt_len);
    return guarded(err, EH_EMODEL, "transformer", [&]() -> eh_status {
        c10::InferenceMode inference;
        std::optional<c10::DeviceGuard> guard;
        if (d->tm->device.is_cuda())
            guard.emplace(d->tm->device);
        at::TensorOptions o = at::TensorOptions().dtype(d->tm->dtype).device(d->tm->device);
        at::Tensor img = at::from_blob(const_cast<float *>(hidden), { n, tokens, c.in_channels }, at::kFloat).to(o);
        at::Tensor txt = at::from_blob(const_cast<float *>(text), { n, txt_len, c.joint_attention_dim }, at::kFloat).to(o);
        at::Tensor t = at::from_blob(const_cast<float *>(timestep), { n }, at::kFloat).to(o);
        // the joint mask: text's, then every image token.  None where every
        // text token is real, as the pipeline drops an all-true mask: SDPA
        // then takes its fused kernels (flash on CUDA), whose half-precision
        // rounding is what the reference has, and which are faster.
        bool all_real = true;
        for (int64_t i = 0; mask && i < (int64_t)n * txt_len && all_real; i++)
            all_real = mask[i] != 0;
        at::Tensor jmask;
        if (!all_real) {
            at::Tensor tmask = at::from_blob(const_cast<int32_t *>(mask), { n, txt_len }, at::kInt).to(d->tm->device).ne(0);
            jmask = at::cat({ tmask, at::ones({ n, tokens }, tmask.options()) }, 1).view({ n, 1, 1, -1 });
        }

        img = dlinear(d, img, "img_in");
        txt = dlinear(d, drms(txt, dw(d, "txt_norm.weight"), 1e-6), "txt_in");
        // zero_cond_t: the embedding of [t, t * 0], the reference images'
        // tokens modulated with the second half
        int64_t noised = c.zero_cond_t ? (int64_t)shapes[0] * shapes[1] * shapes[2] : -1;
        if (c.zero_cond_t)
            t = at::cat({ t, t * 0 });
        at::Tensor temb = dit_time_proj(t).to(img.scalar_type());
        temb = dlinear(d, at::silu(dlinear(d, temb, "time_text_embed.timestep_embedder.linear_1")),
                       "time_text_embed.timestep_embedder.linear_2");
        auto rope = dit_rope(c, shapes, n_shapes, txt_len);
        at::Tensor img_freqs = rope.first.to(d->tm->device), txt_freqs = rope.second.to(d->tm->device);
        for (int l = 0; l < c.num_layers; l++)
            dit_block(d, l, img, txt, temb, img_freqs, txt_freqs, jmask, noised);
        if (c.zero_cond_t)
            temb = temb.narrow(0, 0, n);
        // AdaLayerNormContinuous: scale first, then shift
        auto ss = dlinear(d, at::silu(temb).to(img.scalar_type()), "norm_out.linear").chunk(2, 1);
        img = dlayer_norm(img) * (1 + ss[0]).unsqueeze(1) + ss[1].unsqueeze(1);
        at::Tensor res = dlinear(d, img, "proj_out").to(at::kFloat).to(at::kCPU).contiguous();
        memcpy(out, res.data_ptr<float>(), (size_t)res.numel() * sizeof(float));
        return EH_OK;
    });
}

}  // extern "C"

// ---- Qwen-Image: the pipeline's initial noise (issue 14) -------------------
extern "C" eh_status eh_torch_round_floats(float *x, size_t n, const char *dtype, eh_error *err)
{
    auto dt = parse_dtype(dtype);
    if (!dt)
        return fail(err, EH_EINVAL, "unknown dtype '%s'", dtype ? dtype : "(null)");
    if (*dt == at::kFloat || n == 0)
        return EH_OK;
    return guarded(err, EH_EMODEL, "round", [&]() -> eh_status {
        at::Tensor t = at::from_blob(x, { (int64_t)n }, at::kFloat);
        t.copy_(t.to(*dt).to(at::kFloat));
        return EH_OK;
    });
}

// torch.Generator("cpu").manual_seed(seed) is a CPUGeneratorImpl seeded the
// same way, so the same randn call draws the same numbers as diffusers.
extern "C" eh_status eh_qwenimage_noise(uint64_t seed, int n, int channels, int lh, int lw, const char *dtype,
                                        float *out, eh_error *err)
{
    if (n < 1 || channels < 1 || lh < 2 || lw < 2 || lh % 2 || lw % 2)
        return fail(err, EH_EINVAL, "noise: %d items of %d x %dx%d latents (positive, height and width even)", n,
                    channels, lw, lh);
    auto dt = parse_dtype(dtype);
    if (!dt)
        return fail(err, EH_EINVAL, "unknown dtype '%s' (float32, float16 or bfloat16)", dtype ? dtype : "(null)");
    return guarded(err, EH_EMODEL, "noise", [&]() -> eh_status {
        c10::InferenceMode inference;
        at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
        at::Tensor z = at::randn({ n, 1, channels, lh, lw }, gen, at::TensorOptions().dtype(*dt));
        // _pack_latents
        z = z.view({ n, channels, lh / 2, 2, lw / 2, 2 }).permute({ 0, 2, 4, 1, 3, 5 });
        z = z.reshape({ n, (int64_t)(lh / 2) * (lw / 2), channels * 4 }).to(at::kFloat).contiguous();
        memcpy(out, z.data_ptr<float>(), (size_t)z.numel() * sizeof(float));
        return EH_OK;
    });
}

// ===========================================================================
// Qwen-Image: the Qwen2.5-VL text encoder (issue 14), text only so far.
// QwenImageEditPipeline takes hidden_states[-1] of Qwen2_5_VLModel, which
// transformers records after the final norm; the decoder layers are the
// Qwen3-VL judge's run_layers (q/k/v biases, no QK norm).  Without an image
// every token's three mrope positions are equal, so the rotary is the plain
// one whatever mrope_section says.
// ===========================================================================
struct eh_qwenimage_te {
    eh_qwen3vl *q = nullptr;
};

namespace {

// Qwen-Image-Edit's checkpoint names (model.layers.*) → transformers 5's
// (model.language_model.layers.*), which run_layers reads; "" to skip.
std::string te_name(const std::string &n)
{
    const std::string lm = "model.language_model.";
    if (n.rfind(lm, 0) == 0)
        return n;
    if (n.rfind("model.layers.", 0) == 0 || n == "model.embed_tokens.weight" || n == "model.norm.weight")
        return lm + n.substr(6);
    if (n.rfind("model.visual.", 0) == 0)
        return n;
    if (n.rfind("visual.", 0) == 0)
        return "model." + n;
    return "";
}

std::vector<std::pair<std::string, std::vector<int64_t>>> te_expected(const eh_qwen3vl_config &c)
{
    int64_t H = c.hidden_size, hd = c.head_dim, qd = (int64_t)c.num_heads * hd, kd = (int64_t)c.num_kv_heads * hd;
    std::string lm = "model.language_model.";
    std::vector<std::pair<std::string, std::vector<int64_t>>> e = { { lm + "embed_tokens.weight", { c.vocab_size, H } },
                                                                    { lm + "norm.weight", { H } } };
    for (int l = 0; l < c.num_layers; l++) {
        std::string p = lm + "layers." + std::to_string(l);
        e.push_back({ p + ".input_layernorm.weight", { H } });
        e.push_back({ p + ".post_attention_layernorm.weight", { H } });
        e.push_back({ p + ".self_attn.q_proj.weight", { qd, H } });
        e.push_back({ p + ".self_attn.q_proj.bias", { qd } });
        e.push_back({ p + ".self_attn.k_proj.weight", { kd, H } });
        e.push_back({ p + ".self_attn.k_proj.bias", { kd } });
        e.push_back({ p + ".self_attn.v_proj.weight", { kd, H } });
        e.push_back({ p + ".self_attn.v_proj.bias", { kd } });
        e.push_back({ p + ".self_attn.o_proj.weight", { H, qd } });
        e.push_back({ p + ".mlp.gate_proj.weight", { c.intermediate_size, H } });
        e.push_back({ p + ".mlp.up_proj.weight", { c.intermediate_size, H } });
        e.push_back({ p + ".mlp.down_proj.weight", { H, c.intermediate_size } });
    }
    int64_t vh = c.v_hidden, vi = c.v_intermediate, mm = vh * c.merge_size * c.merge_size;
    e.push_back({ "model.visual.patch_embed.proj.weight", { vh, 3, c.temporal_patch_size, c.patch_size, c.patch_size } });
    for (int l = 0; l < c.v_depth; l++) {
        std::string p = "model.visual.blocks." + std::to_string(l);
        e.push_back({ p + ".norm1.weight", { vh } });
        e.push_back({ p + ".norm2.weight", { vh } });
        e.push_back({ p + ".attn.qkv.weight", { 3 * vh, vh } });
        e.push_back({ p + ".attn.qkv.bias", { 3 * vh } });
        e.push_back({ p + ".attn.proj.weight", { vh, vh } });
        e.push_back({ p + ".attn.proj.bias", { vh } });
        for (const char *g : { ".mlp.gate_proj", ".mlp.up_proj" }) {
            e.push_back({ p + g + ".weight", { vi, vh } });
            e.push_back({ p + g + ".bias", { vi } });
        }
        e.push_back({ p + ".mlp.down_proj.weight", { vh, vi } });
        e.push_back({ p + ".mlp.down_proj.bias", { vh } });
    }
    e.push_back({ "model.visual.merger.ln_q.weight", { vh } });
    e.push_back({ "model.visual.merger.mlp.0.weight", { mm, mm } });
    e.push_back({ "model.visual.merger.mlp.0.bias", { mm } });
    e.push_back({ "model.visual.merger.mlp.2.weight", { c.v_out, mm } });
    e.push_back({ "model.visual.merger.mlp.2.bias", { c.v_out } });
    return e;
}

// Qwen2_5_VisionTransformerPretrainedModel for one image: patch embedding,
// the blocks over the merge units reordered window by window (windowed
// attention except in the fullatt blocks), the merger, the order restored
// → [t*h*w/merge^2, out_hidden] in the model's dtype.
at::Tensor te_vision(eh_qwen3vl *q, const float *patches, int t, int gh, int gw)
{
    const eh_qwen3vl_config &c = q->cfg;
    at::TensorOptions fopt = at::TensorOptions().dtype(at::kFloat), lopt = at::TensorOptions().dtype(at::kLong);
    at::Device dev = q->tm->device;
    at::ScalarType dt = q->tm->dtype;
    int m = c.merge_size, unit = m * m;
    int64_t rows = (int64_t)t * gh * gw, dim = 3LL * c.temporal_patch_size * c.patch_size * c.patch_size;
    at::Tensor x = at::from_blob(const_cast<float *>(patches), { rows, dim }, fopt).to(dev, dt);
    x = at::linear(x, qw(q, "model.visual.patch_embed.proj.weight").reshape({ c.v_hidden, dim }));

    // the merge units window by window (get_vision_window_index); a window's
    // bounds in patches
    int64_t lh = gh / m, lw = gw / m, win = c.window_size / m / c.patch_size;
    std::vector<int64_t> widx;
    std::vector<int64_t> bounds = { 0 };
    for (int64_t f = 0; f < t; f++)
        for (int64_t wr = 0; wr < (lh + win - 1) / win; wr++)
            for (int64_t wc = 0; wc < (lw + win - 1) / win; wc++) {
                size_t before = widx.size();
                for (int64_t a = wr * win; a < std::min(lh, wr * win + win); a++)
                    for (int64_t b = wc * win; b < std::min(lw, wc * win + win); b++)
                        widx.push_back(f * lh * lw + a * lw + b);
                bounds.push_back(bounds.back() + (int64_t)(widx.size() - before) * unit);
            }
    at::Tensor wi = at::from_blob(widx.data(), { (int64_t)widx.size() }, lopt).to(dev);
    auto by_window = [&](const at::Tensor &z) {
        return z.reshape({ rows / unit, unit, -1 }).index_select(0, wi).reshape({ rows, -1 });
    };
    x = by_window(x);

    // 2-D rotary over (row, column) of each patch in merge-block order
    std::vector<int64_t> prow(rows), pcol(rows);
    for (int64_t i = 0; i < rows; i++) {
        int64_t within = i % ((int64_t)gh * gw);
        int64_t in_col = within % m, in_row = (within / m) % m;
        int64_t bcol = (within / unit) % lw, brow = within / (unit * lw);
        prow[i] = brow * m + in_row;
        pcol[i] = bcol * m + in_col;
    }
    int hd = c.v_hidden / c.v_heads, sd = hd / 2;
    at::Tensor inv = 1.0 / at::pow(c.v_rope_theta, at::arange(0, sd, 2, fopt) / (double)sd);
    at::Tensor ph = at::from_blob(prow.data(), { rows }, lopt).to(at::kFloat);
    at::Tensor pc = at::from_blob(pcol.data(), { rows }, lopt).to(at::kFloat);
    at::Tensor fr = at::cat({ ph.unsqueeze(-1) * inv, pc.unsqueeze(-1) * inv }, -1);
    fr = by_window(at::cat({ fr, fr }, -1).to(dev));
    at::Tensor cosv = fr.cos().unsqueeze(-2), sinv = fr.sin().unsqueeze(-2);   // [rows, 1, hd]

    std::vector<int64_t> whole;   // full attention: each frame alone
    for (int64_t f = 0; f <= t; f++)
        whole.push_back(f * gh * gw);
    for (int l = 0; l < c.v_depth; l++) {
        std::string p = "model.visual.blocks." + std::to_string(l);
        bool full = std::find(c.fullatt, c.fullatt + c.n_fullatt, l) != c.fullatt + c.n_fullatt;
        const std::vector<int64_t> &seg = full ? whole : bounds;
        at::Tensor h = rms_norm(x, qw(q, p + ".norm1.weight"), 1e-6);
        at::Tensor qkv = qlinear(q, h, p + ".attn.qkv").reshape({ rows, 3, c.v_heads, hd }).permute({ 1, 0, 2, 3 });
        at::Tensor qf = qkv[0].to(at::kFloat), kf = qkv[1].to(at::kFloat);
        at::Tensor qs = (qf * cosv + rotate_half(qf) * sinv).to(dt).transpose(0, 1);
        at::Tensor ks = (kf * cosv + rotate_half(kf) * sinv).to(dt).transpose(0, 1);
        at::Tensor vs = qkv[2].transpose(0, 1);   // [heads, rows, hd]
        std::vector<at::Tensor> outs;
        for (size_t s = 0; s + 1 < seg.size(); s++) {
            int64_t a = seg[s], len = seg[s + 1] - seg[s];
            if (len == 0)
                continue;
            outs.push_back(at::scaled_dot_product_attention(qs.narrow(1, a, len).unsqueeze(0),
                                                            ks.narrow(1, a, len).unsqueeze(0),
                                                            vs.narrow(1, a, len).unsqueeze(0), {}, 0.0, false,
                                                            1.0 / std::sqrt((double)hd))[0]);
        }
        at::Tensor att = at::cat(outs, 1).transpose(0, 1).reshape({ rows, c.v_hidden });
        x = x + qlinear(q, att, p + ".attn.proj");
        h = rms_norm(x, qw(q, p + ".norm2.weight"), 1e-6);
        x = x + qlinear(q, at::silu(qlinear(q, h, p + ".mlp.gate_proj")) * qlinear(q, h, p + ".mlp.up_proj"),
                        p + ".mlp.down_proj");
    }
    at::Tensor y = rms_norm(x, qw(q, "model.visual.merger.ln_q.weight"), 1e-6).reshape({ rows / unit, -1 });
    y = qlinear(q, at::gelu(qlinear(q, y, "model.visual.merger.mlp.0")), "model.visual.merger.mlp.2");
    return y.index_select(0, at::argsort(wi));
}

}  // namespace

extern "C" {

eh_status eh_qwenimage_te_load(const eh_qwen3vl_config *cfg, const struct eh_st_tensor *const *tensors, size_t n,
                               const eh_torch_options *opt, eh_qwenimage_te **out, eh_error *err)
{
    *out = nullptr;
    const eh_qwen3vl_config &c = *cfg;
    if (c.hidden_size < 1 || c.num_layers < 1 || c.num_layers > 256 || c.num_heads < 1 || c.num_kv_heads < 1 ||
        c.num_heads % c.num_kv_heads || c.head_dim < 2 || c.head_dim % 2 || c.vocab_size < 1 ||
        c.intermediate_size < 1)
        return fail(err, EH_EFORMAT, "config: inconsistent sizes (heads, head_dim, layers or vocabulary)");
    eh_qwenimage_te *te = new (std::nothrow) eh_qwenimage_te();
    eh_qwen3vl *q = te ? new (std::nothrow) eh_qwen3vl() : nullptr;
    if (!q) {
        delete te;
        return fail(err, EH_ENOMEM, "out of memory");
    }
    q->cfg = c;
    q->cfg.num_experts = 0;     // dense: run_layers' MoE and deepstack paths stay off
    q->cfg.n_deepstack = 0;
    eh_status rc = load_weights(q, opt, EH_TORCH_EDITOR, &te->q, err, [&](eh_torch_module *m) -> eh_status {
        std::map<std::string, const eh_st_tensor *> by_name;
        for (size_t i = 0; i < n; i++) {
            std::string ours = te_name(tensors[i]->name);
            if (!ours.empty())
                by_name[ours] = tensors[i];
        }
        std::vector<planned_weight> plan;
        if (plan_expected(te_expected(c), by_name, m->dtype, plan, err) != EH_OK)
            return err ? err->code : EH_EFORMAT;
        place_weights(m, plan, q->w);
        return EH_OK;
    });
    if (rc != EH_OK) {
        delete te;   // q went with the failed load
        return rc;
    }
    *out = te;
    return EH_OK;
}

void eh_qwenimage_te_free(eh_qwenimage_te *te)
{
    if (!te)
        return;
    eh_qwen3vl_free(te->q);
    delete te;
}

eh_torch_module *eh_qwenimage_te_module(eh_qwenimage_te *te)
{
    return te->q->tm;
}

eh_status eh_qwenimage_te_encode(eh_qwenimage_te *te, const int32_t *ids, const int32_t *mask, int n, int L, int drop,
                                 float *out, int32_t *out_mask, int *out_len, eh_error *err)
{
    *out_len = 0;
    eh_qwen3vl *q = te->q;
    if (!q->tm->on_device)
        return fail(err, EH_ESTATE, "model is not loaded");
    const eh_qwen3vl_config &c = q->cfg;
    if (n < 1 || L < 1 || drop < 0)
        return fail(err, EH_EINVAL, "text encoder: %d prompts of %d tokens, drop %d", n, L, drop);
    // each prompt's length; right padding only, so that under the causal
    // mask no real token sees a pad and the positions are 0.. as with none
    std::vector<int64_t> len(n, L), tok((size_t)n * L);
    int64_t longest = 0;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < L; j++) {
            int32_t id = ids[(size_t)i * L + j];
            bool real = !mask || mask[(size_t)i * L + j];
            if (real && len[i] < L)
                return fail(err, EH_EINVAL, "text encoder: prompt %d has a real token at %d after padding (right padding only)",
                            i, j);
            if (!real && len[i] == L)
                len[i] = j;
            if (real && (id < 0 || id >= c.vocab_size))
                return fail(err, EH_EINVAL, "text encoder: prompt %d: token id %d is outside the vocabulary (%d)", i,
                            (int)id, c.vocab_size);
            tok[(size_t)i * L + j] = real ? id : 0;
        }
        if (len[i] <= drop)
            return fail(err, EH_EINVAL, "text encoder: prompt %d has %lld tokens, not more than the %d dropped", i,
                        (long long)len[i], drop);
        longest = std::max(longest, len[i]);
    }
    return guarded(err, EH_EMODEL, "text encoder", [&]() -> eh_status {
        c10::InferenceMode inference;
        std::optional<c10::DeviceGuard> guard;
        if (q->tm->device.is_cuda())
            guard.emplace(q->tm->device);
        at::Device dev = q->tm->device;
        at::ScalarType dt = q->tm->dtype;
        at::Tensor tid = at::from_blob(tok.data(), { n, L }, at::kLong).narrow(1, 0, longest).to(dev);
        at::Tensor h = at::embedding(qw(q, "model.language_model.embed_tokens.weight"), tid);
        at::TensorOptions fopt = at::TensorOptions().dtype(at::kFloat);
        int hd = c.head_dim;
        at::Tensor inv = 1.0 / at::pow(c.rope_theta, at::arange(0, hd, 2, fopt) / (double)hd);
        at::Tensor f = at::arange(longest, fopt).unsqueeze(-1) * inv;   // [L, hd/2]
        f = at::cat({ f, f }, -1).to(dev);
        at::Tensor cosv = f.cos().to(dt).view({ 1, 1, longest, hd }), sinv = f.sin().to(dt).view({ 1, 1, longest, hd });
        h = run_layers(q, h, cosv, sinv, at::Tensor(), {}, nullptr, true);
        h = rms_norm(h, qw(q, "model.language_model.norm.weight"), c.rms_norm_eps);
        int64_t ol = longest - drop;
        at::Tensor res = h.narrow(1, drop, ol).to(at::kFloat).to(at::kCPU).contiguous();
        const float *rp = res.data_ptr<float>();
        size_t H = (size_t)c.hidden_size;
        for (int i = 0; i < n; i++)
            for (int64_t j = 0; j < ol; j++) {
                bool real = drop + j < len[i];
                float *o = out + ((size_t)i * ol + j) * H;
                if (real)
                    memcpy(o, rp + ((size_t)i * ol + j) * H, H * sizeof(float));
                else
                    memset(o, 0, H * sizeof(float));
                out_mask[(size_t)i * ol + j] = real;
            }
        *out_len = (int)ol;
        return EH_OK;
    });
}

eh_status eh_qwenimage_te_encode_images(eh_qwenimage_te *te, const int32_t *ids, int n_ids, const float *patches,
                                        const int *grid_thw, int n_images, int drop, int mrope, float *out,
                                        eh_error *err)
{
    eh_qwen3vl *q = te->q;
    if (!q->tm->on_device)
        return fail(err, EH_ESTATE, "model is not loaded");
    const eh_qwen3vl_config &c = q->cfg;
    int m = c.merge_size;
    if (n_images < 1)
        return fail(err, EH_EINVAL, "text encoder: no image");
    std::vector<int64_t> toks(n_images);
    for (int i = 0; i < n_images; i++) {
        int gt = grid_thw[3 * i], gh = grid_thw[3 * i + 1], gw = grid_thw[3 * i + 2];
        if (gt < 1 || gh < m || gw < m || gh % m || gw % m)
            return fail(err, EH_EINVAL, "text encoder: image %d grid %dx%dx%d (sides multiples of merge_size %d)",
                        i + 1, gt, gh, gw, m);
        toks[i] = (int64_t)gt * (gh / m) * (gw / m);
    }
    if (drop < 0 || n_ids <= drop)
        return fail(err, EH_EINVAL, "text encoder: %d tokens, not more than the %d dropped", n_ids, drop);
    // positions as get_rope_index: text 0.., an image's (t, row, col) after
    // it, text again from the largest + 1.  Each image's pads are one run,
    // in the images' order.
    std::vector<int64_t> tok(n_ids), pos(3 * (size_t)n_ids);
    int64_t cur = 0, count = 0;
    int img = 0;
    for (int j = 0; j < n_ids; j++) {
        if (ids[j] < 0 || ids[j] >= c.vocab_size)
            return fail(err, EH_EINVAL, "text encoder: token id %d is outside the vocabulary (%d)", (int)ids[j],
                        c.vocab_size);
        tok[j] = ids[j];
        if (ids[j] != c.image_token_id) {
            if (count)
                return fail(err, EH_EINVAL, "text encoder: image %d has %lld pads where its grid needs %lld", img + 1,
                            (long long)count, (long long)toks[img]);
            pos[j] = pos[n_ids + j] = pos[2 * (size_t)n_ids + j] = cur++;
            continue;
        }
        if (count == 0 && j > 0 && ids[j - 1] == c.image_token_id)
            return fail(err, EH_EINVAL, "text encoder: image %d has more pads than the %lld its grid needs", img,
                        (long long)toks[img - 1]);
        if (img >= n_images)
            return fail(err, EH_EINVAL, "text encoder: more runs of image pads than the %d images", n_images);
        int64_t k = count++;
        if (!mrope) {
            pos[j] = pos[n_ids + j] = pos[2 * (size_t)n_ids + j] = cur++;
        } else {
            int64_t w2 = grid_thw[3 * img + 2] / m, h2 = grid_thw[3 * img + 1] / m;
            pos[j] = cur + k / (h2 * w2);
            pos[n_ids + j] = cur + (k / w2) % h2;
            pos[2 * (size_t)n_ids + j] = cur + k % w2;
        }
        if (count == toks[img]) {
            if (mrope)
                cur += std::max<int64_t>({ (int64_t)grid_thw[3 * img], grid_thw[3 * img + 1] / m, grid_thw[3 * img + 2] / m });
            count = 0;
            img++;
        }
    }
    if (count || img != n_images)
        return fail(err, EH_EINVAL, "text encoder: %d complete runs of image pads for %d images", img, n_images);
    return guarded(err, EH_EMODEL, "text encoder", [&]() -> eh_status {
        c10::InferenceMode inference;
        std::optional<c10::DeviceGuard> guard;
        if (q->tm->device.is_cuda())
            guard.emplace(q->tm->device);
        at::Device dev = q->tm->device;
        at::ScalarType dt = q->tm->dtype;
        at::TensorOptions fopt = at::TensorOptions().dtype(at::kFloat), lopt = at::TensorOptions().dtype(at::kLong);
        at::Tensor tid = at::from_blob(tok.data(), { 1, n_ids }, lopt).to(dev);
        at::Tensor h = at::embedding(qw(q, "model.language_model.embed_tokens.weight"), tid);
        // the vision tower attends within each image: one image at a time
        std::vector<at::Tensor> vis;
        int64_t row_dim = 3LL * c.temporal_patch_size * c.patch_size * c.patch_size, row = 0;
        for (int i = 0; i < n_images; i++) {
            int gt = grid_thw[3 * i], gh = grid_thw[3 * i + 1], gw = grid_thw[3 * i + 2];
            vis.push_back(te_vision(q, patches + row * row_dim, gt, gh, gw).to(dt));
            row += (int64_t)gt * gh * gw;
        }
        h = h.masked_scatter((tid == c.image_token_id).unsqueeze(-1), at::cat(vis, 0));
        // mrope: the head's frequencies in mrope_section runs, from T, H, W
        int hd = c.head_dim;
        at::Tensor inv = 1.0 / at::pow(c.rope_theta, at::arange(0, hd, 2, fopt) / (double)hd);
        at::Tensor fr = at::from_blob(pos.data(), { 3, n_ids }, lopt).to(at::kFloat).unsqueeze(-1) * inv;
        std::vector<at::Tensor> parts;
        int64_t at_ = 0;
        for (int a = 0; a < 3 && at_ < hd / 2; a++) {
            int64_t len = std::min<int64_t>(c.mrope_section[a], hd / 2 - at_);
            parts.push_back(fr[a].narrow(-1, at_, len));
            at_ += len;
        }
        TORCH_CHECK(at_ == hd / 2, "mrope_section sums to ", at_, ", not head_dim / 2 = ", hd / 2);
        at::Tensor f = at::cat(parts, -1);
        f = at::cat({ f, f }, -1).to(dev);
        at::Tensor cosv = f.cos().to(dt).view({ 1, 1, n_ids, hd }), sinv = f.sin().to(dt).view({ 1, 1, n_ids, hd });
        h = run_layers(q, h, cosv, sinv, at::Tensor(), {}, nullptr, true);
        h = rms_norm(h, qw(q, "model.language_model.norm.weight"), c.rms_norm_eps);
        at::Tensor res = h[0].narrow(0, drop, n_ids - drop).to(at::kFloat).to(at::kCPU).contiguous();
        memcpy(out, res.data_ptr<float>(), (size_t)res.numel() * sizeof(float));
        return EH_OK;
    });
}

}  // extern "C"
