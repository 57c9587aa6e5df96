// Names the calling thread for top -H, perf and gdb. Linux keeps 15 bytes; the rest is cut.
#pragma once

#include <pthread.h>

#include <string>
#include <string_view>

namespace sluice {

inline void set_thread_name(std::string_view name) {
    const std::string cut(name.substr(0, 15));
    pthread_setname_np(pthread_self(), cut.c_str());
}

}  // namespace sluice
