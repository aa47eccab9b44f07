// offload::Server: the wiring `offload serve` used to hold in main — config, store,
// executors, service, HTTP — behind the public header, so that a program that
// embeds offload runs exactly what the binary runs.
#include "offload/server.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <filesystem>
#include <optional>
#include <thread>

#include "auth/authenticator.h"
#include "config/config.h"
#include "config/tokens_file.h"
#include "exec/process.h"
#include "exec/task_executors.h"
#include "files/file_store.h"
#include "http/access_log.h"
#include "http/api.h"
#include "http/server.h"
#include "http/tls_context.h"
#include "service/job_service.h"
#include "store/store.h"
#include "util/thread_pool.h"

namespace offload {
namespace {

// Raises the soft open-file limit to the hard one, as nginx (worker_rlimit_nofile)
// and Go's runtime do: the soft default (often 1024) exists for programs that use
// select(), and this one does not; every connection, pipe and store file is an fd.
// Returns the soft limit now in force.
std::uint64_t RaiseOpenFileLimit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return 1024;
  // Children get the limit the server was started with.
  SetChildOpenFileLimit(lim.rlim_cur == RLIM_INFINITY ? 0 : static_cast<std::uint64_t>(lim.rlim_cur));
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  return lim.rlim_cur == RLIM_INFINITY ? std::uint64_t{1} << 20 : static_cast<std::uint64_t>(lim.rlim_cur);
}

std::uint64_t OpenFileLimit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return 1024;
  return lim.rlim_cur == RLIM_INFINITY ? std::uint64_t{1} << 20 : static_cast<std::uint64_t>(lim.rlim_cur);
}

// Without [auth] only loopback may reach the server, unless insecure_no_auth says
// that whoever else can is trusted.
Status CheckReachableWithoutAuth(const ServerConfig& c) {
  if (c.auth.enabled || c.insecure_no_auth) return {};
  auto endpoint = ParseListenAddress(c.listen);
  if (!endpoint) return endpoint.error();
  if (endpoint->address().is_loopback()) return {};
  return MakeError(ErrorCode::kInvalidArgument,
                   "config error: listen = \"" + c.listen +
                       "\" reaches beyond this machine, and without [auth] anyone who can reach it could run, read and "
                       "cancel every job: add [auth] with tokens (docs/security.md), or set insecure_no_auth = true "
                       "if the network is trusted or a proxy in front authenticates");
}

ErrorOr<ServerConfig> LoadConfig(const ServerOptions& options) {
  ErrorOr<ServerConfig> loaded = !options.config_file.empty()   ? LoadConfigFile(options.config_file)
                                 : !options.config_toml.empty() ? ParseConfig(options.config_toml, "config_toml")
                                                                : ErrorOr<ServerConfig>(DefaultConfig());
  if (!loaded) return MakeError(loaded.error().code, "config error: " + loaded.error().detail);
  ServerConfig config = std::move(*loaded);
  if (!options.listen.empty()) config.listen = options.listen;
  if (options.threads > 0) config.threads = options.threads;
  if (!options.role.empty()) config.role = options.role;
  if (config.threads == 0) config.threads = std::max(1u, std::thread::hardware_concurrency());
  if (Status reachable = CheckReachableWithoutAuth(config); !reachable) return reachable.error();
  return config;
}

// files_dir, or STEM-files beside the SQLite database STEM.db (one folder per
// database), or offload-files in the working directory for PostgreSQL, or a
// temporary folder for the memory store (whose jobs, and so their files, end with
// the process).
ErrorOr<std::unique_ptr<FileStore>> OpenFiles(const ServerConfig& c) {
  const bool sqlite = c.store.rfind("sqlite:", 0) == 0;
  const bool postgres = PostgresConnInfo(c.store).has_value();
  // Files are as durable as the jobs they belong to.
  const bool sync = postgres || (sqlite && c.sqlite_synchronous_full);
  if (!c.files_dir.empty()) return FileStore::Open(c.files_dir, /*ephemeral=*/false, sync);
  if (sqlite) {
    const std::filesystem::path db(c.store.substr(7));
    const std::filesystem::path folder = db.parent_path().empty() ? std::filesystem::path(".") : db.parent_path();
    return FileStore::Open(folder / (db.stem().string() + "-files"), /*ephemeral=*/false, sync);
  }
  if (postgres) return FileStore::Open("offload-files", /*ephemeral=*/false, sync);
  return FileStore::OpenTemporary();
}

}  // namespace

// The members are declared in the order they are built; ~Impl takes them down
// in the order their threads and callbacks require.
struct Server::Impl {
  ~Impl() {
    if (shutdown.joinable()) shutdown.join();
    // The service goes first: the waiters it still holds keep sessions alive, and a
    // session must die while the HTTP server and its io_contexts still exist. The
    // executors it owns run on the pool, which goes last.
    service.reset();
    signals.reset();
    reload_signal.reset();
    http.reset();
    api.reset();
    pool.reset();
  }

