// The clocks every bench helper reports by: wall time as CLOCK_REALTIME nanoseconds (so that
// bench.py can line up the first byte of one process with the last write of another) and this
// process's CPU time.
#pragma once

#include <sys/resource.h>
#include <time.h>

#include <cstdint>

namespace bench {

inline std::int64_t realtime_ns() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// utime + stime of this process so far (every thread, ZeroMQ's included).
inline double cpu_seconds() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

}  // namespace bench
