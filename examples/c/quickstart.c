#include <aura.h>
#include <stdio.h>
#include <fcntl.h>

static int done = 0;

void on_read(aura_request_t *req, ssize_t result, void *ctx) {
    (void)req; (void)ctx;
    printf("Read %zd bytes\n", result);
    done = 1;
}

int main(void) {
    aura_engine_t *engine = aura_create();
    void *buf = aura_buffer_alloc(engine, 4096);

    int fd = open("/etc/hostname", O_RDONLY);
    aura_read(engine, fd, aura_buf(buf), 4096, 0, on_read, NULL);

    while (!done) aura_wait(engine, 100);

    printf("Content: %s", (char *)buf);

    aura_buffer_free(engine, buf);
    close(fd);
    aura_destroy(engine);
}
