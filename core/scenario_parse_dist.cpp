// parse_dist: a DistSpec from its JSON forms (see core/distribution.h), every parameter checked.

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "core/json_path.h"
#include "core/scenario.h"
#include "core/scenario_parse.h"

namespace crowdtrain {

using nlohmann::json;

namespace {

// The rows of a percentiles table: [[q, value], ...], q rising strictly from 0 to 1, values
// non-decreasing (a quantile function) and inside `value_range`.
void read_table(JsonReader& r, std::vector<std::pair<double, double>>& out,
                const NumberRange& value_range) {
  if (!r.require("table", "for \"percentiles\"")) return;
  const std::string path = r.path_of("table");
  r.array("table", [&](const json& row, const std::string& row_path) {
    if (!row.is_array() || row.size() != 2) {
      r.fail(row_path, "expected a [q, value] pair, got " +
                           (row.is_array() ? "an array of " + std::to_string(row.size())
                                           : json_type_name(row)));
      return;
    }
    auto q = json_to_double(row[0], json_index_path(row_path, 0), NumberRange::fraction());
    if (!q.ok()) return r.absorb(q.status());
    auto v = json_to_double(row[1], json_index_path(row_path, 1), value_range);
    if (!v.ok()) return r.absorb(v.status());
    if (!out.empty() && q.value() <= out.back().first) {
      return r.fail(json_index_path(row_path, 0), "q must rise from row to row, got " +
                                                      json_number_text(q.value()) + " after " +
                                                      json_number_text(out.back().first));
    }
    if (!out.empty() && v.value() < out.back().second) {
      return r.fail(json_index_path(row_path, 1), "values must not fall as q rises, got " +
                                                      json_number_text(v.value()) + " after " +
                                                      json_number_text(out.back().second));
    }
    out.emplace_back(q.value(), v.value());
  });
  if (!r.ok()) return;
  if (out.size() < 2) {
    r.fail(path, "needs at least 2 rows, from q = 0 to q = 1, got " + std::to_string(out.size()));
  } else if (out.front().first != 0.0) {
    r.fail(json_index_path(json_index_path(path, 0), 0),
           "the first q must be 0, got " + json_number_text(out.front().first));
  } else if (out.back().first != 1.0) {
    r.fail(json_index_path(json_index_path(path, out.size() - 1), 0),
           "the last q must be 1, got " + json_number_text(out.back().first));
  }
}

void read_required(JsonReader& r, const std::string& key, double& out, const NumberRange& range,
                   const std::string& kind) {
  if (r.require(key, "for \"" + kind + "\"")) r.read(key, out, range);
}

}  // namespace

Result<DistSpec> parse_dist(const json& v, const std::string& path, bool positive) {
  const NumberRange value_range = positive ? NumberRange::positive() : NumberRange::non_negative();
  if (v.is_number()) {
    auto value = json_to_double(v, path, value_range);
    if (!value.ok()) return value.status();
    return DistSpec::constant(value.value());
  }
  if (!v.is_object()) {
    return json_error(path, "expected a number or a distribution object ({\"dist\": ...}), got " +
                                json_type_name(v));
  }
  static const std::vector<std::pair<std::string, DistSpec::Kind>> kKinds = {
      {"constant", DistSpec::Kind::kConstant},       {"uniform", DistSpec::Kind::kUniform},
      {"exponential", DistSpec::Kind::kExponential}, {"normal", DistSpec::Kind::kNormal},
      {"lognormal", DistSpec::Kind::kLognormal},     {"weibull", DistSpec::Kind::kWeibull},
      {"percentiles", DistSpec::Kind::kPercentiles}};
  std::vector<std::string> names;
  for (const auto& k : kKinds) names.push_back(k.first);

  JsonReader r(v, path);
  std::string kind;
  if (r.require("dist",
                "(one of constant, uniform, exponential, normal, lognormal, weibull, "
                "percentiles)")) {
    r.read_choice("dist", kind, names);
  }
  if (!r.ok()) return r.status();

  DistSpec d;
  for (const auto& k : kKinds) {
    if (k.first == kind) d.kind = k.second;
  }
  switch (d.kind) {
    case DistSpec::Kind::kConstant:
      read_required(r, "value", d.value, value_range, kind);
      break;
    case DistSpec::Kind::kUniform:
      read_required(r, "min", d.min, value_range, kind);
      read_required(r, "max", d.max, value_range, kind);
      if (r.ok() && d.max < d.min) {
        r.fail(r.path_of("max"),
               "must be >= min (" + json_number_text(d.min) + "), got " + json_number_text(d.max));
      }
      break;
    case DistSpec::Kind::kExponential:
      read_required(r, "mean", d.mean, NumberRange::positive(), kind);
      break;
    case DistSpec::Kind::kNormal:
      read_required(r, "mean", d.mean, value_range, kind);
      read_required(r, "stddev", d.stddev, NumberRange::non_negative(), kind);
      break;
    case DistSpec::Kind::kLognormal:
      read_required(r, "median", d.median, NumberRange::positive(), kind);
      read_required(r, "sigma", d.sigma, NumberRange::non_negative(), kind);
      break;
    case DistSpec::Kind::kWeibull: {
      read_required(r, "shape", d.shape, NumberRange::positive(), kind);
      const bool has_scale = r.has("scale"), has_median = r.has("median");
      if (has_scale && has_median) {
        r.fail(path, "weibull takes \"scale\" or \"median\", not both");
      } else if (has_median) {
        double median = 0.0;
        r.read("median", median, NumberRange::positive());
        if (r.ok()) d.scale = median / std::pow(std::log(2.0), 1.0 / d.shape);
      } else if (has_scale) {
        r.read("scale", d.scale, NumberRange::positive());
      } else {
        r.fail(r.path_of("scale"), "required for \"weibull\" (or give \"median\")");
      }
      r.take("scale");
      r.take("median");
      break;
    }
    case DistSpec::Kind::kPercentiles:
      read_table(r, d.table, value_range);
      break;
  }
  Status s = r.finish();
  if (!s.ok()) return s;
  return d;
}

namespace scenario_detail {

void read_dist(JsonReader& r, const std::string& key, DistSpec& out, bool positive) {
  const json* v = r.take(key);
  if (!v) return;
  auto d = parse_dist(*v, r.path_of(key), positive);
  if (d.ok()) {
    out = std::move(d).value();
  } else {
    r.absorb(d.status());
  }
}

}  // namespace scenario_detail

}  // namespace crowdtrain
