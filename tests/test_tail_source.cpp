// Tests for the file source on real files in a temporary directory, pumped on a real
// io_context into a real queue whose sink the test plays (tests/source_harness.h): reading,
// read_from, unterminated lines, rename and copytruncate rotation, checkpoints that resume
// only what was delivered, multiline, and fairness across files.
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "ingest/tail/checkpoint_store.h"
#include "ingest/tail/tail_source.h"
#include "tests/source_harness.h"
#include "tests/temp_dir.h"

using namespace std::chrono_literals;
using sluice::tail_source;
using sluice::tail_source_config;
using sluice::test::harness;
using sluice::test::temp_dir;

namespace {

void append(const std::filesystem::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary | std::ios::app);
    out << text;
}

std::string numbered_lines(const std::string& tag, int from, int to) {
    std::string s;
    for (int i = from; i < to; ++i) {
        s += tag + " line " + std::to_string(i) + "\n";
    }
    return s;
}

tail_source_config config_for(const temp_dir& dir, const std::string& pattern = "*.log") {
    tail_source_config c;
    c.include = {(dir.path() / "logs" / pattern).string()};
    c.checkpoints_path = (dir.path() / "checkpoints.db").string();
    c.poll_interval = 50ms;
    c.rotate_wait = 100ms;
    c.line_flush = 100ms;
    return c;
}

// A file source started on a test harness.
struct tailing {
    explicit tailing(tail_source_config c) : src("files", 0, h.io, h.q, std::move(c)) {
        h.src = &src;
        src.start();
    }
    harness h;
    tail_source src;
};

std::vector<std::string> lines_seen(const harness& h) {
    std::vector<std::string> out;
    for (const auto& e : h.events) {
        out.push_back(e.line);
    }
    return out;
}

// The source runs until `n` events were read, then stops and saves its offsets.
void run_until(harness& h, size_t n) {
    h.pump_until([&] { return h.events.size() >= n; }, true, "events");
}

void finish(harness& h, tail_source& src) {
    h.stop_and_settle();
    // Acknowledgements are posted to the io thread: let them arrive, then save.
    for (int i = 0; i < 5; ++i) {
        h.pump();
    }
    src.flush_acknowledgements();
}

std::map<std::string, int64_t> saved_offsets(const temp_dir& dir, const std::string& source) {
    sluice::checkpoint_store store((dir.path() / "checkpoints.db").string());
    std::map<std::string, int64_t> out;
    for (const auto& c : store.load(source)) {
        out[std::filesystem::path(c.path).filename().string()] = c.offset;
    }
    return out;
}

}  // namespace

TEST_CASE("file source: reads every line of existing and new files, with their path",
          "[tail]") {
    temp_dir dir;
    std::filesystem::create_directories(dir.path() / "logs");
    const auto a = dir.path() / "logs" / "a.log";
    append(a, numbered_lines("a", 0, 1000));
    append(dir.path() / "logs" / "skip.txt", "not matched\n");
    tailing t(config_for(dir));
    auto& h = t.h;
    auto& src = t.src;
    run_until(h, 1000);
    // A file created while running is read from its start, like appended lines.
    const auto b = dir.path() / "logs" / "b.log";
    append(b, numbered_lines("b", 0, 10));
    append(a, numbered_lines("a", 1000, 1010));
    run_until(h, 1020);
    finish(h, src);

    auto seen = lines_seen(h);
    CHECK(seen.size() == 1020);
    std::sort(seen.begin(), seen.end());
    std::vector<std::string> expected;
    for (int i = 0; i < 1010; ++i) {
        expected.push_back("a line " + std::to_string(i));
    }
    for (int i = 0; i < 10; ++i) {
        expected.push_back("b line " + std::to_string(i));
    }
    std::sort(expected.begin(), expected.end());
    CHECK(seen == expected);
    CHECK(h.events.front().origin == a.string());
    CHECK(h.batches.front()->file == a.string());
    CHECK(src.files()->watched.load() == 2);
    CHECK(src.files()->behind_bytes.load() == 0);
    // Every delivered byte is checkpointed.
    const auto offsets = saved_offsets(dir, "files");
    CHECK(offsets.at("a.log") == static_cast<int64_t>(std::filesystem::file_size(a)));
    CHECK(offsets.at("b.log") == static_cast<int64_t>(std::filesystem::file_size(b)));
}

