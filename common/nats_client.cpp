#include "common/nats_client.h"

#include <spdlog/spdlog.h>

#include "common/error.h"

namespace sluice {

namespace {

constexpr int64_t reconnect_wait_ms = 500;
constexpr int reconnect_buffer_bytes = 16 << 20;  // published while disconnected, re-sent after

std::string connected_url(natsConnection* nc) {
    char url[256] = {0};
    if (natsConnection_GetConnectedUrl(nc, url, sizeof url) != NATS_OK) {
        return "?";
    }
    return url;
}

void check(natsStatus s, const std::string& owner, const char* what) {
    if (s != NATS_OK) {
        throw error(owner + ": " + what + ": " + nats_error_text(s));
    }
}

}  // namespace

std::string nats_error_text(natsStatus s, jsErrCode code) {
    std::string out = natsStatus_GetText(s);
    if (code != 0) {
        out += " (JetStream error " + std::to_string(static_cast<int>(code)) + ")";
    }
    const char* last = nats_GetLastError(nullptr);
    if (last != nullptr && *last != '\0' && out.find(last) == std::string::npos) {
        out += ": ";
        out += last;
    }
    return out;
}

nats_client::nats_client(std::string owner, const nats_connection_config& config)
    : owner_(std::move(owner)) {
    natsOptions* raw = nullptr;
    check(natsOptions_Create(&raw), owner_, "options");
    options_.reset(raw);
    natsOptions* o = options_.get();
    std::vector<const char*> servers;
    for (const auto& s : config.servers) {
        servers.push_back(s.c_str());
    }
    check(natsOptions_SetServers(o, servers.data(), static_cast<int>(servers.size())), owner_,
          "servers");
    check(natsOptions_SetName(o, ("sluice " + owner_).c_str()), owner_, "name");
    // Every listed server, in random order (agents spread over the nodes), and reconnects for
    // ever: a cluster node that dies is a reason to move to another one, never to give up.
    check(natsOptions_SetNoRandomize(o, false), owner_, "randomize");
    check(natsOptions_SetMaxReconnect(o, -1), owner_, "max reconnect");
    check(natsOptions_SetReconnectWait(o, reconnect_wait_ms), owner_, "reconnect wait");
    check(natsOptions_SetReconnectBufSize(o, reconnect_buffer_bytes), owner_, "reconnect buffer");
    check(natsOptions_SetRetryOnFailedConnect(o, true, &nats_client::on_connected, this), owner_,
          "retry on failed connect");
    check(natsOptions_SetDisconnectedCB(o, &nats_client::on_disconnected, this), owner_,
          "disconnected handler");
    check(natsOptions_SetReconnectedCB(o, &nats_client::on_reconnected, this), owner_,
          "reconnected handler");
    check(natsOptions_SetErrorHandler(o, &nats_client::on_error, this), owner_, "error handler");
    check(natsOptions_SetClosedCB(o, &nats_client::on_closed, this), owner_, "closed handler");
    if (config.tls.enabled()) {
        check(natsOptions_SetSecure(o, true), owner_, "tls");
        if (!config.tls.ca.empty()) {
            check(natsOptions_LoadCATrustedCertificates(o, config.tls.ca.c_str()), owner_,
                  ("tls ca " + config.tls.ca).c_str());
        }
        if (!config.tls.cert.empty()) {
            check(natsOptions_LoadCertificatesChain(o, config.tls.cert.c_str(),
                                                    config.tls.key.c_str()),
                  owner_, ("tls cert " + config.tls.cert).c_str());
        }
    }
    if (!config.creds.empty()) {
        check(natsOptions_SetUserCredentialsFromFiles(o, config.creds.c_str(), nullptr), owner_,
              ("creds " + config.creds).c_str());
    }
    natsConnection* nc = nullptr;
    const natsStatus s = natsConnection_Connect(&nc, o);
    connection_.reset(nc);
    if (s == NATS_OK) {
        counters_.connected.store(true, std::memory_order_relaxed);
        spdlog::info("NATS: {} connected to {}.", owner_, connected_url(nc));
    } else if (s == NATS_NOT_YET_CONNECTED) {
        spdlog::warn("NATS: {}: no server of {} answers yet; connecting in the background.",
                     owner_, fmt::join(config.servers, ", "));
    } else {
        connection_.reset();
        throw error(owner_ + ": connect: " + nats_error_text(s));
    }
}

nats_client::~nats_client() { close(); }

void nats_client::close() {
    if (connection_ == nullptr) {
        return;
    }
    natsConnection_Close(connection_.get());
    // nats.c delivers the disconnected and closed callbacks on a thread of its own after
    // Close returns; they use this object, so it must outlive them. The closed one comes last.
    std::unique_lock lock(closed_mutex_);
    if (!closed_cv_.wait_for(lock, std::chrono::seconds(5), [this] { return closed_; })) {
        spdlog::warn("NATS: {}: the connection did not report closing within 5 s.", owner_);
    }
}

void nats_client::on_closed(natsConnection*, void* closure) {
    auto* self = static_cast<nats_client*>(closure);
    std::lock_guard lock(self->closed_mutex_);
    self->closed_ = true;
    self->closed_cv_.notify_all();
}

nats_ptr<jsCtx> nats_client::jetstream(jsOptions& options) const {
    jsCtx* js = nullptr;
    check(natsConnection_JetStream(&js, connection_.get(), &options), owner_, "jetstream");
    return nats_ptr<jsCtx>(js);
}

bool nats_client::flush(int64_t timeout_ms) const {
    return natsConnection_FlushTimeout(connection_.get(), timeout_ms) == NATS_OK;
}

void nats_client::connection_metrics(std::vector<kind_metric>& out, bool of_sink) const {
    const nats_connection_counters& c = counters_;
    out.push_back({of_sink ? "sluice_nats_sink_connected" : "sluice_nats_source_connected",
                   "connected", "gauge", "1 while connected to a NATS server.",
                   c.connected.load(std::memory_order_relaxed) ? 1.0 : 0.0});
    out.push_back({of_sink ? "sluice_nats_sink_disconnects_total"
                           : "sluice_nats_source_disconnects_total",
                   "disconnects_total", "counter", "Connections to NATS lost.",
                   static_cast<double>(read(c.disconnects_total))});
    out.push_back({of_sink ? "sluice_nats_sink_reconnects_total"
                           : "sluice_nats_source_reconnects_total",
                   "reconnects_total", "counter", "Reconnections to NATS.",
                   static_cast<double>(read(c.reconnects_total))});
}

void nats_client::on_connected(natsConnection* nc, void* closure) {
    auto* self = static_cast<nats_client*>(closure);
    self->counters_.connected.store(true, std::memory_order_relaxed);
    spdlog::info("NATS: {} connected to {}.", self->owner_, connected_url(nc));
}

void nats_client::on_disconnected(natsConnection*, void* closure) {
    auto* self = static_cast<nats_client*>(closure);
    // nats.c also calls this when a first connect attempt fails while retrying: count only a
    // connection that was up.
    if (self->counters_.connected.exchange(false, std::memory_order_relaxed)) {
        bump(self->counters_.disconnects_total);
        spdlog::warn("NATS: {} disconnected; reconnecting.", self->owner_);
    }
}

void nats_client::on_reconnected(natsConnection* nc, void* closure) {
    auto* self = static_cast<nats_client*>(closure);
    self->counters_.connected.store(true, std::memory_order_relaxed);
    bump(self->counters_.reconnects_total);
    spdlog::info("NATS: {} reconnected to {}.", self->owner_, connected_url(nc));
}

void nats_client::on_error(natsConnection*, natsSubscription*, natsStatus err, void* closure) {
    auto* self = static_cast<nats_client*>(closure);
    spdlog::warn("NATS: {}: {}.", self->owner_, natsStatus_GetText(err));
}

}  // namespace sluice
