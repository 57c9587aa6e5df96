#include "sinks/nats_sink.h"

#include <cstring>
#include <random>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/clock.h"
#include "common/error.h"
#include "sinks/event_json.h"

namespace sluice {

namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

// A packed message stays under this (the server refuses payloads over its max_payload, 1 MiB
// by default): events are added while the estimate of the message fits.
constexpr size_t packed_target_bytes = 512 * 1024;
constexpr int64_t stall_wait_ms = 100;
constexpr auto wait_slice = milliseconds(100);
// After every ack timeout has passed, how long a write still waits for nats.c to report.
constexpr auto ack_grace = std::chrono::seconds(5);

std::string random_run_id() {
    std::random_device rd;
    const uint64_t id = (static_cast<uint64_t>(rd()) << 32) ^ rd();
    return fmt::format("{:016x}", id);
}

bool subject_safe(char c) {
    return c > ' ' && c != '.' && c != '*' && c != '>' && c != 0x7f;
}

jsRetentionPolicy to_js(nats_retention r) {
    switch (r) {
        case nats_retention::limits:
            return js_LimitsPolicy;
        case nats_retention::interest:
            return js_InterestPolicy;
        case nats_retention::workqueue:
            break;
    }
    return js_WorkQueuePolicy;
}

}  // namespace

std::string nats_subject_filter(std::string_view subject_template) {
    std::string out;
    for (size_t i = 0; i < subject_template.size(); ++i) {
        if (subject_template[i] == '{') {
            const size_t close = subject_template.find('}', i);
            if (close != std::string_view::npos) {
                out += '*';
                i = close;
                continue;
            }
        }
        out += subject_template[i];
    }
    return out;
}

std::string nats_subject_for(std::string_view subject_template, std::string_view source) {
    std::string safe(source);
    for (char& c : safe) {
        if (!subject_safe(c)) {
            c = '_';
        }
    }
    std::string out(subject_template);
    for (size_t at = out.find("{source}"); at != std::string::npos;
         at = out.find("{source}", at + safe.size())) {
        out.replace(at, std::strlen("{source}"), safe);
    }
    return out;
}

std::optional<nats_retention> parse_nats_retention(std::string_view s) {
    if (s == "workqueue") {
        return nats_retention::workqueue;
    }
    if (s == "limits") {
        return nats_retention::limits;
    }
    if (s == "interest") {
        return nats_retention::interest;
    }
    return std::nullopt;
}

nats_sink::nats_sink(std::string name, batch_config batch, nats_sink_config config,
                     std::vector<std::string> source_names)
    : sink(std::move(name), batch),
      config_(std::move(config)),
      source_names_(std::move(source_names)),
      run_id_(random_run_id()),
      client_("sink " + this->name(), config_.connection),
      stream_log_(10'000'000'000) {
    jsOptions o;
    jsOptions_Init(&o);
    o.PublishAsync.MaxPending = config_.max_in_flight;
    o.PublishAsync.AckHandler = &nats_sink::on_ack;
    o.PublishAsync.AckHandlerClosure = this;
    o.PublishAsync.StallWait = stall_wait_ms;
    js_ = client_.jetstream(o);
    spdlog::info("Sink {} publishing to stream {} as {} ({} event(s) per message).", this->name(),
                 config_.stream, config_.subject, config_.events_per_message);
}

nats_sink::~nats_sink() {
    stop_thread();
    // Take back what still awaits an ack, so that no handler runs for it, then close. (nats.c
    // 3.4.1 crashes in js_PublishAsyncGetPendingList on a context that never published.)
    natsMsgList pending{nullptr, 0};
    if (read(messages_total_) > 0 &&
        js_PublishAsyncGetPendingList(&pending, js_.get()) == NATS_OK) {
        natsMsgList_Destroy(&pending);
    }
    client_.close();
}

