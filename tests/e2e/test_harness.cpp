// e2e: the harness itself. A daemon it starts must not outlive its test process, however that
// process ends: here a helper process (this binary, running the hidden test case below) starts
// a daemon through the harness and is then SIGKILLed (as ctest does on a timeout) or calls
// std::terminate (an uncaught exception, a throwing destructor); the daemon must be gone within
// a few seconds.
#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>

#include "tests/e2e/harness.h"

namespace {

using namespace std::chrono_literals;

// Environment of the helper: where it writes "DAEMON_PID DAEMON_DIR\n", and how it ends.
constexpr const char* pid_file_env = "SLUICE_E2E_HELPER_PID_FILE";
constexpr const char* end_env = "SLUICE_E2E_HELPER_END";  // "sigkill" or "terminate"

// A process's start time (field 22 of /proc/PID/stat, clock ticks since boot) and state
// (field 3); empty when there is no such process. With the start time, a pid the kernel has
// since reused is not taken for the daemon.
struct proc_stat {
    char state = 0;
    std::string start_time;
};

proc_stat read_proc_stat(pid_t pid) {
    const std::string stat = e2e::read_file("/proc/" + std::to_string(pid) + "/stat");
    const size_t close = stat.rfind(')');
    if (close == std::string::npos || close + 2 >= stat.size()) {
        return {};
    }
    std::istringstream in(stat.substr(close + 2));
    proc_stat out;
    std::string field;
    for (int i = 3; i <= 22 && in >> field; ++i) {
        if (i == 3) {
            out.state = field[0];
        } else if (i == 22) {
            out.start_time = field;
        }
    }
    return out;
}

// Whether `pid` is still the process that started at `start_time` and has not died (a zombie
// is dead: it only waits for whoever adopted it to reap it).
bool still_running(pid_t pid, const std::string& start_time) {
    const proc_stat now = read_proc_stat(pid);
    return now.start_time == start_time && now.state != 'Z' && now.state != 'X';
}

}  // namespace

// The helper, run only by the test below (hidden: ctest does not list it).
TEST_CASE("harness helper: start a daemon, then die as told", "[.][harness-helper]") {
    const char* pid_file = std::getenv(pid_file_env);
    const char* end = std::getenv(end_env);
    if (pid_file == nullptr || end == nullptr) {
        WARN("run only by 'harness: a daemon dies with its test process'");
        return;
    }
    e2e::daemon d(fmt::format(R"(
[sources.app]
type = "tcp"
address = "127.0.0.1:{}"

[sinks.archive]
type = "file"
path = "logs/out.log"
)",
                              e2e::free_port()));
    const std::string tmp = std::string(pid_file) + ".tmp";
    e2e::write_file(tmp, std::to_string(d.pid()) + " " + d.dir() + "\n");
    std::filesystem::rename(tmp, pid_file);
    // The test reads the daemon's start time, then says go (terminate) or kills us (sigkill).
    const std::string go = std::string(pid_file) + ".go";
    const auto deadline = e2e::clock_type::now() + 60s;
    while (e2e::clock_type::now() < deadline) {
        if (std::string_view(end) == "terminate" && std::filesystem::exists(go)) {
            std::terminate();  // no destructor runs: ~daemon never kills the daemon
        }
        std::this_thread::sleep_for(10ms);
    }
    FAIL("the test neither killed this helper nor told it to end");
}

TEST_CASE("harness: a daemon dies with its test process, however that ends", "[harness]") {
    const std::string how = GENERATE("sigkill", "terminate");
    INFO("the helper ends by " << how);
    const std::string dir = e2e::make_temp_dir();
    const std::string pid_file = dir + "/daemon.pid";
    const std::string helper_log = dir + "/helper.log";
    const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
    const pid_t helper = e2e::spawn_process(
        {self, "[harness-helper]"}, dir, helper_log, helper_log,
        {std::string(pid_file_env) + "=" + pid_file, std::string(end_env) + "=" + how});
    int helper_status = 0;
    bool helper_reaped = false;
    const auto reap_helper = [&](int options) {
        if (!helper_reaped && ::waitpid(helper, &helper_status, options) == helper) {
            helper_reaped = true;
        }
        return helper_reaped;
    };

    e2e::wait_for(
        "the helper to start a daemon",
        [&] {
            if (reap_helper(WNOHANG)) {
                FAIL("the helper exited before starting a daemon; its output:\n" +
                     e2e::read_file(helper_log));
            }
            return std::filesystem::exists(pid_file);
        },
        [&] { return "helper output:\n" + e2e::read_file(helper_log); }, 60s);
    std::istringstream in(e2e::read_file(pid_file));
    pid_t daemon_pid = -1;
    std::string daemon_dir;
    in >> daemon_pid >> daemon_dir;
    REQUIRE(daemon_pid > 0);
    const proc_stat before = read_proc_stat(daemon_pid);
    REQUIRE_FALSE(before.start_time.empty());
    REQUIRE(e2e::read_file("/proc/" + std::to_string(daemon_pid) + "/comm") == "sluice\n");

    if (how == "sigkill") {
        REQUIRE(::kill(helper, SIGKILL) == 0);
    } else {
        e2e::write_file(pid_file + ".go", "");
    }
    e2e::wait_for(
        "the helper to end", [&] { return reap_helper(WNOHANG); },
        [&] { return "helper output:\n" + e2e::read_file(helper_log); }, 30s, 10ms);
    REQUIRE(WIFSIGNALED(helper_status));
    CHECK(WTERMSIG(helper_status) == (how == "sigkill" ? SIGKILL : SIGABRT));

    // The kernel delivers the parent-death signal as the helper exits; allow for a slow box.
    const auto deadline = e2e::clock_type::now() + 5s;
    while (still_running(daemon_pid, before.start_time) && e2e::clock_type::now() < deadline) {
        std::this_thread::sleep_for(10ms);
    }
    const bool leaked = still_running(daemon_pid, before.start_time);
    if (leaked) {
        ::kill(daemon_pid, SIGKILL);  // do not leave it behind ourselves
    }
    INFO("daemon pid " << daemon_pid << "; helper output:\n" << e2e::read_file(helper_log));
    CHECK_FALSE(leaked);

    std::error_code ec;
    if (!daemon_dir.empty()) {
        std::filesystem::remove_all(daemon_dir, ec);  // its ~daemon never ran
    }
    std::filesystem::remove_all(dir, ec);
}
