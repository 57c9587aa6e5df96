// Tests for the SQLite sink, driven directly through write() against a real database in a
// temporary directory, read back over a second connection: the schema and WAL journal, one row
// per event, the decoded columns and their reset, a locked database (retry, then every row
// exactly once), the FTS5 index, and table name validation.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <sqlite3.h>

#include "common/error.h"
#include "queue/event.h"
#include "sinks/sqlite_sink.h"
#include "tests/temp_dir.h"
#include "tests/test_support.h"

namespace fs = std::filesystem;
using sluice::test::temp_dir;
using namespace std::chrono_literals;
using sluice::batch;
using sluice::batch_ptr;
using sluice::sqlite_sink;
using sluice::sqlite_sink_config;
using sluice::write_status;

namespace {

using sluice::test::batch_of_lines;

// A second connection to the sink's database, for reading back and for holding locks.
class reader {
public:
    explicit reader(const fs::path& path) {
        REQUIRE(sqlite3_open(path.c_str(), &db_) == SQLITE_OK);
    }
    ~reader() { sqlite3_close_v2(db_); }
    sqlite3* get() const { return db_; }

    void exec(const std::string& sql) {
        char* err = nullptr;
        const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
        INFO(sql << ": " << (err ? err : ""));
        sqlite3_free(err);
        REQUIRE(rc == SQLITE_OK);
    }

    // Every row of a query, NULL as std::nullopt.
    std::vector<std::vector<std::optional<std::string>>> rows(const std::string& sql) {
        sqlite3_stmt* stmt = nullptr;
        INFO(sql);
        REQUIRE(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
        std::vector<std::vector<std::optional<std::string>>> out;
        int rc;
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
            std::vector<std::optional<std::string>> row;
            for (int c = 0; c < sqlite3_column_count(stmt); ++c) {
                if (sqlite3_column_type(stmt, c) == SQLITE_NULL) {
                    row.emplace_back(std::nullopt);
                } else {
                    const auto* text =
                        reinterpret_cast<const char*>(sqlite3_column_text(stmt, c));
                    row.emplace_back(std::string(text, sqlite3_column_bytes(stmt, c)));
                }
            }
            out.push_back(std::move(row));
        }
        sqlite3_finalize(stmt);
        REQUIRE(rc == SQLITE_DONE);
        return out;
    }

    std::string scalar(const std::string& sql) {
        const auto r = rows(sql);
        REQUIRE(r.size() == 1);
        REQUIRE(r[0].size() == 1);
        REQUIRE(r[0][0].has_value());
        return *r[0][0];
    }

private:
    sqlite3* db_ = nullptr;
};

using row = std::vector<std::optional<std::string>>;

// Rows as text, NULL as "NULL", so that a failed comparison shows what differs.
std::vector<std::string> show(const std::vector<row>& rows) {
    std::vector<std::string> out;
    for (const auto& r : rows) {
        std::string line;
        for (const auto& v : r) {
            line += (line.empty() ? "" : " | ") + (v ? "'" + *v + "'" : std::string("NULL"));
        }
        out.push_back(line);
    }
    return out;
}
const std::nullopt_t null = std::nullopt;

sqlite_sink_config db_config(std::string table = "logs") {
    sqlite_sink_config c;
    c.path = "db/logs.db";  // a directory the sink makes
    c.table = std::move(table);
    c.busy_timeout = 10ms;
    return c;
}

sluice::retry_config fast_retry() {
    sluice::retry_config r;
    r.initial_backoff = 1ms;
    r.max_backoff = 1ms;
    return r;
}

// A decoded batch of source 0: an event with no decoded column (nil host, so the batch's peer
// host), then a syslog-like event with every column set.
batch_ptr make_decoded(const std::string& peer) {
    auto b = std::make_shared<batch>(0);
    const std::string line = "<165>1 2023-11-14T22:13:20Z h1 app1 77 ID9 - the body";
    b->add_line("undecoded line");
    b->add_line(line);
    b->received_ns = 2000;
    b->host = peer;
    const uint32_t at = b->events()[1].offset;
    auto ref = [&](std::string_view part) {
        return sluice::text_ref{at + static_cast<uint32_t>(line.find(part)),
                                static_cast<uint32_t>(part.size()), false};
    };
    sluice::event_meta m;
    m.ts_ns = 1'700'000'000'000'000'000;
    m.severity = 5;
    m.facility = 20;
    m.host = ref("h1");
    m.app = ref("app1");
    m.procid = ref("77");
    m.msgid = ref("ID9");
    m.message = ref("the body");
    b->extra() = R"({"sd@1":{"k":"v"}})";
    m.fields = {0, static_cast<uint32_t>(b->extra().size()), true};
    b->meta().push_back(sluice::event_meta{});
    b->meta().push_back(m);  // last: its values stay bound after the batch
    return b;
}

constexpr const char* all_columns =
    "SELECT received_at, ts, source, host, severity, facility, app, procid, msgid, message, "
    "fields FROM logs ORDER BY id";

}  // namespace

