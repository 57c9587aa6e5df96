// top_terminal: `sluice top`, the live terminal dashboard of a running instance. It polls the
// instance's GET /status (cpp-httplib client) and draws app/top's screen with ncurses until
// the user presses q; `--once` prints one screen as plain text instead, for scripts and
// terminals without curses. Runs on the calling thread; blocks until it is done.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace sluice {

struct top_options {
    std::string url = "http://127.0.0.1:9598";   // the instance's [api] address
    std::chrono::milliseconds interval{1000};   // between two polls of /status
    bool once = false;                          // print one screen and exit
};

// "127.0.0.1:9598" or "http://127.0.0.1:9598/" -> "http://127.0.0.1:9598". nullopt, with
// `error` set, for another scheme, a path, or no host.
std::optional<std::string> normalize_top_url(std::string_view url, std::string& error);

// Runs `sluice top` and returns its exit code: 0 after q (or after --once printed), 1 when
// --once cannot read the instance, 2 for a bad URL, no terminal, or one curses cannot drive.
int run_top(const top_options& options);

}  // namespace sluice
