// e2e: `sluice top` against a running daemon: --once prints the daemon's figures; the curses
// dashboard runs in a real pseudo-terminal, shows them, and exits 0 on q with the terminal
// restored; an unreachable instance is reported, not fatal to the dashboard.
#include <fmt/format.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

#include <catch2/catch.hpp>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "tests/e2e/harness.h"

namespace {

constexpr int lines_sent = 5000;

// `sluice top ARGS` on the child side of a pseudo-terminal of 40 rows by 140 columns, as a
// user's xterm (or the terminal type `term`) would run it. Everything it draws is collected in
// `screen()`.
class pty_top {
public:
    explicit pty_top(const std::vector<std::string>& args, const std::string& term = "xterm") {
        // Everything the child needs is built before fork: only exec may run after it.
        argv_strings_ = {e2e::sluice_binary(), "top"};
        argv_strings_.insert(argv_strings_.end(), args.begin(), args.end());
        for (char** e = environ; *e != nullptr; ++e) {
            if (std::string_view(*e).rfind("TERM=", 0) != 0) {
                env_strings_.emplace_back(*e);
            }
        }
        env_strings_.emplace_back("TERM=" + term);
        std::vector<char*> argv = pointers(argv_strings_);
        std::vector<char*> envp = pointers(env_strings_);
        winsize size{};
        size.ws_row = 40;
        size.ws_col = 140;
        e2e::require_main_thread("sluice top");
        const pid_t parent = ::getpid();
        pid_ = ::forkpty(&master_, nullptr, nullptr, &size);
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            e2e::die_with_parent(parent);  // never outlive an aborted test
            ::execve(argv[0], argv.data(), envp.data());
            ::_exit(127);
        }
    }
    ~pty_top() {
        if (pid_ > 0 && !exited_) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        if (master_ >= 0) {
            ::close(master_);
        }
    }
    pty_top(const pty_top&) = delete;
    pty_top& operator=(const pty_top&) = delete;

    // Reads what top draws until every one of `texts` has appeared; FAILs after the deadline.
    void wait_for_screen(const std::vector<std::string>& texts) {
        e2e::wait_for(
            "sluice top to draw " + fmt::format("{}", fmt::join(texts, ", ")),
            [&] {
                read_available();
                for (const auto& t : texts) {
                    if (output_.find(t) == std::string::npos) {
                        return false;
                    }
                }
                return true;
            },
            [&] { return "it drew: " + output_; }, e2e::default_deadline,
            std::chrono::milliseconds(20));
    }

    void type(std::string_view keys) {
        REQUIRE(::write(master_, keys.data(), keys.size()) == static_cast<ssize_t>(keys.size()));
    }

    // Waits for top to exit, reading its last output; returns the exit code (128 + signal).
    int wait_exit() {
        int status = 0;
        e2e::wait_for(
            "sluice top to exit",
            [&] {
                read_available();
                return ::waitpid(pid_, &status, WNOHANG) == pid_;
            },
            [&] { return "it drew: " + output_; });
        exited_ = true;
        read_available();
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }

    const std::string& screen() const { return output_; }

private:
    static std::vector<char*> pointers(std::vector<std::string>& strings) {
        std::vector<char*> out;
        for (auto& str : strings) {
            out.push_back(str.data());
        }
        out.push_back(nullptr);
        return out;
    }

    void read_available() {
        pollfd p{master_, POLLIN, 0};
        char buf[65536];
        while (::poll(&p, 1, 0) > 0 && (p.revents & POLLIN) != 0) {
            const ssize_t n = ::read(master_, buf, sizeof(buf));
            if (n <= 0) {
                return;  // EIO once the child has closed the terminal
            }
            output_.append(buf, static_cast<size_t>(n));
        }
    }

    std::vector<std::string> argv_strings_;
    std::vector<std::string> env_strings_;
    int master_ = -1;
    pid_t pid_ = -1;
    bool exited_ = false;
    std::string output_;
};

// A daemon with one TCP source and two sinks that has stored `lines_sent` lines.
struct loaded_daemon {
    loaded_daemon()
        : port(e2e::free_port()),
          d(fmt::format(R"(
[sources.ingress_app]
type = "tcp"
address = "127.0.0.1:{}"

[sinks.archive_file]
type = "file"
path = "out.log"
batch = {{ timeout = "50ms" }}

[sinks.store_db]
type = "sqlite"
path = "logs.db"
batch = {{ timeout = "50ms" }}
)",
                        port)) {
        std::string stream;
        for (int i = 0; i < lines_sent; ++i) {
            stream += e2e::make_line("top", static_cast<uint64_t>(i)) + "\n";
        }
        e2e::tcp_client client(port);
        REQUIRE(client.send_all(stream));
        client.shutdown_write();
        d.wait_metric("sluice_sink_events_total{sink=\"archive_file\"}", lines_sent);
        d.wait_metric("sluice_sink_events_total{sink=\"store_db\"}", lines_sent);
    }
    std::string url() const { return fmt::format("http://127.0.0.1:{}", d.api_port()); }

    uint16_t port;
    e2e::daemon d;
};

