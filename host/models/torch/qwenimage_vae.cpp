// qwenimage_vae.cpp — the native editor's image <-> latents (issue 14).
// Follows diffusers' autoencoder_kl_qwenimage.py (AutoencoderKLQwenImage) for
// one frame: a causal Conv3d over a one-frame input pads two zero frames in
// front, so only its last temporal kernel slice meets data, and the load
// keeps that slice as a Conv2d kernel (a third of the weights and of the
// multiply-adds); upsample3d/downsample3d run their time_conv only from the
// second frame on, so a first frame is their 2-D path.  Weights are slots of
// an eh_torch_module, so residency is the usual one-copy moves.
#include "evalhost/qwenimage_vae.h"
#include "ops.h"

#include <cmath>
#include <cstring>
#include <new>

using namespace ehtorch;

struct eh_qwenimage_vae {
    eh_torch_module *tm = nullptr;
    eh_qwenimage_vae_config cfg;
    weight_map w;
};

namespace
{

const at::Tensor &vw(eh_qwenimage_vae *v, const std::string &name)
{
    return ready(v->tm, named_weight(v->w, name));
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
// On the CPU the activations are channels-last: oneDNN's convolution works
// in that layout, and an NCHW input costs a full copy in and out of every
// convolution (measured: 2.6x a 3x3 convolution's CPU time at 96 channels,
// 256^2, bfloat16); the element-wise ops and norms keep the layout, the
// values are the same (issue 26's profile).
at::Tensor vae_layout(eh_qwenimage_vae *v, const at::Tensor &x)
{
    return v->tm->device.is_cpu() ? x.contiguous(at::MemoryFormat::ChannelsLast) : x;
}

at::Tensor vae_encode(eh_qwenimage_vae *v, at::Tensor x)
{
    const eh_qwenimage_vae_config &c = v->cfg;
    x = vconv(v, vae_layout(v, x), "encoder.conv_in");
    int idx = 0, in = c.base_dim;
    for (int i = 0; i < c.n_levels; i++) {
        int out = c.base_dim * c.dim_mult[i];
        for (int r = 0; r < c.num_res_blocks; r++, idx++) {
            x = vres(v, x, "encoder.down_blocks." + std::to_string(idx), in != out);
            in = out;
        }
        if (i != c.n_levels - 1) {
            // ZeroPad2d((0, 1, 0, 1)) then a stride-2 3x3 convolution
            x = vconv(v, at::constant_pad_nd(x, { 0, 1, 0, 1 }, 0),
                      "encoder.down_blocks." + std::to_string(idx++) + ".resample.1", 2, 0);
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
    at::Tensor x = vconv(v, vae_layout(v, z), "post_quant_conv");
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

eh_status eh_qwenimage_vae_load(const eh_qwenimage_vae_config *cfg, const struct eh_st_tensor *const *tensors, size_t n,
                                const eh_torch_options *opt, eh_qwenimage_vae **out, eh_error *err)
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
                return fail(err, EH_EFORMAT, "%s: tensor '%s' has a dtype (%s) the VAE cannot use", t->file, t->name,
                            eh_st_dtype_name(t->dtype));
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
        device_scope scope(v->tm);
        at::TensorOptions o = at::TensorOptions().dtype(v->tm->dtype).device(v->tm->device);
        at::Tensor z = vae_encode(v, input(v->tm, images, { n, 3, h, w }));
        z = (z - vae_stat(v, v->cfg.latents_mean, o)) / vae_stat(v, v->cfg.latents_std, o);
        output(z, latents);
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
        device_scope scope(v->tm);
        at::TensorOptions o = at::TensorOptions().dtype(v->tm->dtype).device(v->tm->device);
        at::Tensor z = input(v->tm, latents, { n, v->cfg.z_dim, lh, lw });
        // the pipeline's latents / (1 / std) + mean
        z = z / (1.0 / vae_stat(v, v->cfg.latents_std, o)) + vae_stat(v, v->cfg.latents_mean, o);
        output(vae_decode(v, z), images);
        return EH_OK;
    });
}

}  // extern "C"
