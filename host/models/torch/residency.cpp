// residency.cpp — TorchScript modules and the residency every libtorch model
// shares: the weights in ONE immutable flat host buffer (pinned when the
// module's device is CUDA), written once at load, plus, while loaded, one
// flat device buffer of the same layout filled by a single copy; the
// module's tensors are views into whichever buffer is current.  Also the
// library facts (version, CUDA, dtype and device strings).  Every exported
// function catches C++ exceptions (ops.h's guarded); nothing C++ leaves
// (see include/evalhost/torch_shim.h).
#include "ops.h"

#include <ATen/core/grad_mode.h>
#include <c10/core/CachingDeviceAllocator.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <torch/cuda.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
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

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <vector>

using namespace ehtorch;

namespace
{
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

}  // namespace

namespace ehtorch
{

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
            int rc = rt.reg(p, (size_t)bytes, 1u /* cudaHostRegisterPortable */);
            if (rc == 0) {
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
            // refused: the caller falls back to pageable copies (run.pin:
            // auto) rather than torch's allocator, which rounds 60 GB up to
            // 64 GB of the same locked memory
            throw std::runtime_error("cudaHostRegister error " + std::to_string(rc));
        }
        *kind = EH_TORCH_HOST_TORCH_PINNED;
        return at::empty({ bytes }, at::TensorOptions().dtype(at::kByte).pinned_memory(true));
    }
    return at::empty({ bytes }, at::TensorOptions().dtype(at::kByte));
}

// The test hook: EVALHOST_TEST_PIN_REFUSE=1 refuses every page-locking,
// and lets a CPU module with cpu_copy take the pinning path, so the
// fallback runs on a machine without CUDA.
static bool pin_refused_for_tests()
{
    const char *v = getenv("EVALHOST_TEST_PIN_REFUSE");
    return v && *v && strcmp(v, "0") != 0;
}

at::Tensor alloc_module_host(eh_torch_module *m, int64_t bytes)
{
    bool refuse = pin_refused_for_tests();
    bool want = m->pin != EH_TORCH_PIN_NEVER && (m->device.is_cuda() || (refuse && m->cpu_copy));
    char size[64];
    snprintf(size, sizeof size, "%.1f GB", (double)bytes / 1e9);
    if (!want) {
        m->host_kind = EH_TORCH_HOST_PLAIN;
        m->host_note = m->device.is_cuda() ? "pageable (run.pin: never)" : "pageable";
        return alloc_host(bytes, false, &m->host_kind);
    }
    std::string why;
    if (!refuse) {
        try {
            at::Tensor t = alloc_host(bytes, true, &m->host_kind);
            m->host_note =
                m->host_kind == EH_TORCH_HOST_REGISTERED ? "pinned (cudaHostRegister)" : "pinned (torch allocator)";
            return t;
        } catch (const std::exception &e) {
            why = first_line(e.what());   // neither cudaHostRegister nor torch's pinned allocator agreed
        }
    } else {
        why = "refused by EVALHOST_TEST_PIN_REFUSE";
    }
    std::string msg = std::string("page-locking ") + size + " of host memory failed (" + why + ")";
    TORCH_CHECK(m->pin != EH_TORCH_PIN_ALWAYS, msg, "; run.pin is always (auto falls back to pageable copies)");
    at::Tensor t = alloc_host(bytes, false, &m->host_kind);
    m->host_kind = EH_TORCH_HOST_PIN_REFUSED;
    m->host_note = "pageable: " + msg + ", so loads copy from pageable memory (slower)";
    return t;
}

void wait_chunk(eh_torch_module *m, const at::Tensor &t)
{
    pending_load *p = m->pending.get();
    if (!m->dev.defined() || !t.defined() || p->ends.empty())
        return;
    const auto *base = static_cast<const uint8_t *>(m->dev.data_ptr());
    const auto *w = static_cast<const uint8_t *>(t.data_ptr());
    if (w < base || w >= base + m->total)
        return;   // not one of this buffer's weights
    int64_t end = (int64_t)(w - base) + (int64_t)t.nbytes();
    size_t k = (size_t)(std::lower_bound(p->ends.begin(), p->ends.end(), end) - p->ends.begin());
    if (k >= p->ends.size())
        k = p->ends.size() - 1;
    if (m->device.is_cuda()) {
        if (k < p->waited)
            return;   // the stream already waits for a later chunk
        c10::impl::VirtualGuardImpl impl(c10::kCUDA);
        p->events[k].block(impl.getStream(m->device));
        p->waited = k + 1;
        return;
    }
    std::unique_lock<std::mutex> lock(p->mu);
    p->cv.wait(lock, [&] { return p->arrived > k; });
}

