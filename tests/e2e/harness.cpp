#include "tests/e2e/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

// TestEventListenerBase, for the listener that tells a daemon whether its test failed.
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <catch2/catch.hpp>

namespace e2e {

namespace {

// Set by the listener below when an assertion of the running test case fails, so a daemon's
// destructor knows whether to print its log and keep its temp dir.
std::atomic<bool> current_test_failed{false};

struct failure_listener : Catch::TestEventListenerBase {
    using TestEventListenerBase::TestEventListenerBase;

    void testCaseStarting(const Catch::TestCaseInfo& info) override {
        current_test_failed = false;
        TestEventListenerBase::testCaseStarting(info);
    }

    bool assertionEnded(const Catch::AssertionStats& stats) override {
        if (!stats.assertionResult.isOk()) {
            current_test_failed = true;
        }
        return true;
    }
};

bool on_main_thread() {
    static const std::thread::id main_id = std::this_thread::get_id();
    return std::this_thread::get_id() == main_id;
}

// Fails the test on the main thread; throws elsewhere (Catch v2 is not thread-safe).
[[noreturn]] void fail(const std::string& message) {
    if (on_main_thread()) {
        FAIL(message);
    }
    throw std::runtime_error(message);
}

std::string trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
        s.remove_suffix(1);
    }
    return std::string(s);
}

}  // namespace

CATCH_REGISTER_LISTENER(failure_listener)

bool current_test_has_failed() { return current_test_failed.load(); }

std::string tail_lines(const std::string& text, size_t max_lines) {
    size_t pos = text.size();
    size_t lines = 0;
    while (pos > 0) {
        const size_t nl = text.rfind('\n', pos - 1);
        if (nl == std::string::npos) {
            return text;
        }
        if (++lines > max_lines) {
            return "[...]\n" + text.substr(nl + 1);
        }
        pos = nl;
    }
    return text;
}

// ---- environment -------------------------------------------------------------------------

std::string sluice_binary() { return SLUICE_BINARY; }

uint16_t free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    socklen_t len = sizeof(addr);
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    ::close(fd);
    return ntohs(addr.sin_port);
}

std::string make_temp_dir() {
    std::string templ = "/tmp/sluice-e2e-XXXXXX";
    REQUIRE(::mkdtemp(templ.data()) != nullptr);
    return templ;
}

int64_t unix_now_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// ---- test data ---------------------------------------------------------------------------

const std::vector<std::string>& real_log_lines() {
    static const std::vector<std::string> lines = [] {
        std::vector<std::string> out;
        const std::filesystem::path dir =
            std::filesystem::path(SLUICE_SOURCE_DIR) / "tests" / "data" / "real_logs";
        std::vector<std::filesystem::path> files;
        for (const auto& entry : std::filesystem::directory_iterator(dir)) {
            if (entry.path().extension() == ".log") {
                files.push_back(entry.path());
            }
        }
        std::sort(files.begin(), files.end());
        for (const auto& f : files) {
            std::ifstream in(f, std::ios::binary);
            std::string line;
            while (std::getline(in, line)) {
                if (!line.empty() && line.back() == '\r') {
                    line.pop_back();
                }
                if (!line.empty()) {
                    out.push_back(std::move(line));
                }
            }
        }
        return out;
    }();
    if (lines.empty()) {
        fail("no real log lines found under " SLUICE_SOURCE_DIR "/tests/data/real_logs");
    }
    return lines;
}

std::string make_line(std::string_view prefix, uint64_t seq, size_t exact_length) {
    const auto& real = real_log_lines();
    char head[64];
    std::snprintf(head, sizeof(head), "-%07llu ", static_cast<unsigned long long>(seq));
    std::string line;
    line.reserve(exact_length > 0 ? exact_length : 256);
    line.append(prefix);
    line.append(head);
    line.append(real[seq % real.size()]);
    if (exact_length > 0) {
        size_t next = seq + 7;
        while (line.size() < exact_length) {
            line.push_back(' ');
            line.append(real[next++ % real.size()]);
        }
        line.resize(exact_length);
    }
    return line;
}

