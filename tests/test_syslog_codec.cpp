// Tests for the syslog codec: the RFC 5424 and RFC 3164 examples, structured data as JSON,
// nil values, the RFC 3164 year rule, malformed input, and every line of a real Linux syslog.
#include <catch2/catch.hpp>

#include <ctime>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <simdjson.h>

#include "ingest/codecs/codec.h"

using sluice::decode_syslog;
using sluice::decoded_event;

namespace {

// Expected times are computed with the C library, independently of the codec's own
// calendar arithmetic.
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

const int64_t mid_2024 = utc_ns(2024, 6, 1, 0, 0, 0);

// A decoded line with its columns copied out; NULL views become nullopt.
struct decoded {
    bool ok = false;
    decoded_event ev;
    std::string fields_out;
    std::optional<std::string> host, app, procid, msgid, message, fields;
};

std::optional<std::string> column(std::string_view v) {
    if (v.data() == nullptr) {
        return std::nullopt;
    }
    return std::string(v);
}

decoded decode(std::string_view line, int64_t now = mid_2024) {
    decoded d;
    d.ok = decode_syslog(line, d.ev, d.fields_out, now);
    if (!d.ok) {
        return d;
    }
    for (std::string_view v : {d.ev.host, d.ev.app, d.ev.procid, d.ev.msgid, d.ev.message}) {
        // Every view the codec returns lies inside the line.
        if (v.data() != nullptr) {
            REQUIRE(v.data() >= line.data());
            REQUIRE(v.data() + v.size() <= line.data() + line.size());
        }
    }
    d.host = column(d.ev.host);
    d.app = column(d.ev.app);
    d.procid = column(d.ev.procid);
    d.msgid = column(d.ev.msgid);
    d.message = column(d.ev.message);
    switch (d.ev.fields) {
        case decoded_event::fields_where::none:
            break;
        case decoded_event::fields_where::line:
            d.fields = std::string(line);
            break;
        case decoded_event::fields_where::appended:
            REQUIRE(d.ev.fields_offset + d.ev.fields_length == d.fields_out.size());
            d.fields = d.fields_out.substr(d.ev.fields_offset, d.ev.fields_length);
            break;
    }
    return d;
}

const std::string bom = "\xEF\xBB\xBF";

}  // namespace

// ---------------------------------------------------------------------------------------------
// RFC 5424

TEST_CASE("RFC 5424 example 1: no structured data, BOM stripped", "[syslog]") {
    const std::string line = "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - " +
                             bom + "'su root' failed for lonvick on /dev/pts/8";
    const auto d = decode(line);
    REQUIRE(d.ok);
    CHECK(d.ev.facility == 4);
    CHECK(d.ev.severity == 2);
    CHECK(d.ev.ts_ns == utc_ns(2003, 10, 11, 22, 14, 15, 3'000'000));
    CHECK(d.host == "mymachine.example.com");
    CHECK(d.app == "su");
    CHECK(d.procid == std::nullopt);
    CHECK(d.msgid == "ID47");
    CHECK(d.ev.fields == decoded_event::fields_where::none);
    CHECK(d.fields_out.empty());
    CHECK(d.message == "'su root' failed for lonvick on /dev/pts/8");
}

