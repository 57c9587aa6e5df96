#include "ingest/codecs/batch_decoder.h"

#include "common/clock.h"

namespace sluice {

namespace {

// A view into the line at `base` (the batch buffer) as a text_ref.
text_ref ref_in_buffer(std::string_view v, const char* base) {
    if (v.data() == nullptr) {
        return {};
    }
    return {static_cast<uint32_t>(v.data() - base), static_cast<uint32_t>(v.size()), false};
}

// A decoded column: text the codec appended to the batch's extra text, else a view.
text_ref ref_of(std::string_view v, const std::optional<decoded_event::appended_text>& appended,
                const char* base) {
    if (appended) {
        return {static_cast<uint32_t>(appended->offset), static_cast<uint32_t>(appended->length),
                true};
    }
    return ref_in_buffer(v, base);
}

}  // namespace

uint64_t batch_decoder::decode(batch& b) {
    if (kind_ == codec_kind::text || b.empty()) {
        return 0;
    }
    const char* base = b.buffer().data();
    const int64_t now = unix_now_ns();
    auto& meta = b.meta();
    // A source may have recorded topics already; decoding fills in everything else.
    meta.resize(b.event_count());
    for (auto& m : meta) {
        const text_ref topic = m.topic;
        m = event_meta{};
        m.topic = topic;
    }
    uint64_t failures = 0;
    for (size_t i = 0; i < b.event_count(); ++i) {
        const std::string_view line = b.line(i);
        decoded_.reset();
        const size_t extra_before = b.extra().size();
        const bool ok = kind_ == codec_kind::json
                            ? json_.decode(line, decoded_, b.extra())
                            : decode_syslog(line, decoded_, b.extra(), now);
        if (!ok) {
            b.extra().resize(extra_before);
            ++failures;
            continue;
        }
        event_meta& m = meta[i];
        if (decoded_.ts_ns) {
            m.ts_ns = *decoded_.ts_ns;
        }
        m.severity = static_cast<int8_t>(decoded_.severity);
        m.facility = static_cast<int8_t>(decoded_.facility);
        m.host = ref_of(decoded_.host, decoded_.host_appended, base);
        m.app = ref_of(decoded_.app, decoded_.app_appended, base);
        m.procid = ref_in_buffer(decoded_.procid, base);
        m.msgid = ref_in_buffer(decoded_.msgid, base);
        m.message = ref_of(decoded_.message, decoded_.message_appended, base);
        switch (decoded_.fields) {
            case decoded_event::fields_where::none:
                break;
            case decoded_event::fields_where::line:
                m.fields = ref_in_buffer(line, base);
                break;
            case decoded_event::fields_where::appended:
                m.fields = {static_cast<uint32_t>(decoded_.fields_offset),
                            static_cast<uint32_t>(decoded_.fields_length), true};
                break;
        }
    }
    return failures;
}

}  // namespace sluice
