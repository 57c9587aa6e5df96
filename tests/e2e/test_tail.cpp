// e2e: the file source on the real binary with real files, renames, copytruncate and rm:
// rotation while a writer appends (every line once), kill -9 half-way through a big file and
// a restart on the same data_dir (none missing, few duplicates), inode reuse, tiny files and
// an unterminated line, and Java stack traces joined by multiline.
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/harness.h"

namespace fs = std::filesystem;

namespace {

// A file source over DIR/*.log (and whatever extra keys), into SQLite.
// Batches of 2,500 rows: what a kill -9 can make a restart store twice is what was in
// flight, about one SQLite batch (its rows committed, its offset not yet saved), so a
// 500,000-line file is 200 batches long.
std::string tail_config(const std::string& dir, const std::string& extra = "",
                        const std::string& pattern = "*.log") {
    return fmt::format(R"(
[sources.files]
type = "file"
include = ["{}/{}"]
poll_interval = "200ms"
rotate_wait = "1s"
line_flush = "300ms"
{}

[sinks.db]
type = "sqlite"
path = "logs.db"
batch = {{ max_events = 2500, timeout = "50ms" }}
)",
                       dir, pattern, extra);
}

void append(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::app);
    out << text;
}

uint64_t inode_of(const std::string& path) {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_ino;
}

// How often each message is in the database.
std::map<std::string, int> message_counts(const std::string& db_path) {
    e2e::sqlite_db db(db_path);
    std::map<std::string, int> counts;
    db.for_each_message([&](std::string_view m) { ++counts[std::string(m)]; });
    return counts;
}

std::string line(uint64_t seq) { return e2e::make_line("tail", seq); }

void wait_rows(e2e::daemon& d, int64_t n) {
    d.wait_metric("sluice_sink_events_total{sink=\"db\"}", static_cast<double>(n),
                  e2e::default_deadline, true);
}

}  // namespace

