// WorkerMessage: one line a worker process wrote on its stdout, read as the worker
// protocol defines it (docs/worker-protocol.md). The line alone decides what it says;
// what it means for the pool (is it about the job the worker runs? was that job sent
// as a batch?) is WorkerPool's to decide with the worker's state. Kept apart so that
// the reading of untrusted process output can be tested, and fuzzed
// (fuzz/worker_line_fuzzer.cc), without processes.
//
// Thread-safe: a pure function.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/value.hpp>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "offload/result.h"

namespace offload {

struct WorkerMessage {
  enum class Kind {
    kBlank,        // Nothing but spaces, tabs and CRs: skipped without a word.
    kUnusable,     // JSON with a number no value holds (1e400); `detail` names its place.
    kNoise,        // Not a JSON object with a string "type": stray output.
    kReady,        // {"type":"ready","features":[...]}
    kFatal,        // {"type":"fatal","error":...}
    kProgress,     // {"type":"progress","id":ID,"progress":X}
    kResult,       // {"type":"result","id":ID,"result":V}
    kError,        // {"type":"error","id":ID,"error":...}
    kBatchResult,  // {"type":"batch_result","id":ID,"results":[...],"errors":[...]}
    kOther,        // A "type" the protocol does not define.
  };
  Kind kind = Kind::kBlank;
  // The "type" as sent; set for kReady and the kinds after it.
  std::string type;
  // kUnusable: the reader's message, which begins with the number's place.
  std::string detail;
  // A string "id"; an id of any other JSON type counts as none.
  std::optional<std::string> id;
  // kReady: the string elements of "features", in order (others are skipped).
  std::vector<std::string> features;
  // kFatal, kError: "error" as {"type","message","detail"} or a bare message string.
  // Its type defaults to worker_unavailable (kFatal) or worker_error (kError).
  JobError error;
  // kProgress: "progress" when it is a number.
  std::optional<double> progress;
  // kResult: "result" when present (null included).
  std::optional<boost::json::value> result;
  // kResult, kBatchResult: "encoding" is "base64".
  bool base64 = false;
  // kResult: "result_file" is true (the worker wrote the result to result_path).
  bool result_file = false;
  // kBatchResult: "results" when it is an array.
  std::optional<boost::json::array> results;
  // kBatchResult with `results`: the failed elements of "errors", by index into
  // `results` (entries without an integer index within it are skipped), sorted, the
  // first error of an index kept. Each error's type defaults to worker_error.
  std::vector<std::pair<std::size_t, JobError>> errors;
};

// Reads one stdout line, without its '\n'. Never fails: what is not a protocol
// message is kBlank, kUnusable or kNoise.
[[nodiscard]] WorkerMessage ParseWorkerMessage(std::string_view line);

}  // namespace offload
