// Builder-style options, as LibTorch's `LinearOptions`: inside `class FooOptions { ... };`,
// CT_OPTION(FooOptions, type, name, default) declares a private member `name_` with a chaining
// setter `FooOptions& name(type)` and a getter `const type& name() const`. Each part keeps its
// options class beside the code it configures; this header only saves them writing the accessors.
#pragma once

#include <utility>

#define CT_OPTION(Class, type, name, init)     \
 public:                                       \
  Class& name(type v) {                        \
    name##_ = std::move(v);                    \
    return *this;                              \
  }                                            \
  const type& name() const { return name##_; } \
                                               \
 private:                                      \
  type name##_ = init;
