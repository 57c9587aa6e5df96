#include "app/top_terminal.h"

#include <fmt/format.h>
#include <httplib.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <thread>

#include "app/top.h"
#include "common/error.h"
// Last: curses defines macros (timeout, erase, refresh, OK) that would rewrite the headers
// above.
#include <curses.h>

namespace sluice {

namespace {

constexpr int exit_ok = 0;
constexpr int exit_unreachable = 1;
constexpr int exit_usage = 2;

// One poll of GET /status: a snapshot, or what went wrong.
struct poll_result {
    std::optional<top_snapshot> snapshot;
    std::string error;
};

class status_client {
public:
    explicit status_client(const std::string& url) : url_(url), client_(url) {
        client_.set_connection_timeout(std::chrono::seconds(1));
        client_.set_read_timeout(std::chrono::seconds(2));
    }

    poll_result poll() {
        poll_result r;
        const auto res = client_.Get("/status");
        if (!res) {
            r.error =
                fmt::format("cannot reach {} ({} error)", url_, httplib::to_string(res.error()));
            return r;
        }
        if (res->status != 200) {
            r.error = fmt::format("{}/status answered HTTP {}", url_, res->status);
            return r;
        }
        std::string why;
        r.snapshot = parse_top_snapshot(res->body, why);
        if (!r.snapshot) {
            r.error = fmt::format("{}/status: unexpected answer: {}", url_, why);
        }
        return r;
    }

private:
    std::string url_;
    httplib::Client client_;
};

int print_once(const top_options& options, const std::string& url) {
    status_client client(url);
    poll_result first = client.poll();
    if (!first.snapshot) {
        std::cerr << "sluice top: " << first.error << '\n';
        return exit_unreachable;
    }
    // A second snapshot one interval later gives the rates.
    std::this_thread::sleep_for(options.interval);
    poll_result second = client.poll();
    if (!second.snapshot) {
        std::cerr << "sluice top: " << second.error << '\n';
        return exit_unreachable;
    }
    for (const top_line& line : render_top(*second.snapshot, &*first.snapshot, url, "")) {
        std::cout << line.text << '\n';
    }
    return exit_ok;
}

// ncurses for the lifetime of the dashboard; endwin() restores the terminal on every exit.
class curses_screen {
public:
    curses_screen() {
        // newterm, not initscr: initscr exits the process when TERM names no known terminal.
        screen_ = newterm(nullptr, stdout, stdin);
        if (screen_ == nullptr) {
            const char* term = std::getenv("TERM");
            throw error(fmt::format("cannot drive the terminal type '{}'; --once prints one "
                                    "screen as plain text",
                                    term == nullptr ? "" : term));
        }
        cbreak();
        noecho();
        keypad(stdscr, TRUE);
        curs_set(0);
    }
    ~curses_screen() {
        endwin();
        delscreen(screen_);
    }
    curses_screen(const curses_screen&) = delete;
    curses_screen& operator=(const curses_screen&) = delete;

    void draw(const std::vector<top_line>& lines, const std::string& footer) {
        erase();
        const int rows = LINES - 1;  // the last row is the footer
        for (int i = 0; i < rows && i < static_cast<int>(lines.size()); ++i) {
            const top_line& line = lines[static_cast<size_t>(i)];
            const attr_t attr = line.style == top_style::header  ? A_BOLD
                                : line.style == top_style::alert ? A_REVERSE
                                                                 : A_NORMAL;
            attron(attr);
            mvaddnstr(i, 0, line.text.c_str(), COLS);
            attroff(attr);
        }
        attron(A_DIM);
        mvaddnstr(LINES - 1, 0, footer.c_str(), COLS);
        attroff(A_DIM);
        refresh();
    }

    // Waits up to `wait` for a key; returns it, or ERR when none came.
    int key(std::chrono::milliseconds wait) {
        timeout(static_cast<int>(std::max<int64_t>(0, wait.count())));
        return getch();
    }

private:
    SCREEN* screen_ = nullptr;
};

int dashboard(const top_options& options, const std::string& url) {
    status_client client(url);
    curses_screen screen;
    std::optional<top_snapshot> current;
    std::optional<top_snapshot> previous;
    std::string notice;
    const std::string footer = fmt::format("q: quit   polling {}/status every {} ms", url,
                                           options.interval.count());
    auto redraw = [&] {
        if (current) {
            screen.draw(render_top(*current, previous ? &*previous : nullptr, url, notice),
                        footer);
        } else {
            screen.draw({{fmt::format("sluice top: {}", url), top_style::header},
                         {notice, top_style::alert}},
                        footer);
        }
    };
    for (;;) {
        poll_result r = client.poll();
        if (r.snapshot) {
            previous = std::move(current);
            current = std::move(r.snapshot);
            notice.clear();
        } else {
            notice = current ? r.error + "; the figures below are the last ones read; retrying"
                             : r.error + "; retrying";
        }
        redraw();
        const auto next_poll = std::chrono::steady_clock::now() + options.interval;
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                next_poll - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                break;
            }
            const int k = screen.key(left);
            if (k == 'q' || k == 'Q') {
                return exit_ok;
            }
            if (k == KEY_RESIZE) {
                redraw();
            }
        }
    }
}

}  // namespace

std::optional<std::string> normalize_top_url(std::string_view url, std::string& error) {
    std::string_view rest = url;
    if (const size_t scheme_end = rest.find("://"); scheme_end != std::string_view::npos) {
        if (rest.substr(0, scheme_end) != "http") {
            error = fmt::format("--url '{}': only http:// is served by sluice's API", url);
            return std::nullopt;
        }
        rest.remove_prefix(scheme_end + 3);
    }
    if (!rest.empty() && rest.back() == '/') {
        rest.remove_suffix(1);
    }
    if (rest.empty() || rest.front() == ':') {
        error = fmt::format("--url '{}': no host", url);
        return std::nullopt;
    }
    if (rest.find('/') != std::string_view::npos) {
        error = fmt::format("--url '{}': give the API's address without a path, as in "
                            "http://127.0.0.1:9598",
                            url);
        return std::nullopt;
    }
    return "http://" + std::string(rest);
}

int run_top(const top_options& options) {
    std::string why;
    const auto url = normalize_top_url(options.url, why);
    if (!url) {
        std::cerr << "sluice top: " << why << '\n';
        return exit_usage;
    }
    if (options.once) {
        return print_once(options, *url);
    }
    if (isatty(STDIN_FILENO) == 0 || isatty(STDOUT_FILENO) == 0) {
        std::cerr << "sluice top: needs a terminal; --once prints one screen as plain text\n";
        return exit_usage;
    }
    try {
        return dashboard(options, *url);
    } catch (const error& e) {
        std::cerr << "sluice top: " << e.what() << '\n';
        return exit_usage;
    }
}

}  // namespace sluice