TEST_CASE("sqlite sink creates the SPEC schema in a WAL database", "[sqlite_sink]") {
    temp_dir dir;
    sqlite_sink sink("db", {}, db_config(), dir.path(), {"app"});
    reader r(dir.path() / "db" / "logs.db");

    // cid, name, type, notnull, dflt_value, pk
    const auto info = r.rows("PRAGMA table_info(logs)");
    const std::vector<row> expected = {
        {"0", "id", "INTEGER", "0", null, "1"},
        {"1", "received_at", "INTEGER", "1", null, "0"},
        {"2", "ts", "INTEGER", "0", null, "0"},
        {"3", "source", "TEXT", "1", null, "0"},
        {"4", "file", "TEXT", "0", null, "0"},
        {"5", "host", "TEXT", "0", null, "0"},
        {"6", "severity", "INTEGER", "0", null, "0"},
        {"7", "facility", "INTEGER", "0", null, "0"},
        {"8", "app", "TEXT", "0", null, "0"},
        {"9", "procid", "TEXT", "0", null, "0"},
        {"10", "msgid", "TEXT", "0", null, "0"},
        {"11", "message", "TEXT", "1", null, "0"},
        {"12", "fields", "TEXT", "0", null, "0"},
    };
    CHECK(show(info) == show(expected));
    CHECK(r.scalar("PRAGMA journal_mode") == "wal");
    CHECK(r.scalar("PRAGMA page_size") == "16384");
    REQUIRE(sink.checkpointer() != nullptr);

    // Opening again keeps the table and its rows.
    REQUIRE(sink.write(std::vector<batch_ptr>{batch_of_lines(0, {"kept"}, 1)}) == write_status::ok);
    sqlite_sink again("db2", {}, db_config(), dir.path(), {"app"});
    CHECK(r.scalar("SELECT count(*) FROM logs") == "1");
}

TEST_CASE("sqlite sink stores a tailed file's path, and adds the column to an old table",
          "[sqlite_sink]") {
    temp_dir dir;
    fs::create_directories(dir.path() / "db");
    {
        // A table as sluice made it before the `file` column, with a row.
        reader old(dir.path() / "db" / "logs.db");
        old.exec("CREATE TABLE logs (id INTEGER PRIMARY KEY, received_at INTEGER NOT NULL, "
                 "ts INTEGER, source TEXT NOT NULL, host TEXT, severity INTEGER, facility "
                 "INTEGER, app TEXT, procid TEXT, msgid TEXT, message TEXT NOT NULL, fields "
                 "TEXT); INSERT INTO logs (received_at, source, message) VALUES (1, 'app', 'old')");
    }
    sqlite_sink sink("db", {}, db_config(), dir.path(), {"files"});
    auto tailed = std::make_shared<batch>(0);
    tailed->add_line("from a file");
    tailed->file = "/var/log/app/a.log";
    tailed->received_ns = 2;
    REQUIRE(sink.write(std::vector<batch_ptr>{tailed, batch_of_lines(0, {"no file"}, 3)}) ==
            write_status::ok);
    reader r(dir.path() / "db" / "logs.db");
    const std::vector<row> expected = {
        {"old", null}, {"from a file", "/var/log/app/a.log"}, {"no file", null}};
    CHECK(show(r.rows("SELECT message, file FROM logs ORDER BY id")) == show(expected));
}