  // SIGHUP: the tokens file and the TLS certificate again. A file that does not
  // parse leaves what it holds as it was: a typo must not lock everyone out, nor a
  // half-copied certificate take TLS down. Read on the first I/O thread: the files
  // are a few kilobytes, read once per signal, and `config` is left as it was (other
  // threads read it).
  void Reload() {
    const bool tokens = config.auth.enabled && !config.auth.tokens_file.empty();
    const bool tls = !config.tls_cert.empty();
    if (!tokens && !tls) spdlog::info("SIGHUP: nothing to reload (no [auth] tokens_file, no tls_cert)");
    if (tokens) ReloadTokens();
    if (tls) ReloadTls();
  }

  void ReloadTls() {
    auto next = LoadTlsContext(config.tls_cert, config.tls_key);
    if (!next) {
      spdlog::error("SIGHUP: the TLS certificate is unchanged: {}", next.error().detail);
      return;
    }
    http->SetTls(std::move(*next));
    spdlog::info("SIGHUP: TLS certificate from {}; connections open keep theirs", config.tls_cert);
  }

  void ReloadTokens() {
    AuthConfig next = config.auth;
    auto tokens = LoadTokensFile(next.tokens_file);
    if (tokens) next.file_tokens = std::move(*tokens);
    Status valid = tokens ? ValidateTokens(next, "", /*allow_none=*/true) : Status(tokens.error());
    auto policies =
        valid ? TenantPolicies(next, config.resources) : ErrorOr<std::map<std::string, TenantPolicy>>(valid.error());
    if (!policies) {
      spdlog::error("SIGHUP: the tokens are unchanged: {}", policies.error().detail);
      return;
    }
    auto auth = std::make_shared<const Authenticator>(next);
    if (auth->size() == 0) {
      spdlog::warn("SIGHUP: no tokens left in {}: every request but /healthz now gets 401", next.tokens_file);
    }
    spdlog::info("SIGHUP: {} tokens from {}", auth->size(), next.tokens_file);
    api->SetAuthenticator(std::move(auth));
    api->SetTenantPolicies(*policies);
    service->SetTenantPolicies(std::move(*policies));
  }

  void WaitForReload() {
    reload_signal->async_wait([this](const boost::system::error_code& ec, int) {
      if (ec) return;
      Reload();
      WaitForReload();
    });
  }

  // Runs on the first I/O thread (a signal, or what Stop posted), once.
  void BeginShutdown(const std::string& why) {
    if (shutting_down) return;
    shutting_down = true;
    spdlog::info("{}: draining (shutdown_grace {} ms)", why, config.shutdown_grace.count());
    // Shutdown runs on its own thread: it blocks on the service while the I/O
    // threads keep answering (503 for new jobs, status for the rest).
    shutdown = std::thread([this] { Drain(); });
  }

  void Drain() {
    JobService& svc = *service;
    svc.BeginDrain();
    if (!svc.WaitForIdle(config.shutdown_grace)) {
      spdlog::warn("shutdown_grace elapsed: canceling the jobs still running");
    }
    svc.CancelAll();
    svc.WaitForIdle(std::chrono::seconds(5));
    // A finished job whose final state is not stored would count as interrupted at
    // the next start: it is worth waiting for the store as long as for a job.
    if (!svc.WaitForFinalWrites(std::max<Millis>(config.shutdown_grace, std::chrono::seconds(5)))) {
      spdlog::error("the store still refuses the final state of {} finished jobs", svc.store_health().unstored_finals);
    }
    http->Stop(std::chrono::seconds(2));
  }

  // Constant after Create.
  ServerConfig config;
  bool stop_on_signals = true;
  std::uint64_t nofile = 0;
  std::int64_t max_connections = 0;
  boost::asio::ip::tcp::endpoint bound;
  // Outlives the service: the in-process executors run on it.
  std::unique_ptr<ThreadPool> pool;
  std::unique_ptr<JobService> service;
  // Outlive the server that records into them.
  std::unique_ptr<HttpMetrics> http_metrics;
  std::unique_ptr<AccessLog> access_log;
  std::unique_ptr<Api> api;
  std::unique_ptr<HttpServer> http;

