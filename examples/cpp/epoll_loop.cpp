// epoll_loop: aura inside an epoll loop, through Engine::poll_fd().
//
//   epoll_loop FILE
#include <aura.hpp>

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <functional>
#include <iostream>
#include <vector>

int main(int argc, char **argv) {
    if (argc != 2) {
        std::cerr << "usage: " << argv[0] << " FILE\n";
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    struct stat st {};
    if (fd < 0 || fstat(fd, &st) != 0) return 1;
    aura::Engine engine;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = engine.poll_fd();
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, engine.poll_fd(), &ev) != 0) return 1;

    constexpr size_t block = 4096;
    off_t next = 0;
    long long total = 0;
    int in_flight = 0;
    std::vector<aura::Buffer> bufs;
    for (int i = 0; i < 16; i++) bufs.push_back(engine.allocate_buffer(block));
    std::function<void(aura::Buffer &)> submit = [&](aura::Buffer &b) {
        if (next >= st.st_size) return;
        off_t off = next;
        next += static_cast<off_t>(block);
        in_flight++;
        engine.read(fd, b, block, off, [&](aura::Request &, ssize_t n) {
            in_flight--;
            if (n > 0) total += n;
            submit(b);
        });
    };
    for (auto &b : bufs) submit(b);
    int wakeups = 0;
    while (in_flight > 0) {
        engine.flush(); // queued submissions reach the kernel before we sleep
        epoll_event got[4];
        int n = epoll_wait(ep, got, 4, 5000);
        if (n <= 0) return 1;
        wakeups++;
        engine.poll();
    }
    close(ep);
    close(fd);
    std::cout << "read " << total << " of " << st.st_size << " bytes in " << wakeups
              << " epoll wakeups\n";
    return total == st.st_size ? 0 : 1;
}