TEST_CASE("sqlite sink checkpoints on its own thread and keeps the WAL bounded",
          "[sqlite_sink]") {
    temp_dir dir;
    sqlite_sink sink("db", {}, db_config(), dir.path(), {"app"});
    REQUIRE(sink.checkpointer() != nullptr);
    const fs::path wal = dir.path() / "db" / "logs.db-wal";
    // 100 MB in 100 writes of 1 MB: past the 64 MiB at which the writer waits for a pass.
    const std::string line(999, 'x');
    uintmax_t largest_wal = 0;
    for (int i = 0; i < 100; ++i) {
        REQUIRE(sink.write(std::vector<batch_ptr>{batch_of_lines(
                    0, std::vector<std::string>(1000, line), i)}) == write_status::ok);
        std::error_code ec;
        largest_wal = std::max(largest_wal, fs::file_size(wal, ec));
    }
    const auto stats = sink.checkpointer()->stats();
    // Every 4 MiB committed starts a pass unless one is running; a slow disk means fewer.
    CHECK(stats.passes >= 2);
    // The WAL started over at the latest at the limit (plus about a write), so it never held
    // the 100 MB written.
    CHECK(largest_wal < uintmax_t{72} << 20);
    reader r(dir.path() / "db" / "logs.db");
    CHECK(r.scalar("SELECT count(*) FROM logs") == "100000");
}

TEST_CASE("sqlite sink writes one row per event", "[sqlite_sink]") {
    temp_dir dir;
    sqlite_sink sink("db", {}, db_config(), dir.path(), {"app", "web"});
    const std::vector<batch_ptr> batches = {
        batch_of_lines(0, {"first", "", "quote ' and \"double\""}, 1'700'000'000'123'456'789,
                   "10.0.0.1"),
        batch_of_lines(1, {"from web"}, -5),
    };
    REQUIRE(sink.write(batches) == write_status::ok);
    reader r(dir.path() / "db" / "logs.db");
    const std::vector<row> expected = {
        {"1700000000123456789", null, "app", "10.0.0.1", null, null, null, null, null, "first",
         null},
        {"1700000000123456789", null, "app", "10.0.0.1", null, null, null, null, null, "", null},
        {"1700000000123456789", null, "app", "10.0.0.1", null, null, null, null, null,
         "quote ' and \"double\"", null},
        {"-5", null, "web", null, null, null, null, null, null, "from web", null},
    };
    CHECK(show(r.rows(all_columns)) == show(expected));
    CHECK(sluice::read(sink.counters().events_total) == 4);
    CHECK(sluice::read(sink.counters().batches_total) == 1);
}

