/* linked_write: a durable write as one chain — write, then fsync, then read back — with
 * aura_request_set_linked, so each step starts only after the previous one succeeded.
 *
 *   linked_write FILE      (created or truncated)
 *
 * Linking needs an engine with AURA_SELECT_THREAD_LOCAL. If a step fails, the steps after it
 * complete with -ECANCELED instead of running.
 */
#define _GNU_SOURCE
#include <aura.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct step {
    const char *name;
    ssize_t result;
    int done;
};

static void on_step(aura_request_t *req, ssize_t result, void *ud) {
    (void)req;
    struct step *s = ud;
    s->result = result;
    s->done = 1;
    printf("%s: %zd%s%s\n", s->name, result, result < 0 ? " " : "",
           result < 0 ? strerror((int)-result) : "");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE\n", argv[0]);
        return 2;
    }
    int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    aura_options_t opts;
    aura_options_init(&opts);
    opts.ring_select = AURA_SELECT_THREAD_LOCAL;
    aura_engine_t *engine = aura_create_with_options(&opts);
    if (!engine) {
        perror("aura_create_with_options");
        return 1;
    }
    static char out[4096], back[4096];
    for (size_t i = 0; i < sizeof out; i++) out[i] = (char)('a' + i % 26);
    struct step w = {"write", 0, 0}, s = {"fsync", 0, 0}, r = {"read back", 0, 0};

    aura_request_t *req = aura_write(engine, fd, aura_buf(out), sizeof out, 0, AURA_NO_FLAGS,
                                     on_step, &w);
    if (!req || aura_request_set_linked(req) != 0) goto fail;
    req = aura_fsync(engine, fd, AURA_FSYNC_DEFAULT, AURA_NO_FLAGS, on_step, &s);
    if (!req || aura_request_set_linked(req) != 0) goto fail;
    req = aura_read(engine, fd, aura_buf(back), sizeof back, 0, AURA_NO_FLAGS, on_step, &r);
    if (!req) goto fail;
    /* The chain's last request ends it; drain waits for all three. */
    if (aura_drain(engine, 10000) < 0) goto fail;

    int ok = w.result == (ssize_t)sizeof out && s.result == 0 &&
             r.result == (ssize_t)sizeof back && memcmp(out, back, sizeof out) == 0;
    printf("%s\n", ok ? "chain complete: data on disk and identical" : "chain FAILED");
    aura_destroy(engine);
    close(fd);
    return ok ? 0 : 1;
fail:
    fprintf(stderr, "linked_write: %s\n", strerror(errno));
    aura_destroy(engine);
    close(fd);
    return 1;
}
