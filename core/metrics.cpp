#include "core/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>
#include <limits>

#include "core/status.h"

namespace crowdtrain {
namespace {

// The peer id of "world" events (core/runtime.h's kNoPeer); printed as -1.
constexpr uint32_t kWorldPeer = 0xFFFFFFFFu;

void append_int(std::string& out, int64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, r.ptr);
}

// Deterministic across runs and locales: std::to_chars, defined to print as printf's %.9g in the C
// locale. NaN and the infinities are not JSON numbers and print as null.
void append_double(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::general, 9);
  out.append(buf, r.ptr);
}

void append_json_string(std::string& out, std::string_view s) {
  static const char* kHex = "0123456789abcdef";
  out.push_back('"');
  for (char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xF]);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

}  // namespace

MetricsSink::MetricsSink() { line_.reserve(256); }

MetricsSink::~MetricsSink() { close_event_file(); }

bool MetricsSink::open_event_file(const std::string& path) {
  close_event_file();
  event_file_ = std::fopen(path.c_str(), "wb");
  if (event_file_ == nullptr) return false;
  // Event lines are small and many; a large buffer keeps the write calls few.
  std::setvbuf(event_file_, nullptr, _IOFBF, 1 << 20);
  return true;
}

void MetricsSink::close_event_file() {
  if (event_file_ == nullptr) return;
  std::fclose(event_file_);
  event_file_ = nullptr;
}

void MetricsSink::count(std::string_view name, int64_t delta) {
  auto it = counters_.find(name);
  if (it == counters_.end()) it = counters_.emplace(std::string(name), 0).first;
  it->second += delta;
}

void MetricsSink::observe(std::string_view name, double value) {
  auto it = samples_.find(name);
  if (it == samples_.end()) {
    it = samples_.emplace(std::string(name), Series()).first;
    it->second.rng = std::hash<std::string_view>()(name) | 1;
  }
  Series& s = it->second;
  ++s.count;
  s.sum += value;
  if (s.kept.size() < kMaxKeptSamples) {
    s.kept.push_back(value);
    return;
  }
  // splitmix64: value number `count` replaces a kept one with probability kMaxKeptSamples / count.
  uint64_t z = (s.rng += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  const uint64_t j = z % s.count;
  if (j < kMaxKeptSamples) s.kept[j] = value;
}

void MetricsSink::event(Time t, uint32_t peer, std::string_view kind, EventDetail detail,
                        std::initializer_list<EventField> fields) {
  if (!logs(detail)) return;
  line_.clear();
  line_ += "{\"t_ns\":";
  append_int(line_, static_cast<int64_t>(t.count()));
  line_ += ",\"peer\":";
  append_int(line_, peer == kWorldPeer ? int64_t{-1} : static_cast<int64_t>(peer));
  line_ += ",\"ev\":";
  append_json_string(line_, kind);
  for (const EventField& f : fields) {
    line_.push_back(',');
    append_json_string(line_, f.key);
    line_.push_back(':');
    if (const auto* i = std::get_if<int64_t>(&f.value)) {
      append_int(line_, *i);
    } else if (const auto* d = std::get_if<double>(&f.value)) {
      append_double(line_, *d);
    } else {
      append_json_string(line_, std::get<std::string_view>(f.value));
    }
  }
  line_ += "}\n";
  hash_.update(line_);
  if (event_file_ != nullptr) {
    const size_t written = std::fwrite(line_.data(), 1, line_.size(), event_file_);
    CT_CHECK(written == line_.size());
    // A lifecycle event reaches the file within seconds of wall time, so that a long run can be
    // read while it goes (and what it logged survives its being stopped).
    if (detail == EventDetail::kLifecycle) {
      const auto now = std::chrono::steady_clock::now();
      if (now - last_flush_ >= std::chrono::seconds(2)) {
        std::fflush(event_file_);
        last_flush_ = now;
      }
    }
  }
  ++events_logged_;
}

int64_t MetricsSink::counter(std::string_view name) const {
  auto it = counters_.find(name);
  return it == counters_.end() ? 0 : it->second;
}

double MetricsSink::percentile(std::string_view name, double q) const {
  auto it = samples_.find(name);
  if (it == samples_.end() || it->second.kept.empty()) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  // A copy, so that the kept values stay in place for the reservoir.
  // NaN samples have no rank (and would break nth_element's ordering); they are left out.
  std::vector<double> v;
  v.reserve(it->second.kept.size());
  for (double x : it->second.kept) {
    if (!std::isnan(x)) v.push_back(x);
  }
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  // Nearest rank: the smallest sample with at least q of the samples at or below it. The epsilon
  // keeps 0.07 * 100 = 7.000000000000001 at rank 7.
  q = std::clamp(q, 0.0, 1.0);
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size()) - 1e-9));
  if (rank < 1) rank = 1;
  if (rank > v.size()) rank = v.size();
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(rank - 1), v.end());
  return v[rank - 1];
}

size_t MetricsSink::sample_count(std::string_view name) const {
  auto it = samples_.find(name);
  return it == samples_.end() ? 0 : static_cast<size_t>(it->second.count);
}

double MetricsSink::sample_mean(std::string_view name) const {
  auto it = samples_.find(name);
  if (it == samples_.end() || it->second.count == 0) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  return it->second.sum / static_cast<double>(it->second.count);
}

std::string MetricsSink::event_log_sha256() const { return hash_.hex_digest(); }

std::vector<std::string> MetricsSink::sample_names() const {
  std::vector<std::string> names;
  for (const auto& [name, v] : samples_) names.push_back(name);
  return names;
}

}  // namespace crowdtrain