TEST_CASE("sqlite sink fills decoded columns and resets them for plain batches",
          "[sqlite_sink]") {
    temp_dir dir;
    sqlite_sink sink("db", {}, db_config(), dir.path(), {"app"});
    const row decoded_full = {"2000", "1700000000000000000", "app", "h1", "5", "20", "app1",
                              "77", "ID9", "the body", R"({"sd@1":{"k":"v"}})"};
    const row decoded_bare_peer = {"2000", null, "app", "peer", null, null, null,
                                   null, null, "undecoded line", null};
    const row decoded_bare_nopeer = {"2000", null, "app", null, null, null, null,
                                     null, null, "undecoded line", null};
    const row plain_a = {"3000", null, "app", "10.9.9.9", null, null, null,
                         null, null, "plain a", null};
    const row plain_b = {"4000", null, "app", null, null, null, null, null, null, "plain b", null};

    SECTION("in one write") {
        const std::vector<batch_ptr> batches = {make_decoded("peer"),
                                                batch_of_lines(0, {"plain a"}, 3000, "10.9.9.9"),
                                                batch_of_lines(0, {"plain b"}, 4000)};
        REQUIRE(sink.write(batches) == write_status::ok);
        reader r(dir.path() / "db" / "logs.db");
        CHECK(show(r.rows(all_columns)) ==
              show(std::vector<row>{decoded_bare_peer, decoded_full, plain_a, plain_b}));
    }
    SECTION("in separate writes") {
        REQUIRE(sink.write(std::vector<batch_ptr>{make_decoded("")}) == write_status::ok);
        REQUIRE(sink.write(std::vector<batch_ptr>{batch_of_lines(0, {"plain b"}, 4000)}) ==
                write_status::ok);
        REQUIRE(sink.write(std::vector<batch_ptr>{make_decoded("peer")}) == write_status::ok);
        REQUIRE(sink.write(std::vector<batch_ptr>{
                    batch_of_lines(0, {"plain a"}, 3000, "10.9.9.9")}) == write_status::ok);
        reader r(dir.path() / "db" / "logs.db");
        CHECK(show(r.rows(all_columns)) ==
              show(std::vector<row>{decoded_bare_nopeer, decoded_full, plain_b, decoded_bare_peer,
                                    decoded_full, plain_a}));
    }
    SECTION("after a failed decoded write") {
        // A trigger fails the decoded batch's second insert after it bound every column: the
        // batch is rolled back, and the next plain batch still writes NULLs.
        reader admin(dir.path() / "db" / "logs.db");
        admin.exec("CREATE TRIGGER boom BEFORE INSERT ON logs WHEN new.message = "
                   "'the body' BEGIN SELECT RAISE(ABORT, 'scripted failure'); END");
        CHECK(sink.write(std::vector<batch_ptr>{batch_of_lines(0, {"plain a"}, 3000, "10.9.9.9"),
                                                make_decoded("peer")}) == write_status::permanent);
        CHECK(admin.scalar("SELECT count(*) FROM logs") == "0");  // nothing half-written
        admin.exec("DROP TRIGGER boom");
        REQUIRE(sink.write(std::vector<batch_ptr>{batch_of_lines(0, {"plain b"}, 4000)}) ==
                write_status::ok);
        reader r(dir.path() / "db" / "logs.db");
        CHECK(show(r.rows(all_columns)) == show(std::vector<row>{plain_b}));
    }
}

