// Expected failures as values. A Status is ok or carries a message that says what failed and where,
// and a code that says what kind of failure it was (so that a caller can tell a peer that refused
// a request, and is therefore alive, from one that never answered); Result<T> is a value or a
// failed Status. Invariants that must never break use CT_CHECK, which
// stays on in release builds and aborts with the file, line and condition.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>

namespace crowdtrain {

enum class StatusCode : uint8_t {
  kOk = 0,
  kError,     // a failure with no more specific kind (bad input, a local limit, ...)
  kRefused,   // the other end answered with an error: it is alive, it said no
  kTimedOut,  // no answer after every attempt: the other end is dead, unreachable or too slow
};

class Status {
 public:
  Status() = default;
  static Status ok_status() { return Status(); }
  static Status error(std::string message) {
    return Status(StatusCode::kError, std::move(message));
  }
  static Status refused(std::string message) {
    return Status(StatusCode::kRefused, std::move(message));
  }
  static Status timed_out(std::string message) {
    return Status(StatusCode::kTimedOut, std::move(message));
  }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  bool is_refused() const { return code_ == StatusCode::kRefused; }
  bool is_timed_out() const { return code_ == StatusCode::kTimedOut; }
  const std::string& message() const { return message_; }

 private:
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    if (status_.ok()) status_ = Status::error("Result built from an ok Status without a value");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  const std::string& error() const { return status_.message(); }

  T& value() & { return checked(); }
  const T& value() const& { return const_cast<Result*>(this)->checked(); }
  T&& value() && { return std::move(checked()); }
  T* operator->() { return &checked(); }
  const T* operator->() const { return &const_cast<Result*>(this)->checked(); }
  T& operator*() { return checked(); }

 private:
  T& checked() {
    if (!value_) {
      std::fprintf(stderr, "Result::value() on an error: %s\n", status_.message().c_str());
      std::abort();
    }
    return *value_;
  }
  std::optional<T> value_;
  Status status_;
};

}  // namespace crowdtrain

#define CT_CHECK(cond)                                                                  \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)
