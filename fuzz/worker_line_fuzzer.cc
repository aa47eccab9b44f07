// Fuzzes the worker protocol's reader (src/exec/worker_message.h): the bytes are what
// a worker process writes on its stdout, cut into lines at '\n' as WorkerPool cuts
// them, each read by ParseWorkerMessage. What the pool then does with a message's
// payload is done here too: a string result with "encoding":"base64" is decoded
// (util/base64.h), and a result is written as JSON, as the store and the API write it.
//
// Checks, besides the sanitizers: a batch_result's errors are sorted, unique and
// within its results (OnBatchAnswer indexes the results with them).
#include <boost/json.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "exec/worker_message.h"
#include "util/base64.h"
#include "util/json_reader.h"
#include "util/json_writer.h"

namespace offload {
namespace {

[[noreturn]] void Fail(const char* what, std::string_view line) {
  std::fprintf(stderr, "worker_line_fuzzer: %s: %.*s\n", what, static_cast<int>(line.size()), line.data());
  std::abort();
}

void Payload(const boost::json::value& result, bool base64, std::string_view line) {
  if (base64 && result.is_string()) {
    std::string bytes;
    (void)Base64Decode(result.get_string(), &bytes);
  }
  if (!ParseJson(WriteJson(result, JsonNumbers::kKeepKind))) Fail("a result written as JSON does not read back", line);
}

void OneLine(std::string_view line) {
  WorkerMessage m = ParseWorkerMessage(line);
  using Kind = WorkerMessage::Kind;
  if (m.kind == Kind::kResult && m.result) Payload(*m.result, m.base64, line);
  if (m.kind == Kind::kBatchResult) {
    if (!m.results && !m.errors.empty()) Fail("errors without results", line);
    for (std::size_t i = 0; i < m.errors.size(); ++i) {
      if (m.errors[i].first >= m.results->size()) Fail("an error past the results", line);
      if (i > 0 && m.errors[i - 1].first >= m.errors[i].first) Fail("errors not sorted and unique", line);
    }
    if (m.results) {
      for (const boost::json::value& r : *m.results) Payload(r, m.base64, line);
    }
  }
}

}  // namespace
}  // namespace offload

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  while (!rest.empty()) {
    const std::size_t nl = rest.find('\n');
    offload::OneLine(rest.substr(0, nl));
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  return 0;
}