const std::string& nats_sink::subject_for(const batch& b) {
    const std::string& source = source_label(b, source_names_);
    auto it = subjects_.find(source);
    if (it == subjects_.end()) {
        it = subjects_.emplace(source, nats_subject_for(config_.subject, source)).first;
    }
    return it->second;
}

void nats_sink::plan(std::span<const batch_ptr> batches, write_state& w) {
    std::vector<planned>& out = w.plan;
    out.clear();
    const bool json = config_.format == nats_sink_format::json;
    planned cur{0, 0, 0};
    size_t cur_bytes = 0;
    const std::string* cur_source = nullptr;
    for (size_t bi = 0; bi < batches.size(); ++bi) {
        const batch& b = *batches[bi];
        // A message may go on into the next batch while the events keep their subject (the
        // same source): batches are small when the sources trickle or are paused.
        const std::string* source = &source_label(b, source_names_);
        if (cur.count > 0 && *source != *cur_source) {
            out.push_back(cur);
            cur.count = 0;
        }
        cur_source = source;
        for (size_t i = 0; i < b.event_count(); ++i) {
            const std::string_view line = b.line(i);
            // A text event of several lines (a joined stack trace) cannot share a message whose
            // events are split at '\n': it goes alone.
            const bool alone = !json && line.find('\n') != std::string_view::npos;
            const size_t estimate = json ? 2 * line.size() + 256 : line.size() + 1;
            if (cur.count > 0 && (alone || cur.count >= config_.events_per_message ||
                                  cur_bytes + estimate > packed_target_bytes)) {
                out.push_back(cur);
                cur.count = 0;
            }
            if (cur.count == 0) {
                cur.batch = static_cast<uint32_t>(bi);
                cur.first = static_cast<uint32_t>(i);
                cur_bytes = 0;
            }
            ++cur.count;
            cur_bytes += estimate;
            if (alone) {
                out.push_back(cur);
                cur.count = 0;
            }
        }
    }
    if (cur.count > 0) {
        out.push_back(cur);
    }
}

bool nats_sink::ensure_stream() {
    if (stream_ready_) {
        return true;
    }
    const std::string filter = nats_subject_filter(config_.subject);
    jsStreamInfo* raw = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    natsStatus s = js_GetStreamInfo(&raw, js_.get(), config_.stream.c_str(), nullptr, &code);
    nats_ptr<jsStreamInfo> info(raw);
    if (s == NATS_OK) {
        bool captured = false;
        for (int i = 0; info->Config != nullptr && i < info->Config->SubjectsLen; ++i) {
            captured = captured || filter == info->Config->Subjects[i];
        }
        uint64_t suppressed = 0;
        if (!captured && stream_log_.should_log(suppressed)) {
            spdlog::warn("Sink {}: stream {} does not list subject {}; publishing anyway (it may "
                         "capture it with a wider filter).",
                         name(), config_.stream, filter);
        }
        stream_ready_ = true;
        return true;
    }
    if (s != NATS_NOT_FOUND && code != JSStreamNotFoundErr) {
        log_failure("stream " + config_.stream + ": " + nats_error_text(s, code));
        return false;
    }
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = config_.stream.c_str();
    const char* subjects[1] = {filter.c_str()};
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = config_.replicas;
    cfg.Retention = to_js(config_.retention);
    cfg.Duplicates = config_.duplicate_window.count();
    if (config_.stream_max_bytes > 0) {
        cfg.MaxBytes = static_cast<int64_t>(config_.stream_max_bytes);
        cfg.Discard = js_DiscardNew;
    }
    if (config_.stream_max_msgs > 0) {
        cfg.MaxMsgs = static_cast<int64_t>(config_.stream_max_msgs);
        cfg.Discard = js_DiscardNew;
    }
    raw = nullptr;
    code = static_cast<jsErrCode>(0);
    s = js_AddStream(&raw, js_.get(), &cfg, nullptr, &code);
    info.reset(raw);
    if (s != NATS_OK && code != JSStreamNameExistErr) {
        log_failure("creating stream " + config_.stream + ": " + nats_error_text(s, code));
        return false;
    }
    spdlog::info("Sink {}: created stream {} ({} replica(s), subjects {}).", name(),
                 config_.stream, config_.replicas, filter);
    stream_ready_ = true;
    return true;
}

