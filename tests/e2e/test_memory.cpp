// e2e: the memory floor of the real binary, read from /proc/PID: the threads the built-in
// default needs and no more, what an idle daemon holds, and the peak with a small queue and a
// stuck database. The figures are the RelWithDebInfo build's; the sanitizer runs build and run
// only the unit tests, whose shadow memory would make these figures meaningless.
#include <fmt/format.h>
#include <sched.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>

#include "tests/e2e/harness.h"

namespace {

constexpr uint64_t kib = 1024;
constexpr uint64_t mib = 1024 * kib;

// The built-in default (`sluice run` without -c), on free ports.
std::string default_like_config(uint16_t tcp_port, uint16_t zmq_port,
                                const std::string& max_bytes) {
    return fmt::format(R"(
[queue]
max_bytes = "{}"
when_full = "block"

[sources.tcp]
type = "tcp"
address = "127.0.0.1:{}"

[sources.zmq]
type = "zmq"
endpoint = "tcp://127.0.0.1:{}"
socket = "pull"
bind = true

[sinks.file]
type = "file"
path = "logs/sluice.log"

[sinks.sqlite]
type = "sqlite"
path = "logs.db"
)",
                       max_bytes, tcp_port, zmq_port);
}

struct memory_figures {
    uint64_t rss = 0;
    uint64_t anon = 0;  // heap, stacks, and the pages of libraries the loader wrote to
    uint64_t file = 0;  // code and read-only data of the binary and its libraries
    uint64_t hwm = 0;
};

memory_figures read_memory(pid_t pid) {
    return {e2e::proc_status_bytes(pid, "VmRSS"), e2e::proc_status_bytes(pid, "RssAnon"),
            e2e::proc_status_bytes(pid, "RssFile"), e2e::proc_status_bytes(pid, "VmHWM")};
}

std::string describe(const memory_figures& m) {
    return fmt::format("VmRSS {} KiB (RssAnon {} KiB, RssFile {} KiB), VmHWM {} KiB",
                       m.rss / kib, m.anon / kib, m.file / kib, m.hwm / kib);
}

// Thread name -> how many threads have it (/proc/PID/task/*/comm; "sluice-io-N" as
// "sluice-io").
std::map<std::string, int> thread_names(pid_t pid) {
    std::map<std::string, int> names;
    for (const auto& task :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
        std::ifstream comm(task.path() / "comm");
        std::string name;
        std::getline(comm, name);
        if (name.rfind("sluice-io-", 0) == 0) {
            name = "sluice-io";
        }
        ++names[name];
    }
    return names;
}

std::string describe(const std::map<std::string, int>& names) {
    std::string out;
    for (const auto& [name, count] : names) {
        out += fmt::format("{} x{}, ", name, count);
    }
    return out;
}

int cores() {
    cpu_set_t set;
    CPU_ZERO(&set);
    return ::sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
}

// Sends distinct lines for as long as it lives, on a non-blocking socket so that a daemon
// that stops reading never blocks it; counts the bytes the kernel accepted.
class steady_sender {
public:
    explicit steady_sender(uint16_t port) : client_(port) {
        client_.set_nonblocking(true);
        thread_ = std::thread([this] { run(); });
    }
    ~steady_sender() {
        stop_ = true;
        thread_.join();
    }
    steady_sender(const steady_sender&) = delete;
    steady_sender& operator=(const steady_sender&) = delete;

    uint64_t accepted() const { return accepted_.load(); }

private:
    void run() {
        std::string chunk;
        for (uint64_t seq = 0; !stop_;) {
            chunk.clear();
            for (int i = 0; i < 256; ++i) {
                chunk += e2e::make_line("mem", seq++, 199);
                chunk += '\n';
            }
            std::string_view rest = chunk;
            while (!rest.empty() && !stop_) {
                const ssize_t n = client_.try_send(rest);
                if (n < 0) {
                    return;
                }
                if (n == 0) {
                    client_.wait_writable(std::chrono::milliseconds(100));
                    continue;
                }
                accepted_ += static_cast<uint64_t>(n);
                rest.remove_prefix(static_cast<size_t>(n));
            }
        }
    }

