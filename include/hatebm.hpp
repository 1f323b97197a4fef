/*
 * hatebm.hpp - header-only C++17 wrapper over hatebm.h.
 * SPDX-License-Identifier: MIT OR Apache-2.0
 *
 * Hand-written (hatebm.h is generated). It adds, and only adds:
 *   - hatebm::Error, an exception carrying a hatebm_status and the message;
 *   - hatebm::check(status), which throws hatebm::Error on failure;
 *   - hatebm::Handle<T, Free>, unique ownership of an opaque handle;
 *   - hatebm::copy_string / copy_vector for the (buf, len, out_n) copy-out calls;
 *   - hatebm::Callback<R(Args...)>, which passes a C++ callable as a C callback
 *     and keeps C++ exceptions from crossing the C ABI.
 *
 * Pattern for a new handle type (see TestObject at the end for a full example):
 *
 *     using Session = hatebm::Handle<hatebm_session, hatebm_session_free>;
 *     Session s;
 *     hatebm::check(hatebm_session_new(cfg.get(), s.out()));
 *
 * Everything is inline, so this header may be included in any number of
 * translation units of one program.
 */
#ifndef HATEBM_HPP
#define HATEBM_HPP

#include "hatebm.h"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#if !defined(__cplusplus) || __cplusplus < 201703L
#if !defined(_MSVC_LANG) || _MSVC_LANG < 201703L
#error "hatebm.hpp needs C++17 or later"
#endif
#endif

namespace hatebm {

/// A failed hatebm call: the status and the library's message for it.
class Error : public std::runtime_error {
  public:
    Error(hatebm_status status, const std::string &message)
        : std::runtime_error(message), status_(status) {}

    /// The status the call returned.
    hatebm_status status() const noexcept { return status_; }

    /// The status's name, e.g. "HATEBM_SHAPE_MISMATCH".
    const char *status_name() const noexcept { return hatebm_status_str(status_); }

  private:
    hatebm_status status_;
};

/// The exception for `status`, with this thread's last error message.
/// Call it right after the failing call (the message is per thread and
/// replaced by the next failure).
inline Error last_error(hatebm_status status) {
    std::string text = hatebm_status_str(status);
    const char *message = hatebm_last_error_message();
    if (message != nullptr && *message != '\0') {
        text += ": ";
        text += message;
    }
    return Error(status, text);
}

/// Throws hatebm::Error unless `status` is HATEBM_OK.
inline void check(hatebm_status status) {
    if (status != HATEBM_OK) {
        throw last_error(status);
    }
}

/// Version of the loaded library, e.g. "0.1.0".
inline std::string version() { return hatebm_version(); }

/// Throws unless the loaded library has the ABI this header was written for.
inline void check_abi() {
    if (hatebm_abi_version() != HATEBM_ABI_VERSION) {
        throw Error(HATEBM_INVALID_ARGUMENT,
                    std::string("libhatebm ABI mismatch: header ") + HATEBM_VERSION_STRING +
                        ", loaded library " + hatebm_version());
    }
}

/// Unique ownership of an opaque handle `T *`, released with `Free` (which, like
/// every hatebm_*_free, accepts NULL). Movable, not copyable.
template <typename T, void (*Free)(T *)>
class Handle {
  public:
    Handle() noexcept = default;
    /// Adopts `raw` (which must come from the matching hatebm_*_new).
    explicit Handle(T *raw) noexcept : ptr_(raw) {}
    ~Handle() { reset(); }

    Handle(const Handle &) = delete;
    Handle &operator=(const Handle &) = delete;
    Handle(Handle &&other) noexcept : ptr_(other.release()) {}
    Handle &operator=(Handle &&other) noexcept {
        if (this != &other) {
            reset(other.release());
        }
        return *this;
    }

    T *get() const noexcept { return ptr_; }
    explicit operator bool() const noexcept { return ptr_ != nullptr; }

    /// Gives up ownership without freeing.
    T *release() noexcept { return std::exchange(ptr_, nullptr); }

    /// Frees the current handle (if any) and adopts `raw`.
    void reset(T *raw = nullptr) noexcept {
        T *old = std::exchange(ptr_, raw);
        if (old != nullptr) {
            Free(old);
        }
    }

    /// For constructors `hatebm_X_new(..., T **out)`: frees the current handle
    /// and returns the slot to fill. Outputs are written only on success, so
    /// the Handle stays empty when the call fails.
    T **out() noexcept {
        reset();
        return &ptr_;
    }

