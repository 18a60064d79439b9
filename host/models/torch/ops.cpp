// ops.cpp — the shared pieces of the libtorch files (see ops.h): errors,
// dtype and device strings, named weights and their one shape check, the
// weight load into the flat host buffer, norms, rotary tables, attention.
#include "ops.h"

#include <torch/cuda.h>

#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

namespace ehtorch
{

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

std::string shape_str(at::IntArrayRef sizes)
{
    std::ostringstream os;
    os << sizes;
    return os.str();
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
            why = "device '" + d + "' requested but CUDA is not available (libtorch " + eh_torch_version() +
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

// ---- named weights ---------------------------------------------------------

const at::Tensor &named_weight(const weight_map &w, const std::string &name)
{
    auto it = w.find(name);
    TORCH_CHECK(it != w.end(), "weight '", name, "' is missing");
    return it->second;
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

void check_dims(const std::string &name, at::IntArrayRef found, at::IntArrayRef expected)
{
    TORCH_CHECK(found.equals(expected), "weight '", name, "' has shape ", found, ", the config needs ", expected);
}

const at::Tensor &checked_weight(const weight_map &w, const std::string &name, at::IntArrayRef expected)
{
    const at::Tensor &t = named_weight(w, name);
    check_dims(name, t.sizes(), expected);
    return t;
}

std::vector<planned_weight> plan_expected(const expected_weights &expected,
                                          const std::map<std::string, const eh_st_tensor *> &by_name,
                                          at::ScalarType dtype)
{
    std::vector<planned_weight> plan;
    for (const auto &ex : expected) {
        auto it = by_name.find(ex.first);
        TORCH_CHECK(it != by_name.end(), "weight '", ex.first, "' is missing");
        const eh_st_tensor *t = it->second;
        std::vector<int64_t> got(t->shape, t->shape + t->ndim);
        auto sd = st_scalar(t->dtype);
        TORCH_CHECK(sd && at::isFloatingType(*sd), "weight '", ex.first, "' (", t->file, ") is ",
                    eh_st_dtype_name(t->dtype), " where floats are expected");
        check_dims(ex.first, got, ex.second);
        plan.push_back({ ex.first, t, dtype, got, stored_as::as_is });
    }
    return plan;
}

void place_weights(eh_torch_module *m, const std::vector<planned_weight> &plan, weight_map &w)
{
    size_t first = m->slots.size();
    for (const auto &p : plan)
        add_slot(m, p.dtype, p.sizes);
    m->host = alloc_module_host(m, m->total);
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < plan.size(); i++) {
        const planned_weight &p = plan[i];
        slot &s = m->slots[first + i];
        at::Tensor dst = view_of(m->host, s);
        std::vector<int64_t> file_sizes(p.t->shape, p.t->shape + p.t->ndim);
        at::Tensor from =
            at::from_blob(const_cast<void *>(p.t->data), file_sizes, at::TensorOptions().dtype(*st_scalar(p.t->dtype)));
        if (p.how == stored_as::transposed_1_2)
            from = from.transpose(1, 2);
        else if (p.how == stored_as::last_frame)
            from = from.select(2, from.size(2) - 1);
        dst.copy_(from);
        // the file's pages of this tensor are no longer needed: without
        // this a bf16 load's peak is the buffer plus every page read
        eh_st_tensor_release(p.t);
        s.t = at::empty({ 0 }, at::TensorOptions().dtype(s.dtype));
        s.t.set_data(dst);
        w[p.name] = s.t;
    }
}

at::Tensor input(const eh_torch_module *m, const float *data, at::IntArrayRef sizes)
{
    // on a float32 CPU module this views the caller's memory (read only)
    at::TensorOptions o = at::TensorOptions().dtype(m->dtype).device(m->device);
    return at::from_blob(const_cast<float *>(data), sizes, at::kFloat).to(o);
}

void output(const at::Tensor &t, float *out)
{
    at::Tensor host = t.to(at::kFloat).to(at::kCPU).contiguous();
    memcpy(out, host.data_ptr<float>(), (size_t)host.numel() * sizeof(float));
}

// ---- norms -----------------------------------------------------------------

at::Tensor rms_norm(const at::Tensor &x, const at::Tensor &wt, double eps)
{
    at::Tensor h = x.to(at::kFloat);
    at::Tensor var = h.pow(2).mean(-1, true);
    h = h * at::rsqrt(var + eps);
    return wt * h.to(x.scalar_type());
}

at::Tensor rms_norm_diffusers(const at::Tensor &x, const at::Tensor &wt, double eps)
{
    at::Tensor var = x.to(at::kFloat).pow(2).mean(-1, true);
    at::Tensor h = x * at::rsqrt(var + eps);
    if (wt.scalar_type() == at::kHalf || wt.scalar_type() == at::kBFloat16)
        h = h.to(wt.scalar_type());
    return h * wt;
}

// ---- rotary ----------------------------------------------------------------

at::Tensor rope_inv_freq(double theta, int64_t dim)
{
    at::TensorOptions fopt = at::TensorOptions().dtype(at::kFloat);
    return 1.0 / at::pow(theta, at::arange(0, dim, 2, fopt) / (double)dim);
}

at::Tensor rope_angles(const at::Tensor &pos, double theta, int64_t dim)
{
    return pos.to(at::kFloat).unsqueeze(-1) * rope_inv_freq(theta, dim);
}

at::Tensor rotate_half(const at::Tensor &x)
{
    int64_t half = x.size(-1) / 2;
    return at::cat({ -x.narrow(-1, half, half), x.narrow(-1, 0, half) }, -1);
}

at::Tensor apply_rope(const at::Tensor &x, const at::Tensor &cosv, const at::Tensor &sinv)
{
    return x * cosv + rotate_half(x) * sinv;
}

void merge_block_positions(int64_t rows, int gh, int gw, int merge, std::vector<int64_t> &prow,
                           std::vector<int64_t> &pcol)
{
    int64_t m = merge, unit = m * m, bw = gw / m;
    prow.resize(rows);
    pcol.resize(rows);
    for (int64_t i = 0; i < rows; i++) {
        int64_t within = i % ((int64_t)gh * gw);
        int64_t in_col = within % m, in_row = (within / m) % m;
        int64_t bcol = (within / unit) % bw, brow = within / (unit * bw);
        prow[i] = brow * m + in_row;
        pcol[i] = bcol * m + in_col;
    }
}

at::Tensor vision_rope_2d(const std::vector<int64_t> &prow, const std::vector<int64_t> &pcol, double theta,
                          int head_dim)
{
    int64_t rows = (int64_t)prow.size();
    at::TensorOptions lopt = at::TensorOptions().dtype(at::kLong);
    at::Tensor ph = at::from_blob(const_cast<int64_t *>(prow.data()), { rows }, lopt);
    at::Tensor pc = at::from_blob(const_cast<int64_t *>(pcol.data()), { rows }, lopt);
    int sd = head_dim / 2;
    return rope_full(at::cat({ rope_angles(ph, theta, sd), rope_angles(pc, theta, sd) }, -1));   // [rows, hd]
}

// ---- attention -------------------------------------------------------------

at::Tensor attention(const at::Tensor &q, at::Tensor k, at::Tensor v, bool causal, double scale, const at::Tensor &mask)
{
    int64_t heads = q.size(-3), kv_heads = k.size(-3);
    if (heads != kv_heads) {
        TORCH_CHECK(k.dim() == 4 && heads % kv_heads == 0, "attention: ", heads, " query heads over ", kv_heads,
                    " key/value heads");
        // no mask: SDPA's own grouped-query path (transformers' enable_gqa), not
        // a copy of every key and value per query head (same values; a decode
        // step's attention at 1.5k cached tokens took 3x the CPU time)
        if (!mask.defined())
            return at::scaled_dot_product_attention(q, k, v, {}, 0.0, causal, scale, true);
        int64_t n = k.size(0), T = k.size(2), hd = k.size(3), rep = heads / kv_heads;
        k = k.unsqueeze(2).expand({ n, kv_heads, rep, T, hd }).reshape({ n, heads, T, hd });
        v = v.unsqueeze(2).expand({ n, kv_heads, rep, T, hd }).reshape({ n, heads, T, hd });
    }
    if (mask.defined())
        return at::scaled_dot_product_attention(q, k, v, mask, 0.0, false, scale);
    return at::scaled_dot_product_attention(q, k, v, {}, 0.0, causal, scale);
}

}  // namespace ehtorch
