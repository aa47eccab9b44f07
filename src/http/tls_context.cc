#include "http/tls_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace offload {

namespace ssl = boost::asio::ssl;

namespace {

// What OpenSSL's error queue says last, e.g. "no start line" for a file that is not PEM.
std::string OpenSslReason(const boost::system::error_code& ec) {
  const unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  if (e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
  }
  return ec.message();
}

}  // namespace

ErrorOr<std::shared_ptr<ssl::context>> LoadTlsContext(const std::string& cert_path, const std::string& key_path) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                   ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::no_compression |
                   ssl::context::single_dh_use);
  // A client's renegotiation costs the server a handshake each time, and nothing here
  // needs one.
  SSL_CTX_set_options(ctx->native_handle(), SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(cert_path, ec);
  if (ec) {
    return MakeError(ErrorCode::kInvalidArgument, "tls_cert " + cert_path + ": cannot use it: " + OpenSslReason(ec));
  }
  ctx->use_private_key_file(key_path, ssl::context::pem, ec);
  // OpenSSL compares the key with the certificate as it takes it (Asio's error code
  // is OpenSSL's).
  const bool mismatch = ec && ec.category() == boost::asio::error::get_ssl_category() &&
                        ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH;
  if (ec && !mismatch) {
    return MakeError(ErrorCode::kInvalidArgument, "tls_key " + key_path + ": cannot use it: " + OpenSslReason(ec));
  }
  if (mismatch || SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    ERR_clear_error();
    return MakeError(ErrorCode::kInvalidArgument,
                     "tls_key " + key_path + " is not the key of the certificate in tls_cert " + cert_path);
  }
  return ctx;
}

}  // namespace offload
