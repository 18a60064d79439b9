/* model_yaml.h — a model opened from a YAML spec written in the test, as a
 * config section would open it (the section name gives the role). */
#ifndef EVALHOST_TEST_MODEL_YAML_H
#define EVALHOST_TEST_MODEL_YAML_H

#include <string.h>

#include "evalhost/config.h"
#include "evalhost/model.h"

/* NULL with err set when the spec does not parse or the model is refused. */
static inline eh_model *open_yaml(eh_host *h, const char *section, const char *yaml, eh_error *err)
{
    eh_node *s = eh_yaml_parse(yaml, strlen(yaml), section, NULL, err);
    eh_model *m = s ? eh_model_open(h, section, s, err) : NULL;
    eh_node_free(s);
    return m;
}

#endif