TEST_CASE("file source: rename rotation then copytruncate while a writer appends, every line once",
          "[e2e]") {
    const std::string logs = e2e::make_temp_dir();
    const std::string path = logs + "/app.log";
    append(path, "");
    e2e::daemon d(tail_config(logs, "", "app.log"));

    // The writer appends 50,000 lines, 1,000 at a time; rotations happen between bursts, the
    // way logrotate's copytruncate pauses nobody but takes a moment: the copy and the
    // truncation happen with the writer held, since lines written between them are lost by
    // every tailer (they are only in the copy).
    constexpr uint64_t total = 50'000;
    std::mutex writer_lock;
    std::thread writer([&] {
        for (uint64_t i = 0; i < total; i += 1000) {
            std::string chunk;
            for (uint64_t j = i; j < i + 1000; ++j) {
                chunk += line(j) + "\n";
            }
            std::lock_guard lock(writer_lock);
            append(path, chunk);
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    });
    while (d.metric("sluice_source_events_total{source=\"files\"}") < total / 3) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    {
        std::lock_guard lock(writer_lock);
        fs::rename(path, logs + "/app.log.1");  // logrotate `create`
        append(path, "");
    }
    while (d.metric("sluice_source_events_total{source=\"files\"}") < 2 * total / 3) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    {
        std::lock_guard lock(writer_lock);
        fs::copy_file(path, logs + "/app.log.2");  // logrotate `copytruncate`
        fs::resize_file(path, 0);
    }
    writer.join();
    wait_rows(d, total);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // nothing more may come
    const auto counts = message_counts(d.data_dir() + "/logs.db");
    CHECK(counts.size() == total);
    int repeated = 0;
    for (const auto& [m, n] : counts) {
        repeated += n != 1 ? 1 : 0;
    }
    CHECK(repeated == 0);
    for (uint64_t i = 0; i < total; i += 997) {
        CHECK(counts.count(line(i)) == 1);
    }
    CHECK(d.metric("sluice_file_rotations_total{kind=\"rename\",source=\"files\"}") == 1);
    CHECK(d.metric("sluice_file_rotations_total{kind=\"truncate\",source=\"files\"}") == 1);
    d.signal(SIGTERM);
    CHECK(d.wait_exit() == 0);
    fs::remove_all(logs);
}

TEST_CASE("file source: kill -9 half-way and a restart lose nothing, repeat under 1%", "[e2e]") {
    const std::string logs = e2e::make_temp_dir();
    const std::string path = logs + "/big.log";
    constexpr uint64_t total = 500'000;
    {
        std::string text;
        for (uint64_t i = 0; i < total; ++i) {
            text += line(i) + "\n";
        }
        append(path, text);
    }
    // The state (checkpoints.db, logs.db) outlives the first daemon's temp dir.
    const std::string state = e2e::make_temp_dir();
    const std::string data_dir = state + "/data";
    {
        e2e::daemon first(tail_config(logs), "30s", data_dir);
        wait_rows(first, total / 2);
        first.signal(SIGKILL);
        first.wait_exit();
    }
    e2e::daemon second(tail_config(logs), "30s", data_dir);
    const auto read_again = [&] {
        return second.metric("sluice_source_events_total{source=\"files\"}");
    };
    e2e::wait_for(
        "every line in the database",
        [&] {
            e2e::sqlite_db db(data_dir + "/logs.db");
            return db.count_rows() >= static_cast<int64_t>(total) &&
                   message_counts(data_dir + "/logs.db").size() == total;
        },
        [&] { return second.metrics_summary(); });
    const auto counts = message_counts(data_dir + "/logs.db");
    uint64_t duplicates = 0;
    for (const auto& [m, n] : counts) {
        duplicates += static_cast<uint64_t>(n - 1);
    }
    INFO("duplicates after kill -9: " << duplicates << "; read again: " << read_again());
    CHECK(counts.size() == total);
    CHECK(duplicates < total / 100);
    // The second run resumed at the checkpoint, it did not read the file again from 0.
    CHECK(read_again() < static_cast<double>(total));
    WARN("kill -9 at half of " << total << " lines: " << duplicates << " stored twice");
    second.signal(SIGTERM);
    CHECK(second.wait_exit() == 0);
    fs::remove_all(logs);
    fs::remove_all(state);
}

TEST_CASE("file source: a new file that got a deleted file's inode is read from its start",
          "[e2e]") {
    const std::string logs = e2e::make_temp_dir();
    const std::string path = logs + "/app.log";
    append(path, line(0) + "\n" + line(1) + "\n");
    e2e::daemon d(tail_config(logs));
    wait_rows(d, 2);
    const uint64_t old_inode = inode_of(path);
    fs::remove(path);
    // Closed once rotate_wait (1 s) has passed.
    d.wait_metric("sluice_file_watched{source=\"files\"}", 0);
    // The file system hands the freed inode to one of the next files made (tries bounded).
    std::string reused;
    for (int i = 0; i < 200 && reused.empty(); ++i) {
        const std::string candidate = logs + "/new" + std::to_string(i) + ".tmp";
        append(candidate, "");
        if (inode_of(candidate) == old_inode) {
            reused = candidate;
        }
    }
    if (reused.empty()) {
        WARN("the file system did not reuse the inode; nothing to check");
        return;
    }
    // Longer than the old file, with other bytes: not the old file, so read from 0.
    append(reused, line(100) + "\n" + line(101) + "\n" + line(102) + "\n");
    fs::rename(reused, path);
    wait_rows(d, 5);
    const auto counts = message_counts(d.data_dir() + "/logs.db");
    CHECK(counts.count(line(100)) == 1);
    CHECK(counts.count(line(102)) == 1);
    CHECK(counts.size() == 5);
    d.signal(SIGTERM);
    CHECK(d.wait_exit() == 0);
    fs::remove_all(logs);
}

TEST_CASE("file source: a 10-byte file and a line without a newline are read", "[e2e]") {
    const std::string logs = e2e::make_temp_dir();
    append(logs + "/tiny.log", "123456789\n");
    append(logs + "/open.log", "no newline at the end");
    e2e::daemon d(tail_config(logs));
    wait_rows(d, 2);
    const auto counts = message_counts(d.data_dir() + "/logs.db");
    CHECK(counts.count("123456789") == 1);
    CHECK(counts.count("no newline at the end") == 1);
    // The file column holds the path the glob matched.
    e2e::sqlite_db db(d.data_dir() + "/logs.db");
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(db.handle(), "SELECT file FROM logs WHERE message = '123456789'",
                               -1, &stmt, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
    CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0))) ==
          logs + "/tiny.log");
    sqlite3_finalize(stmt);
    CHECK(d.metric("sluice_file_watched{source=\"files\"}") == 2);
    d.signal(SIGTERM);
    CHECK(d.wait_exit() == 0);
    fs::remove_all(logs);
}

