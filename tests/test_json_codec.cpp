// Tests for the JSON codec (message, fields and the columns from top-level keys), the RFC 3339
// parser both codecs share, and parse_codec.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <ctime>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <simdjson.h>

#include "ingest/codecs/codec.h"

using sluice::decoded_event;
using sluice::json_decoder;
using sluice::parse_rfc3339_ns;

namespace {

int64_t utc_ns(int year, int month, int day, int hour, int minute, int second,
               int64_t nanos = 0) {
    std::tm tm{};
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    return static_cast<int64_t>(timegm(&tm)) * 1'000'000'000 + nanos;
}

// A decoded line with its text columns read back, each from the line or from `extra`.
struct decoded {
    decoded_event ev;
    std::string extra;
    std::optional<std::string> message;
    std::optional<std::string> fields;
    std::optional<std::string> host;
    std::optional<std::string> app;
};

// A view must lie in the line; appended text in `extra`, past what was there before.
std::optional<std::string> column_text(const std::string& line, std::string_view view,
                                       const std::optional<decoded_event::appended_text>& appended,
                                       const std::string& extra, size_t extra_before) {
    if (appended) {
        CHECK(view.data() == nullptr);
        REQUIRE(appended->offset >= extra_before);
        REQUIRE(appended->offset + appended->length <= extra.size());
        return extra.substr(appended->offset, appended->length);
    }
    if (view.data() == nullptr) {
        return std::nullopt;
    }
    REQUIRE(view.data() >= line.data());
    REQUIRE(view.data() + view.size() <= line.data() + line.size());
    return std::string(view);
}

// Decodes `line`, which must decode, after `extra_before` already in the extra text.
decoded decode(json_decoder& d, const std::string& line, const std::string& extra_before = "") {
    decoded r;
    r.extra = extra_before;
    INFO("line: " << line);
    REQUIRE(d.decode(line, r.ev, r.extra));
    CHECK(r.extra.compare(0, extra_before.size(), extra_before) == 0);
    const size_t before = extra_before.size();
    r.message = column_text(line, r.ev.message, r.ev.message_appended, r.extra, before);
    r.host = column_text(line, r.ev.host, r.ev.host_appended, r.extra, before);
    r.app = column_text(line, r.ev.app, r.ev.app_appended, r.extra, before);
    switch (r.ev.fields) {
        case decoded_event::fields_where::none:
            break;
        case decoded_event::fields_where::line:
            r.fields = line;
            break;
        case decoded_event::fields_where::appended:
            REQUIRE(r.ev.fields_offset >= before);
            REQUIRE(r.ev.fields_offset + r.ev.fields_length <= r.extra.size());
            r.fields = r.extra.substr(r.ev.fields_offset, r.ev.fields_length);
            break;
    }
    // Only a message is decoded: the other syslog columns stay NULL.
    CHECK(r.ev.procid.data() == nullptr);
    CHECK(r.ev.msgid.data() == nullptr);
    CHECK(r.ev.facility == -1);
    return r;
}

// The members of a JSON object, in order, each value minified; fails unless `json` is one.
std::vector<std::pair<std::string, std::string>> members(const std::string& json) {
    simdjson::dom::parser parser;
    simdjson::dom::object object;
    INFO("json: " << json);
    REQUIRE(parser.parse(simdjson::padded_string(json)).get_object().get(object) ==
            simdjson::SUCCESS);
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto field : object) {
        out.emplace_back(std::string(field.key), simdjson::to_string(field.value));
    }
    return out;
}

// The time a JSON line decodes to; the line must decode.
std::optional<int64_t> ts_of(json_decoder& d, const std::string& line) {
    return decode(d, line).ev.ts_ns;
}

int severity_of(json_decoder& d, const std::string& line) { return decode(d, line).ev.severity; }

}  // namespace

// ---------------------------------------------------------------------------------------------
// json_decoder: message and fields

