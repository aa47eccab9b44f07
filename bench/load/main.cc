// offload-load: the load generator of bench/ (docs/benchmarks.md). One binary, one
// subcommand per measurement; every loop is bounded in count and in time.
#include <CLI/CLI.hpp>
#include <csignal>

#include "commands.h"

namespace {

using offload::bench::LoadOptions;

void AddCommon(CLI::App* cmd, LoadOptions* o) {
  cmd->add_option("--url", o->url, "Server base URL, http://HOST:PORT")->capture_default_str();
  cmd->add_option("--task", o->task, "Task of the submitted jobs")->capture_default_str();
  cmd->add_option("--input", o->input, "The jobs' input, as JSON")->capture_default_str();
  cmd->add_option("-c,--concurrency", o->concurrency, "Connections (requests in flight)")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--threads", o->threads, "Client I/O threads")->capture_default_str()->check(CLI::Range(1, 16));
  cmd->add_flag("--json", o->json, "Print one JSON object instead of text");
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"offload-load: load generator for the offload job server (docs/benchmarks.md)"};
  app.require_subcommand(1);

  LoadOptions submit;
  CLI::App* s = app.add_subcommand("submit", "Closed-loop POST /v1/jobs at concurrency C for S seconds");
  AddCommon(s, &submit);
  s->add_option("-d,--duration", submit.duration_s, "Seconds to send for")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 3600.0));
  s->add_option("-n,--count", submit.count, "Stop after this many requests (0: only -d)")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{100'000'000}));
  s->add_option("--prefer-wait", submit.prefer_wait_s, "Send 'Prefer: wait=N' (seconds); 0: none")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 3600.0));

  LoadOptions e2e;
  e2e.count = 1000;
  CLI::App* e = app.add_subcommand("e2e", "Submit N jobs at concurrency C, then wait for every one");
  AddCommon(e, &e2e);
  e->add_option("-n,--count", e2e.count, "Jobs")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{100'000'000}));
  e->add_option("--timeout", e2e.timeout_s, "Bound on the whole run, seconds")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 86400.0));
  e->add_option("--also-url", e2e.also_urls,
                "Another node of the same cluster (repeatable): the connections are spread over every URL; the "
                "waits go to --url");

  LoadOptions probe;
  probe.task = "";
  probe.concurrency = 16;
  CLI::App* p =
      app.add_subcommand("probe", "Open-loop GET at a fixed rate; latency from each request's scheduled send time");
  AddCommon(p, &probe);
  p->add_option("-r,--rate", probe.rate, "Requests per second")->capture_default_str()->check(CLI::Range(0.001, 1e6));
  p->add_option("-d,--duration", probe.duration_s, "Seconds to send for")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 3600.0));
  p->add_option("--path", probe.path,
                "What to GET (default: /v1/jobs/ID of a job submitted first when --task is given, "
                "else /healthz)");

  LoadOptions gap;
  gap.count = 200;
  gap.concurrency = 8;
  CLI::App* g =
      app.add_subcommand("gap", "N jobs on one exclusive resource: idle gap between consecutive jobs, overlap check");
  AddCommon(g, &gap);
  g->add_option("-n,--count", gap.count, "Jobs")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{2}, std::int64_t{1'000'000}));
  g->add_option("--hold-input", gap.hold_input,
                "Input of a first job of the same task that holds the resource until all N are "
                "queued, then is canceled (e.g. {\"ms\": 60000} for sleep)");
  g->add_option("--timeout", gap.timeout_s, "Bound on the whole run, seconds")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 86400.0));

  LoadOptions map;
  map.count = 1000;
  map.timeout_s = 120;
  CLI::App* m =
      app.add_subcommand("map", "One map job of N copies of --input: wall time from POST to finished job, elements/s");
  m->add_option("--url", map.url, "Server base URL, http://HOST:PORT")->capture_default_str();
  m->add_option("--task", map.task, "Task of the map's elements")->capture_default_str();
  m->add_option("--input", map.input, "Every element's input, as JSON")->capture_default_str();
  m->add_option("-n,--count", map.count, "Elements")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{10'000'000}));
  m->add_option("--chunk", map.chunk, "Elements per chunk (0: the server adapts)")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1'000'000}));
  m->add_option("--timeout", map.timeout_s, "Bound on the whole run, seconds")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 86400.0));
  m->add_flag("--json", map.json, "Print one JSON object instead of text");

  LoadOptions subscribe;
  subscribe.concurrency = 100;
  CLI::App* sub = app.add_subcommand(
      "subscribe",
      "N clients of GET /v1/events for S seconds, counting messages; a stream that ends reopens after 2 s");
  sub->add_option("--url", subscribe.url, "Server base URL, http://HOST:PORT")->capture_default_str();
  sub->add_option("-c,--concurrency", subscribe.concurrency, "Subscribers")
      ->capture_default_str()
      ->check(CLI::Range(1, 10'000));
  sub->add_option("-d,--duration", subscribe.duration_s, "Seconds to stay subscribed")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 86400.0));
  subscribe.path = "/v1/events";
  sub->add_option("--path", subscribe.path, "The stream to read, e.g. /v1/events?latest=1")->capture_default_str();
  sub->add_flag("--json", subscribe.json, "Print one JSON object instead of text");

  CLI11_PARSE(app, argc, argv);
  if (s->parsed()) return offload::bench::RunSubmit(submit);
  if (e->parsed()) return offload::bench::RunE2e(e2e);
  if (p->parsed()) return offload::bench::RunProbe(probe);
  if (g->parsed()) return offload::bench::RunGap(gap);
  if (m->parsed()) return offload::bench::RunMap(map);
  if (sub->parsed()) return offload::bench::RunSubscribe(subscribe);
  return 2;
}