TEST_CASE("RFC 5424 example 2: microseconds and a zone offset", "[syslog]") {
    const auto d = decode(
        "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make "
        "the do-nuts.");
    REQUIRE(d.ok);
    CHECK(d.ev.facility == 20);
    CHECK(d.ev.severity == 5);
    CHECK(d.ev.ts_ns == utc_ns(2003, 8, 24, 12, 14, 15, 3'000));
    CHECK(d.host == "192.0.2.1");
    CHECK(d.app == "myproc");
    CHECK(d.procid == "8710");
    CHECK(d.msgid == std::nullopt);
    CHECK(d.ev.fields == decoded_event::fields_where::none);
    CHECK(d.message == "%% It's time to make the do-nuts.");
}

TEST_CASE("RFC 5424 example 3: structured data becomes JSON in fields", "[syslog]") {
    const std::string line =
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
        "[exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] " +
        bom + "An application event log entry...";
    const auto d = decode(line);
    REQUIRE(d.ok);
    CHECK(d.ev.ts_ns == utc_ns(2003, 10, 11, 22, 14, 15, 3'000'000));
    CHECK(d.app == "evntslog");
    CHECK(d.procid == std::nullopt);
    CHECK(d.msgid == "ID47");
    CHECK(d.ev.fields == decoded_event::fields_where::appended);
    CHECK(d.fields ==
          R"({"exampleSDID@32473":{"iut":"3","eventSource":"Application","eventID":"1011"}})");
    CHECK(d.message == "An application event log entry...");
}

TEST_CASE("RFC 5424 example 4: two SD elements and no MSG", "[syslog]") {
    const std::string line =
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
        "[exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"]"
        "[examplePriority@32473 class=\"high\"]";
    const auto d = decode(line);
    REQUIRE(d.ok);
    CHECK(d.fields ==
          R"({"exampleSDID@32473":{"iut":"3","eventSource":"Application","eventID":"1011"},)"
          R"("examplePriority@32473":{"class":"high"}})");
    // No MSG: an empty string, not NULL.
    REQUIRE(d.message.has_value());
    CHECK(d.message->empty());
}

TEST_CASE("RFC 5424 SD values are unescaped, then escaped as JSON", "[syslog]") {
    // Raw values: a\"b\\c\]d\e (an unknown escape keeps its backslash), a TAB, a bare ']'.
    const std::string line = std::string("<14>1 - h a p m [x@1 q=\"a\\\"b\\\\c\\]d\\e\" t=\"1") +
                             '\t' + "2\" b=\"x]y\" e=\"\"][y@1] msg";
    const auto d = decode(line);
    REQUIRE(d.ok);
    CHECK(d.fields ==
          R"({"x@1":{"q":"a\"b\\c]d\\e","t":"1\t2","b":"x]y","e":""},"y@1":{}})");
    CHECK(d.message == "msg");

    // The JSON reads back to the unescaped values.
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    REQUIRE(parser.parse(*d.fields).get(root) == simdjson::SUCCESS);
    CHECK(std::string_view(root["x@1"]["q"]) == "a\"b\\c]d\\e");
    CHECK(std::string_view(root["x@1"]["t"]) == "1\t2");
}

TEST_CASE("RFC 5424 SD appends after what fields_out already holds", "[syslog]") {
    decoded_event ev;
    std::string fields_out = "earlier";
    REQUIRE(decode_syslog("<14>1 - h a p m [a k=\"v\"]", ev, fields_out, mid_2024));
    CHECK(ev.fields_offset == 7);
    CHECK(fields_out.substr(ev.fields_offset, ev.fields_length) == R"({"a":{"k":"v"}})");
    // A line rejected after its SD was written leaves nothing behind.
    CHECK_FALSE(decode_syslog("<14>1 - h a p m [a k=\"v\"]x", ev, fields_out, mid_2024));
    CHECK(fields_out == R"(earlier{"a":{"k":"v"}})");
}

TEST_CASE("RFC 5424 nil values are NULL, PRI bounds", "[syslog]") {
    auto d = decode("<0>1 - - - - - -");
    REQUIRE(d.ok);
    CHECK(d.ev.facility == 0);
    CHECK(d.ev.severity == 0);
    CHECK_FALSE(d.ev.ts_ns.has_value());
    CHECK(d.host == std::nullopt);
    CHECK(d.app == std::nullopt);
    CHECK(d.procid == std::nullopt);
    CHECK(d.msgid == std::nullopt);
    CHECK(d.ev.fields == decoded_event::fields_where::none);
    CHECK(d.message == "");

    d = decode("<191>1 - - - - - - ");
    REQUIRE(d.ok);
    CHECK(d.ev.facility == 23);
    CHECK(d.ev.severity == 7);
    CHECK(d.message == "");
}

