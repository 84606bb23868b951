// registered_buffers: register two pool buffers, then write and read through them by index.
//
//   registered_buffers FILE      (created or truncated)
#include <aura.hpp>

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <iostream>

int main(int argc, char **argv) {
    if (argc != 2) {
        std::cerr << "usage: " << argv[0] << " FILE\n";
        return 2;
    }
    int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return 1;
    try {
        aura::Engine engine;
        auto out = engine.allocate_buffer(8192);
        auto in = engine.allocate_buffer(8192);
        for (size_t i = 0; i < out.size(); i++) out.as<unsigned char>()[i] = static_cast<unsigned char>(i * 5 + 1);
        std::memset(in.data(), 0, in.size());
        std::array<iovec, 2> regs{{{out.data(), out.size()}, {in.data(), in.size()}}};
        engine.register_buffers(regs);

        ssize_t w = -1, r = -1;
        engine.write(fd, aura::BufferRef::fixed(0), 8192, 0, [&](aura::Request &, ssize_t n) { w = n; });
        engine.drain();
        engine.read(fd, aura::BufferRef::fixed(1, 0), 8192, 0, [&](aura::Request &, ssize_t n) { r = n; });
        engine.drain();
        bool same = w == 8192 && r == 8192 && std::memcmp(out.data(), in.data(), 8192) == 0;
        std::cout << "fixed write " << w << " bytes, fixed read " << r << " bytes: "
                  << (same ? "identical" : "DIFFERENT") << "\n";
        engine.unregister_buffers();
        try {
            engine.read(fd, aura::BufferRef::fixed(1), 8192, 0, [](aura::Request &, ssize_t) {});
            std::cerr << "fixed read after unregister was accepted\n";
            return 1;
        } catch (const aura::Error &e) {
            std::cout << "after unregister: fixed read refused ("
                      << (e.errno_value() == ENOENT ? "ENOENT" : e.code().message()) << ")\n";
        }
        close(fd);
        return same ? 0 : 1;
    } catch (const aura::Error &e) {
        std::cerr << e.what() << "\n";
        return 1;
    }
}
