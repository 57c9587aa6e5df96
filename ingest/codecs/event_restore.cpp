#include "ingest/codecs/event_restore.h"

#include "ingest/codecs/codec.h"

namespace sluice {

namespace {

// A string member, or absent / null (no view). False when present with another type.
bool optional_string(simdjson::dom::object o, std::string_view key, std::string_view& out) {
    simdjson::dom::element v;
    if (o[key].get(v) != simdjson::SUCCESS || v.is_null()) {
        out = {};
        return true;
    }
    return v.get_string().get(out) == simdjson::SUCCESS;
}

// A small integer member in [lo, hi], or absent (-1). False when present and not one.
bool optional_int(simdjson::dom::object o, std::string_view key, int lo, int hi, int& out) {
    simdjson::dom::element v;
    if (o[key].get(v) != simdjson::SUCCESS || v.is_null()) {
        out = -1;
        return true;
    }
    int64_t n = 0;
    if (v.get_int64().get(n) != simdjson::SUCCESS || n < lo || n > hi) {
        return false;
    }
    out = static_cast<int>(n);
    return true;
}

// What config names allow ([A-Za-z0-9_-]): a name from the network goes into file paths
// ({source}) and subjects, so nothing else is taken as one.
bool valid_source_name(std::string_view s) {
    if (s.empty() || s.size() > 128) {
        return false;
    }
    for (char c : s) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                        c == '_' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

text_ref extra_ref(batch& b, std::string_view s) {
    if (s.data() == nullptr) {
        return {};
    }
    const text_ref r{static_cast<uint32_t>(b.extra().size()), static_cast<uint32_t>(s.size()),
                     true};
    b.extra() += s;
    return r;
}

}  // namespace

bool event_restorer::parse(std::string_view text, restored_event& out) {
    // A cheap test first: most payloads of a text-format stream are not JSON at all.
    size_t at = 0;
    while (at < text.size() && (text[at] == ' ' || text[at] == '\t')) {
        ++at;
    }
    if (at == text.size() || text[at] != '{') {
        return false;
    }
    simdjson::dom::element root;
    if (parser_.parse(text.data(), text.size(), true).get(root) != simdjson::SUCCESS) {
        return false;
    }
    simdjson::dom::object o;
    if (root.get_object().get(o) != simdjson::SUCCESS) {
        return false;
    }
    std::string_view received_at;
    if (o["received_at"].get_string().get(received_at) != simdjson::SUCCESS ||
        o["source"].get_string().get(out.source) != simdjson::SUCCESS ||
        o["message"].get_string().get(out.message) != simdjson::SUCCESS) {
        return false;
    }
    const std::optional<int64_t> received = parse_rfc3339_ns(received_at);
    if (!received || !valid_source_name(out.source)) {
        return false;
    }
    out.received_ns = *received;
    std::string_view ts;
    if (!optional_string(o, "host", out.host) || !optional_string(o, "file", out.file) ||
        !optional_string(o, "line", out.line) || !optional_string(o, "ts", ts) ||
        !optional_string(o, "app", out.app) || !optional_string(o, "procid", out.procid) ||
        !optional_string(o, "msgid", out.msgid) || !optional_string(o, "topic", out.topic) ||
        !optional_int(o, "severity", 0, 7, out.severity) ||
        !optional_int(o, "facility", 0, 23, out.facility)) {
        return false;
    }
    out.ts_ns.reset();
    if (ts.data() != nullptr) {
        out.ts_ns = parse_rfc3339_ns(ts);
        if (!out.ts_ns) {
            return false;
        }
    }
    if (out.host.empty()) {
        out.host = {};  // the sinks write an empty host as null
    }
    if (out.file.data() == nullptr) {
        out.file = {};
    }
    out.fields.clear();
    simdjson::dom::element fields;
    if (o["fields"].get(fields) == simdjson::SUCCESS && !fields.is_null()) {
        if (!fields.is_object()) {
            return false;
        }
        out.fields = simdjson::minify(fields);
    }
    return true;
}

void append_restored(batch& b, const restored_event& e) {
    const bool own_line = e.line.data() != nullptr;
    b.add_line(own_line ? e.line : e.message);
    event_meta m;
    if (e.ts_ns) {
        m.ts_ns = *e.ts_ns;
    }
    m.severity = static_cast<int8_t>(e.severity);
    m.facility = static_cast<int8_t>(e.facility);
    m.host = extra_ref(b, e.host);
    m.app = extra_ref(b, e.app);
    m.procid = extra_ref(b, e.procid);
    m.msgid = extra_ref(b, e.msgid);
    m.topic = extra_ref(b, e.topic);
    if (own_line) {
        m.message = extra_ref(b, e.message);
    }
    if (!e.fields.empty()) {
        m.fields = extra_ref(b, e.fields);
    }
    b.meta().push_back(m);
}

}  // namespace sluice
