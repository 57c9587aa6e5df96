// Tests for the file sink, driven directly through write() on real files in a temporary
// directory: text and JSON output, path templates and their directories, reopen after a rename,
// and a failed write that is retried without duplicates.
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <simdjson.h>

#include "queue/bounded_queue.h"
#include "queue/event.h"
#include "sinks/file_sink.h"
#include "tests/temp_dir.h"
#include "tests/test_support.h"

namespace fs = std::filesystem;
using sluice::test::temp_dir;
using sluice::batch;
using sluice::batch_ptr;
using sluice::file_format;
using sluice::file_sink;
using sluice::file_sink_config;
using sluice::write_status;

namespace {

using sluice::test::batch_of_lines;

// A fresh directory under TMPDIR, removed with everything in it at the end of the test.

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string joined(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& l : lines) {
        out += l;
        out += '\n';
    }
    return out;
}

std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> lines;
    size_t at = 0;
    while (at < text.size()) {
        const size_t nl = text.find('\n', at);
        REQUIRE(nl != std::string::npos);  // every line ends with '\n'
        lines.push_back(text.substr(at, nl - at));
        at = nl + 1;
    }
    return lines;
}

sluice::batch_config batching() { return {}; }

file_sink_config text_at(std::string path) {
    file_sink_config c;
    c.path = std::move(path);
    return c;
}

// Local-time strftime of `unix_s`, computed here apart from the sink.
std::string local_strftime(const char* format, time_t unix_s) {
    std::tm tm{};
    REQUIRE(localtime_r(&unix_s, &tm) != nullptr);
    char buf[256];
    const size_t n = std::strftime(buf, sizeof buf, format, &tm);
    return std::string(buf, n);
}

// Sets TZ for one scope (a POSIX TZ string needs no zoneinfo files) and restores it.
class scoped_tz {
public:
    explicit scoped_tz(const char* tz) {
        if (const char* old = std::getenv("TZ")) {
            old_ = old;
            had_ = true;
        }
        ::setenv("TZ", tz, 1);
        ::tzset();
    }
    ~scoped_tz() {
        if (had_) {
            ::setenv("TZ", old_.c_str(), 1);
        } else {
            ::unsetenv("TZ");
        }
        ::tzset();
    }

private:
    std::string old_;
    bool had_ = false;
};

}  // namespace

TEST_CASE("file sink text output is exactly the lines and a newline each", "[file_sink]") {
    temp_dir dir;
    file_sink sink("archive", batching(), text_at("out.log"), dir.path(), {"app"});
    const std::vector<std::string> first = {"one", "", "three \"quoted\" \t tab", "\xff raw"};
    const std::vector<std::string> second = {"four"};
    const std::vector<batch_ptr> batches = {batch_of_lines(0, first), batch_of_lines(0, second)};
    REQUIRE(sink.write(batches) == write_status::ok);
    CHECK(slurp(dir.path() / "out.log") == joined(first) + joined(second));

    // Appends; an absolute path is used as is.
    const std::vector<batch_ptr> more = {batch_of_lines(0, {"five"})};
    REQUIRE(sink.write(more) == write_status::ok);
    CHECK(slurp(dir.path() / "out.log") == joined(first) + joined(second) + "five\n");

    file_sink abs("abs", batching(), text_at((dir.path() / "abs.log").string()), "/nonexistent",
                  {"app"});
    REQUIRE(abs.write(more) == write_status::ok);
    CHECK(slurp(dir.path() / "abs.log") == "five\n");

    CHECK(sluice::read(sink.counters().events_total) == 6);
    CHECK(sluice::read(sink.counters().batches_total) == 2);
    CHECK(sluice::read(sink.counters().errors_total) == 0);
}

