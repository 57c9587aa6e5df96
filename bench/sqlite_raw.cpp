// sqlite_raw: the raw SQLite insert rate, as the yardstick for sluice's SQLite sink. Loads the
// benchmark's lines from a file into memory, then inserts them into a fresh database the way
// the sink does, so that the ratio to it measures sluice and not tuning: the sink's own SQL
// (sinks/sqlite_sql.h: its pragmas, 16 KiB pages included, schema, INSERT, BEGIN IMMEDIATE),
// its connection flags, its default batch (5,000 rows per transaction), and its checkpointing
// (sinks/wal_checkpointer.cpp itself, compiled in): SQLite's automatic checkpoint off, PASSIVE checkpoints on a
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
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "sinks/sqlite_sql.h"
#include "sinks/wal_checkpointer.h"
#include "clock.h"

namespace {

using bench::realtime_ns;
namespace sql = sluice::sqlite_sql;

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
    auto ckpt = std::make_unique<sluice::wal_checkpointer>(db, db_path);

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
    const sluice::wal_checkpoint_stats stats = ckpt->stats();
    const uint64_t passes = stats.passes;
    const uint64_t waits = stats.writer_waits;
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
