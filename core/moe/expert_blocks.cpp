// The built-in blocks as torch::nn modules, their parameter counts and FLOPs. FLOPs count
// 2 x multiply-adds of the matrix products only (biases, norms, activations and softmax are
// left out, a few percent at these widths); the backward (recomputed forward + gradients with
// respect to inputs and weights) is 3x the forward. Parameter names (fc1.weight, ...) are part
// of the checkpoint format and of what the tests read.
#include "core/moe/expert_blocks.h"

#include <torch/torch.h>

#include <sstream>
#include <utility>

namespace crowdtrain::moe {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  s << "]";
  return s.str();
}

std::string torch_error_text(const std::exception& e) {
  std::istringstream text(e.what());
  std::string line, first, last;
  while (std::getline(text, line)) {
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    if (first.empty()) first = line;
    last = line;
  }
  return first.rfind("The following operation failed", 0) == 0 ? last : first;
}

namespace {

namespace nn = torch::nn;

int64_t inner_width(const ExpertConfig& c) {
  return c.ffn_dim() > 0 ? c.ffn_dim() : 4 * c.hidden();
}

// Initialises LibTorch's default CPU generator from `seed` for the lifetime of the guard, then
// puts its previous state back, so building an expert leaves no trace on other randomness.
class SeedGuard {
 public:
  explicit SeedGuard(uint64_t seed)
      : gen_(at::detail::getDefaultCPUGenerator()), saved_(gen_.get_state()) {
    gen_.set_current_seed(seed);
  }
  ~SeedGuard() { gen_.set_state(saved_); }

 private:
  at::Generator gen_;
  at::Tensor saved_;
};

// hivemind's "ffn": LayerNorm(x + fc2(GELU(fc1(x)))).
struct FfnImpl : nn::Module {
  FfnImpl(int64_t h, int64_t f)
      : fc1(register_module("fc1", nn::Linear(h, f))),
        fc2(register_module("fc2", nn::Linear(f, h))),
        norm(register_module("norm", nn::LayerNorm(nn::LayerNormOptions({h})))) {}
  torch::Tensor forward(const torch::Tensor& x) { return norm(x + fc2(torch::gelu(fc1(x)))); }
  nn::Linear fc1, fc2;
  nn::LayerNorm norm;
};

// The paper's residual block: x + fc3(ReLU(norm2(fc2(ReLU(norm1(fc1(x))))))).
struct ResidualFfnImpl : nn::Module {
  ResidualFfnImpl(int64_t h, int64_t f)
      : fc1(register_module("fc1", nn::Linear(h, f))),
        norm1(register_module("norm1", nn::LayerNorm(nn::LayerNormOptions({f})))),
        fc2(register_module("fc2", nn::Linear(f, f))),
        norm2(register_module("norm2", nn::LayerNorm(nn::LayerNormOptions({f})))),
        fc3(register_module("fc3", nn::Linear(f, h))) {}
  torch::Tensor forward(const torch::Tensor& x) {
    return x + fc3(torch::relu(norm2(fc2(torch::relu(norm1(fc1(x)))))));
  }
  nn::Linear fc1;
  nn::LayerNorm norm1;
  nn::Linear fc2;
  nn::LayerNorm norm2;
  nn::Linear fc3;
};

// One post-norm encoder layer (LibTorch's), GELU, no dropout. Samples are [seq_len, h] (or [h]
// when seq_len is 0); LibTorch wants [seq, batch, h], so the batch is transposed in and out.
struct TransformerImpl : nn::Module {
  TransformerImpl(int64_t h, int64_t heads, int64_t f, int64_t seq_len)
      : layer(register_module(
            "layer", nn::TransformerEncoderLayer(nn::TransformerEncoderLayerOptions(h, heads)
                                                     .dim_feedforward(f)
                                                     .dropout(0.0)
                                                     .activation(torch::kGELU)))),
        seq_len_(seq_len) {}
  torch::Tensor forward(const torch::Tensor& x) {
    if (seq_len_ == 0) return layer(x.unsqueeze(0)).squeeze(0);
    return layer(x.transpose(0, 1)).transpose(0, 1).contiguous();
  }
  nn::TransformerEncoderLayer layer;
  int64_t seq_len_;
};

template <typename Impl>
class Block final : public ExpertModule {
 public:
  Block(std::shared_ptr<Impl> impl, std::string architecture)
      : impl_(std::move(impl)), architecture_(std::move(architecture)) {}
  torch::nn::Module& module() override { return *impl_; }
  at::Tensor forward(const at::Tensor& batch) override { return impl_->forward(batch); }
  std::string architecture() const override { return architecture_; }