// The whitespace-separated columns of the output line that starts with `name `.
std::vector<std::string> row(const std::string& out, const std::string& name) {
    std::istringstream lines(out);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.rfind(name + " ", 0) == 0) {
            std::istringstream words(line);
            std::vector<std::string> cols;
            for (std::string w; words >> w;) {
                cols.push_back(w);
            }
            return cols;
        }
    }
    FAIL("no line starts with " << name);
    return {};
}

}  // namespace

TEST_CASE("sluice top --once prints the running instance's figures", "[e2e]") {
    loaded_daemon ld;
    const auto r = e2e::run_sluice({"top", "--once", "--url", ld.url(), "--interval", "200ms"},
                                   ld.d.dir());
    INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::StartsWith("sluice " SLUICE_VERSION " at " + ld.url()));
    CHECK_THAT(r.out, Catch::Contains("when full: block"));

    // SOURCE EVENTS/S MiB/S EVENTS DROPPED TRUNCATED DECODE-ERR PAUSED PAUSED-S: idle now.
    const auto source = row(r.out, "ingress_app");
    REQUIRE(source.size() == 9);
    CHECK(source[1] == "0");
    CHECK(source[3] == "5.0k");
    CHECK(source[4] == "0");
    CHECK(source[7] == "no");
    // SINK EVENTS/S EVENTS BATCHES LAG-EVENTS LAG-MiB LAG-S P50-MS P99-MS ERRORS RETRIES STATE
    for (const std::string sink : {"archive_file", "store_db"}) {
        const auto cols = row(r.out, sink);
        REQUIRE(cols.size() == 12);
        CHECK(cols[2] == "5.0k");
        CHECK(cols[4] == "0");
        // The 5,000 events were written: their latency is a positive number of ms.
        CHECK(std::stod(cols[8]) > 0);
        CHECK(std::stod(cols[7]) <= std::stod(cols[8]));
        CHECK(cols[9] == "0");
        CHECK(cols[11] == "ok");
    }
}

TEST_CASE("sluice top --once reports an instance it cannot reach", "[e2e]") {
    const std::string dir = e2e::make_temp_dir();
    const std::string url = fmt::format("127.0.0.1:{}", e2e::free_port());
    const auto r = e2e::run_sluice({"top", "--once", "--url", url}, dir);
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Catch::Contains("cannot reach http://" + url));
    CHECK(r.out.empty());

    const auto bad = e2e::run_sluice({"top", "--url", "https://" + url}, dir);
    CHECK(bad.exit_code == 2);
    CHECK_THAT(bad.err, Catch::Contains("only http://"));

    const auto no_tty = e2e::run_sluice({"top", "--url", url}, dir);
    CHECK(no_tty.exit_code == 2);
    CHECK_THAT(no_tty.err, Catch::Contains("needs a terminal"));
}

TEST_CASE("the sluice top dashboard shows the instance live and exits 0 on q", "[e2e]") {
    loaded_daemon ld;
    pty_top top({"--url", ld.url(), "--interval", "200ms"});
    // Names and totals from the first poll; the footer; then the rates of a later poll.
    top.wait_for_screen({"ingress_app", "archive_file", "store_db", "5.0k", "EVENTS/S",
                         "q: quit"});
    top.type("q");
    CHECK(top.wait_exit() == 0);
    // endwin() left the alternate screen: the user's terminal is back as it was.
    CHECK_THAT(top.screen(), Catch::Contains("\x1b[?1049l"));
}

TEST_CASE("the dashboard keeps polling an instance it cannot reach", "[e2e]") {
    pty_top top({"--url", fmt::format("127.0.0.1:{}", e2e::free_port()), "--interval", "200ms"});
    top.wait_for_screen({"cannot", "retrying", "q: quit"});
    top.type("q");
    CHECK(top.wait_exit() == 0);
}

TEST_CASE("the dashboard refuses a terminal type it cannot drive", "[e2e]") {
    pty_top top({"--url", fmt::format("127.0.0.1:{}", e2e::free_port())}, "no-such-terminal");
    CHECK(top.wait_exit() == 2);
    CHECK_THAT(top.screen(), Catch::Contains("cannot drive the terminal type 'no-such-terminal'"));
}
