/* The variadic half of aura's logging: stable Rust cannot define a C-variadic function, so
 * aura_log_emit formats here (256 bytes, NUL included) and hands the finished message to the
 * sink the Rust side installs with its first aura_set_log_handler call. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

#include "aura.h"

typedef void (*aura__log_sink_fn)(int level, const char *msg);

/* NULL until a handler was ever installed: aura_log_emit then skips the formatting. */
static _Atomic(aura__log_sink_fn) aura__log_sink;

/* Called from Rust (src/log.rs); hidden: not part of the shared library's interface. */
__attribute__((visibility("hidden"))) void aura__log_set_sink(aura__log_sink_fn sink) {
    atomic_store_explicit(&aura__log_sink, sink, memory_order_release);
}

AURA_API void aura_log_emit(int level, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    aura__log_sink_fn sink = atomic_load_explicit(&aura__log_sink, memory_order_acquire);
    if (fmt == NULL || sink == NULL) {
        return;
    }
    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sink(level, msg);
}
