#include <chrono>
#include <cstdint>

#include <catch2/catch.hpp>

#include "common/units.h"

using namespace sluice;
using namespace std::chrono_literals;

TEST_CASE("parse_size reads binary and decimal units and plain bytes", "[units]") {
    CHECK(parse_size("64MiB") == 64ull << 20);
    CHECK(parse_size("4KiB") == 4096u);
    CHECK(parse_size("1GiB") == 1ull << 30);
    CHECK(parse_size("2TiB") == 2ull << 40);
    CHECK(parse_size("10MB") == 10'000'000u);
    CHECK(parse_size("3KB") == 3000u);
    CHECK(parse_size("1GB") == 1'000'000'000u);
    CHECK(parse_size("512B") == 512u);
    CHECK(parse_size("65536") == 65536u);
    CHECK(parse_size("0") == 0u);
    CHECK(parse_size("1.5KiB") == 1536u);
    CHECK(parse_size("0.5MiB") == 512u * 1024);
    // Hand-written configs get some slack around the number.
    CHECK(parse_size(" 64 MiB ") == 64ull << 20);
}

TEST_CASE("parse_size refuses what it cannot read exactly", "[units]") {
    CHECK_FALSE(parse_size(""));
    CHECK_FALSE(parse_size("MiB"));
    CHECK_FALSE(parse_size("-1"));
    CHECK_FALSE(parse_size("-1KiB"));
    CHECK_FALSE(parse_size("64mib"));  // units are case-sensitive: mib is not MiB
    CHECK_FALSE(parse_size("64 megs"));
    CHECK_FALSE(parse_size("64MiBs"));
    CHECK_FALSE(parse_size("1e3"));
    CHECK_FALSE(parse_size("1.2.3"));
    CHECK_FALSE(parse_size("0.5B"));  // no fractional bytes
    CHECK_FALSE(parse_size("1.5"));
    CHECK_FALSE(parse_size("20000000TiB"));  // past uint64_t
}

TEST_CASE("parse_duration reads every unit", "[units]") {
    CHECK(parse_duration("10ns") == 10ns);
    CHECK(parse_duration("250us") == 250us);
    CHECK(parse_duration("200ms") == 200ms);
    CHECK(parse_duration("1s") == 1s);
    CHECK(parse_duration("5m") == 5min);
    CHECK(parse_duration("1h") == 1h);
    CHECK(parse_duration("2d") == 48h);
    CHECK(parse_duration("1.5s") == 1500ms);
    CHECK(parse_duration("0s") == 0ns);
    CHECK(parse_duration(" 30 s ") == 30s);
}

TEST_CASE("parse_duration refuses bare numbers, unknown units and negatives", "[units]") {
    CHECK_FALSE(parse_duration(""));
    CHECK_FALSE(parse_duration("5"));  // no unit: seconds or milliseconds would be a guess
    CHECK_FALSE(parse_duration("s"));
    CHECK_FALSE(parse_duration("-1s"));
    CHECK_FALSE(parse_duration("1S"));
    CHECK_FALSE(parse_duration("5 minutes"));
    CHECK_FALSE(parse_duration("1sec"));
    CHECK_FALSE(parse_duration("1.2.3s"));
    CHECK_FALSE(parse_duration("1000000d"));  // past int64_t nanoseconds
}

TEST_CASE("format_size prints bytes with one binary unit", "[units]") {
    CHECK(format_size(0) == "0 B");
    CHECK(format_size(1023) == "1023 B");
    CHECK(format_size(1024) == "1.0 KiB");
    CHECK(format_size(1536) == "1.5 KiB");
    CHECK(format_size(64ull << 20) == "64.0 MiB");
    CHECK(format_size(3ull << 30) == "3.0 GiB");
    CHECK(format_size(1ull << 40) == "1.0 TiB");
    CHECK(format_size(1ull << 50) == "1024.0 TiB");  // TiB is the largest unit
}

TEST_CASE("a formatted size parses back to about the same size", "[units]") {
    for (uint64_t bytes : {1ull << 10, 64ull << 20, 5ull << 30}) {
        auto text = format_size(bytes);
        text.erase(text.find(' '), 1);
        CHECK(parse_size(text) == bytes);
    }
}
