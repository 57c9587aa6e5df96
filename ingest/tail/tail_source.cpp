#include "ingest/tail/tail_source.h"

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <unordered_set>

#include <asio/post.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/file_handle.h"
#include "common/log_limiter.h"
#include "ingest/codecs/batch_decoder.h"
#include "ingest/framing.h"
#include "ingest/tail/checkpoint_writer.h"
#include "ingest/tail/file_identity.h"
#include "ingest/tail/file_watcher.h"

namespace sluice {

namespace {

using clock_type = std::chrono::steady_clock;

// A delivery stream is a file and its generation: a copytruncate starts a new generation, so
// acknowledgements of the bytes before it can never move the new content's offset.
constexpr uint32_t generation_bits = 8;
constexpr uint32_t generation_mask = (1u << generation_bits) - 1;
// While a rotated file waits out rotate_wait, it is looked at this often for late writes.
constexpr auto rotated_check = std::chrono::milliseconds(250);
// Checkpoints of files that did not move are saved again this often, so pruning (of files
// gone for days) never takes a live one.
constexpr int64_t refresh_ns = int64_t{3600} * 1'000'000'000;
// Bytes read between two yields to the other handlers of the io thread.
constexpr uint64_t yield_bytes = 1 << 20;

}  // namespace

struct tail_source::tailed_file {
    tailed_file(uint32_t id, const tail_source_config& c, codec_kind codec)
        : file_id(id), frame(framing::newline, c.max_line_bytes), decoder(codec) {}

    uint32_t stream() const { return (file_id << generation_bits) | generation; }