std::vector<std::string> read_lines(const std::string& path) {
    std::vector<std::string> out;
    std::ifstream in(path, std::ios::binary);
    std::string line;
    while (std::getline(in, line)) {
        out.push_back(std::move(line));
    }
    return out;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void write_file(const std::string& path, std::string_view content) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
    REQUIRE(out.good());
}

std::string multiset_difference(std::vector<std::string> expected,
                                std::vector<std::string> actual) {
    std::sort(expected.begin(), expected.end());
    std::sort(actual.begin(), actual.end());
    if (expected == actual) {
        return "";
    }
    std::vector<std::string> missing;
    std::vector<std::string> unexpected;
    std::set_difference(expected.begin(), expected.end(), actual.begin(), actual.end(),
                        std::back_inserter(missing));
    std::set_difference(actual.begin(), actual.end(), expected.begin(), expected.end(),
                        std::back_inserter(unexpected));
    std::ostringstream out;
    out << "expected " << expected.size() << " lines, got " << actual.size() << "; "
        << missing.size() << " missing, " << unexpected.size()
        << " unexpected (duplicates count as unexpected)";
    auto show = [&](const char* what, const std::vector<std::string>& v) {
        for (size_t i = 0; i < v.size() && i < 5; ++i) {
            out << "\n  " << what << ": \"" << v[i].substr(0, 160)
                << (v[i].size() > 160 ? "...\"" : "\"") << " (" << v[i].size() << " bytes)";
        }
    };
    show("missing", missing);
    show("unexpected", unexpected);
    return out.str();
}

// ---- waiting -----------------------------------------------------------------------------

void wait_for(const std::string& what, const std::function<bool()>& done,
              const std::function<std::string()>& describe, std::chrono::milliseconds timeout,
              std::chrono::milliseconds interval) {
    const auto deadline = clock_type::now() + timeout;
    while (!done()) {
        if (clock_type::now() >= deadline) {
            fail("timed out after " + std::to_string(timeout.count()) + " ms waiting for " + what +
                 "; state: " + (describe ? describe() : std::string("?")));
        }
        std::this_thread::sleep_for(interval);
    }
}

// ---- processes ---------------------------------------------------------------------------

namespace {

// One "NAME=VALUE" per entry: the environment with `extra` added (replacing a NAME it sets).
std::vector<std::string> environment_with(const std::vector<std::string>& extra) {
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string_view entry(*e);
        const bool replaced = std::any_of(extra.begin(), extra.end(), [&](const std::string& x) {
            const size_t eq = x.find('=');
            return entry.substr(0, entry.find('=')) == std::string_view(x).substr(0, eq);
        });
        if (!replaced) {
            env.emplace_back(entry);
        }
    }
    env.insert(env.end(), extra.begin(), extra.end());
    return env;
}

std::vector<char*> c_strings(const std::vector<std::string>& strings) {
    std::vector<char*> out;
    for (const auto& s : strings) {
        out.push_back(const_cast<char*>(s.c_str()));
    }
    out.push_back(nullptr);
    return out;
}

}  // namespace

void die_with_parent(pid_t parent) noexcept {
    // prctl and getppid are plain system calls. If the parent died between fork and prctl,
    // the signal will never come (we were already reparented): leave now instead.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) {
        ::_exit(125);
    }
}

void require_main_thread(const char* what) {
    if (::gettid() != ::getpid()) {
        fail(std::string(what) +
             ": the e2e harness starts processes on the main thread only (the parent-death "
             "signal that kills them with the test fires when the forking thread exits)");
    }
}

