// TLS for the TCP source: the server's settings and the OpenSSL context made from them. The
// context is built when the source is made, so a missing file or a garbage key is an error at
// start naming the file, not a failure at the first handshake. Asio's SSL headers stay in the
// .cpp files that need them.
#pragma once

#include <memory>
#include <string>

namespace asio::ssl {
class context;
}  // namespace asio::ssl

namespace sluice {

struct tls_config {
    std::string cert;            // PEM: the server's certificate, then the rest of its chain
    std::string key;             // PEM: its private key, not encrypted
    std::string ca;              // PEM: the CAs that sign client certificates; "" for none
    bool verify_client = false;  // require a client certificate signed by `ca` (mutual TLS)
};

// The server context of `config`: TLS 1.2 or later, its certificate and key loaded and checked
// against each other. With `ca`, clients are asked for a certificate and one they present must
// be signed by `ca`; with verify_client, one they do not present fails the handshake too.
// Throws sluice::error naming `owner` ("source app"), the key and the file that is wrong; the
// message never holds the files' contents.
std::unique_ptr<asio::ssl::context> make_tls_server_context(const tls_config& config,
                                                            const std::string& owner);

}  // namespace sluice
