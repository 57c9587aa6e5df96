// tail_source: tails the files that match `include` (and no `exclude`): one stream per file,
// read in turns of one chunk each so no file starves the others, framed and decoded like a
// socket's bytes. Rotation by rename, copytruncate, deletion and inode reuse are told apart
// by device, inode and fingerprint. A file's offset is saved only once the queue acknowledges
// every event before it (delivery_ledger), on the checkpoint writer's thread. Pausing is
// lossless: a full queue stops the reading, offsets stay where they are.
// Runs as coroutines on the io thread; the counters and gauges may be read from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <asio/steady_timer.hpp>

#include "common/metrics.h"
#include "ingest/codecs/codec.h"
#include "ingest/source.h"
#include "ingest/tail/multiline.h"

namespace sluice {

enum class read_from { beginning, end };
enum class watch_mode { inotify, poll };

struct tail_source_config {
    std::vector<std::string> include;               // glob(7) patterns; required
    std::vector<std::string> exclude;               // patterns (without '/': file names)
    read_from start_at = read_from::beginning;      // for files seen the first time at start
    watch_mode watch = watch_mode::inotify;         // inotify plus rescans, or rescans only
    std::chrono::nanoseconds poll_interval{std::chrono::seconds(1)};  // rescan period
    std::chrono::nanoseconds rotate_wait{std::chrono::seconds(5)};    // late writes to a rotated file
    std::chrono::nanoseconds line_flush{std::chrono::seconds(1)};     // an unterminated last line
    std::optional<multiline_config> multiline;      // join lines into events
    codec_kind codec = codec_kind::text;            // text | json | syslog
    uint64_t max_line_bytes = 65536;                // longer lines (events) are cut, counted
    uint64_t read_bytes = 64 * 1024;                // bytes read from one file per turn
    std::string checkpoints_path;                   // set by the pipeline: data_dir/checkpoints.db
};

class checkpoint_writer;
class file_watcher;

class tail_source final : public source {
public:
    tail_source(std::string name, source_id id, asio::io_context& io, bounded_queue& queue,
                tail_source_config config);
    ~tail_source() override;

    void start() override;
    void on_delivered() override;
    void flush_acknowledgements() noexcept override;
    const file_counters* files() const override { return &stats_; }

private:
    void on_stop() noexcept override;
    struct tailed_file;

    asio::awaitable<void> run();
    asio::awaitable<void> watch_loop();
    // Every poll_interval: the files' sizes, for sluice_file_behind_bytes, also while reading
    // is paused (then run() does not look).
    asio::awaitable<void> gauge_loop();
    // One turn of `f`: reads up to read_bytes and pushes what it framed. True if more may be
    // there already.
    asio::awaitable<bool> read_turn(tailed_file& f);
    // Seals what `f` framed (with `flush`, its unterminated line and open event too) and
    // pushes it.
    asio::awaitable<void> push_framed(tailed_file& f, bool flush);
    // Rescans the globs: new files, renames, deletions, truncations.
    void rescan(bool at_start);
    // Whether `f` was truncated or rewritten since it was read (refreshes its size).
    bool truncated(tailed_file& f);
    // Looks at one open file: truncated or rewritten (read again from 0), grown (queued).
    void check(tailed_file& f);
    void open_file(const std::string& path, bool at_start);
    void close_file(uint32_t stream);
    void queue_read(tailed_file& f);
    void reset_to_start(tailed_file& f);
    void update_gauges();
    std::chrono::steady_clock::time_point next_deadline() const;

    tail_source_config config_;
    file_counters stats_;
    std::unique_ptr<file_watcher> watcher_;
    std::unique_ptr<checkpoint_writer> checkpoints_;
    std::unordered_map<uint32_t, std::unique_ptr<tailed_file>> files_;  // by stream
    std::unordered_map<std::string, uint32_t> by_path_;  // the file a path names now
    std::deque<uint32_t> ready_;                         // streams with bytes to read, in turn
    uint32_t next_stream_ = 1;
    asio::steady_timer wake_;
    asio::steady_timer gauge_timer_;
    std::chrono::steady_clock::time_point next_scan_{};
    int64_t next_refresh_ns_ = 0;  // unix ns: when unchanged offsets are saved again
    bool rescan_soon_ = false;
    bool watching_ = false;
};

}  // namespace sluice