// fork + exec with stdout/stderr redirected to files; only async-signal-safe calls after fork.
pid_t spawn_process(const std::vector<std::string>& args, const std::string& work_dir,
                    const std::string& out_path, const std::string& err_path,
                    const std::vector<std::string>& extra_env) {
    require_main_thread(args.empty() ? "spawn_process" : args[0].c_str());
    const std::vector<std::string> env = environment_with(extra_env);
    std::vector<char*> argv = c_strings(args);
    std::vector<char*> envp = c_strings(env);
    const int out_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int err_fd =
        out_path == err_path
            ? out_fd
            : ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REQUIRE(out_fd >= 0);
    REQUIRE(err_fd >= 0);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        die_with_parent(parent);
        const int null_fd = ::open("/dev/null", O_RDONLY);
        if (null_fd >= 0) {
            ::dup2(null_fd, STDIN_FILENO);
        }
        ::dup2(out_fd, STDOUT_FILENO);
        ::dup2(err_fd, STDERR_FILENO);
        if (::chdir(work_dir.c_str()) != 0) {
            ::_exit(126);
        }
        ::execve(argv[0], argv.data(), envp.data());
        ::_exit(127);
    }
    ::close(out_fd);
    if (err_fd != out_fd) {
        ::close(err_fd);
    }
    return pid;
}

int decode_status(int status) {
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    if (WIFSIGNALED(status)) {
        return 128 + WTERMSIG(status);
    }
    return -1;
}

command_result run_sluice(const std::vector<std::string>& args, const std::string& work_dir,
                          std::chrono::milliseconds timeout) {
    std::vector<std::string> argv{sluice_binary()};
    argv.insert(argv.end(), args.begin(), args.end());
    const std::string out_path = work_dir + "/cmd.out";
    const std::string err_path = work_dir + "/cmd.err";
    const pid_t pid = spawn_process(argv, work_dir, out_path, err_path);
    const auto deadline = clock_type::now() + timeout;
    int status = 0;
    while (true) {
        const pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            break;
        }
        if (clock_type::now() >= deadline) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            fail("sluice did not exit within " + std::to_string(timeout.count()) +
                 " ms; stderr: " + read_file(err_path));
        }
        std::this_thread::sleep_for(10ms);
    }
    return {decode_status(status), read_file(out_path), read_file(err_path)};
}

// ---- metrics -----------------------------------------------------------------------------

std::string normalise_metric_key(std::string_view key) {
    const size_t brace = key.find('{');
    if (brace == std::string_view::npos) {
        return trim(key);
    }
    const std::string name = trim(key.substr(0, brace));
    const size_t close = key.rfind('}');
    std::string_view body = key.substr(
        brace + 1, close == std::string_view::npos ? std::string_view::npos : close - brace - 1);
    std::vector<std::pair<std::string, std::string>> labels;
    size_t i = 0;
    while (i < body.size()) {
        while (i < body.size() && (body[i] == ',' || body[i] == ' ')) {
            ++i;
        }
        const size_t eq = body.find('=', i);
        if (eq == std::string_view::npos) {
            break;
        }
        std::string label = trim(body.substr(i, eq - i));
        size_t j = eq + 1;
        std::string value;
        if (j < body.size() && body[j] == '"') {
            ++j;
            while (j < body.size() && body[j] != '"') {
                if (body[j] == '\\' && j + 1 < body.size()) {
                    value.push_back(body[j]);
                    ++j;
                }
                value.push_back(body[j]);
                ++j;
            }
            ++j;
        }
        labels.emplace_back(std::move(label), std::move(value));
        i = j;
    }
    std::sort(labels.begin(), labels.end());
    std::string out = name + "{";
    for (size_t k = 0; k < labels.size(); ++k) {
        out += (k > 0 ? "," : "") + labels[k].first + "=\"" + labels[k].second + "\"";
    }
    return out + "}";
}

metric_map parse_prometheus(std::string_view text) {
    metric_map out;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t end = text.find('\n', pos);
        if (end == std::string_view::npos) {
            end = text.size();
        }
        const std::string line = trim(text.substr(pos, end - pos));
        pos = end + 1;
        if (line.empty() || line[0] == '#') {
            continue;
        }
        // The value follows the label set (which may contain spaces inside quotes).
        const size_t close = line.rfind('}');
        const size_t space = line.find(' ', close == std::string::npos ? 0 : close);
        if (space == std::string::npos) {
            continue;
        }
        std::string value = trim(line.substr(space + 1));
        const size_t ts = value.find(' ');
        if (ts != std::string::npos) {
            value.resize(ts);  // an optional timestamp follows
        }
        double v = 0;
        if (value == "+Inf") {
            v = HUGE_VAL;
        } else if (value == "-Inf") {
            v = -HUGE_VAL;
        } else {
            v = std::strtod(value.c_str(), nullptr);
        }
        out[normalise_metric_key(line.substr(0, space))] = v;
    }
    return out;
}

