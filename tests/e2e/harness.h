// e2e harness: runs the real sluice binary as a child process against a config written into
// a fresh temp dir, and talks to it the way users do: TCP clients, GET /metrics, the SQLite
// file and the file sink's output. Everything here is for the test's main thread unless a
// comment says otherwise; Catch assertions are only made on the main thread.
#pragma once

#include <sqlite3.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace e2e {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

// The default deadline of every wait helper: a watchdog, not a performance bound.
constexpr auto default_deadline = std::chrono::seconds(60);

// ---- environment -------------------------------------------------------------------------

// Path of the sluice binary under test.
std::string sluice_binary();
// A port on 127.0.0.1 that was free a moment ago (bind port 0, read it back, close).
uint16_t free_port();
// A fresh directory /tmp/sluice-e2e-XXXXXX.
std::string make_temp_dir();
// Unix time in nanoseconds (CLOCK_REALTIME, as sluice's received_at).
int64_t unix_now_ns();

// ---- test data ---------------------------------------------------------------------------

// Every non-empty line of tests/data/real_logs/*.log, trailing '\r' stripped (cached).
const std::vector<std::string>& real_log_lines();
// A distinct line: "PREFIX-NNNNNNN REAL_LINE", deterministic in (prefix, seq). With
// `exact_length` > 0 the line is cut or padded (by repeating real text) to that many bytes.
std::string make_line(std::string_view prefix, uint64_t seq, size_t exact_length = 0);
// Reads all lines of a text file (without their '\n').
std::vector<std::string> read_lines(const std::string& path);
// Reads a whole file; empty if it cannot be opened.
std::string read_file(const std::string& path);
// The last `max_lines` lines of `text`, after "[...]" when some were cut.
std::string tail_lines(const std::string& text, size_t max_lines);
// True once an assertion of the running test case has failed (a helper then prints its logs).
bool current_test_has_failed();
// A waitpid() status as an exit code: the process's own, or 128 + the signal that ended it.
int decode_status(int status);
void write_file(const std::string& path, std::string_view content);

// Compares two multisets of strings; returns "" when equal, else a description of the first
// differences (missing / unexpected lines, with counts).
std::string multiset_difference(std::vector<std::string> expected, std::vector<std::string> actual);

// ---- waiting -----------------------------------------------------------------------------

// Polls `done` every `interval` until it is true; after `timeout` FAILs with `what` and the
// state `describe` returns.
void wait_for(const std::string& what, const std::function<bool()>& done,
              const std::function<std::string()>& describe,
              std::chrono::milliseconds timeout = default_deadline,
              std::chrono::milliseconds interval = 50ms);

// ---- processes ---------------------------------------------------------------------------

struct command_result {
    int exit_code = -1;  // 128 + signal when killed by one
    std::string out;
    std::string err;
};

// Every process the harness starts is tied to the test process: it gets SIGKILL when the test
// process ends, however it ends (abort(), std::terminate, a crash, ctest's SIGKILL on a
// timeout, or an exit that runs no destructor), so no daemon outlives its test. The kernel's
// parent-death signal (PR_SET_PDEATHSIG) fires when the *thread* that forked exits, so the
// harness forks only on the main thread, which lives as long as the process; starting a
// process on another thread fails the test.

// For a child started some other way (forkpty, a bare fork): call it in the child right after
// the fork, with the parent's getpid() read before the fork. Sets SIGKILL as the child's
// parent-death signal (kept across execve) and, if the parent has already gone, _exits(125)
// at once. Async-signal-safe.
void die_with_parent(pid_t parent) noexcept;
// FAILs unless called on the test process's main thread (gettid() == getpid()).
void require_main_thread(const char* what);

// fork + exec of `args` (args[0] a path) in `work_dir`, stdin from /dev/null, stdout and
// stderr to the files (the same one when the paths are equal), `extra_env` ("NAME=VALUE")
// added to the environment; the child dies with the test process. Returns its pid: the caller
// waits for it (waitpid) and kills it.
pid_t spawn_process(const std::vector<std::string>& args, const std::string& work_dir,
                    const std::string& out_path, const std::string& err_path,
                    const std::vector<std::string>& extra_env = {});

// Runs sluice with `args` in `work_dir` and waits (FAILs after `timeout`).
command_result run_sluice(const std::vector<std::string>& args, const std::string& work_dir,
                          std::chrono::milliseconds timeout = 30s);

// ---- metrics -----------------------------------------------------------------------------

// Prometheus text parsed into "name{labels}" -> value. Label sets are normalised (sorted by
// label name) so lookups do not depend on the order sluice prints them in.
using metric_map = std::map<std::string, double>;
metric_map parse_prometheus(std::string_view text);
std::string normalise_metric_key(std::string_view key);

// ---- the daemon --------------------------------------------------------------------------

