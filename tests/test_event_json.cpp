// Tests for the JSON writing helpers (escaped strings, RFC 3339 times) and the event JSON that
// the file and ZeroMQ sinks write: every output parses with simdjson and reads back the input.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>
#include <simdjson.h>

#include "common/json_writer.h"
#include "ingest/codecs/batch_decoder.h"
#include "queue/event.h"
#include "sinks/event_json.h"

using sluice::append_json_string;
using sluice::append_rfc3339_ns;

namespace {

std::string json_quoted(std::string_view s) {
    std::string out;
    append_json_string(out, s);
    return out;
}

std::string rfc3339(int64_t ns) {
    std::string out;
    append_rfc3339_ns(out, ns);
    return out;
}

// Parses `json` as one JSON string value; what simdjson reads, or a failure.
std::string parse_string(const std::string& json) {
    simdjson::dom::parser parser;
    std::string_view value;
    const auto err = parser.parse(simdjson::padded_string(json)).get_string().get(value);
    INFO("json: " << json);
    REQUIRE(err == simdjson::SUCCESS);
    return std::string(value);
}

sluice::text_ref in_buffer(const sluice::batch& b, std::string_view whole, std::string_view part) {
    (void)b;
    const auto at = whole.find(part);
    REQUIRE(at != std::string_view::npos);
    return {static_cast<uint32_t>(at), static_cast<uint32_t>(part.size()), false};
}

sluice::text_ref in_extra(sluice::batch& b, std::string_view text) {
    sluice::text_ref r{static_cast<uint32_t>(b.extra().size()), static_cast<uint32_t>(text.size()),
                       true};
    b.extra() += text;
    return r;
}

}  // namespace