TEST_CASE("file source: multiline makes one event of each Java stack trace", "[e2e]") {
    const std::string logs = e2e::make_temp_dir();
    std::string text;
    constexpr int traces = 200;
    for (int i = 0; i < traces; ++i) {
        text += fmt::format(
            "2026-12-01 10:00:{:02d},{:03d} ERROR [http-{}] c.e.OrderService - order {} failed\n"
            "java.lang.IllegalStateException: pool exhausted\n"
            "\tat com.example.db.Pool.take(Pool.java:88)\n"
            "\tat com.example.OrderService.place(OrderService.java:41)\n"
            "Caused by: java.net.SocketTimeoutException: Read timed out\n"
            "\t... 23 more\n",
            i % 60, i, i % 8, i);
    }
    append(logs + "/app.log", text);
    e2e::daemon d(tail_config(
        logs, R"(multiline = { start = '^\d{4}-\d{2}-\d{2} ', max_lines = 100, timeout = "300ms" })"));
    wait_rows(d, traces);
    e2e::sqlite_db db(d.data_dir() + "/logs.db");
    const auto messages = db.messages();
    REQUIRE(messages.size() == traces);
    for (int i = 0; i < traces; i += 37) {
        const std::string& m = messages[static_cast<size_t>(i)];
        CHECK(std::count(m.begin(), m.end(), '\n') == 5);
        CHECK(m.find(fmt::format("order {} failed", i)) != std::string::npos);
        CHECK(m.find("Caused by: java.net.SocketTimeoutException") != std::string::npos);
    }
    d.signal(SIGTERM);
    CHECK(d.wait_exit() == 0);
    fs::remove_all(logs);
}

TEST_CASE("file source: 1,000 files appended to at once, every line arrives, files read fairly",
          "[e2e]") {
    const std::string logs = e2e::make_temp_dir();
    constexpr int files = 1000;
    constexpr int rounds = 10;
    constexpr int lines_per_round = 10;
    auto file_of = [&](int f) { return fmt::format("{}/f{:04d}.log", logs, f); };
    for (int f = 0; f < files; ++f) {
        append(file_of(f), "");
    }
    e2e::daemon d(tail_config(logs));
    d.wait_metric("sluice_file_watched{source=\"files\"}", files);
    d.start_rss_sampling();
    // Round-robin over the files, as 1,000 busy applications would write.
    for (int r = 0; r < rounds; ++r) {
        for (int f = 0; f < files; ++f) {
            std::string chunk;
            for (int i = 0; i < lines_per_round; ++i) {
                chunk += fmt::format("file {:04d} line {:03d} {}\n", f, r * lines_per_round + i,
                                     e2e::real_log_lines()[static_cast<size_t>(f + i) %
                                                           e2e::real_log_lines().size()]);
            }
            append(file_of(f), chunk);
        }
    }
    constexpr int64_t total = int64_t{files} * rounds * lines_per_round;
    wait_rows(d, total);
    // In arrival order (row id): where each file's last line landed.
    e2e::sqlite_db db(d.data_dir() + "/logs.db");
    std::vector<int64_t> last(files, -1);
    std::map<std::string, int> seen;
    int64_t rank = 0;
    db.for_each_message([&](std::string_view m) {
        ++seen[std::string(m)];
        const int f = std::stoi(std::string(m.substr(5, 4)));
        last[static_cast<size_t>(f)] = rank++;
    });
    CHECK(rank == total);
    CHECK(seen.size() == static_cast<size_t>(total));
    std::sort(last.begin(), last.end());
    CHECK(last.front() >= 0);
    // Fair reading: the files finish together, with the last round, not one after another.
    const double first_done = static_cast<double>(last.front()) / static_cast<double>(total);
    WARN("1,000 files: the first to finish did at " << 100 * first_done
                                                    << "% of all lines, the last at 100%; peak RSS "
                                                    << d.peak_rss_bytes() / (1 << 20) << " MiB");
    CHECK(first_done > 0.5);
    CHECK(d.peak_rss_bytes() < (uint64_t{64} + 48) << 20);
    d.signal(SIGTERM);
    CHECK(d.wait_exit() == 0);
    fs::remove_all(logs);
}