TEST_CASE("RFC 5424 MSG loses one trailing LF only", "[syslog]") {
    CHECK(decode("<14>1 - h a p m - hello\n\n").message == "hello\n");
    CHECK(decode("<14>1 - h a p m - hello\n").message == "hello");
    CHECK(decode("<14>1 - h a p m -\n").message == "");
    CHECK(decode("<14>1 - h a p m - " + bom).message == "");
    CHECK(decode("<14>1 - h a p m -  two spaces").message == " two spaces");
}

TEST_CASE("RFC 5424 timestamps: fractions, offsets, no fraction", "[syslog]") {
    CHECK(decode("<14>1 2003-10-11T22:14:15Z h a p m -").ev.ts_ns ==
          utc_ns(2003, 10, 11, 22, 14, 15));
    CHECK(decode("<14>1 2003-10-11T22:14:15.123456789+02:30 h a p m -").ev.ts_ns ==
          utc_ns(2003, 10, 11, 19, 44, 15, 123'456'789));
    CHECK(decode("<14>1 2003-10-11T22:14:15.5-00:00 h a p m -").ev.ts_ns ==
          utc_ns(2003, 10, 11, 22, 14, 15, 500'000'000));
}

TEST_CASE("malformed syslog lines are rejected without harm", "[syslog]") {
    const std::vector<std::string> bad = {
        "",
        "<",
        "<>",
        "<34",
        "<34>",
        "34>1 - h a p m -",
        "<192>1 - h a p m -",
        "<1000>1 - h a p m -",
        "<-1>1 - h a p m -",
        "<3a>1 - h a p m -",
        "<34>2 - h a p m -",
        "<34>10 - h a p m -",
        "<34>1",
        "<34>1 ",
        "<34>1 2003-10-11T22:14:15.003Z",
        "<34>1 2003-10-11T22:14:15.003Z host app",
        "<34>1 2003-10-11T22:14:15.003Z host app proc msgid",
        "<34>1 2003-10-11T22:14:15.003Z host app proc msgid ",
        "<34>1 2003-13-11T22:14:15Z h a p m -",
        "<34>1 2003-10-11T25:14:15Z h a p m -",
        "<34>1 2003-10-11T22:14:15 h a p m -",
        "<34>1 2003-10-11 h a p m -",
        "<34>1 yesterday h a p m -",
        "<34>1 - h a p m [id",
        "<34>1 - h a p m [id p=\"v]",
        "<34>1 - h a p m [id p=\"v\"",
        "<34>1 - h a p m [id p=\"v\\\"]",
        "<34>1 - h a p m [id p=v]",
        "<34>1 - h a p m [id p]",
        "<34>1 - h a p m [ ]",
        "<34>1 - h a p m []",
        "<34>1 - h a p m [id  p=\"v\"]",
        "<34>1 - h a p m [id p=\"v\"]x",
        "<34>1 - h a p m [id p=\"\xff\"]",
        "<34>1 - h a p m x",
        "<34>1 - h a p m -x",
        "<34>1 - h\x01 a p m -",
        "<34>Oct 11 22:14:15",
        "<34>Oct 11 22:14:15 ",
        "<34>Oct 32 22:14:15 host x",
        "<34>Feb 30 22:14:15 host x",
        "<34>Oct 11 24:14:15 host x",
        "<34>Foo 11 22:14:15 host x",
        "<34>oct 11 22:14:15 host x",
        "<34>Oct 11 22-14-15 host x",
        "<34>2003-10-11T22:14:15 host x",
        "hello world",
        "Oct 11",
        std::string("\0\xff<>\x01\x02", 6),
        std::string(1, '\0'),
        "\xEF\xBB\xBF<34>1 - h a p m -",
    };
    for (const std::string& line : bad) {
        INFO("line: " << line);
        decoded_event ev;
        std::string fields_out;
        CHECK_FALSE(decode_syslog(line, ev, fields_out, mid_2024));
        CHECK(fields_out.empty());
    }
}