    uint32_t file_id;
    uint32_t generation = 0;
    std::string path;  // as the glob matched it
    file_handle fd;
    uint64_t dev = 0;
    uint64_t ino = 0;
    fingerprint fp;
    int64_t read_offset = 0;   // next byte to read
    int64_t frame_base = 0;    // file offset where `frame` started (its ends are relative)
    int64_t acked_offset = 0;  // everything before it was delivered
    int64_t size = 0;          // as last seen
    framer frame;
    std::vector<uint64_t> ends;
    std::optional<multiline_assembler> multiline;
    batch_decoder decoder;
    std::shared_ptr<batch> current;  // holds the unframed rest of the last read
    bool queued = false;
    bool rotated = false;   // the path names another file now, or none
    bool eof = false;       // the last read found nothing new
    int64_t idle_since_ns = 0;  // mono: since when reads found nothing new
};

tail_source::tail_source(std::string name, source_id id, asio::io_context& io,
                         bounded_queue& queue, tail_source_config config)
    : source(std::move(name), id, io, queue),
      config_(std::move(config)),
      wake_(io),
      gauge_timer_(io) {}

tail_source::~tail_source() = default;

void tail_source::start() {
    watcher_ = std::make_unique<file_watcher>(io_, config_.include, config_.exclude);
    checkpoints_ = std::make_unique<checkpoint_writer>(config_.checkpoints_path, name());
    if (config_.watch == watch_mode::inotify) {
        try {
            watcher_->start_inotify();
            watching_ = true;
        } catch (const error& e) {
            spdlog::warn("Source {}: {}; rescanning every {:.1f} s instead.", name(), e.what(),
                         std::chrono::duration<double>(config_.poll_interval).count());
        }
    }
    rescan(true);
    next_scan_ = clock_type::now() + config_.poll_interval;
    spdlog::info("Source {}: tailing {} files.", name(), files_.size());
    supervise("read loop", [this] { return run(); });
    if (watching_) {
        supervise("inotify loop", [this] { return watch_loop(); });
    }
    supervise("gauge loop", [this] { return gauge_loop(); });
}

void tail_source::on_stop() noexcept {
    if (watcher_) {
        watcher_->stop();
    }
    wake_.cancel();
    gauge_timer_.cancel();
}

asio::awaitable<void> tail_source::gauge_loop() {
    while (!stopping()) {
        gauge_timer_.expires_after(config_.poll_interval);
        auto [ec] = co_await gauge_timer_.async_wait(use_tuple);
        check_wait(ec, "the gauge timer");
        if (stopping()) {
            break;
        }
        for (auto& [file_id, f] : files_) {
            (void)file_id;
            struct stat st {};
            if (::fstat(f->fd.get(), &st) == 0) {
                f->size = static_cast<int64_t>(st.st_size);
            }
        }
        update_gauges();
    }
}

// ---- reading ----------------------------------------------------------------------------

asio::awaitable<void> tail_source::run() {
    uint64_t since_yield = 0;
    while (!stopping()) {
        co_await wait_while_paused();
        if (stopping()) {
            break;
        }
        if (rescan_soon_ || clock_type::now() >= next_scan_) {
            rescan(false);
            next_scan_ = clock_type::now() + config_.poll_interval;
        }
        if (!ready_.empty()) {
            const uint32_t file_id = ready_.front();
            ready_.pop_front();
            auto it = files_.find(file_id);
            if (it == files_.end()) {
                continue;
            }
            tailed_file& f = *it->second;
            f.queued = false;
            const uint64_t before = read(counters_.bytes_total);
            if (co_await read_turn(f)) {
                queue_read(f);  // to the back: every other ready file reads first
            }
            // A push the queue takes at once does not suspend: after each MiB, let the other
            // sources on this thread, and the acknowledgements posted to it, have a turn.
            since_yield += read(counters_.bytes_total) - before;
            if (since_yield >= yield_bytes) {
                since_yield = 0;
                co_await asio::post(io_, asio::use_awaitable);
            }
            continue;
        }
        // Nothing to read: unterminated lines, open events and rotated files whose time is up.
        const int64_t now = mono_now_ns();
        std::vector<uint32_t> done;
        for (auto& [file_id, fp] : files_) {
            tailed_file& f = *fp;
            if (!f.eof || f.idle_since_ns == 0) {
                continue;
            }
            const int64_t idle = now - f.idle_since_ns;
            const bool partial = f.current && f.frame.pending_bytes(*f.current) > 0;
            const bool open_event = f.multiline && f.multiline->has_open();
            if (f.rotated && idle >= config_.rotate_wait.count()) {
                if (partial || open_event) {
                    co_await push_framed(f, true);  // the end of a rotated file ends its line
                }
                done.push_back(file_id);
            } else if ((partial && idle >= config_.line_flush.count()) ||
                       (open_event && !partial && idle >= config_.multiline->timeout.count())) {
                co_await push_framed(f, true);
            }
        }
        for (uint32_t file_id : done) {
            close_file(file_id);
        }
        update_gauges();
        if (!ready_.empty() || stopping()) {
            continue;
        }
        wake_.expires_at(next_deadline());
        auto [ec] = co_await wake_.async_wait(use_tuple);
        check_wait(ec, "the next deadline");
    }
}

asio::awaitable<bool> tail_source::read_turn(tailed_file& f) {
    // Copytruncate is caught before the read, not after: reading the new bytes at the old
    // offset first would send them twice.
    if (truncated(f)) {
        reset_to_start(f);
    }
    if (!f.current) {
        f.current = std::make_shared<batch>(id(), config_.read_bytes);
    }
    auto& buffer = f.current->buffer();
    if (buffer.free_space() < config_.read_bytes) {
        buffer.reserve(buffer.size() + config_.read_bytes);
    }
    const size_t want = std::min<size_t>(buffer.free_space(), config_.read_bytes);
    ssize_t n = 0;
    do {
        n = ::pread(f.fd.get(), buffer.tail(), want, f.read_offset);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        if (n < 0) {
            spdlog::warn("Source {}: cannot read {}: {}.", name(), f.path, std::strerror(errno));
        }
        if (!f.eof) {
            f.eof = true;
            f.idle_since_ns = mono_now_ns();
        }
        co_return false;
    }
    buffer.commit(static_cast<size_t>(n));
    bump(counters_.bytes_total, static_cast<uint64_t>(n));
    f.read_offset += n;
    f.size = std::max(f.size, f.read_offset);
    // A short read reached the end: from now on the file is idle (line_flush, rotate_wait).
    const bool more = static_cast<size_t>(n) == want;
    f.eof = !more;
    f.idle_since_ns = more ? 0 : mono_now_ns();
    if (f.fp.length < fingerprint_max_bytes && f.read_offset > f.fp.length) {
        f.fp = read_fingerprint(f.fd.get());  // a short file is fingerprinted as it grows
    }
    f.frame.consume(*f.current);
    co_await push_framed(f, false);
    co_return more;
}

asio::awaitable<void> tail_source::push_framed(tailed_file& f, bool flush) {
    if (!f.current) {
        f.current = std::make_shared<batch>(id(), config_.read_bytes);
    }
    std::shared_ptr<batch> framed = std::move(f.current);
    f.current = std::make_shared<batch>(
        id(), config_.read_bytes + (flush ? 0 : f.frame.pending_bytes(*framed)));
    if (flush) {
        f.frame.finish(*framed);
    }
    // After finish() there is no rest to move, but the framer starts over on the new batch.
    f.frame.carry_over(*framed, *f.current);
    bump(counters_.truncated_total, f.frame.take_truncated());
    std::shared_ptr<batch> out = framed;
    int64_t position = f.read_offset - static_cast<int64_t>(f.current->buffer().size());
    if (f.multiline) {
        out = std::make_shared<batch>(id(), framed->buffer().size());
        for (size_t i = 0; i < framed->event_count(); ++i) {
            f.multiline->add(framed->line(i), f.frame_base + static_cast<int64_t>(f.ends[i]),
                             *out);
        }
        f.ends.clear();
        if (flush) {
            f.multiline->flush(*out);
        }
        bump(counters_.truncated_total, f.multiline->take_truncated());
        position = f.multiline->safe_offset();
    }
    if (out->empty()) {
        co_return;
    }
    out->position = position;
    out->stream = f.stream();
    out->received_ns = unix_now_ns();
    out->origin = f.path;
    out->file = f.path;
    bump(counters_.decode_errors_total, f.decoder.decode(*out));
    out->shrink_if_sparse();
    co_await push(std::move(out));
}

// ---- files ------------------------------------------------------------------------------

void tail_source::queue_read(tailed_file& f) {
    if (!f.queued) {
        f.queued = true;
        ready_.push_back(f.file_id);
    }
}

void tail_source::open_file(const std::string& path, bool at_start) {
    file_handle fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) != 0) {
        spdlog::warn("Source {}: cannot open {}: {}.", name(), path, std::strerror(errno));
        return;
    }
    if ((next_stream_ >> (32 - generation_bits)) != 0) {
        next_stream_ = 1;  // 16 M files later: ids are reused, long after the old ones closed
    }
    const uint32_t file_id = next_stream_++;
    auto f = std::make_unique<tailed_file>(file_id, config_, config_.codec);
    f->path = path;
    f->fd = std::move(fd);
    f->dev = static_cast<uint64_t>(st.st_dev);
    f->ino = static_cast<uint64_t>(st.st_ino);
    f->size = static_cast<int64_t>(st.st_size);
    f->fp = read_fingerprint(f->fd.get());
    // Resume where a checkpoint of this very file says: same device and inode, and it still
    // starts with the bytes it had. A reused inode (other bytes) is a new file.
    int64_t offset = -1;
    for (const auto& c : checkpoints_->loaded()) {
        if (c.id.dev == f->dev && c.id.ino == f->ino && starts_with(f->fd.get(), c.id.fp)) {
            offset = c.offset <= f->size ? c.offset : 0;
            break;
        }
    }
    if (offset < 0) {
        offset = at_start && config_.start_at == read_from::end ? f->size : 0;
    }
    f->read_offset = f->frame_base = f->acked_offset = offset;
    if (config_.multiline) {
        f->multiline.emplace(*config_.multiline, config_.max_line_bytes);
        f->frame.record_ends(&f->ends);
    }
    checkpoints_->post(checkpoint{{f->dev, f->ino, f->fp}, f->path, offset, 0});
    tailed_file& ref = *f;
    by_path_[path] = file_id;
    files_[file_id] = std::move(f);
    spdlog::debug("Source {}: reading {} from offset {}.", name(), path, offset);
    queue_read(ref);
}

