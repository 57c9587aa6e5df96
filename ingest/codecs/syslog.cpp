// Syslog codec: RFC 5424 and RFC 3164 in one hand-written pass over the line. Nothing is
// allocated: every column is a view into the line; only structured data is written, as JSON,
// to the caller's fields_out.
#include <algorithm>
#include <limits>
#include <optional>
#include <string>

#include "common/ascii.h"
#include "common/json_writer.h"
#include "ingest/codecs/codec.h"

namespace sluice {

namespace {

constexpr int max_pri = 191;
constexpr int64_t ns_per_day = 86'400'000'000'000;
constexpr std::string_view utf8_bom = "\xEF\xBB\xBF";

// PRINTUSASCII of RFC 5424: the bytes allowed in header fields and SD names.
bool is_print_ascii(char c) { return c >= 33 && c <= 126; }

// A header field: 1 or more PRINTUSASCII bytes up to a SP, which must follow. `at` ends on
// that SP. "-" becomes a NULL view.
bool read_header_field(std::string_view line, size_t& at, std::string_view& field) {
    const size_t start = at;
    while (at < line.size() && is_print_ascii(line[at])) {
        ++at;
    }
    if (at == start || at == line.size() || line[at] != ' ') {
        return false;
    }
    field = line.substr(start, at - start);
    if (field == "-") {
        field = {};
    }
    return true;
}

// "<PRI>" at line[0] == '<'. Leading zeros are tolerated; a value over 191 is not.
bool read_pri(std::string_view line, size_t& at, int& pri) {
    size_t i = 1;
    int value = 0;
    while (i < line.size() && i <= 3 && is_ascii_digit(line[i])) {
        value = value * 10 + (line[i] - '0');
        ++i;
    }
    if (i == 1 || i >= line.size() || line[i] != '>' || value > max_pri) {
        return false;
    }
    pri = value;
    at = i + 1;
    return true;
}

// MSG: a leading BOM and one trailing LF are not part of the text.
std::string_view trim_message(std::string_view msg) {
    if (msg.starts_with(utf8_bom)) {
        msg.remove_prefix(utf8_bom.size());
    }
    if (msg.ends_with('\n')) {
        msg.remove_suffix(1);
    }
    return msg;
}

// The empty MSG of a line that has none: an empty string, so a view that is not NULL.
std::string_view empty_at_end(std::string_view line) { return line.substr(line.size()); }

// SD-NAME: PRINTUSASCII except '=', SP, ']' and '"'.
bool read_sd_name(std::string_view line, size_t& at, std::string_view& name) {
    const size_t start = at;
    while (at < line.size()) {
        const char c = line[at];
        if (!is_print_ascii(c) || c == '=' || c == ']' || c == '"') {
            break;
        }
        ++at;
    }
    name = line.substr(start, at - start);
    return !name.empty();
}

// Writes a PARAM-VALUE as a JSON string. RFC 5424 escapes only '"', '\' and ']'; a backslash
// before anything else is an ordinary character.
void append_sd_value(std::string& out, std::string_view raw) {
    if (raw.find('\\') == std::string_view::npos) {
        append_json_string(out, raw);
        return;
    }
    // Reused per thread, so an escaped value costs no allocation once it has grown.
    thread_local std::string unescaped;
    unescaped.clear();
    for (size_t i = 0; i < raw.size(); ++i) {
        const char c = raw[i];
        if (c == '\\' && i + 1 < raw.size() &&
            (raw[i + 1] == '"' || raw[i + 1] == '\\' || raw[i + 1] == ']')) {
            unescaped.push_back(raw[++i]);
        } else {
            unescaped.push_back(c);
        }
    }
    append_json_string(out, unescaped);
}

// STRUCTURED-DATA at line[at] == '[': one or more SD-ELEMENTs, written to `out` as
// {"sd-id":{"param":"value"}}. A repeated SD-ID or PARAM-NAME (which RFC 5424 allows for
// params) is written as a repeated key.
bool read_structured_data(std::string_view line, size_t& at, std::string& out) {
    const size_t start = at;
    out.push_back('{');
    bool first_element = true;
    while (at < line.size() && line[at] == '[') {
        ++at;
        std::string_view sd_id;
        if (!read_sd_name(line, at, sd_id)) {
            return false;
        }
        if (!first_element) {
            out.push_back(',');
        }
        first_element = false;
        append_json_string(out, sd_id);
        out += ":{";
        bool first_param = true;
        while (true) {
            if (at >= line.size()) {
                return false;  // unterminated element
            }
            if (line[at] == ']') {
                ++at;
                break;
            }
            if (line[at] != ' ') {
                return false;
            }
            ++at;
            std::string_view name;
            if (!read_sd_name(line, at, name) || at + 1 >= line.size() || line[at] != '=' ||
                line[at + 1] != '"') {
                return false;
            }
            at += 2;
            const size_t value_start = at;
            while (at < line.size() && line[at] != '"') {
                at += line[at] == '\\' ? 2 : 1;  // an escaped quote does not end the value
            }
            if (at >= line.size()) {
                return false;  // unterminated value
            }
            const std::string_view raw = line.substr(value_start, at - value_start);
            ++at;  // the closing quote
            if (!first_param) {
                out.push_back(',');
            }
            first_param = false;
            append_json_string(out, name);
            out.push_back(':');
            append_sd_value(out, raw);
        }
        out.push_back('}');
    }
    out.push_back('}');
    // Values are UTF-8 by the RFC; anything else would make `fields` invalid JSON. Names are
    // ASCII and escapes are ASCII, so checking the raw text is enough.
    return simdjson::validate_utf8(line.data() + start, at - start);
}

bool decode_5424(std::string_view line, size_t at, decoded_event& out, std::string& fields_out) {
    // VERSION: only 1 is defined; a later version may change the layout.
    if (line.substr(at, 2) != "1 ") {
        return false;
    }
    at += 2;
    std::string_view timestamp;
    if (!read_header_field(line, at, timestamp)) {
        return false;
    }
    if (timestamp.data() != nullptr) {
        out.ts_ns = parse_rfc3339_ns(timestamp);
        if (!out.ts_ns) {
            return false;
        }
    }
    ++at;
    for (std::string_view* field : {&out.host, &out.app, &out.procid, &out.msgid}) {
        if (!read_header_field(line, at, *field)) {
            return false;
        }
        ++at;
    }
    if (at >= line.size()) {
        return false;  // STRUCTURED-DATA is not optional
    }
    if (line[at] == '-') {
        ++at;
    } else if (line[at] == '[') {
        const size_t offset = fields_out.size();
        if (!read_structured_data(line, at, fields_out)) {
            return false;
        }
        out.fields = decoded_event::fields_where::appended;
        out.fields_offset = offset;
        out.fields_length = fields_out.size() - offset;
    } else {
        return false;
    }
    // A datagram may still end in its LF: without a MSG, that LF is all that is left.
    if (at == line.size() || line.substr(at) == "\n") {
        out.message = empty_at_end(line);
        return true;
    }
    if (line[at] != ' ') {
        return false;
    }
    out.message = trim_message(line.substr(at + 1));
    return true;
}

int month_number(std::string_view m) {
    static constexpr std::string_view months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (int i = 0; i < 12; ++i) {
        if (m == months[i]) {
            return i + 1;
        }
    }
    return 0;
}

// The UTC year of a unix time (Howard Hinnant's civil_from_days, year only).
int64_t year_of(int64_t unix_ns) {
    int64_t days = unix_ns / ns_per_day - (unix_ns % ns_per_day < 0 ? 1 : 0);
    days += 719468;
    const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    const int64_t doe = days - era * 146097;
    const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const int64_t mp = (5 * doy + 2) / 153;
    return yoe + era * 400 + (mp >= 10 ? 1 : 0);
}

// "Mmm dd hh:mm:ss" (day space- or zero-padded). RFC 3164 gives neither year nor zone: the
// time is read as UTC, in the year of `now` unless that puts it more than a day in the
// future (a December line read in January), then in the year before.
bool read_3164_timestamp(std::string_view line, size_t& at, int64_t now_unix_ns,
                         std::optional<int64_t>& ts_ns) {
    const std::string_view t = line.substr(at, 15);
    if (t.size() != 15 || t[3] != ' ' || t[6] != ' ' || t[9] != ':' || t[12] != ':') {
        return false;
    }
    const int month = month_number(t.substr(0, 3));
    const bool day_ok = (t[4] == ' ' || is_ascii_digit(t[4])) && is_ascii_digit(t[5]);
    bool digits_ok = true;
    for (size_t i : {7, 8, 10, 11, 13, 14}) {
        digits_ok = digits_ok && is_ascii_digit(t[i]);
    }
    if (month == 0 || !day_ok || !digits_ok) {
        return false;
    }
    auto two = [&](size_t i) { return (t[i] == ' ' ? 0 : t[i] - '0') * 10 + (t[i + 1] - '0'); };
    const int day = two(4);
    const int hour = two(7);
    const int minute = two(10);
    const int second = two(13);
    const int64_t year = year_of(now_unix_ns);
    int64_t horizon = 0;
    if (__builtin_add_overflow(now_unix_ns, ns_per_day, &horizon)) {
        horizon = std::numeric_limits<int64_t>::max();
    }
    for (int64_t y : {year, year - 1}) {
        const auto ns = civil_to_unix_ns(static_cast<int>(y), month, day, hour, minute, second, 0);
        // Feb 29 may exist in only one of the two years.
        if (ns && (y != year || *ns <= horizon)) {
            ts_ns = ns;
            at += 15;
            return true;
        }
    }
    return false;
}

// TAG[PID]: or TAG: at the start of `rest`. The TAG ends at '[', ':' or SP; a SP or the end
// means there is no TAG.
bool read_tag(std::string_view rest, decoded_event& out) {
    size_t i = 0;
    while (i < rest.size() && rest[i] != '[' && rest[i] != ':' && rest[i] != ' ') {
        ++i;
    }
    if (i == 0 || i == rest.size() || rest[i] == ' ') {
        return false;
    }
    size_t k = i;
    std::string_view procid;
    if (rest[i] == '[') {
        const size_t close = rest.find(']', i + 1);
        if (close == std::string_view::npos || close == i + 1) {
            return false;
        }
        procid = rest.substr(i + 1, close - i - 1);
        if (procid.find(' ') != std::string_view::npos) {
            return false;
        }
        k = close + 1;
    }
    if (k >= rest.size() || rest[k] != ':') {
        return false;
    }
    ++k;
    if (k < rest.size() && rest[k] == ' ') {
        ++k;
    }
    out.app = rest.substr(0, i);
    out.procid = procid;
    out.message = trim_message(rest.substr(k));
    return true;
}

bool decode_3164(std::string_view line, size_t at, decoded_event& out, int64_t now_unix_ns) {
    if (at < line.size() && is_ascii_digit(line[at])) {
        // rsyslog's high-precision variant: an RFC 3339 TIMESTAMP in place of "Mmm dd ...".
        const size_t end = std::min(line.find(' ', at), line.size());
        out.ts_ns = parse_rfc3339_ns(line.substr(at, end - at));
        if (!out.ts_ns) {
            return false;
        }
        at = end;
    } else if (!read_3164_timestamp(line, at, now_unix_ns, out.ts_ns)) {
        return false;
    }
    if (at >= line.size() || line[at] != ' ') {
        return false;  // a timestamp alone is a truncated header
    }
    ++at;
    const size_t host_start = at;
    while (at < line.size() && line[at] != ' ') {
        if (static_cast<unsigned char>(line[at]) < 33 || line[at] == 127) {
            return false;
        }
        ++at;
    }
    std::string_view host = line.substr(host_start, at - host_start);
    if (host.empty()) {
        return false;
    }
    // Local senders (logger, /dev/log) leave HOSTNAME out: a first token that ends in ':' is
    // a TAG. An IPv6 address could end in "::", so that one stays a host.
    if (host.ends_with(':') && !host.ends_with("::")) {
        at = host_start;
    } else {
        out.host = host;
        while (at < line.size() && line[at] == ' ') {
            ++at;
        }
    }
    const std::string_view rest = line.substr(at);
    if (!read_tag(rest, out)) {
        out.message = rest.empty() ? empty_at_end(line) : trim_message(rest);
    }
    return true;
}

}  // namespace

bool decode_syslog(std::string_view line, decoded_event& out, std::string& fields_out,
                   int64_t now_unix_ns) {
    out.reset();
    if (line.empty()) {
        return false;
    }
    size_t at = 0;
    if (line[0] == '<') {
        int pri = 0;
        if (!read_pri(line, at, pri)) {
            return false;
        }
        out.facility = pri / 8;
        out.severity = pri % 8;
        // "<PRI>1 " starts RFC 5424; a 3164 line goes on with a month or a year ("2003-").
        size_t digits = at;
        while (digits < line.size() && digits - at < 4 && is_ascii_digit(line[digits])) {
            ++digits;
        }
        if (digits > at && digits < line.size() && line[digits] == ' ') {
            const size_t fields_before = fields_out.size();
            if (!decode_5424(line, at, out, fields_out)) {
                fields_out.resize(fields_before);  // no half-written JSON for a rejected line
                return false;
            }
            return true;
        }
    }
    // Lines read from files carry no PRI: severity and facility stay NULL.
    return decode_3164(line, at, out, now_unix_ns);
}

}  // namespace sluice
