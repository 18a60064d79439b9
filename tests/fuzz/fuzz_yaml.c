/* fuzz_yaml.c — libFuzzer harness for the YAML config loader: eh_yaml_parse
 * (libyaml events into an eh_node tree, YAML 1.2 core schema, anchors and
 * aliases) followed by eh_config_validate (known top-level sections).
 *
 * README fragment: configs come from other people, so the loader must
 * refuse deep nesting (limits.max_yaml_depth), alias bombs
 * (limits.max_yaml_nodes) and unknown tags, with a message, and never crash
 * or run away.  The node limit is lowered to 100000 here so that a billion
 * laughs is refused quickly.  Seeds: tests/fuzz/corpus/yaml/.
 *
 *   build-fuzz/fuzz_yaml tests/fuzz/corpus/yaml -max_total_time=600 */
#include "evalhost/config.h"
#include "evalhost/node.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    eh_config_limits lim = eh_config_default_limits();
    lim.max_nodes = 100000;
    /* a stale error from an earlier call, as a caller reusing its eh_error has:
     * it must not turn an empty document into a failure without a message */
    eh_error err = { .code = EH_EIO, .msg = "" };
    eh_node *root = eh_yaml_parse((const char *)data, size, "fuzz.yaml", &lim, &err);
    if (!root) {
        if (!err.msg[0]) abort();
        return 0;
    }
    if (eh_config_validate(root, "fuzz.yaml", &err) != EH_OK && !err.msg[0]) abort();
    eh_node_free(root);
    return 0;
}
