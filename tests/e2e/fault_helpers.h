// e2e helpers for the fault-injection tests (test_faults.cpp): tmpfs mounts that are always
// unmounted, a TCP sender on its own thread that never blocks (so a stall can be observed), a
// raw HTTP GET that returns the status code (for /ready's 503), a sink's entry of /status,
// log-line counting and the retry schedule's bound. Main thread only unless a comment says
// otherwise.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <simdjson.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tests/e2e/harness.h"

namespace e2e::faults {

// ---- tmpfs -------------------------------------------------------------------------------

// Once per process, before its first mount: moves the calling (main) thread into a mount
// namespace of its own, private from the root down. The daemons it forks inherit it, so they
// see the test's mounts; nobody else does, and when the test process dies without running
// its destructors (killed, or a crash) the namespace and every mount in it go with it. If it
// cannot (no CAP_SYS_ADMIN), the mounts are made in the shared namespace and only the
// guards below undo them.
inline void isolate_mounts_once() {
    static const bool isolated = [] {
        // A namespace is per thread: the main thread's is the one forked daemons get.
        if (::gettid() != ::getpid() || ::unshare(CLONE_NEWNS) != 0) {
            return false;
        }
        return ::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0;
    }();
    (void)isolated;
}

// A filesystem mounted on `dir` (a fresh temp dir unless one is given: then it is mounted over
// whatever is there). The destructor unmounts it, lazily (MNT_DETACH) if a process still holds
// files on it (a daemon not yet killed), and removes the temp dir it made, so a failing test
// leaves no mount behind.
class mount_guard {
  public:
    // nullptr and `why` when mount(2) fails (not root, no CAP_SYS_ADMIN).
    static std::unique_ptr<mount_guard> try_mount(const std::string& source, const char* fstype,
                                                  unsigned long flags, const std::string& options,
                                                  std::string& why, std::string dir = "") {
        isolate_mounts_once();
        const bool own_dir = dir.empty();
        if (own_dir) {
            dir = make_temp_dir();
        }
        if (::mount(source.c_str(), dir.c_str(), fstype, flags,
                    options.empty() ? nullptr : options.c_str()) != 0) {
            why = "mount " + source + " on " + dir + " (" + options + "): " + std::strerror(errno);
            if (own_dir) {
                ::rmdir(dir.c_str());
            }
            return nullptr;
        }
        return std::unique_ptr<mount_guard>(new mount_guard(dir, own_dir));
    }

    ~mount_guard() {
        if (::umount2(dir_.c_str(), 0) != 0) {
            ::umount2(dir_.c_str(), MNT_DETACH);
        }
        if (own_dir_) {
            ::rmdir(dir_.c_str());
        }
    }
    mount_guard(const mount_guard&) = delete;
    mount_guard& operator=(const mount_guard&) = delete;

    const std::string& path() const { return dir_; }

    // mount -o remount,ro / remount,rw (a tmpfs). "" on success, else the error.
    std::string remount(bool read_only) const {
        const unsigned long flags = MS_REMOUNT | (read_only ? MS_RDONLY : 0);
        if (::mount("tmpfs", dir_.c_str(), "tmpfs", flags, nullptr) != 0) {
            return std::string("mount -o remount,") + (read_only ? "ro " : "rw ") + dir_ + ": " +
                   std::strerror(errno);
        }
        return "";
    }

    uint64_t free_bytes() const {
        struct statvfs st {};
        if (::statvfs(dir_.c_str(), &st) != 0) {
            return 0;
        }
        return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
    }

  private:
    mount_guard(std::string dir, bool own_dir) : dir_(std::move(dir)), own_dir_(own_dir) {}

