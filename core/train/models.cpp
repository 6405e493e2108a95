// The models of models.h as torch::nn modules, wrapped in Model. Parameter order (and so the layout
// of the flat vector) is the module's registration order, the same on every peer.
#include "core/train/models.h"

#include <torch/torch.h>

#include <sstream>
#include <utility>

namespace crowdtrain::train {

double linear_flops(int64_t in, int64_t out, int64_t batch) {
  return 2.0 * static_cast<double>(in) * static_cast<double>(out) * static_cast<double>(batch);
}

double conv2d_flops(int64_t c_in, int64_t c_out, int64_t kernel, int64_t out_h, int64_t out_w,
                    int64_t batch) {
  return 2.0 * static_cast<double>(kernel * kernel * c_in * c_out) *
         static_cast<double>(out_h * out_w) * static_cast<double>(batch);
}

namespace {

// Pre-norm residual feed-forward block: x + W2 GELU(W1 LayerNorm(x)).
struct FfnBlockImpl : torch::nn::Module {
  FfnBlockImpl(int64_t d, int64_t expansion)
      : norm(register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})))),
        up(register_module("up", torch::nn::Linear(d, expansion * d))),
        down(register_module("down", torch::nn::Linear(expansion * d, d))) {}
  torch::Tensor forward(const torch::Tensor& x) { return x + down(torch::gelu(up(norm(x)))); }
  torch::nn::LayerNorm norm;
  torch::nn::Linear up, down;
};
TORCH_MODULE(FfnBlock);

double ffn_block_flops(int64_t d, int64_t expansion, int64_t batch) {
  return linear_flops(d, expansion * d, batch) + linear_flops(expansion * d, d, batch);
}

// A Model over a Sequential; `reshape` (if any) is applied to the input first.
class SequentialModel final : public Model {
 public:
  SequentialModel(torch::nn::Sequential seq, double flops_per_sample, std::string text,
                  std::vector<int64_t> input_shape)
      : seq_(std::move(seq)),
        flops_per_sample_(flops_per_sample),
        text_(std::move(text)),
        input_shape_(std::move(input_shape)) {}

  at::Tensor forward(const at::Tensor& x) override {
    if (input_shape_.empty()) return seq_->forward(x);
    return seq_->forward(x.view(input_shape_));
  }
  torch::nn::Module& module() override { return *seq_.ptr(); }
  const torch::nn::Module& module() const override { return *seq_.ptr(); }
  double forward_flops(int64_t batch) const override {
    return flops_per_sample_ * static_cast<double>(batch);
  }
  std::string describe() const override { return text_; }

 private:
  torch::nn::Sequential seq_;
  double flops_per_sample_;
  std::string text_;
  std::vector<int64_t> input_shape_;  // empty: no reshape
};

std::unique_ptr<Model> make_mlp(const ModelOptions& o) {
  CT_CHECK(o.input_dim() > 0 && o.hidden() > 0 && o.depth() >= 1 && o.num_classes() > 1);
  torch::nn::Sequential seq;
  double flops = 0;
  int64_t in = o.input_dim();
  std::ostringstream text;
  text << "mlp " << in;
  for (int64_t i = 0; i < o.depth(); ++i) {
    seq->push_back(torch::nn::Linear(in, o.hidden()));
    seq->push_back(torch::nn::ReLU());
    flops += linear_flops(in, o.hidden(), 1);
    in = o.hidden();
    text << "-" << in;
  }
  seq->push_back(torch::nn::Linear(in, o.num_classes()));
  flops += linear_flops(in, o.num_classes(), 1);
  text << "-" << o.num_classes();
  return std::make_unique<SequentialModel>(seq, flops, text.str(), std::vector<int64_t>{});
}

