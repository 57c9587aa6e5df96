// sqlite_raw: the raw SQLite insert rate, as the yardstick for sluice's SQLite sink. Loads the
// benchmark's lines from a file into memory, then inserts them into a fresh database the way
// the sink does, so that the ratio to it measures sluice and not tuning: the sink's own SQL
// (sinks/sqlite_sql.h: its pragmas, 16 KiB pages included, schema, INSERT, BEGIN IMMEDIATE),
// its connection flags, its default batch (5,000 rows per transaction), and its checkpointing
// (sinks/wal_checkpointer.h): SQLite's automatic checkpoint off, PASSIVE checkpoints on a
// thread and connection of their own from 4 MiB committed, the writer waiting for a pass once
// the WAL holds 64 MiB, and a writeback thread starting the kernel's writeback of the WAL and
// the database every 10 ms. The INSERT fills the columns sluice fills for a text line on TCP.
// Only the inserts and commits are timed.
//
// Prints key=value lines: rows, bytes, elapsed_seconds, rows_per_second, peak_rss_bytes,
// cpu_seconds (getrusage of this process, including the load), checkpoint_passes,
// writer_waits and write_bytes (/proc/self/io: the bytes this process's threads dirtied in
// the page cache for storage, WAL and database together, from the first insert to the last
// commit).
//
//   sqlite_raw --in FILE --db FILE [--batch 5000]

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iterator>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "../sinks/sqlite_sql.h"
#include "clock.h"

namespace {

using bench::realtime_ns;
namespace sql = sluice::sqlite_sql;

// wal_checkpoint_config's defaults, which the sink uses.
constexpr uint64_t trigger_bytes = 4ull << 20;
constexpr uint64_t limit_bytes = 64ull << 20;
constexpr auto writeback_interval = std::chrono::milliseconds(10);

void check(sqlite3* db, int rc, const char* what) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        std::fprintf(stderr, "sqlite_raw: %s: %s\n", what, sqlite3_errmsg(db));
        std::exit(1);
    }
}

void exec(sqlite3* db, std::string_view text) {
    const std::string s(text);
    check(db, sqlite3_exec(db, s.c_str(), nullptr, nullptr, nullptr), s.c_str());
}

std::string with_table(std::string_view text) {
    std::string out(text);
    for (size_t at = out.find("{table}"); at != std::string::npos; at = out.find("{table}")) {
        out.replace(at, 7, "logs");
    }
    return out;
}

// As common/sqlite_handle.cpp opens the sink's connections.
sqlite3* open_db(const std::string& path) {
    sqlite3* db = nullptr;
    check(db,
          sqlite3_open_v2(path.c_str(), &db,
                          SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                          nullptr),
          "open");
    sqlite3_extended_result_codes(db, 1);
    return db;
}

int64_t int_query(sqlite3* db, const char* text) {
    sqlite3_stmt* stmt = nullptr;
    check(db, sqlite3_prepare_v2(db, text, -1, &stmt, nullptr), text);
    const int64_t v = sqlite3_step(stmt) == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : 0;
    sqlite3_finalize(stmt);
    return v;
}

uint64_t proc_write_bytes() {
    std::ifstream io("/proc/self/io");
    std::string key;
    uint64_t value = 0;
    while (io >> key >> value) {
        if (key == "write_bytes:") {
            return value;
        }
    }
    return 0;
}

// sinks/wal_checkpointer.cpp, without its logging and statistics: the same triggers, waits
// and writeback, so the WAL is checkpointed here exactly as in the sink.
class checkpointer {
public:
    checkpointer(sqlite3* writer, const std::string& path) : writer_(writer), path_(path) {
        db_ = open_db(path);
        exec(db_, "SELECT 1 FROM sqlite_schema LIMIT 1");
        const int64_t page_size = int_query(db_, "PRAGMA page_size");
        trigger_frames_ = static_cast<int>(trigger_bytes / page_size);
        limit_frames_ = static_cast<int>(limit_bytes / page_size);
        sqlite3_wal_hook(writer_, &checkpointer::on_commit, this);
        writeback_thread_ = std::thread([this] { write_back(); });
        thread_ = std::thread([this] { run(); });
    }
    ~checkpointer() {
        {
            std::lock_guard lock(mu_);
            stop_ = true;
        }
        cv_.notify_all();
        writeback_cv_.notify_all();
        thread_.join();
        writeback_thread_.join();
        sqlite3_wal_hook(writer_, nullptr, nullptr);
        sqlite3_close_v2(db_);
    }
    checkpointer(const checkpointer&) = delete;
    checkpointer& operator=(const checkpointer&) = delete;

