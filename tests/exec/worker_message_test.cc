// ParseWorkerMessage: what each line of the worker protocol (docs/worker-protocol.md)
// says, read from the line alone; WorkerPool's tests cover what the pool does with it.
#include "exec/worker_message.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "offload/error_types.h"

namespace offload {
namespace {

using Kind = WorkerMessage::Kind;

TEST(WorkerMessageTest, BlankLinesAndStrayOutput) {
  EXPECT_EQ(ParseWorkerMessage("").kind, Kind::kBlank);
  EXPECT_EQ(ParseWorkerMessage(" \t\r").kind, Kind::kBlank);
  EXPECT_EQ(ParseWorkerMessage("hello from print()").kind, Kind::kNoise);
  EXPECT_EQ(ParseWorkerMessage("[1,2]").kind, Kind::kNoise);
  EXPECT_EQ(ParseWorkerMessage(R"({"no":"type"})").kind, Kind::kNoise);
  EXPECT_EQ(ParseWorkerMessage(R"({"type":5})").kind, Kind::kNoise);
}

TEST(WorkerMessageTest, ANumberNoValueHoldsIsNamed) {
  WorkerMessage m = ParseWorkerMessage(R"({"type":"result","id":"j","result":{"x":1e400}})");
  EXPECT_EQ(m.kind, Kind::kUnusable);
  EXPECT_EQ(m.detail.rfind("result.x", 0), 0u) << m.detail;
}

TEST(WorkerMessageTest, ReadyKeepsTheStringFeatures) {
  WorkerMessage m = ParseWorkerMessage(R"({"type":"ready","features":["batch",7,"cancel"]})");
  EXPECT_EQ(m.kind, Kind::kReady);
  EXPECT_EQ(m.features, (std::vector<std::string>{"batch", "cancel"}));
}

TEST(WorkerMessageTest, ErrorsTakeTheirKindsDefaultType) {
  WorkerMessage fatal = ParseWorkerMessage(R"({"type":"fatal","error":{"message":"no model"}})");
  EXPECT_EQ(fatal.kind, Kind::kFatal);
  EXPECT_EQ(fatal.error.type, error_type::kWorkerUnavailable);
  EXPECT_EQ(fatal.error.message, "no model");
  WorkerMessage error = ParseWorkerMessage(R"({"type":"error","id":"j","error":"plain"})");
  EXPECT_EQ(error.kind, Kind::kError);
  EXPECT_EQ(error.id, "j");
  EXPECT_EQ(error.error.type, error_type::kWorkerError);
  EXPECT_EQ(error.error.message, "plain");
  WorkerMessage typed =
      ParseWorkerMessage(R"({"type":"error","id":"j","error":{"type":"invalid_input","message":"m","detail":"d"}})");
  EXPECT_EQ(typed.error.type, "invalid_input");
  EXPECT_EQ(typed.error.detail, "d");
}

TEST(WorkerMessageTest, ResultsAndProgress) {
  WorkerMessage absent = ParseWorkerMessage(R"({"type":"result","id":"j"})");
  EXPECT_EQ(absent.kind, Kind::kResult);
  EXPECT_FALSE(absent.result);
  WorkerMessage null = ParseWorkerMessage(R"({"type":"result","id":"j","result":null})");
  ASSERT_TRUE(null.result);
  EXPECT_TRUE(null.result->is_null());
  WorkerMessage bytes = ParseWorkerMessage(R"({"type":"result","id":"j","result":"aGk=","encoding":"base64"})");
  EXPECT_TRUE(bytes.base64);
  EXPECT_TRUE(ParseWorkerMessage(R"({"type":"result","id":"j","result_file":true})").result_file);
  EXPECT_EQ(ParseWorkerMessage(R"({"type":"progress","id":"j","progress":0.5})").progress, 0.5);
  EXPECT_FALSE(ParseWorkerMessage(R"({"type":"progress","id":"j","progress":"half"})").progress);
  WorkerMessage other = ParseWorkerMessage(R"({"type":"cancel","id":7})");
  EXPECT_EQ(other.kind, Kind::kOther);
  EXPECT_EQ(other.type, "cancel");
  EXPECT_FALSE(other.id);  // Not a string.
}

TEST(WorkerMessageTest, BatchErrorsAreSortedUniqueAndWithinTheResults) {
  WorkerMessage m =
      ParseWorkerMessage(R"({"type":"batch_result","id":"m","results":[1,null,null],"errors":[)"
                         R"({"index":2,"message":"second"},{"index":1,"type":"KeyError","message":"first"},)"
                         R"({"index":1,"message":"again"},{"index":3},{"index":-1},{"index":"0"}]})");
  EXPECT_EQ(m.kind, Kind::kBatchResult);
  ASSERT_TRUE(m.results);
  EXPECT_EQ(m.results->size(), 3u);
  ASSERT_EQ(m.errors.size(), 2u);
  EXPECT_EQ(m.errors[0].first, 1u);
  EXPECT_EQ(m.errors[0].second.type, "KeyError");
  EXPECT_EQ(m.errors[0].second.message, "first");
  EXPECT_EQ(m.errors[1].first, 2u);
  EXPECT_EQ(m.errors[1].second.type, error_type::kWorkerError);
  WorkerMessage no_results = ParseWorkerMessage(R"({"type":"batch_result","id":"m","errors":[{"index":0}]})");
  EXPECT_FALSE(no_results.results);
  EXPECT_TRUE(no_results.errors.empty());
}

}  // namespace
}  // namespace offload
