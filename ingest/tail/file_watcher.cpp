#include "ingest/tail/file_watcher.h"

#include <fnmatch.h>
#include <glob.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "common/error.h"

namespace sluice {

namespace {

constexpr uint32_t watch_mask = IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
                                IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;

std::vector<std::string> expand(const std::string& pattern, int flags) {
    glob_t g{};
    std::vector<std::string> out;
    if (::glob(pattern.c_str(), flags | GLOB_NOSORT, nullptr, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; ++i) {
            out.emplace_back(g.gl_pathv[i]);
        }
    }
    ::globfree(&g);
    return out;
}

}  // namespace

file_watcher::file_watcher(asio::io_context& io, std::vector<std::string> include,
                           std::vector<std::string> exclude)
    : include_(std::move(include)), exclude_(std::move(exclude)), descriptor_(io) {}

file_watcher::~file_watcher() { stop(); }

bool file_watcher::matches(const std::string& path) const {
    bool included = false;
    for (const auto& p : include_) {
        included = included || ::fnmatch(p.c_str(), path.c_str(), FNM_PATHNAME) == 0;
    }
    if (!included) {
        return false;
    }
    for (const auto& p : exclude_) {
        // An exclude pattern without a slash names files in any directory ("*.gz").
        const bool by_name = p.find('/') == std::string::npos;
        const std::string subject =
            by_name ? std::filesystem::path(path).filename().string() : path;
        if (::fnmatch(p.c_str(), subject.c_str(), by_name ? 0 : FNM_PATHNAME) == 0) {
            return false;
        }
    }
    return true;
}

std::vector<found_file> file_watcher::scan() {
    std::vector<found_file> out;
    for (const auto& pattern : include_) {
        if (inotify_fd_ >= 0) {
            const std::string dir_pattern = std::filesystem::path(pattern).parent_path().string();
            for (const auto& dir : expand(dir_pattern.empty() ? "." : dir_pattern, GLOB_ONLYDIR)) {
                watch_directory(dir);
            }
        }
        for (auto& path : expand(pattern, 0)) {
            struct stat st {};
            if (!matches(path) || ::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
                continue;
            }
            bool seen = false;
            for (const auto& f : out) {
                seen = seen || f.path == path;
            }
            if (!seen) {
                out.push_back(found_file{std::move(path), static_cast<uint64_t>(st.st_dev),
                                         static_cast<uint64_t>(st.st_ino),
                                         static_cast<int64_t>(st.st_size)});
            }
        }
    }
    return out;
}

void file_watcher::start_inotify() {
    inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (inotify_fd_ < 0) {
        throw error(std::string("inotify_init1: ") + std::strerror(errno));
    }
    descriptor_.assign(inotify_fd_);
}

void file_watcher::watch_directory(const std::string& dir) {
    if (watched_.count(dir) != 0) {
        return;
    }
    const int wd = ::inotify_add_watch(inotify_fd_, dir.c_str(), watch_mask | IN_ONLYDIR);
    if (wd < 0) {
        spdlog::warn("Cannot watch directory {} with inotify ({}); it is rescanned instead.", dir,
                     std::strerror(errno));
        return;
    }
    directories_[wd] = dir;
    watched_[dir] = wd;
}

asio::awaitable<std::vector<watch_event>> file_watcher::next_events() {
    std::vector<watch_event> out;
    alignas(inotify_event) char buf[64 * 1024];
    while (descriptor_.is_open()) {
        const ssize_t n = ::read(inotify_fd_, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            if (!out.empty()) {
                co_return out;
            }
            auto [ec] = co_await descriptor_.async_wait(
                asio::posix::descriptor_base::wait_read,
                asio::experimental::as_tuple(asio::use_awaitable));
            if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) {
                co_return out;  // stopped: the descriptor was closed
            }
            if (ec) {
                throw asio::system_error(ec, "waiting for inotify events");
            }
            continue;
        }
        for (ssize_t i = 0; i < n;) {
            const auto* ev = reinterpret_cast<const inotify_event*>(buf + i);
            i += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
            if ((ev->mask & IN_Q_OVERFLOW) != 0) {
                out.push_back(watch_event{{}, ev->mask, true});
                continue;
            }
            auto dir = directories_.find(ev->wd);
            if (dir == directories_.end()) {
                continue;
            }
            if ((ev->mask & IN_IGNORED) != 0) {
                // The directory is gone; a later scan watches it again if it comes back.
                watched_.erase(dir->second);
                directories_.erase(dir);
                continue;
            }
            std::string path = dir->second;
            if (ev->len > 0) {
                path += '/';
                path += ev->name;
            }
            out.push_back(watch_event{std::move(path), ev->mask, false});
        }
    }
    co_return out;
}

void file_watcher::stop() noexcept {
    if (descriptor_.is_open()) {
        asio::error_code ignored;
        descriptor_.close(ignored);  // closes inotify_fd_
    }
    inotify_fd_ = -1;
}

}  // namespace sluice