bool nats_sink::publish(std::span<const batch_ptr> batches, size_t slot, size_t m,
                        std::string& why) {
    write_state& w = writes_[slot];
    const planned& p = w.plan[m];
    const batch& b = *batches[p.batch];
    const std::string& source = source_label(b, source_names_);
    std::string_view data;
    if (config_.format == nats_sink_format::text && p.first + p.count <= b.event_count()) {
        // Text events of one batch lie back to back in its buffer as "line\n": the message is
        // that stretch less its last '\n', copied once, by natsMsg_Create.
        const auto& events = b.events();
        const event_record& last = events[p.first + p.count - 1];
        data = {b.buffer().data() + events[p.first].offset,
                last.offset + last.length - events[p.first].offset};
    } else {
        payload_.clear();
        size_t bi = p.batch;
        size_t k = p.first;
        for (uint32_t n = 0; n < p.count; ++n, ++k) {
            while (k >= batches[bi]->event_count()) {  // on into the next batch (plan())
                ++bi;
                k = 0;
            }
            if (n > 0) {
                payload_ += '\n';
            }
            if (config_.format == nats_sink_format::json) {
                append_event_json(payload_, *batches[bi], k, source, true);
            } else {
                payload_.append(batches[bi]->line(k));
            }
        }
        data = payload_;
    }
    natsMsg* msg = nullptr;
    natsStatus s = natsMsg_Create(&msg, subject_for(b).c_str(), nullptr, data.data(),
                                  static_cast<int>(data.size()));
    if (s == NATS_OK && p.count > 1) {
        s = natsMsgHeader_Set(msg, "Sluice-Events", std::to_string(p.count).c_str());
    }
    if (s != NATS_OK) {
        natsMsg_Destroy(msg);
        why = nats_error_text(s);
        return false;
    }
    char id[64];  // "{run}-{write}-{index}": 16 + 2 + up to 20 + 20 characters
    const auto end = fmt::format_to_n(id, sizeof id - 1, "{}-{}-{}", run_id_, w.number, m);
    *end.out = '\0';
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = id;
    po.MaxWait = duration_cast<milliseconds>(config_.ack_timeout).count();
    natsMsg* const key = msg;
    {
        std::lock_guard lock(mutex_);
        in_flight_.emplace(key, std::pair{slot, m});
        w.outcomes[m] = outcome::pending;
        w.sent_ns[m] = mono_now_ns();
        ++w.in_flight;
    }
    for (;;) {
        s = js_PublishMsgAsync(js_.get(), &msg, &po);
        // A timeout with the message still ours: max_in_flight publishes await their acks
        // (nats.c waited StallWait for one to come in). Keep waiting: that is backpressure.
        if (s == NATS_TIMEOUT && msg != nullptr && !aborted()) {
            continue;
        }
        break;
    }
    if (s == NATS_OK) {
        bump(messages_total_);
        return true;
    }
    {
        std::lock_guard lock(mutex_);
        in_flight_.erase(key);
        w.outcomes[m] = outcome::failed;
        --w.in_flight;
    }
    natsMsg_Destroy(msg);
    bump(publish_errors_total_);
    why = nats_error_text(s);
    return false;
}

