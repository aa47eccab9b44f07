#include "job_codec.h"

#include <boost/json.hpp>
#include <charconv>
#include <ctime>

namespace offload::bench {

std::optional<std::string_view> StringField(std::string_view json, std::string_view key) {
  std::string pattern;
  pattern.reserve(key.size() + 4);
  pattern.append("\"").append(key).append("\":\"");
  auto at = json.find(pattern);
  if (at == std::string_view::npos) return std::nullopt;
  auto begin = at + pattern.size();
  auto end = json.find('"', begin);
  if (end == std::string_view::npos) return std::nullopt;
  return json.substr(begin, end - begin);
}

std::optional<std::int64_t> ParseRfc3339Millis(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.mmm]Z
  auto num = [&](std::size_t pos, std::size_t len, int* out) {
    if (pos + len > s.size()) return false;
    auto [p, ec] = std::from_chars(s.data() + pos, s.data() + pos + len, *out);
    return ec == std::errc() && p == s.data() + pos + len;
  };
  std::tm tm{};
  int ms = 0;
  if (s.size() < 20 || !num(0, 4, &tm.tm_year) || !num(5, 2, &tm.tm_mon) || !num(8, 2, &tm.tm_mday) ||
      !num(11, 2, &tm.tm_hour) || !num(14, 2, &tm.tm_min) || !num(17, 2, &tm.tm_sec)) {
    return std::nullopt;
  }
  std::size_t pos = 19;
  if (s[pos] == '.') {
    std::size_t digits = 0;
    ++pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 3) ms = ms * 10 + (s[pos] - '0');
      ++digits;
      ++pos;
    }
    for (; digits < 3; ++digits) ms *= 10;
  }
  if (pos >= s.size() || s[pos] != 'Z') return std::nullopt;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return std::int64_t{timegm(&tm)} * 1000 + ms;
}

std::optional<JobView> ReadJob(std::string_view json) {
  auto id = StringField(json, "id");
  if (!id) return std::nullopt;
  JobView v;
  v.id = std::string(*id);
  if (auto s = StringField(json, "status")) v.status = std::string(*s);
  if (auto t = StringField(json, "started_at")) v.started_at_ms = ParseRfc3339Millis(*t).value_or(0);
  if (auto t = StringField(json, "finished_at")) v.finished_at_ms = ParseRfc3339Millis(*t).value_or(0);
  return v;
}

bool IsFinalStatus(std::string_view s) { return s == "succeeded" || s == "failed" || s == "canceled"; }

std::string CompactJson(const std::string& input, std::string* error) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(input, ec);
  if (ec) {
    *error = "not valid JSON (" + ec.message() + "): " + input;
    return {};
  }
  return boost::json::serialize(v);
}

std::string SubmitBody(const std::string& task, const std::string& input, std::string* error) {
  std::string in = CompactJson(input, error);
  if (in.empty()) return {};
  return "{\"task\":" + boost::json::serialize(boost::json::value(task)) + ",\"input\":" + in + "}";
}

std::string MapBody(const std::string& task, const std::string& input, std::int64_t count, std::int64_t chunk,
                    std::string* error) {
  const std::string in = CompactJson(input, error);
  if (in.empty()) return {};
  std::string body = "{\"task\":" + boost::json::serialize(boost::json::value(task));
  if (chunk > 0) body.append(",\"chunk\":").append(std::to_string(chunk));
  body.append(",\"map\":[");
  body.reserve(body.size() + static_cast<std::size_t>(count) * (in.size() + 1) + 2);
  for (std::int64_t i = 0; i < count; ++i) {
    if (i > 0) body.push_back(',');
    body.append(in);
  }
  body.append("]}");
  return body;
}

}  // namespace offload::bench
