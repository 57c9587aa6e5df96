// batch_decoder: runs a source's codec over every event of a sealed batch and records the
// decoded columns as the batch's meta. One per source (it holds parser state); io thread.
#pragma once

#include <cstdint>
#include <string>

#include "ingest/codecs/codec.h"
#include "queue/event.h"

namespace sluice {

class batch_decoder {
public:
    explicit batch_decoder(codec_kind kind) : kind_(kind) {}

    codec_kind kind() const { return kind_; }
    // Decodes every event of `b`. Returns how many did not decode (kept as plain text).
    uint64_t decode(batch& b);

private:
    codec_kind kind_;
    json_decoder json_;
    decoded_event decoded_;
};

}  // namespace sluice