TEST_CASE("file source: read_from = end skips what a file held at start", "[tail]") {
    temp_dir dir;
    std::filesystem::create_directories(dir.path() / "logs");
    const auto a = dir.path() / "logs" / "a.log";
    append(a, numbered_lines("old", 0, 100));
    auto cfg = config_for(dir);
    cfg.start_at = sluice::read_from::end;
    tailing t(cfg);
    auto& h = t.h;
    auto& src = t.src;
    for (int i = 0; i < 20; ++i) {
        h.pump();
    }
    append(a, numbered_lines("new", 0, 3));
    run_until(h, 3);
    finish(h, src);
    CHECK(lines_seen(h) == std::vector<std::string>{"new line 0", "new line 1", "new line 2"});
}

TEST_CASE("file source: a last line without its newline waits for line_flush", "[tail]") {
    temp_dir dir;
    std::filesystem::create_directories(dir.path() / "logs");
    const auto a = dir.path() / "logs" / "a.log";
    append(a, "complete\npart");
    tailing t(config_for(dir));
    auto& h = t.h;
    auto& src = t.src;
    run_until(h, 1);
    CHECK(lines_seen(h) == std::vector<std::string>{"complete"});
    // The newline comes before line_flush: one line.
    append(a, "ial\n");
    run_until(h, 2);
    CHECK(h.events.back().line == "partial");
    // No newline at all: emitted after line_flush (100 ms here).
    append(a, "no newline");
    run_until(h, 3);
    CHECK(h.events.back().line == "no newline");
    // Reading goes on after a flushed line.
    append(a, "next\n");
    run_until(h, 4);
    CHECK(h.events.back().line == "next");
    finish(h, src);
    CHECK(saved_offsets(dir, "files").at("a.log") ==
          static_cast<int64_t>(std::filesystem::file_size(a)));
}

TEST_CASE("file source: rename rotation and copytruncate lose and repeat nothing", "[tail]") {
    temp_dir dir;
    std::filesystem::create_directories(dir.path() / "logs");
    const auto a = dir.path() / "logs" / "app.log";
    tailing t(config_for(dir, "app.log"));
    auto& h = t.h;
    auto& src = t.src;
    append(a, numbered_lines("x", 0, 500));
    run_until(h, 500);

    SECTION("rename: the old file is read to its end, late writes included") {
        append(a, numbered_lines("x", 500, 600));
        std::filesystem::rename(a, dir.path() / "logs" / "app.log.1");
        append(dir.path() / "logs" / "app.log.1", numbered_lines("x", 600, 610));  // late write
        append(a, numbered_lines("x", 610, 700));
        run_until(h, 700);
        CHECK(src.files()->rotations_rename.load() == 1);
    }
    SECTION("copytruncate: a shorter file is read again from 0") {
        append(a, numbered_lines("x", 500, 600));
        run_until(h, 600);
        std::filesystem::resize_file(a, 0);
        append(a, numbered_lines("x", 600, 700));
        run_until(h, 700);
        CHECK(src.files()->rotations_truncate.load() == 1);
    }
    for (int i = 0; i < 20; ++i) {
        h.pump();
        h.drain();
    }
    finish(h, src);
    auto seen = lines_seen(h);
    REQUIRE(seen.size() == 700);
    for (int i = 0; i < 700; ++i) {
        CHECK(seen[static_cast<size_t>(i)] == "x line " + std::to_string(i));
    }
}

TEST_CASE("file source: a restart resumes after what was delivered, never before", "[tail]") {
    temp_dir dir;
    std::filesystem::create_directories(dir.path() / "logs");
    const auto a = dir.path() / "logs" / "a.log";
    append(a, numbered_lines("r", 0, 20000));
    size_t first_run = 0;
    {
        // The sink takes some batches and never commits the rest: only those are saved.
        tailing t(config_for(dir));
        auto& h = t.h;
        auto& src = t.src;
        h.pump_until([&] { return h.q.events_size_guess() >= 20000; }, false, "every line read");
        std::vector<sluice::batch_ptr> out;
        REQUIRE(h.q.read_until(0, h.cursor, sluice::test::clk::now(), out, 5000, UINT64_MAX) ==
                sluice::read_result::ok);
        h.q.commit(0, h.cursor);
        for (const auto& b : out) {
            first_run += b->event_count();
        }
        REQUIRE(first_run < 20000);
        src.stop();
        h.pump_until([&] { return src.idle(); }, false, "idle() after stop()");
        src.flush_acknowledgements();
    }
    const int64_t saved = saved_offsets(dir, "files").at("a.log");
    CHECK(saved > 0);
    tailing t(config_for(dir));
    auto& h = t.h;
    auto& src = t.src;
    run_until(h, 20000 - first_run);
    finish(h, src);
    // The second run starts exactly after the first one's delivered lines.
    REQUIRE(h.events.size() == 20000 - first_run);
    CHECK(h.events.front().line == "r line " + std::to_string(first_run));
    CHECK(h.events.back().line == "r line 19999");
}

