// log_handler: aura's diagnostics into a std::function.
//
//   log_handler
#include <aura.hpp>

#include <iostream>
#include <string>
#include <vector>

int main() {
    std::vector<std::string> got;
    aura::set_log_handler([&](aura::LogLevel level, std::string_view msg) {
        got.emplace_back(msg);
        std::cout << "[aura " << static_cast<int>(level) << "] " << msg << "\n";
    });
    aura::log_emit(aura::LogLevel::Notice, "application started, aura " +
                                               std::string(aura::version()));
    {
        aura::Engine engine;
        static char not_from_pool[64];
        aura_buffer_free(engine.handle(), not_from_pool); // refused, with a warning
    }
    aura::set_log_handler(nullptr);
    aura::log_emit(aura::LogLevel::Error, "not delivered");
    std::cout << "handler got " << got.size() << " messages\n";
    return got.size() >= 2 ? 0 : 1;
}
