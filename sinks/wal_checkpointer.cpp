#include "sinks/wal_checkpointer.h"

#include <fcntl.h>

#include <algorithm>

#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/file_handle.h"
#include "common/log_limiter.h"
#include "common/thread_name.h"

namespace sluice {

wal_checkpointer::wal_checkpointer(sqlite3* writer, const std::string& path,
                                   wal_checkpoint_config config)
    : writer_(writer),
      path_(path),
      writeback_interval_(config.writeback_interval),
      db_(path) {
    // A connection learns that the database is in WAL mode when it first reads it.
    db_.exec("SELECT 1 FROM sqlite_schema LIMIT 1", "checkpointer for " + path);
    auto page_size_query = db_.prepare("PRAGMA page_size");
    const int64_t page_size = sqlite3_step(page_size_query.get()) == SQLITE_ROW
                                  ? sqlite3_column_int64(page_size_query.get(), 0)
                                  : 4096;
    const auto pages = [&](uint64_t bytes) {
        return static_cast<int>(std::max<uint64_t>(1, bytes / static_cast<uint64_t>(page_size)));
    };
    trigger_frames_ = pages(config.trigger_bytes);
    limit_frames_ = pages(config.limit_bytes);
    int log = -1;
    int copied = -1;
    const int rc = sqlite3_wal_checkpoint_v2(db_.get(), nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                             &log, &copied);
    if (rc == SQLITE_OK && log < 0) {
        throw error("checkpointer for " + path + ": the database is not in WAL mode");
    }
    sqlite3_wal_hook(writer_, &wal_checkpointer::on_commit, this);
    if (writeback_interval_.count() > 0) {
        writeback_thread_ = std::thread([this] {
            set_thread_name("wal-writeback");
            write_back();
        });
    }
    thread_ = std::thread([this] {
        set_thread_name("checkpoint");
        run();
    });
}

wal_checkpointer::~wal_checkpointer() {
    {
        std::lock_guard lock(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    writeback_cv_.notify_all();
    thread_.join();
    if (writeback_thread_.joinable()) {
        writeback_thread_.join();
    }
    // Back to SQLite's own checkpoints for whatever the writer's connection still does.
    sqlite3_wal_autocheckpoint(writer_, 1000);
}

int wal_checkpointer::on_commit(void* self, sqlite3*, const char*, int frames) {
    static_cast<wal_checkpointer*>(self)->committed(frames);
    return SQLITE_OK;
}

void wal_checkpointer::committed(int frames) {
    bool due = false;
    {
        std::lock_guard lock(mu_);
        if (frames < frames_) {
            // The WAL started over from its beginning: nothing of it is copied yet.
            checkpointed_ = 0;
            ++generation_;
        }
        frames_ = frames;
        ++writes_;
        due = pass_due();
    }
    writeback_cv_.notify_one();
    if (due) {
        cv_.notify_all();
    }
}

bool wal_checkpointer::pass_due() const {
    return urgent_ ||
           (frames_ != frames_at_last_pass_ && frames_ - checkpointed_ >= trigger_frames_);
}

void wal_checkpointer::before_transaction() {
    std::unique_lock lock(mu_);
    if (frames_ < limit_frames_ || checkpointed_ >= frames_) {
        return;
    }
    // A pass that is running may have started before the last commit: wait for the next.
    const uint64_t target = passes_started_ + 1;
    urgent_ = true;
    ++writer_waits_;
    cv_.notify_all();
    const int64_t start = mono_now_ns();
    cv_.wait(lock, [&] { return stop_ || passes_done_ >= target; });
    writer_wait_ns_ += mono_now_ns() - start;
}

wal_checkpoint_stats wal_checkpointer::stats() const {
    std::lock_guard lock(mu_);
    return {passes_done_, writer_waits_, writer_wait_ns_, frames_, checkpointed_, writebacks_};
}

void wal_checkpointer::run() {
    log_limiter limiter;
    std::unique_lock lock(mu_);
    for (;;) {
        cv_.wait(lock, [&] { return stop_ || pass_due(); });
        if (stop_) {
            return;
        }
        urgent_ = false;
        ++passes_started_;
        frames_at_last_pass_ = frames_;
        const uint64_t generation = generation_;
        lock.unlock();

        int log = -1;
        int copied = -1;
        const int rc = sqlite3_wal_checkpoint_v2(db_.get(), nullptr,
                                                 SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
        uint64_t suppressed = 0;
        if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY && limiter.should_log(suppressed)) {
            spdlog::warn("SQLite checkpoint failed: {} ({} more suppressed); the WAL grows "
                         "until one succeeds.",
                         db_.last_error(), suppressed);
        }

        lock.lock();
        if (rc == SQLITE_OK && copied >= 0 && generation == generation_) {
            checkpointed_ = copied;
        }
        ++passes_done_;
        ++writes_;  // the pass wrote database pages
        cv_.notify_all();
        writeback_cv_.notify_one();
    }
}

namespace {

// Asks the kernel to start writing `path`'s dirty pages, without waiting. The file is opened
// on first use (the WAL exists only once the writer has committed); a read-only descriptor is
// enough, as writeback is per file, not per descriptor. Failures only mean the kernel writes
// later, as it would anyway.
void start_writeback(file_handle& file, const std::string& path) {
    if (!file) {
        file = file_handle(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
        if (!file) {
            return;
        }
    }
    ::sync_file_range(file.get(), 0, 0, SYNC_FILE_RANGE_WRITE);
}

}  // namespace

void wal_checkpointer::write_back() {
    // SQLite names the WAL after the database, and keeps the same file while the writer's
    // connection is open, so one descriptor each lasts as long as this object.
    const std::string wal_path = path_ + "-wal";
    file_handle wal;
    file_handle database;
    std::unique_lock lock(mu_);
    for (;;) {
        writeback_cv_.wait(lock, [&] { return stop_ || writes_ != written_back_; });
        if (stop_) {
            return;
        }
        written_back_ = writes_;
        lock.unlock();
        start_writeback(wal, wal_path);
        start_writeback(database, path_);
        lock.lock();
        ++writebacks_;
        // At most one round per interval, so each asks for a sizeable range at once.
        writeback_cv_.wait_for(lock, writeback_interval_, [&] { return stop_; });
    }
}

}  // namespace sluice
