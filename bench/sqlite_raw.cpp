// sqlite_raw: the raw SQLite insert rate, as the yardstick for sluice's SQLite sink. Loads the
// benchmark's lines from a file into memory, then inserts them into a fresh database with the
// SPEC schema, WAL journal and synchronous=NORMAL, through one prepared INSERT that fills the
// columns sluice fills for a text line, in transactions of 5000 rows. Only the inserts and
// commits are timed.
//
// Prints key=value lines: rows, bytes, elapsed_seconds, rows_per_second, peak_rss_bytes and
// cpu_seconds (getrusage of this process, including the load).
//
//   sqlite_raw --in FILE --db FILE [--batch 5000]

#include <sqlite3.h>
#include <sys/resource.h>

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
#include "clock.h"

namespace {

using bench::realtime_ns;

constexpr std::string_view create_table_sql = R"(
CREATE TABLE IF NOT EXISTS logs (
  id          INTEGER PRIMARY KEY,
  received_at INTEGER NOT NULL,
  ts          INTEGER,
  source      TEXT NOT NULL,
  host        TEXT,
  severity    INTEGER,
  facility    INTEGER,
  app         TEXT,
  procid      TEXT,
  msgid       TEXT,
  message     TEXT NOT NULL,
  fields      TEXT
);)";

constexpr std::string_view insert_sql =
    "INSERT INTO logs (received_at, ts, source, host, severity, facility, app, procid, msgid, "
    "message, fields) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

void check(sqlite3* db, int rc, const char* what) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        std::fprintf(stderr, "sqlite_raw: %s: %s\n", what, sqlite3_errmsg(db));
        std::exit(1);
    }
}

void exec(sqlite3* db, const char* sql) {
    check(db, sqlite3_exec(db, sql, nullptr, nullptr, nullptr), sql);
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

    std::remove(db_path.c_str());
    sqlite3* db = nullptr;
    check(db, sqlite3_open(db_path.c_str(), &db), "open");
    exec(db, "PRAGMA journal_mode=WAL");
    exec(db, "PRAGMA synchronous=NORMAL");
    exec(db, std::string(create_table_sql).c_str());
    sqlite3_stmt* insert = nullptr;
    check(db,
          sqlite3_prepare_v3(db, insert_sql.data(), static_cast<int>(insert_sql.size()),
                             SQLITE_PREPARE_PERSISTENT, &insert, nullptr),
          "prepare");

    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t first = 0; first < lines.size(); first += batch) {
        const std::size_t last = std::min(lines.size(), first + batch);
        exec(db, "BEGIN");
        for (std::size_t i = first; i < last; ++i) {
            sqlite3_bind_int64(insert, 1, realtime_ns());
            sqlite3_bind_null(insert, 2);
            sqlite3_bind_text(insert, 3, "bench", 5, SQLITE_STATIC);
            sqlite3_bind_text(insert, 4, "127.0.0.1", 9, SQLITE_STATIC);
            for (int col = 5; col <= 9; ++col) {
                sqlite3_bind_null(insert, col);
            }
            sqlite3_bind_text(insert, 10, lines[i].data(), static_cast<int>(lines[i].size()),
                              SQLITE_STATIC);
            sqlite3_bind_null(insert, 11);
            check(db, sqlite3_step(insert), "insert");
            sqlite3_reset(insert);
        }
        exec(db, "COMMIT");
    }
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    sqlite3_finalize(insert);
    sqlite3_close(db);

    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    const double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
                       ru.ru_stime.tv_usec / 1e6;
    std::printf("rows=%zu\nbytes=%zu\nelapsed_seconds=%.6f\nrows_per_second=%.0f\n"
                "peak_rss_bytes=%lld\ncpu_seconds=%.3f\n",
                lines.size(), text.size(), elapsed, lines.size() / elapsed,
                static_cast<long long>(ru.ru_maxrss) * 1024, cpu);
    return 0;
}