TEST_CASE("append_json_string escapes quotes, backslashes and control characters",
          "[json_writer]") {
    CHECK(json_quoted("") == R"("")");
    CHECK(json_quoted("plain text") == R"("plain text")");
    CHECK(json_quoted(R"(a"b)") == R"("a\"b")");
    CHECK(json_quoted(R"(a\b)") == R"("a\\b")");
    CHECK(json_quoted("a\nb\rc\td") == R"("a\nb\rc\td")");
    CHECK(json_quoted(std::string_view("\0", 1)) == R"("\u0000")");
    CHECK(json_quoted("\x01\x08\x0c\x1b\x1f") == R"("\u0001\u0008\u000c\u001b\u001f")");
    CHECK(json_quoted("\x7f") == "\"\x7f\"");  // DEL needs no escape in JSON
    CHECK(json_quoted("end\\") == R"("end\\")");

    std::string all;
    for (int c = 0; c < 0x80; ++c) {
        all.push_back(static_cast<char>(c));
    }
    CHECK(parse_string(json_quoted(all)) == all);
}

TEST_CASE("append_json_string passes valid UTF-8 through unchanged", "[json_writer]") {
    const std::string samples[] = {
        "\xc2\xa9",                      // © (2 bytes, lowest lead C2)
        "\xdf\xbf",                      // U+07FF
        "\xe2\x82\xac",                  // € (3 bytes)
        "\xe0\xa0\x80",                  // U+0800, lowest 3-byte
        "\xed\x9f\xbf",                  // U+D7FF, just below the surrogates
        "\xee\x80\x80",                  // U+E000, just above them
        "\xef\xbf\xbf",                  // U+FFFF
        "\xf0\x9f\x98\x80",              // 😀 (4 bytes)
        "\xf0\x90\x80\x80",              // U+10000
        "\xf4\x8f\xbf\xbf",              // U+10FFFF, the last code point
        "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\x89 \"q\"",
    };
    for (const auto& s : samples) {
        INFO("sample: " << s);
        const std::string out = json_quoted(s);
        if (s.find('"') == std::string::npos) {
            CHECK(out == "\"" + s + "\"");
        }
        CHECK(parse_string(out) == s);
    }
}

TEST_CASE("append_json_string replaces each byte of an invalid sequence by U+FFFD",
          "[json_writer]") {
    struct sample {
        std::string in;
        std::string out;  // the JSON text inside the quotes
    };
    const sample samples[] = {
        {"a\x80z", R"(a\ufffdz)"},                        // lone continuation byte
        {"\xbf", R"(\ufffd)"},                            // another lone continuation
        {"\xc0\xaf", R"(\ufffd\ufffd)"},                  // overlong '/'
        {"\xc1\xbf", R"(\ufffd\ufffd)"},                  // overlong, C1 lead
        {"\xe0\x80\xaf", R"(\ufffd\ufffd\ufffd)"},        // overlong 3-byte
        {"\xf0\x80\x80\xaf", R"(\ufffd\ufffd\ufffd\ufffd)"},  // overlong 4-byte
        {"\xed\xa0\x80", R"(\ufffd\ufffd\ufffd)"},        // surrogate U+D800
        {"\xed\xbf\xbf", R"(\ufffd\ufffd\ufffd)"},        // surrogate U+DFFF
        {"\xf4\x90\x80\x80", R"(\ufffd\ufffd\ufffd\ufffd)"},  // past U+10FFFF
        {"\xf5", R"(\ufffd)"},                            // never a lead byte
        {"\xff\xfe", R"(\ufffd\ufffd)"},
        {"x\xe2\x82", R"(x\ufffd\ufffd)"},                // 3-byte sequence cut at the end
        {"\xe2\x82x", R"(\ufffd\ufffdx)"},                // cut short by an ASCII byte
        {"\xf0\x9f\x98", R"(\ufffd\ufffd\ufffd)"},        // 4-byte cut at the end
        {"\xc3", R"(\ufffd)"},                            // 2-byte cut at the end
        {"\xc3\xa9\xc3", "\xc3\xa9\\ufffd"},              // valid, then cut
        {"\"\x80\\", R"(\"\ufffd\\)"},                    // mixed with escapes
    };
    for (const auto& s : samples) {
        INFO("input bytes: " << s.in.size());
        const std::string out = json_quoted(s.in);
        CHECK(out == "\"" + s.out + "\"");
        const std::string back = parse_string(out);
        CHECK(back.find("\xef\xbf\xbd") != std::string::npos);  // U+FFFD as UTF-8
    }
}

TEST_CASE("append_json_string output always parses, whatever the bytes", "[json_writer]") {
    // Every byte value in every position of short strings, with a fixed pseudo-random fill.
    uint32_t state = 12345;
    auto next = [&] {
        state = state * 1103515245u + 12345u;
        return static_cast<char>((state >> 16) & 0xff);
    };
    simdjson::dom::parser parser;
    for (int round = 0; round < 2000; ++round) {
        std::string s;
        const int n = round % 13;
        for (int i = 0; i < n; ++i) {
            s.push_back(next());
        }
        if (round < 256) {
            s.push_back(static_cast<char>(round));
        }
        std::string out;
        append_json_string(out, s);
        std::string_view value;
        const auto err = parser.parse(simdjson::padded_string(out)).get_string().get(value);
        INFO("round " << round);
        REQUIRE(err == simdjson::SUCCESS);
    }
}

TEST_CASE("append_rfc3339_ns formats UTC with nanoseconds", "[json_writer]") {
    CHECK(rfc3339(0) == "1970-01-01T00:00:00.000000000Z");
    CHECK(rfc3339(1) == "1970-01-01T00:00:00.000000001Z");
    CHECK(rfc3339(1'700'000'000'123'456'789) == "2023-11-14T22:13:20.123456789Z");
    CHECK(rfc3339(951'782'400'000'000'000) == "2000-02-29T00:00:00.000000000Z");
    CHECK(rfc3339(-1) == "1969-12-31T23:59:59.999999999Z");
    CHECK(rfc3339(-1'000'000'000) == "1969-12-31T23:59:59.000000000Z");
    CHECK(rfc3339(-1'500'000'000) == "1969-12-31T23:59:58.500000000Z");
    CHECK(rfc3339(-86'400'000'000'001) == "1969-12-30T23:59:59.999999999Z");
    CHECK(rfc3339(INT64_MAX) == "2262-04-11T23:47:16.854775807Z");
    // The JSON codec takes {"ts": -9223372036854775807} as this many ns: no overflow.
    CHECK(rfc3339(INT64_MIN + 1) == "1677-09-21T00:12:43.145224193Z");

    std::string out = "prefix ";
    append_rfc3339_ns(out, 0);
    CHECK(out == "prefix 1970-01-01T00:00:00.000000000Z");
}

TEST_CASE("append_event_json writes the line and the decoded columns as one object",
          "[json_writer]") {
    simdjson::dom::parser parser;
    SECTION("plain text") {
        sluice::batch b(0);
        b.add_line("hello \"world\"\t\x80");
        b.add_line("second");
        b.received_ns = 1'700'000'000'123'456'789;
        b.host = "10.1.2.3";
        std::string out;
        sluice::append_event_json(out, b, 0, "app");
        simdjson::dom::object o;
        REQUIRE(parser.parse(simdjson::padded_string(out)).get_object().get(o) ==
                simdjson::SUCCESS);
        CHECK(std::string_view(o["received_at"]) == "2023-11-14T22:13:20.123456789Z");
        CHECK(std::string_view(o["source"]) == "app");
        CHECK(std::string_view(o["host"]) == "10.1.2.3");
        CHECK(std::string_view(o["message"]) == "hello \"world\"\t\xef\xbf\xbd");
        CHECK(o.size() == 4);

        // A tailed file's events carry its path.
        out.clear();
        b.file = "/var/log/app/a.log";
        sluice::append_event_json(out, b, 0, "app");
        REQUIRE(parser.parse(simdjson::padded_string(out)).get_object().get(o) ==
                simdjson::SUCCESS);
        CHECK(std::string_view(o["file"]) == "/var/log/app/a.log");
        CHECK(o.size() == 5);
        b.file.clear();

        out.clear();
        b.host.clear();
        sluice::append_event_json(out, b, 1, "app");
        REQUIRE(parser.parse(simdjson::padded_string(out)).get_object().get(o) ==
                simdjson::SUCCESS);
        CHECK(o["host"].is_null());
        CHECK(std::string_view(o["message"]) == "second");
    }
    SECTION("decoded") {
        sluice::batch b(0);
        const std::string line = "<165>1 2023-11-14T22:13:20Z myhost myapp 42 ID7 - the msg";
        b.add_line(line);
        b.add_line("bare");
        b.received_ns = 5;
        b.host = "peer";
        sluice::event_meta m;
        m.ts_ns = 1'700'000'000'000'000'000;
        m.severity = 5;
        m.facility = 20;
        m.host = in_buffer(b, line, "myhost");
        m.app = in_buffer(b, line, "myapp");
        m.procid = in_buffer(b, line, "42");
        m.msgid = in_buffer(b, line, "ID7");
        m.message = in_buffer(b, line, "the msg");
        m.fields = in_extra(b, R"({"sd@1":{"k":"v"}})");
        m.topic = in_extra(b, "topic-a");
        b.meta().push_back(m);
        b.meta().push_back(sluice::event_meta{});  // nothing decoded: nil host, whole line

        std::string out;
        sluice::append_event_json(out, b, 0, "sys");
        simdjson::dom::object o;
        REQUIRE(parser.parse(simdjson::padded_string(out)).get_object().get(o) ==
                simdjson::SUCCESS);
        CHECK(std::string_view(o["received_at"]) == "1970-01-01T00:00:00.000000005Z");
        CHECK(std::string_view(o["source"]) == "sys");
        CHECK(std::string_view(o["host"]) == "myhost");
        CHECK(std::string_view(o["message"]) == "the msg");
        CHECK(std::string_view(o["ts"]) == "2023-11-14T22:13:20.000000000Z");
        CHECK(int64_t(o["severity"]) == 5);
        CHECK(int64_t(o["facility"]) == 20);
        CHECK(std::string_view(o["app"]) == "myapp");
        CHECK(std::string_view(o["procid"]) == "42");
        CHECK(std::string_view(o["msgid"]) == "ID7");
        CHECK(std::string_view(o["topic"]) == "topic-a");
        CHECK(std::string_view(o["fields"]["sd@1"]["k"]) == "v");

        out.clear();
        sluice::append_event_json(out, b, 1, "sys");
        REQUIRE(parser.parse(simdjson::padded_string(out)).get_object().get(o) ==
                simdjson::SUCCESS);
        CHECK(std::string_view(o["host"]) == "peer");  // nil HOSTNAME: the peer
        CHECK(std::string_view(o["message"]) == "bare");
        CHECK(o.size() == 4);  // no null columns written
    }
}

TEST_CASE("append_event_json writes a json-codec event: its message once, the rest in fields",
          "[json_writer]") {
    sluice::batch b(0);
    b.add_line(R"({"ts":"2024-01-02T03:04:05Z","level":"warn","host":"h1","msg":"tab\there"})");
    b.add_line(R"({"app":"api","message":"plain","n":{"a":[1,"}"]}})");
    b.add_line(R"({"msg":"alone"})");
    b.add_line(R"({"level":"info","text":"no message key"})");
    b.add_line("not json");
    b.received_ns = 5;
    b.host = "peer";
    sluice::batch_decoder decoder(sluice::codec_kind::json);
    CHECK(decoder.decode(b) == 1);

    simdjson::dom::parser parser;
    std::string out;
    std::vector<std::string> objects;
    for (size_t i = 0; i < b.event_count(); ++i) {
        out.clear();
        sluice::append_event_json(out, b, i, "app");
        objects.push_back(out);
    }
    simdjson::dom::object o;
    REQUIRE(parser.parse(simdjson::padded_string(objects[0])).get_object().get(o) ==
            simdjson::SUCCESS);
    CHECK(std::string_view(o["message"]) == "tab\there");
    CHECK(std::string_view(o["host"]) == "h1");
    CHECK(int64_t(o["severity"]) == 4);
    CHECK(std::string_view(o["ts"]) == "2024-01-02T03:04:05.000000000Z");
    CHECK(simdjson::to_string(o["fields"]) ==
          R"({"ts":"2024-01-02T03:04:05Z","level":"warn","host":"h1"})");

    REQUIRE(parser.parse(simdjson::padded_string(objects[1])).get_object().get(o) ==
            simdjson::SUCCESS);
    CHECK(std::string_view(o["message"]) == "plain");
    CHECK(std::string_view(o["host"]) == "peer");
    CHECK(std::string_view(o["app"]) == "api");
    CHECK(simdjson::to_string(o["fields"]) == R"({"app":"api","n":{"a":[1,"}"]}})");

    // Nothing but the message: no fields.
    REQUIRE(parser.parse(simdjson::padded_string(objects[2])).get_object().get(o) ==
            simdjson::SUCCESS);
    CHECK(std::string_view(o["message"]) == "alone");
    CHECK(o["fields"].error() == simdjson::NO_SUCH_FIELD);

    // No message key: the line is the message and the fields.
    REQUIRE(parser.parse(simdjson::padded_string(objects[3])).get_object().get(o) ==
            simdjson::SUCCESS);
    CHECK(std::string_view(o["message"]) == b.line(3));
    CHECK(int64_t(o["severity"]) == 6);
    CHECK(simdjson::to_string(o["fields"]) == b.line(3));

    // Not JSON: plain text.
    REQUIRE(parser.parse(simdjson::padded_string(objects[4])).get_object().get(o) ==
            simdjson::SUCCESS);
    CHECK(std::string_view(o["message"]) == "not json");
    CHECK(o["fields"].error() == simdjson::NO_SUCH_FIELD);
}
