// zmq_bare_baseline: the least a ZeroMQ-to-file relay can do, the yardstick of sluice's zmq
// source at one line per message (zmq-1), which libzmq's per-message cost bounds. Binds a PULL
// socket (default ZMQ_RCVHWM, one I/O thread, as sluice's source), receives L messages with
// blocking zmq_msg_recv, appends each with a '\n' to a 1 MiB buffer and write()s the buffer to
// FILE whenever it is full, and once at the end.
//
// Prints "listening=ENDPOINT" once bound, then key=value lines: lines, bytes (with the '\n's),
// first_ns (first message), end_ns (file closed; CLOCK_REALTIME), peak_rss_bytes and
// cpu_seconds (getrusage of this process, ZeroMQ's I/O thread included).
//
//   zmq_bare_baseline --endpoint tcp://127.0.0.1:P --lines L --out FILE

#include <fcntl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <zmq.hpp>
#include "clock.h"

namespace {

using bench::realtime_ns;

constexpr std::size_t write_buffer_bytes = 1 << 20;

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "zmq_bare_baseline: %s\n", what.c_str());
    std::exit(1);
}

void write_all(int fd, const char* data, std::size_t len) {
    while (len > 0) {
        const ssize_t n = ::write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            die(std::string("write: ") + std::strerror(errno));
        }
        data += n;
        len -= static_cast<std::size_t>(n);
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::string endpoint = "tcp://127.0.0.1:15173";
    std::string out_path;
    std::size_t lines = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string arg = argv[i];
        if (arg == "--endpoint") {
            endpoint = argv[i + 1];
        } else if (arg == "--lines") {
            lines = std::stoull(argv[i + 1]);
        } else if (arg == "--out") {
            out_path = argv[i + 1];
        } else {
            die("unknown argument " + arg);
        }
    }
    if (out_path.empty() || lines == 0) {
        die("usage: zmq_bare_baseline --endpoint E --lines L --out FILE");
    }
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    if (out < 0) {
        die("open " + out_path + ": " + std::strerror(errno));
    }

    std::int64_t first_ns = 0;
    std::uint64_t bytes = 0;
    try {
        zmq::context_t context(1);
        zmq::socket_t pull(context, zmq::socket_type::pull);
        pull.set(zmq::sockopt::linger, 0);
        pull.bind(endpoint);
        std::printf("listening=%s\n", endpoint.c_str());
        std::fflush(stdout);

        std::string buf;
        buf.reserve(write_buffer_bytes + 65536);
        zmq::message_t message;
        for (std::size_t i = 0; i < lines; ++i) {
            if (!pull.recv(message, zmq::recv_flags::none)) {
                die("recv returned nothing");
            }
            if (i == 0) {
                first_ns = realtime_ns();
            }
            buf.append(static_cast<const char*>(message.data()), message.size());
            buf.push_back('\n');
            if (buf.size() >= write_buffer_bytes) {
                write_all(out, buf.data(), buf.size());
                bytes += buf.size();
                buf.clear();
            }
        }
        write_all(out, buf.data(), buf.size());
        bytes += buf.size();
    } catch (const zmq::error_t& e) {
        die(std::string("zmq: ") + e.what());
    }
    ::close(out);
    const std::int64_t end_ns = realtime_ns();

    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    const double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
                       ru.ru_stime.tv_usec / 1e6;
    std::printf("lines=%zu\nbytes=%llu\nfirst_ns=%lld\nend_ns=%lld\npeak_rss_bytes=%lld\n"
                "cpu_seconds=%.3f\n",
                lines, static_cast<unsigned long long>(bytes), static_cast<long long>(first_ns),
                static_cast<long long>(end_ns), static_cast<long long>(ru.ru_maxrss) * 1024, cpu);
    return 0;
}
