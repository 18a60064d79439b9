/* json_file.h — reading a small JSON object file (model configs:
 * config.json, preprocessor_config.json, scheduler configs). */
#ifndef EVALHOST_JSON_FILE_H
#define EVALHOST_JSON_FILE_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "evalhost/error.h"

/* The most bytes a model's config file may hold (the largest released one,
 * Qwen3-VL-235B's config.json, is under 8 KiB; tokenizer files are read
 * elsewhere): one limit for every config reader. */
#define EH_JSON_CONFIG_MAX_BYTES ((size_t)16 << 20)

/* The parsed object (caller frees with cJSON_Delete), or NULL with err:
 * "<path>: cannot open (...)", "<path>: unreadable or over N MiB",
 * "<path>: not a JSON object". */
cJSON *eh_json_read_object(const char *path, size_t max_bytes, eh_error *err);

#endif
