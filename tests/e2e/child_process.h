// e2e helpers for the TLS and connection tests: a helper process (openssl s_client, rsyslogd)
// run by PID, the s_client command line, and waiting for sluice to close a client socket.
// For the test's main thread, like the harness.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/harness.h"
#include "tests/tls_certs.h"

namespace e2e {

// A directory for the test's own files (certificates, inputs, helpers' logs), removed with
// everything in it at the end of the test; what a failure needs is in its messages.
class scratch_dir {
  public:
    scratch_dir() : path_(make_temp_dir()) {}
    ~scratch_dir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    scratch_dir(const scratch_dir&) = delete;
    scratch_dir& operator=(const scratch_dir&) = delete;
    const std::string& path() const { return path_; }

  private:
    std::string path_;
};

// A process the test started, with its output in one log file. It is SIGKILLed and reaped at
// the latest when this goes out of scope, and dies with the test process (spawn_process).
class child_process {
  public:
    child_process(const std::vector<std::string>& args, const std::string& work_dir,
                  std::string log_path)
        : log_(std::move(log_path)), pid_(spawn_process(args, work_dir, log_, log_)) {}
    ~child_process() { kill(); }
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;

    pid_t pid() const { return pid_; }
    std::string log() const { return read_file(log_); }

    // False once it has exited (and is reaped).
    bool running() {
        if (!reaped_) {
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                reap(status);
            }
        }
        return !reaped_;
    }

    // Its exit code (128 + signal); FAILs, with its output, if it runs past `timeout`.
    int wait_exit(std::chrono::milliseconds timeout = default_deadline) {
        const auto deadline = clock_type::now() + timeout;
        while (running()) {
            if (clock_type::now() > deadline) {
                FAIL("pid " << pid_ << " still runs after " << timeout.count()
                            << " ms; its output:\n"
                            << log());
            }
            std::this_thread::sleep_for(20ms);
        }
        return exit_code_;
    }

    void kill() {
        if (running()) {
            ::kill(pid_, SIGKILL);
            int status = 0;
            ::waitpid(pid_, &status, 0);
            reap(status);
        }
    }

  private:
    void reap(int status) {
        reaped_ = true;
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }

    std::string log_;
    pid_t pid_ = -1;
    bool reaped_ = false;
    int exit_code_ = -1;
};

// `openssl s_client` sending the file `input` to 127.0.0.1:port: it checks sluice's
// certificate against the test CA and for 127.0.0.1, presents `cert` when given, and ends
// at the end of its input (-no_ign_eof, which -quiet would turn off). -nocommands, because
// without it a read from the input that starts with Q, R or k is taken as a command (quit,
// renegotiate, key update) and never sent: a file of log lines loses some.
inline std::vector<std::string> s_client_command(uint16_t port,
                                                 const sluice::test::tls_certs& certs,
                                                 const std::string& input,
                                                 const std::string& cert = "",
                                                 const std::string& key = "") {
    std::string command = "exec openssl s_client -connect 127.0.0.1:" + std::to_string(port) +
                          " -quiet -no_ign_eof -nocommands -verify_return_error -verify_ip "
                          "127.0.0.1 -CAfile '" +
                          certs.ca + "'";
    if (!cert.empty()) {
        command += " -cert '" + cert + "' -key '" + key + "'";
    }
    command += " < '" + input + "'";
    return {"/bin/sh", "-c", command};
}

// Waits until the peer has closed `fd` (a read returns 0 or fails, e.g. with a reset), reading
// and dropping what comes before; false if it is still open after `timeout`.
inline bool wait_closed_by_peer(int fd, std::chrono::milliseconds timeout) {
    const auto deadline = clock_type::now() + timeout;
    char buffer[4096];
    while (clock_type::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
        if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 1))) <= 0) {
            continue;
        }
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            return true;
        }
    }
    return false;
}

}  // namespace e2e