void ready_all(eh_torch_module *m)
{
    pending_load *p = m->pending.get();
    if (!p || p->ends.empty())
        return;
    if (m->device.is_cuda()) {
        if (p->waited < p->ends.size()) {
            c10::impl::VirtualGuardImpl impl(c10::kCUDA);
            p->events.back().block(impl.getStream(m->device));
            p->waited = p->ends.size();
        }
        return;
    }
    std::unique_lock<std::mutex> lock(p->mu);
    p->cv.wait(lock, [&] { return p->arrived == p->ends.size(); });
}

void finish_load(eh_torch_module *m)
{
    if (!m->pending)
        return;
    if (m->pending->copier.joinable())
        m->pending->copier.join();
    if (m->device.is_cuda() && m->copy_stream)
        m->copy_stream->synchronize();
    m->pending.reset();
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
        m->pin = o.pin;
        m->overlap_chunk = o.overlap_chunk_bytes > 0 ? o.overlap_chunk_bytes : 0;
        m->overlap_delay_us = o.overlap_test_delay_us > 0 ? o.overlap_test_delay_us : 0;
        return EH_OK;
    });
}

}  // namespace ehtorch

namespace
{

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
    m->host = alloc_module_host(m, m->total);
    at::NoGradGuard no_grad;
    for (auto &s : m->slots) {
        at::Tensor v = view_of(m->host, s);
        v.copy_(s.t.detach());
        s.t.set_data(v);
        s.t.requires_grad_(false);
    }
}

// The byte ends of an overlapped load's chunks: runs of whole tensors of at
// least overlap_chunk bytes each (the last may be shorter), ending at total.
std::vector<int64_t> chunk_ends(const eh_torch_module *m)
{
    std::vector<int64_t> ends;
    int64_t start = 0;
    for (size_t i = 0; i < m->slots.size(); i++) {
        int64_t end = i + 1 < m->slots.size() ? m->slots[i + 1].offset : m->total;
        if (end - start >= m->overlap_chunk || i + 1 == m->slots.size()) {
            ends.push_back(end);
            start = end;
        }
    }
    if (ends.empty() || ends.back() < m->total)
        ends.push_back(m->total);
    return ends;
}

