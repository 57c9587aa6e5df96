#include "ingest/tls.h"

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <asio/ssl/context.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/error.h"

namespace sluice {

namespace {

// Makes the errors name what the user wrote: "source app: tls.key '/etc/x.pem': ...".
struct tls_file {
    const std::string& owner;
    const char* key;
    const std::string& path;

    [[noreturn]] void fail(std::string_view why) const {
        ::ERR_clear_error();
        throw error(fmt::format("{}: tls.{} '{}': {}", owner, key, path, why));
    }

    // OpenSSL says "system lib" for a missing file; the system's own reason is clearer.
    void check_readable() const {
        std::FILE* f = std::fopen(path.c_str(), "rb");
        if (f == nullptr) {
            fail(fmt::format("cannot read: {}", std::strerror(errno)));
        }
        std::fclose(f);
    }
};

// OpenSSL's default asks for a passphrase on the terminal: a daemon must fail instead.
int no_passphrase(char*, int, int, void*) { return 0; }

void load_certificate(asio::ssl::context& ctx, const tls_file& cert) {
    cert.check_readable();
    asio::error_code ec;
    ctx.use_certificate_chain_file(cert.path, ec);
    if (ec) {
        cert.fail(fmt::format("not a PEM certificate: {}", ec.message()));
    }
}

void load_key(asio::ssl::context& ctx, const tls_file& key) {
    key.check_readable();
    asio::error_code ec;
    ctx.use_private_key_file(key.path, asio::ssl::context::pem, ec);
    const auto code = static_cast<unsigned long>(ec.value());
    if ((ec && ERR_GET_LIB(code) == ERR_LIB_X509 &&
         ERR_GET_REASON(code) == X509_R_KEY_VALUES_MISMATCH) ||
        (!ec && ::SSL_CTX_check_private_key(ctx.native_handle()) != 1)) {
        key.fail("does not match the certificate in tls.cert");
    }
    if (ec) {
        key.fail(fmt::format("not an unencrypted PEM private key: {}", ec.message()));
    }
}

void load_client_cas(asio::ssl::context& ctx, const tls_file& ca, bool required) {
    ca.check_readable();
    asio::error_code ec;
    ctx.load_verify_file(ca.path, ec);
    if (ec) {
        ca.fail(fmt::format("not a PEM certificate: {}", ec.message()));
    }
    // The CertificateRequest names these CAs, so a client with several certificates can pick.
    STACK_OF(X509_NAME)* names = ::SSL_load_client_CA_file(ca.path.c_str());
    if (names == nullptr) {
        ca.fail("holds no CA certificate");
    }
    ::SSL_CTX_set_client_CA_list(ctx.native_handle(), names);
    ctx.set_verify_mode(asio::ssl::verify_peer |
                        (required ? asio::ssl::verify_fail_if_no_peer_cert : 0));
    // OpenSSL refuses to resume a session of a verifying server without one.
    static constexpr unsigned char session_context[] = "sluice";
    ::SSL_CTX_set_session_id_context(ctx.native_handle(), session_context,
                                     sizeof session_context - 1);
}

// OpenSSL decodes a certificate's extensions (key identifiers, purposes) the first time a
// handshake needs them and caches them in the shared X509. Handshakes on several io threads
// would race to fill that cache; filling it now, before any thread shares the context, leaves
// them only reading it.
void cache_certificate_extensions(asio::ssl::context& ctx) {
    if (X509* cert = ::SSL_CTX_get0_certificate(ctx.native_handle())) {
        ::X509_check_purpose(cert, -1, 0);
    }
    STACK_OF(X509)* chain = nullptr;
    if (::SSL_CTX_get0_chain_certs(ctx.native_handle(), &chain) == 1 && chain != nullptr) {
        for (int i = 0; i < sk_X509_num(chain); ++i) {
            ::X509_check_purpose(sk_X509_value(chain, i), -1, 0);
        }
    }
    X509_STORE* store = ::SSL_CTX_get_cert_store(ctx.native_handle());
    STACK_OF(X509)* trusted = store != nullptr ? ::X509_STORE_get1_all_certs(store) : nullptr;
    if (trusted != nullptr) {
        for (int i = 0; i < sk_X509_num(trusted); ++i) {
            ::X509_check_purpose(sk_X509_value(trusted, i), -1, 0);
        }
        sk_X509_pop_free(trusted, X509_free);
    }
}

}  // namespace

std::unique_ptr<asio::ssl::context> make_tls_server_context(const tls_config& config,
                                                            const std::string& owner) {
    auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                     asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                     asio::ssl::context::no_tlsv1_1 | asio::ssl::context::no_compression |
                     asio::ssl::context::single_dh_use);
    if (::SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION) != 1) {
        throw error(owner + ": cannot require TLS 1.2 or later");
    }
    ::SSL_CTX_set_default_passwd_cb(ctx->native_handle(), no_passphrase);
    // TLS 1.3 servers send session tickets after the handshake. A sender that only writes
    // never reads them, and a socket closed with unread data sends a reset, which makes the
    // kernel discard what sluice had not read yet: its last lines. Log senders keep their
    // connections, so resuming sessions is worth little; losing lines is not.
    ::SSL_CTX_set_num_tickets(ctx->native_handle(), 0);
    if (config.verify_client && config.ca.empty()) {
        throw error(owner +
                    ": tls.verify_client needs tls.ca, the CA that signs client certificates");
    }
    load_certificate(*ctx, {owner, "cert", config.cert});
    load_key(*ctx, {owner, "key", config.key});
    if (!config.ca.empty()) {
        load_client_cas(*ctx, {owner, "ca", config.ca}, config.verify_client);
    }
    cache_certificate_extensions(*ctx);
    return ctx;
}

}  // namespace sluice
