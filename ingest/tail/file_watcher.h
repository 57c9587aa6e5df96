// file_watcher: which files a file source tails, and when to look at them again. scan()
// expands the include globs (glob(7)), drops what an exclude pattern matches and stats the
// rest; with inotify, the directories of the patterns are watched and every event is handed
// to the owner on the io thread, so thousands of files cost no thread and no busy poll.
// io thread only.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>

namespace sluice {

struct found_file {
    std::string path;  // as the glob matched it
    uint64_t dev = 0;
    uint64_t ino = 0;
    int64_t size = 0;
};

// One inotify event of interest: `path` changed (written, created, moved or removed), or,
// with `overflow`, events were lost and everything must be looked at again.
struct watch_event {
    std::string path;
    uint32_t mask = 0;
    bool overflow = false;
};

class file_watcher {
public:
    file_watcher(asio::io_context& io, std::vector<std::string> include,
                 std::vector<std::string> exclude);
    ~file_watcher();
    file_watcher(const file_watcher&) = delete;
    file_watcher& operator=(const file_watcher&) = delete;

    // Regular files matching now. With inotify on, also watches every directory a pattern's
    // files can be in (new ones included, as they appear). Does not block for long (stat).
    std::vector<found_file> scan();

    // Starts watching with inotify; throws sluice::error if inotify is unavailable.
    void start_inotify();
    // Waits for the next inotify events and returns them (empty after stop()).
    asio::awaitable<std::vector<watch_event>> next_events();
    void stop() noexcept;

    // Whether `path` matches the include patterns and no exclude pattern.
    bool matches(const std::string& path) const;

private:
    void watch_directory(const std::string& dir);

    std::vector<std::string> include_;
    std::vector<std::string> exclude_;
    int inotify_fd_ = -1;
    asio::posix::stream_descriptor descriptor_;
    std::unordered_map<int, std::string> directories_;  // watch descriptor -> directory
    std::unordered_map<std::string, int> watched_;       // directory -> watch descriptor
};

}  // namespace sluice
