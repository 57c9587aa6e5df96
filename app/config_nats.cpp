// Reading the nats sink's and the nats source's keys; the connection keys (servers, tls, creds)
// are the same for both.
#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "app/config_parser.h"
#include "ingest/nats_source.h"
#include "sinks/nats_sink.h"

namespace sluice {

namespace {

std::optional<nats_sink_format> parse_nats_sink_format(std::string_view s) {
    if (s == "json") {
        return nats_sink_format::json;
    }
    if (s == "text") {
        return nats_sink_format::text;
    }
    return std::nullopt;
}

// A NATS server URL: nats:// or tls://, a host and a port.
bool read_server(config_reader& r, const config_field& f, std::string& out) {
    std::string url;
    if (!r.non_empty_string(f, url)) {
        return false;
    }
    std::string_view rest = url;
    bool scheme = false;
    for (std::string_view s : {"nats://", "tls://"}) {
        if (rest.starts_with(s)) {
            rest.remove_prefix(s.size());
            scheme = true;
        }
    }
    const size_t at = rest.rfind('@');  // nats://user:pass@host:port
    if (at != std::string_view::npos) {
        rest.remove_prefix(at + 1);
    }
    const size_t colon = rest.rfind(':');
    const bool port_ok = colon != std::string_view::npos && colon > 0 &&
                         colon + 1 < rest.size() &&
                         std::all_of(rest.begin() + static_cast<std::ptrdiff_t>(colon) + 1,
                                     rest.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!scheme || !port_ok) {
        r.problem(f.value.source(), f.path,
                  fmt::format("invalid NATS server '{}' (expected nats://host:port or "
                              "tls://host:port)",
                              url));
        return false;
    }
    out = std::move(url);
    return true;
}

// tls = { ca = "...", cert = "...", key = "..." }: ca to verify the servers, cert and key for
// servers that verify clients.
void read_nats_tls(config_reader& r, const config_field& f, nats_tls_config& out) {
    const toml::table* table = r.table(f);
    if (table == nullptr) {
        return;
    }
    nats_tls_config tls;
    bool ok = true;
    std::set<std::string> present;
    auto file = [&](std::string& into) {
        return [&r, &ok, &present, into = &into](const config_field& v) {
            present.insert(std::string(v.key.str()));
            ok = read_config_relative_path(r, v, *into) && ok;
        };
    };
    r.read_fields(*table, f.path,
                  {{"ca", file(tls.ca)}, {"cert", file(tls.cert)}, {"key", file(tls.key)}});
    if (present.contains("cert") != present.contains("key")) {
        r.problem(table_region(f.key, *table), f.path,
                  "cert and key go together (the client's certificate and its private key)");
        ok = false;
    }
    if (present.empty()) {
        r.problem(table_region(f.key, *table), f.path, "names no file (ca, or cert and key)");
        ok = false;
    }
    if (ok) {
        out = std::move(tls);
    }
}

void add_connection_specs(config_reader& r, std::vector<field_spec>& specs,
                          nats_connection_config& c) {
    specs.push_back({"servers", [&r, &c](const config_field& v) {
                         const toml::array* array = v.value.as_array();
                         if (array == nullptr || array->empty()) {
                             r.problem(v.value.source(), v.path,
                                       "expected a non-empty array of NATS server URLs");
                             return;
                         }
                         std::vector<std::string> servers;
                         bool ok = true;
                         for (const toml::node& element : *array) {
                             const config_field e{v.key, element, v.path};
                             std::string url;
                             if (!read_server(r, e, url)) {
                                 ok = false;
                                 continue;
                             }
                             if (std::find(servers.begin(), servers.end(), url) != servers.end()) {
                                 r.problem(element.source(), v.path,
                                           fmt::format("server '{}' is listed twice", url));
                                 ok = false;
                                 continue;
                             }
                             servers.push_back(std::move(url));
                         }
                         if (ok) {
                             c.servers = std::move(servers);
                         }
                     }});
    specs.push_back({"tls", [&r, &c](const config_field& v) { read_nats_tls(r, v, c.tls); }});
    specs.push_back({"creds", [&r, &c](const config_field& v) {
                         read_config_relative_path(r, v, c.creds);
                     }});
}

// Stream and consumer names: JetStream refuses '.', '*', '>', whitespace and path separators.
bool read_nats_name(config_reader& r, const config_field& f, std::string& out) {
    std::string name;
    if (!r.non_empty_string(f, name)) {
        return false;
    }
    const bool ok = std::none_of(name.begin(), name.end(), [](char c) {
        return c <= ' ' || c == '.' || c == '*' || c == '>' || c == '/' || c == '\\' || c == 0x7f;
    });
    if (!ok) {
        r.problem(f.value.source(), f.path,
                  fmt::format("'{}' cannot name a JetStream stream or consumer (no '.', '*', "
                              "'>', '/', '\\' or whitespace)",
                              name));
        return false;
    }
    out = std::move(name);
    return true;
}

// A positive integer that fits `T`, at most `max`.
template <typename T>
void bounded_count(config_reader& r, const config_field& v, T& out, uint64_t max) {
    uint64_t n = 0;
    if (!r.positive_integer(v, n)) {
        return;
    }
    if (n > max) {
        r.problem(v.value.source(), v.path, fmt::format("must be at most {}", max));
        return;
    }
    out = static_cast<T>(n);
}

}  // namespace

void read_nats_sink(config_parser& p, const config_field& f, const toml::table& table,
                    std::vector<field_spec>& specs, nats_sink_config& nats) {
    config_reader& r = p.reader();
    add_connection_specs(r, specs, nats.connection);
    specs.push_back({"subject", [&](const config_field& v) {
                         std::string subject;
                         if (!r.non_empty_string(v, subject)) {
                             return;
                         }
                         const std::string filter = nats_subject_filter(subject);
                         const bool bad =
                             filter.front() == '.' || filter.back() == '.' ||
                             filter.find("..") != std::string::npos ||
                             std::any_of(filter.begin(), filter.end(),
                                         [](char c) { return c <= ' ' || c == '>'; });
                         if (bad) {
                             r.problem(v.value.source(), v.path,
                                       fmt::format("'{}' is not a subject to publish to "
                                                   "(tokens joined by '.', {{source}} allowed)",
                                                   subject));
                             return;
                         }
                         nats.subject = std::move(subject);
                     }});
    specs.push_back(
        {"stream", [&](const config_field& v) { read_nats_name(r, v, nats.stream); }});
    specs.push_back({"replicas", [&](const config_field& v) {
                         bounded_count(r, v, nats.replicas, 5);
                     }});
    specs.push_back({"retention", [&](const config_field& v) {
                         r.choice(v, nats.retention, parse_nats_retention,
                                  "workqueue, limits, interest");
                     }});
    specs.push_back(
        {"stream_max_bytes", [&](const config_field& v) { r.size(v, nats.stream_max_bytes); }});
    specs.push_back({"stream_max_msgs", [&](const config_field& v) {
                         bounded_count(r, v, nats.stream_max_msgs, uint64_t{1} << 62);
                     }});
    specs.push_back({"duplicate_window", [&](const config_field& v) {
                         r.duration(v, nats.duplicate_window, true);
                     }});
    specs.push_back({"format", [&](const config_field& v) {
                         r.choice(v, nats.format, parse_nats_sink_format, "json, text");
                     }});
    specs.push_back({"events_per_message", [&](const config_field& v) {
                         bounded_count(r, v, nats.events_per_message, 10'000);
                     }});
    specs.push_back({"max_in_flight", [&](const config_field& v) {
                         bounded_count(r, v, nats.max_in_flight, 1'000'000);
                     }});
    specs.push_back(
        {"ack_timeout", [&](const config_field& v) { r.duration(v, nats.ack_timeout, true); }});
    r.read_fields(table, f.path, specs);
}

void read_nats_source(config_parser& p, const config_field& f, const toml::table& table,
                      std::vector<field_spec>& specs, nats_source_config& nats) {
    config_reader& r = p.reader();
    add_connection_specs(r, specs, nats.connection);
    specs.push_back(
        {"stream", [&](const config_field& v) { read_nats_name(r, v, nats.stream); }});
    specs.push_back(
        {"consumer", [&](const config_field& v) { read_nats_name(r, v, nats.consumer); }});
    specs.push_back({"filter_subject", [&](const config_field& v) {
                         r.non_empty_string(v, nats.filter_subject);
                     }});
    specs.push_back({"framing", [&](const config_field& v) {
                         r.choice(v, nats.framing, parse_message_framing, "message, newline");
                     }});
    specs.push_back({"fetch_batch", [&](const config_field& v) {
                         bounded_count(r, v, nats.fetch_batch, 100'000);
                     }});
    specs.push_back(
        {"ack_wait", [&](const config_field& v) { r.duration(v, nats.ack_wait, true); }});
    specs.push_back({"max_ack_pending", [&](const config_field& v) {
                         bounded_count(r, v, nats.max_ack_pending, 10'000'000);
                     }});
    r.read_fields(table, f.path, specs);
}

}  // namespace sluice