// ---- the daemon --------------------------------------------------------------------------

daemon::daemon(std::string body, std::string shutdown_timeout, std::string data_dir)
    : dir_(make_temp_dir()),
      config_path_(dir_ + "/sluice.toml"),
      log_path_(dir_ + "/sluice.log"),
      data_dir_(data_dir.empty() ? dir_ + "/data" : std::move(data_dir)),
      api_port_(free_port()) {
    // Top-level keys at the head of `body` (io_threads = 4) must come before any table.
    size_t tables = body.find("\n[");
    tables = body.starts_with("[") ? 0 : tables == std::string::npos ? body.size() : tables + 1;
    std::string config = "data_dir = \"" + data_dir_ + "\"\nshutdown_timeout = \"" +
                         shutdown_timeout + "\"\n" + body.substr(0, tables) +
                         "\n[api]\naddress = \"127.0.0.1:" + std::to_string(api_port_) +
                         "\"\n\n" + body.substr(tables);
    write_file(config_path_, config);
    pid_ = spawn_process({sluice_binary(), "run", "-c", config_path_, "--log-level", "info"}, dir_,
                         log_path_, log_path_);
    // /health must answer while our child is alive (the port could be someone else's).
    // A failed constructor runs no destructor: kill the child here.
    try {
        wait_until_healthy();
    } catch (...) {
        kill_now();
        std::cerr << "==== sluice e2e: daemon did not come up; temp dir kept: " << dir_ << "\n"
                  << read_file(config_path_) << "\n---- log\n"
                  << tail_lines(log(), 200) << "==== end of sluice log\n";
        throw;
    }
}

void daemon::wait_until_healthy() {
    wait_for(
        "sluice's GET /health",
        [&] {
            if (!running()) {
                fail("sluice exited with " + std::to_string(exit_code_) +
                     " before /health answered; log:\n" + log());
            }
            const auto health = http_get("/health");
            return health.has_value();
        },
        [&] { return "log:\n" + tail_lines(log(), 40); }, 30s, 20ms);
}

daemon::~daemon() {
    stop_rss_sampling();
    kill_now();
    const bool failed = current_test_failed || std::uncaught_exceptions() > 0;
    if (failed) {
        std::cerr << "==== sluice e2e: test failed; temp dir kept: " << dir_ << "\n"
                  << "---- config " << config_path_ << "\n"
                  << read_file(config_path_) << "\n---- log " << log_path_ << " (exit code "
                  << exit_code_ << ")\n"
                  << tail_lines(log(), 200) << "==== end of sluice log\n";
    } else {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
}

std::string daemon::log() const { return read_file(log_path_); }

void daemon::signal(int sig) {
    REQUIRE(pid_ > 0);
    REQUIRE_FALSE(exited_);
    REQUIRE(::kill(pid_, sig) == 0);
}

bool daemon::running() {
    if (exited_) {
        return false;
    }
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
        exited_ = true;
        exit_code_ = decode_status(status);
        return false;
    }
    return true;
}

int daemon::wait_exit(std::chrono::milliseconds timeout) {
    wait_for(
        "sluice to exit", [&] { return !running(); },
        [&] { return "still running; log:\n" + tail_lines(log(), 30); }, timeout, 10ms);
    stop_rss_sampling();
    return exit_code_;
}

void daemon::kill_now() {
    if (pid_ > 0 && running()) {
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        exited_ = true;
        exit_code_ = decode_status(status);
    }
}

std::optional<std::string> daemon::http_get(const std::string& path) const {
    httplib::Client client("127.0.0.1", api_port_);
    client.set_connection_timeout(2, 0);
    client.set_read_timeout(10, 0);
    auto res = client.Get(path.c_str());
    if (!res || res->status != 200) {
        return std::nullopt;
    }
    return res->body;
}