TEST_CASE("sqlite sink retries a locked database and then writes every row exactly once",
          "[sqlite_sink]") {
    temp_dir dir;
    sqlite_sink sink("db", {}, db_config(), dir.path(), {"app", "web"}, fast_retry());
    reader locker(dir.path() / "db" / "logs.db");

    // Some rows already there, which must not be touched.
    REQUIRE(sink.write(std::vector<batch_ptr>{batch_of_lines(0, {"pre"}, 1)}) == write_status::ok);

    std::vector<batch_ptr> batches;
    std::map<std::string, int> expected;
    for (int i = 0; i < 20; ++i) {
        std::vector<std::string> lines;
        for (int k = 0; k < 1 + i % 4; ++k) {
            lines.push_back("b" + std::to_string(i) + "-" + std::to_string(k));
            expected[lines.back()] = 1;
        }
        batches.push_back(batch_of_lines(static_cast<sluice::source_id>(i % 2), lines, 100 + i));
    }
    batches.push_back(make_decoded("peer"));
    expected["the body"] = 1;
    expected["undecoded line"] = 1;

    locker.exec("BEGIN EXCLUSIVE");
    CHECK(sink.write(batches) == write_status::retry);
    CHECK(sink.write(batches) == write_status::retry);
    CHECK(sluice::read(sink.counters().errors_total) == 2);
    CHECK(locker.scalar("SELECT count(*) FROM logs") == "1");  // nothing of the batch
    locker.exec("COMMIT");

    reader r(dir.path() / "db" / "logs.db");
    CHECK(r.scalar("SELECT count(*) FROM logs") == "1");  // still nothing half-written

    REQUIRE(sink.write(batches) == write_status::ok);
    std::map<std::string, int> seen;
    for (const auto& rw : r.rows("SELECT message FROM logs WHERE message <> 'pre'")) {
        ++seen[*rw[0]];
    }
    CHECK(seen == expected);
    CHECK(r.scalar("SELECT count(*) FROM logs WHERE message = 'pre'") == "1");
    CHECK(sluice::read(sink.counters().batches_total) == 2);
    CHECK(sluice::read(sink.counters().events_total) == 1 + expected.size());

    // A reader's open transaction (WAL) does not block the writer.
    r.exec("BEGIN");
    CHECK(r.scalar("SELECT count(*) FROM logs") == std::to_string(1 + expected.size()));
    REQUIRE(sink.write(std::vector<batch_ptr>{batch_of_lines(0, {"during read"}, 9)}) ==
            write_status::ok);
    r.exec("COMMIT");
    CHECK(r.scalar("SELECT count(*) FROM logs WHERE message = 'during read'") == "1");
}

TEST_CASE("sqlite sink with fts builds a working FTS5 index", "[sqlite_sink]") {
    temp_dir dir;
    sqlite_sink_config c = db_config("events");
    c.fts = true;
    sqlite_sink sink("db", {}, c, dir.path(), {"app"});
    REQUIRE(sink.write(std::vector<batch_ptr>{
                batch_of_lines(0, {"disk full on node7", "all good", "node7 rebooted"}, 1),
                make_decoded("peer")}) == write_status::ok);
    REQUIRE(sink.write(std::vector<batch_ptr>{batch_of_lines(0, {"another disk warning"}, 2)}) ==
            write_status::ok);

    reader r(dir.path() / "db" / "logs.db");
    CHECK(r.rows("SELECT e.message FROM events_fts f JOIN events e ON e.id = f.rowid "
                 "WHERE events_fts MATCH 'disk' ORDER BY e.id") ==
          std::vector<row>{{"disk full on node7"}, {"another disk warning"}});
    CHECK(r.scalar("SELECT count(*) FROM events_fts WHERE events_fts MATCH 'node7'") == "2");
    CHECK(r.scalar("SELECT count(*) FROM events_fts WHERE events_fts MATCH 'body'") == "1");
    CHECK(r.scalar("SELECT count(*) FROM events_fts WHERE events_fts MATCH 'absent'") == "0");
    r.exec("INSERT INTO events_fts(events_fts) VALUES('integrity-check')");

    // Reopening with fts again is harmless.
    sqlite_sink again("db2", {}, c, dir.path(), {"app"});
    CHECK(r.scalar("SELECT count(*) FROM events") == "6");
}

TEST_CASE("sqlite sink rejects an invalid table name", "[sqlite_sink]") {
    temp_dir dir;
    for (const char* bad : {"", "1logs", "logs; DROP TABLE x", "my-logs", "lo gs", "l\"x",
                            "ünïcode"}) {
        INFO("table: " << bad);
        CHECK_THROWS_AS(sqlite_sink("db", {}, db_config(bad), dir.path(), {"app"}),
                        sluice::error);
    }
    CHECK_THROWS_AS(
        sqlite_sink("db", {}, db_config(std::string(65, 'a')), dir.path(), {"app"}),
        sluice::error);
    CHECK_FALSE(fs::exists(dir.path() / "db" / "logs.db"));  // nothing created
    CHECK(sluice::valid_table_name("logs"));
    CHECK(sluice::valid_table_name("_x9"));
    CHECK(sluice::valid_table_name(std::string(64, 'a')));

    // A database that cannot be opened throws too.
    sqlite_sink_config c = db_config();
    c.path = (dir.path() / "file" / "x.db").string();
    { std::FILE* f = std::fopen((dir.path() / "file").c_str(), "w"); std::fclose(f); }
    CHECK_THROWS_AS(sqlite_sink("db", {}, c, dir.path(), {"app"}), sluice::error);
}