  private:
    T *ptr_ = nullptr;
};

/// Calls a copy-out function `fill(char *buf, size_t len, size_t *out_n)` (the
/// hatebm convention: *out_n = bytes needed including the NUL) and returns the
/// string. Throws hatebm::Error on any other failure.
template <typename Fill>
std::string copy_string(Fill &&fill) {
    std::size_t needed = 0;
    hatebm_status st = fill(nullptr, 0, &needed);
    std::string out;
    while (st == HATEBM_INSUFFICIENT_SIZE) {
        out.assign(needed, '\0');
        st = fill(out.data(), out.size(), &needed);
    }
    check(st);
    out.resize(needed > 0 ? needed - 1 : 0);  // drop the NUL
    return out;
}

/// Calls a copy-out function `fill(T *buf, size_t len, size_t *out_n)` (the
/// hatebm convention: *out_n = elements needed) and returns the elements.
template <typename T, typename Fill>
std::vector<T> copy_vector(Fill &&fill) {
    std::size_t needed = 0;
    hatebm_status st = fill(nullptr, 0, &needed);
    std::vector<T> out;
    while (st == HATEBM_INSUFFICIENT_SIZE) {
        out.resize(needed);
        st = fill(out.data(), out.size(), &needed);
    }
    check(st);
    out.resize(needed);
    return out;
}

template <typename Signature>
class Callback;

/// Passes a C++ callable as a C callback whose last parameter is
/// `void *user_data` (true of every hatebm callback). The callable is borrowed:
/// it and this object must outlive every call the library makes.
///
/// An exception thrown by the callable must not cross the C ABI. The trampoline
/// catches it, remembers it, and returns `on_exception` (for control callbacks,
/// `false` = cancel, so the library stops promptly); after the hatebm call,
/// `rethrow_if_failed()` rethrows it.
///
///     hatebm::Callback<bool(std::size_t)> cb(lambda, false);
///     hatebm_status st = hatebm_x_run(h.get(), cb.function(), cb.user_data());
///     cb.rethrow_if_failed();
///     hatebm::check(st);
template <typename R, typename... Args>
class Callback<R(Args...)> {
    using Stored = std::conditional_t<std::is_void_v<R>, char, R>;

  public:
    /// The C function-pointer type: `R (*)(Args..., void *user_data)`.
    using function_type = R (*)(Args..., void *);

    template <typename F, typename Ret = R, std::enable_if_t<!std::is_void_v<Ret>, int> = 0>
    Callback(F &callable, Ret on_exception)
        : callable_(erase(callable)), invoke_(&invoke<F>), on_exception_(on_exception) {}

    template <typename F, typename Ret = R, std::enable_if_t<std::is_void_v<Ret>, int> = 0>
    explicit Callback(F &callable) : callable_(erase(callable)), invoke_(&invoke<F>) {}

    Callback(const Callback &) = delete;
    Callback &operator=(const Callback &) = delete;

    function_type function() const noexcept { return &trampoline; }
    void *user_data() noexcept { return this; }

    /// Whether the callable threw during the last hatebm call.
    bool failed() const noexcept { return static_cast<bool>(error_); }

    /// Rethrows (once) the exception the callable threw, if any.
    void rethrow_if_failed() {
        if (error_) {
            std::rethrow_exception(std::exchange(error_, nullptr));
        }
    }

  private:
    template <typename F>
    static void *erase(F &callable) noexcept {
        return const_cast<void *>(static_cast<const void *>(std::addressof(callable)));
    }

    template <typename F>
    static R invoke(void *callable, Args... args) {
        return (*static_cast<F *>(callable))(args...);
    }

    static R trampoline(Args... args, void *user_data) noexcept {
        auto *self = static_cast<Callback *>(user_data);
        try {
            return self->invoke_(self->callable_, args...);
        } catch (...) {
            if (!self->error_) {
                self->error_ = std::current_exception();
            }
            if constexpr (!std::is_void_v<R>) {
                return self->on_exception_;
            }
        }
    }

    void *callable_;
    R (*invoke_)(void *, Args...);
    Stored on_exception_{};
    std::exception_ptr error_;
};

#if defined(HATEBM_TEST_HOOKS)
/// Owning handle for the test-only hatebm_test_handle.
using TestHandle = Handle<hatebm_test_handle, hatebm_test_handle_free>;

/// Reference class wrapper (test-only): the shape every handle class follows —
/// a Handle member, constructors and methods that call check(), copy-outs via
/// copy_string/copy_vector, const methods for calls taking a const handle.
class TestObject {
  public:
    explicit TestObject(const std::string &label) {
        check(hatebm_test_handle_new(label.c_str(), handle_.out()));
    }

    std::string label() const {
        return copy_string([this](char *buf, std::size_t len, std::size_t *out_n) {
            return hatebm_test_handle_label(handle_.get(), buf, len, out_n);
        });
    }

    std::vector<float> values() const {
        return copy_vector<float>([this](float *buf, std::size_t len, std::size_t *out_n) {
            return hatebm_test_handle_values(handle_.get(), buf, len, out_n);
        });
    }

    void push(const std::vector<float> &data) {
        check(hatebm_test_handle_push(handle_.get(), data.data(), data.size()));
    }

    double sum() const {
        double s = 0.0;
        check(hatebm_test_handle_sum(handle_.get(), &s));
        return s;
    }

    /// Runs `n_steps`; `on_step(step)` returns false to cancel. An exception
    /// from `on_step` cancels the run and is rethrown here.
    template <typename F>
    std::size_t run(std::size_t n_steps, F &&on_step) {
        Callback<bool(std::size_t)> cb(on_step, false);
        std::size_t done = 0;
        hatebm_status st = hatebm_test_handle_run(handle_.get(), n_steps, cb.function(),
                                                  cb.user_data(), &done);
        cb.rethrow_if_failed();
        check(st);
        return done;
    }

    hatebm_test_handle *get() const noexcept { return handle_.get(); }

  private:
    TestHandle handle_;
};
#endif  // HATEBM_TEST_HOOKS

}  // namespace hatebm

#endif  // HATEBM_HPP