TEST_CASE("file source: a reused inode with other bytes is read from its start", "[tail]") {
    temp_dir dir;
    std::filesystem::create_directories(dir.path() / "logs");
    const auto a = dir.path() / "logs" / "a.log";
    append(a, numbered_lines("first", 0, 50));
    {
        tailing t(config_for(dir));
        auto& h = t.h;
        auto& src = t.src;
        run_until(h, 50);
        finish(h, src);
    }
    // Same inode, other content (truncated and rewritten while sluice was down).
    {
        std::ofstream out(a, std::ios::binary | std::ios::trunc);
        out << numbered_lines("second", 0, 80);
    }
    tailing t(config_for(dir));
    auto& h = t.h;
    auto& src = t.src;
    run_until(h, 80);
    finish(h, src);
    CHECK(h.events.size() == 80);
    CHECK(h.events.front().line == "second line 0");
}

TEST_CASE("file source: multiline makes one event of each Java stack trace", "[tail]") {
    temp_dir dir;
    std::filesystem::create_directories(dir.path() / "logs");
    const auto a = dir.path() / "logs" / "app.log";
    std::string text;
    for (int i = 0; i < 300; ++i) {
        text += "2026-12-01 10:00:00," + std::to_string(100 + i) + " ERROR request " +
                std::to_string(i) + " failed\njava.lang.IllegalStateException: closed\n"
                "\tat com.example.Pool.take(Pool.java:88)\n\tat com.example.App.run(App.java:41)\n";
    }
    append(a, text);
    auto cfg = config_for(dir);
    cfg.multiline = sluice::multiline_config{R"(^\d{4}-\d{2}-\d{2} )", 500, 100ms};
    cfg.read_bytes = 4096;  // traces span reads
    tailing t(cfg);
    auto& h = t.h;
    auto& src = t.src;
    run_until(h, 300);  // the last one after the multiline timeout
    finish(h, src);
    REQUIRE(h.events.size() == 300);
    for (size_t i = 0; i < 300; ++i) {
        CHECK(std::count(h.events[i].line.begin(), h.events[i].line.end(), '\n') == 3);
        CHECK(h.events[i].line.find(" request " + std::to_string(i) + " failed") !=
              std::string::npos);
    }
    CHECK(saved_offsets(dir, "files").at("app.log") == static_cast<int64_t>(text.size()));
}

TEST_CASE("file source: files are read in turns, none starved", "[tail]") {
    temp_dir dir;
    std::filesystem::create_directories(dir.path() / "logs");
    // One big file and 20 small ones: the small ones are done long before the big one.
    append(dir.path() / "logs" / "big.log", numbered_lines("big", 0, 200000));
    for (int f = 0; f < 20; ++f) {
        append(dir.path() / "logs" / ("small" + std::to_string(f) + ".log"),
               numbered_lines("s" + std::to_string(f), 0, 100));
    }
    tailing t(config_for(dir));
    auto& h = t.h;
    auto& src = t.src;
    run_until(h, 202000);
    finish(h, src);
    size_t last_small = 0;
    size_t last_big = 0;
    for (size_t i = 0; i < h.events.size(); ++i) {
        (h.events[i].line.rfind("big", 0) == 0 ? last_big : last_small) = i;
    }
    CHECK(last_small < h.events.size() / 4);
    CHECK(last_big == h.events.size() - 1);
}

TEST_CASE("file source: watch = poll finds new files and lines by rescanning alone", "[tail]") {
    temp_dir dir;
    std::filesystem::create_directories(dir.path() / "logs");
    auto cfg = config_for(dir);
    cfg.watch = sluice::watch_mode::poll;
    tailing t(cfg);
    auto& h = t.h;
    auto& src = t.src;
    append(dir.path() / "logs" / "late.log", numbered_lines("p", 0, 5));
    run_until(h, 5);
    append(dir.path() / "logs" / "late.log", numbered_lines("p", 5, 8));
    run_until(h, 8);
    finish(h, src);
    CHECK(lines_seen(h) == std::vector<std::string>{"p line 0", "p line 1", "p line 2",
                                                    "p line 3", "p line 4", "p line 5",
                                                    "p line 6", "p line 7"});
}
