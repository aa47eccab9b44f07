// OriginPolicy: which web pages, and which host names, may talk to this server.
//
// Without [auth] offload asks nobody who they are and listens on loopback only,
// trusting that only the local user reaches it. A web browser breaks that trust (and,
// with [auth], would send no token but could still submit to an open server): any page the user visits
// can send a "simple" cross-origin request (a form or fetch() POST with a text/plain
// body needs no CORS preflight, and its answer need not be readable to do harm), and
// with DNS rebinding a page reaches 127.0.0.1 under its own name. Three checks close
// those doors:
//  - Host, when the listen address is loopback: it must name a loopback host
//    (localhost, *.localhost, 127.0.0.0/8, [::1]); else 421. A rebound name fails.
//  - Origin: a request that carries one (browsers add it to every cross-origin request
//    and to every POST) must come from an origin in allowed_origins or from the
//    server's own (http://HOST, or https://HOST with TLS); else 403, before anything
//    is done.
//  - JSON bodies must be sent as application/json (Api checks it): a page cannot send
//    that type cross-origin without a preflight, and only allowed origins pass one.
// Accepted origins get CORS headers, so a browser client of an allowed origin works.
//
// Not covered: a server bound to a non-loopback address gets no Host check (any name
// may reach it, so there is nothing to compare with); it must be protected otherwise.
//
// Thread-safe: constant after construction.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/exchange.h"
#include "http/problem.h"

namespace offload {

class OriginPolicy {
 public:
  // `listen` is the config's listen address (HOST:PORT); `allowed_origins` its setting;
  // `tls`: the server speaks TLS, so its own origin is https://HOST.
  OriginPolicy(std::string_view listen, std::vector<std::string> allowed_origins, bool tls = false);

  // The problem to answer `req` with instead of handling it, if any.
  std::optional<Problem> Check(const HttpRequestHeader& req) const;

  // True when `req` carries an Origin that Check accepts: the answers to it carry
  // CORS headers. REQUIRES: Check(req) returned nothing.
  bool IsCorsRequest(const HttpRequestHeader& req) const;

  // The answer to a CORS preflight (OPTIONS with Origin), 204 with what may be sent.
  // REQUIRES: IsCorsRequest(req).
  static HttpResponse Preflight(const HttpRequest& req);

  // Adds to `res` the headers that let a page of `origin` read it.
  static void AddCorsHeaders(HttpResponse& res, const std::string& origin);

  // `ex`, with the CORS headers for `origin` added to its response.
  static std::shared_ptr<Exchange> WithCorsHeaders(std::shared_ptr<Exchange> ex, std::string origin);

  bool loopback() const { return loopback_; }

 private:
  // Constant after construction.
  std::string own_scheme_;            // "http://" or "https://".
  bool loopback_;                     // The listen address is a loopback address.
  bool any_origin_;                   // allowed_origins holds "*".
  std::vector<std::string> allowed_;  // As configured; compared ignoring ASCII case.
};

// Whether `host` (a Host header's value, with or without port) names a loopback host:
// localhost, NAME.localhost, an IPv4 address in 127.0.0.0/8, or [::1].
bool IsLoopbackHost(std::string_view host);

}  // namespace offload
