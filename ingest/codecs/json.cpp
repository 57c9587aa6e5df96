// JSON codec: one object per line, parsed with simdjson's DOM parser, which also validates
// UTF-8 and structure. Only the top-level keys are visited. The DOM gives unescaped strings
// but no places in the line, so a short scan of the (validated) line finds the members whose
// bytes are cut out of `fields` or viewed as columns: `fields` is the line's own text, less
// the message member, never a re-serialisation.
#include <array>
#include <climits>
#include <cmath>
#include <cstring>

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

// The columns a top-level key can fill, and each key's rank among the keys of its column: the
// first readable value of the lowest rank wins.
enum class column { message, ts, severity, host, app };
constexpr size_t column_count = static_cast<size_t>(column::app) + 1;

struct column_key {
    std::string_view key;
    column col;
    int rank;
};

constexpr column_key column_keys[] = {
    {"message", column::message, 0},   {"msg", column::message, 1},
    {"log", column::message, 2},       {"ts", column::ts, 0},
    {"timestamp", column::ts, 1},      {"time", column::ts, 2},
    {"@timestamp", column::ts, 3},     {"level", column::severity, 0},
    {"severity", column::severity, 1}, {"host", column::host, 0},
    {"hostname", column::host, 1},     {"app", column::app, 0},
    {"service", column::app, 1},
};

const column_key* find_column_key(std::string_view key) {
    for (const column_key& k : column_keys) {
        if (k.key == key) {
            return &k;
        }
    }
    return nullptr;
}

// Syslog severities by name, as level keys spell them (lower case; the input may be any case).
struct severity_name {
    std::string_view name;
    int severity;
};

constexpr severity_name severity_names[] = {
    {"emerg", 0}, {"emergency", 0},     {"panic", 0}, {"alert", 1}, {"crit", 2},    {"critical", 2},
    {"fatal", 2}, {"err", 3},           {"error", 3}, {"warn", 4},  {"warning", 4}, {"notice", 5},
    {"info", 6},  {"informational", 6}, {"debug", 7}, {"trace", 7},
};
constexpr size_t max_severity_name = 13;  // "informational"

int severity_from_element(simdjson::dom::element value) {
    switch (value.type()) {
        case simdjson::dom::element_type::INT64: {
            const int64_t v = value.get_int64().value_unsafe();
            return v >= 0 && v <= 7 ? static_cast<int>(v) : -1;
        }
        case simdjson::dom::element_type::STRING: {
            const std::string_view s = value.get_string().value_unsafe();
            if (s.size() > max_severity_name) {
                return -1;
            }
            std::array<char, max_severity_name> lower{};
            for (size_t i = 0; i < s.size(); ++i) {
                const char c = s[i];
                lower[i] = c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
            }
            const std::string_view name(lower.data(), s.size());
            for (const severity_name& n : severity_names) {
                if (n.name == name) {
                    return n.severity;
                }
            }
            return -1;
        }
        default:
            return -1;
    }
}

size_t skip_space(std::string_view s, size_t at) {
    while (at < s.size() && is_json_space(s[at])) {
        ++at;
    }
    return at;
}

// Past the string whose opening quote is at s[at] and that unescapes to `unescaped_size`
// bytes: the first quote after it that an even number of backslashes precedes (each pair is an
// escaped backslash). Every escape is longer than what it stands for, so the closing quote is
// no nearer than `unescaped_size` bytes on: a string without escapes is found at once.
size_t skip_string(std::string_view s, size_t at, size_t unescaped_size = 0) {
    size_t from = at + 1 + unescaped_size;
    while (from < s.size()) {
        const void* found = std::memchr(s.data() + from, '"', s.size() - from);
        if (found == nullptr) {
            break;
        }
        const auto quote = static_cast<size_t>(static_cast<const char*>(found) - s.data());
        size_t backslashes = 0;
        while (quote - backslashes > at + 1 && s[quote - backslashes - 1] == '\\') {
            ++backslashes;
        }
        if (backslashes % 2 == 0) {
            return quote + 1;
        }
        from = quote + 1;
    }
    return s.size();
}

// Past the value, not a string, that starts at s[at]. The line was validated, so brackets
// balance and a scalar ends at a delimiter.
size_t skip_value(std::string_view s, size_t at) {
    if (at >= s.size()) {
        return at;
    }
    if (s[at] == '{' || s[at] == '[') {
        int depth = 0;
        size_t i = at;
        while (i < s.size()) {
            const char c = s[i];
            if (c == '"') {
                i = skip_string(s, i);
                continue;
            }
            if (c == '{' || c == '[') {
                ++depth;
            } else if ((c == '}' || c == ']') && --depth == 0) {
                return i + 1;
            }
            ++i;
        }
        return i;
    }
    size_t i = at;
    while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ']' && !is_json_space(s[i])) {
        ++i;
    }
    return i;
}

}  // namespace

