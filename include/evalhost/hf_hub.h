/* hf_hub.h — finding a Hugging Face model on this machine, never
 * downloading it: an id ("Qwen/Qwen3-VL-8B-Instruct") resolves through the
 * local hub cache, a `path` is taken as the model directory.
 *
 * Caches tried in order: $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub
 * (each only when its variable is set).  In a cache the model is
 * models--Org--Name/, the revision refs/<rev> holds a commit hash, and the
 * files are in snapshots/<hash>/.
 *
 *   eh_hf_snapshot s;
 *   if (eh_hf_resolve("Qwen/Qwen3-VL-8B-Instruct", NULL, NULL, &s, &err) == EH_OK)
 *       open(s.dir + "/config.json"), pin(s.revision);
 */
#ifndef EVALHOST_HF_HUB_H
#define EVALHOST_HF_HUB_H

#include <stddef.h>

#include "evalhost/error.h"

typedef struct eh_hf_snapshot {
    char dir[4096];        /* the directory holding config.json, safetensors, ... */
    char revision[96];     /* the snapshot's commit hash; "local" for a path outside a cache */
    char cache[4096];      /* the cache it came from; "" for a path */
} eh_hf_snapshot;

/* id: "Org/Name" (letters, digits, '.', '_', '-'); path: a local model
 * directory, which wins when given (id may then be NULL).  revision: a ref
 * name (default "main") or a commit hash.  The snapshot must hold a
 * config.json.  EH_EIO when the model is not on this machine, with every
 * path tried and the `huggingface-cli download` command that fetches it;
 * EH_EINVAL for a malformed id or revision. */
eh_status eh_hf_resolve(const char *id, const char *path, const char *revision, eh_hf_snapshot *out, eh_error *err);
/* Same, with another file marking a complete snapshot (a diffusers
 * pipeline's root holds model_index.json, not config.json). */
eh_status eh_hf_resolve_file(const char *id, const char *path, const char *revision, const char *marker,
                             eh_hf_snapshot *out, eh_error *err);

#endif