// One `sluice run` child process. The config written is
//   data_dir = "DIR/data"; shutdown_timeout = ...; [api] address = "127.0.0.1:PORT"
// followed by `body` (queue, sources, sinks); top-level keys at the head of `body`, before its
// first table (io_threads = 4), are written before [api]. The destructor SIGKILLs a running daemon and,
// when the test has failed, prints the config and the daemon's log; on success it removes
// the temp dir. If the test process dies instead, the daemon is killed with it (above).
class daemon {
public:
    // `data_dir`: another daemon's, for a restart on the same state; default DIR/data.
    explicit daemon(std::string body, std::string shutdown_timeout = "30s",
                    std::string data_dir = "");
    ~daemon();
    daemon(const daemon&) = delete;
    daemon& operator=(const daemon&) = delete;

    pid_t pid() const { return pid_; }
    const std::string& dir() const { return dir_; }
    const std::string& data_dir() const { return data_dir_; }
    uint16_t api_port() const { return api_port_; }
    std::string log() const;

    void signal(int sig);
    bool running();
    // Waits for the process to exit; returns its exit code (128 + signal). FAILs on timeout.
    int wait_exit(std::chrono::milliseconds timeout = default_deadline);

    // GET a path of the HTTP API; nullopt when it does not answer 200.
    std::optional<std::string> http_get(const std::string& path) const;
    // GET /metrics, parsed. FAILs if it does not answer.
    metric_map metrics() const;
    // One sample, e.g. metric("sluice_sink_events_total{sink=\"db\"}"); FAILs if absent.
    double metric(const std::string& key) const;
    // Polls /metrics until `key` == `value` (or >= with at_least); FAILs with what it saw.
    void wait_metric(const std::string& key, double value,
                     std::chrono::milliseconds timeout = default_deadline,
                     bool at_least = false) const;
    // A short dump of the queue/source/sink metrics, for failure messages.
    std::string metrics_summary() const;

    // Peak RSS, sampled from /proc/PID/status every ~20 ms by a background thread.
    void start_rss_sampling();
    uint64_t peak_rss_bytes() const { return peak_rss_.load(); }
    // VmHWM of the live process (its kernel-tracked peak), 0 if it cannot be read.
    uint64_t vm_hwm_bytes() const;
    // CPU time (user + system) the live process has used, from /proc/PID/stat.
    double cpu_seconds() const;

private:
    void wait_until_healthy();
    void stop_rss_sampling();
    void kill_now();

    std::string dir_;
    std::string config_path_;
    std::string log_path_;
    std::string data_dir_;
    uint16_t api_port_ = 0;
    pid_t pid_ = -1;
    bool exited_ = false;
    int exit_code_ = -1;
    std::atomic<bool> sampling_{false};
    std::atomic<uint64_t> peak_rss_{0};
    std::thread sampler_;
};

// Reads "VmRSS" / "VmHWM" (kB) of a process from /proc/PID/status, in bytes; 0 if absent.
uint64_t proc_status_bytes(pid_t pid, std::string_view field);

// ---- TCP client --------------------------------------------------------------------------

class tcp_client {
public:
    // Blocking connect to 127.0.0.1:port; FAILs (main thread) / throws (other threads).
    explicit tcp_client(uint16_t port);
    ~tcp_client();
    tcp_client(const tcp_client&) = delete;
    tcp_client& operator=(const tcp_client&) = delete;
    tcp_client(tcp_client&& other) noexcept;

    // Sends every byte (blocking). Returns false if the peer closed or on error.
    bool send_all(std::string_view data);
    // Non-blocking mode for stall detection.
    void set_nonblocking(bool on);
    // One non-blocking send: bytes accepted, 0 on EAGAIN, -1 on error.
    ssize_t try_send(std::string_view data);
    // Waits up to `timeout` for the socket to become writable.
    bool wait_writable(std::chrono::milliseconds timeout);
    // Half-close (FIN) so sluice sees the end of the stream.
    void shutdown_write();
    void close();
    int fd() const { return fd_; }

private:
    int fd_ = -1;
};

// ---- SQLite ------------------------------------------------------------------------------

struct log_row {
    int64_t id = 0;
    int64_t received_at = 0;
    std::string source;
    std::optional<std::string> host;
    std::string message;
};

// A direct sqlite3 connection to sluice's database (read-write, so it can take locks).
class sqlite_db {
public:
    explicit sqlite_db(const std::string& path);
    ~sqlite_db();
    sqlite_db(const sqlite_db&) = delete;
    sqlite_db& operator=(const sqlite_db&) = delete;

    // Runs SQL; FAILs with the error message.
    void exec(const std::string& sql);
    // Runs SQL; returns the SQLite result code instead of failing.
    int try_exec(const std::string& sql, std::string* error = nullptr);
    int64_t count_rows(const std::string& table = "logs");
    std::vector<std::string> messages(const std::string& table = "logs");
    std::vector<log_row> rows(const std::string& table = "logs");
    // Calls `f(message)` for every row in id order, without materialising them all.
    void for_each_message(const std::function<void(std::string_view)>& f,
                          const std::string& table = "logs");
    sqlite3* handle() { return db_; }

private:
    sqlite3* db_ = nullptr;
};

// Rows in a SQLite file, opening a fresh connection; -1 if the table cannot be read.
int64_t count_rows_or(const std::string& db_path, int64_t fallback = -1);

}  // namespace e2e
