// Renders the pipeline's figures for the HTTP API: Prometheus text and a JSON snapshot.
#include <algorithm>

#include <fmt/format.h>

#include "app/http_api.h"
#include "app/pipeline.h"
#include "common/clock.h"
#include "common/json_writer.h"

namespace sluice {

namespace {

// Label values are names we validated ([A-Za-z0-9_-]), so they need no escaping.
class prom_writer {
public:
    void header(std::string_view name, std::string_view type, std::string_view help) {
        fmt::format_to(out_, "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    }
    template <typename T>
    void sample(std::string_view name, T value) {
        fmt::format_to(out_, "{} {}\n", name, value);
    }
    template <typename T>
    void sample(std::string_view name, std::string_view labels, T value) {
        fmt::format_to(out_, "{}{{{}}} {}\n", name, labels, value);
    }
    std::string take() { return std::move(text_); }

private:
    std::string text_;
    std::back_insert_iterator<std::string> out_{text_};
};

std::string label(std::string_view key, std::string_view value) {
    return fmt::format("{}=\"{}\"", key, value);
}

double paused_seconds(const source_counters& c) {
    double total = static_cast<double>(read(c.backpressure_ns_total)) / 1e9;
    const int64_t since = c.paused_since_ns.load(std::memory_order_relaxed);
    if (since != 0) {
        total += static_cast<double>(mono_now_ns() - since) / 1e9;
    }
    return total;
}

void write_histogram(prom_writer& w, const std::string& name, const std::string& labels,
                     const duration_histogram& h) {
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= duration_histogram::bounds.size(); ++i) {
        cumulative += h.bucket(i);
        const std::string le = i < duration_histogram::bounds.size()
                                   ? fmt::format("{}", duration_histogram::bounds[i])
                                   : "+Inf";
        w.sample(name + "_bucket", labels + "," + label("le", le), cumulative);
    }
    w.sample(name + "_sum", labels, h.sum_seconds());
    w.sample(name + "_count", labels, cumulative);
}

// The figures of each kind of source and sink (kind_metric), one family at a time, in the
// order the components first report them.
void write_kind_metrics(prom_writer& w, const pipeline& p) {
    struct family {
        kind_metric first;
        std::vector<std::pair<std::string, kind_metric>> samples;  // labels, figure
    };
    std::vector<family> families;
    auto add = [&](const std::string& labels, const std::vector<kind_metric>& metrics) {
        for (const auto& m : metrics) {
            auto it = std::find_if(families.begin(), families.end(),
                                   [&](const family& f) { return f.first.family == m.family; });
            if (it == families.end()) {
                families.push_back({m, {}});
                it = families.end() - 1;
            }
            it->samples.emplace_back(labels, m);
        }
    };
    std::vector<kind_metric> metrics;
    for (const auto& s : p.sources()) {
        metrics.clear();
        s->kind_metrics(metrics);
        add(label("source", s->name()), metrics);
    }
    for (const auto& k : p.sinks()) {
        metrics.clear();
        k->kind_metrics(metrics);
        add(label("sink", k->name()), metrics);
    }
    for (const auto& f : families) {
        w.header(f.first.family, f.first.type, f.first.help);
        for (const auto& [labels, m] : f.samples) {
            if (m.histogram != nullptr) {
                write_histogram(w, std::string(m.family), labels, *m.histogram);
            } else {
                w.sample(m.family, labels, m.value);
            }
        }
    }
}

// ,"metrics":{"key":value,...} of one component's kind_metric figures (nothing without any).
void append_kind_metrics_json(std::string& out, const std::vector<kind_metric>& metrics) {
    if (metrics.empty()) {
        return;
    }
    out += ",\"metrics\":{";
    bool first = true;
    for (const auto& m : metrics) {
        out += first ? "\"" : ",\"";
        first = false;
        if (m.histogram != nullptr) {
            const std::vector<uint64_t> counts = m.histogram->counts();
            fmt::format_to(std::back_inserter(out), "{}_p50_seconds\":{:.6f},\"{}_p99_seconds\":{:.6f}",
                           m.key, histogram_quantile(counts, 0.5), m.key,
                           histogram_quantile(counts, 0.99));
        } else {
            fmt::format_to(std::back_inserter(out), "{}\":{}", m.key, m.value);
        }
    }
    out += '}';
}

}  // namespace

std::string render_prometheus(const pipeline& p) {
    const queue_stats q = p.queue().stats();
    prom_writer w;
    w.header("sluice_queue_events", "gauge", "Events in the queue.");
    w.sample("sluice_queue_events", q.events);
    w.header("sluice_queue_bytes", "gauge", "Bytes the queued events cost in memory.");
    w.sample("sluice_queue_bytes", q.bytes);
    w.header("sluice_queue_max_events", "gauge", "The queue's limit in events.");
    w.sample("sluice_queue_max_events", q.max_events);
    w.header("sluice_queue_max_bytes", "gauge", "The queue's limit in bytes.");
    w.sample("sluice_queue_max_bytes", q.max_bytes);
    w.header("sluice_queue_oldest_event_age_seconds", "gauge", "Age of the oldest queued event.");
    w.sample("sluice_queue_oldest_event_age_seconds", q.oldest_age_seconds);

    const auto& sinks = p.sinks();
    w.header("sluice_sink_lag_events", "gauge", "Events a sink has not written yet.");
    for (size_t k = 0; k < sinks.size(); ++k) {
        w.sample("sluice_sink_lag_events", label("sink", sinks[k]->name()), q.sinks[k].events);
    }
    w.header("sluice_sink_lag_bytes", "gauge", "Bytes a sink has not written yet.");
    for (size_t k = 0; k < sinks.size(); ++k) {
        w.sample("sluice_sink_lag_bytes", label("sink", sinks[k]->name()), q.sinks[k].bytes);
    }
    w.header("sluice_sink_lag_seconds", "gauge", "Age of the oldest event a sink has not written.");
    for (size_t k = 0; k < sinks.size(); ++k) {
        w.sample("sluice_sink_lag_seconds", label("sink", sinks[k]->name()), q.sinks[k].seconds);
    }

    const auto& sources = p.sources();
    auto per_source = [&](std::string_view name, std::string_view type, std::string_view help,
                          auto value) {
        w.header(name, type, help);
        for (const auto& s : sources) {
            w.sample(name, label("source", s->name()), value(*s));
        }
    };
    per_source("sluice_source_events_total", "counter", "Events read, dropped ones included.",
               [](const source& s) { return read(s.counters().events_total); });
    per_source("sluice_source_bytes_total", "counter", "Bytes read.",
               [](const source& s) { return read(s.counters().bytes_total); });
    per_source("sluice_source_paused", "gauge", "1 while the source is paused by backpressure.",
               [](const source& s) { return s.counters().paused.load() ? 1 : 0; });
    per_source("sluice_source_backpressure_seconds_total", "counter",
               "Time the source spent paused by backpressure.",
               [](const source& s) { return paused_seconds(s.counters()); });
    per_source("sluice_events_truncated_total", "counter", "Lines cut to max_line_bytes.",
               [](const source& s) { return read(s.counters().truncated_total); });
    per_source("sluice_decode_errors_total", "counter", "Events kept as text: undecodable.",
               [](const source& s) { return read(s.counters().decode_errors_total); });
    per_source("sluice_source_errors_total", "counter",
               "Exceptions that ended a coroutine of the source (each loop is restarted).",
               [](const source& s) { return read(s.counters().errors_total); });

    auto per_connection_source = [&](std::string_view name, std::string_view type,
                                     std::string_view help, auto value) {
        w.header(name, type, help);
        for (const auto& s : sources) {
            if (const connection_counters* c = s->connections()) {
                w.sample(name, label("source", s->name()), value(*c));
            }
        }
    };
    per_connection_source("sluice_source_connections", "gauge", "Connections open now.",
                          [](const connection_counters& c) { return read(c.open); });
    per_connection_source("sluice_source_idle_timeouts_total", "counter",
                          "Connections closed after idle_timeout without a complete line.",
                          [](const connection_counters& c) { return read(c.idle_closed); });
    w.header("sluice_source_connections_rejected_total", "counter",
             "Connections refused or cut off before their first line, by reason.");
    for (const auto& s : sources) {
        if (const connection_counters* c = s->connections()) {
            for (const auto& [reason, n] : {std::pair{"max_connections", &c->rejected_limit},
                                            std::pair{"tls", &c->rejected_tls}}) {
                w.sample("sluice_source_connections_rejected_total",
                         label("source", s->name()) + "," + label("reason", reason), read(*n));
            }
        }
    }

    auto per_file_source = [&](std::string_view name, std::string_view type,
                               std::string_view help, auto value) {
        w.header(name, type, help);
        for (const auto& s : sources) {
            if (const file_counters* f = s->files()) {
                w.sample(name, label("source", s->name()), value(*f));
            }
        }
    };
    per_file_source("sluice_file_watched", "gauge", "Files open now, rotated ones included.",
                    [](const file_counters& f) { return read(f.watched); });
    per_file_source("sluice_file_behind_bytes", "gauge", "Bytes of the files not read yet.",
                    [](const file_counters& f) { return read(f.behind_bytes); });
    w.header("sluice_file_rotations_total", "counter", "Rotations seen, by kind.");
    for (const auto& s : sources) {
        if (const file_counters* f = s->files()) {
            for (const auto& [kind, n] : {std::pair{"rename", &f->rotations_rename},
                                          std::pair{"truncate", &f->rotations_truncate},
                                          std::pair{"delete", &f->rotations_delete}}) {
                w.sample("sluice_file_rotations_total",
                         label("source", s->name()) + "," + label("kind", kind), read(*n));
            }
        }
    }

    w.header("sluice_events_dropped_total", "counter", "Events dropped, by source and reason.");
    for (const auto& s : sources) {
        for (auto reason : {drop_reason::queue_full, drop_reason::evicted, drop_reason::kernel}) {
            w.sample("sluice_events_dropped_total",
                     label("source", s->name()) + "," + label("reason", to_string(reason)),
                     p.queue().dropped(s->id(), reason));
        }
    }

    auto per_sink = [&](std::string_view name, std::string_view help, auto value) {
        w.header(name, "counter", help);
        for (const auto& k : sinks) {
            w.sample(name, label("sink", k->name()), value(k->counters()));
        }
    };
    per_sink("sluice_sink_events_total", "Events written.",
             [](const sink_counters& c) { return read(c.events_total); });
    per_sink("sluice_sink_batches_total", "Batches written.",
             [](const sink_counters& c) { return read(c.batches_total); });
    per_sink("sluice_sink_errors_total", "Failed write attempts.",
             [](const sink_counters& c) { return read(c.errors_total); });
    per_sink("sluice_sink_retries_total", "Writes retried after a backoff.",
             [](const sink_counters& c) { return read(c.retries_total); });
    w.header("sluice_sink_up", "gauge", "1 unless the sink is failed (a permanent error).");
    for (const auto& k : sinks) {
        w.sample("sluice_sink_up", label("sink", k->name()), k->failed() ? 0 : 1);
    }

    auto per_sink_histogram = [&](const std::string& name, std::string_view help,
                                  const duration_histogram sink_counters::*member) {
        w.header(name, "histogram", help);
        for (const auto& k : sinks) {
            write_histogram(w, name, label("sink", k->name()), k->counters().*member);
        }
    };
    per_sink_histogram("sluice_sink_batch_duration_seconds", "Time to write one batch.",
                       &sink_counters::batch_duration);
    per_sink_histogram("sluice_sink_latency_seconds",
                       "Per event, from its receive time to written by the sink.",
                       &sink_counters::latency);

    write_kind_metrics(w, p);

    w.header("process_resident_memory_bytes", "gauge", "Resident memory of this process.");
    w.sample("process_resident_memory_bytes", resident_memory_bytes());
    return w.take();
}

std::string render_health(const pipeline& p) {
    std::string out = "ok\n";
    for (const auto& k : p.sinks()) {
        if (k->state() != sink_state::ok) {
            fmt::format_to(std::back_inserter(out), "sink {} {}: {}\n", k->name(),
                           to_string(k->state()), k->last_error());
        }
    }
    return out;
}

std::string not_ready_reasons(const pipeline& p) {
    std::string out;
    for (const auto& k : p.sinks()) {
        if (k->failed()) {
            fmt::format_to(std::back_inserter(out), "sink {} failed: {}\n", k->name(),
                           k->last_error());
        }
    }
    if (p.queue().blocked_guess()) {
        const queue_stats q = p.queue().stats();
        fmt::format_to(std::back_inserter(out),
                       "queue full: {} of {} events, {} of {} bytes; sources are paused\n",
                       q.events, q.max_events, q.bytes, q.max_bytes);
    }
    return out;
}

std::string render_status_json(const pipeline& p) {
    const queue_stats q = p.queue().stats();
    std::string out;
    auto o = std::back_inserter(out);
    fmt::format_to(o,
                   "{{\"version\":\"{}\",\"uptime_seconds\":{:.3f},"
                   "\"process_resident_memory_bytes\":{},\"io_threads\":{},"
                   "\"queue\":{{\"events\":{},\"bytes\":{},\"max_events\":{},\"max_bytes\":{},"
                   "\"oldest_event_age_seconds\":{:.6f},\"when_full\":\"{}\",\"blocked\":{}}},",
                   SLUICE_VERSION, static_cast<double>(unix_now_ns() - p.started_unix_ns()) / 1e9,
                   resident_memory_bytes(), p.io_threads(), q.events, q.bytes, q.max_events, q.max_bytes,
                   q.oldest_age_seconds, to_string(p.queue().config().when_full), q.blocked);
    out += "\"sources\":[";
    bool first = true;
    for (size_t i = 0; i < p.sources().size(); ++i) {
        const auto& s = p.sources()[i];
        const auto& c = s->counters();
        out += first ? "" : ",";
        first = false;
        out += "{\"name\":";
        append_json_string(out, s->name());
        out += ",\"type\":";
        append_json_string(out, p.cfg().sources[i].type());
        const file_counters none;
        const file_counters& files = s->files() != nullptr ? *s->files() : none;
        fmt::format_to(o, ",\"files_watched\":{},\"files_behind_bytes\":{}", read(files.watched),
                       read(files.behind_bytes));
        const connection_counters no_connections;
        const connection_counters& conns =
            s->connections() != nullptr ? *s->connections() : no_connections;
        fmt::format_to(o,
                       ",\"connections\":{},\"connections_rejected\":{{\"max_connections\":{},"
                       "\"tls\":{}}},\"idle_timeouts_total\":{},\"errors_total\":{}",
                       read(conns.open), read(conns.rejected_limit), read(conns.rejected_tls),
                       read(conns.idle_closed), read(c.errors_total));
        fmt::format_to(o,
                       ",\"events_total\":{},\"bytes_total\":{},\"paused\":{},"
                       "\"backpressure_seconds_total\":{:.6f},\"truncated_total\":{},"
                       "\"decode_errors_total\":{},\"dropped\":{{\"queue_full\":{},"
                       "\"evicted\":{},\"kernel\":{}}}}}",
                       read(c.events_total), read(c.bytes_total), c.paused.load(),
                       paused_seconds(c), read(c.truncated_total), read(c.decode_errors_total),
                       p.queue().dropped(s->id(), drop_reason::queue_full),
                       p.queue().dropped(s->id(), drop_reason::evicted),
                       p.queue().dropped(s->id(), drop_reason::kernel));
        out.pop_back();  // the source's closing brace: its kind's figures go in first
        std::vector<kind_metric> metrics;
        s->kind_metrics(metrics);
        append_kind_metrics_json(out, metrics);
        out += '}';
    }
    out += "],\"sinks\":[";
    first = true;
    for (size_t k = 0; k < p.sinks().size(); ++k) {
        const auto& s = *p.sinks()[k];
        const auto& c = s.counters();
        out += first ? "" : ",";
        first = false;
        out += "{\"name\":";
        append_json_string(out, s.name());
        fmt::format_to(o,
                       ",\"events_total\":{},\"batches_total\":{},\"errors_total\":{},"
                       "\"retries_total\":{},\"lag_events\":{},\"lag_bytes\":{},"
                       "\"lag_seconds\":{:.6f},\"state\":\"{}\",\"failed\":{},\"last_error\":",
                       read(c.events_total), read(c.batches_total), read(c.errors_total),
                       read(c.retries_total), q.sinks[k].events, q.sinks[k].bytes,
                       q.sinks[k].seconds, to_string(s.state()), s.failed());
        append_json_string(out, s.last_error());
        const std::vector<uint64_t> latency = c.latency.counts();
        fmt::format_to(o, ",\"latency_p50_seconds\":{:.6f},\"latency_p99_seconds\":{:.6f},"
                          "\"latency_buckets\":[{}]",
                       histogram_quantile(latency, 0.5), histogram_quantile(latency, 0.99),
                       fmt::join(latency, ","));
        std::vector<kind_metric> metrics;
        s.kind_metrics(metrics);
        append_kind_metrics_json(out, metrics);
        out += '}';
    }
    out += "]}\n";
    return out;
}

}  // namespace sluice