void tail_source::reset_to_start(tailed_file& f) {
    f.generation = (f.generation + 1) & generation_mask;
    f.read_offset = f.frame_base = f.acked_offset = 0;
    f.frame = framer(framing::newline, config_.max_line_bytes);
    f.ends.clear();
    f.current.reset();
    if (config_.multiline) {
        f.multiline.emplace(*config_.multiline, config_.max_line_bytes);
        f.frame.record_ends(&f.ends);
    }
    f.fp = read_fingerprint(f.fd.get());
    f.eof = false;
    f.idle_since_ns = 0;
    bump(stats_.rotations_truncate);
    spdlog::info("Source {}: {} was truncated or rewritten; reading it again from the start.",
                 name(), f.path);
    queue_read(f);
}

bool tail_source::truncated(tailed_file& f) {
    struct stat st {};
    if (::fstat(f.fd.get(), &st) != 0) {
        return false;
    }
    f.size = static_cast<int64_t>(st.st_size);
    // Shorter than what was read, or other bytes where the old ones were.
    return f.size < f.read_offset || (f.read_offset > 0 && !starts_with(f.fd.get(), f.fp));
}

void tail_source::check(tailed_file& f) {
    if (truncated(f)) {
        reset_to_start(f);
    } else if (f.size > f.read_offset) {
        queue_read(f);
    }
}