// The one walk over those chunks, both copy paths' (the CPU copier
// thread's memcpy, the CUDA copy stream's copy_ and event): f(k, start,
// end) for chunk k = [start, end).
template <class F> void each_chunk(const std::vector<int64_t> &ends, F f)
{
    int64_t start = 0;
    for (size_t k = 0; k < ends.size(); k++) {
        f(k, start, ends[k]);
        start = ends[k];
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
    ready_all(m);   // a TorchScript forward cannot wait weight by weight
    c10::IValue out = m->module.forward(std::move(inputs));
    TORCH_CHECK(out.isTensor(), "forward returned ", out.tagKind(), ", not a Tensor");
    return out.toTensor();
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
    o.overlap_chunk_bytes = 0;
    o.overlap_test_delay_us = 0;
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

// The start of both constructors: a module with opt's dtype and device.
static eh_status create(const eh_torch_options *opt, eh_torch_module **m, eh_error *err)
{
    *m = new (std::nothrow) eh_torch_module();
    if (!*m)
        return fail(err, EH_ENOMEM, "out of memory");
    eh_status rc = setup(opt, *m, err);
    if (rc != EH_OK) {
        delete *m;
        *m = nullptr;
    }
    return rc;
}

// Their end: m is the caller's when rc is EH_OK, freed otherwise.
static eh_status hand_over(eh_torch_module *m, eh_status rc, eh_torch_module **out)
{
    if (rc != EH_OK) {
        delete m;
        return rc;
    }
    *out = m;
    return EH_OK;
}

eh_status eh_torch_module_load(const char *path, const eh_torch_options *opt, eh_torch_module **out, eh_error *err)
{
    *out = nullptr;
    eh_torch_module *m = nullptr;
    eh_status rc = create(opt, &m, err);
    if (rc != EH_OK)
        return rc;
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
    return hand_over(m, rc, out);
}

eh_status eh_torch_module_synthetic(int64_t bytes, int n_params, const eh_torch_options *opt, eh_torch_module **out,
                                    eh_error *err)
{
    *out = nullptr;
    if (n_params < 1 || bytes < n_params)
        return fail(err, EH_EINVAL, "synthetic model: need n_params >= 1 and bytes >= n_params");
    eh_torch_module *m = nullptr;
    eh_status rc = create(opt, &m, err);
    if (rc != EH_OK)
        return rc;
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
    return hand_over(m, rc, out);
}

void eh_torch_module_free(eh_torch_module *m)
{
    if (!m)
        return;
    try {
        finish_load(m);
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
            finish_load(m);
            m->dev = at::empty({ m->host.numel() }, at::TensorOptions().dtype(at::kByte));
            if (m->overlap_chunk > 0) {
                // the GPU's overlapped path on a copier thread: chunk k
                // arrives, then waiters of chunk k go on
                auto p = std::make_unique<pending_load>();
                p->ends = chunk_ends(m);
                retarget(m, m->dev);
                uint8_t *dst = m->dev.data_ptr<uint8_t>();
                const uint8_t *src = m->host.data_ptr<uint8_t>();
                pending_load *raw = p.get();
                int delay = m->overlap_delay_us;
                if (delay)   // tests: a read before its chunk arrives sees NaNs, not last load's bytes
                    memset(dst, 0xff, (size_t)m->total);
                p->copier = std::thread([raw, dst, src, delay] {
                    each_chunk(raw->ends, [&](size_t k, int64_t start, int64_t end) {
                        if (delay)
                            std::this_thread::sleep_for(std::chrono::microseconds(delay));
                        memcpy(dst + start, src + start, (size_t)(end - start));
                        {
                            std::lock_guard<std::mutex> g(raw->mu);
                            raw->arrived = k + 1;
                        }
                        raw->cv.notify_all();
                    });
                });
                m->pending = std::move(p);
                return EH_OK;
            }
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
        finish_load(m);
        m->dev = at::empty({ m->host.numel() }, at::TensorOptions().dtype(at::kByte).device(m->device));
        if (!m->copy_stream)
            m->copy_stream = impl.getStreamFromGlobalPool(m->device, /*isHighPriority=*/false);
        if (m->overlap_chunk > 0) {
            // chunk by chunk on the copy stream, an event after each; the
            // host goes on at once and forwards wait per chunk (ready)
            auto p = std::make_unique<pending_load>();
            p->ends = chunk_ends(m);
            bool async = m->host_kind != EH_TORCH_HOST_PLAIN;
            {
                c10::StreamGuard stream_guard(*m->copy_stream);
                each_chunk(p->ends, [&](size_t, int64_t start, int64_t end) {
                    m->dev.narrow(0, start, end - start).copy_(m->host.narrow(0, start, end - start), async);
                    p->events.emplace_back(c10::DeviceType::CUDA);
                    p->events.back().record(*m->copy_stream);
                });
            }
            retarget(m, m->dev);
            m->pending = std::move(p);
            return EH_OK;
        }
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
            if (m->copy_stream)
                m->copy_stream->synchronize();   // no copy may land in a freed buffer
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
            finish_load(m);
            if (m->dev.defined())
                retarget(m, m->host);
            m->dev = at::Tensor();
            m->on_device = false;
            return EH_OK;
        });
    }
    return guarded(err, EH_EMODEL, "unload", [&]() -> eh_status {
        c10::DeviceGuard device_guard(m->device);
        finish_load(m);
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

const char *eh_torch_module_host_note(const eh_torch_module *m)
{
    return m->host_note.c_str();
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
        if (y.dim() != 4 || y.size(0) != n || (y.size(1) != 3 && y.size(1) != 1 && y.size(1) != 4) || y.size(2) < 1 ||
            y.size(3) < 1)
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
        at::Tensor y = run_forward(m, { input_tensor(m, edited, n, h, w), input_tensor(m, original, n, h2, w2),
                                        text_value(m, prompts, n) });
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

// x[i] = float(dtype(x[i])), where the Qwen-Image pipeline keeps a tensor in
// the model's dtype.
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
