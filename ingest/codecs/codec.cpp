#include "ingest/codecs/codec.h"

#include "common/ascii.h"

namespace sluice {

namespace {

constexpr int64_t ns_per_second = 1'000'000'000;

// Reads exactly `n` digits at s[at]; false if any is not a digit.
bool read_digits(std::string_view s, size_t at, size_t n, int& value) {
    if (at + n > s.size()) {
        return false;
    }
    int v = 0;
    for (size_t i = at; i < at + n; ++i) {
        if (!is_ascii_digit(s[i])) {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    value = v;
    return true;
}

bool is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int days_in_month(int64_t y, int m) {
    static constexpr int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil):
// branch-free and valid for any year, unlike timegm, which depends on the C library and TZ.
int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2 ? 1 : 0;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

}  // namespace

std::optional<codec_kind> parse_codec(std::string_view s) {
    if (s == "text") {
        return codec_kind::text;
    }
    if (s == "json") {
        return codec_kind::json;
    }
    if (s == "syslog") {
        return codec_kind::syslog;
    }
    return std::nullopt;
}

std::optional<int64_t> civil_to_unix_ns(int year, int month, int day, int hour, int minute,
                                        int second, int64_t nanos) {
    if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour < 0 ||
        hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 60 || nanos < 0 ||
        nanos >= ns_per_second) {
        return std::nullopt;
    }
    // int64 days and seconds cannot overflow for an int year; only the ns product can.
    const int64_t seconds =
        days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
    int64_t ns = 0;
    if (__builtin_mul_overflow(seconds, ns_per_second, &ns) ||
        __builtin_add_overflow(ns, nanos, &ns)) {
        return std::nullopt;
    }
    return ns;
}

std::optional<int64_t> parse_rfc3339_ns(std::string_view s) {
    // YYYY-MM-DDTHH:MM:SS, then an optional fraction and a zone: at least 20 bytes.
    int year = 0;
    int month = 0;
    int day = 0;
    int hour = 0;
    int minute = 0;
    int second = 0;
    if (s.size() < 20 || !read_digits(s, 0, 4, year) || s[4] != '-' ||
        !read_digits(s, 5, 2, month) || s[7] != '-' || !read_digits(s, 8, 2, day) ||
        (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !read_digits(s, 11, 2, hour) ||
        s[13] != ':' || !read_digits(s, 14, 2, minute) || s[16] != ':' ||
        !read_digits(s, 17, 2, second)) {
        return std::nullopt;
    }
    size_t at = 19;
    int64_t nanos = 0;
    if (s[at] == '.') {
        ++at;
        const size_t first = at;
        int64_t scale = ns_per_second;
        while (at < s.size() && is_ascii_digit(s[at])) {
            // RFC 3339 puts no limit on the fraction; digits past ns cannot be stored.
            if (scale > 1) {
                scale /= 10;
                nanos += (s[at] - '0') * scale;
            }
            ++at;
        }
        if (at == first) {
            return std::nullopt;
        }
    }
    if (at >= s.size()) {
        return std::nullopt;  // the zone is mandatory
    }
    int64_t offset_seconds = 0;
    if (s[at] == 'Z' || s[at] == 'z') {
        ++at;
    } else if (s[at] == '+' || s[at] == '-') {
        int off_hour = 0;
        int off_minute = 0;
        if (!read_digits(s, at + 1, 2, off_hour) || at + 3 >= s.size() || s[at + 3] != ':' ||
            !read_digits(s, at + 4, 2, off_minute) || off_hour > 23 || off_minute > 59) {
            return std::nullopt;
        }
        offset_seconds = (off_hour * 3600 + off_minute * 60) * (s[at] == '+' ? 1 : -1);
        at += 6;
    } else {
        return std::nullopt;
    }
    if (at != s.size()) {
        return std::nullopt;
    }
    const auto local = civil_to_unix_ns(year, month, day, hour, minute, second, nanos);
    int64_t utc = 0;
    // Local time minus its offset is UTC; near the ends of the int64 range it may not fit.
    if (!local || __builtin_sub_overflow(*local, offset_seconds * ns_per_second, &utc)) {
        return std::nullopt;
    }
    return utc;
}

}  // namespace sluice
