/* journal.h — the crash-safe results journal of one output folder.
 *
 * <dir>/journal.jsonl is JSON Lines: a header line {"type":"header",
 * "run_key":...} and then one line per finished step.  Each line goes out
 * with one write() and one fsync(), so after a crash only the last line can
 * be torn; replay ignores it and truncates it away before appending.
 *
 * <dir>/.lock holds "pid hostname": an flock()ed file, so a second process
 * on this host gets a clear error and a dead holder's lock is taken over (its
 * flock went with it).  A lock naming another host is never taken over.
 *
 * The journal knows nothing of steps or stages: it stores lines (JSON
 * objects); the Lua binding gives them their shape. */
#ifndef EVALHOST_JOURNAL_H
#define EVALHOST_JOURNAL_H

#include <stddef.h>

#include "evalhost/error.h"
#include "evalhost/host.h"

#define EH_JOURNAL_FILE "journal.jsonl"
#define EH_JOURNAL_LOCK ".lock"

typedef struct eh_journal eh_journal;

/* Called for what the caller should show but that does not stop the run:
 * a torn line dropped, a stale lock taken over, leftover temp files removed. */
typedef void (*eh_journal_warn_fn)(void *ud, const char *msg);

typedef struct eh_journal_params {
    const char *run_key;        /* identifies the run; required unless read_only */
    const char *header_json;    /* JSON object merged into a new header line; NULL: {} */
    eh_resume_mode resume;      /* NO: dir must be missing or empty; YES: replay if run_key matches;
                                 * FORCE: replay whatever the run key; default NO */
    int read_only;              /* 1: replay only, no lock, no writes (merge); default 0 */
    const char *hostname;       /* for the lock; NULL: gethostname() */
    eh_journal_warn_fn warn;    /* NULL: warnings are dropped */
    void *warn_ud;
} eh_journal_params;

eh_journal_params eh_journal_default_params(void);

/* Opens (creating dir if needed) the journal of dir.  Errors (NULL):
 *   EH_ESTATE  dir not empty without --resume; lock held; run key differs
 *              (err says both keys; eh_journal_read_header gives the old header)
 *   EH_EFORMAT a damaged line that is not the last one
 *   EH_EIO     the file system refused (read-only folder, disk full, ...) */
eh_journal *eh_journal_open(const char *dir, const eh_journal_params *params, eh_error *err);

/* 1 when the folder held no journal and this open started one. */
int eh_journal_is_new(const eh_journal *j);
/* The header line (the old one when resuming), NUL-terminated JSON. */
const char *eh_journal_header(const eh_journal *j);
/* Replayed step lines (header excluded), in file order; owned by j. */
size_t eh_journal_count(const eh_journal *j);
const char *eh_journal_line(const eh_journal *j, size_t i);
/* Line i's number in the file (1-based: the header is line 1), for messages. */
size_t eh_journal_line_no(const eh_journal *j, size_t i);
/* The byte offset in the file where line i starts: a reader that keeps
 * offsets instead of records (flat memory on resume) reads it back there. */
size_t eh_journal_line_offset(const eh_journal *j, size_t i);
const char *eh_journal_path(const eh_journal *j);

/* Appends one line (a JSON object, no newline) with a single write() and an
 * fsync().  On failure the file is cut back to its previous length, so the
 * journal stays replayable (EH_EIO names the file and errno's text). */
eh_status eh_journal_append(eh_journal *j, const char *json, size_t len, eh_error *err);

/* Releases the lock (removes .lock) and frees j; NULL is a no-op. */
void eh_journal_free(eh_journal *j);

/* The header of dir's journal without opening it (no lock): a malloc'd
 * string in *out, or *out = NULL when there is no journal or no header. */
eh_status eh_journal_read_header(const char *dir, char **out, eh_error *err);

#endif