void nats_sink::on_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
    auto* self = static_cast<nats_sink*>(closure);
    {
        std::lock_guard lock(self->mutex_);
        const auto it = self->in_flight_.find(msg);
        if (it != self->in_flight_.end()) {
            write_state& w = self->writes_[it->second.first];
            const size_t m = it->second.second;
            self->in_flight_.erase(it);
            if (pa != nullptr) {
                w.outcomes[m] = outcome::acked;
                bump(self->acks_total_);
                if (pa->Duplicate) {
                    bump(self->duplicates_total_);
                }
                self->ack_latency_.observe(static_cast<double>(mono_now_ns() - w.sent_ns[m]) /
                                           1e9);
            } else {
                w.outcomes[m] = outcome::failed;
                self->failure_seen_.store(true, std::memory_order_release);
                bump(self->publish_errors_total_);
                if (w.first_error.empty()) {
                    const natsStatus err = pae != nullptr ? pae->Err : NATS_ERR;
                    w.first_error = natsStatus_GetText(err);
                    if (pae != nullptr && pae->ErrText != nullptr && *pae->ErrText != '\0' &&
                        w.first_error != pae->ErrText) {
                        w.first_error += ": ";
                        w.first_error += pae->ErrText;
                    }
                }
            }
            if (--w.in_flight == 0) {
                self->acked_cv_.notify_all();
            }
        }
    }
    natsMsg_Destroy(msg);
}

void nats_sink::wait_for_acks(size_t slot) {
    write_state& w = writes_[slot];
    std::unique_lock lock(mutex_);
    const auto deadline = std::chrono::steady_clock::now() + config_.ack_timeout + ack_grace;
    while (w.in_flight != 0 && !aborted() && std::chrono::steady_clock::now() < deadline) {
        acked_cv_.wait_for(lock, wait_slice);
    }
    if (w.in_flight == 0) {
        return;
    }
    // nats.c still holds them (aborted, or no ack and no timeout came back): take them back
    // as failed, the other write's too (nats.c hands back all it holds); an ack that comes in
    // later finds nothing and is dropped by nats.c.
    lock.unlock();
    natsMsgList pending{nullptr, 0};
    const bool taken = js_PublishAsyncGetPendingList(&pending, js_.get()) == NATS_OK;
    lock.lock();
    for (int i = 0; taken && i < pending.Count; ++i) {
        const auto it = in_flight_.find(pending.Msgs[i]);
        if (it != in_flight_.end()) {
            write_state& of = writes_[it->second.first];
            of.outcomes[it->second.second] = outcome::failed;
            --of.in_flight;
            if (of.first_error.empty()) {
                of.first_error = "no acknowledgement within ack_timeout";
            }
            in_flight_.erase(it);
        }
    }
    // Any left are in a handler right now: it reports them in a moment.
    while (w.in_flight != 0) {
        acked_cv_.wait_for(lock, wait_slice);
    }
    lock.unlock();
    if (taken) {
        natsMsgList_Destroy(&pending);
    }
}

bool nats_sink::send(std::span<const batch_ptr> batches, size_t slot, std::string& why) {
    write_state& w = writes_[slot];
    if (!client_.connected()) {
        why = "not connected to any NATS server";
        return false;
    }
    if (!ensure_stream()) {
        why = "stream " + config_.stream + " not ready";
        return false;
    }
    {
        std::lock_guard lock(mutex_);
        w.first_error.clear();
        failure_seen_.store(false, std::memory_order_release);
    }
    for (size_t m = 0; m < w.plan.size() && !aborted(); ++m) {
        if (failure_seen_.load(std::memory_order_acquire)) {
            // JetStream refused one (a full stream, no leader): the rest would most likely be
            // refused too; finish_impl waits for what is in flight and the base retries after
            // its backoff.
            break;
        }
        // No handler runs for m: nothing of this write was in flight when the send began,
        // and m has not been published since (the handler writes only the other elements).
        const outcome before = w.outcomes[m];
        if (before == outcome::acked || before == outcome::pending) {
            continue;
        }
        if (before != outcome::none) {
            bump(resent_total_);
        }
        if (!publish(batches, slot, m, why)) {
            return false;  // the connection is gone, or the message is too large: do not go on
        }
    }
    return true;
}