TEST_CASE("a JSON line's message is its msg, fields the other keys", "[json]") {
    json_decoder d;
    const std::string line = R"({"level":"info","msg":"hello","n":[1,2,{"ts":5}]})";
    const auto r = decode(d, line);
    CHECK(r.message == "hello");
    // No escapes: the message is a view into the line, nothing copied.
    CHECK_FALSE(r.ev.message_appended.has_value());
    CHECK(r.ev.message.data() == line.data() + line.find("hello"));
    // The line's own bytes less the msg member: nothing re-serialised.
    CHECK(r.fields == R"({"level":"info","n":[1,2,{"ts":5}]})");
    CHECK(r.ev.severity == 6);
    // Host is left to the caller (the peer address) without a host key.
    CHECK_FALSE(r.host.has_value());
    CHECK_FALSE(r.app.has_value());
    // A nested "ts" is not the event's time.
    CHECK_FALSE(r.ev.ts_ns.has_value());
}

TEST_CASE("JSON message keys: message before msg before log", "[json]") {
    json_decoder d;
    auto r = decode(d, R"({"log":"L","msg":"M","message":"X"})");
    CHECK(r.message == "X");
    CHECK(r.fields == R"({"log":"L","msg":"M"})");
    r = decode(d, R"({"log":"L","msg":"M"})");
    CHECK(r.message == "M");
    CHECK(r.fields == R"({"log":"L"})");
    r = decode(d, R"({"a":1,"log":"L"})");
    CHECK(r.message == "L");
    CHECK(r.fields == R"({"a":1})");
    // Of two keys of one name, the first string.
    r = decode(d, R"({"msg":"first","msg":"second"})");
    CHECK(r.message == "first");
    CHECK(r.fields == R"({"msg":"second"})");
    // Keys are matched exactly, after unescaping.
    r = decode(d, R"({"Message":"a","MSG":"b","ms\u0067":"c"})");
    CHECK(r.message == "c");
    CHECK(r.fields == R"({"Message":"a","MSG":"b"})");
}

TEST_CASE("JSON message keys that hold no string are ordinary fields", "[json]") {
    json_decoder d;
    auto r = decode(d, R"({"message":42,"msg":"m"})");
    CHECK(r.message == "m");
    CHECK(r.fields == R"({"message":42})");
    r = decode(d, R"({"msg":1,"msg":"a"})");
    CHECK(r.message == "a");
    CHECK(r.fields == R"({"msg":1})");
    r = decode(d, R"({"message":null,"msg":{"text":"x"},"log":["y"],"log":"z"})");
    CHECK(r.message == "z");
    CHECK(r.fields == R"({"message":null,"msg":{"text":"x"},"log":["y"]})");
    // An empty string is a message.
    r = decode(d, R"({"msg":"","a":1})");
    CHECK(r.message == "");
    CHECK(r.ev.message.data() != nullptr);
    CHECK(r.fields == R"({"a":1})");
}

TEST_CASE("a JSON line with no message key is the message and the fields", "[json]") {
    json_decoder d;
    for (const std::string line :
         {R"({"level":"warn","text":"t","message":7})", R"({})", R"(  {"a":{"msg":"nested"}} )",
          R"({"ts":1,"host":3,"app":""})"}) {
        const auto r = decode(d, line);
        CHECK(r.ev.message.data() == line.data());
        CHECK(r.ev.message.size() == line.size());
        CHECK(r.ev.fields == decoded_event::fields_where::line);
        CHECK(r.extra.empty());
    }
}

TEST_CASE("JSON messages are unescaped, fields keep their escapes", "[json]") {
    json_decoder d;
    const std::string line =
        R"({"a":"q\"","msg":"say \"hi\"\\\n\t\u00e9\ud83d\ude00 \/","b":"\u0041"})";
    const auto r = decode(d, line, "before");
    CHECK(r.message == "say \"hi\"\\\n\t\xc3\xa9\xf0\x9f\x98\x80 /");
    REQUIRE(r.ev.message_appended.has_value());
    CHECK(r.fields == R"({"a":"q\"","b":"\u0041"})");
    // Non-ASCII text needs no escape: it stays a view into the line.
    const std::string utf8 = "{\"msg\":\"caf\xc3\xa9\"}";
    const auto u = decode(d, utf8);
    CHECK(u.message == "caf\xc3\xa9");
    CHECK_FALSE(u.ev.message_appended.has_value());
    // A string that ends in an escaped backslash, then a quote in a nested value.
    const auto e = decode(d, R"({"x":["\\",{"k":"]}\""}],"msg":"\\"})");
    CHECK(e.message == "\\");
    CHECK(e.fields == R"({"x":["\\",{"k":"]}\""}]})");
}