// ---------------------------------------------------------------------------------------------
// RFC 3164

TEST_CASE("RFC 3164 example: TAG without PID", "[syslog]") {
    const auto d =
        decode("<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8");
    REQUIRE(d.ok);
    CHECK(d.ev.facility == 4);
    CHECK(d.ev.severity == 2);
    // October is in the future on 1 June 2024: the year before.
    CHECK(d.ev.ts_ns == utc_ns(2023, 10, 11, 22, 14, 15));
    CHECK(d.host == "mymachine");
    CHECK(d.app == "su");
    CHECK(d.procid == std::nullopt);
    CHECK(d.msgid == std::nullopt);
    CHECK(d.ev.fields == decoded_event::fields_where::none);
    CHECK(d.message == "'su root' failed for lonvick on /dev/pts/8");
}

TEST_CASE("RFC 3164 example: space-padded day and a PID", "[syslog]") {
    const auto d = decode("<13>Feb  5 17:32:18 10.0.0.99 myapp[1234]: Use the BFG!");
    REQUIRE(d.ok);
    CHECK(d.ev.facility == 1);
    CHECK(d.ev.severity == 5);
    CHECK(d.ev.ts_ns == utc_ns(2024, 2, 5, 17, 32, 18));
    CHECK(d.host == "10.0.0.99");
    CHECK(d.app == "myapp");
    CHECK(d.procid == "1234");
    CHECK(d.message == "Use the BFG!");
    // A zero-padded day reads the same.
    CHECK(decode("<13>Feb 05 17:32:18 10.0.0.99 myapp[1234]: Use the BFG!").ev.ts_ns ==
          d.ev.ts_ns);
}

TEST_CASE("RFC 3164 year: this year unless more than a day ahead", "[syslog]") {
    const int64_t new_year = utc_ns(2025, 1, 1, 0, 0, 0);
    CHECK(decode("<13>Dec 31 23:59:59 h t: m", new_year).ev.ts_ns ==
          utc_ns(2024, 12, 31, 23, 59, 59));
    CHECK(decode("<13>Jan  1 00:00:00 h t: m", new_year).ev.ts_ns == new_year);
    // Exactly a day ahead is still this year (clock skew, zones); a second more is not.
    CHECK(decode("<13>Jan  2 00:00:00 h t: m", new_year).ev.ts_ns == utc_ns(2025, 1, 2, 0, 0, 0));
    CHECK(decode("<13>Jan  2 00:00:01 h t: m", new_year).ev.ts_ns == utc_ns(2024, 1, 2, 0, 0, 1));
    // 29 February exists only in the year before.
    CHECK(decode("<13>Feb 29 12:00:00 h t: m", utc_ns(2025, 3, 1, 0, 0, 0)).ev.ts_ns ==
          utc_ns(2024, 2, 29, 12, 0, 0));
    CHECK(decode("<13>Feb 29 12:00:00 h t: m", utc_ns(2024, 3, 1, 0, 0, 0)).ev.ts_ns ==
          utc_ns(2024, 2, 29, 12, 0, 0));
    // Neither 2024 (ahead) nor 2023 has one: no valid time.
    CHECK_FALSE(decode("<13>Feb 29 12:00:00 h t: m", utc_ns(2024, 1, 1, 0, 0, 0)).ok);
}

