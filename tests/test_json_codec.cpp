// Tests for the JSON codec (one object per line, time from "ts"/"timestamp"/"time"), the
// RFC 3339 parser both codecs share, and parse_codec.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

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

// The time a JSON line decodes to; the line must decode.
std::optional<int64_t> ts_of(json_decoder& d, const std::string& line) {
    decoded_event ev;
    REQUIRE(d.decode(line, ev));
    return ev.ts_ns;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// json_decoder

TEST_CASE("a JSON object decodes: message and fields are the line", "[json]") {
    json_decoder d;
    const std::string line = R"({"level":"info","msg":"hello","n":[1,2,{"ts":5}]})";
    decoded_event ev;
    REQUIRE(d.decode(line, ev));
    CHECK(ev.message.data() == line.data());
    CHECK(ev.message.size() == line.size());
    CHECK(ev.fields == decoded_event::fields_where::line);
    // Host is left to the caller (the peer address); the syslog columns stay NULL.
    CHECK(ev.host.data() == nullptr);
    CHECK(ev.app.data() == nullptr);
    CHECK(ev.procid.data() == nullptr);
    CHECK(ev.msgid.data() == nullptr);
    CHECK(ev.severity == -1);
    CHECK(ev.facility == -1);
    // A nested "ts" is not the event's time.
    CHECK_FALSE(ev.ts_ns.has_value());
}

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

TEST_CASE("JSON time keys: ts before timestamp before time", "[json]") {
    json_decoder d;
    const int64_t s = 1'000'000'000;
    CHECK(ts_of(d, R"({"time":1,"timestamp":2,"ts":3})") == 3 * s);
    CHECK(ts_of(d, R"({"time":1,"timestamp":2})") == 2 * s);
    CHECK(ts_of(d, R"({"a":0,"time":1})") == 1 * s);
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
        CHECK_FALSE(d.decode(line, ev));
    }
    // Surrounding whitespace is allowed.
    decoded_event ev;
    CHECK(d.decode(" \t{\"a\":1}  ", ev));
    CHECK(d.decode("{}", ev));
}

TEST_CASE("one JSON decoder serves lines of growing and shrinking size", "[json]") {
    json_decoder d;
    for (size_t n : {10, 100000, 3, 5000, 0}) {
        const std::string line = R"({"ts":12,"pad":")" + std::string(n, 'x') + R"("})";
        decoded_event ev;
        REQUIRE(d.decode(line, ev));
        CHECK(ev.ts_ns == 12'000'000'000);
        CHECK(ev.message == line);
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
