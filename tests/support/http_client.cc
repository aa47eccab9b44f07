#include "support/http_client.h"

#include <boost/asio/ip/address.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>
#include <cctype>
#include <charconv>
#include <ctime>

namespace offload::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::string Response::header(std::string_view name) const {
  auto it = headers.find(Lower(name));
  return it == headers.end() ? "" : it->second;
}

const boost::json::value& Response::json() const {
  if (!json_) json_ = ParseJson(body).value_or(nullptr);
  return *json_;
}

HttpClient::HttpClient(unsigned short port, std::string host) : host_(std::move(host)), port_(port) {}

HttpClient::~HttpClient() { Close(); }

std::string HttpClient::Connect(std::chrono::milliseconds timeout) {
  beast::error_code ec;
  auto address = asio::ip::make_address(host_, ec);
  if (ec) return "bad host " + host_;
  stream_.emplace(ioc_);
  buffer_.clear();
  stream_->expires_after(timeout);
  stream_->async_connect(tcp::endpoint(address, port_), [&](beast::error_code e) { ec = e; });
  ioc_.restart();
  ioc_.run();
  if (ec) {
    stream_.reset();
    return "connect to " + host_ + ":" + std::to_string(port_) + ": " + ec.message();
  }
  return "";
}

std::string HttpClient::Send(http::verb method, std::string_view target, std::string body, const Headers& headers) {
  if (!stream_) {
    if (std::string err = Connect(kDefaultTimeout); !err.empty()) return err;
  }
  http::request<http::string_body> req{method, target, 11};
  sent_head_ = method == http::verb::head;
  req.set(http::field::host, host_ + ":" + std::to_string(port_));
  req.set(http::field::user_agent, "offload-integration-test");
  bool has_content_type = false;
  for (const auto& [name, value] : headers) {
    req.set(name, value);
    if (Lower(name) == "content-type") has_content_type = true;
  }
  if (!body.empty() && !has_content_type) req.set(http::field::content_type, "application/json");
  req.body() = std::move(body);
  req.prepare_payload();

  beast::error_code ec;
  stream_->expires_after(kDefaultTimeout);
  http::async_write(*stream_, req, [&](beast::error_code e, std::size_t) { ec = e; });
  ioc_.restart();
  ioc_.run();
  // A server that refused the request before its end (a 413 part-way through a
  // chunked body) answers, closes, and the rest of the write fails: its answer waits
  // in the socket to be read.
  if (ec == asio::error::broken_pipe || ec == asio::error::connection_reset) return "";
  if (ec) {
    Close();
    return "write: " + ec.message();
  }
  return "";
}

Response HttpClient::Receive(std::chrono::milliseconds timeout) {
  Response out;
  if (!stream_) {
    out.error = "not connected";
    return out;
  }
  http::response_parser<http::string_body> parser;
  parser.body_limit(boost::none);
  // The answer to HEAD has the Content-Length of a body it does not carry.
  if (sent_head_) parser.skip(true);
  beast::error_code ec;
  stream_->expires_after(timeout);
  http::async_read(*stream_, buffer_, parser, [&](beast::error_code e, std::size_t) { ec = e; });
  ioc_.restart();
  ioc_.run();
  if (ec) {
    Close();
    out.error = "read: " + ec.message();
    return out;
  }
  auto res = parser.release();
  out.status = static_cast<int>(res.result_int());
  for (const auto& field : res) out.headers[Lower(field.name_string())] = std::string(field.value());
  out.body = std::move(res.body());
  if (!res.keep_alive()) Close();
  return out;
}

Response HttpClient::Request(http::verb method, std::string_view target, std::string body, const Headers& headers,
                             std::chrono::milliseconds timeout) {
  if (std::string err = Send(method, target, std::move(body), headers); !err.empty()) {
    Response out;
    out.error = err;
    return out;
  }
  return Receive(timeout);
}

void HttpClient::Close() {
  if (!stream_) return;
  beast::error_code ignored;
  stream_->socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream_->socket().close(ignored);
  stream_.reset();
  buffer_.clear();
}

std::optional<boost::json::value> ParseJson(std::string_view text) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(text, ec);
  if (ec) return std::nullopt;
  return v;
}

std::optional<std::int64_t> ParseRfc3339Millis(std::string_view text) {
  // Exactly YYYY-MM-DDTHH:MM:SS.mmmZ: the API promises UTC with milliseconds.
  if (text.size() != 24 || text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' || text[16] != ':' ||
      text[19] != '.' || text[23] != 'Z') {
    return std::nullopt;
  }
  auto num = [&](std::size_t at, std::size_t len, int* out) {
    auto [p, ec] = std::from_chars(text.data() + at, text.data() + at + len, *out);
    return ec == std::errc() && p == text.data() + at + len;
  };
  int year, month, day, hour, minute, second, millis;
  if (!num(0, 4, &year) || !num(5, 2, &month) || !num(8, 2, &day) || !num(11, 2, &hour) || !num(14, 2, &minute) ||
      !num(17, 2, &second) || !num(20, 3, &millis)) {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  return std::int64_t{timegm(&tm)} * 1000 + millis;
}

}  // namespace offload::testing
