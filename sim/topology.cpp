#include "sim/topology.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace crowdtrain::sim {
namespace {

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> out;
  std::string cell;
  std::istringstream in(line);
  while (std::getline(in, cell, ',')) {
    size_t b = cell.find_first_not_of(" \t\r");
    size_t e = cell.find_last_not_of(" \t\r");
    out.push_back(b == std::string::npos ? "" : cell.substr(b, e - b + 1));
  }
  if (!line.empty() && line.back() == ',') out.push_back("");
  return out;
}

}  // namespace

Result<RegionMatrix> load_region_matrix(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::error(path + ": cannot open the region RTT matrix");
  RegionMatrix m;
  std::string line;
  size_t line_no = 0;
  std::vector<std::vector<double>> rows;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    auto cells = split_csv_line(line);
    if (m.names.empty()) {
      if (cells.size() < 2)
        return Status::error(path + ":" + std::to_string(line_no) +
                             ": header must be ',name1,name2,...'");
      m.names.assign(cells.begin() + 1, cells.end());
      continue;
    }
    const size_t n = m.names.size();
    if (cells.size() != n + 1) {
      return Status::error(path + ":" + std::to_string(line_no) + ": expected " +
                           std::to_string(n + 1) + " columns, got " + std::to_string(cells.size()));
    }
    const size_t r = rows.size();
    if (r >= n)
      return Status::error(path + ":" + std::to_string(line_no) + ": more rows than regions");
    if (cells[0] != m.names[r]) {
      return Status::error(path + ":" + std::to_string(line_no) + ": row " + std::to_string(r) +
                           " is '" + cells[0] + "', expected '" + m.names[r] + "'");
    }
    std::vector<double> row;
    for (size_t c = 1; c <= n; ++c) {
      char* end = nullptr;
      const double v = std::strtod(cells[c].c_str(), &end);
      if (cells[c].empty() || end == nullptr || *end != '\0' || !(v >= 0.0) || v > 1e6) {
        return Status::error(path + ":" + std::to_string(line_no) + ": column " +
                             std::to_string(c + 1) + ": '" + cells[c] +
                             "' is not a non-negative RTT in ms");
      }
      row.push_back(v);
    }
    rows.push_back(std::move(row));
  }
  if (m.names.empty()) return Status::error(path + ": empty region RTT matrix");
  if (rows.size() != m.names.size()) {
    return Status::error(path + ": " + std::to_string(m.names.size()) + " regions but " +
                         std::to_string(rows.size()) + " rows");
  }
  const size_t n = m.names.size();
  for (size_t a = 0; a < n; ++a) {
    for (size_t b = 0; b < n; ++b) {
      if (std::abs(rows[a][b] - rows[b][a]) > 1e-9) {
        return Status::error(path + ": not symmetric: " + m.names[a] + "->" + m.names[b] + " is " +
                             std::to_string(rows[a][b]) + " ms but the reverse is " +
                             std::to_string(rows[b][a]) + " ms");
      }
      m.rtt_ms.push_back(rows[a][b]);
    }
  }
  return m;
}

Result<Topology> Topology::build(const Scenario& s) {
  Topology t;
  if (s.network.regions.rtt_csv.empty()) {
    t.regions_.names = {"world"};
    t.regions_.rtt_ms = {0.0};
  } else {
    auto m = load_region_matrix(s.network.regions.rtt_csv);
    if (!m.ok()) return Status::error("network.regions.rtt_csv: " + m.error());
    t.regions_ = std::move(m.value());
  }
  const size_t nr = t.regions_.names.size();
  // Region shares: the weights given (unknown names are errors), equal shares otherwise.
  std::vector<double> share(nr, s.network.regions.weights.empty() ? 1.0 : 0.0);
  for (const auto& [name, w] : s.network.regions.weights) {
    const int r = t.region_index(name);
    if (r < 0)
      return Status::error("network.regions.weights." + name + ": no such region in " +
                           s.network.regions.rtt_csv);
    share[r] = w;
  }
  std::vector<double> class_share;
  for (const auto& c : s.peers.classes) class_share.push_back(c.fraction);

  // Peers are assigned to regions and classes by largest remainder (so shares are exact up to
  // rounding and independent of the seed), then shuffled by the topology stream.
  auto apportion = [](const std::vector<double>& w, uint32_t n) {
    double total = 0.0;
    for (double x : w) total += x;
    std::vector<uint32_t> out;
    std::vector<std::pair<double, size_t>> rema;
    uint32_t given = 0;
    std::vector<uint32_t> counts(w.size(), 0);
    for (size_t i = 0; i < w.size(); ++i) {
      const double exact = total > 0 ? n * w[i] / total : 0.0;
      counts[i] = static_cast<uint32_t>(exact);
      given += counts[i];
      rema.push_back({exact - counts[i], i});
    }
    std::stable_sort(rema.begin(), rema.end(), [](auto& a, auto& b) { return a.first > b.first; });
    for (size_t k = 0; given < n; ++k, ++given) counts[rema[k % rema.size()].second]++;
    for (size_t i = 0; i < w.size(); ++i)
      out.insert(out.end(), counts[i], static_cast<uint32_t>(i));
    return out;
  };
  const uint32_t n = s.peers.count;
  auto region_of = apportion(share, n);
  auto class_of = apportion(class_share, n);
  Rng rng(derive_seed(s.seed, "topology"));
  auto shuffle = [&rng](std::vector<uint32_t>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.uniform_int(i)]);
  };
  shuffle(region_of);
  shuffle(class_of);

  t.peers_.resize(n);
  t.clog_ns_.assign(n, 0);
  t.loss_ppm_.assign(n, 0);
  for (uint32_t p = 0; p < n; ++p) {
    PeerLink& l = t.peers_[p];
    l.region = static_cast<uint16_t>(region_of[p]);
    l.peer_class = static_cast<uint16_t>(class_of[p]);
    const PeerClassSpec& cls = s.peers.classes[l.peer_class];
    l.access_latency_s = s.network.access_latency_ms.sample(rng) * 1e-3;
    const DistSpec& up = cls.has_bandwidth ? cls.upload_mbps : s.network.upload_mbps;
    const DistSpec& down = cls.has_bandwidth ? cls.download_mbps : s.network.download_mbps;
    // A floor of 1 kbit/s keeps a distribution's tail from producing a zero-bandwidth link.
    l.up_bps = std::max(up.sample(rng) * 1e6, 1e3);
    l.down_bps = std::max(down.sample(rng) * 1e6, 1e3);
  }
  t.partition_side_.assign(nr, false);
  return t;
}

int Topology::region_index(const std::string& name) const {
  for (size_t i = 0; i < regions_.names.size(); ++i) {
    if (regions_.names[i] == name) return static_cast<int>(i);
  }
  return -1;
}

double Topology::core_latency_s(size_t ra, size_t rb) const {
  return regions_.rtt(ra, rb) * 0.5e-3;
}

double Topology::one_way_latency_s(PeerId a, PeerId b) const {
  const PeerLink& la = peers_[a];
  const PeerLink& lb = peers_[b];
  return la.access_latency_s + core_latency_s(la.region, lb.region) + lb.access_latency_s;
}

void Topology::set_partition(const std::vector<bool>& side) {
  CT_CHECK(side.size() == regions_.names.size());
  partition_side_ = side;
  partition_active_ = true;
}

void Topology::clear_partition() { partition_active_ = false; }

}  // namespace crowdtrain::sim