void tail_source::rescan(bool at_start) {
    rescan_soon_ = false;
    const std::vector<found_file> found = watcher_->scan();
    std::unordered_set<std::string> seen;
    for (const auto& ff : found) {
        seen.insert(ff.path);
        auto named = by_path_.find(ff.path);
        if (named != by_path_.end()) {
            tailed_file& f = *files_.at(named->second);
            if (f.dev == ff.dev && f.ino == ff.ino) {
                check(f);
                continue;
            }
            // Rename rotation: the path names a new file; the old one is drained.
            f.rotated = true;
            by_path_.erase(named);
            bump(stats_.rotations_rename);
            queue_read(f);
        }
        // A file already open under another name (renamed to a name the globs match) is the
        // same file: it goes on being read under its new name.
        tailed_file* same = nullptr;
        for (auto& [file_id, fp] : files_) {
            same = fp->dev == ff.dev && fp->ino == ff.ino ? fp.get() : same;
        }
        if (same != nullptr) {
            if (same->rotated) {
                same->rotated = false;
                same->path = ff.path;
                by_path_[ff.path] = same->file_id;
            }
            check(*same);
            continue;
        }
        open_file(ff.path, at_start);
    }
    // Paths that name nothing the globs match now: deleted, or renamed out of the globs.
    for (auto it = by_path_.begin(); it != by_path_.end();) {
        if (seen.count(it->first) != 0) {
            ++it;
            continue;
        }
        tailed_file& f = *files_.at(it->second);
        struct stat st {};
        const bool deleted = ::fstat(f.fd.get(), &st) == 0 && st.st_nlink == 0;
        bump(deleted ? stats_.rotations_delete : stats_.rotations_rename);
        f.rotated = true;
        queue_read(f);
        it = by_path_.erase(it);
    }
    for (auto& [file_id, fp] : files_) {
        if (fp->rotated) {
            check(*fp);
        }
    }
    // Now and then, save unchanged offsets again so that pruning never takes a live file.
    const int64_t now = unix_now_ns();
    if (now >= next_refresh_ns_) {
        next_refresh_ns_ = now + refresh_ns;
        for (auto& [file_id, fp] : files_) {
            (void)file_id;
            checkpoints_->post(
                checkpoint{{fp->dev, fp->ino, fp->fp}, fp->path, fp->acked_offset, 0});
        }
    }
    update_gauges();
}