 private:
  std::shared_ptr<Impl> impl_;
  std::string architecture_;
};

Status check_widths(const ExpertConfig& c) {
  if (c.hidden() < 1 || c.hidden() > kMaxExpertWidth) {
    return Status::error("expert '" + c.kind() + "': hidden " + std::to_string(c.hidden()) +
                         " outside [1, " + std::to_string(kMaxExpertWidth) + "]");
  }
  if (c.ffn_dim() < 0 || c.ffn_dim() > kMaxExpertWidth) {
    return Status::error("expert '" + c.kind() + "': ffn_dim " + std::to_string(c.ffn_dim()) +
                         " outside [0, " + std::to_string(kMaxExpertWidth) + "] (0 = 4 * hidden)");
  }
  return Status();
}

Result<ExpertInfo> finish(const ExpertConfig& c, std::vector<int64_t> sample, double params,
                          double flops) {
  if (params > static_cast<double>(kMaxExpertParameters)) {
    return Status::error("expert '" + c.kind() + "': " + std::to_string(params) +
                         " parameters exceed the limit of " + std::to_string(kMaxExpertParameters));
  }
  ExpertInfo info;
  info.input_shape = sample;
  info.output_shape = std::move(sample);
  info.parameters = static_cast<int64_t>(params);
  info.forward_flops_per_sample = flops;
  info.backward_flops_per_sample = 3.0 * flops;
  return info;
}

// Parameters: fc1 h*f + f, fc2 f*h + h, norm 2h. FLOPs: 2 * (h*f + f*h).
Result<ExpertInfo> ffn_info(const ExpertConfig& c) {
  if (Status s = check_widths(c); !s.ok()) return s;
  const double h = static_cast<double>(c.hidden()), f = static_cast<double>(inner_width(c));
  return finish(c, {c.hidden()}, 2 * h * f + f + 3 * h, 4 * h * f);
}

// Parameters: fc1 h*f + f, norm1 2f, fc2 f*f + f, norm2 2f, fc3 f*h + h.
// FLOPs: 2 * (h*f + f*f + f*h).
Result<ExpertInfo> residual_ffn_info(const ExpertConfig& c) {
  if (Status s = check_widths(c); !s.ok()) return s;
  const double h = static_cast<double>(c.hidden()), f = static_cast<double>(inner_width(c));
  return finish(c, {c.hidden()}, 2 * h * f + f * f + 6 * f + h, 4 * h * f + 2 * f * f);
}

// Parameters (d = hidden): attention in-projection 3d*d + 3d, out-projection d*d + d, linear1
// f*d + f, linear2 d*f + d, two norms 4d. FLOPs per sample of s tokens (s = max(seq_len, 1)):
// s * 2 * (3d*d + d*d + 2*d*f) for the projections and the feed-forward, plus attention's
// 2 * (s*s*d) for the scores Q K^T and 2 * (s*s*d) for the weighted sum of V.
Result<ExpertInfo> transformer_info(const ExpertConfig& c) {
  if (Status s = check_widths(c); !s.ok()) return s;
  if (c.heads() < 1 || c.hidden() % c.heads() != 0) {
    return Status::error("expert 'transformer': heads " + std::to_string(c.heads()) +
                         " must be >= 1 and divide hidden " + std::to_string(c.hidden()));
  }
  if (c.seq_len() < 0 || c.seq_len() > kMaxExpertSeqLen) {
    return Status::error("expert 'transformer': seq_len " + std::to_string(c.seq_len()) +
                         " outside [0, " + std::to_string(kMaxExpertSeqLen) + "]");
  }
  const double d = static_cast<double>(c.hidden()), f = static_cast<double>(inner_width(c));
  const double s = static_cast<double>(std::max<int64_t>(c.seq_len(), 1));
  std::vector<int64_t> sample = {c.hidden()};
  if (c.seq_len() > 0) sample = {c.seq_len(), c.hidden()};
  const double params = 4 * d * d + 2 * d * f + 9 * d + f;
  const double flops = s * 2 * (4 * d * d + 2 * d * f) + 4 * s * s * d;
  return finish(c, std::move(sample), params, flops);
}

std::string architecture(const ExpertConfig& c) {
  std::ostringstream a;
  a << c.kind() << " hidden=" << c.hidden() << " ffn_dim=" << inner_width(c);
  if (c.kind() == "transformer") a << " heads=" << c.heads() << " seq_len=" << c.seq_len();
  return a.str();
}

Result<std::unique_ptr<ExpertModule>> build_ffn(const ExpertConfig& c) {
  SeedGuard seed(c.seed());
  auto impl = std::make_shared<FfnImpl>(c.hidden(), inner_width(c));
  return std::unique_ptr<ExpertModule>(new Block<FfnImpl>(std::move(impl), architecture(c)));
}

Result<std::unique_ptr<ExpertModule>> build_residual_ffn(const ExpertConfig& c) {
  SeedGuard seed(c.seed());
  auto impl = std::make_shared<ResidualFfnImpl>(c.hidden(), inner_width(c));
  return std::unique_ptr<ExpertModule>(
      new Block<ResidualFfnImpl>(std::move(impl), architecture(c)));
}

Result<std::unique_ptr<ExpertModule>> build_transformer(const ExpertConfig& c) {
  SeedGuard seed(c.seed());
  auto impl = std::make_shared<TransformerImpl>(c.hidden(), c.heads(), inner_width(c), c.seq_len());
  return std::unique_ptr<ExpertModule>(
      new Block<TransformerImpl>(std::move(impl), architecture(c)));
}

}  // namespace

std::vector<BuiltinKind> builtin_kinds() {
  return {{"ffn", ffn_info, build_ffn},
          {"residual_ffn", residual_ffn_info, build_residual_ffn},
          {"torchscript", torchscript_info, build_torchscript},
          {"transformer", transformer_info, build_transformer}};
}

}  // namespace crowdtrain::moe
