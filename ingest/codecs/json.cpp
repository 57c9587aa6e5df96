// JSON codec: one object per line, parsed with simdjson's DOM parser, which also validates
// UTF-8, so the line can be stored as `fields` unchanged. Only the top-level keys are visited.
#include <cmath>

#include "ingest/codecs/codec.h"

namespace sluice {

namespace {

// 9.2e18 ns, just under INT64_MAX: a double product at or past it does not fit.
constexpr double max_ns_double = 9.2e18;

bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// A number's unit follows from its size: seconds stay under 1e11 until the year 5138, and a
// time in ms, us or ns since 1970 is 1e3, 1e6 or 1e9 times larger.
int64_t ns_scale(double magnitude) {
    if (magnitude < 1e11) {
        return 1'000'000'000;
    }
    if (magnitude < 1e14) {
        return 1'000'000;
    }
    if (magnitude < 1e17) {
        return 1'000;
    }
    return 1;
}

std::optional<int64_t> ns_from_int(int64_t v) {
    // The magnitude only picks the unit; a double is exact enough for that.
    const int64_t scale = ns_scale(std::fabs(static_cast<double>(v)));
    int64_t ns = 0;
    if (__builtin_mul_overflow(v, scale, &ns)) {
        return std::nullopt;
    }
    return ns;
}

std::optional<int64_t> ns_from_double(double v) {
    if (!std::isfinite(v)) {
        return std::nullopt;
    }
    const int64_t scale = ns_scale(std::fabs(v));
    if (std::fabs(v) * static_cast<double>(scale) >= max_ns_double) {
        return std::nullopt;
    }
    // Whole units and the fraction apart: 1.7e18 ns as one double would lose ~256 ns.
    const double whole = std::trunc(v);
    const auto whole_ns = static_cast<int64_t>(whole) * scale;
    const auto frac_ns =
        static_cast<int64_t>(std::llround((v - whole) * static_cast<double>(scale)));
    return whole_ns + frac_ns;
}

std::optional<int64_t> ts_from_element(simdjson::dom::element value) {
    switch (value.type()) {
        case simdjson::dom::element_type::INT64:
            return ns_from_int(value.get_int64().value_unsafe());
        case simdjson::dom::element_type::DOUBLE:
            return ns_from_double(value.get_double().value_unsafe());
        case simdjson::dom::element_type::STRING:
            return parse_rfc3339_ns(value.get_string().value_unsafe());
        default:
            // UINT64 is only used past INT64_MAX, which no unit makes a time in ns.
            return std::nullopt;
    }
}

// The rank of a time key: "ts" before "timestamp" before "time"; 3 for any other key.
int time_key_rank(std::string_view key) {
    if (key == "ts") {
        return 0;
    }
    if (key == "timestamp") {
        return 1;
    }
    if (key == "time") {
        return 2;
    }
    return 3;
}

}  // namespace

bool json_decoder::decode(std::string_view line, decoded_event& out) {
    out.reset();
    // A text line would fail the parse anyway; most do on their first byte, so look first.
    size_t first = 0;
    while (first < line.size() && is_json_space(line[first])) {
        ++first;
    }
    if (first == line.size() || line[first] != '{') {
        return false;
    }
    // realloc_if_needed: the line sits in the batch buffer without simdjson's padding, so the
    // parser copies it into its own padded buffer (reused from line to line).
    simdjson::dom::element root;
    if (parser_.parse(line.data(), line.size(), true).get(root) != simdjson::SUCCESS) {
        return false;
    }
    simdjson::dom::object object;
    if (root.get_object().get(object) != simdjson::SUCCESS) {
        return false;
    }
    // One pass over the top-level keys; nested values are skipped on the tape, not walked.
    int best_rank = 3;
    for (const simdjson::dom::key_value_pair field : object) {
        const int rank = time_key_rank(field.key);
        if (rank >= best_rank) {
            continue;
        }
        // An unreadable "ts" does not hide a readable "time".
        if (auto ts = ts_from_element(field.value)) {
            out.ts_ns = ts;
            best_rank = rank;
            if (rank == 0) {
                break;
            }
        }
    }
    out.message = line;
    out.fields = decoded_event::fields_where::line;
    return true;
}

}  // namespace sluice
