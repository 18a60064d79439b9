/* test_native_config.c — the native models' config loaders refuse what the
 * forwards do not implement, by name and value (no libtorch needed): an
 * unknown key, an activation other than the one written, a boolean that
 * is not true or false, a rope layout the forward does not build. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "evalhost/native_config.h"

static char path[] = "/tmp/eh_native_cfg_XXXXXX";

static void put(const char *json)
{
    FILE *f = fopen(path, "w");
    fputs(json, f);
    fclose(f);
}

/* json written to the test's config file must be refused with want. */
static void refused(eh_status (*load)(const char *, eh_qwen3vl_config *, eh_error *), const char *json,
                    const char *want)
{
    eh_qwen3vl_config c;
    eh_error err = { 0 };
    put(json);
    CHECK_EQ_INT(load(path, &c, &err), EH_EFORMAT);
    CHECK_CONTAINS(err.msg, want);
}

static void qwen3vl_case(const char *json, const char *want)
{
    refused(eh_qwen3vl_config_load, json, want);
}

static void te_case(const char *json, const char *want)
{
    refused(eh_qwenimage_te_config_load, json, want);
}

int main(void)
{
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return check_summary("test_native_config");
    close(fd);
    eh_qwen3vl_config c;
    eh_error err = { 0 };
    /* the fixtures, real exports, load */
    CHECK_EQ_INT(eh_qwen3vl_config_load("tests/data/qwen3vl/dense/config.json", &c, &err), EH_OK);
    CHECK_EQ_INT(eh_qwen3vl_config_load("tests/data/qwen3vl/moe/config.json", &c, &err), EH_OK);
    CHECK(c.num_experts > 0);
    CHECK_EQ_INT(eh_qwenimage_te_config_load("tests/data/qwenimage/text_encoder/config.json", &c, &err), EH_OK);

#define Q3(text, vision) "{\"model_type\": \"qwen3_vl\", \"text_config\": {" text "}, \"vision_config\": {" vision "}}"
    qwen3vl_case(Q3("\"hidden_act\": \"gelu\"", ""), "text_config.hidden_act = \"gelu\" is not implemented (silu)");
    qwen3vl_case(Q3("", "\"hidden_act\": \"quick_gelu\""),
                 "vision_config.hidden_act = \"quick_gelu\" is not implemented (gelu_pytorch_tanh)");
    qwen3vl_case(Q3("\"sliding_window\": 4096", ""), "text_config.sliding_window = 4096 is not implemented here");
    qwen3vl_case(Q3("\"attention_bias\": true", ""), "attention_bias = true is not implemented");
    qwen3vl_case(Q3("\"attention_bias\": \"no\"", ""), "attention_bias = \"no\" is not a boolean");
    qwen3vl_case(Q3("\"rope_parameters\": {\"rope_type\": \"yarn\"}", ""),
                 "rope_parameters.rope_type = \"yarn\" is not implemented");
    qwen3vl_case(Q3("\"rope_parameters\": {\"mrope_interleaved\": false}", ""), "mrope_interleaved = false");
    /* MoE keys only in an MoE model */
    qwen3vl_case(Q3("\"num_experts\": 8", ""), "text_config.num_experts = 8 is not implemented here");
    qwen3vl_case("{\"model_type\": \"qwen3_vl_moe\", \"text_config\": {\"norm_topk_prob\": false}, "
                 "\"vision_config\": {}}",
                 "norm_topk_prob = false is not implemented");
    qwen3vl_case("{\"model_type\": \"qwen3_vl\", \"tie_word_embeddings\": \"yes\", \"text_config\": {}, "
                 "\"vision_config\": {}}",
                 "tie_word_embeddings = \"yes\" is not a boolean");
    qwen3vl_case("{\"model_type\": \"qwen3_vl\", \"quantization_config\": {\"bits\": 4}, \"text_config\": {}, "
                 "\"vision_config\": {}}",
                 "quantization_config = {\"bits\":4} is not implemented here");

    te_case("{\"model_type\": \"qwen2_5_vl\", \"text_config\": {\"hidden_act\": \"gelu\"}}",
            "text_config.hidden_act = \"gelu\" is not implemented (silu)");
    te_case("{\"model_type\": \"qwen2_5_vl\", \"hidden_act\": \"relu\"}", "hidden_act = \"relu\" is not implemented");
    te_case("{\"model_type\": \"qwen2_5_vl\", \"use_sliding_window\": true}", "use_sliding_window = true");
    te_case("{\"model_type\": \"qwen2_5_vl\", \"layer_types\": [\"sliding_attention\"]}",
            "layer_types holds sliding_attention");
    te_case("{\"model_type\": \"qwen2_5_vl\", \"vision_config\": {\"hidden_act\": \"gelu\"}}",
            "vision_config.hidden_act = \"gelu\" is not implemented (silu)");

    eh_flowmatch_config fc;
    put("{\"_class_name\": \"FlowMatchEulerDiscreteScheduler\", \"use_dynamic_shifting\": \"true\"}");
    CHECK_EQ_INT(eh_flowmatch_config_load(path, &fc, &err), EH_EFORMAT);
    CHECK_CONTAINS(err.msg, "use_dynamic_shifting = \"true\" is not a boolean");
    put("{\"_class_name\": \"FlowMatchEulerDiscreteScheduler\", \"use_flow_sigmas\": true}");
    CHECK_EQ_INT(eh_flowmatch_config_load(path, &fc, &err), EH_EFORMAT);
    CHECK_CONTAINS(err.msg, "use_flow_sigmas = true is not implemented here");
    unlink(path);
    return check_summary("test_native_config");
}