  // The first I/O thread's only (Run's caller), and Run's after the I/O threads end.
  std::optional<boost::asio::signal_set> signals;
  std::optional<boost::asio::signal_set> reload_signal;
  bool ran = false;
  bool shutting_down = false;
  std::thread shutdown;
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() = default;

ErrorOr<std::unique_ptr<Server>> Server::Create(const ServerOptions& options, const TaskRegistry& registry) {
  auto config = LoadConfig(options);
  if (!config) return config.error();
  auto impl = std::make_unique<Impl>();
  impl->config = std::move(*config);
  impl->stop_on_signals = options.stop_on_signals;
  const ServerConfig& c = impl->config;
  // Before anything opens files or starts processes.
  if (options.configure_process) {
    ::signal(SIGPIPE, SIG_IGN);
    // A write past RLIMIT_FSIZE then fails with EFBIG (an upload answered 507) rather
    // than killing the server.
    ::signal(SIGXFSZ, SIG_IGN);
    impl->nofile = RaiseOpenFileLimit();
  } else {
    impl->nofile = OpenFileLimit();
  }
  auto store = OpenStore(StoreOptions{c.store, c.sqlite_synchronous_full, c.sqlite_max_bytes, c.postgres_connections});
  if (!store) return MakeError(store.error().code, "store error: " + store.error().detail);
  auto files = OpenFiles(c);
  if (!files) return MakeError(files.error().code, "files_dir error: " + files.error().detail);
  impl->pool = std::make_unique<ThreadPool>(InProcessPoolSize(c), /*nice_increment=*/5);
  auto executors = MakeTaskExecutors(c, registry, impl->pool.get());
  if (!executors) return executors.error();
  auto service = JobService::Create(c, std::move(*executors), std::move(*store), SystemClock(), std::move(*files));
  if (!service) return service.error();
  impl->service = std::move(*service);
  impl->http_metrics = std::make_unique<HttpMetrics>(c.threads);
  std::shared_ptr<const Authenticator> auth;
  if (c.auth.enabled) auth = std::make_shared<const Authenticator>(c.auth);
  impl->api = std::make_unique<Api>(impl->service.get(), impl->config, impl->http_metrics.get(), std::move(auth));
  if (c.auth.enabled) {
    auto policies = TenantPolicies(c.auth, c.resources);  // (The service took its own.)
    if (!policies) return policies.error();
    impl->api->SetTenantPolicies(*policies);
  }
  HttpServerOptions http_options;
  http_options.threads = c.threads;
  http_options.max_body = c.max_body;
  http_options.max_connections = c.max_connections > 0 ? c.max_connections : DefaultMaxConnections(impl->nofile);
  http_options.idle_timeout = c.idle_timeout;
  http_options.header_timeout = c.header_timeout;
  http_options.write_timeout = c.write_timeout;
  http_options.connection_rate = c.connection_rate;
  impl->max_connections = http_options.max_connections;
  if (!c.access_log.empty()) {
    auto log = AccessLog::Open(c.access_log, c.access_log_format);
    if (!log) return log.error();
    impl->access_log = std::move(*log);
  }
  impl->http =
      std::make_unique<HttpServer>(impl->api.get(), http_options, impl->http_metrics.get(), impl->access_log.get());
  if (!c.tls_cert.empty()) {
    auto tls = LoadTlsContext(c.tls_cert, c.tls_key);
    if (!tls) return MakeError(tls.error().code, "config error: " + tls.error().detail);
    impl->http->SetTls(std::move(*tls));
  }
  auto bound = impl->http->Listen(c.listen);
  if (!bound) return bound.error();
  if (c.auth.enabled && c.tls_cert.empty() && !bound->address().is_loopback()) {
    spdlog::warn(
        "listening on {} without TLS: tokens and results cross the network in clear; set tls_cert and "
        "tls_key, or put a TLS proxy in front (docs/security.md)",
        c.listen);
  }
  impl->bound = *bound;
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

std::uint16_t Server::port() const { return impl_->bound.port(); }

std::string Server::address() const {
  const auto& b = impl_->bound;
  const std::string port = std::to_string(b.port());
  return b.address().is_v6() ? "[" + b.address().to_string() + "]:" + port : b.address().to_string() + ":" + port;
}

void Server::Run() {
  Impl& s = *impl_;
  if (s.ran) return;
  s.ran = true;
  if (s.stop_on_signals) {
    s.signals.emplace(s.http->main_context(), SIGINT, SIGTERM);
    s.signals->async_wait([&s](const boost::system::error_code& ec, int sig) {
      if (!ec) s.BeginShutdown("signal " + std::to_string(sig));
    });
    s.reload_signal.emplace(s.http->main_context(), SIGHUP);
    s.WaitForReload();
  }
  // Said once SIGTERM is handled: whoever waits for this line may stop the server
  // the moment it appears.
  spdlog::info("offload listening on {}://{} ({} I/O threads, store {}, max_connections {}, open-file limit {})",
               s.config.tls_cert.empty() ? "http" : "https", address(), s.config.threads,
               RedactStoreSpec(s.config.store), s.max_connections, s.nofile);
  // Whoever waits for this line (a supervisor, a test) has it now, however the log is buffered.
  spdlog::default_logger()->flush();
  s.http->Run();
  if (s.shutdown.joinable()) s.shutdown.join();
}

void Server::Stop() {
  Impl* s = impl_.get();
  boost::asio::post(s->http->main_context(), [s] { s->BeginShutdown("Stop()"); });
}

}  // namespace offload
