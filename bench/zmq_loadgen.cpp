// zmq_loadgen: the benchmark's ZeroMQ client. Builds the same L lines as loadgen (lines.h) into one
// buffer before the clock starts, then sends them from one PUSH socket connected to ENDPOINT, one
// message per line (without its '\n'), flat out: blocking sends, default ZMQ_SNDHWM (1000),
// zero-copy (no allocation or copy per message in this thread). With --lines-per-message N > 1 each
// message is N whole lines, '\n' included, for a source with framing = "newline". At the end it
// closes the socket with an infinite linger and terminates the context, which returns only once
// every message has gone to the peer's socket.
//
// Prints key=value lines: lines, bytes (the lines with their '\n', as loadgen counts them, so
// MB/s compare), start_ns (first send), end_ns (context terminated; CLOCK_REALTIME),
// send_seconds and send_cpu_seconds (this process's CPU, ZeroMQ's I/O thread included, from the
// socket's creation on; generation excluded).
//
//   zmq_loadgen --logs DIR --lines L --endpoint tcp://127.0.0.1:P [--format F]
//               [--lines-per-message N]

#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "clock.h"
#include "lines.h"

namespace {

using bench::realtime_ns;
using bench::cpu_seconds;

[[noreturn]] void die(const std::string& what) { bench::die("zmq_loadgen", what); }

}  // namespace

int main(int argc, char** argv) {
    std::string logs_dir;
    std::string endpoint = "tcp://127.0.0.1:15173";
    std::size_t lines = 2'000'000;
    bench::line_format format = bench::line_format::text;
    std::size_t per_message = 1;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                die("missing value for " + arg);
            }
            return argv[++i];
        };
        if (arg == "--logs") {
            logs_dir = value();
        } else if (arg == "--lines") {
            lines = std::stoull(value());
        } else if (arg == "--endpoint") {
            endpoint = value();
        } else if (arg == "--lines-per-message") {
            per_message = std::stoull(value());
        } else if (arg == "--format") {
            const std::string f = value();
            if (!bench::parse_format(f, format)) {
                die("unknown format " + f);
            }
        } else {
            die("unknown argument " + arg);
        }
    }
    if (logs_dir.empty() || lines == 0 || per_message == 0) {
        die("usage: zmq_loadgen --logs DIR --lines L --endpoint E [--format F] "
            "[--lines-per-message N]");
    }

    std::vector<std::size_t> line_ends;
    std::string buf = bench::generate(bench::read_source_lines("zmq_loadgen", logs_dir),
                                            lines, format, line_ends);

    std::int64_t start_ns = 0;
    std::chrono::steady_clock::time_point t0;
    const double cpu0 = cpu_seconds();
    try {
        zmq::context_t context(1);
        zmq::socket_t push(context, zmq::socket_type::push);
        push.set(zmq::sockopt::linger, -1);  // close waits until everything has gone out
        push.connect(endpoint);
        start_ns = realtime_ns();
        t0 = std::chrono::steady_clock::now();
        std::size_t begin = 0;
        for (std::size_t i = 0; i < lines; i += per_message) {
            const std::size_t last = std::min(lines, i + per_message) - 1;
            // One line without its '\n', or whole lines with theirs.
            const std::size_t end = per_message == 1 ? line_ends[i] - 1 : line_ends[last];
            // Zero-copy: a message with no free function only points into `buf`, which
            // outlives the context, so ZeroMQ neither allocates nor copies per message (its
            // I/O thread copies the bytes once, into its send batch). Blocks at the
            // high-water mark until the peer takes more: flat out, no loss.
            zmq::message_t message(buf.data() + begin, end - begin, nullptr, nullptr);
            push.send(message, zmq::send_flags::none);
            begin = line_ends[last];
        }
        push.close();
        context.close();  // zmq_ctx_term: waits out the linger, i.e. for every message to go
    } catch (const zmq::error_t& e) {
        die(std::string("zmq: ") + e.what());
    }
    const auto t1 = std::chrono::steady_clock::now();
    const std::int64_t end_ns = realtime_ns();
    std::printf("lines=%zu\nbytes=%zu\nconnections=1\nstart_ns=%lld\nend_ns=%lld\n"
                "send_seconds=%.6f\nsend_cpu_seconds=%.3f\n",
                lines, buf.size(), static_cast<long long>(start_ns),
                static_cast<long long>(end_ns), std::chrono::duration<double>(t1 - t0).count(),
                cpu_seconds() - cpu0);
    return 0;
}
