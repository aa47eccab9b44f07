#include "load_options.h"

#include <boost/asio/ip/address.hpp>
#include <charconv>
#include <cstdlib>

namespace offload::bench {

bool ResolveTarget(const std::string& url, Target* out, std::string* error) {
  constexpr std::string_view kScheme = "http://";
  std::string_view rest(url);
  if (rest.substr(0, kScheme.size()) != kScheme) {
    *error = "--url must start with http:// (got \"" + url + "\")";
    return false;
  }
  rest.remove_prefix(kScheme.size());
  rest = rest.substr(0, rest.find('/'));
  std::string_view host = rest;
  unsigned port = 80;
  if (auto colon = rest.rfind(':'); colon != std::string_view::npos && rest.back() != ']') {
    host = rest.substr(0, colon);
    auto p = rest.substr(colon + 1);
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
    if (ec != std::errc() || ptr != p.data() + p.size() || port == 0 || port > 65535) {
      *error = "bad port in --url \"" + url + "\"";
      return false;
    }
  }
  std::string h(host);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h == "localhost") h = "127.0.0.1";
  boost::system::error_code ec;
  auto ip = boost::asio::ip::make_address(h, ec);
  if (ec) {
    *error = "--url host must be an IP address or localhost (got \"" + std::string(host) + "\")";
    return false;
  }
  out->endpoint = boost::asio::ip::tcp::endpoint(ip, static_cast<unsigned short>(port));
  out->header_lines = "Host: " + std::string(rest) + "\r\n";
  if (const char* token = std::getenv("OFFLOAD_TOKEN"); token && *token) {
    out->header_lines += "Authorization: Bearer " + std::string(token) + "\r\n";
  }
  return true;
}

}  // namespace offload::bench