    void before_transaction() {
        std::unique_lock lock(mu_);
        if (frames_ < limit_frames_ || checkpointed_ >= frames_) {
            return;
        }
        const uint64_t target = passes_started_ + 1;
        urgent_ = true;
        ++writer_waits_;
        cv_.notify_all();
        cv_.wait(lock, [&] { return stop_ || passes_done_ >= target; });
    }
    uint64_t passes() {
        std::lock_guard lock(mu_);
        return passes_done_;
    }
    uint64_t writer_waits() {
        std::lock_guard lock(mu_);
        return writer_waits_;
    }

private:
    static int on_commit(void* self, sqlite3*, const char*, int frames) {
        static_cast<checkpointer*>(self)->committed(frames);
        return SQLITE_OK;
    }
    void committed(int frames) {
        bool due = false;
        {
            std::lock_guard lock(mu_);
            if (frames < frames_) {
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
    bool pass_due() const {
        return urgent_ ||
               (frames_ != frames_at_last_pass_ && frames_ - checkpointed_ >= trigger_frames_);
    }
    void run() {
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
            const int rc = sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                                     &log, &copied);
            lock.lock();
            if (rc == SQLITE_OK && copied >= 0 && generation == generation_) {
                checkpointed_ = copied;
            }
            ++passes_done_;
            ++writes_;
            cv_.notify_all();
            writeback_cv_.notify_one();
        }
    }
    void write_back() {
        const std::string wal_path = path_ + "-wal";
        int wal = -1;
        int database = -1;
        const auto start = [](int& fd, const std::string& p) {
            if (fd < 0) {
                fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
            }
            if (fd >= 0) {
                ::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
            }
        };
        std::unique_lock lock(mu_);
        for (;;) {
            writeback_cv_.wait(lock, [&] { return stop_ || writes_ != written_back_; });
            if (stop_) {
                break;
            }
            written_back_ = writes_;
            lock.unlock();
            start(wal, wal_path);
            start(database, path_);
            lock.lock();
            writeback_cv_.wait_for(lock, writeback_interval, [&] { return stop_; });
        }
        for (int fd : {wal, database}) {
            if (fd >= 0) {
                ::close(fd);
            }
        }
    }

    sqlite3* writer_;
    const std::string path_;
    sqlite3* db_ = nullptr;
    int trigger_frames_ = 0;
    int limit_frames_ = 0;
    std::mutex mu_;
    std::condition_variable cv_;
    std::condition_variable writeback_cv_;
    bool stop_ = false;
    bool urgent_ = false;
    int frames_ = 0;
    int checkpointed_ = 0;
    int frames_at_last_pass_ = 0;
    uint64_t generation_ = 0;
    uint64_t passes_started_ = 0;
    uint64_t passes_done_ = 0;
    uint64_t writer_waits_ = 0;
    uint64_t writes_ = 0;
    uint64_t written_back_ = 0;
    std::thread writeback_thread_;
    std::thread thread_;
};

}  // namespace

int main(int argc, char** argv) {
    std::string in_path;
    std::string db_path;
    std::size_t batch = 5000;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string arg = argv[i];
        if (arg == "--in") {
            in_path = argv[i + 1];
        } else if (arg == "--db") {
            db_path = argv[i + 1];
        } else if (arg == "--batch") {
            batch = std::stoull(argv[i + 1]);
        } else {
            std::fprintf(stderr, "sqlite_raw: unknown argument %s\n", arg.c_str());
            return 2;
        }
    }
    if (in_path.empty() || db_path.empty() || batch == 0) {
        std::fprintf(stderr, "usage: sqlite_raw --in FILE --db FILE [--batch 5000]\n");
        return 2;
    }

    std::ifstream in(in_path, std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::string_view> lines;
    for (std::size_t pos = 0; pos < text.size();) {
        std::size_t nl = text.find('\n', pos);
        if (nl == std::string::npos) {
            nl = text.size();
        }
        lines.emplace_back(text.data() + pos, nl - pos);
        pos = nl + 1;
    }

    for (const char* suffix : {"", "-wal", "-shm"}) {
        std::remove((db_path + suffix).c_str());
    }
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    sqlite3* db = open_db(db_path);
    exec(db, sql::pragmas);
    exec(db, with_table(sql::create_table));
    sqlite3_stmt* insert = nullptr;
    const std::string insert_sql = with_table(sql::insert);
    check(db,
          sqlite3_prepare_v3(db, insert_sql.c_str(), static_cast<int>(insert_sql.size()),
                             SQLITE_PREPARE_PERSISTENT, &insert, nullptr),
          "prepare");
    const std::string begin(sql::begin);
    const std::string commit(sql::commit);
    auto ckpt = std::make_unique<checkpointer>(db, db_path);

    const uint64_t written_before = proc_write_bytes();
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t first = 0; first < lines.size(); first += batch) {
        const std::size_t last = std::min(lines.size(), first + batch);
        ckpt->before_transaction();
        exec(db, begin);
        // As the sink binds a text batch: the batch's columns once, then each message.
        sqlite3_bind_int64(insert, sql::received_at, realtime_ns());
        sqlite3_bind_text(insert, sql::source, "bench", 5, SQLITE_STATIC);
        sqlite3_bind_text(insert, sql::host, "127.0.0.1", 9, SQLITE_STATIC);
        for (std::size_t i = first; i < last; ++i) {
            sqlite3_bind_text(insert, sql::message, lines[i].data(),
                              static_cast<int>(lines[i].size()), SQLITE_STATIC);
            check(db, sqlite3_step(insert), "insert");
            sqlite3_reset(insert);
        }
        exec(db, commit);
    }
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // Read where sluice's is read (its last row written, before it stops), so neither counts
    // the checkpoint of the whole WAL that closing the last connection runs.
    const uint64_t written = proc_write_bytes() - written_before;
    const uint64_t passes = ckpt->passes();
    const uint64_t waits = ckpt->writer_waits();
    ckpt.reset();
    sqlite3_finalize(insert);
    sqlite3_close(db);

    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    const double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
                       ru.ru_stime.tv_usec / 1e6;
    std::printf("rows=%zu\nbytes=%zu\nelapsed_seconds=%.6f\nrows_per_second=%.0f\n"
                "peak_rss_bytes=%lld\ncpu_seconds=%.3f\ncheckpoint_passes=%llu\n"
                "writer_waits=%llu\nwrite_bytes=%llu\n",
                lines.size(), text.size(), elapsed, lines.size() / elapsed,
                static_cast<long long>(ru.ru_maxrss) * 1024, cpu,
                static_cast<unsigned long long>(passes), static_cast<unsigned long long>(waits),
                static_cast<unsigned long long>(written));
    return 0;
}
