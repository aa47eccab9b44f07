// MakeTaskExecutors: one executor per configured task, with the content type and the
// validator the service applies.
#include "exec/task_executors.h"

#include <gtest/gtest.h>

#include "exec/exec_test_util.h"
#include "util/thread_pool.h"

namespace offload {
namespace {

using testing::Pending;

ServerConfig Parse(const std::string& toml) {
  auto c = ParseConfig(toml, "offload.toml");
  EXPECT_TRUE(c) << (c ? "" : c.error().detail);
  return c ? *c : ServerConfig{};
}

TEST(TaskExecutorsTest, OneExecutorPerTaskWithItsContentTypeAndValidator) {
  ServerConfig c = Parse(R"(
[tasks.picture]
run = "builtin:mandelbrot"

[tasks.picture_bytes]
run = "builtin:mandelbrot"
content_type = "application/octet-stream"

[tasks.shell]
command = ["sh", "-c", "cat"]
)");
  ThreadPool pool(InProcessPoolSize(c), 0);
  auto executors = MakeTaskExecutors(c, TaskRegistry::WithBuiltins(), &pool);
  ASSERT_TRUE(executors) << executors.error().detail;
  EXPECT_EQ(executors->size(), c.tasks.size());
  for (const auto& [name, tc] : c.tasks) {
    ASSERT_EQ(executors->count(name), 1u) << name;
    EXPECT_TRUE(executors->at(name).executor) << name;
  }
  // The handler's content type, unless the task overrides it; JSON for a command.
  EXPECT_EQ(executors->at("picture").content_type, "image/png");
  EXPECT_EQ(executors->at("picture_bytes").content_type, "application/octet-stream");
  EXPECT_EQ(executors->at("shell").content_type, "application/json");
  // The handler's validator; none for a command.
  ASSERT_TRUE(executors->at("sleep").validate);
  EXPECT_TRUE(executors->at("sleep").validate(boost::json::object{{"ms", "x"}}).has_value());
  EXPECT_FALSE(executors->at("sleep").validate(boost::json::object{{"ms", 1}}).has_value());
  EXPECT_FALSE(executors->at("shell").validate);
}

TEST(TaskExecutorsTest, RunsTheRegisteredHandlerAfterTheRegistryIsGone) {
  ServerConfig c = Parse("[tasks.shout]\nrun = \"builtin:shout\"\n");
  ThreadPool pool(InProcessPoolSize(c), 0);
  ErrorOr<TaskExecutors> executors = MakeError(ErrorCode::kInternal, "not built");
  {
    TaskRegistry registry = TaskRegistry::WithBuiltins();
    registry.Register(
        "shout", TaskDefinition{[](const Job& job, Context&) {
                                  return Result::Json(boost::json::string(std::string(job.input.as_string()) + "!"));
                                },
                                {},
                                "application/json"});
    executors = MakeTaskExecutors(c, registry, &pool);
  }
  ASSERT_TRUE(executors) << executors.error().detail;
  Pending run(*executors->at("shout").executor, "hey");
  auto outcome = run.Wait();
  ASSERT_TRUE(outcome && outcome->ok());
  EXPECT_EQ(outcome->output()->json, "hey!");
}

TEST(TaskExecutorsTest, AHandlerTheRegistryLacksIsAnErrorNamingTheTask) {
  ServerConfig c = Parse("[tasks.render]\nrun = \"builtin:render\"\n");
  ThreadPool pool(1, 0);
  auto executors = MakeTaskExecutors(c, TaskRegistry::WithBuiltins(), &pool);
  ASSERT_FALSE(executors);
  EXPECT_EQ(executors.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(executors.error().detail.find("task \"render\""), std::string::npos) << executors.error().detail;
}

TEST(TaskExecutorsTest, AnInvalidConfigIsRefused) {
  ServerConfig c = DefaultConfig();
  c.tasks["sleep"].uses = {{"gpu", 1}};  // No gpu declared.
  ThreadPool pool(1, 0);
  auto executors = MakeTaskExecutors(c, TaskRegistry::WithBuiltins(), &pool);
  ASSERT_FALSE(executors);
  EXPECT_EQ(executors.error().code, ErrorCode::kInvalidArgument);
}

TEST(TaskExecutorsTest, PoolSizeIsTheSumOfCapacities) {
  ServerConfig c;
  EXPECT_EQ(InProcessPoolSize(c), 1u);
  c.resources = {{"cpu", 6}, {"gpu", 2}};
  EXPECT_EQ(InProcessPoolSize(c), 8u);
  c.resources = {{"cpu", 100000}};
  EXPECT_EQ(InProcessPoolSize(c), 1024u);
}

}  // namespace
}  // namespace offload
