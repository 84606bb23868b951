/* simple_read: read the first 4 KiB of a file through aura and print them.
 *
 *   simple_read [FILE]      (default /etc/hostname)
 *
 * One engine, one buffer from the engine's pool, one aura_read, aura_wait until the callback ran.
 */
#define _GNU_SOURCE
#include <aura.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct read_ctx {
    int done;
    ssize_t result;
};

static void on_read(aura_request_t *req, ssize_t result, void *user_data) {
    struct read_ctx *ctx = user_data;
    (void)req;
    ctx->result = result;
    ctx->done = 1;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "/etc/hostname";
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        fprintf(stderr, "open %s: %s\n", path, strerror(errno));
        return 1;
    }
    aura_engine_t *engine = aura_create();
    if (!engine) {
        fprintf(stderr, "aura_create: %s\n", strerror(errno));
        close(fd);
        return 1;
    }
    char *buf = aura_buffer_alloc(engine, 4096);
    if (!buf) {
        fprintf(stderr, "aura_buffer_alloc: %s\n", strerror(errno));
        aura_destroy(engine);
        close(fd);
        return 1;
    }

    struct read_ctx ctx = {0, 0};
    /* 4095: keep room for a terminating NUL. */
    if (!aura_read(engine, fd, aura_buf(buf), 4095, 0, on_read, &ctx)) {
        fprintf(stderr, "aura_read: %s\n", strerror(errno));
        return 1;
    }
    while (!ctx.done) {
        if (aura_wait(engine, 1000) < 0 && errno != ETIMEDOUT) {
            fprintf(stderr, "aura_wait: %s\n", strerror(errno));
            return 1;
        }
    }
    int status = 0;
    if (ctx.result < 0) {
        fprintf(stderr, "read %s: %s\n", path, strerror((int)-ctx.result));
        status = 1;
    } else {
        buf[ctx.result] = '\0';
        printf("read %zd bytes from %s\n", ctx.result, path);
        fputs(buf, stdout);
    }
    aura_buffer_free(engine, buf);
    aura_destroy(engine);
    close(fd);
    return status;
}