TEST_CASE("file sink renders strftime and {source} into paths and makes directories",
          "[file_sink]") {
    temp_dir dir;
    const int64_t t1 = 1'700'000'000'000'000'000;            // 2023-11-14 UTC
    const int64_t t2 = t1 + int64_t{3} * 86'400'000'000'000;  // three days later
    file_sink sink("archive", batching(), text_at("logs/%Y-%m-%d/{source}/x-{source}.log"),
                   dir.path(), {"app", "web"});
    const std::vector<batch_ptr> batches = {
        batch_of_lines(0, {"a1", "a2"}, t1), batch_of_lines(1, {"w1"}, t1),
        batch_of_lines(0, {"a3"}, t1), batch_of_lines(0, {"a4"}, t2)};
    REQUIRE(sink.write(batches) == write_status::ok);

    const std::string day1 = local_strftime("%Y-%m-%d", static_cast<time_t>(t1 / 1'000'000'000));
    const std::string day2 = local_strftime("%Y-%m-%d", static_cast<time_t>(t2 / 1'000'000'000));
    REQUIRE(day1 != day2);
    CHECK(slurp(dir.path() / "logs" / day1 / "app" / "x-app.log") == "a1\na2\na3\n");
    CHECK(slurp(dir.path() / "logs" / day1 / "web" / "x-web.log") == "w1\n");
    CHECK(slurp(dir.path() / "logs" / day2 / "app" / "x-app.log") == "a4\n");
    CHECK(fs::is_directory(dir.path() / "logs" / day1 / "web"));
    CHECK_FALSE(fs::exists(dir.path() / "logs" / day2 / "web"));
}

TEST_CASE("render_path_template expands {source} and local-time strftime", "[file_sink]") {
    const int64_t ns = 1'700'000'000'123'456'789;  // 2023-11-14T22:13:20Z
    const auto s = static_cast<time_t>(ns / 1'000'000'000);

    CHECK(sluice::render_path_template("plain/path.log", ns, "app") == "plain/path.log");
    CHECK(sluice::render_path_template("{source}/{source}.log", ns, "web") == "web/web.log");
    CHECK(sluice::render_path_template("{sourc}/{source", ns, "x") == "{sourc}/{source");
    CHECK(sluice::render_path_template("%Y/%m/%d/%H-{source}.log", ns, "app") ==
          local_strftime("%Y/%m/%d/%H", s) + "-app.log");
    CHECK(sluice::render_path_template("100%%-{source}", ns, "a") == "100%-a");

    SECTION("local time, not UTC") {
        scoped_tz tz("XST-5:30");  // UTC+05:30, no zoneinfo needed
        CHECK(sluice::render_path_template("%Y-%m-%d %H:%M:%S", ns, "app") ==
              "2023-11-15 03:43:20");
        CHECK(sluice::render_path_template("%Y-%m-%d %H:%M", ns, "app") ==
              local_strftime("%Y-%m-%d %H:%M", s));
        CHECK(sluice::render_path_template("%Y-%m-%d %H:%M", 0, "app") == "1970-01-01 05:30");
    }
    SECTION("UTC") {
        scoped_tz tz("UTC0");
        CHECK(sluice::render_path_template("%Y-%m-%dT%H:%M:%S", ns, "app") ==
              "2023-11-14T22:13:20");
        CHECK(sluice::render_path_template("%Y-%m-%dT%H:%M:%S", -1'000'000'000, "app") ==
              "1969-12-31T23:59:59");
    }
    SECTION("a long expansion") {
        const std::string long_pattern(1500, 'x');
        CHECK(sluice::render_path_template(long_pattern + "%Y", ns, "a") ==
              long_pattern + local_strftime("%Y", s));
    }
}

TEST_CASE("file sink json lines parse with received_at, source, host and message",
          "[file_sink]") {
    temp_dir dir;
    file_sink_config c = text_at("{source}.jsonl");
    c.format = file_format::json;
    file_sink sink("archive", batching(), c, dir.path(), {"app", "sys"});

    auto plain = batch_of_lines(0, {"hello \"world\"", "tab\there \x01 \xc0\xaf"},
                            1'700'000'000'123'456'789, "10.0.0.7");
    // A decoded batch: the first event has every column, the second nothing but a nil host.
    auto decoded = std::make_shared<batch>(1);
    const std::string line = "<13>1 2023-11-14T22:13:20Z h1 app1 99 M1 - body";
    decoded->add_line(line);
    decoded->add_line("just a line");
    decoded->received_ns = 7;
    decoded->host = "192.0.2.1";
    auto ref = [&](std::string_view part) {
        return sluice::text_ref{static_cast<uint32_t>(line.find(part)),
                                static_cast<uint32_t>(part.size()), false};
    };
    sluice::event_meta m;
    m.ts_ns = 1'700'000'000'000'000'001;
    m.severity = 5;
    m.facility = 1;
    m.host = ref("h1");
    m.app = ref("app1");
    m.procid = ref("99");
    m.msgid = ref("M1");
    m.message = ref("body");
    m.fields = {0, static_cast<uint32_t>(std::string_view(R"({"a":[1,2],"b":"c"})").size()),
                true};
    decoded->extra() = R"({"a":[1,2],"b":"c"})";
    decoded->meta().push_back(m);
    decoded->meta().push_back(sluice::event_meta{});

    const std::vector<batch_ptr> batches = {plain, decoded};
    REQUIRE(sink.write(batches) == write_status::ok);

    simdjson::dom::parser parser;
    simdjson::dom::object o;
    const auto app_lines = split_lines(slurp(dir.path() / "app.jsonl"));
    REQUIRE(app_lines.size() == 2);
    REQUIRE(parser.parse(simdjson::padded_string(app_lines[0])).get_object().get(o) ==
            simdjson::SUCCESS);
    CHECK(std::string_view(o["received_at"]) == "2023-11-14T22:13:20.123456789Z");
    CHECK(std::string_view(o["source"]) == "app");
    CHECK(std::string_view(o["host"]) == "10.0.0.7");
    CHECK(std::string_view(o["message"]) == "hello \"world\"");
    CHECK(o.size() == 4);
    REQUIRE(parser.parse(simdjson::padded_string(app_lines[1])).get_object().get(o) ==
            simdjson::SUCCESS);
    CHECK(std::string_view(o["message"]) == "tab\there \x01 \xef\xbf\xbd\xef\xbf\xbd");

    const auto sys_lines = split_lines(slurp(dir.path() / "sys.jsonl"));
    REQUIRE(sys_lines.size() == 2);
    REQUIRE(parser.parse(simdjson::padded_string(sys_lines[0])).get_object().get(o) ==
            simdjson::SUCCESS);
    CHECK(std::string_view(o["received_at"]) == "1970-01-01T00:00:00.000000007Z");
    CHECK(std::string_view(o["source"]) == "sys");
    CHECK(std::string_view(o["host"]) == "h1");
    CHECK(std::string_view(o["message"]) == "body");
    CHECK(std::string_view(o["ts"]) == "2023-11-14T22:13:20.000000001Z");
    CHECK(int64_t(o["severity"]) == 5);
    CHECK(int64_t(o["facility"]) == 1);
    CHECK(std::string_view(o["app"]) == "app1");
    CHECK(std::string_view(o["procid"]) == "99");
    CHECK(std::string_view(o["msgid"]) == "M1");
    CHECK(int64_t(o.at_pointer("/fields/a/1")) == 2);
    CHECK(std::string_view(o["fields"]["b"]) == "c");
    REQUIRE(parser.parse(simdjson::padded_string(sys_lines[1])).get_object().get(o) ==
            simdjson::SUCCESS);
    CHECK(std::string_view(o["host"]) == "192.0.2.1");
    CHECK(std::string_view(o["message"]) == "just a line");
    CHECK(o.size() == 4);
}

TEST_CASE("file sink reopens its files on request, and follows a rename by itself",
          "[file_sink]") {
    temp_dir dir;
    file_sink sink("archive", batching(), text_at("app.log"), dir.path(), {"app"});
    const fs::path live = dir.path() / "app.log";
    const fs::path rotated = dir.path() / "app.log.1";

    REQUIRE(sink.write(std::vector<batch_ptr>{batch_of_lines(0, {"before"})}) == write_status::ok);
    fs::rename(live, rotated);
    // The path no longer names the file it holds: the next write opens a new one there,
    // SIGHUP or not, so nothing goes on into a rotated (and maybe compressed) file.
    REQUIRE(sink.write(std::vector<batch_ptr>{batch_of_lines(0, {"after"})}) == write_status::ok);
    CHECK(slurp(live) == "after\n");
    CHECK(slurp(rotated) == "before\n");

    sink.request_reopen();
    REQUIRE(sink.write(std::vector<batch_ptr>{batch_of_lines(0, {"again"})}) == write_status::ok);
    CHECK(slurp(live) == "after\nagain\n");
    CHECK(slurp(rotated) == "before\n");
}

TEST_CASE("file sink: a path it cannot open fails the write, the retry writes each line once",
          "[file_sink]") {
    temp_dir dir;
    SECTION("the only file") {
        // The parent of the output is a regular file: neither mkdir nor open can succeed, and
        // nothing but a person can change that: a permanent failure.
        { std::ofstream(dir.path() / "blocker") << "not a directory"; }
        file_sink sink("archive", batching(), text_at("blocker/sub/out.log"), dir.path(),
                       {"app"});
        const std::vector<batch_ptr> batches = {batch_of_lines(0, {"x1", "x2"})};
        CHECK(sink.write(batches) == write_status::permanent);
        CHECK(sink.write(batches) == write_status::permanent);
        CHECK(sluice::read(sink.counters().errors_total) == 2);
        CHECK(sluice::read(sink.counters().batches_total) == 0);
        CHECK(sluice::read(sink.counters().events_total) == 0);
        CHECK(slurp(dir.path() / "blocker") == "not a directory");

        fs::remove(dir.path() / "blocker");
        CHECK(sink.write(batches) == write_status::ok);
        CHECK(slurp(dir.path() / "blocker" / "sub" / "out.log") == "x1\nx2\n");
        CHECK(sluice::read(sink.counters().batches_total) == 1);
        CHECK(sluice::read(sink.counters().events_total) == 2);
    }
    SECTION("a later file of the same write") {
        // "good" opens, "bad" does not: what went to good stays, and the retry goes on from
        // "bad", so nothing is written twice.
        for (auto format : {file_format::text, file_format::json}) {
            file_sink_config c = text_at("{source}/out.log");
            c.format = format;
            fs::create_directories(dir.path() / "good");
            fs::remove_all(dir.path() / "good" / "out.log");
            { std::ofstream(dir.path() / "good" / "out.log") << "old\n"; }
            std::error_code ec;
            fs::remove_all(dir.path() / "bad", ec);
            { std::ofstream(dir.path() / "bad") << "a file"; }

            file_sink sink("archive", batching(), c, dir.path(), {"good", "bad"});
            const std::vector<batch_ptr> batches = {batch_of_lines(0, {"g1", "g2"}),
                                                    batch_of_lines(1, {"b1"}),
                                                    batch_of_lines(0, {"g3"})};
            CHECK(sink.write(batches) == write_status::permanent);
            const std::string first = slurp(dir.path() / "good" / "out.log");
            CHECK(split_lines(first).size() == 3);  // old, g1, g2
            CHECK(sink.write(batches) == write_status::permanent);
            CHECK(slurp(dir.path() / "good" / "out.log") == first);
            CHECK(sluice::read(sink.counters().errors_total) == 2);

            fs::remove(dir.path() / "bad");
            REQUIRE(sink.write(batches) == write_status::ok);
            const std::string good = slurp(dir.path() / "good" / "out.log");
            const std::string bad = slurp(dir.path() / "bad" / "out.log");
            if (format == file_format::text) {
                CHECK(good == "old\ng1\ng2\ng3\n");
                CHECK(bad == "b1\n");
            } else {
                const auto lines = split_lines(good);
                REQUIRE(lines.size() == 4);
                CHECK(lines[0] == "old");
                simdjson::dom::parser parser;
                const char* expected[] = {"g1", "g2", "g3"};
                for (size_t i = 1; i < 4; ++i) {
                    simdjson::dom::object o;
                    REQUIRE(parser.parse(simdjson::padded_string(lines[i]))
                                .get_object()
                                .get(o) == simdjson::SUCCESS);
                    CHECK(std::string_view(o["message"]) == expected[i - 1]);
                    CHECK(std::string_view(o["source"]) == "good");
                }
                CHECK(split_lines(bad).size() == 1);
            }
            CHECK(sluice::read(sink.counters().events_total) == 4);
        }
    }
}

namespace {

// Caps the size any file of this process may grow to (RLIMIT_FSIZE): a write past it fails
// with EFBIG at exactly that byte, as a full disk fails a write part way. Restored on exit.
class file_size_cap {
public:
    explicit file_size_cap(rlim_t bytes) {
        ::getrlimit(RLIMIT_FSIZE, &saved_);
        old_handler_ = std::signal(SIGXFSZ, SIG_IGN);  // EFBIG instead of being killed
        rlimit capped = saved_;
        capped.rlim_cur = bytes;
        REQUIRE(::setrlimit(RLIMIT_FSIZE, &capped) == 0);
    }
    ~file_size_cap() {
        ::setrlimit(RLIMIT_FSIZE, &saved_);
        std::signal(SIGXFSZ, old_handler_);
    }
    file_size_cap(const file_size_cap&) = delete;
    file_size_cap& operator=(const file_size_cap&) = delete;

private:
    rlimit saved_{};
    void (*old_handler_)(int) = nullptr;
};

}  // namespace

TEST_CASE("file sink: a write failing at any byte resumes there, writing nothing twice",
          "[file_sink]") {
    // Batches from two sources into {source}.log: groups of one and of several batches.
    const std::vector<batch_ptr> batches = {
        batch_of_lines(0, {"a1 first", "a2"}), batch_of_lines(0, {"a3 third"}),
        batch_of_lines(1, {"b1", "b2 second of b"}), batch_of_lines(0, {"a4"})};
    for (auto format : {file_format::text, file_format::json}) {
        file_sink_config c = text_at("{source}.log");
        c.format = format;
        std::string expected_a;
        std::string expected_b;
        {
            temp_dir clean;
            file_sink sink("archive", batching(), c, clean.path(), {"a", "b"});
            REQUIRE(sink.write(batches) == write_status::ok);
            expected_a = slurp(clean.path() / "a.log");
            expected_b = slurp(clean.path() / "b.log");
        }
        const size_t longest = std::max(expected_a.size(), expected_b.size());
        for (size_t cap = 0; cap < longest; ++cap) {
            INFO((format == file_format::text ? "text" : "json") << ", files capped at " << cap
                                                                 << " bytes");
            temp_dir dir;
            file_sink sink("archive", batching(), c, dir.path(), {"a", "b"});
            {
                file_size_cap limit(cap);
                CHECK(sink.write(batches) == write_status::retry);
                // A second attempt under the same cap gets no further and adds nothing.
                CHECK(sink.write(batches) == write_status::retry);
            }
            REQUIRE(sink.write(batches) == write_status::ok);
            CHECK(slurp(dir.path() / "a.log") == expected_a);
            CHECK(slurp(dir.path() / "b.log") == expected_b);
            // The next write starts afresh.
            REQUIRE(sink.write(std::vector<batch_ptr>{batch_of_lines(1, {"next"})}) ==
                    write_status::ok);
            CHECK(slurp(dir.path() / "b.log").size() > expected_b.size());
        }
    }
}

TEST_CASE("file sink: a removed directory or renamed file is made again at its path",
          "[file_sink]") {
    temp_dir dir;
    file_sink sink("archive", batching(), text_at("out/{source}/app.log"), dir.path(), {"web"});
    const fs::path file = dir.path() / "out" / "web" / "app.log";
    REQUIRE(sink.write(std::vector<batch_ptr>{batch_of_lines(0, {"one"})}) == write_status::ok);
    REQUIRE(slurp(file) == "one\n");
    // The whole tree goes while the sink holds the file open: writing to the open descriptor
    // would succeed and lose every line.
    fs::remove_all(dir.path() / "out");
    REQUIRE(sink.write(std::vector<batch_ptr>{batch_of_lines(0, {"two"})}) == write_status::ok);
    CHECK(slurp(file) == "two\n");
    // Renamed away without a SIGHUP: the next write goes to a new file at the path.
    fs::rename(file, dir.path() / "moved.log");
    REQUIRE(sink.write(std::vector<batch_ptr>{batch_of_lines(0, {"three"})}) == write_status::ok);
    CHECK(slurp(file) == "three\n");
    CHECK(slurp(dir.path() / "moved.log") == "two\n");
}

TEST_CASE("file sink: ending with a write half done cuts the files back to before it",
          "[file_sink]") {
    temp_dir dir;
    { std::ofstream(dir.path() / "out.log") << "already there\n"; }
    sluice::queue_config qc;
    sluice::bounded_queue q(qc, 1, {{true}});
    file_sink sink("archive", batching(), text_at("out.log"), dir.path(), {"app"});
    std::vector<std::string> lines;
    for (int i = 0; i < 100; ++i) {
        lines.push_back("line " + std::to_string(i) + " of a write that never finishes");
    }
    {
        // Room for the first line and a half of the batch, then the "disk" is full.
        file_size_cap limit(14 + 60);
        sink.start(q, 0);
        batch_ptr b = batch_of_lines(0, lines);
        REQUIRE(q.try_push(b) == sluice::push_result::ok);
        REQUIRE(sluice::test::eventually(
            [&] { return sluice::read(sink.counters().errors_total) >= 2; }));
        CHECK(fs::file_size(dir.path() / "out.log") == 14 + 60);  // a cut line
        sink.abort();  // what a shutdown timeout does
        sink.join();
    }
    // All 100 events count as not written, so none of them may be in the file, whole or cut.
    CHECK(slurp(dir.path() / "out.log") == "already there\n");
    CHECK(q.stats().sinks[0].events == 100);
}
