// vectored_io: writev from three buffers and readv into three others, with co_await.
//
//   vectored_io FILE      (created or truncated)
#include <aura.hpp>

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <iostream>
#include <string>

static aura::Task<bool> roundtrip(aura::Engine &engine, int fd) {
    std::string a = "first part|", b(5000, 'x'), c = "|last part";
    for (size_t i = 0; i < b.size(); i++) b[i] = static_cast<char>('A' + i % 23);
    std::array<iovec, 3> out{{{a.data(), a.size()}, {b.data(), b.size()}, {c.data(), c.size()}}};
    ssize_t written = co_await engine.async_writev(fd, out, 0);

    std::string x(7, '\0'), y(4000, '\0'), z(a.size() + b.size() + c.size() - 4007, '\0');
    std::array<iovec, 3> in{{{x.data(), x.size()}, {y.data(), y.size()}, {z.data(), z.size()}}};
    ssize_t read = co_await engine.async_readv(fd, in, 0);

    std::cout << "writev " << written << " bytes, readv " << read << " bytes\n";
    co_return written == read && a + b + c == x + y + z;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        std::cerr << "usage: " << argv[0] << " FILE\n";
        return 2;
    }
    int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return 1;
    aura::Engine engine;
    bool same = aura::sync_wait(engine, roundtrip(engine, fd));
    std::cout << (same ? "identical\n" : "DIFFERENT\n");
    close(fd);
    return same ? 0 : 1;
}
