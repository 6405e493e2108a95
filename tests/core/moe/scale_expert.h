// A test expert without LibTorch: y = w * x elementwise on [n, d] float32 rows, with a scalar w
// that backward() updates by plain SGD (w -= lr * lr_scale * sum(x * g), or the mean of that sum
// over the calls accumulated since the last step). It logs every call (its tag, the batch size and
// the update rule) into a shared log so tests can check batching and the order of batches, and
// saves and loads w as its checkpoint. Plus helpers to build and read float32 TensorData.
#pragma once

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/moe/expert.h"
#include "core/moe/protocol.h"

namespace crowdtrain::moe::testing {

inline TensorData floats(std::vector<int64_t> shape, const std::vector<float>& values) {
  TensorData t;
  t.dtype = DType::kFloat32;
  t.shape = std::move(shape);
  t.bytes = Bytes::copy_of(values.data(), values.size() * sizeof(float));
  return t;
}

inline std::vector<float> values_of(const TensorData& t) {
  std::vector<float> v(t.bytes.size / sizeof(float));
  if (!v.empty()) std::memcpy(v.data(), t.bytes.data, t.bytes.size);
  return v;
}

// Rows 0..n-1 of width d with distinct values: row r, column j = base + r * d + j.
inline TensorData rows_of(int64_t n, int64_t d, float base) {
  std::vector<float> v(size_t(n * d));
  for (size_t i = 0; i < v.size(); ++i) v[i] = base + float(i);
  return floats({n, d}, v);
}

struct CallLog {
  std::vector<std::string> calls;  // "<tag>.f" or "<tag>.b", in order
  std::vector<int64_t> batch_sizes;
  std::vector<double> lr_scales;  // per backward call
  std::vector<bool> steps;        // per backward call: UpdateRule::step
};

class ScaleExpert final : public Expert {
 public:
  ScaleExpert(std::string tag, int64_t dim, float w, float lr, std::shared_ptr<CallLog> log,
              double flops_per_sample = 1000)
      : tag_(std::move(tag)), w_(w), lr_(lr), log_(std::move(log)) {
    info_.input_shape = {dim};
    info_.output_shape = {dim};
    info_.parameters = 1;
    info_.forward_flops_per_sample = flops_per_sample;
    info_.backward_flops_per_sample = 3 * flops_per_sample;
  }
  const ExpertInfo& info() const override { return info_; }
  float w() const { return w_; }

  Result<TensorData> forward(const TensorData& x) override {
    if (Status s = check(x, "inputs"); !s.ok()) return s;
    record("f", x.shape[0]);
    std::vector<float> v = values_of(x);
    for (float& e : v) e *= w_;
    return floats(x.shape, v);
  }
  using Expert::backward;
  Result<TensorData> backward(const TensorData& x, const TensorData& g,
                              const UpdateRule& rule) override {
    if (Status s = check(x, "inputs"); !s.ok()) return s;
    if (Status s = check(g, "grad_outputs"); !s.ok()) return s;
    record("b", x.shape[0]);
    const std::vector<float> xv = values_of(x), gv = values_of(g);
    float grad_w = 0;
    std::vector<float> gi(gv.size());
    for (size_t i = 0; i < xv.size(); ++i) {
      grad_w += xv[i] * gv[i];
      gi[i] = w_ * gv[i];
    }
    if (!std::isfinite(grad_w)) return Status::error("scale expert: non-finite gradient of w");
    if (log_) {
      log_->lr_scales.push_back(rule.lr_scale);
      log_->steps.push_back(rule.step);
    }
    if (rule.lr_scale > 0) {
      accumulated_ += grad_w;
      ++pending_;
      if (rule.step) {  // the mean of the accumulated calls' gradients
        w_ -= lr_ * float(rule.lr_scale) * accumulated_ / float(pending_);
        accumulated_ = 0;
        pending_ = 0;
        ++updates_;
      }
    }
    return floats(x.shape, gi);
  }
  uint64_t updates() const override { return updates_; }
  Result<std::string> save_state() const override {
    std::string s = "scale1";
    s.append(reinterpret_cast<const char*>(&w_), sizeof(w_));
    s.append(reinterpret_cast<const char*>(&updates_), sizeof(updates_));
    return s;
  }
  Status load_state(const std::string& bytes) override {
    if (bytes.size() != 6 + sizeof(w_) + sizeof(updates_) || bytes.compare(0, 6, "scale1") != 0) {
      return Status::error("scale expert: not a scale1 checkpoint (" +
                           std::to_string(bytes.size()) + " bytes)");
    }
    std::memcpy(&w_, bytes.data() + 6, sizeof(w_));
    std::memcpy(&updates_, bytes.data() + 6 + sizeof(w_), sizeof(updates_));
    return Status::ok_status();
  }

 private:
  Status check(const TensorData& t, const char* name) const {
    if (t.dtype != DType::kFloat32 || sample_shape_of(t) != info_.input_shape ||
        t.bytes.size != float_bytes(t.shape) || !all_finite(t)) {
      return Status::error(std::string("scale expert: bad ") + name);
    }
    return Status::ok_status();
  }
  void record(const char* dir, int64_t n) {
    if (!log_) return;
    log_->calls.push_back(tag_ + "." + dir);
    log_->batch_sizes.push_back(n);
  }

  std::string tag_;
  ExpertInfo info_;
  float w_;
  float lr_;
  uint64_t updates_ = 0;
  float accumulated_ = 0;  // grad w summed over the calls since the last step
  uint64_t pending_ = 0;
  std::shared_ptr<CallLog> log_;
};

}  // namespace crowdtrain::moe::testing
