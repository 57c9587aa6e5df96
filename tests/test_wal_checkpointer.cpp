// Tests for wal_checkpointer on a real WAL database: checkpoints run on its thread and the
// writer's own are off, the WAL starts over once it reaches the limit so its file stays
// bounded, a reader that pins the WAL cannot stall the writer, writeback runs while the writer
// writes and rests when it stops, and a database that is not in WAL mode is refused.
#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>

#include <catch2/catch.hpp>
#include <sqlite3.h>

#include "common/error.h"
#include "common/sqlite_handle.h"
#include "sinks/wal_checkpointer.h"
#include "tests/temp_dir.h"
#include "tests/test_support.h"

namespace fs = std::filesystem;
using sluice::sqlite_db;
using sluice::wal_checkpoint_config;
using sluice::wal_checkpointer;
using sluice::test::temp_dir;

namespace {

using sluice::test::eventually;

constexpr uint64_t page_size = 4096;  // SQLite's default, which these databases keep

sqlite_db open_wal_db(const fs::path& path) {
    sqlite_db db(path.string());
    db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
            "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);",
            "test");
    return db;
}

// One transaction of `rows` rows of 400 bytes (about 10 per page).
void insert_rows(sqlite_db& db, sluice::sqlite_stmt& insert, int rows) {
    static const std::string value(400, 'x');
    REQUIRE(sqlite3_exec(db.get(), "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
    for (int i = 0; i < rows; ++i) {
        sqlite3_bind_text(insert.get(), 1, value.data(), static_cast<int>(value.size()),
                          SQLITE_STATIC);
        REQUIRE(insert.run() == SQLITE_DONE);
    }
    REQUIRE(sqlite3_exec(db.get(), "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK);
}

int64_t row_count(sqlite3* db) {
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &stmt, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
    const int64_t n = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return n;
}

// A fresh WAL database in its own directory, with the test table and an INSERT for it.
struct wal_db {
    temp_dir dir{"sluice-wal"};
    fs::path path = dir.path() / "t.db";
    sqlite_db db = open_wal_db(path);
    sluice::sqlite_stmt insert = db.prepare("INSERT INTO t (v) VALUES (?1)");
};

uintmax_t file_size_or_zero(const fs::path& p) {
    std::error_code ec;
    const uintmax_t n = fs::file_size(p, ec);
    return ec ? 0 : n;
}

}  // namespace

TEST_CASE_METHOD(wal_db,
                 "wal checkpointer keeps the WAL bounded while the writer never pauses",
                 "[wal_checkpointer]") {
    // 50 pages start a pass; at 200 pages the writer waits for one.
    const wal_checkpoint_config config{50 * page_size, 200 * page_size};
    constexpr int transactions = 100;
    constexpr int rows_per_transaction = 200;  // ~20 pages each: ~2,000 pages in all
    uintmax_t largest_wal = 0;
    {
        wal_checkpointer checkpointer(db.get(), path.string(), config);
        for (int i = 0; i < transactions; ++i) {
            checkpointer.before_transaction();
            insert_rows(db, insert, rows_per_transaction);
            largest_wal = std::max(largest_wal, file_size_or_zero(dir.path() / "t.db-wal"));
        }
        const auto stats = checkpointer.stats();
        CHECK(stats.passes > 0);
        CHECK(stats.writer_waits > 0);
        // The WAL started over: it holds far fewer pages than were ever written to it.
        CHECK(stats.wal_frames < 400);
    }
    // Bounded by the limit plus a transaction or two, never the ~8 MB written in all.
    CHECK(largest_wal < (200 + 2 * 25) * (page_size + 24) + 32);
    CHECK(file_size_or_zero(path) > uintmax_t{transactions} * rows_per_transaction * 400);
    CHECK(row_count(db.get()) == transactions * rows_per_transaction);
}

TEST_CASE_METHOD(wal_db,
                 "wal checkpointer copies the WAL into the database between the writer's commits",
                 "[wal_checkpointer]") {
    wal_checkpointer checkpointer(db.get(), path.string(),
                                  wal_checkpoint_config{50 * page_size, 100000 * page_size});
    // ~100 pages, past the trigger; far below the limit, so the writer never waits.
    insert_rows(db, insert, 1000);
    eventually([&] {
        return checkpointer.stats().checkpointed_frames >= checkpointer.stats().wal_frames;
    });
    const auto stats = checkpointer.stats();
    CHECK(stats.writer_waits == 0);
    CHECK(stats.passes >= 1);
    CHECK(stats.wal_frames >= 50);
    CHECK(stats.checkpointed_frames == stats.wal_frames);
    // The database file itself holds the rows now, not only the WAL.
    CHECK(file_size_or_zero(path) > uintmax_t{1000} * 400);
}

TEST_CASE_METHOD(wal_db,
                 "wal checkpointer never stalls the writer behind a reader that pins the WAL",
                 "[wal_checkpointer]") {
    wal_checkpointer checkpointer(db.get(), path.string(),
                                  wal_checkpoint_config{20 * page_size, 60 * page_size});
    insert_rows(db, insert, 100);

    // A reader in an open transaction keeps every frame from here on in the WAL.
    sqlite_db reader(path.string());
    reader.exec("BEGIN", "reader");
    CHECK(row_count(reader.get()) == 100);
    for (int i = 0; i < 30; ++i) {
        checkpointer.before_transaction();
        insert_rows(db, insert, 100);
    }
    // The writer got through every transaction; the WAL grew past the limit meanwhile.
    CHECK(checkpointer.stats().wal_frames > 60);
    CHECK(row_count(db.get()) == 3100);

    reader.exec("COMMIT", "reader");
    for (int i = 0; i < 10; ++i) {
        checkpointer.before_transaction();
        insert_rows(db, insert, 100);
    }
    // With the reader gone the WAL was copied and started over.
    CHECK(checkpointer.stats().wal_frames <= 60 + 20);
    CHECK(row_count(db.get()) == 4100);
}

TEST_CASE_METHOD(wal_db,
                 "wal checkpointer writes back while the writer commits and rests when it stops",
                 "[wal_checkpointer]") {
    using namespace std::chrono_literals;
    wal_checkpointer checkpointer(db.get(), path.string());
    const auto wait_for_writebacks_past = [&](uint64_t n) {
        eventually([&] { return checkpointer.stats().writebacks > n; });
        return checkpointer.stats().writebacks;
    };
    CHECK(checkpointer.stats().writebacks == 0);  // nothing written yet: nothing to start
    insert_rows(db, insert, 100);
    const uint64_t first = wait_for_writebacks_past(0);
    CHECK(first > 0);
    // Idle: once the last round is over, no further one starts.
    std::this_thread::sleep_for(100ms);
    const uint64_t settled = checkpointer.stats().writebacks;
    std::this_thread::sleep_for(200ms);
    CHECK(checkpointer.stats().writebacks == settled);
    // Each new commit is noticed.
    insert_rows(db, insert, 100);
    CHECK(wait_for_writebacks_past(settled) > settled);
}

TEST_CASE_METHOD(wal_db,
                 "wal checkpointer with a zero writeback interval starts no writeback",
                 "[wal_checkpointer]") {
    using namespace std::chrono_literals;
    wal_checkpointer checkpointer(db.get(), path.string(),
                                  wal_checkpoint_config{50 * page_size, 1000 * page_size, 0ms});
    insert_rows(db, insert, 1000);  // ~100 pages: past the trigger, so a pass runs
    CHECK(eventually([&] { return checkpointer.stats().passes > 0; }));
    CHECK(checkpointer.stats().writebacks == 0);
    CHECK(row_count(db.get()) == 1000);
}

TEST_CASE("wal checkpointer refuses a database that is not in WAL mode", "[wal_checkpointer]") {
    temp_dir dir("sluice-wal");
    const fs::path path = dir.path() / "t.db";
    sqlite_db db(path.string());
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", "test");
    CHECK_THROWS_AS(wal_checkpointer(db.get(), path.string()), sluice::error);
}
