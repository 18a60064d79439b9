// qwen3vl_decoder.h — the Qwen3-VL model's state and decoder layers, shared
// by the judge (qwen3vl.cpp, which defines them) and the editor's Qwen2.5-VL
// text encoder (qwen25vl_text_encoder.cpp), which runs as a Qwen3-VL with
// the MoE and deepstack paths off and q/k/v biases in place of the QK norm.
// Private to host/models/torch/.
#ifndef EVALHOST_TORCH_QWEN3VL_DECODER_H
#define EVALHOST_TORCH_QWEN3VL_DECODER_H

#include "evalhost/qwen3vl.h"
#include "ops.h"

struct eh_qwen3vl {
    eh_torch_module *tm = nullptr;
    eh_qwen3vl_config cfg;
    ehtorch::weight_map w;   // share their TensorImpls with tm->slots
};

namespace ehtorch
{

const at::Tensor &qw(eh_qwen3vl *q, const std::string &name);
at::Tensor qlinear(eh_qwen3vl *q, const at::Tensor &x, const std::string &p, bool bias = true);

// Per layer keys and values [1, kv_heads, T, head_dim] after the rotary,
// and the rotary position of the next token (text positions continue from
// the largest multimodal position).
struct kv_cache {
    std::vector<at::Tensor> k, v;
    int64_t next_pos = 0;
};

// Rows that continue cached prompts without extending the cache (the score
// tree's paths): row r attends to the cached keys of prompt rows[r] where
// mask [R, 1, Lnew, Lcache + Lnew] allows (its prompt's length, then causal
// over the row's own tokens).
struct branch_rows {
    at::Tensor rows, mask;
};

// The decoder layers over h [n, L, hidden] with the rotary table cosv/sinv
// [n or 1, 1, L, head_dim].  prefill: causal attention over h itself (and,
// with a cache, its keys/values kept per layer); otherwise one new token per
// item attending to the cache and itself.  deep[l] (prefill only) is added
// onto the rows vmask marks after layer l.
at::Tensor run_layers(eh_qwen3vl *q, at::Tensor h, const at::Tensor &cosv, const at::Tensor &sinv,
                      const at::Tensor &vmask, const std::vector<at::Tensor> &deep, kv_cache *cache, bool prefill,
                      const branch_rows *br = nullptr);

}  // namespace ehtorch

#endif
