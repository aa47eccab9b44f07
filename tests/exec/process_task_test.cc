// The config keys of command, worker and python tasks, and the executor they build.
#include "exec/process_task.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "config/config.h"

namespace offload {
namespace {

using namespace std::chrono_literals;

ServerConfig Parse(const std::string& toml, const std::string& file = "dir/offload.toml") {
  auto c = ParseConfig(toml, file);
  EXPECT_TRUE(c) << (c ? "" : c.error().detail);
  return c ? *c : ServerConfig{};
}

std::string ParseError(const std::string& toml) {
  auto c = ParseConfig(toml, "offload.toml");
  EXPECT_FALSE(c) << "accepted:\n" << toml;
  return c ? "" : c.error().detail;
}

TEST(ProcessTaskConfigTest, ReadsCommandTasks) {
  ServerConfig c = Parse(R"(
[tasks.thumb]
command = ["convert", "-", "-resize", "64x64", "png:-"]
content_type = "image/png"
cwd = "work"
env = { MAGICK_THREAD_LIMIT = "1" }
kill_grace = "2s"
max_result = "10MiB"
timeout = "30s"
)");
  const TaskConfig& t = c.tasks.at("thumb");
  EXPECT_EQ(t.command, (std::vector<std::string>{"convert", "-", "-resize", "64x64", "png:-"}));
  EXPECT_TRUE(t.run.empty());
  EXPECT_TRUE(IsProcessTask(t));
  EXPECT_EQ(t.content_type, "image/png");
  // Relative to the config file's folder, made absolute.
  EXPECT_EQ(t.cwd, (std::filesystem::current_path() / "dir/work").string());
  EXPECT_EQ(t.env.at("MAGICK_THREAD_LIMIT"), "1");
  EXPECT_EQ(t.kill_grace, 2000ms);
  EXPECT_EQ(t.max_result, 10 << 20);
}

TEST(ProcessTaskConfigTest, ReadsWorkerTasksWithDefaults) {
  ServerConfig c = Parse(R"(
[resources]
cpu = 8
gpu = 2

[tasks.embed]
worker = ["python3", "embed.py"]
uses = { cpu = 1, gpu = 1 }

[tasks.score]
worker = ["./score"]
workers = 3
max_jobs_per_worker = 1000
max_rss = "512MiB"
)");
  const TaskConfig& embed = c.tasks.at("embed");
  EXPECT_EQ(embed.worker, (std::vector<std::string>{"python3", "embed.py"}));
  EXPECT_EQ(embed.kill_grace, 5000ms);
  EXPECT_EQ(embed.max_result, 64 << 20);
  EXPECT_EQ(embed.max_jobs_per_worker, 0);
  EXPECT_EQ(embed.max_rss, 0);
  EXPECT_EQ(WorkerCount(c.resources, embed), 2);  // What gpu = 2 lets run at once.
  const TaskConfig& score = c.tasks.at("score");
  EXPECT_EQ(WorkerCount(c.resources, score), 3);
  EXPECT_EQ(score.max_jobs_per_worker, 1000);
  EXPECT_EQ(score.max_rss, 512 << 20);
}

TEST(ProcessTaskConfigTest, ACommandCanReplaceABuiltin) {
  ServerConfig c = Parse(R"(
[tasks.sleep]
command = ["sleep", "1"]
)");
  EXPECT_TRUE(c.tasks.at("sleep").run.empty());
  EXPECT_EQ(c.tasks.at("sleep").command.size(), 2u);
}

TEST(ProcessTaskConfigTest, RefusesWhatMakesNoSense) {
  EXPECT_NE(ParseError("[tasks.x]\nrun = \"builtin:noop\"\ncommand = [\"true\"]\n").find("more than one"),
            std::string::npos);
  EXPECT_NE(ParseError("[tasks.x]\ncommand = [\"true\"]\nworker = [\"w\"]\n").find("more than one"), std::string::npos);
  EXPECT_NE(ParseError("[tasks.x]\ncommand = []\n").find("non-empty array"), std::string::npos);
  EXPECT_NE(ParseError("[tasks.x]\ncommand = \"true\"\n").find("array of strings"), std::string::npos);
  EXPECT_NE(ParseError("[tasks.x]\ncommand = [\"true\", 1]\n").find("array of strings"), std::string::npos);
  EXPECT_NE(ParseError("[tasks.x]\ncommand = [\"true\"]\nworkers = 2\n").find("worker and python tasks only"),
            std::string::npos);
  EXPECT_NE(ParseError("[tasks.x]\ncommand = [\"true\"]\nmax_rss = 5\n").find("worker and python tasks only"),
            std::string::npos);
  EXPECT_NE(ParseError("[tasks.x]\nrun = \"builtin:noop\"\nenv = {A = \"b\"}\n").find("command, worker and python"),
            std::string::npos);
  EXPECT_NE(ParseError("[tasks.x]\nworker = [\"w\"]\nworkers = 0\n").find("positive"), std::string::npos);
  EXPECT_NE(ParseError("[tasks.x]\nworker = [\"w\"]\nmax_rss = \"lots\"\n").find("512MiB"), std::string::npos);
  EXPECT_NE(ParseError("[tasks.x]\nworker = [\"w\"]\nenv = {A = 1}\n").find("env.A"), std::string::npos);
  // Errors name the file and line.
  EXPECT_NE(ParseError("\n\n[tasks.x]\nworker = [\"w\"]\nkill_grace = \"soon\"\n").find("offload.toml:5"),
            std::string::npos);
}

TEST(ProcessTaskConfigTest, ReadsPythonTasksWithPathsFromTheFilesFolder) {
  ServerConfig c = Parse(R"(
[tasks.score]
python = "calc:cpu_bound_func"
python_path = [".", "/opt/lib", "src"]
interpreter = ".venv/bin/python"
call = "kwargs"
workers = 4

[tasks.plain]
python = "pkg.models:Scorer.score"
interpreter = "python3.11"
)");
  const std::string dir = (std::filesystem::current_path() / "dir").string();
  const TaskConfig& t = c.tasks.at("score");
  EXPECT_TRUE(IsProcessTask(t));
  EXPECT_EQ(t.python, "calc:cpu_bound_func");
  EXPECT_EQ(t.python_path, (std::vector<std::string>{dir, "/opt/lib", dir + "/src"}));
  EXPECT_EQ(t.interpreter, dir + "/.venv/bin/python");
  EXPECT_EQ(t.call, "kwargs");
  EXPECT_EQ(WorkerCount(c.resources, t), 4);
  const TaskConfig& plain = c.tasks.at("plain");
  EXPECT_EQ(plain.interpreter, "python3.11") << "a bare name is looked up on PATH";
  EXPECT_EQ(plain.call, "arg");
  EXPECT_TRUE(plain.python_path.empty());
}

TEST(ProcessTaskConfigTest, ProcessesRunInTheConfigFilesFolderByDefault) {
  ServerConfig c = Parse("[tasks.a]\ncommand = [\"true\"]\n[tasks.b]\npython = \"m:f\"\n[tasks.c]\nworker = [\"w\"]\n");
  const std::string dir = (std::filesystem::current_path() / "dir").string();
  EXPECT_EQ(c.tasks.at("a").cwd, dir);
  EXPECT_EQ(c.tasks.at("b").cwd, dir);
  EXPECT_EQ(c.tasks.at("c").cwd, dir);
  EXPECT_TRUE(c.tasks.at("noop").cwd.empty()) << "an in-process task has no folder";
}

TEST(ProcessTaskConfigTest, RefusesPythonSettingsThatMakeNoSense) {
  EXPECT_NE(ParseError("[tasks.x]\npython = \"m:f\"\nworker = [\"w\"]\n").find("more than one"), std::string::npos);
  EXPECT_NE(ParseError("[tasks.x]\npython = \"calc\"\n").find("module:attribute"), std::string::npos);
  EXPECT_NE(ParseError("[tasks.x]\npython = \"calc:\"\n").find("module:attribute"), std::string::npos);
  EXPECT_NE(ParseError("[tasks.x]\npython = \"m:f\"\ncall = \"star\"\n").find("\"arg\" or \"kwargs\""),
            std::string::npos);
  EXPECT_NE(ParseError("[tasks.x]\npython = \"m:f\"\npython_path = \".\"\n").find("array"), std::string::npos);
  EXPECT_NE(ParseError("[tasks.x]\nworker = [\"w\"]\npython_path = [\".\"]\n").find("python tasks only"),
            std::string::npos);
  EXPECT_NE(ParseError("[tasks.x]\ncommand = [\"true\"]\ninterpreter = \"python3\"\n").find("python tasks only"),
            std::string::npos);
}

TEST(ProcessTaskConfigTest, PythonWorkersRunTheBundledRunnerOnTheFunction) {
  ServerConfig c = Parse("[tasks.x]\npython = \"calc:f\"\npython_path = [\"lib\"]\ncall = \"kwargs\"\n");
  auto argv = PythonWorkerArgv(c.tasks.at("x"));
  ASSERT_TRUE(argv) << argv.error().detail;
  ASSERT_EQ(argv->size(), 10u);
  EXPECT_EQ((*argv)[0].front(), '/') << "the interpreter found on PATH: " << (*argv)[0];
  EXPECT_EQ((*argv)[1], "-c");
  EXPECT_NE((*argv)[2].find("offload.worker"), std::string::npos) << (*argv)[2];
  EXPECT_EQ(std::vector<std::string>(argv->begin() + 3, argv->end()),
            (std::vector<std::string>{"calc:f", "--call", "kwargs", "--input", "path", "--path",
                                      (std::filesystem::current_path() / "dir/lib").string()}));
  ServerConfig missing = Parse("[tasks.x]\npython = \"calc:f\"\ninterpreter = \"no-such-python-offload\"\n");
  auto none = PythonWorkerArgv(missing.tasks.at("x"));
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().detail.find("no-such-python-offload"), std::string::npos) << none.error().detail;
}

TEST(ProcessTaskConfigTest, ParsesByteSizes) {
  std::int64_t n = 0;
  EXPECT_TRUE(ParseByteSize("4096", &n));
  EXPECT_EQ(n, 4096);
  EXPECT_TRUE(ParseByteSize("512MiB", &n));
  EXPECT_EQ(n, 512 << 20);
  EXPECT_TRUE(ParseByteSize("2GiB", &n));
  EXPECT_EQ(n, std::int64_t{2} << 30);
  EXPECT_TRUE(ParseByteSize("100MB", &n));
  EXPECT_EQ(n, 100'000'000);
  EXPECT_TRUE(ParseByteSize("1 KiB", &n));
  EXPECT_EQ(n, 1024);
  EXPECT_FALSE(ParseByteSize("12XB", &n));
  EXPECT_FALSE(ParseByteSize("-1", &n));
  EXPECT_FALSE(ParseByteSize("", &n));
  EXPECT_FALSE(ParseByteSize("99999999999GiB", &n));
}

TEST(ProcessTaskConfigTest, AMissingProgramIsAStartupError) {
  ServerConfig c = Parse("[tasks.x]\ncommand = [\"no-such-program-offload\"]\n");
  auto ex = MakeProcessExecutor(c.resources, c.tasks.at("x"), ProcessSupervisor::Create());
  ASSERT_FALSE(ex);
  EXPECT_NE(ex.error().detail.find("task \"x\""), std::string::npos) << ex.error().detail;
  EXPECT_NE(ex.error().detail.find("no-such-program-offload"), std::string::npos);
}

}  // namespace
}  // namespace offload
