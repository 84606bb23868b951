// cancel: cancel a read that cannot complete by itself (from an empty pipe).
//
//   cancel
//
// The read's callback gets -ECANCELED. Cancelling it again from inside its callback returns
// false (the request already completed: EALREADY).
#include <aura.hpp>

#include <unistd.h>

#include <iostream>

int main() {
    int p[2];
    if (pipe(p) != 0) return 1;
    aura::Engine engine;
    char buf[64];
    ssize_t result = 0;
    bool second_cancel = true;
    bool done = false;
    aura::Request req = engine.read(p[0], buf, sizeof buf, 0, [&](aura::Request &r, ssize_t n) {
        result = n;
        second_cancel = engine.cancel(r);
        done = true;
    });
    engine.flush();
    engine.wait(50); // nothing is written: the read stays pending
    if (!req.pending()) {
        std::cerr << "the read should still be pending\n";
        return 1;
    }
    if (!engine.cancel(req)) {
        std::cerr << "cancel refused\n";
        return 1;
    }
    while (!done) engine.wait(1000);
    std::cout << "read cancelled: callback result " << result << " (-ECANCELED)\n"
              << "second cancel: " << (second_cancel ? "submitted?!" : "already completed")
              << "\n";
    close(p[0]);
    close(p[1]);
    return result == -ECANCELED && !second_cancel ? 0 : 1;
}
