// qwen3vl.cpp — the native judge's forward (issue 12): transformers'
// Qwen3VL / Qwen3VLMoe ForConditionalGeneration (modeling_qwen3_vl.py,
// modeling_qwen3_vl_moe.py) op by op, in the same dtypes (float32 where it
// upcasts), so the logits match it within float rounding.  Weights are
// slots of an eh_torch_module, so residency is the same one-copy moves as a
// TorchScript model's.  The decoder (run_layers) also serves the editor's
// Qwen2.5-VL text encoder (qwen25vl_text_encoder.cpp).
#include "qwen3vl_decoder.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <new>

#include "evalhost/group.h"

using namespace ehtorch;

namespace ehtorch
{

const at::Tensor &qw(eh_qwen3vl *q, const std::string &name)
{
    return ready(q->tm, named_weight(q->w, name));
}

at::Tensor qlinear(eh_qwen3vl *q, const at::Tensor &x, const std::string &p, bool bias)
{
    return bias ? at::linear(x, qw(q, p + ".weight"), qw(q, p + ".bias")) : at::linear(x, qw(q, p + ".weight"));
}

// Qwen3VLMoeTextSparseMoeBlock: softmax router in float32, top-k
// renormalised.  The experts run as transformers' default
// (grouped_mm_experts_forward): the (token, choice) rows sorted by expert,
// each expert one matmul over its slice, the routing weights applied, the
// rows put back and summed over the choices in one reduction.  A loop of
// index_add_ per expert (the eager form) was half the layer's CPU time in
// bfloat16 (a scalar scatter), and each expert's where() a device sync.
at::Tensor moe_mlp(eh_qwen3vl *q, const at::Tensor &x, const std::string &p)
{
    const eh_qwen3vl_config &c = q->cfg;
    at::Tensor h = x.reshape({ -1, c.hidden_size });
    int64_t T = h.size(0), K = c.experts_per_tok;
    at::Tensor logits = at::linear(h, qw(q, p + ".gate.weight"));
    at::Tensor probs = at::softmax(logits, -1, at::kFloat);
    auto top = at::topk(probs, K, -1);
    at::Tensor tw = std::get<0>(top);
    tw = (tw / tw.sum(-1, true)).to(logits.scalar_type());
    at::Tensor eid = std::get<1>(top).reshape({ -1 });   // [T * K], row r = token r / K
    at::Tensor order = std::get<1>(at::sort(eid, /*stable=*/true, 0, false));
    // rows per expert, read once (one device sync, not one per expert)
    at::Tensor counts = at::bincount(eid, {}, c.num_experts).to(at::kCPU).contiguous();
    const int64_t *cnt = counts.data_ptr<int64_t>();
    at::Tensor xs = h.index_select(0, at::floor_divide(order, K));
    const at::Tensor &gu = qw(q, p + ".experts.gate_up_proj"), &dn = qw(q, p + ".experts.down_proj");
    // two passes of one matmul per expert, the activation once between
    // them (per-expert element-wise ops were each a parallel region whose
    // threads mostly waited: OpenMP spin was a third of the layer's CPU)
    at::Tensor up = at::empty({ T * K, gu.size(1) }, h.options());
    for (int e = 0, at_row = 0; e < c.num_experts; at_row += (int)cnt[e], e++)
        if (cnt[e] > 0) {
            at::Tensor out = up.narrow(0, at_row, cnt[e]);
            at::mm_out(out, xs.narrow(0, at_row, cnt[e]), gu[e].t());
        }
    auto gate_up = up.chunk(2, -1);
    at::Tensor act = at::silu(gate_up[0]) * gate_up[1];
    at::Tensor y = at::empty({ T * K, c.hidden_size }, h.options());
    for (int e = 0, at_row = 0; e < c.num_experts; at_row += (int)cnt[e], e++)
        if (cnt[e] > 0) {
            at::Tensor out = y.narrow(0, at_row, cnt[e]);
            at::mm_out(out, act.narrow(0, at_row, cnt[e]), dn[e].t());
        }
    y.mul_(tw.reshape({ -1 }).index_select(0, order).unsqueeze(-1));
    y = y.index_select(0, at::argsort(order));   // back to (token, choice) order
    return y.view({ T, K, c.hidden_size }).sum(1).reshape(x.sizes());
}

// The decoder layers over h [n, L, hidden].  prefill: causal attention
// over h itself (and, with a cache, its keys/values kept per layer);
// otherwise one new token per item attending to the cache and itself.
at::Tensor run_layers(eh_qwen3vl *q, at::Tensor h, const at::Tensor &cosv, const at::Tensor &sinv,
                      const at::Tensor &vmask, const std::vector<at::Tensor> &deep, kv_cache *cache, bool prefill,
                      const branch_rows *br)
{
    const eh_qwen3vl_config &c = q->cfg;
    int64_t n = h.size(0), L = h.size(1);
    int hd = c.head_dim;
    double scale = 1.0 / std::sqrt((double)hd);
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
        qs = apply_rope(qs, cosv, sinv);
        ks = apply_rope(ks, cosv, sinv);
        if (br) {   // branch rows: read their prompts' cache, keep nothing
            ks = at::cat({ cache->k[l].index_select(0, br->rows), ks }, 2);
            vs = at::cat({ cache->v[l].index_select(0, br->rows), vs }, 2);
        } else if (cache) {
            if (!prefill) {
                ks = at::cat({ cache->k[l], ks }, 2);
                vs = at::cat({ cache->v[l], vs }, 2);
            }
            cache->k[l] = ks;
            cache->v[l] = vs;
        }
        // a decode step's one query sees every cached key: no mask (sdpa's
        // causal mask is top-left aligned and would hide all but the first)
        at::Tensor a = br ? attention(qs, ks, vs, false, scale, br->mask) : attention(qs, ks, vs, prefill, scale);
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

}  // namespace ehtorch

namespace
{

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
    std::vector<int64_t> prow, pcol;
    merge_block_positions(rows, gh, gw, m, prow, pcol);
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
    at::Tensor fr = vision_rope_2d(prow, pcol, c.v_rope_theta, hd).repeat({ k, 1 }).to(dev);
    at::Tensor cosv = fr.cos().unsqueeze(-2), sinv = fr.sin().unsqueeze(-2);

