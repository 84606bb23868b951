/* cancel: cancel a read that cannot complete by itself (from an empty pipe).
 *
 *   cancel
 *
 * The read's callback gets -ECANCELED; a second cancel of the same request (while its callback
 * runs) is refused with EALREADY.
 */
#define _GNU_SOURCE
#include <aura.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct ctx {
    aura_engine_t *engine;
    int done;
    ssize_t result;
    int second_cancel_errno;
};

static void on_read(aura_request_t *req, ssize_t result, void *ud) {
    struct ctx *c = ud;
    c->result = result;
    /* The request is complete: cancelling it again is refused. */
    c->second_cancel_errno = aura_cancel(c->engine, req) == 0 ? 0 : errno;
    c->done = 1;
}

int main(void) {
    int p[2];
    if (pipe(p) != 0) return 1;
    aura_engine_t *engine = aura_create();
    if (!engine) return 1;
    char buf[64];
    struct ctx c = {engine, 0, 0, 0};
    aura_request_t *req = aura_read(engine, p[0], aura_buf(buf), sizeof buf, 0, AURA_NO_FLAGS,
                                    on_read, &c);
    if (!req) {
        fprintf(stderr, "aura_read: %s\n", strerror(errno));
        return 1;
    }
    if (aura_flush(engine) != 0) return 1;
    /* Nothing is written to the pipe, so the read stays pending. */
    if (aura_wait(engine, 50) != -1 || errno != ETIMEDOUT || !aura_request_pending(req)) {
        fprintf(stderr, "the read should still be pending\n");
        return 1;
    }
    if (aura_cancel(engine, req) != 0) {
        fprintf(stderr, "aura_cancel: %s\n", strerror(errno));
        return 1;
    }
    while (!c.done)
        if (aura_wait(engine, 1000) < 0 && errno != ETIMEDOUT) return 1;
    if (c.result != -ECANCELED) {
        fprintf(stderr, "callback result %zd, expected -ECANCELED\n", c.result);
        return 1;
    }
    printf("read cancelled: callback result %zd (-ECANCELED)\n", c.result);
    printf("second cancel: %s\n", c.second_cancel_errno == EALREADY ? "EALREADY" : "unexpected");
    aura_destroy(engine);
    close(p[0]);
    close(p[1]);
    return c.second_cancel_errno == EALREADY ? 0 : 1;
}