TEST_CASE("file source: a database locked for 10 s while 300 MB are appended, memory bounded",
          "[e2e]") {
    const std::string logs = e2e::make_temp_dir();
    const std::string path = logs + "/big.log";
    append(path, "");
    e2e::daemon d(R"(
[queue]
max_bytes = "16MiB"
)" + tail_config(logs));
    d.start_rss_sampling();
    const uint64_t limit = (uint64_t{16} + 48) << 20;
    // The lock is taken before the writing starts and held for 10 s.
    e2e::sqlite_db locker(d.data_dir() + "/logs.db");
    locker.exec("BEGIN EXCLUSIVE");
    constexpr uint64_t total = 2'400'000;  // ~300 MB of 126-byte lines
    std::thread writer([&] {
        std::ofstream out(path, std::ios::binary | std::ios::app);
        std::string chunk;
        for (uint64_t i = 0; i < total; ++i) {
            chunk += e2e::make_line("big", i) + "\n";
            if (chunk.size() > (1 << 20)) {
                out << chunk;
                out.flush();
                chunk.clear();
            }
        }
        out << chunk;
    });
    std::this_thread::sleep_for(std::chrono::seconds(10));
    // Reading stopped: the queue is full and the source paused, the file far ahead of it.
    CHECK(d.metric("sluice_source_paused{source=\"files\"}") == 1);
    CHECK(d.metric("sluice_file_behind_bytes{source=\"files\"}") > 100e6);
    locker.exec("COMMIT");
    writer.join();
    wait_rows(d, static_cast<int64_t>(total));
    e2e::sqlite_db db(d.data_dir() + "/logs.db");
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(db.handle(), "SELECT count(*), count(DISTINCT message) FROM logs",
                               -1, &stmt, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
    CHECK(sqlite3_column_int64(stmt, 0) == static_cast<int64_t>(total));
    CHECK(sqlite3_column_int64(stmt, 1) == static_cast<int64_t>(total));
    sqlite3_finalize(stmt);
    WARN("300 MB appended during a 10 s lock, 16 MiB queue: peak RSS "
         << d.peak_rss_bytes() / (1 << 20) << " MiB (limit " << limit / (1 << 20) << " MiB)");
    CHECK(d.peak_rss_bytes() < limit);
    d.signal(SIGTERM);
    CHECK(d.wait_exit() == 0);
    fs::remove_all(logs);
}

TEST_CASE("file source: real logrotate, create then copytruncate, while a writer appends",
          "[e2e]") {
    if (std::system("command -v logrotate >/dev/null") != 0) {
        WARN("logrotate is not installed (scripts/setup installs it): skipped");
        return;
    }
    const std::string logs = e2e::make_temp_dir();
    const std::string path = logs + "/app.log";
    append(path, "");
    // Only app.log: copytruncate's copy (app.log.1) is a new file with the same lines.
    e2e::daemon d(tail_config(logs, "", "app.log"));
    auto rotate = [&](const std::string& mode) {
        const std::string conf = logs + "/logrotate-" + mode + ".conf";
        e2e::write_file(conf, fmt::format("{} {{\n  {}\n  rotate 10\n  missingok\n}}\n", path,
                                          mode));
        const std::string cmd = fmt::format("logrotate -f -s {}/state {}", logs, conf);
        REQUIRE(std::system(cmd.c_str()) == 0);
    };
    constexpr uint64_t total = 60'000;
    std::mutex writer_lock;
    std::atomic<uint64_t> written{0};
    std::thread writer([&] {
        for (uint64_t i = 0; i < total; i += 500) {
            std::string chunk;
            for (uint64_t j = i; j < i + 500; ++j) {
                chunk += line(j) + "\n";
            }
            std::lock_guard lock(writer_lock);
            append(path, chunk);  // opened per write, as an app that reopens on rotation
            written = i + 500;
        }
    });
    while (written < total / 3) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    {
        // Renames app.log to app.log.1 and creates a new app.log (which the writer, opening
        // per write, must not create first).
        std::lock_guard lock(writer_lock);
        rotate("create");
    }
    while (written < 2 * total / 3) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    {
        // copytruncate copies then truncates: lines written in between exist only in the copy,
        // which no tailer reads without reading the copy's other lines twice. Hold the writer.
        std::lock_guard lock(writer_lock);
        rotate("copytruncate");
    }
    writer.join();
    wait_rows(d, total);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // past rotate_wait
    const auto counts = message_counts(d.data_dir() + "/logs.db");
    CHECK(counts.size() == total);
    size_t repeated = 0;
    for (const auto& [m, n] : counts) {
        repeated += n != 1 ? 1 : 0;
    }
    CHECK(repeated == 0);
    CHECK(d.metric("sluice_file_rotations_total{kind=\"truncate\",source=\"files\"}") >= 1);
    d.signal(SIGTERM);
    CHECK(d.wait_exit() == 0);
    fs::remove_all(logs);
}
