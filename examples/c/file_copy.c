/* file_copy: copy a file with reads and writes chained through callbacks.
 *
 *   file_copy SRC DST
 *
 * Four pipelines each own a 256 KiB buffer: read a chunk, write it at the same offset from the
 * read's callback, then read the next free chunk from the write's callback. An fsync of DST
 * ends the copy.
 */
#define _GNU_SOURCE
#include <aura.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (256 * 1024)
#define PIPES 4

struct pipe_state {
    void *buf;
    off_t off;
    size_t len;
};

static aura_engine_t *engine;
static int src_fd, dst_fd;
static off_t src_size, next_off;
static int active;
static int failure; /* first errno */
static long long copied;

static void on_read(aura_request_t *req, ssize_t result, void *ud);

static void fail(int err) {
    if (!failure) failure = err;
}

/* Starts the next chunk on `p`, or retires the pipeline when the file is done. */
static void start_next(struct pipe_state *p) {
    if (failure || next_off >= src_size) {
        active--;
        return;
    }
    p->off = next_off;
    p->len = (size_t)(src_size - next_off < CHUNK ? src_size - next_off : CHUNK);
    next_off += (off_t)p->len;
    if (!aura_read(engine, src_fd, aura_buf(p->buf), p->len, p->off, on_read, p)) {
        fail(errno);
        active--;
    }
}

static void on_write(aura_request_t *req, ssize_t result, void *ud) {
    struct pipe_state *p = ud;
    (void)req;
    if (result < 0) fail((int)-result);
    else if ((size_t)result != p->len) fail(EIO); /* short write: not expected on a file */
    else copied += result;
    start_next(p);
}

static void on_read(aura_request_t *req, ssize_t result, void *ud) {
    struct pipe_state *p = ud;
    (void)req;
    if (result < 0 || (size_t)result != p->len) {
        fail(result < 0 ? (int)-result : EIO);
        active--;
        return;
    }
    if (!aura_write(engine, dst_fd, aura_buf(p->buf), p->len, p->off, on_write, p)) {
        fail(errno);
        active--;
    }
}

static void on_fsync(aura_request_t *req, ssize_t result, void *ud) {
    (void)req;
    *(ssize_t *)ud = result;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s SRC DST\n", argv[0]);
        return 2;
    }
    src_fd = open(argv[1], O_RDONLY);
    if (src_fd < 0) {
        fprintf(stderr, "open %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    struct stat st;
    if (fstat(src_fd, &st) != 0) return 1;
    src_size = st.st_size;
    dst_fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (dst_fd < 0) {
        fprintf(stderr, "open %s: %s\n", argv[2], strerror(errno));
        return 1;
    }
    engine = aura_create();
    if (!engine) {
        fprintf(stderr, "aura_create: %s\n", strerror(errno));
        return 1;
    }
    struct pipe_state pipes[PIPES];
    for (int i = 0; i < PIPES; i++) {
        pipes[i].buf = aura_buffer_alloc(engine, CHUNK);
        if (!pipes[i].buf) return 1;
    }
    active = PIPES;
    for (int i = 0; i < PIPES; i++) start_next(&pipes[i]);
    while (active > 0) {
        if (aura_wait(engine, 1000) < 0 && errno != ETIMEDOUT) {
            fail(errno);
            break;
        }
    }
    /* Whatever is still in flight after an error completes here. */
    if (aura_drain(engine, -1) < 0) fail(errno);

    ssize_t sync_result = 1;
    if (!failure) {
        if (!aura_fsync(engine, dst_fd, AURA_FSYNC_DEFAULT, AURA_NO_FLAGS, on_fsync,
                        &sync_result)) {
            fail(errno);
        } else {
            while (sync_result == 1)
                if (aura_wait(engine, 1000) < 0 && errno != ETIMEDOUT) break;
            if (sync_result < 0) fail((int)-sync_result);
        }
    }
    for (int i = 0; i < PIPES; i++) aura_buffer_free(engine, pipes[i].buf);
    aura_destroy(engine);
    close(src_fd);
    close(dst_fd);
    if (failure) {
        fprintf(stderr, "copy failed: %s\n", strerror(failure));
        return 1;
    }
    printf("copied %lld bytes\n", copied);
    return 0;
}
