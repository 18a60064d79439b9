// qwen25vl_text_encoder.cpp — the native editor's Qwen2.5-VL text encoder
// (issue 14), as QwenImageEditPipeline._get_qwen_prompt_embeds runs it:
// hidden_states[-1] of Qwen2_5_VLModel, which transformers records after the
// final norm.  The decoder layers are the Qwen3-VL judge's run_layers
// (qwen3vl_decoder.h) with q/k/v biases and no QK norm; the vision tower is
// Qwen2.5-VL's own (windowed attention, RMSNorm, SwiGLU).
#include "evalhost/qwen25vl_text_encoder.h"
#include "qwen3vl_decoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>

using namespace ehtorch;

struct eh_qwenimage_te {
    eh_qwen3vl *q = nullptr;
};

namespace
{

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

expected_weights te_expected(const eh_qwen3vl_config &c)
{
    int64_t H = c.hidden_size, hd = c.head_dim, qd = (int64_t)c.num_heads * hd, kd = (int64_t)c.num_kv_heads * hd;
    std::string lm = "model.language_model.";
    expected_weights e = { { lm + "embed_tokens.weight", { c.vocab_size, H } }, { lm + "norm.weight", { H } } };
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
    e.push_back(
        { "model.visual.patch_embed.proj.weight", { vh, 3, c.temporal_patch_size, c.patch_size, c.patch_size } });
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
    std::vector<int64_t> prow, pcol;
    merge_block_positions(rows, gh, gw, m, prow, pcol);
    int hd = c.v_hidden / c.v_heads;
    at::Tensor fr = by_window(vision_rope_2d(prow, pcol, c.v_rope_theta, hd).to(dev));
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
        at::Tensor qs = apply_rope(qf, cosv, sinv).to(dt).transpose(0, 1);
        at::Tensor ks = apply_rope(kf, cosv, sinv).to(dt).transpose(0, 1);
        at::Tensor vs = qkv[2].transpose(0, 1);   // [heads, rows, hd]
        std::vector<at::Tensor> outs;
        for (size_t s = 0; s + 1 < seg.size(); s++) {
            int64_t a = seg[s], len = seg[s + 1] - seg[s];
            if (len == 0)
                continue;
            outs.push_back(attention(qs.narrow(1, a, len).unsqueeze(0), ks.narrow(1, a, len).unsqueeze(0),
                                     vs.narrow(1, a, len).unsqueeze(0), false, 1.0 / std::sqrt((double)hd))[0]);
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
        c.num_heads % c.num_kv_heads || c.head_dim < 2 || c.head_dim % 2 || c.vocab_size < 1 || c.intermediate_size < 1)
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
        place_weights(m, plan_expected(te_expected(c), by_name, m->dtype), q->w);
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
                return fail(err, EH_EINVAL,
                            "text encoder: prompt %d has a real token at %d after padding (right padding only)", i, j);
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
        device_scope scope(q->tm);
        at::Device dev = q->tm->device;
        at::ScalarType dt = q->tm->dtype;
        at::Tensor tid = at::from_blob(tok.data(), { n, L }, at::kLong).narrow(1, 0, longest).to(dev);
        at::Tensor h = at::embedding(qw(q, "model.language_model.embed_tokens.weight"), tid);
        int hd = c.head_dim;
        at::Tensor f = rope_angles(at::arange(longest, at::kFloat), c.rope_theta, hd);   // [L, hd/2]
        f = rope_full(f).to(dev);
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
                cur += std::max<int64_t>(
                    { (int64_t)grid_thw[3 * img], grid_thw[3 * img + 1] / m, grid_thw[3 * img + 2] / m });
            count = 0;
            img++;
        }
    }
    if (count || img != n_images)
        return fail(err, EH_EINVAL, "text encoder: %d complete runs of image pads for %d images", img, n_images);
    return guarded(err, EH_EMODEL, "text encoder", [&]() -> eh_status {
        device_scope scope(q->tm);
        at::Device dev = q->tm->device;
        at::ScalarType dt = q->tm->dtype;
        at::TensorOptions lopt = at::TensorOptions().dtype(at::kLong);
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
        at::Tensor fr = rope_angles(at::from_blob(pos.data(), { 3, n_ids }, lopt), c.rope_theta, hd);
        std::vector<at::Tensor> parts;
        int64_t at_ = 0;
        for (int a = 0; a < 3 && at_ < hd / 2; a++) {
            int64_t len = std::min<int64_t>(c.mrope_section[a], hd / 2 - at_);
            parts.push_back(fr[a].narrow(-1, at_, len));
            at_ += len;
        }
        TORCH_CHECK(at_ == hd / 2, "mrope_section sums to ", at_, ", not head_dim / 2 = ", hd / 2);
        at::Tensor f = rope_full(at::cat(parts, -1)).to(dev);
        at::Tensor cosv = f.cos().to(dt).view({ 1, 1, n_ids, hd }), sinv = f.sin().to(dt).view({ 1, 1, n_ids, hd });
        h = run_layers(q, h, cosv, sinv, at::Tensor(), {}, nullptr, true);
        h = rms_norm(h, qw(q, "model.language_model.norm.weight"), c.rms_norm_eps);
        at::Tensor res = h[0].narrow(0, drop, n_ids - drop).to(at::kFloat).to(at::kCPU).contiguous();
        memcpy(out, res.data_ptr<float>(), (size_t)res.numel() * sizeof(float));
        return EH_OK;
    });
}

}  // extern "C"
