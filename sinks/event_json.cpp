#include "sinks/event_json.h"

#include <fmt/format.h>

#include "common/json_writer.h"

namespace sluice {

namespace {

void append_field(std::string& out, std::string_view key, std::string_view value) {
    if (value.data() == nullptr) {
        return;
    }
    out += ",\"";
    out += key;
    out += "\":";
    append_json_string(out, value);
}

}  // namespace

void append_event_json(std::string& out, const batch& b, size_t i, const std::string& source,
                       bool with_line) {
    out += "{\"received_at\":\"";
    append_rfc3339_ns(out, b.received_ns);
    out += "\",\"source\":";
    append_json_string(out, source);
    std::string_view host = b.host;
    const event_meta* m = b.has_meta() ? &b.meta(i) : nullptr;
    if (m != nullptr && !m->host.is_null()) {
        host = b.view(m->host);
    }
    out += ",\"host\":";
    if (host.empty()) {
        out += "null";
    } else {
        append_json_string(out, host);
    }
    if (!b.file.empty()) {
        out += ",\"file\":";
        append_json_string(out, b.file);
    }
    out += ",\"message\":";
    const std::string_view message = b.message(i);
    append_json_string(out, message);
    if (with_line && b.line(i) != message) {
        out += ",\"line\":";
        append_json_string(out, b.line(i));
    }
    if (m != nullptr) {
        if (m->ts_ns != event_meta::no_ts) {
            out += ",\"ts\":\"";
            append_rfc3339_ns(out, m->ts_ns);
            out += '"';
        }
        if (m->severity >= 0) {
            fmt::format_to(std::back_inserter(out), ",\"severity\":{}", m->severity);
        }
        if (m->facility >= 0) {
            fmt::format_to(std::back_inserter(out), ",\"facility\":{}", m->facility);
        }
        append_field(out, "app", b.view(m->app));
        append_field(out, "procid", b.view(m->procid));
        append_field(out, "msgid", b.view(m->msgid));
        append_field(out, "topic", b.view(m->topic));
        if (!m->fields.is_null()) {
            // Already a JSON object: the codec validated (json) or wrote (syslog) it.
            out += ",\"fields\":";
            out += b.view(m->fields);
        }
    }
    out += '}';
}

}  // namespace sluice