TEST_CASE("JSON fields lose the message member and one comma, wherever it is", "[json]") {
    json_decoder d;
    struct sample {
        std::string line;
        std::optional<std::string> fields;
    };
    const sample samples[] = {
        {R"({"msg":"m","a":1,"b":2})", R"({"a":1,"b":2})"},
        {R"({"a":1,"msg":"m","b":2})", R"({"a":1,"b":2})"},
        {R"({"a":1,"b":2,"msg":"m"})", R"({"a":1,"b":2})"},
        {R"( { "msg" : "m" , "a" : 1 } )", R"({ "a" : 1 })"},
        {R"({ "a" : 1 , "msg" : "m" } )", R"({ "a" : 1 })"},
        {"{\"a\":true,\n\t\"msg\":\"m\"\r\n}", "{\"a\":true\r\n}"},
        {R"({"n":-1.5e3,"z":null,"f":false,"msg":"m","o":{}})",
         R"({"n":-1.5e3,"z":null,"f":false,"o":{}})"},
        // Nothing but the message: no fields at all.
        {R"({"msg":"m"})", std::nullopt},
        {R"( { "message" : "m" } )", std::nullopt},
    };
    for (const auto& s : samples) {
        INFO("line: " << s.line);
        const auto r = decode(d, s.line);
        CHECK(r.message == "m");
        CHECK(r.fields == s.fields);
        if (r.fields) {
            members(*r.fields);  // one valid object
        }
    }
}

TEST_CASE("JSON fields keep every key but the message, the column keys too", "[json]") {
    json_decoder d;
    const std::string line =
        R"({"ts":1700000000,"level":"error","host":"web-1","service":"api","msg":"boom",)"
        R"("req":{"id":"r1","path":"/a"},"tags":["x","y"]})";
    const auto r = decode(d, line);
    CHECK(r.message == "boom");
    CHECK(r.ev.ts_ns == utc_ns(2023, 11, 14, 22, 13, 20));
    CHECK(r.ev.severity == 3);
    CHECK(r.host == "web-1");
    CHECK(r.app == "api");
    REQUIRE(r.fields.has_value());
    const std::vector<std::pair<std::string, std::string>> expected = {
        {"ts", "1700000000"},
        {"level", R"("error")"},
        {"host", R"("web-1")"},
        {"service", R"("api")"},
        {"req", R"({"id":"r1","path":"/a"})"},
        {"tags", R"(["x","y"])"},
    };
    CHECK(members(*r.fields) == expected);
}

// ---------------------------------------------------------------------------------------------
// json_decoder: severity, host, app

TEST_CASE("JSON severity: syslog names in any case, and 0 to 7", "[json]") {
    json_decoder d;
    const std::pair<const char*, int> names[] = {
        {"emerg", 0},    {"emergency", 0}, {"panic", 0},   {"alert", 1},         {"crit", 2},
        {"critical", 2}, {"fatal", 2},     {"err", 3},     {"error", 3},         {"warn", 4},
        {"warning", 4},  {"notice", 5},    {"info", 6},    {"informational", 6}, {"debug", 7},
        {"trace", 7},    {"INFO", 6},      {"Warning", 4}, {"FaTaL", 2},
    };
    for (const auto& [name, severity] : names) {
        INFO("level: " << name);
        CHECK(severity_of(d, std::string(R"({"level":")") + name + "\"}") == severity);
        CHECK(severity_of(d, std::string(R"({"severity":")") + name + "\"}") == severity);
    }
    for (int n = 0; n <= 7; ++n) {
        CHECK(severity_of(d, R"({"level":)" + std::to_string(n) + "}") == n);
    }
    // Not a syslog severity: NULL.
    for (const char* value :
         {"8", "-1", "30", "3.0", "1e0", R"("3")", R"("verbose")", R"("")", R"("info ")",
          R"("informationalx")", "true", "null", "[6]", R"({"n":6})", "18446744073709551615"}) {
        INFO("level: " << value);
        CHECK(severity_of(d, std::string(R"({"level":)") + value + "}") == -1);
    }
    CHECK(severity_of(d, R"({"Level":"info","lvl":"info"})") == -1);
}

TEST_CASE("JSON severity keys: level before severity", "[json]") {
    json_decoder d;
    CHECK(severity_of(d, R"({"severity":"debug","level":"error"})") == 3);
    CHECK(severity_of(d, R"({"severity":5})") == 5);
    // An unreadable level does not hide a readable severity.
    CHECK(severity_of(d, R"({"level":"loud","severity":"alert"})") == 1);
    CHECK(severity_of(d, R"({"level":"error","level":"debug"})") == 3);
}

