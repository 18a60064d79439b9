// qwenimage_dit.cpp — the native editor's transformer (issue 14) and the
// pipeline's initial noise.  Follows diffusers' transformer_qwenimage.py
// (QwenImageTransformer2DModel with QwenDoubleStreamAttnProcessor2_0 and the
// native attention backend) op by op: the rotary tables are built for the
// positions in use only (diffusers slices a 4096-row table of the same
// values), in complex64 as diffusers.
#include "evalhost/qwenimage_dit.h"
#include "ops.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <new>

using namespace ehtorch;

struct eh_qwenimage_dit {
    eh_torch_module *tm = nullptr;
    eh_qwenimage_dit_config cfg;
    weight_map w;
};

namespace
{

const at::Tensor &dw(eh_qwenimage_dit *d, const std::string &name)
{
    return ready(d->tm, named_weight(d->w, name));
}

at::Tensor dlinear(eh_qwenimage_dit *d, const at::Tensor &x, const std::string &p)
{
    return at::linear(x, dw(d, p + ".weight"), dw(d, p + ".bias"));
}

at::Tensor dlayer_norm(const at::Tensor &x)
{
    return at::layer_norm(x, { x.size(-1) }, {}, {}, 1e-6);
}

// 1 / theta^(arange(0, dim, 2) / dim) times the positions → polar, [S, dim/2]
at::Tensor rope_axis(const at::Tensor &pos, int dim)
{
    at::Tensor f = rope_angles(pos, 10000.0, dim);
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
                         v.narrow(0, b, b).unsqueeze(1).expand({ b, rest, v.size(1) }) },
                       1);
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
    at::Tensor tq = heads(dlinear(d, tm1.first, a + ".add_q_proj")),
               tk = heads(dlinear(d, tm1.first, a + ".add_k_proj"));
    at::Tensor tv = heads(dlinear(d, tm1.first, a + ".add_v_proj"));
    iq = dit_rotary(rms_norm_diffusers(iq, dw(d, a + ".norm_q.weight"), 1e-6), img_freqs);
    ik = dit_rotary(rms_norm_diffusers(ik, dw(d, a + ".norm_k.weight"), 1e-6), img_freqs);
    tq = dit_rotary(rms_norm_diffusers(tq, dw(d, a + ".norm_added_q.weight"), 1e-6), txt_freqs);
    tk = dit_rotary(rms_norm_diffusers(tk, dw(d, a + ".norm_added_k.weight"), 1e-6), txt_freqs);
    at::Tensor q = at::cat({ tq, iq }, 1).permute({ 0, 2, 1, 3 });
    at::Tensor k = at::cat({ tk, ik }, 1).permute({ 0, 2, 1, 3 });
    at::Tensor v = at::cat({ tv, iv }, 1).permute({ 0, 2, 1, 3 });
    at::Tensor o =
        at::scaled_dot_product_attention(q, k, v, mask.defined() ? std::optional<at::Tensor>(mask) : std::nullopt)
            .permute({ 0, 2, 1, 3 })
            .flatten(2, 3)
            .to(q.scalar_type());
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
expected_weights dit_expected(const eh_qwenimage_dit_config &c)
{
    int64_t dim = (int64_t)c.num_heads * c.head_dim, ff = 4 * dim;
    expected_weights e;
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
        for (const char *s :
             { "to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj", "to_out.0", "to_add_out" })
            lin(p + ".attn." + s, dim, dim);
        for (const char *s : { "norm_q", "norm_k", "norm_added_q", "norm_added_k" })
            e.push_back({ p + ".attn." + s + ".weight", { c.head_dim } });
    }
    return e;
}

}  // namespace

extern "C" {

eh_status eh_qwenimage_dit_load(const eh_qwenimage_dit_config *cfg, const struct eh_st_tensor *const *tensors, size_t n,
                                const eh_torch_options *opt, eh_qwenimage_dit **out, eh_error *err)
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
        place_weights(m, plan_expected(dit_expected(c), by_name, m->dtype), d->w);
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
        return fail(err, EH_ESTATE, "LoRA '%s': the transformer is already loaded (merge before the first load)",
                    module);
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
                                     at::TensorOptions().dtype(*ds))
                           .to(at::kFloat);
        at::Tensor b =
            at::from_blob(const_cast<void *>(up->data), { up->shape[0], up->shape[1] }, at::TensorOptions().dtype(*us))
                .to(at::kFloat);
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
        device_scope scope(d->tm);
        at::Tensor img = input(d->tm, hidden, { n, tokens, c.in_channels });
        at::Tensor txt = input(d->tm, text, { n, txt_len, c.joint_attention_dim });
        at::Tensor t = input(d->tm, timestep, { n });
        // the joint mask: text's, then every image token.  None where every
        // text token is real, as the pipeline drops an all-true mask: SDPA
        // then takes its fused kernels (flash on CUDA), whose half-precision
        // rounding is what the reference has, and which are faster.
        bool all_real = true;
        for (int64_t i = 0; mask && i < (int64_t)n * txt_len && all_real; i++)
            all_real = mask[i] != 0;
        at::Tensor jmask;
        if (!all_real) {
            at::Tensor tmask =
                at::from_blob(const_cast<int32_t *>(mask), { n, txt_len }, at::kInt).to(d->tm->device).ne(0);
            jmask = at::cat({ tmask, at::ones({ n, tokens }, tmask.options()) }, 1).view({ n, 1, 1, -1 });
        }

        img = dlinear(d, img, "img_in");
        txt = dlinear(d, rms_norm_diffusers(txt, dw(d, "txt_norm.weight"), 1e-6), "txt_in");
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
        output(dlinear(d, img, "proj_out"), out);
        return EH_OK;
    });
}

}  // extern "C"

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