    for (int l = 0; l < c.v_depth; l++) {
        std::string p = "model.visual.blocks." + std::to_string(l);
        at::Tensor h = at::layer_norm(x, { c.v_hidden }, qw(q, p + ".norm1.weight"), qw(q, p + ".norm1.bias"), 1e-6);
        at::Tensor qkv = qlinear(q, h, p + ".attn.qkv").reshape({ k * rows, 3, c.v_heads, hd }).permute({ 1, 0, 2, 3 });
        at::Tensor qs = qkv[0], ks = qkv[1], vs = qkv[2];
        at::Tensor qf = qs.to(at::kFloat), kf = ks.to(at::kFloat);
        qs = apply_rope(qf, cosv, sinv).to(dt);
        ks = apply_rope(kf, cosv, sinv).to(dt);
        auto per_image = [&](const at::Tensor &z) { return z.reshape({ k, rows, c.v_heads, hd }).transpose(1, 2); };
        at::Tensor a = attention(per_image(qs), per_image(ks), per_image(vs), false, 1.0 / std::sqrt((double)hd));
        a = a.transpose(1, 2).reshape({ k * rows, c.v_hidden });
        x = x + qlinear(q, a, p + ".attn.proj");
        h = at::layer_norm(x, { c.v_hidden }, qw(q, p + ".norm2.weight"), qw(q, p + ".norm2.bias"), 1e-6);
        x = x + qlinear(q, at::gelu(qlinear(q, h, p + ".mlp.linear_fc1"), "tanh"), p + ".mlp.linear_fc2");
        for (int d = 0; d < c.n_deepstack; d++)
            if (c.deepstack[d] == l) {
                auto split =
                    vision_merger(q, x, "model.visual.deepstack_merger_list." + std::to_string(d), true).chunk(k, 0);
                for (int64_t i = 0; i < k; i++)
                    deep[i][d] = split[i];
            }
    }
    embeds = vision_merger(q, x, "model.visual.merger", false).chunk(k, 0);
}

// The prefill of n right-padded prompts → last-position logits [n, vocab]
// in float32.  With a cache (one item), its keys and values are kept for
// decoding.
at::Tensor qwen_forward(eh_qwen3vl *q, const eh_qwen3vl_item *items, int n, kv_cache *cache = nullptr,
                        std::vector<int64_t> *next_pos = nullptr)
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
        // the host's one grouping of equal requests (group.h), here by grid
        auto same_grid = [](const void *ctx, size_t a, size_t b) -> int {
            const auto &g = *static_cast<const std::vector<std::array<int, 3>> *>(ctx);
            return g[a] == g[b];
        };
        std::vector<unsigned char> done(grid.size(), 0);
        std::vector<size_t> members(grid.size());
        for (size_t a = 0; a < grid.size(); a++) {
            if (done[a])
                continue;
            size_t k = eh_group_gather(grid.size(), a, done.data(), members.data(), same_grid, &grid);
            std::vector<const float *> ptrs;
            for (size_t j = 0; j < k; j++)
                ptrs.push_back(data[members[j]]);
            std::vector<at::Tensor> e;
            std::vector<std::vector<at::Tensor>> d(k, std::vector<at::Tensor>(c.n_deepstack));
            vision_forward(q, ptrs, grid[a][0], grid[a][1], grid[a][2], e, d);
            for (size_t j = 0; j < k; j++) {
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
    int hd = c.head_dim;
    at::Tensor fr = rope_angles(at::from_blob(pos.data(), { 3, n, L }, lopt), c.rope_theta, hd);   // [3, n, L, hd/2]
    at::Tensor f = fr[0].clone();
    for (int d = 1; d <= 2; d++) {
        int64_t len = std::min<int64_t>((int64_t)c.mrope_section[d] * 3, hd / 2);
        for (int64_t k = d; k < len; k += 3)
            f.select(-1, k).copy_(fr[d].select(-1, k));
    }
    f = rope_full(f).to(dev);
    at::Tensor cosv = f.cos().to(dt).unsqueeze(1), sinv = f.sin().to(dt).unsqueeze(1);   // [n,1,L,hd]

    if (cache) {
        // several items: right-padded keys, each item's next position in next_pos
        TORCH_CHECK(n == 1 || next_pos, "a cached prefill takes one item");
        cache->k.assign(c.num_layers, at::Tensor());
        cache->v.assign(c.num_layers, at::Tensor());
        cache->next_pos = *std::max_element(pos.begin(), pos.begin() + 3 * L) + 1;
        if (next_pos) {
            next_pos->assign(n, 0);
            for (int i = 0; i < n; i++)
                for (int a = 0; a < 3; a++)
                    for (int64_t j = 0; j < items[i].n_ids; j++)
                        (*next_pos)[i] = std::max((*next_pos)[i], pos[(size_t)a * n * L + (size_t)i * L + j] + 1);
        }
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
    // the three axes share the position, so the interleave is the identity
    at::Tensor f = rope_angles(at::full({ 1, 1 }, (double)cache.next_pos, at::kFloat), c.rope_theta, c.head_dim);
    f = rope_full(f).to(dev);
    at::Tensor cosv = f.cos().to(dt).unsqueeze(1), sinv = f.sin().to(dt).unsqueeze(1);
    h = run_layers(q, h, cosv, sinv, at::Tensor(), {}, &cache, false);
    cache.next_pos++;
    h = rms_norm(h, qw(q, "model.language_model.norm.weight"), c.rms_norm_eps);
    std::string head = q->w.count("lm_head.weight") ? "lm_head.weight" : "model.language_model.embed_tokens.weight";
    return at::linear(h[0][0], qw(q, head)).to(at::kFloat);
}

// A required weight with its expected shape.
void want(eh_qwen3vl *q, const std::string &name, at::IntArrayRef shape)
{
    checked_weight(q->w, name, shape);
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
        c.num_position_embeddings < 1 ||
        (c.num_experts > 0 && (c.experts_per_tok < 1 || c.experts_per_tok > c.num_experts)))
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
                return fail(err, EH_EFORMAT, "%s: tensor '%s' has a dtype (%d) the native judge cannot use", t->file,
                            t->name, (int)t->dtype);
            planned_weight s{ name, t, at::isFloatingType(*sd) ? m->dtype : *sd,
                              std::vector<int64_t>(t->shape, t->shape + t->ndim), stored_as::as_is };
            // Hub checkpoints of the MoE models store the experts as
            // [E, in, out]; transformers transposes them at load when
            // the shape is not its own [E, out, in] (Transpose(1, 2,
            // check_dims=True) in conversion_mapping.py), and so do we.
            bool gate_up = ends_with(name, ".mlp.experts.gate_up_proj");
            if ((gate_up || ends_with(name, ".mlp.experts.down_proj")) && t->ndim == 3) {
                std::vector<int64_t> ours =
                    gate_up ? std::vector<int64_t>{ c.num_experts, 2LL * c.moe_intermediate_size, c.hidden_size }
                            : std::vector<int64_t>{ c.num_experts, c.hidden_size, c.moe_intermediate_size };
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
        device_scope scope(q->tm);
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

// tree rows per step: each row copies its prompt's keys and values (a
// 2k-token prompt of an 8B model: ~8 MB a row and layer in bfloat16)
#define TREE_ROW_CHUNK 64

eh_status eh_qwen3vl_score_tree(eh_qwen3vl *q, const eh_qwen3vl_item *items, int n, const int32_t *token,
                                const int32_t *parent, int n_nodes, const int32_t *cont, int n_cont, double *logp,
                                double *log_end, eh_error *err)
{
    if (!q->tm->on_device)
        return fail(err, EH_ESTATE, "model is not loaded");
    if (n < 1)
        return EH_OK;
    if (n_nodes < 1 || n_nodes > 4096 || parent[0] != -1)
        return fail(err, EH_EINVAL, "score tree: %d nodes, root's parent %d", n_nodes, n_nodes > 0 ? parent[0] : 0);
    std::vector<int> depth(n_nodes, 0);
    int D = 0;
    for (int v = 1; v < n_nodes; v++) {
        if (parent[v] < 0 || parent[v] >= v || token[v] < 0 || token[v] >= q->cfg.vocab_size)
            return fail(err, EH_EINVAL, "score tree: node %d (parent %d, token %d) is malformed", v, parent[v],
                        token[v]);
        depth[v] = depth[parent[v]] + 1;
        D = std::max(D, depth[v]);
    }
    for (int j = 0; j < n_cont; j++)
        if (cont[j] < 0 || cont[j] >= q->cfg.vocab_size)
            return fail(err, EH_EINVAL, "score tree: continuing token %d is outside the vocabulary", cont[j]);
    return guarded(err, EH_EMODEL, "forward", [&]() -> eh_status {
        device_scope scope(q->tm);
        const eh_qwen3vl_config &c = q->cfg;
        at::Device dev = q->tm->device;
        at::ScalarType dt = q->tm->dtype;
        at::TensorOptions lopt = at::TensorOptions().dtype(at::kLong);
        kv_cache cache;
        std::vector<int64_t> next;
        at::Tensor all = qwen_forward(q, items, n, &cache, &next);   // [n, vocab]: the roots
        // one step over every node of every item: row r = i*(n_nodes-1) + v-1
        // holds v's path, right-padded to D, after item i's cached prompt
        int64_t per = n_nodes - 1, R = (int64_t)n * per, L = cache.k[0].size(2);
        if (R > 0) {
            std::vector<int64_t> ids((size_t)(R * D), 0), pos((size_t)(R * D), 0), rows((size_t)R), last((size_t)R);
            std::vector<uint8_t> mask((size_t)(R * D * (L + D)), 0);
            for (int i = 0; i < n; i++)
                for (int v = 1; v < n_nodes; v++) {
                    int64_t r = i * per + v - 1;
                    for (int u = v; u > 0; u = parent[u])
                        ids[(size_t)(r * D + depth[u] - 1)] = token[u];
                    for (int t = 0; t < D; t++) {
                        pos[(size_t)(r * D + t)] = next[i] + t;
                        uint8_t *m = &mask[(size_t)((r * D + t) * (L + D))];
                        for (int64_t j = 0; j < items[i].n_ids; j++)
                            m[j] = 1;
                        for (int u = 0; u <= t; u++)
                            m[L + u] = 1;
                    }
                    rows[(size_t)r] = i;
                    last[(size_t)r] = depth[v] - 1;
                }
            // in chunks of rows: each reads a copy of its prompt's keys and values
            std::vector<at::Tensor> parts{ all };
            std::string head =
                q->w.count("lm_head.weight") ? "lm_head.weight" : "model.language_model.embed_tokens.weight";
            for (int64_t r0 = 0; r0 < R; r0 += TREE_ROW_CHUNK) {
                int64_t rc = std::min<int64_t>(TREE_ROW_CHUNK, R - r0);
                at::Tensor tid = at::from_blob(ids.data() + r0 * D, { rc, D }, lopt).to(dev);
                at::Tensor h = at::embedding(qw(q, "model.language_model.embed_tokens.weight"), tid);
                // text positions: the three rotary axes agree, the interleave is the identity
                at::Tensor f = rope_angles(at::from_blob(pos.data() + r0 * D, { rc, D }, lopt).to(at::kFloat),
                                           c.rope_theta, c.head_dim);
                f = rope_full(f).to(dev);
                at::Tensor cosv = f.cos().to(dt).unsqueeze(1), sinv = f.sin().to(dt).unsqueeze(1);
                branch_rows br{ at::from_blob(rows.data() + r0, { rc }, lopt).to(dev),
                                at::from_blob(mask.data() + r0 * D * (L + D), { rc, 1, D, L + D },
                                              at::TensorOptions().dtype(at::kBool))
                                    .to(dev) };
                h = run_layers(q, h, cosv, sinv, at::Tensor(), {}, &cache, false, &br);
                h = rms_norm(h, qw(q, "model.language_model.norm.weight"), c.rms_norm_eps);
                at::Tensor li = at::from_blob(last.data() + r0, { rc }, lopt).to(dev);
                at::Tensor hl = h.index({ at::arange(rc, lopt.device(dev)), li });
                parts.push_back(at::linear(hl, qw(q, head)).to(at::kFloat));
            }
            all = at::cat(parts, 0);   // [n + R, vocab]
        }
        // distribution of row x: all[x] - lse[x]; the end mass leaves out cont
        at::Tensor lse = at::logsumexp(all, -1);
        at::Tensor ends = all;
        if (n_cont > 0) {
            std::vector<int64_t> cv(cont, cont + n_cont);
            ends = all.index_fill(1, at::from_blob(cv.data(), { n_cont }, lopt).to(dev), -INFINITY);
        }
        at::Tensor lend = (at::logsumexp(ends, -1) - lse).to(at::kDouble).to(at::kCPU).contiguous();
        std::vector<int64_t> prow((size_t)std::max<int64_t>(R, 1)), ptok((size_t)std::max<int64_t>(R, 1));
        auto row_of = [&](int i, int v) -> int64_t { return v == 0 ? i : n + i * per + v - 1; };
        for (int i = 0; i < n; i++)
            for (int v = 1; v < n_nodes; v++) {
                prow[(size_t)(i * per + v - 1)] = row_of(i, parent[v]);
                ptok[(size_t)(i * per + v - 1)] = token[v];
            }
        at::Tensor lp;
        if (R > 0) {
            at::Tensor pr = at::from_blob(prow.data(), { R }, lopt).to(dev),
                       pt = at::from_blob(ptok.data(), { R }, lopt).to(dev);
            lp = (all.index({ pr, pt }) - lse.index({ pr })).to(at::kDouble).to(at::kCPU).contiguous();
        }
        const double *le = lend.data_ptr<double>();
        for (int i = 0; i < n; i++)
            for (int v = 0; v < n_nodes; v++) {
                log_end[(size_t)i * n_nodes + v] = le[row_of(i, v)];
                logp[(size_t)i * n_nodes + v] = v == 0 ? 0.0 : lp.data_ptr<double>()[i * per + v - 1];
            }
        return EH_OK;
    });
}

eh_status eh_qwen3vl_generate(eh_qwen3vl *q, const eh_qwen3vl_item *item, int max_new, const int32_t *stop, int n_stop,
                              int32_t *out, int *n_out, eh_error *err)
{
    *n_out = 0;
    if (!q->tm->on_device)
        return fail(err, EH_ESTATE, "model is not loaded");
    if (max_new < 1)
        return EH_OK;
    return guarded(err, EH_EMODEL, "generate", [&]() -> eh_status {
        device_scope scope(q->tm);
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
