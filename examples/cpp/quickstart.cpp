#include <aura.hpp>
#include <iostream>
#include <fcntl.h>

int main() {
    aura::Engine engine;
    auto buf = engine.allocate_buffer(4096);

    int fd = open("/etc/hostname", O_RDONLY);
    bool done = false;

    engine.read(fd, buf, 4096, 0, [&](auto&, ssize_t n) {
        std::cout << "Read " << n << " bytes\n";
        std::cout << "Content: " << static_cast<char*>(buf.data()) << "\n";
        done = true;
    });

    while (!done) engine.wait(100);
    close(fd);
}
