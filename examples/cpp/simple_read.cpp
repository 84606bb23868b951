// simple_read: read the first 4 KiB of a file with a lambda callback.
//
//   simple_read [FILE]      (default /etc/hostname)
#include <aura.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <string_view>

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "/etc/hostname";
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        std::cerr << "open " << path << ": " << std::strerror(errno) << "\n";
        return 1;
    }
    try {
        aura::Engine engine;
        aura::Buffer buf = engine.allocate_buffer(4096);
        ssize_t result = 0;
        bool done = false;
        engine.read(fd, buf, buf.size(), 0, [&](aura::Request &req, ssize_t n) {
            result = n;
            done = req.fd() == fd; // the request knows its fd
        });
        while (!done) engine.wait(1000);
        if (result < 0) {
            std::cerr << "read: " << std::strerror(static_cast<int>(-result)) << "\n";
            return 1;
        }
        std::cout << "read " << result << " bytes from " << path << "\n"
                  << std::string_view(buf.as<char>(), static_cast<size_t>(result));
    } catch (const aura::Error &e) {
        std::cerr << e.what() << "\n";
        return 1;
    }
    close(fd);
    return 0;
}