write_status nats_sink::write_impl(std::span<const batch_ptr> batches) {
    const size_t slot = write_slot();
    write_state& w = writes_[slot];
    resume_point& at = progress();
    if (at.done == 0) {
        // New batches (the base clears the progress after each good write): a new write
        // number, so the message ids are new; a retry of these batches keeps them.
        w.number = ++write_number_;
        w.finishing = false;
        plan(batches, w);
        std::lock_guard lock(mutex_);
        in_flight_.reserve(in_flight_.size() + std::min<size_t>(w.plan.size(),
                                                                config_.max_in_flight) + 1);
        w.outcomes.assign(w.plan.size(), outcome::none);
        w.sent_ns.assign(w.plan.size(), 0);
        w.in_flight = 0;
        at.done = 1;
    }
    std::string why;
    if (send(batches, slot, why)) {
        return write_status::ok;  // out; finish_impl waits for the acknowledgements
    }
    wait_for_acks(slot);
    return outcome_of(slot, why);
}

write_status nats_sink::finish_impl(std::span<const batch_ptr> batches) {
    const size_t slot = write_slot();
    write_state& w = writes_[slot];
    std::string why;
    // A retry (the last wait ended with messages not acknowledged): send them again first.
    const bool retry = w.finishing;
    w.finishing = true;
    if (retry && !send(batches, slot, why)) {
        wait_for_acks(slot);
        return outcome_of(slot, why);
    }
    wait_for_acks(slot);
    return outcome_of(slot, {});
}

write_status nats_sink::outcome_of(size_t slot, const std::string& refused) {
    write_state& w = writes_[slot];
    size_t acked = 0;
    std::string error;
    {
        std::lock_guard lock(mutex_);
        for (outcome o : w.outcomes) {
            acked += o == outcome::acked ? 1 : 0;
        }
        error = refused.empty() ? w.first_error : refused;
    }
    if (acked == w.plan.size()) {
        return write_status::ok;
    }
    progress().done = 1 + acked;  // progress for the base's backoff (and done != 0: a retry)
    // The stream may have gone (deleted, recreated elsewhere): check it before the retry.
    stream_ready_ = false;
    log_failure(fmt::format("{} of {} message(s) to stream {} not acknowledged: {}",
                            w.plan.size() - acked, w.plan.size(), config_.stream,
                            error.empty() ? "aborted" : error));
    if (!refused.empty() && refused.find(natsStatus_GetText(NATS_MAX_PAYLOAD)) != std::string::npos) {
        return write_status::permanent;  // an event larger than the server takes
    }
    return write_status::retry;
}

size_t nats_sink::in_flight() const {
    std::lock_guard lock(mutex_);
    return in_flight_.size();
}

void nats_sink::kind_metrics(std::vector<kind_metric>& out) const {
    out.push_back({"sluice_nats_sink_in_flight", "in_flight", "gauge",
                   "Messages published and not acknowledged yet.",
                   static_cast<double>(in_flight())});
    out.push_back({"sluice_nats_sink_messages_total", "messages_total", "counter",
                   "Messages handed to JetStream, resent ones included.",
                   static_cast<double>(read(messages_total_))});
    out.push_back({"sluice_nats_sink_acks_total", "acks_total", "counter",
                   "Messages JetStream acknowledged.", static_cast<double>(read(acks_total_))});
    out.push_back({"sluice_nats_sink_duplicates_total", "duplicates_total", "counter",
                   "Acknowledged messages the stream reported as duplicates (a resent one "
                   "that had arrived).",
                   static_cast<double>(read(duplicates_total_))});
    out.push_back({"sluice_nats_sink_resent_total", "resent_total", "counter",
                   "Messages published again by a retry.", static_cast<double>(read(resent_total_))});
    out.push_back({"sluice_nats_sink_publish_errors_total", "publish_errors_total", "counter",
                   "Messages not acknowledged: an error, a timeout or a refused publish.",
                   static_cast<double>(read(publish_errors_total_))});
    out.push_back({"sluice_nats_sink_ack_seconds", "ack_seconds", "histogram",
                   "From publishing a message to its acknowledgement.", 0, &ack_latency_});
    client_.connection_metrics(out, true);
}

}  // namespace sluice
