/* json_file.c — one reader for the JSON object files models ship. */
#include "evalhost/json_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cJSON *eh_json_read_object(const char *path, size_t max_bytes, eh_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        eh_fail(err, EH_EIO, "%s: cannot open (%s)", path, strerror(errno));
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (len < 0 || (size_t)len > max_bytes) {
        fclose(f);
        eh_fail(err, EH_EFORMAT, "%s: unreadable or over %zu MiB", path, max_bytes >> 20);
        return NULL;
    }
    char *buf = malloc((size_t)len + 1);
    size_t got = buf ? fread(buf, 1, (size_t)len, f) : 0;
    fclose(f);
    cJSON *root = buf ? cJSON_ParseWithLength(buf, got) : NULL;
    free(buf);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        eh_fail(err, EH_EFORMAT, "%s: not a JSON object", path);
        return NULL;
    }
    return root;
}