    e2e::tcp_client client_;
    std::atomic<uint64_t> accepted_{0};
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace

TEST_CASE("memory: the default config runs the threads it needs, and idles in little memory",
          "[e2e][memory]") {
    const uint16_t tcp_port = e2e::free_port();
    e2e::daemon d(default_like_config(tcp_port, e2e::free_port(), "64MiB"));
    {
        // Every sink writes once first, so the figures include what a write leaves behind.
        e2e::tcp_client client(tcp_port);
        std::string stream;
        for (int i = 0; i < 1000; ++i) {
            stream += e2e::make_line("idle", i) + "\n";
        }
        REQUIRE(client.send_all(stream));
    }
    d.wait_metric("sluice_sink_events_total{sink=\"sqlite\"}", 1000);
    d.wait_metric("sluice_sink_events_total{sink=\"file\"}", 1000);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));

    const std::map<std::string, int> expected = {
        {"sluice", 1},                 // main: the home event loop (signals, the zmq source)
        {"sluice-io", cores() - 1},    // io_threads = "auto": one loop per core in all
        {"http-api", 3},               // the API's listener and its two workers
        {"sink:file", 1},              // each sink writes on its own thread
        {"sink:sqlite", 1},
        {"checkpoint", 1},             // the SQLite sink's WAL checkpoints
        {"wal-writeback", 1},          // and the kernel writeback of its files
        {"ZMQbg/IO/0", 1},             // libzmq's I/O thread (the zmq source)
        {"ZMQbg/Reaper", 1},           // and its socket reaper
    };
    std::map<std::string, int> want;
    for (const auto& [name, count] : expected) {
        if (count > 0) {
            want[name] = count;
        }
    }
    const auto threads = thread_names(d.pid());
    INFO("threads: " << describe(threads));
    CHECK(threads == want);

    const memory_figures idle = read_memory(d.pid());
    INFO("idle: " << describe(idle));
    WARN("idle with the default config: " << describe(idle));
    // RssAnon is what sluice allocates (heap, stacks, SQLite's cache) plus the library pages
    // the loader relocated: 2.0-2.2 MiB measured. RssFile is the code and read-only data of
    // the binary and its libraries: 12.5-12.8 MiB here, of which a program that only loads
    // the same libraries already maps 8.7 (bench/memory.sh, docs/BENCHMARKS.md "Memory").
    CHECK(idle.anon <= 3 * mib);
    CHECK(idle.rss <= 16 * mib);
}

TEST_CASE("memory: a 4 MiB queue before a locked database peaks at the queue over idle",
          "[e2e][memory]") {
    const uint16_t tcp_port = e2e::free_port();
    e2e::daemon d(default_like_config(tcp_port, e2e::free_port(), "4MiB"));
    const memory_figures idle = read_memory(d.pid());

    // sluice created the database at startup; hold its write lock from now on.
    e2e::sqlite_db lock(d.data_dir() + "/logs.db");
    lock.exec("BEGIN EXCLUSIVE");
    steady_sender sender(tcp_port);
    d.wait_metric("sluice_source_paused{source=\"tcp\"}", 1, std::chrono::seconds(30));
    // The client keeps sending into the socket buffers while the queue stays full.
    std::this_thread::sleep_for(std::chrono::seconds(3));
    const auto stalled = d.metrics();
    const memory_figures peak = read_memory(d.pid());
    INFO("idle: " << describe(idle) << "; stalled: " << describe(peak) << "; accepted "
                  << sender.accepted() << " bytes, queue " << stalled.at("sluice_queue_bytes")
                  << " bytes");
    WARN("4 MiB queue, locked database: " << describe(peak));
    CHECK(stalled.at("sluice_source_paused{source=\"tcp\"}") == 1);
    CHECK(stalled.at("sluice_queue_bytes") <= 4.0 * mib);
    // The full queue and the read buffer of the one connection, over what an idle daemon
    // holds: nothing else grows while the sink cannot write.
    CHECK(peak.hwm <= idle.rss + 4 * mib + 2 * mib);
}