void tail_source::close_file(uint32_t file_id) {
    auto it = files_.find(file_id);
    if (it == files_.end()) {
        return;
    }
    tailed_file& f = *it->second;
    struct stat st {};
    if (::fstat(f.fd.get(), &st) == 0 && st.st_nlink == 0) {
        checkpoints_->forget(f.dev, f.ino);  // deleted: its inode may be reused
    }
    spdlog::debug("Source {}: closed {} (rotated) at offset {}.", name(), f.path, f.read_offset);
    for (auto p = by_path_.begin(); p != by_path_.end(); ++p) {
        if (p->second == file_id) {
            by_path_.erase(p);
            break;
        }
    }
    files_.erase(it);
}

void tail_source::update_gauges() {
    uint64_t behind = 0;
    for (const auto& [file_id, f] : files_) {
        (void)file_id;
        behind += static_cast<uint64_t>(std::max<int64_t>(f->size - f->read_offset, 0));
    }
    stats_.watched.store(files_.size(), std::memory_order_relaxed);
    stats_.behind_bytes.store(behind, std::memory_order_relaxed);
}

clock_type::time_point tail_source::next_deadline() const {
    auto deadline = next_scan_;
    const auto now_steady = clock_type::now();
    const int64_t now = mono_now_ns();
    auto at = [&](int64_t since_ns, std::chrono::nanoseconds wait) {
        const auto left = std::chrono::nanoseconds(std::max<int64_t>(since_ns + wait.count() - now, 0));
        deadline = std::min(deadline, now_steady + left);
    };
    for (const auto& [file_id, fp] : files_) {
        (void)file_id;
        const tailed_file& f = *fp;
        if (!f.eof || f.idle_since_ns == 0) {
            continue;
        }
        if (f.rotated) {
            at(f.idle_since_ns, config_.rotate_wait);
            deadline = std::min(deadline, now_steady + rotated_check);
            continue;
        }
        if (f.current && f.frame.pending_bytes(*f.current) > 0) {
            at(f.idle_since_ns, config_.line_flush);
        }
        if (f.multiline && f.multiline->has_open()) {
            at(f.idle_since_ns, config_.multiline->timeout);
        }
    }
    return deadline;
}

asio::awaitable<void> tail_source::watch_loop() {
    while (!stopping()) {
        const std::vector<watch_event> events = co_await watcher_->next_events();
        if (events.empty()) {
            break;
        }
        for (const auto& ev : events) {
            if (ev.overflow) {
                spdlog::warn("Source {}: inotify lost events; rescanning.", name());
                rescan_soon_ = true;
                for (auto& [file_id, f] : files_) {
                    queue_read(*f);
                }
                continue;
            }
            auto named = by_path_.find(ev.path);
            if (named != by_path_.end()) {
                queue_read(*files_.at(named->second));
            }
            const bool written = (ev.mask & (IN_MODIFY | IN_CLOSE_WRITE)) != 0;
            if (!written || (named == by_path_.end() && watcher_->matches(ev.path))) {
                rescan_soon_ = true;  // created, moved, removed: or written and not known yet
            }
        }
        wake_.cancel();
    }
}

// ---- acknowledgements -------------------------------------------------------------------

void tail_source::on_delivered() {
    std::vector<delivery> acks;
    queue_.take_deliveries(id(), acks);
    for (const auto& a : acks) {
        auto it = files_.find(a.stream >> generation_bits);
        if (it == files_.end() || it->second->generation != (a.stream & generation_mask)) {
            continue;  // closed, or acknowledgements of bytes a truncation replaced
        }
        tailed_file& f = *it->second;
        f.acked_offset = a.position;
        checkpoints_->post(checkpoint{{f.dev, f.ino, f.fp}, f.path, a.position, 0});
    }
}

void tail_source::flush_acknowledgements() noexcept {
    if (!checkpoints_) {
        return;
    }
    try {
        on_delivered();
    } catch (const std::exception& e) {
        spdlog::error("Source {}: the last offsets could not be taken: {}", name(), e.what());
    }
    checkpoints_->stop();
}

}  // namespace sluice
