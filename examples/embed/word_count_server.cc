// word_count_server: offload serving a C++ handler of this program's own, through
// the public API only (include/offload/). docs/embedding.md walks through it.
//
// Usage: word_count_server CONFIG [HOST:PORT]
#include <offload/server.h>
#include <offload/task_registry.h>

#include <algorithm>
#include <cctype>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace {

namespace json = boost::json;

// Refuses an input before a job is created: the client gets 422 with this detail.
std::optional<std::string> ValidateText(const json::value& input) {
  const json::object* in = input.if_object();
  if (!in || !in->contains("text") || !in->at("text").is_string()) {
    return "input must be an object with a string field \"text\"";
  }
  return std::nullopt;
}

// {"text": "..."} -> {"words": N, "distinct": M, "top": [{"word", "count"}, ...]}:
// words are runs of letters and digits, compared in lower case; "top" holds the
// three most frequent, ties in alphabetical order.
offload::Result WordCount(const offload::Job& job, offload::Context& ctx) {
  const json::string& text = job.input.at("text").as_string();
  std::map<std::string, std::int64_t> counts;
  std::int64_t words = 0;
  std::string word;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    // A long text is worth a look at cancellation now and then.
    if (i % 65536 == 0) {
      if (ctx.canceled()) return offload::Result::Fail("canceled", "stopped while counting");
      ctx.ReportProgress(static_cast<double>(i) / static_cast<double>(text.size() + 1));
    }
    const unsigned char c = i < text.size() ? static_cast<unsigned char>(text[i]) : ' ';
    if (std::isalnum(c)) {
      word += static_cast<char>(std::tolower(c));
    } else if (!word.empty()) {
      ++counts[word];
      ++words;
      word.clear();
    }
  }
  std::vector<std::pair<std::string, std::int64_t>> sorted(counts.begin(), counts.end());
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  json::array top;
  for (std::size_t i = 0; i < sorted.size() && i < 3; ++i) {
    top.push_back(json::object{{"word", sorted[i].first}, {"count", sorted[i].second}});
  }
  return offload::Result::Json(
      json::object{{"words", words}, {"distinct", static_cast<std::int64_t>(counts.size())}, {"top", std::move(top)}});
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::cerr << "usage: word_count_server CONFIG [HOST:PORT]\n";
    return 2;
  }
  // The built-ins too: the default config declares noop, sleep, cpu and mandelbrot.
  offload::TaskRegistry registry = offload::TaskRegistry::WithBuiltins();
  registry.Register("word_count", offload::TaskDefinition{WordCount, ValidateText, "application/json"});

  offload::ServerOptions options;
  options.config_file = argv[1];
  if (argc == 3) options.listen = argv[2];
  auto server = offload::Server::Create(options, registry);
  if (!server) {
    std::cerr << "word_count_server: " << server.error().detail << "\n";
    return 2;
  }
  // Serves until SIGINT or SIGTERM, then drains as `offload serve` does.
  (*server)->Run();
  return 0;
}
