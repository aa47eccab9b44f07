#include "cli/token_command.h"

#include <boost/json.hpp>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "auth/access_token.h"
#include "auth/scope.h"
#include "cli/commands.h"
#include "util/json_writer.h"

namespace offload::cli {

namespace {

struct TokenArgs {
  std::string name;
  std::vector<std::string> scopes;
  std::string append;
  bool json = false;
};

// The [[tokens]] table of a token, as a tokens file holds it.
std::string TokenEntry(const TokenArgs& args, const std::string& sha256) {
  std::string out = "[[tokens]]\nname = \"" + args.name + "\"\nsha256 = \"" + sha256 + "\"\nscopes = [";
  for (std::size_t i = 0; i < args.scopes.size(); ++i) out += (i ? ", \"" : "\"") + args.scopes[i] + "\"";
  return out + "]\n";
}

int Create(const TokenArgs& args) {
  for (const std::string& s : args.scopes) {
    Scope scope;
    if (!ParseScope(s, &scope)) {
      std::cerr << "offload: unknown scope \"" << s << "\" (submit, read, cancel, admin)\n";
      return kUsage;
    }
  }
  if (args.name.empty() || args.name.size() > 64 ||
      args.name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") !=
          std::string::npos) {
    std::cerr << "offload: a token's name is 1 to 64 letters, digits, '_', '.' or '-'\n";
    return kUsage;
  }
  const std::string token = NewAccessToken();
  const std::string sha256 = HexDigestOfToken(token);
  const std::string entry = TokenEntry(args, sha256);
  if (!args.append.empty()) {
    std::ofstream out(args.append, std::ios::app);
    out << "\n" << entry;
    out.flush();
    if (!out) {
      std::cerr << "offload: cannot append to " << args.append << "\n";
      return kUsage;
    }
  }
  if (args.json) {
    boost::json::array scopes;
    for (const std::string& s : args.scopes) scopes.emplace_back(s);
    std::cout << WriteJson(boost::json::object{
                     {"name", args.name}, {"token", token}, {"sha256", sha256}, {"scopes", std::move(scopes)}})
              << "\n";
    return kOk;
  }
  std::cout << "A token for \"" << args.name << "\" (shown this once; the server keeps only its SHA-256):\n\n  "
            << token << "\n\n";
  if (args.append.empty()) {
    std::cout << "Add this to the tokens file ([auth] tokens_file), then send the server SIGHUP:\n\n" << entry;
  } else {
    std::cout << "Added to " << args.append << "; send the server SIGHUP to take it:\n\n" << entry;
  }
  std::cout << "\nClients send it as Authorization: Bearer TOKEN (the CLI and the Python client read "
               "$OFFLOAD_TOKEN).\n";
  return kOk;
}

}  // namespace

void AddTokenCommand(CLI::App* app, std::function<int()>* run) {
  CLI::App* token = app->add_subcommand("token", "Access tokens for a server with [auth] (docs/security.md)");
  token->require_subcommand(1);
  auto args = std::make_shared<TokenArgs>();
  CLI::App* create = token->add_subcommand(
      "create", "Make a token and print it once, with the [[tokens]] entry for the server: offload token create NAME");
  create->add_option("name", args->name, "Its name: the tenant whose jobs it submits and sees")->required();
  create->add_option("--scopes", args->scopes, "What it may do: submit, read, cancel, admin (comma-separated)")
      ->delimiter(',')
      ->required();
  create->add_option("--append", args->append, "Also append the entry to this tokens file");
  create->add_flag("--json", args->json, "Print {name, token, sha256, scopes} as JSON, for scripts");
  create->callback([run, args] { *run = [args] { return Create(*args); }; });
}

}  // namespace offload::cli