metric_map daemon::metrics() const {
    auto body = http_get("/metrics");
    if (!body) {
        // One retry: a busy 2-core machine can miss the first.
        std::this_thread::sleep_for(100ms);
        body = http_get("/metrics");
    }
    if (!body) {
        fail("GET /metrics did not answer 200");
    }
    return parse_prometheus(*body);
}

double daemon::metric(const std::string& key) const {
    const auto all = metrics();
    const auto it = all.find(normalise_metric_key(key));
    if (it == all.end()) {
        fail("metric " + key + " is not in /metrics");
    }
    return it->second;
}

void daemon::wait_metric(const std::string& key, double value, std::chrono::milliseconds timeout,
                         bool at_least) const {
    const std::string norm = normalise_metric_key(key);
    double seen = -1;
    wait_for(
        key + (at_least ? " >= " : " == ") + std::to_string(value),
        [&] {
            const auto all = metrics();
            const auto it = all.find(norm);
            if (it == all.end()) {
                return false;
            }
            seen = it->second;
            return at_least ? seen >= value : seen == value;
        },
        [&] { return key + " = " + std::to_string(seen) + "\n" + metrics_summary(); }, timeout,
        50ms);
}

std::string daemon::metrics_summary() const {
    const auto body = http_get("/metrics");
    if (!body) {
        return "(GET /metrics did not answer)";
    }
    std::ostringstream out;
    for (const auto& [k, v] : parse_prometheus(*body)) {
        if (k.find("_bucket") != std::string::npos) {
            continue;
        }
        out << "  " << k << " " << v << "\n";
    }
    return out.str();
}

uint64_t proc_status_bytes(pid_t pid, std::string_view field) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.compare(0, field.size(), field) == 0 && line.size() > field.size() &&
            line[field.size()] == ':') {
            return std::strtoull(line.c_str() + field.size() + 1, nullptr, 10) * 1024;
        }
    }
    return 0;
}

void daemon::start_rss_sampling() {
    if (sampling_.exchange(true)) {
        return;
    }
    const pid_t pid = pid_;
    sampler_ = std::thread([this, pid] {
        while (sampling_) {
            const uint64_t rss = proc_status_bytes(pid, "VmRSS");
            uint64_t peak = peak_rss_.load();
            while (rss > peak && !peak_rss_.compare_exchange_weak(peak, rss)) {
            }
            std::this_thread::sleep_for(20ms);
        }
    });
}

void daemon::stop_rss_sampling() {
    sampling_ = false;
    if (sampler_.joinable()) {
        sampler_.join();
    }
}

uint64_t daemon::vm_hwm_bytes() const { return proc_status_bytes(pid_, "VmHWM"); }

double daemon::cpu_seconds() const {
    const std::string stat = read_file("/proc/" + std::to_string(pid_) + "/stat");
    // Fields after "(comm)": state is field 3, utime 14, stime 15.
    const size_t close = stat.rfind(')');
    if (close == std::string::npos) {
        fail("cannot read /proc/" + std::to_string(pid_) + "/stat");
    }
    std::istringstream in(stat.substr(close + 2));
    std::string field;
    uint64_t utime = 0;
    uint64_t stime = 0;
    for (int i = 3; i <= 15 && in >> field; ++i) {
        if (i == 14) {
            utime = std::stoull(field);
        } else if (i == 15) {
            stime = std::stoull(field);
        }
    }
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// ---- TCP client --------------------------------------------------------------------------

tcp_client::tcp_client(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) {
        fail(std::string("socket: ") + std::strerror(errno));
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        const std::string why = std::strerror(errno);
        ::close(fd_);
        fd_ = -1;
        fail("connect to 127.0.0.1:" + std::to_string(port) + ": " + why);
    }
}

tcp_client::~tcp_client() { close(); }

tcp_client::tcp_client(tcp_client&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }

bool tcp_client::send_all(std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                wait_writable(100ms);
                continue;
            }
            return false;
        }
        data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

void tcp_client::set_nonblocking(bool on) {
    const int flags = ::fcntl(fd_, F_GETFL);
    ::fcntl(fd_, F_SETFL, on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK));
}

