/* epoll_loop: drive aura from an epoll event loop through aura_get_poll_fd.
 *
 *   epoll_loop FILE
 *
 * Reads FILE in 4 KiB blocks, 16 at a time; the loop sleeps in epoll_wait on the engine's
 * eventfd next to the application's other fds (here: none) and calls aura_poll when it fires.
 */
#define _GNU_SOURCE
#include <aura.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOCK 4096
#define DEPTH 16

static aura_engine_t *engine;
static int fd;
static off_t file_size, next_off;
static long long bytes_read;
static int in_flight, failure;
static void *bufs[DEPTH];

static void on_read(aura_request_t *req, ssize_t result, void *ud);

static void submit(int slot) {
    if (failure || next_off >= file_size) return;
    if (!aura_read(engine, fd, aura_buf(bufs[slot]), BLOCK, next_off, AURA_NO_FLAGS, on_read,
                   &bufs[slot])) {
        failure = errno;
        return;
    }
    next_off += BLOCK;
    in_flight++;
}

static void on_read(aura_request_t *req, ssize_t result, void *ud) {
    (void)req;
    in_flight--;
    if (result < 0) {
        failure = (int)-result;
        return;
    }
    bytes_read += result;
    submit((int)((void **)ud - bufs)); /* reuse this slot for the next block */
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE\n", argv[0]);
        return 2;
    }
    fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        fprintf(stderr, "open %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    file_size = st.st_size;
    engine = aura_create();
    if (!engine) return 1;
    for (int i = 0; i < DEPTH; i++)
        if (!(bufs[i] = aura_buffer_alloc(engine, BLOCK))) return 1;

    int ep = epoll_create1(EPOLL_CLOEXEC);
    int pfd = aura_get_poll_fd(engine);
    if (ep < 0 || pfd < 0) return 1;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.fd = pfd;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, pfd, &ev) != 0) return 1;

    for (int i = 0; i < DEPTH; i++) submit(i);
    int wakeups = 0;
    while (in_flight > 0) {
        /* Submissions may sit in the queue until flushed: flush before sleeping. */
        if (aura_flush(engine) != 0) return 1;
        struct epoll_event got[4];
        int n = epoll_wait(ep, got, 4, 5000);
        if (n < 0 && errno != EINTR) return 1;
        if (n == 0) {
            fprintf(stderr, "no completion within 5 s\n");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            if (got[i].data.fd == pfd) {
                wakeups++;
                if (aura_poll(engine) < 0) return 1;
            }
        }
    }
    close(ep);
    for (int i = 0; i < DEPTH; i++) aura_buffer_free(engine, bufs[i]);
    aura_destroy(engine);
    close(fd);
    if (failure) {
        fprintf(stderr, "read failed: %s\n", strerror(failure));
        return 1;
    }
    printf("read %lld of %lld bytes in %d epoll wakeups\n", bytes_read, (long long)file_size,
           wakeups);
    return bytes_read == file_size ? 0 : 1;
}