std::unique_ptr<Model> make_cnn(const ModelOptions& o) {
  const int64_t side = o.image_side(), c1 = o.conv1_channels(), c2 = o.conv2_channels();
  CT_CHECK(side > 0 && side % 4 == 0 && side * side == o.input_dim());
  CT_CHECK(c1 > 0 && c2 > 0 && o.hidden() > 0 && o.num_classes() > 1);
  constexpr int64_t kKernel = 5;
  const int64_t flat = c2 * (side / 4) * (side / 4);
  torch::nn::Sequential seq(
      torch::nn::Conv2d(torch::nn::Conv2dOptions(1, c1, kKernel).padding(kKernel / 2)),
      torch::nn::ReLU(), torch::nn::MaxPool2d(2),
      torch::nn::Conv2d(torch::nn::Conv2dOptions(c1, c2, kKernel).padding(kKernel / 2)),
      torch::nn::ReLU(), torch::nn::MaxPool2d(2), torch::nn::Flatten(),
      torch::nn::Linear(flat, o.hidden()), torch::nn::ReLU(),
      torch::nn::Linear(o.hidden(), o.num_classes()));
  const double flops = conv2d_flops(1, c1, kKernel, side, side, 1) +
                       conv2d_flops(c1, c2, kKernel, side / 2, side / 2, 1) +
                       linear_flops(flat, o.hidden(), 1) +
                       linear_flops(o.hidden(), o.num_classes(), 1);
  std::ostringstream text;
  text << "cnn " << side << "x" << side << " conv" << c1 << "-conv" << c2 << "-fc" << o.hidden()
       << "-" << o.num_classes();
  return std::make_unique<SequentialModel>(seq, flops, text.str(),
                                           std::vector<int64_t>{-1, 1, side, side});
}

std::unique_ptr<Model> make_ffn(const ModelOptions& o, bool whole_net) {
  const int64_t d = o.hidden(), e = o.ffn_expansion();
  CT_CHECK(d > 0 && e > 0);
  torch::nn::Sequential seq;
  std::ostringstream text;
  if (!whole_net) {
    seq->push_back(FfnBlock(d, e));
    text << "ffn_block d=" << d << " inner=" << e * d;
    return std::make_unique<SequentialModel>(seq, ffn_block_flops(d, e, 1), text.str(),
                                             std::vector<int64_t>{});
  }
  CT_CHECK(o.input_dim() > 0 && o.depth() >= 0 && o.num_classes() > 1);
  seq->push_back(torch::nn::Linear(o.input_dim(), d));
  for (int64_t i = 0; i < o.depth(); ++i) seq->push_back(FfnBlock(d, e));
  seq->push_back(torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
  seq->push_back(torch::nn::Linear(d, o.num_classes()));
  const double flops = linear_flops(o.input_dim(), d, 1) +
                       static_cast<double>(o.depth()) * ffn_block_flops(d, e, 1) +
                       linear_flops(d, o.num_classes(), 1);
  text << "ffn_net " << o.input_dim() << "-" << d << " x" << o.depth() << " blocks (inner " << e * d
       << ")-" << o.num_classes();
  return std::make_unique<SequentialModel>(seq, flops, text.str(), std::vector<int64_t>{});
}

}  // namespace

std::unique_ptr<Model> make_model(const ModelOptions& options, uint64_t init_seed) {
  torch::manual_seed(init_seed);
  switch (options.kind()) {
    case ModelKind::kMlp:
      return make_mlp(options);
    case ModelKind::kCnn:
      return make_cnn(options);
    case ModelKind::kFfnNet:
      return make_ffn(options, true);
    case ModelKind::kFfnBlock:
      return make_ffn(options, false);
  }
  CT_CHECK(false && "unknown ModelKind");
  return nullptr;
}

int64_t count_parameters(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const torch::Tensor& p : module.parameters()) n += p.numel();
  return n;
}

at::Tensor flatten_parameters(const torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  for (const torch::Tensor& p : module.parameters()) {
    parts.push_back(p.detach().reshape({-1}).to(torch::kCPU, torch::kFloat32));
  }
  if (parts.empty()) return torch::empty({0}, torch::kFloat32);
  return torch::cat(parts);
}

Status unflatten_parameters(const at::Tensor& flat, torch::nn::Module& module) {
  if (!flat.defined() || flat.dim() != 1 || !flat.is_floating_point()) {
    return Status::error("unflatten_parameters: expected a 1-D floating-point tensor");
  }
  const int64_t n = count_parameters(module);
  if (flat.numel() != n) {
    return Status::error("unflatten_parameters: the vector has " + std::to_string(flat.numel()) +
                         " elements, the model " + std::to_string(n) + " parameters");
  }
  torch::NoGradGuard no_grad;
  int64_t offset = 0;
  for (torch::Tensor& p : module.parameters()) {
    p.copy_(flat.narrow(0, offset, p.numel()).reshape_as(p));
    offset += p.numel();
  }
  return Status();
}

}  // namespace crowdtrain::train