TEST_CASE("RFC 3164 lines from files: no PRI, odd tags, no TAG", "[syslog]") {
    auto d = decode(
        "Jun 15 02:04:59 combo sshd(pam_unix)[20897]: authentication failure; logname= uid=0");
    REQUIRE(d.ok);
    CHECK(d.ev.severity == -1);
    CHECK(d.ev.facility == -1);
    CHECK(d.ev.ts_ns == utc_ns(2023, 6, 15, 2, 4, 59));
    CHECK(d.host == "combo");
    CHECK(d.app == "sshd(pam_unix)");
    CHECK(d.procid == "20897");
    CHECK(d.message == "authentication failure; logname= uid=0");

    // No "TAG:" at all: app NULL, the message is everything after the host.
    d = decode("Jun 19 04:09:11 combo syslogd 1.4.1: restart.");
    REQUIRE(d.ok);
    CHECK(d.host == "combo");
    CHECK(d.app == std::nullopt);
    CHECK(d.procid == std::nullopt);
    CHECK(d.message == "syslogd 1.4.1: restart.");

    d = decode("Jul  7 08:06:15 combo  -- root[2421]: ROOT LOGIN ON tty2");
    REQUIRE(d.ok);
    CHECK(d.host == "combo");
    CHECK(d.app == std::nullopt);
    CHECK(d.message == "-- root[2421]: ROOT LOGIN ON tty2");

    d = decode("Jun 14 15:16:01 combo kernel:no space");
    REQUIRE(d.ok);
    CHECK(d.app == "kernel");
    CHECK(d.message == "no space");

    // A host alone: an empty, non-NULL message.
    d = decode("<13>Feb  5 17:32:18 host");
    REQUIRE(d.ok);
    CHECK(d.host == "host");
    CHECK(d.message == "");
}

TEST_CASE("RFC 3164 without HOSTNAME, as local senders write it", "[syslog]") {
    auto d = decode("<13>Feb  5 17:32:18 myapp[1234]: hello");
    REQUIRE(d.ok);
    CHECK(d.host == std::nullopt);
    CHECK(d.app == "myapp");
    CHECK(d.procid == "1234");
    CHECK(d.message == "hello");

    d = decode("<13>Feb  5 17:32:18 su: hello");
    REQUIRE(d.ok);
    CHECK(d.host == std::nullopt);
    CHECK(d.app == "su");
    CHECK(d.message == "hello");
}

TEST_CASE("RFC 3164 with an RFC 3339 timestamp (rsyslog high precision)", "[syslog]") {
    auto d = decode("2024-01-02T03:04:05.123456+01:00 web1 nginx[77]: GET /");
    REQUIRE(d.ok);
    CHECK(d.ev.severity == -1);
    CHECK(d.ev.ts_ns == utc_ns(2024, 1, 2, 2, 4, 5, 123'456'000));
    CHECK(d.host == "web1");
    CHECK(d.app == "nginx");
    CHECK(d.procid == "77");
    CHECK(d.message == "GET /");

    d = decode("<30>2024-01-02T03:04:05Z web1 cron: job done");
    REQUIRE(d.ok);
    CHECK(d.ev.facility == 3);
    CHECK(d.ev.severity == 6);
    CHECK(d.app == "cron");
}

TEST_CASE("every line of a real Linux syslog decodes as RFC 3164", "[syslog]") {
    std::ifstream in(SLUICE_SOURCE_DIR "/tests/data/real_logs/Linux_2k.log", std::ios::binary);
    REQUIRE(in);
    size_t lines = 0;
    size_t with_app = 0;
    std::string line;
    std::string fields_out;
    while (std::getline(in, line)) {
        // The framer strips the CR of CRLF; do the same.
        if (!line.empty() && line.back() == '\r') {
            line.pop_back();
        }
        INFO("line " << lines + 1 << ": " << line);
        decoded_event ev;
        REQUIRE(decode_syslog(line, ev, fields_out, mid_2024));
        CHECK(ev.ts_ns.has_value());
        CHECK(ev.host == "combo");
        CHECK(ev.severity == -1);
        CHECK(ev.message.data() != nullptr);
        with_app += ev.app.data() != nullptr ? 1 : 0;
        ++lines;
    }
    CHECK(lines == 2000);
    CHECK(fields_out.empty());
    // Only the "syslogd 1.4.1: restart." lines and one "--" line lack a TAG.
    CHECK(with_app > 1980);
}