ssize_t tcp_client::try_send(std::string_view data) {
    while (true) {
        const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) {
            return n;
        }
        if (errno == EINTR) {
            continue;
        }
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    }
}

bool tcp_client::wait_writable(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLOUT, 0};
    return ::poll(&p, 1, static_cast<int>(timeout.count())) > 0;
}

void tcp_client::shutdown_write() {
    if (fd_ >= 0) {
        ::shutdown(fd_, SHUT_WR);
    }
}

void tcp_client::close() {
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
}

// ---- SQLite ------------------------------------------------------------------------------

sqlite_db::sqlite_db(const std::string& path) {
    const int rc = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr);
    if (rc != SQLITE_OK) {
        const std::string why = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
        sqlite3_close(db_);
        db_ = nullptr;
        fail("cannot open " + path + ": " + why);
    }
    sqlite3_busy_timeout(db_, 10'000);
}

sqlite_db::~sqlite_db() { sqlite3_close(db_); }

int sqlite_db::try_exec(const std::string& sql, std::string* error) {
    char* msg = nullptr;
    const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &msg);
    if (error != nullptr) {
        *error = msg ? msg : "";
    }
    sqlite3_free(msg);
    return rc;
}

void sqlite_db::exec(const std::string& sql) {
    std::string error;
    const int rc = try_exec(sql, &error);
    if (rc != SQLITE_OK) {
        fail("SQL '" + sql + "' failed: " + error);
    }
}

namespace {

struct statement {
    sqlite3_stmt* stmt = nullptr;
    statement(sqlite3* db, const std::string& sql) {
        if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
            fail("cannot prepare '" + sql + "': " + sqlite3_errmsg(db));
        }
    }
    ~statement() { sqlite3_finalize(stmt); }
    std::string text(int col) const {
        const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, col));
        return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt, col))) : "";
    }
};

}  // namespace

int64_t sqlite_db::count_rows(const std::string& table) {
    statement s(db_, "SELECT count(*) FROM " + table);
    if (sqlite3_step(s.stmt) != SQLITE_ROW) {
        fail(std::string("count(*) failed: ") + sqlite3_errmsg(db_));
    }
    return sqlite3_column_int64(s.stmt, 0);
}

std::vector<std::string> sqlite_db::messages(const std::string& table) {
    std::vector<std::string> out;
    for_each_message([&](std::string_view m) { out.emplace_back(m); }, table);
    return out;
}

void sqlite_db::for_each_message(const std::function<void(std::string_view)>& f,
                                 const std::string& table) {
    statement s(db_, "SELECT message FROM " + table + " ORDER BY id");
    int rc = 0;
    while ((rc = sqlite3_step(s.stmt)) == SQLITE_ROW) {
        const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s.stmt, 0));
        f(std::string_view(p ? p : "", static_cast<size_t>(sqlite3_column_bytes(s.stmt, 0))));
    }
    if (rc != SQLITE_DONE) {
        fail(std::string("SELECT message failed: ") + sqlite3_errmsg(db_));
    }
}

std::vector<log_row> sqlite_db::rows(const std::string& table) {
    statement s(db_,
                "SELECT id, received_at, source, host, message FROM " + table + " ORDER BY id");
    std::vector<log_row> out;
    int rc = 0;
    while ((rc = sqlite3_step(s.stmt)) == SQLITE_ROW) {
        log_row r;
        r.id = sqlite3_column_int64(s.stmt, 0);
        r.received_at = sqlite3_column_int64(s.stmt, 1);
        r.source = s.text(2);
        if (sqlite3_column_type(s.stmt, 3) != SQLITE_NULL) {
            r.host = s.text(3);
        }
        r.message = s.text(4);
        out.push_back(std::move(r));
    }
    if (rc != SQLITE_DONE) {
        fail(std::string("SELECT rows failed: ") + sqlite3_errmsg(db_));
    }
    return out;
}

int64_t count_rows_or(const std::string& db_path, int64_t fallback) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
        sqlite3_close(db);
        return fallback;
    }
    sqlite3_busy_timeout(db, 1000);
    int64_t n = fallback;
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM logs", -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
        n = sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return n;
}

}  // namespace e2e