    std::string dir_;
    bool own_dir_;
};

// mount -t tmpfs -o OPTIONS tmpfs DIR (a fresh temp dir by default; MS_RDONLY in `flags` for
// a read-only one).
inline std::unique_ptr<mount_guard> try_tmpfs(const std::string& options, std::string& why,
                                              std::string dir = "", unsigned long flags = 0) {
    return mount_guard::try_mount("tmpfs", "tmpfs", flags, options, why, std::move(dir));
}

// Mounts a tmpfs or, when that is not possible here, WARNs and leaves the test case (Catch2
// v2 has no SKIP): the tests need root for mount(2), which CI has.
#define FAULTS_MOUNT_TMPFS_OR_SKIP(var, options)                                     \
    std::string var##_why;                                                           \
    auto var = ::e2e::faults::try_tmpfs(options, var##_why);                         \
    if (!var) {                                                                      \
        WARN("SKIPPED: this test needs a tmpfs mount (run as root): " << var##_why); \
        return;                                                                      \
    }

// A fresh temp dir, removed with everything in it on destruction.
struct scoped_temp_dir {
    std::string path = make_temp_dir();
    scoped_temp_dir() = default;
    scoped_temp_dir(const scoped_temp_dir&) = delete;
    scoped_temp_dir& operator=(const scoped_temp_dir&) = delete;
    ~scoped_temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
};

// ---- lines -------------------------------------------------------------------------------

// `n` distinct real lines "PREFIX-NNNNNNN ..." of exactly `length` bytes (0: natural length).
inline std::vector<std::string> make_lines(const std::string& prefix, uint64_t first, uint64_t n,
                                           size_t length = 0) {
    std::vector<std::string> out;
    out.reserve(n);
    for (uint64_t i = first; i < first + n; ++i) {
        out.push_back(make_line(prefix, i, length));
    }
    return out;
}

inline std::string joined(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& l : lines) {
        out += l;
        out += '\n';
    }
    return out;
}

// Sends `lines` over one connection with a blocking send; half-closes after.
inline void send_lines(uint16_t port, const std::vector<std::string>& lines) {
    tcp_client client(port);
    REQUIRE(client.send_all(joined(lines)));
    client.shutdown_write();
}

// ---- a TCP sender that shows a stall -----------------------------------------------------

// Streams `lines` (each followed by '\n') over one connection on its own thread, with
// non-blocking sends, counting the bytes the kernel accepted and the sends refused with
// EAGAIN; half-closes once everything is accepted. With `sndbuf` > 0 the socket's send
// buffer is set to that first (the kernel doubles it), so what the sender's kernel holds is
// small and a stalled receiver stops the sender soon. Not under 64 KiB: a send buffer below
// loopback's 64 KiB segments makes TCP crawl (about 2 MB/s with 16 KiB). Connects on the
// constructing (main) thread.
class tcp_sender {
  public:
    tcp_sender(uint16_t port, const std::vector<std::string>& lines, int sndbuf = 64 * 1024)
        : client_(port), stream_(joined(lines)) {
        if (sndbuf > 0) {
            ::setsockopt(client_.fd(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
        }
        client_.set_nonblocking(true);
        thread_ = std::thread([this] { run(); });
    }
    ~tcp_sender() {
        stop_ = true;
        thread_.join();
    }
    tcp_sender(const tcp_sender&) = delete;
    tcp_sender& operator=(const tcp_sender&) = delete;

    uint64_t accepted() const { return accepted_.load(); }
    uint64_t total() const { return stream_.size(); }
    uint64_t eagains() const { return eagains_.load(); }
    bool done() const { return done_.load(); }
    // Valid once done().
    const std::string& error() const { return error_; }
    std::string describe() const {
        return "sender: " + std::to_string(accepted()) + " of " + std::to_string(total()) +
               " bytes accepted, " + std::to_string(eagains()) + " EAGAINs" +
               (done() ? ", done " + error_ : "");
    }

  private:
    void run() {
        std::string_view rest = stream_;
        while (!rest.empty() && !stop_) {
            const ssize_t n = client_.try_send(rest.substr(0, 256 * 1024));
            if (n < 0) {
                error_ = "send failed after " + std::to_string(accepted()) + " bytes";
                done_ = true;
                return;
            }
            if (n == 0) {
                ++eagains_;
                client_.wait_writable(std::chrono::milliseconds(100));
                continue;
            }
            accepted_ += static_cast<uint64_t>(n);
            rest.remove_prefix(static_cast<size_t>(n));
        }
        client_.shutdown_write();
        done_ = true;
    }

    tcp_client client_;
    const std::string stream_;
    std::atomic<uint64_t> accepted_{0};
    std::atomic<uint64_t> eagains_{0};
    std::atomic<bool> done_{false};
    std::atomic<bool> stop_{false};
    std::string error_;
    std::thread thread_;
};

// Waits until `sender` is stuck: some send was refused and nothing was accepted for
// `quiet`. Returns the bytes it had accepted then.
inline uint64_t wait_sender_blocked(
    const tcp_sender& sender, const daemon& d,
    std::chrono::milliseconds quiet = std::chrono::milliseconds(1000),
    std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    uint64_t last = sender.accepted();
    auto since = clock_type::now();
    wait_for(
        "the TCP sender to block",
        [&] {
            const uint64_t now = sender.accepted();
            if (now != last) {
                last = now;
                since = clock_type::now();
                return false;
            }
            return !sender.done() && sender.eagains() > 0 && clock_type::now() - since >= quiet;
        },
        [&] { return sender.describe() + "\n" + d.metrics_summary(); }, timeout,
        std::chrono::milliseconds(50));
    return last;
}

// ---- HTTP --------------------------------------------------------------------------------

struct http_response {
    int status = -1;  // -1: no answer
    std::string body;
};

// GET http://127.0.0.1:PORT/PATH with HTTP/1.0 on a raw socket: the status whatever it is
// (the harness's http_get hides a 503).
inline http_response http_get_status(uint16_t port, const std::string& path) {
    http_response out;
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return out;
    }
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        ::close(fd);
        return out;
    }
    const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
        ::close(fd);
        return out;
    }
    std::string response;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        response.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    // "HTTP/1.1 503 Service Unavailable\r\n...\r\n\r\nBODY"
    const size_t sp = response.find(' ');
    const size_t head_end = response.find("\r\n\r\n");
    if (response.rfind("HTTP/", 0) != 0 || sp == std::string::npos ||
        head_end == std::string::npos) {
        return out;
    }
    out.status = std::atoi(response.c_str() + sp + 1);
    out.body = response.substr(head_end + 4);
    return out;
}

// ---- /status -----------------------------------------------------------------------------

struct sink_status {
    bool found = false;
    std::string state;
    bool failed = false;
    std::string last_error;
    uint64_t events_total = 0;
    uint64_t errors_total = 0;
    uint64_t retries_total = 0;
    uint64_t lag_events = 0;
};

// The entry of sink `name` in GET /status; FAILs if /status does not answer or parse.
inline sink_status status_of_sink(const daemon& d, const std::string& name) {
    const auto body = d.http_get("/status");
    if (!body) {
        FAIL("GET /status did not answer 200");
    }
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    if (parser.parse(*body).get(root) != simdjson::SUCCESS) {
        FAIL("GET /status is not JSON: " << *body);
    }
    simdjson::dom::array sinks;
    if (root["sinks"].get_array().get(sinks) != simdjson::SUCCESS) {
        FAIL("GET /status has no sinks array: " << *body);
    }
    sink_status out;
    for (simdjson::dom::element s : sinks) {
        std::string_view n;
        if (s["name"].get_string().get(n) != simdjson::SUCCESS || n != name) {
            continue;
        }
        out.found = true;
        std::string_view v;
        if (s["state"].get_string().get(v) == simdjson::SUCCESS) {
            out.state = std::string(v);
        }
        if (s["last_error"].get_string().get(v) == simdjson::SUCCESS) {
            out.last_error = std::string(v);
        }
        bool b = false;
        if (s["failed"].get_bool().get(b) == simdjson::SUCCESS) {
            out.failed = b;
        }
        uint64_t u = 0;
        if (s["events_total"].get_uint64().get(u) == simdjson::SUCCESS) {
            out.events_total = u;
        }
        if (s["errors_total"].get_uint64().get(u) == simdjson::SUCCESS) {
            out.errors_total = u;
        }
        if (s["retries_total"].get_uint64().get(u) == simdjson::SUCCESS) {
            out.retries_total = u;
        }
        if (s["lag_events"].get_uint64().get(u) == simdjson::SUCCESS) {
            out.lag_events = u;
        }
    }
    if (!out.found) {
        FAIL("sink " << name << " is not in GET /status: " << *body);
    }
    return out;
}

// ---- the daemon's log --------------------------------------------------------------------

// The lines of `log` that contain `needle`.
inline std::vector<std::string> log_lines_with(const std::string& log, std::string_view needle) {
    std::vector<std::string> out;
    std::istringstream in(log);
    for (std::string line; std::getline(in, line);) {
        if (line.find(needle) != std::string::npos) {
            out.push_back(line);
        }
    }
    return out;
}

// Every number the regex's first group captures, over the lines of `log`.
inline std::vector<uint64_t> log_numbers(const std::string& log, const std::string& pattern) {
    std::vector<uint64_t> out;
    const std::regex re(pattern);
    std::istringstream in(log);
    for (std::string line; std::getline(in, line);) {
        std::smatch m;
        if (std::regex_search(line, m, re)) {
            out.push_back(std::stoull(m[1].str()));
        }
    }
    return out;
}

// ---- the retry schedule ------------------------------------------------------------------

// The most write attempts one failing write can make in `seconds` under the documented
// backoff (starts at 100 ms, doubles up to 5 s, each wait at least half the backoff): a bound
// that a sink retrying without its backoff would blow through at once.
inline uint64_t max_attempts_within(double seconds) {
    uint64_t attempts = 1;
    double backoff = 0.1;
    double t = 0;
    for (;;) {
        t += backoff / 2;
        if (t > seconds) {
            return attempts;
        }
        ++attempts;
        backoff = std::min(backoff * 2, 5.0);
    }
}

inline double seconds_since(clock_type::time_point t) {
    return std::chrono::duration<double>(clock_type::now() - t).count();
}

}  // namespace e2e::faults