bool json_decoder::decode(std::string_view line, decoded_event& out, std::string& extra) {
    out.reset();
    // A text line would fail the parse anyway; most do on their first byte, so look first.
    const size_t first = skip_space(line, 0);
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
    // An unreadable value (a "ts" that is no time, a numeric "msg") leaves its column to the
    // next key.
    std::array<int, column_count> best_rank;
    best_rank.fill(INT_MAX);
    // Member index and unescaped text of the string columns, found by index in the line.
    constexpr size_t none = SIZE_MAX;
    std::array<size_t, column_count> index;
    index.fill(none);
    std::array<std::string_view, column_count> text;
    size_t member = 0;
    for (const simdjson::dom::key_value_pair field : object) {
        const size_t this_member = member++;
        const column_key* key = find_column_key(field.key);
        if (key == nullptr) {
            continue;
        }
        const auto c = static_cast<size_t>(key->col);
        if (key->rank >= best_rank[c]) {
            continue;
        }
        bool readable = false;
        switch (key->col) {
            case column::ts:
                if (auto ts = ts_from_element(field.value)) {
                    out.ts_ns = ts;
                    readable = true;
                }
                break;
            case column::severity:
                if (const int severity = severity_from_element(field.value); severity >= 0) {
                    out.severity = severity;
                    readable = true;
                }
                break;
            case column::message:
            case column::host:
            case column::app: {
                std::string_view s;
                // An empty host or app says nothing: the peer's address stays the host.
                if (field.value.get_string().get(s) == simdjson::SUCCESS &&
                    (key->col == column::message || !s.empty())) {
                    text[c] = s;
                    index[c] = this_member;
                    readable = true;
                }
                break;
            }
        }
        if (readable) {
            best_rank[c] = key->rank;
        }
    }

    const size_t message_index = index[static_cast<size_t>(column::message)];
    if (message_index == none && index[static_cast<size_t>(column::host)] == none &&
        index[static_cast<size_t>(column::app)] == none) {
        out.message = line;
        out.fields = decoded_event::fields_where::line;
        return true;
    }

    // The members in the line, in step with the DOM's, whose string sizes speed the scan.
    members_.clear();
    size_t at = skip_space(line, first + 1);
    for (const simdjson::dom::key_value_pair field : object) {
        member_span m{at, 0, 0};
        at = skip_space(line, skip_string(line, at, field.key.size()));  // at the ':'
        m.value_begin = skip_space(line, at + 1);
        std::string_view s;
        m.value_end = field.value.get_string().get(s) == simdjson::SUCCESS
                          ? skip_string(line, m.value_begin, s.size())
                          : skip_value(line, m.value_begin);
        members_.push_back(m);
        at = skip_space(line, m.value_end);  // at the ',' or the closing brace
        at = at < line.size() && line[at] == ',' ? skip_space(line, at + 1) : at;
    }
    const size_t object_end = at + 1;  // past the closing brace

    // A string without escapes is its own bytes between the quotes; every escape is longer
    // than what it stands for, so equal lengths mean there was none.
    auto place = [&](column col, std::string_view& view,
                     std::optional<decoded_event::appended_text>& appended) {
        const size_t i = index[static_cast<size_t>(col)];
        if (i == none) {
            return;
        }
        const std::string_view unescaped = text[static_cast<size_t>(col)];
        const member_span& m = members_[i];
        if (m.value_end - m.value_begin - 2 == unescaped.size()) {
            view = line.substr(m.value_begin + 1, unescaped.size());
        } else {
            appended = decoded_event::appended_text{extra.size(), unescaped.size()};
            extra += unescaped;
        }
    };
    place(column::host, out.host, out.host_appended);
    place(column::app, out.app, out.app_appended);
    if (message_index == none) {
        out.message = line;
        out.fields = decoded_event::fields_where::line;
        return true;
    }
    place(column::message, out.message, out.message_appended);
    if (members_.size() == 1) {
        return true;  // nothing but the message: no fields
    }
    // Cut the message member and one comma next to it: the one after it, or, for the last
    // member, the one before it.
    size_t cut_begin = 0;
    size_t cut_end = 0;
    if (message_index + 1 < members_.size()) {
        cut_begin = members_[message_index].key_begin;
        cut_end = members_[message_index + 1].key_begin;
    } else {
        cut_begin = members_[message_index - 1].value_end;
        cut_end = members_[message_index].value_end;
    }
    out.fields = decoded_event::fields_where::appended;
    out.fields_offset = extra.size();
    extra.append(line.data() + first, cut_begin - first);
    extra.append(line.data() + cut_end, object_end - cut_end);
    out.fields_length = extra.size() - out.fields_offset;
    return true;
}

}  // namespace sluice
