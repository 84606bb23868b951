/* log_handler: route aura's diagnostics into the application's own logger.
 *
 *   log_handler
 *
 * Installs a handler, emits a message through aura_log_emit, and provokes one of the library's
 * own warnings (freeing a pointer the pool never handed out). Prints what the handler got.
 */
#define _GNU_SOURCE
#include <aura.h>

#include <stdio.h>
#include <string.h>

struct log_sink {
    int count;
    int warnings;
    char last[256];
};

static const char *level_name(int level) {
    switch (level) {
    case AURA_LOG_ERR: return "error";
    case AURA_LOG_WARN: return "warning";
    case AURA_LOG_NOTICE: return "notice";
    case AURA_LOG_INFO: return "info";
    case AURA_LOG_DEBUG: return "debug";
    default: return "?";
    }
}

/* May run on any thread (the engine's own threads too); here everything is single-threaded. */
static void my_logger(int level, const char *msg, void *userdata) {
    struct log_sink *sink = userdata;
    sink->count++;
    if (level == AURA_LOG_WARN) sink->warnings++;
    snprintf(sink->last, sizeof sink->last, "%s", msg);
    printf("[aura %s] %s\n", level_name(level), msg);
}

int main(void) {
    struct log_sink sink;
    memset(&sink, 0, sizeof sink);
    aura_set_log_handler(my_logger, &sink);

    aura_log_emit(AURA_LOG_NOTICE, "application started, aura %s", aura_version());

    aura_engine_t *engine = aura_create();
    if (!engine) return 1;
    static char not_from_pool[64];
    aura_buffer_free(engine, not_from_pool); /* refused, with a warning */
    aura_destroy(engine);

    aura_set_log_handler(NULL, NULL); /* back to silence */
    aura_log_emit(AURA_LOG_ERR, "not delivered");

    printf("handler got %d messages, %d warnings\n", sink.count, sink.warnings);
    return sink.count >= 2 && sink.warnings >= 1 ? 0 : 1;
}