TEST_CASE("JSON host from host or hostname, app from app or service", "[json]") {
    json_decoder d;
    auto r = decode(d, R"({"hostname":"h2","host":"h1","service":"s","app":"a"})");
    CHECK(r.host == "h1");
    CHECK(r.app == "a");
    CHECK(r.ev.fields == decoded_event::fields_where::line);  // no message key
    r = decode(d, R"({"hostname":"h2","service":"s"})");
    CHECK(r.host == "h2");
    CHECK(r.app == "s");
    // Not a string, or empty: the next key, else NULL (the caller's peer address).
    r = decode(d, R"({"host":{"name":"x"},"hostname":"h2","app":"","service":"s"})");
    CHECK(r.host == "h2");
    CHECK(r.app == "s");
    r = decode(d, R"({"host":"","app":7,"Host":"x"})");
    CHECK_FALSE(r.host.has_value());
    CHECK_FALSE(r.app.has_value());
    // Escaped names are unescaped; plain ones are views into the line.
    const std::string line = R"({"host":"db\u002d1","app":"pay","msg":"m"})";
    r = decode(d, line);
    CHECK(r.host == "db-1");
    CHECK(r.ev.host_appended.has_value());
    CHECK(r.app == "pay");
    CHECK(r.ev.app.data() == line.data() + line.find("pay"));
    CHECK(r.fields == R"({"host":"db\u002d1","app":"pay"})");
}

// ---------------------------------------------------------------------------------------------
// json_decoder: ts

