#include "metrics/metrics_text.h"

#include <fmt/format.h>

#include <cmath>

namespace offload {

namespace {

std::string_view TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// A label value escapes backslash, double quote and line feed; HELP text escapes
// backslash and line feed only.
void AppendEscaped(std::string* out, std::string_view text, bool quote) {
  for (char c : text) {
    if (c == '\\') {
      *out += "\\\\";
    } else if (c == '\n') {
      *out += "\\n";
    } else if (c == '"' && quote) {
      *out += "\\\"";
    } else {
      *out += c;
    }
  }
}

// Go's ParseFloat reads what fmt writes for a finite double (shortest round trip);
// the infinities and NaN have names of their own.
void AppendNumber(std::string* out, double value) {
  if (std::isnan(value)) {
    *out += "NaN";
  } else if (std::isinf(value)) {
    *out += value > 0 ? "+Inf" : "-Inf";
  } else {
    fmt::format_to(std::back_inserter(*out), "{}", value);
  }
}

}  // namespace

void MetricsText::Family(std::string_view name, MetricType type, std::string_view help) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  AppendEscaped(&out_, help, false);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += TypeName(type);
  out_ += '\n';
}

void MetricsText::BeginSample(std::string_view name, std::string_view suffix, MetricLabels labels,
                              std::string_view le) {
  out_ += name;
  out_ += suffix;
  if (labels.size() > 0 || !le.empty()) {
    out_ += '{';
    bool first = true;
    auto label = [&](std::string_view n, std::string_view v) {
      if (!first) out_ += ',';
      first = false;
      out_ += n;
      out_ += "=\"";
      AppendEscaped(&out_, v, true);
      out_ += '"';
    };
    for (const MetricLabel& l : labels) label(l.name, l.value);
    if (!le.empty()) label("le", le);
    out_ += '}';
  }
  out_ += ' ';
}

void MetricsText::Sample(std::string_view name, MetricLabels labels, double value) {
  BeginSample(name, "", labels);
  AppendNumber(&out_, value);
  out_ += '\n';
}

void MetricsText::Sample(std::string_view name, MetricLabels labels, std::int64_t value) {
  BeginSample(name, "", labels);
  fmt::format_to(std::back_inserter(out_), "{}\n", value);
}

void MetricsText::Sample(std::string_view name, MetricLabels labels, std::uint64_t value) {
  BeginSample(name, "", labels);
  fmt::format_to(std::back_inserter(out_), "{}\n", value);
}

void MetricsText::Samples(std::string_view name, MetricLabels labels, const Histogram& histogram) {
  std::uint64_t cumulative = 0;
  std::string le;
  for (std::size_t i = 0; i < histogram.counts().size(); ++i) {
    cumulative += histogram.counts()[i];
    le.clear();
    if (i < histogram.bounds().size()) {
      AppendNumber(&le, histogram.bounds()[i]);
    } else {
      le = "+Inf";
    }
    BeginSample(name, "_bucket", labels, le);
    fmt::format_to(std::back_inserter(out_), "{}\n", cumulative);
  }
  BeginSample(name, "_sum", labels);
  AppendNumber(&out_, histogram.sum());
  out_ += '\n';
  BeginSample(name, "_count", labels);
  fmt::format_to(std::back_inserter(out_), "{}\n", histogram.count());
}

}  // namespace offload