TEST_CASE("sqlite sink: a write failing at any row is rolled back, and the retry writes each "
          "row once",
          "[sqlite_sink]") {
    temp_dir dir;
    sqlite_sink sink("db", {}, db_config(), dir.path(), {"app", "web"}, fast_retry());
    reader r(dir.path() / "db" / "logs.db");
    REQUIRE(sink.write(std::vector<batch_ptr>{batch_of_lines(0, {"pre"}, 1)}) == write_status::ok);
    std::vector<batch_ptr> batches = {batch_of_lines(0, {"a1", "a2"}, 10),
                                      batch_of_lines(1, {"b1"}, 11), make_decoded("peer"),
                                      batch_of_lines(0, {"a3", "a4", "a5"}, 12)};
    const int rows = 2 + 1 + 2 + 3;
    for (int fail_at = 0; fail_at < rows; ++fail_at) {
        INFO("the insert of row " << fail_at << " of the batch fails");
        const std::string before = r.scalar("SELECT count(*) FROM logs");
        // A real SQLite failure at that row: a trigger that aborts the statement.
        r.exec("CREATE TRIGGER fail BEFORE INSERT ON logs WHEN (SELECT count(*) FROM logs) >= " +
               before + " + " + std::to_string(fail_at) +
               " BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
        CHECK(sink.write(batches) == write_status::permanent);
        CHECK(r.scalar("SELECT count(*) FROM logs") == before);  // nothing half-written
        r.exec("DROP TRIGGER fail");
        REQUIRE(sink.write(batches) == write_status::ok);
        CHECK(r.scalar("SELECT count(*) FROM logs") ==
              std::to_string(std::stoi(before) + rows));
    }
    // Every row of every round once: no duplicates from any of the failed attempts.
    CHECK(r.scalar("SELECT count(*) FROM (SELECT message, count(*) c FROM logs "
                   "GROUP BY message HAVING c <> " +
                   std::to_string(rows) + ") WHERE message <> 'pre'") == "0");
}

TEST_CASE("sqlite sink: a database deleted or replaced under it is made again at the path",
          "[sqlite_sink]") {
    temp_dir dir;
    const auto path = dir.path() / "db" / "logs.db";
    sqlite_sink sink("db", {}, db_config(), dir.path(), {"app"}, fast_retry());
    REQUIRE(sink.write(std::vector<batch_ptr>{batch_of_lines(0, {"one"}, 1)}) == write_status::ok);
    SECTION("deleted, with its -wal and -shm") {
        std::filesystem::remove(path);
        std::error_code ec;
        std::filesystem::remove(path.string() + "-wal", ec);
        std::filesystem::remove(path.string() + "-shm", ec);
    }
    SECTION("deleted, its -wal and -shm left behind") {
        std::filesystem::remove(path);
    }
    SECTION("replaced by another database") {
        std::filesystem::remove(path);
        reader other(path);
        other.exec("CREATE TABLE unrelated (x)");
    }
    REQUIRE(sink.write(std::vector<batch_ptr>{batch_of_lines(0, {"two", "three"}, 2)}) ==
            write_status::ok);
    reader r(path);
    CHECK(r.scalar("SELECT group_concat(message, ',') FROM logs") == "two,three");
    REQUIRE(sink.write(std::vector<batch_ptr>{batch_of_lines(0, {"four"}, 3)}) == write_status::ok);
    CHECK(r.scalar("SELECT count(*) FROM logs") == "3");
}