TEST_CASE("JSON numeric times: the unit follows from the magnitude", "[json]") {
    json_decoder d;
    const int64_t t = utc_ns(2023, 11, 14, 22, 13, 20);  // 1700000000 s
    CHECK(ts_of(d, R"({"ts":1700000000})") == t);
    CHECK(ts_of(d, R"({"ts":1700000000123})") == t + 123'000'000);
    CHECK(ts_of(d, R"({"ts":1700000000123456})") == t + 123'456'000);
    CHECK(ts_of(d, R"({"ts":1700000000123456789})") == t + 123'456'789);
    CHECK(ts_of(d, R"({"ts":1700000000.5})") == t + 500'000'000);
    CHECK(ts_of(d, R"({"ts":1700000000123.5})") == t + 123'500'000);
    CHECK(ts_of(d, R"({"ts":0})") == 0);
    CHECK(ts_of(d, R"({"ts":-1.5})") == -1'500'000'000);
    // A double carries about a microsecond at this size; no worse than that.
    const auto frac = ts_of(d, R"({"ts":1700000000.123456})");
    REQUIRE(frac.has_value());
    CHECK(std::llabs(*frac - (t + 123'456'000)) < 1'000);
    // Past int64 ns, or too large for any unit: no time.
    CHECK_FALSE(ts_of(d, R"({"ts":18446744073709551615})").has_value());
    CHECK_FALSE(ts_of(d, R"({"ts":1e30})").has_value());
    CHECK_FALSE(ts_of(d, R"({"ts":9.3e18})").has_value());
    CHECK(ts_of(d, R"({"ts":9.1e18})").has_value());
}

TEST_CASE("JSON string times are RFC 3339, anything else is no time", "[json]") {
    json_decoder d;
    CHECK(ts_of(d, R"({"ts":"2003-10-11T22:14:15.003Z"})") ==
          utc_ns(2003, 10, 11, 22, 14, 15, 3'000'000));
    CHECK(ts_of(d, R"({"timestamp":"2003-08-24T05:14:15.000003-07:00"})") ==
          utc_ns(2003, 8, 24, 12, 14, 15, 3'000));
    CHECK(ts_of(d, R"({"time":"2003-10-11T22:14:15Z"})") == utc_ns(2003, 10, 11, 22, 14, 15));
    CHECK_FALSE(ts_of(d, R"({"ts":"1700000000"})").has_value());
    CHECK_FALSE(ts_of(d, R"({"ts":"yesterday"})").has_value());
    CHECK_FALSE(ts_of(d, R"({"ts":null})").has_value());
    CHECK_FALSE(ts_of(d, R"({"ts":true})").has_value());
    CHECK_FALSE(ts_of(d, R"({"ts":{"s":1}})").has_value());
    CHECK_FALSE(ts_of(d, R"({"ts":[1700000000]})").has_value());
    CHECK_FALSE(ts_of(d, R"({"when":1700000000})").has_value());
    CHECK_FALSE(ts_of(d, R"({})").has_value());
}

TEST_CASE("JSON time keys: ts before timestamp before time before @timestamp", "[json]") {
    json_decoder d;
    const int64_t s = 1'000'000'000;
    CHECK(ts_of(d, R"({"@timestamp":4,"time":1,"timestamp":2,"ts":3})") == 3 * s);
    CHECK(ts_of(d, R"({"@timestamp":4,"time":1,"timestamp":2})") == 2 * s);
    CHECK(ts_of(d, R"({"@timestamp":4,"a":0,"time":1})") == 1 * s);
    CHECK(ts_of(d, R"({"@timestamp":"2024-01-02T03:04:05.5Z"})") ==
          utc_ns(2024, 1, 2, 3, 4, 5, 500'000'000));
    CHECK(ts_of(d, R"({"time":"noon","@timestamp":4})") == 4 * s);
    // An unreadable "ts" does not hide a readable "time".
    CHECK(ts_of(d, R"({"ts":"garbage","time":7})") == 7 * s);
    CHECK(ts_of(d, R"({"ts":null,"timestamp":"1970-01-01T00:00:09Z"})") == 9 * s);
}

TEST_CASE("JSON lines that are not one object are rejected", "[json]") {
    json_decoder d;
    const std::vector<std::string> bad = {
        "",
        " ",
        "hello world",
        "[1,2]",
        R"("str")",
        "42",
        "null",
        "{",
        R"({"a":1)",
        R"({"a":1} x)",
        "{} {}",
        R"({"a":1,})",
        R"({'a':1})",
        "{\"a\":\"\xff\"}",
        std::string("{\"a\":1}\0", 8),
    };
    for (const std::string& line : bad) {
        INFO("line: " << line);
        decoded_event ev;
        std::string extra = "kept";
        CHECK_FALSE(d.decode(line, ev, extra));
        CHECK(extra == "kept");
    }
    // A message key does not make a broken line decode.
    for (const std::string line : {R"({"msg":"m","a":[1,}})", R"({"msg":"m","a":tru})",
                                   R"({"msg":"m"}})", R"({"msg":"m\x"})"}) {
        INFO("line: " << line);
        decoded_event ev;
        std::string extra;
        CHECK_FALSE(d.decode(line, ev, extra));
        CHECK(extra.empty());
    }
    // Surrounding whitespace is allowed.
    decode(d, " \t{\"a\":1}  ");
    decode(d, "{}");
}

TEST_CASE("one JSON decoder serves lines of growing and shrinking size", "[json]") {
    json_decoder d;
    for (size_t n : {10, 100000, 3, 5000, 0}) {
        const std::string line = R"({"ts":12,"msg":")" + std::string(n, 'x') + R"(","pad":")" +
                                 std::string(n, 'y') + R"("})";
        const auto r = decode(d, line);
        CHECK(r.ev.ts_ns == 12'000'000'000);
        CHECK(r.message == std::string(n, 'x'));
        CHECK(r.fields == R"({"ts":12,"pad":")" + std::string(n, 'y') + R"("})");
    }
}

// ---------------------------------------------------------------------------------------------
// parse_rfc3339_ns, parse_codec

TEST_CASE("RFC 3339: fractions, zones and separators", "[json]") {
    CHECK(parse_rfc3339_ns("1970-01-01T00:00:00Z") == 0);
    CHECK(parse_rfc3339_ns("2003-10-11T22:14:15.003Z") ==
          utc_ns(2003, 10, 11, 22, 14, 15, 3'000'000));
    CHECK(parse_rfc3339_ns("2003-10-11t22:14:15.003z") ==
          utc_ns(2003, 10, 11, 22, 14, 15, 3'000'000));
    CHECK(parse_rfc3339_ns("2003-10-11 22:14:15Z") == utc_ns(2003, 10, 11, 22, 14, 15));
    CHECK(parse_rfc3339_ns("2003-10-11T22:14:15+02:00") == utc_ns(2003, 10, 11, 20, 14, 15));
    CHECK(parse_rfc3339_ns("2003-10-11T22:14:15-07:30") == utc_ns(2003, 10, 12, 5, 44, 15));
    CHECK(parse_rfc3339_ns("2003-10-11T22:14:15+00:00") == utc_ns(2003, 10, 11, 22, 14, 15));
    const int64_t base = utc_ns(2003, 10, 11, 22, 14, 15);
    CHECK(parse_rfc3339_ns("2003-10-11T22:14:15.1Z") == base + 100'000'000);
    CHECK(parse_rfc3339_ns("2003-10-11T22:14:15.12Z") == base + 120'000'000);
    CHECK(parse_rfc3339_ns("2003-10-11T22:14:15.000003Z") == base + 3'000);
    CHECK(parse_rfc3339_ns("2003-10-11T22:14:15.123456789Z") == base + 123'456'789);
    // Digits past nanoseconds are dropped, not rounded.
    CHECK(parse_rfc3339_ns("2003-10-11T22:14:15.123456789999Z") == base + 123'456'789);
    // Before 1970, and a leap second, which lands on the next minute.
    CHECK(parse_rfc3339_ns("1969-12-31T23:59:59.5Z") == -500'000'000);
    CHECK(parse_rfc3339_ns("2016-12-31T23:59:60Z") == utc_ns(2017, 1, 1, 0, 0, 0));
    CHECK(parse_rfc3339_ns("2024-02-29T00:00:00Z") == utc_ns(2024, 2, 29, 0, 0, 0));
    CHECK(parse_rfc3339_ns("2000-02-29T00:00:00Z") == utc_ns(2000, 2, 29, 0, 0, 0));
    // The ends of int64 ns: 1677-09-21 to 2262-04-11.
    CHECK(parse_rfc3339_ns("2262-04-11T23:47:16Z") == utc_ns(2262, 4, 11, 23, 47, 16));
    CHECK(parse_rfc3339_ns("1677-09-21T00:12:44Z") == utc_ns(1677, 9, 21, 0, 12, 44));
}

TEST_CASE("RFC 3339: out-of-range and malformed times are rejected", "[json]") {
    const std::vector<std::string> bad = {
        "",
        "2003-10-11",
        "2003-10-11T22:14:15",
        "2003-10-11T22:14:15.Z",
        "2003-10-11T22:14:15.003",
        "2003-10-11T22:14:15+02",
        "2003-10-11T22:14:15+2:00",
        "2003-10-11T22:14:15+0200",
        "2003-10-11T22:14:15+24:00",
        "2003-10-11T22:14:15+02:60",
        "2003-10-11T22:14:15ZZ",
        "2003-10-11T22:14:15Z ",
        " 2003-10-11T22:14:15Z",
        "2003-10-11X22:14:15Z",
        "2003/10/11T22:14:15Z",
        "03-10-11T22:14:15Z",
        "2003-1-11T22:14:15Z",
        "2003-00-11T22:14:15Z",
        "2003-13-11T22:14:15Z",
        "2003-10-00T22:14:15Z",
        "2003-10-32T22:14:15Z",
        "2003-02-29T22:14:15Z",
        "1900-02-29T22:14:15Z",
        "2003-04-31T22:14:15Z",
        "2003-10-11T24:00:00Z",
        "2003-10-11T22:60:15Z",
        "2003-10-11T22:14:61Z",
        "2003-10-11T2a:14:15Z",
        "2262-04-11T23:47:17Z",
        "1677-09-21T00:12:43Z",
        "9999-12-31T23:59:59Z",
        "0000-01-01T00:00:00Z",
    };
    for (const std::string& s : bad) {
        INFO("time: " << s);
        CHECK_FALSE(parse_rfc3339_ns(s).has_value());
    }
}

TEST_CASE("parse_codec knows text, json and syslog", "[json]") {
    CHECK(sluice::parse_codec("text") == sluice::codec_kind::text);
    CHECK(sluice::parse_codec("json") == sluice::codec_kind::json);
    CHECK(sluice::parse_codec("syslog") == sluice::codec_kind::syslog);
    CHECK_FALSE(sluice::parse_codec("JSON").has_value());
    CHECK_FALSE(sluice::parse_codec("").has_value());
    CHECK_FALSE(sluice::parse_codec("rfc5424").has_value());
}
