/* tokenizer.h — Hugging Face `tokenizer.json` byte-level BPE (the Qwen2/2.5/3
 * and Qwen-VL family): added/special tokens, NFC, Split (PCRE2) and
 * ByteLevel pre-tokenizers, BPE with merge ranks, ByteLevel decoding.
 * Encoding gives the ids the `tokenizers` package gives.
 *
 * A tokenizer is not thread-safe (it owns a word cache and regex match
 * data); use one per thread. */
#ifndef EVALHOST_TOKENIZER_H
#define EVALHOST_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "evalhost/error.h"

typedef struct eh_tokenizer eh_tokenizer;

typedef struct eh_tokenizer_params {
    size_t max_input;        /* bytes of text per encode; default 1 MiB (limits.max_tokenizer_input) */
    size_t max_file;         /* bytes of tokenizer.json; default 256 MiB */
    size_t cache_words;      /* word cache entries, 0 disables; default 16384 */
} eh_tokenizer_params;

eh_tokenizer_params eh_tokenizer_default_params(void);

/* Loads a tokenizer.json; params may be NULL (defaults).  NULL on failure
 * with err set: EH_EIO (file), EH_EINVAL (bad JSON or inconsistent vocab),
 * EH_EFORMAT (a component we do not support, named in the message). */
eh_tokenizer *eh_tokenizer_load(const char *path, const eh_tokenizer_params *params, eh_error *err);
/* Same, from the JSON text in memory; `name` is used in messages. */
eh_tokenizer *eh_tokenizer_load_json(const char *json, size_t len, const char *name, const eh_tokenizer_params *params,
                                     eh_error *err);
void eh_tokenizer_free(eh_tokenizer *tok);              /* NULL is a no-op */

/* Encodes UTF-8 text.  add_special: apply the post-processor (the
 * template's special tokens); special tokens written in the text are always
 * recognised, as `tokenizers` does.  On success *ids is malloc'd (caller
 * frees; may be NULL when *n is 0).  EH_EINVAL for invalid UTF-8,
 * EH_ELIMIT past params.max_input. */
eh_status eh_tokenizer_encode(eh_tokenizer *tok, const char *text, size_t len, int add_special, int32_t **ids,
                              size_t *n, eh_error *err);

/* Decodes ids to UTF-8 (invalid byte sequences become U+FFFD, as
 * `tokenizers` does).  skip_special drops special added tokens.  *text is
 * malloc'd and NUL-terminated.  EH_EINVAL names an unknown id. */
eh_status eh_tokenizer_decode(const eh_tokenizer *tok, const int32_t *ids, size_t n, int skip_special, char **text,
                              size_t *len, eh_error *err);

/* Id of a token string (vocab or added token), or -1. */
int32_t eh_tokenizer_token_to_id(const eh_tokenizer *tok, const char *s, size_t len);
/* Token string of an id (NUL-terminated, owned by tok), or NULL. */
const char *eh_tokenizer_id_to_token(const eh_tokenizer *tok, int32_t id);
/* One past the largest id (vocab and added tokens). */
int32_t eh_tokenizer_vocab_size(const eh_tokenizer *tok);

#endif
