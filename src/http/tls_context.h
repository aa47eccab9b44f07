// The server's TLS (tls_cert, tls_key): an OpenSSL context for Asio made from PEM
// files, TLS 1.2 and later only. Loaded at start and again on SIGHUP; each connection
// holds the context it was accepted with, so a reload changes what new connections
// present and leaves open ones as they are.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>

#include "util/error.h"

namespace offload {

// `cert_path`: the certificate chain, the server's own first; `key_path`: its private
// key (unencrypted). kInvalidArgument naming the file when either cannot be read or
// the key is not the certificate's.
ErrorOr<std::shared_ptr<boost::asio::ssl::context>> LoadTlsContext(const std::string& cert_path,
                                                                   const std::string& key_path);

}  // namespace offload
