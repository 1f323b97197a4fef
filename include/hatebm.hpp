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
 *     and keeps C++ exceptions from crossing the C ABI;
 *   - hatebm::Span<T>, a pointer + length view: every buffer parameter takes
 *     one, so a call accepts a std::vector or {ptr, n};
 *   - RAII classes over the API: Config, Session (also distributed over a
 *     hatebm::Comm of C++ callables), TrainedModel, CustomEnergy and
 *     CustomGenerator (user models from lambdas/functors), Bank, each with
 *     adopt(raw) / release() for handles shared with C code; free functions
 *     langevin() / langevin_mcmc() on user models, the metrics::* functions,
 *     log_set(), first_non_finite(), save_image_grid(), save_npy().
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
#include <functional>
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

/// A non-owning view of `size()` contiguous `T` (a small std::span for
/// C++17): every buffer parameter of the wrapper takes one, so the same call
/// accepts a std::vector or a pointer + length, `{ptr, n}`. For input buffers
/// `T` is const; a std::vector converts implicitly.
template <typename T>
class Span {
  public:
    constexpr Span() noexcept = default;
    constexpr Span(T *data, std::size_t size) noexcept : data_(data), size_(size) {}
    template <typename U, typename A,
              std::enable_if_t<std::is_same_v<std::remove_const_t<T>, U>, int> = 0>
    Span(std::vector<U, A> &v) noexcept : data_(v.data()), size_(v.size()) {}
    template <typename U, typename A, typename Elem = T,
              std::enable_if_t<std::is_const_v<Elem> && std::is_same_v<std::remove_const_t<Elem>, U>,
                               int> = 0>
    Span(const std::vector<U, A> &v) noexcept : data_(v.data()), size_(v.size()) {}

    constexpr T *data() const noexcept { return data_; }
    constexpr std::size_t size() const noexcept { return size_; }
    constexpr bool empty() const noexcept { return size_ == 0; }
    constexpr T *begin() const noexcept { return data_; }
    constexpr T *end() const noexcept { return data_ + size_; }
    constexpr T &operator[](std::size_t i) const noexcept { return data_[i]; }
    /// The data pointer, or NULL for an empty view (for "NULL with length 0").
    constexpr T *data_or_null() const noexcept { return size_ == 0 ? nullptr : data_; }

  private:
    T *data_ = nullptr;
    std::size_t size_ = 0;
};

namespace detail {
/// Rows of `width` floats in `len` (0 for width 0, so the library reports the
/// zero width rather than the wrapper dividing by it).
constexpr std::size_t rows(std::size_t len, std::size_t width) noexcept {
    return width == 0 ? 0 : len / width;
}
}  // namespace detail

/// This thread's last error message, copied (hatebm_last_error_copy; "" when
/// none). Unlike hatebm_last_error_message() the copy stays valid across
/// later calls; reading it never changes it.
inline std::string last_error_message() {
    return copy_string([](char *buf, std::size_t len, std::size_t *out_n) {
        return hatebm_last_error_copy(buf, len, out_n);
    });
}

/// Clears this thread's last error message (hatebm_last_error_clear).
inline void last_error_clear() noexcept { hatebm_last_error_clear(); }

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

// ---------------------------------------------------------------------------
// The training and sampling API
// ---------------------------------------------------------------------------

/// Library default sampler settings (hatebm_langevin_default_params()): the
/// paper's values for Hat EBM image energies.
inline hatebm_langevin_params langevin_default_params() { return hatebm_langevin_default_params(); }
/// Neutral sampler settings for your own energy (hatebm_langevin_neutral_params()):
/// T = 1, no clipping, 500 steps of eps_res = 0.2.
inline hatebm_langevin_params langevin_neutral_params() { return hatebm_langevin_neutral_params(); }

/// Default sampling settings (hatebm_sample_default_params()).
inline hatebm_sample_params sample_default_params() { return hatebm_sample_default_params(); }

/// Default method settings (hatebm_mcmc_default_params()): unadjusted
/// Langevin, no monitor, no adaptation. Change `method` etc. for MALA / HMC / BAOAB.
inline hatebm_mcmc_params mcmc_default_params() { return hatebm_mcmc_default_params(); }

/// Default AIS settings for TrainedModel::log_z (hatebm_ais_default_params()).
inline hatebm_ais_params ais_default_params() { return hatebm_ais_default_params(); }

/// What a sampling call with a chosen transition reports: the Langevin
/// diagnostics and the acceptance statistics.
struct McmcStats {
    hatebm_langevin_stats langevin;
    hatebm_mh_stats mh;
};

// ---------------------------------------------------------------------------
// Sample-quality metrics (hatebm_metrics_*). Sets are rows of `dim` floats;
// the row counts come from the spans' sizes. All throw hatebm::Error
// (HATEBM_INVALID_ARGUMENT, ...) as the C functions fail. Thread-safe.
// ---------------------------------------------------------------------------
namespace metrics {

/// Frechet distance between Gaussian fits of `a` and `b` (hatebm_metrics_frechet).
inline double frechet(Span<const float> a, Span<const float> b, std::size_t dim) {
    double fd = 0.0;
    check(hatebm_metrics_frechet(a.data_or_null(), a.size(), detail::rows(a.size(), dim),
                                 b.data_or_null(), b.size(), detail::rows(b.size(), dim), dim, &fd));
    return fd;
}

/// Frechet distance in the top-`k` PCA space of `real` (hatebm_metrics_frechet_pca).
inline double frechet_pca(Span<const float> real, Span<const float> fake, std::size_t dim,
                          std::size_t k, std::uint64_t seed = 0) {
    double fd = 0.0;
    check(hatebm_metrics_frechet_pca(real.data_or_null(), real.size(), detail::rows(real.size(), dim),
                                     fake.data_or_null(), fake.size(), detail::rows(fake.size(), dim),
                                     dim, k, seed, &fd));
    return fd;
}

/// k-NN precision (quality) and recall (diversity), both in [0, 1].
struct PrecisionRecall {
    double precision;
    double recall;
};
/// hatebm_metrics_precision_recall with neighbourhood size `k` (3 is usual).
inline PrecisionRecall precision_recall(Span<const float> real, Span<const float> fake,
                                        std::size_t dim, std::size_t k = 3) {
    PrecisionRecall pr{0.0, 0.0};
    check(hatebm_metrics_precision_recall(real.data_or_null(), real.size(),
                                          detail::rows(real.size(), dim), fake.data_or_null(),
                                          fake.size(), detail::rows(fake.size(), dim), dim, k,
                                          &pr.precision, &pr.recall));
    return pr;
}

/// Mode coverage and the share of samples nearest to each mode.
struct ModeCoverage {
    hatebm_mode_coverage summary;
    std::vector<double> fractions;  ///< one per centre
};
/// hatebm_metrics_mode_coverage of 2-D `samples` (n * 2 floats) against the
/// centres (n_modes * 2 floats) of per-coordinate standard deviation
/// `std_dev`. `min_fraction < 0` and `radius_std = 0`
/// select the library's defaults.
inline ModeCoverage mode_coverage(Span<const float> samples, Span<const float> centres,
                                  float std_dev, double min_fraction = -1.0,
                                  double radius_std = 0.0) {
    ModeCoverage out{hatebm_mode_coverage{}, std::vector<double>(centres.size() / 2)};
    check(hatebm_metrics_mode_coverage(samples.data_or_null(), samples.size(), samples.size() / 2,
                                       centres.data_or_null(), centres.size(), centres.size() / 2,
                                       std_dev, min_fraction, radius_std, &out.summary,
                                       out.fractions.empty() ? nullptr : out.fractions.data(),
                                       out.fractions.size()));
    return out;
}

/// Unbiased MMD^2 with an averaged RBF kernel (hatebm_metrics_mmd2); empty
/// `bandwidths` = the median rule.
inline double mmd2(Span<const float> real, Span<const float> fake, std::size_t dim,
                   Span<const double> bandwidths = {}) {
    double v = 0.0;
    check(hatebm_metrics_mmd2(real.data_or_null(), real.size(), detail::rows(real.size(), dim),
                              fake.data_or_null(), fake.size(), detail::rows(fake.size(), dim), dim,
                              bandwidths.data_or_null(), bandwidths.size(), &v));
    return v;
}

/// Energy distance (hatebm_metrics_energy_distance), in input units.
inline double energy_distance(Span<const float> real, Span<const float> fake, std::size_t dim) {
    double v = 0.0;
    check(hatebm_metrics_energy_distance(real.data_or_null(), real.size(),
                                         detail::rows(real.size(), dim), fake.data_or_null(),
                                         fake.size(), detail::rows(fake.size(), dim), dim, &v));
    return v;
}

}  // namespace metrics

/// The index of the first NaN/Inf among `data[0..n)`, or -1 when all are
/// finite (hatebm_check_finite). Throws hatebm::Error for a NULL `data` with n > 0.
inline std::ptrdiff_t first_non_finite(const float *data, std::size_t n) {
    std::size_t bad = 0;
    const hatebm_status st = hatebm_check_finite(data, n, &bad);
    if (st == HATEBM_NUMERIC) {
        return static_cast<std::ptrdiff_t>(bad);
    }
    check(st);
    return -1;
}
inline std::ptrdiff_t first_non_finite(const std::vector<float> &data) {
    return first_non_finite(data.data(), data.size());
}

/// A log record as the library delivers it.
struct LogRecord {
    hatebm_log_level level;
    const char *target;  ///< e.g. "hatebm_rs::run"; valid during the call only
    const char *message; ///< valid during the call only
};

namespace detail {
using LogFunction = std::function<void(const LogRecord &)>;
/// The callable behind the library's (global) log hook.
inline std::unique_ptr<LogFunction> &log_slot() {
    static std::unique_ptr<LogFunction> slot;
    return slot;
}
inline void log_trampoline(int level, const char *target, const char *message,
                           void *user_data) noexcept {
    try {
        (*static_cast<LogFunction *>(user_data))(
            LogRecord{static_cast<hatebm_log_level>(level), target, message});
    } catch (...) {
        // A logger must not throw across the library; the record is dropped.
    }
}
} // namespace detail

/// Sends the library's log records to `on_record(const hatebm::LogRecord &)`
/// (hatebm_log_set). Global, like the hook itself; the callable may run on
/// any thread, several at once, and an exception it throws drops that record.
/// Replacing or clearing it is safe at any time: once this returns, the
/// previous callable is no longer running and has been destroyed.
template <typename F>
void log_set(F &&on_record) {
    auto next = std::make_unique<detail::LogFunction>(std::forward<F>(on_record));
    check(hatebm_log_set(&detail::log_trampoline, next.get()));
    detail::log_slot() = std::move(next);
}
/// Removes the log callback (hatebm_log_set(NULL, NULL)).
inline void log_clear() {
    check(hatebm_log_set(nullptr, nullptr));
    detail::log_slot().reset();
}
/// The most verbose level delivered (default once a callback is set: WARN).
inline void log_set_level(hatebm_log_level level) {
    check(hatebm_log_set_level(static_cast<int>(level)));
}

/// Product of a shape's dimensions.
inline std::size_t numel(const std::vector<std::size_t> &shape) {
    std::size_t n = 1;
    for (std::size_t d : shape) {
        n *= d;
    }
    return n;
}

/// A run configuration (hatebm_config): a preset plus key = value overrides.
/// Copyable (copies the configuration); safe to share read-only across threads.
namespace detail {
/// `raw`, or throws hatebm::Error(HATEBM_NULL_PARAMETER) when it is NULL.
template <typename T>
T *non_null(T *raw) {
    if (raw == nullptr) {
        throw Error(HATEBM_NULL_PARAMETER, "HATEBM_NULL_PARAMETER: hatebm::adopt: the handle is NULL");
    }
    return raw;
}
/// Selects the private adopting constructors.
struct Adopt {};
} // namespace detail

class Config {
  public:
    /// An empty configuration (library defaults).
    Config() { check(hatebm_config_new(handle_.out())); }

    /// A configuration starting from a built-in preset, e.g. Config::preset("digits").
    static Config preset(const std::string &name) {
        Config c;
        c.set("preset", name);
        return c;
    }

    /// Parses a TOML document.
    static Config from_toml(const std::string &toml) {
        Config c(nullptr);
        check(hatebm_config_from_toml(toml.c_str(), c.handle_.out()));
        return c;
    }

    /// Reads a TOML file (relative paths resolve against its folder).
    static Config from_file(const std::string &path) {
        Config c(nullptr);
        check(hatebm_config_from_file(path.c_str(), c.handle_.out()));
        return c;
    }

    /// The configuration stored in a checkpoint, to change (backend, output
    /// folder, ...) before Session::resume(path, &cfg).
    static Config from_checkpoint(const std::string &path) {
        Config c(nullptr);
        check(hatebm_config_from_checkpoint(path.c_str(), c.handle_.out()));
        return c;
    }

    /// Takes ownership of a handle made by C code (hatebm_config_new, ...).
    /// Throws hatebm::Error (HATEBM_NULL_PARAMETER) for NULL.
    static Config adopt(hatebm_config *raw) {
        Config c(nullptr);
        c.handle_.reset(detail::non_null(raw));
        return c;
    }
    /// Gives the handle to C code (free it with hatebm_config_free); this
    /// Config is empty afterwards.
    hatebm_config *release() noexcept { return handle_.release(); }
    /// For C functions taking a mutable config.
    hatebm_config *get_mut() noexcept { return handle_.get(); }

    Config(const Config &other) : Config(nullptr) {
        check(hatebm_config_clone(other.get(), handle_.out()));
    }
    Config &operator=(const Config &other) {
        if (this != &other) {
            Config copy(other);
            handle_ = std::move(copy.handle_);
        }
        return *this;
    }
    Config(Config &&) noexcept = default;
    Config &operator=(Config &&) noexcept = default;

    /// Sets one dotted key ("backend", "langevin.steps", ...); throws on an
    /// unknown key (the message suggests the closest) or a bad value.
    Config &set(const std::string &key, const std::string &value) {
        check(hatebm_config_set(handle_.get(), key.c_str(), value.c_str()));
        return *this;
    }

    /// Removes a key so that its default applies.
    Config &unset(const std::string &key) {
        check(hatebm_config_unset(handle_.get(), key.c_str()));
        return *this;
    }

    /// The fully resolved configuration as TOML.
    std::string to_toml() const {
        return copy_string([this](char *buf, std::size_t len, std::size_t *out_n) {
            return hatebm_config_to_toml(handle_.get(), buf, len, out_n);
        });
    }

    const hatebm_config *get() const noexcept { return handle_.get(); }

  private:
    explicit Config(std::nullptr_t) noexcept {}
    Handle<hatebm_config, hatebm_config_free> handle_;
};

/// Owns a heap-allocated callable passed to the library as user_data: the
/// library frees it through the vtable's `free` member when it drops the object.
/// Exceptions thrown by the callable are caught in the trampolines, reported to
/// the library (the call fails with HATEBM_CALLBACK and the exception's
/// message) and kept here to be rethrown by the C++ call that triggered them.
namespace detail {
struct CallbackState {
    std::exception_ptr error;

    template <typename F>
    int guard(F &&f) noexcept {
        try {
            f();
            return 0;
        } catch (const std::exception &e) {
            if (!error) {
                error = std::current_exception();
            }
            hatebm_callback_set_error(e.what());
        } catch (...) {
            if (!error) {
                error = std::current_exception();
            }
            hatebm_callback_set_error("unknown C++ exception");
        }
        return 1;
    }

    void rethrow_if_failed() {
        if (error) {
            std::rethrow_exception(std::exchange(error, nullptr));
        }
    }
};
}  // namespace detail

/// A user energy U(x) (hatebm_energy) from one callable
/// `void f(const float *x, std::size_t n, std::size_t sample_len, float *out_energy, float *out_grad)`:
/// it writes the `n` energies, and, when `out_grad` is not null, the gradients
/// dU/dx (`n * sample_len` floats). It may throw; the library call then fails and
/// the exception is rethrown by the wrapper that made the call.
class CustomEnergy {
  public:
    template <typename F>
    CustomEnergy(std::vector<std::size_t> sample_shape, F fn, const std::string &name = "custom energy")
        : shape_(std::move(sample_shape)) {
        auto holder = std::make_unique<Holder<F>>(std::move(fn));
        hatebm_energy_vtable vt = hatebm_energy_default_vtable();
        vt.energy = &Holder<F>::energy;
        vt.grad_x = &Holder<F>::grad_x;
        vt.name = name.c_str();
        vt.free = &Holder<F>::destroy;
        check(hatebm_energy_new(&vt, holder.get(), shape_.data(), shape_.size(), handle_.out()));
        state_ = holder.release();  // owned by the library from here on
    }

    CustomEnergy(const CustomEnergy &) = delete;
    CustomEnergy &operator=(const CustomEnergy &) = delete;
    CustomEnergy(CustomEnergy &&other) noexcept
        : shape_(std::move(other.shape_)),
          state_(std::exchange(other.state_, nullptr)),
          handle_(std::move(other.handle_)) {}
    CustomEnergy &operator=(CustomEnergy &&other) noexcept {
        if (this != &other) {
            handle_ = std::move(other.handle_);
            state_ = std::exchange(other.state_, nullptr);
            shape_ = std::move(other.shape_);
        }
        return *this;
    }

    const hatebm_energy *get() const noexcept { return handle_.get(); }

    /// Takes ownership of an energy made by C code (hatebm_energy_new with
    /// `sample_shape`); its callbacks are C's, so nothing is rethrown. Throws
    /// hatebm::Error (HATEBM_NULL_PARAMETER) for NULL.
    static CustomEnergy adopt(hatebm_energy *raw, std::vector<std::size_t> sample_shape) {
        return CustomEnergy(detail::Adopt{}, detail::non_null(raw), std::move(sample_shape));
    }
    /// Gives the energy to C code (free it with hatebm_energy_free, which also
    /// destroys the callable); this object is empty afterwards.
    hatebm_energy *release() noexcept {
        state_ = nullptr;
        shape_.clear();
        return handle_.release();
    }

    const std::vector<std::size_t> &sample_shape() const noexcept { return shape_; }
    std::size_t sample_len() const { return numel(shape_); }

    /// Rethrows an exception the callable threw during the last library call.
    void rethrow_if_failed() {
        if (state_ != nullptr) {
            state_->rethrow_if_failed();
        }
    }

  private:
    CustomEnergy(detail::Adopt, hatebm_energy *raw, std::vector<std::size_t> shape) noexcept
        : shape_(std::move(shape)), handle_(raw) {}

    template <typename F>
    struct Holder : detail::CallbackState {
        explicit Holder(F f) : fn(std::move(f)) {}
        F fn;

        static int energy(const float *x, std::size_t n, std::size_t len, float *out_e,
                          void *ud) noexcept {
            auto *self = static_cast<Holder *>(ud);
            return self->guard([&] { self->fn(x, n, len, out_e, static_cast<float *>(nullptr)); });
        }
        static int grad_x(const float *x, std::size_t n, std::size_t len, float *out_e,
                          float *out_g, void *ud) noexcept {
            auto *self = static_cast<Holder *>(ud);
            return self->guard([&] { self->fn(x, n, len, out_e, out_g); });
        }
        static void destroy(void *ud) noexcept { delete static_cast<Holder *>(ud); }
    };

    std::vector<std::size_t> shape_;
    detail::CallbackState *state_ = nullptr;
    Handle<hatebm_energy, hatebm_energy_free> handle_;
};

/// A user generator x = G(z) (hatebm_generator) from two callables:
/// `void forward(const float *z, std::size_t n, std::size_t latent_len, float *out_x, std::size_t sample_len)`
/// and `void vjp(const float *z, const float *cot, std::size_t n, std::size_t latent_len,
///               std::size_t sample_len, float *out_grad_z)` (d sum<G(z), cot> / dz).
class CustomGenerator {
  public:
    template <typename Fwd, typename Vjp>
    CustomGenerator(std::vector<std::size_t> latent_shape, std::vector<std::size_t> output_shape,
                    Fwd forward, Vjp vjp, const std::string &name = "custom generator")
        : latent_shape_(std::move(latent_shape)), output_shape_(std::move(output_shape)) {
        auto holder = std::make_unique<Holder<Fwd, Vjp>>(std::move(forward), std::move(vjp));
        hatebm_generator_vtable vt = hatebm_generator_default_vtable();
        vt.forward = &Holder<Fwd, Vjp>::forward;
        vt.vjp_latent = &Holder<Fwd, Vjp>::vjp_latent;
        vt.name = name.c_str();
        vt.free = &Holder<Fwd, Vjp>::destroy;
        check(hatebm_generator_new(&vt, holder.get(), latent_shape_.data(), latent_shape_.size(),
                                   output_shape_.data(), output_shape_.size(), handle_.out()));
        state_ = holder.release();
    }

    CustomGenerator(const CustomGenerator &) = delete;
    CustomGenerator &operator=(const CustomGenerator &) = delete;
    CustomGenerator(CustomGenerator &&other) noexcept
        : latent_shape_(std::move(other.latent_shape_)),
          output_shape_(std::move(other.output_shape_)),
          state_(std::exchange(other.state_, nullptr)),
          handle_(std::move(other.handle_)) {}
    CustomGenerator &operator=(CustomGenerator &&other) noexcept {
        if (this != &other) {
            handle_ = std::move(other.handle_);
            state_ = std::exchange(other.state_, nullptr);
            latent_shape_ = std::move(other.latent_shape_);
            output_shape_ = std::move(other.output_shape_);
        }
        return *this;
    }

    const hatebm_generator *get() const noexcept { return handle_.get(); }

    /// Takes ownership of a generator made by C code (hatebm_generator_new
    /// with these shapes). Throws hatebm::Error (HATEBM_NULL_PARAMETER) for NULL.
    static CustomGenerator adopt(hatebm_generator *raw, std::vector<std::size_t> latent_shape,
                                 std::vector<std::size_t> output_shape) {
        return CustomGenerator(detail::Adopt{}, detail::non_null(raw), std::move(latent_shape),
                               std::move(output_shape));
    }
    /// Gives the generator to C code (free it with hatebm_generator_free).
    hatebm_generator *release() noexcept {
        state_ = nullptr;
        latent_shape_.clear();
        output_shape_.clear();
        return handle_.release();
    }

    std::size_t latent_len() const { return numel(latent_shape_); }
    std::size_t sample_len() const { return numel(output_shape_); }

    void rethrow_if_failed() {
        if (state_ != nullptr) {
            state_->rethrow_if_failed();
        }
    }

  private:
    CustomGenerator(detail::Adopt, hatebm_generator *raw, std::vector<std::size_t> latent_shape,
                    std::vector<std::size_t> output_shape) noexcept
        : latent_shape_(std::move(latent_shape)), output_shape_(std::move(output_shape)),
          handle_(raw) {}

    template <typename Fwd, typename Vjp>
    struct Holder : detail::CallbackState {
        Holder(Fwd f, Vjp v) : fwd(std::move(f)), vjp(std::move(v)) {}
        Fwd fwd;
        Vjp vjp;

        static int forward(const float *z, std::size_t n, std::size_t latent_len, float *out_x,
                           std::size_t sample_len, void *ud) noexcept {
            auto *self = static_cast<Holder *>(ud);
            return self->guard([&] { self->fwd(z, n, latent_len, out_x, sample_len); });
        }
        static int vjp_latent(const float *z, const float *cot, std::size_t n,
                              std::size_t latent_len, std::size_t sample_len, float *out_gz,
                              void *ud) noexcept {
            auto *self = static_cast<Holder *>(ud);
            return self->guard([&] { self->vjp(z, cot, n, latent_len, sample_len, out_gz); });
        }
        static void destroy(void *ud) noexcept { delete static_cast<Holder *>(ud); }
    };

    std::vector<std::size_t> latent_shape_;
    std::vector<std::size_t> output_shape_;
    detail::CallbackState *state_ = nullptr;
    Handle<hatebm_generator, hatebm_generator_free> handle_;
};

namespace detail {
/// The one call behind every hatebm::langevin / langevin_mcmc overload on user
/// models: `mcmc` NULL = hatebm_langevin_run_custom. n = y.size() / sample_len.
inline McmcStats run_custom(CustomEnergy &energy, CustomGenerator *generator,
                            const hatebm_langevin_params &params, const hatebm_mcmc_params *mcmc,
                            Span<float> z, Span<float> y) {
    McmcStats out{hatebm_langevin_stats{}, hatebm_mh_stats{}};
    const std::size_t n = rows(y.size(), energy.sample_len());
    const hatebm_generator *g = generator != nullptr ? generator->get() : nullptr;
    const hatebm_status st =
        mcmc == nullptr
            ? hatebm_langevin_run_custom(energy.get(), g, &params, z.data_or_null(), z.size(),
                                         y.data(), y.size(), n, &out.langevin)
            : hatebm_langevin_run_custom_mcmc(energy.get(), g, &params, mcmc, z.data_or_null(),
                                              z.size(), y.data(), y.size(), n, &out.langevin,
                                              &out.mh);
    energy.rethrow_if_failed();
    if (generator != nullptr) {
        generator->rethrow_if_failed();
    }
    check(st);
    return out;
}
}  // namespace detail

/// Runs the Langevin sampler on a user energy in sample space
/// (hatebm_langevin_run_custom without a generator): `y` holds the chains,
/// n = y.size() / energy.sample_len() of them, updated in place on success and
/// unchanged when it throws (a callable's exception is rethrown here).
inline hatebm_langevin_stats langevin(CustomEnergy &energy, const hatebm_langevin_params &params,
                                      Span<float> y) {
    return detail::run_custom(energy, nullptr, params, nullptr, {}, y).langevin;
}
/// The same through a user generator: `z` holds n * generator.latent_len()
/// latents, `y` n * sample_len residuals (n = y.size() / sample_len).
inline hatebm_langevin_stats langevin(CustomEnergy &energy, CustomGenerator &generator,
                                      const hatebm_langevin_params &params, Span<float> z,
                                      Span<float> y) {
    return detail::run_custom(energy, &generator, params, nullptr, z, y).langevin;
}
/// hatebm_langevin_run_custom_mcmc: as langevin() with the transition of
/// `mcmc` (MALA, HMC, BAOAB, the shadow monitor); also returns the acceptance.
inline McmcStats langevin_mcmc(CustomEnergy &energy, const hatebm_langevin_params &params,
                               const hatebm_mcmc_params &mcmc, Span<float> y) {
    return detail::run_custom(energy, nullptr, params, &mcmc, {}, y);
}
inline McmcStats langevin_mcmc(CustomEnergy &energy, CustomGenerator &generator,
                               const hatebm_langevin_params &params,
                               const hatebm_mcmc_params &mcmc, Span<float> z, Span<float> y) {
    return detail::run_custom(energy, &generator, params, &mcmc, z, y);
}

/// A host bank of (z, x) pairs (hatebm_bank).
class Bank {
  public:
    Bank(std::size_t capacity, std::size_t latent_len, std::size_t sample_len, std::uint64_t shard = 0)
        : latent_len_(latent_len), sample_len_(sample_len) {
        check(hatebm_bank_new(capacity, latent_len, sample_len, shard, handle_.out()));
    }

    void init_from_generator(CustomGenerator &g, std::size_t batch, std::uint64_t seed) {
        hatebm_status st = hatebm_bank_init_from_generator(handle_.get(), g.get(), batch, seed);
        g.rethrow_if_failed();
        check(st);
    }

    std::size_t capacity() const {
        std::size_t c = 0;
        check(hatebm_bank_capacity(handle_.get(), &c));
        return c;
    }

    std::vector<std::size_t> draw_slots(std::uint64_t seed, std::uint64_t iteration,
                                        std::size_t count) const {
        std::vector<std::size_t> slots(count);
        check(hatebm_bank_draw_slots(handle_.get(), seed, iteration, slots.data(), count));
        return slots;
    }

    /// (z, x) of `slots`; z is empty for an images-only bank.
    std::pair<std::vector<float>, std::vector<float>> gather(Span<const std::size_t> slots) const {
        std::vector<float> z(slots.size() * latent_len_), x(slots.size() * sample_len_);
        gather(slots, z, x);
        return {std::move(z), std::move(x)};
    }
    /// Into caller buffers: `z` (empty for an images-only bank) and `x` hold
    /// slots.size() * latent_len / sample_len floats.
    void gather(Span<const std::size_t> slots, Span<float> z, Span<float> x) const {
        check(hatebm_bank_gather(handle_.get(), slots.data(), slots.size(), z.data_or_null(),
                                 z.size(), x.data(), x.size()));
    }

    void overwrite(Span<const std::size_t> slots, Span<const float> z, Span<const float> x) {
        check(hatebm_bank_overwrite(handle_.get(), slots.data(), slots.size(), z.data_or_null(),
                                    z.size(), x.data(), x.size()));
    }

    hatebm_bank *get() const noexcept { return handle_.get(); }
    std::size_t latent_len() const noexcept { return latent_len_; }
    std::size_t sample_len() const noexcept { return sample_len_; }

    /// Takes ownership of a bank made by C code (hatebm_bank_new with these
    /// lengths). Throws hatebm::Error (HATEBM_NULL_PARAMETER) for NULL.
    static Bank adopt(hatebm_bank *raw, std::size_t latent_len, std::size_t sample_len) {
        return Bank(detail::Adopt{}, detail::non_null(raw), latent_len, sample_len);
    }
    /// Gives the bank to C code (free it with hatebm_bank_free).
    hatebm_bank *release() noexcept { return handle_.release(); }

  private:
    Bank(detail::Adopt, hatebm_bank *raw, std::size_t latent_len, std::size_t sample_len) noexcept
        : latent_len_(latent_len), sample_len_(sample_len), handle_(raw) {}

    std::size_t latent_len_;
    std::size_t sample_len_;
    Handle<hatebm_bank, hatebm_bank_free> handle_;
};

/// A trained model loaded from a checkpoint alone (hatebm_trained_model): its
/// networks, EMA and sampler settings, no training data. Movable, not copyable;
/// one thread at a time.
class TrainedModel {
  public:
    /// `backend` empty = the backend stored in the checkpoint.
    explicit TrainedModel(const std::string &path, const std::string &backend = "") {
        check(hatebm_trained_model_load(path.c_str(), backend.empty() ? nullptr : backend.c_str(),
                                        handle_.out()));
    }
    std::size_t sample_len() const {
        std::size_t n = 0;
        check(hatebm_trained_model_info(handle_.get(), &n, nullptr));
        return n;
    }
    /// The training iteration the checkpoint was written at.
    std::uint64_t iteration() const {
        std::uint64_t it = 0;
        check(hatebm_trained_model_info(handle_.get(), nullptr, &it));
        return it;
    }
    std::vector<std::size_t> sample_shape() const {
        return copy_vector<std::size_t>([this](std::size_t *b, std::size_t n, std::size_t *out_n) {
            return hatebm_trained_model_sample_shape(handle_.get(), b, n, out_n);
        });
    }
    /// {C, H, W}, or empty when the samples are not images.
    std::vector<std::size_t> image_shape() const {
        return copy_vector<std::size_t>([this](std::size_t *b, std::size_t n, std::size_t *out_n) {
            return hatebm_trained_model_image_shape(handle_.get(), b, n, out_n);
        });
    }
    std::vector<float> sample(const hatebm_sample_params &params) {
        std::vector<float> out(params.n * sample_len());
        sample(params, out);
        return out;
    }
    /// Into a caller buffer of params.n * sample_len() floats.
    void sample(const hatebm_sample_params &params, Span<float> out) {
        check(hatebm_trained_model_sample(handle_.get(), &params, out.data(), out.size()));
    }
    /// Energies of the samples in `x` (x.size() / sample_len() of them).
    std::vector<float> energy(Span<const float> x, bool use_ema = true) {
        const std::size_t n = detail::rows(x.size(), sample_len());
        std::vector<float> e(n);
        check(hatebm_trained_model_energy(handle_.get(), x.data(), x.size(), n, use_ema, e.data(),
                                          e.size()));
        return e;
    }
    /// Out-of-distribution scores of the samples in `x`: {energies, input-gradient norms},
    /// one of each per sample (hatebm_trained_model_scores; higher = more OOD).
    std::pair<std::vector<float>, std::vector<float>> scores(Span<const float> x,
                                                             bool use_ema = true) {
        const std::size_t n = detail::rows(x.size(), sample_len());
        std::vector<float> e(n), g(n);
        check(hatebm_trained_model_scores(handle_.get(), x.data(), x.size(), n, use_ema, e.data(),
                                          g.data(), n));
        return {std::move(e), std::move(g)};
    }

    /// Chooses the transition of later sample() calls: "ula", "mala", "hmc"
    /// or "baoab" (hatebm_trained_model_set_sampler; HATEBM_CONFIG otherwise).
    void set_sampler(const std::string &method) {
        check(hatebm_trained_model_set_sampler(handle_.get(), method.c_str()));
    }
    /// The method settings of later sample() calls.
    hatebm_mcmc_params mcmc_params() {
        hatebm_mcmc_params m = hatebm_mcmc_default_params();
        check(hatebm_trained_model_mcmc_params(handle_.get(), &m));
        return m;
    }
    /// Sets them (the model is unchanged when this throws).
    void set_mcmc(const hatebm_mcmc_params &mcmc) {
        check(hatebm_trained_model_set_mcmc(handle_.get(), &mcmc));
    }
    /// Acceptance statistics of the last sample() call's last batch.
    hatebm_mh_stats mh_stats() {
        hatebm_mh_stats mh{};
        check(hatebm_trained_model_mh_stats(handle_.get(), &mh));
        return mh;
    }
    /// An AIS estimate of log Z of the energy at the run's temperature
    /// (hatebm_trained_model_log_z).
    hatebm_ais_result log_z(const hatebm_ais_params &params, bool use_ema = true) {
        return log_z(params, use_ema, {});
    }
    /// The same, also writing the chains' log weights into `log_weights`
    /// (params.chains doubles, or empty to skip them).
    hatebm_ais_result log_z(const hatebm_ais_params &params, bool use_ema,
                            Span<double> log_weights) {
        hatebm_ais_result r{};
        check(hatebm_trained_model_log_z(handle_.get(), &params, use_ema, &r,
                                         log_weights.data_or_null(), log_weights.size()));
        return r;
    }
    hatebm_trained_model *get() const noexcept { return handle_.get(); }

    /// Takes ownership of a handle from hatebm_trained_model_load (C code).
    static TrainedModel adopt(hatebm_trained_model *raw) {
        TrainedModel m;
        m.handle_.reset(detail::non_null(raw));
        return m;
    }
    /// Gives the handle to C code (free it with hatebm_trained_model_free).
    hatebm_trained_model *release() noexcept { return handle_.release(); }

  private:
    TrainedModel() = default;
    Handle<hatebm_trained_model, hatebm_trained_model_free> handle_;
};

/// A harness's collectives over the ranks of a data-parallel run (hatebm_comm)
/// as C++ callables, for Session::distributed / resume_distributed. The
/// session owns them (moved to the heap, destroyed when the session is
/// freed). A callable reports failure by throwing: the library call then
/// fails with HATEBM_DISTRIBUTED and the exception's what() in its message.
struct Comm {
    std::size_t rank = 0;  ///< this rank, 0 .. size
    std::size_t size = 1;  ///< number of ranks
    /// Required when size > 1: concatenates every rank's `count` bytes at
    /// `send` into `recv` (size * count bytes), in rank order, on every rank.
    std::function<void(const void *send, std::size_t count, void *recv)> all_gather;
    /// Optional: sums `count` floats element-wise over the ranks, in place
    /// (used only with dist.reduce = "all_reduce").
    std::function<void(float *buf, std::size_t count)> all_reduce_sum;
};

namespace detail {
struct CommState : CallbackState {
    explicit CommState(Comm c) : comm(std::move(c)) {}
    Comm comm;

    static int all_gather(const void *send, std::size_t count, void *recv, void *ud) noexcept {
        auto *self = static_cast<CommState *>(ud);
        return self->guard([&] { self->comm.all_gather(send, count, recv); });
    }
    static int all_reduce_sum(float *buf, std::size_t count, void *ud) noexcept {
        auto *self = static_cast<CommState *>(ud);
        return self->guard([&] { self->comm.all_reduce_sum(buf, count); });
    }
    static void destroy(void *ud) noexcept { delete static_cast<CommState *>(ud); }
};

/// Calls `make(const hatebm_comm *, hatebm_session **out)` with a hatebm_comm
/// over `comm`'s callables; the library owns them once it succeeds (and
/// frees them through `free`), the wrapper until then.
template <typename Make>
hatebm_session *with_comm(Comm comm, Make &&make) {
    auto state = std::make_unique<CommState>(std::move(comm));
    hatebm_comm c = hatebm_comm_default();
    c.rank = state->comm.rank;
    c.size = state->comm.size;
    c.all_gather = state->comm.all_gather ? &CommState::all_gather : nullptr;
    c.all_reduce_sum_f32 = state->comm.all_reduce_sum ? &CommState::all_reduce_sum : nullptr;
    c.user_data = state.get();
    c.free = &CommState::destroy;
    hatebm_session *raw = nullptr;
    check(make(&c, &raw));
    state.release();  // freed by the session through c.free
    return raw;
}
}  // namespace detail

/// A training session (hatebm_session). Movable, not copyable; one thread at a time.
class Session {
  public:
    explicit Session(const Config &cfg) { check(hatebm_session_new(cfg.get(), handle_.out())); }

    /// Resumes from a checkpoint (with the stored configuration, or `cfg`).
    static Session resume(const std::string &path, const Config *cfg = nullptr) {
        Session s;
        check(hatebm_session_resume(path.c_str(), cfg != nullptr ? cfg->get() : nullptr,
                                    s.handle_.out()));
        return s;
    }

    /// One rank's session of a data-parallel run over `comm`
    /// (hatebm_session_new_distributed): every rank calls it with the same
    /// configuration, then makes the same calls in the same order.
    static Session distributed(const Config &cfg, Comm comm) {
        return adopt(detail::with_comm(std::move(comm), [&](const hatebm_comm *c, hatebm_session **out) {
            return hatebm_session_new_distributed(cfg.get(), c, out);
        }));
    }
    /// Resumes one rank of a data-parallel run (hatebm_session_resume_distributed).
    static Session resume_distributed(const std::string &path, Comm comm,
                                      const Config *cfg = nullptr) {
        return adopt(detail::with_comm(std::move(comm), [&](const hatebm_comm *c, hatebm_session **out) {
            return hatebm_session_resume_distributed(
                path.c_str(), cfg != nullptr ? cfg->get() : nullptr, c, out);
        }));
    }
    /// One rank's session over an MPI communicator given as its Fortran
    /// handle, MPI_Comm_c2f(comm) (hatebm_session_new_mpi; throws
    /// HATEBM_DISTRIBUTED in a library built without the `mpi` feature).
    static Session mpi(const Config &cfg, int mpi_comm_f) {
        Session s;
        check(hatebm_session_new_mpi(cfg.get(), mpi_comm_f, s.handle_.out()));
        return s;
    }

    void save_checkpoint(const std::string &path) const {
        check(hatebm_session_save_checkpoint(handle_.get(), path.c_str()));
    }
    void load_weights(hatebm_model which, const std::string &path) {
        check(hatebm_session_load_weights(handle_.get(), static_cast<int>(which), path.c_str()));
    }
    void save_weights(hatebm_model which, const std::string &path) const {
        check(hatebm_session_save_weights(handle_.get(), static_cast<int>(which), path.c_str()));
    }

    std::string backend_name() const {
        return copy_string([this](char *b, std::size_t n, std::size_t *out_n) {
            return hatebm_session_backend_name(handle_.get(), b, n, out_n);
        });
    }
    std::string config_toml() const {
        return copy_string([this](char *b, std::size_t n, std::size_t *out_n) {
            return hatebm_session_config_toml(handle_.get(), b, n, out_n);
        });
    }
    std::uint64_t iteration() const {
        std::uint64_t it = 0;
        check(hatebm_session_iteration(handle_.get(), &it));
        return it;
    }
    std::vector<std::size_t> sample_shape() const {
        return copy_vector<std::size_t>([this](std::size_t *b, std::size_t n, std::size_t *out_n) {
            return hatebm_session_sample_shape(handle_.get(), b, n, out_n);
        });
    }
    /// Empty without a generator.
    std::vector<std::size_t> latent_shape() const {
        return copy_vector<std::size_t>([this](std::size_t *b, std::size_t n, std::size_t *out_n) {
            return hatebm_session_latent_shape(handle_.get(), b, n, out_n);
        });
    }
    /// {C, H, W}, or empty when the data are not images.
    std::vector<std::size_t> image_shape() const {
        return copy_vector<std::size_t>([this](std::size_t *b, std::size_t n, std::size_t *out_n) {
            return hatebm_session_image_shape(handle_.get(), b, n, out_n);
        });
    }
    std::size_t sample_len() const {
        std::size_t s = 0;
        check(hatebm_session_sizes(handle_.get(), &s, nullptr));
        return s;
    }
    /// 0 without a generator.
    std::size_t latent_len() const {
        std::size_t l = 0;
        check(hatebm_session_sizes(handle_.get(), nullptr, &l));
        return l;
    }

    std::vector<float> energy(Span<const float> x, std::size_t n) const {
        std::vector<float> e(n);
        check(hatebm_session_energy(handle_.get(), x.data(), x.size(), n, e.data(), e.size()));
        return e;
    }
    /// (energies, gradients).
    std::pair<std::vector<float>, std::vector<float>> energy_grad(Span<const float> x,
                                                                  std::size_t n) const {
        std::vector<float> e(n), g(x.size());
        check(hatebm_session_energy_grad(handle_.get(), x.data(), x.size(), n, e.data(), e.size(),
                                         g.data(), g.size()));
        return {std::move(e), std::move(g)};
    }
    std::vector<float> generate(Span<const float> z, std::size_t n) const {
        std::vector<float> x(n * sample_len());
        check(hatebm_session_generate(handle_.get(), z.data(), z.size(), n, x.data(), x.size()));
        return x;
    }
    std::vector<float> generator_vjp(Span<const float> z, Span<const float> cot,
                                     std::size_t n) const {
        std::vector<float> g(z.size());
        check(hatebm_session_generator_vjp(handle_.get(), z.data(), z.size(), cot.data(),
                                           cot.size(), n, g.data(), g.size()));
        return g;
    }

    hatebm_langevin_params langevin_params() const {
        hatebm_langevin_params p = hatebm_langevin_default_params();
        check(hatebm_session_langevin_params(handle_.get(), &p));
        return p;
    }
    /// The method settings of the training chains (hatebm_session_mcmc_params).
    hatebm_mcmc_params mcmc_params() const {
        hatebm_mcmc_params m = hatebm_mcmc_default_params();
        check(hatebm_session_mcmc_params(handle_.get(), &m));
        return m;
    }
    /// Acceptance statistics of the last iteration's negative chains; throws
    /// (HATEBM_INVALID_ARGUMENT) before this session's first iteration.
    hatebm_mh_stats mh_stats() const {
        hatebm_mh_stats mh{};
        check(hatebm_session_mh_stats(handle_.get(), &mh));
        return mh;
    }

    /// Langevin with the session's networks in sample space (modes without a
    /// generator): `y` holds n = y.size() / sample_len() chains, updated in
    /// place (unchanged when it throws).
    hatebm_langevin_stats langevin(const hatebm_langevin_params &params, Span<float> y) {
        return run_chains(params, nullptr, {}, y).langevin;
    }
    /// The same through the generator: `z` holds n * latent_len() latents,
    /// `y` n * sample_len() residuals.
    hatebm_langevin_stats langevin(const hatebm_langevin_params &params, Span<float> z,
                                   Span<float> y) {
        return run_chains(params, nullptr, z, y).langevin;
    }
    /// hatebm_session_langevin_mcmc: langevin() with the transition of `mcmc`.
    McmcStats langevin_mcmc(const hatebm_langevin_params &params, const hatebm_mcmc_params &mcmc,
                            Span<float> y) {
        return run_chains(params, &mcmc, {}, y);
    }
    McmcStats langevin_mcmc(const hatebm_langevin_params &params, const hatebm_mcmc_params &mcmc,
                            Span<float> z, Span<float> y) {
        return run_chains(params, &mcmc, z, y);
    }

    hatebm_step_stats step() {
        hatebm_step_stats stats{};
        check(hatebm_session_step(handle_.get(), &stats));
        return stats;
    }

    /// Trains n_iterations more (0 = to train.steps). `on_progress(const
    /// hatebm_progress &)` returns false to cancel: a normal outcome, so train
    /// then returns false (after a complete iteration; the session can be
    /// saved or trained further) instead of throwing. Returns true when the
    /// requested iterations ran. An exception thrown by `on_progress` cancels
    /// the run and is rethrown; other failures throw hatebm::Error.
    template <typename F>
    bool train(std::uint64_t n_iterations, F &&on_progress) {
        auto call = [&](const hatebm_progress *p) -> bool { return on_progress(*p); };
        Callback<bool(const hatebm_progress *)> cb(call, false);
        hatebm_status st = hatebm_session_train(handle_.get(), n_iterations, cb.function(), cb.user_data());
        cb.rethrow_if_failed();
        if (st == HATEBM_CANCELLED) {
            return false;
        }
        check(st);
        return true;
    }
    void train(std::uint64_t n_iterations) {
        check(hatebm_session_train(handle_.get(), n_iterations, nullptr, nullptr));
    }

    hatebm_step_stats last_stats() const {
        hatebm_step_stats stats{};
        check(hatebm_session_last_stats(handle_.get(), &stats));
        return stats;
    }

    std::size_t bank_size() const {
        std::size_t n = 0;
        check(hatebm_session_bank_size(handle_.get(), &n));
        return n;
    }

    /// Bank slot `slot` as (z, x); z is empty for an images-only bank.
    std::pair<std::vector<float>, std::vector<float>> bank_read(std::size_t slot) const {
        std::vector<float> z(latent_len()), x(sample_len());
        bank_read(slot, z, x);
        return {std::move(z), std::move(x)};
    }
    /// Into caller buffers of latent_len() (or empty, to skip the latent) and
    /// sample_len() floats (hatebm_session_bank_read).
    void bank_read(std::size_t slot, Span<float> z, Span<float> x) const {
        check(hatebm_session_bank_read(handle_.get(), slot, z.data_or_null(), z.size(), x.data(),
                                       x.size()));
    }

    std::vector<float> sample(const hatebm_sample_params &params) {
        std::vector<float> out(params.n * sample_len());
        sample(params, out);
        return out;
    }
    /// Into a caller buffer of params.n * sample_len() floats.
    void sample(const hatebm_sample_params &params, Span<float> out) {
        check(hatebm_session_sample(handle_.get(), &params, out.data(), out.size()));
    }

    hatebm_session *get() const noexcept { return handle_.get(); }

    /// Takes ownership of a session made by C code (hatebm_session_new,
    /// _resume, _new_distributed, ...). Throws hatebm::Error for NULL.
    static Session adopt(hatebm_session *raw) {
        Session s;
        s.handle_.reset(detail::non_null(raw));
        return s;
    }
    /// Gives the session to C code (free it with hatebm_session_free); this
    /// Session is empty afterwards.
    hatebm_session *release() noexcept { return handle_.release(); }

  private:
    Session() = default;

    McmcStats run_chains(const hatebm_langevin_params &params, const hatebm_mcmc_params *mcmc,
                         Span<float> z, Span<float> y) {
        McmcStats out{hatebm_langevin_stats{}, hatebm_mh_stats{}};
        const std::size_t n = detail::rows(y.size(), sample_len());
        check(mcmc == nullptr
                  ? hatebm_session_langevin(handle_.get(), &params, z.data_or_null(), z.size(),
                                            y.data(), y.size(), n, &out.langevin)
                  : hatebm_session_langevin_mcmc(handle_.get(), &params, mcmc, z.data_or_null(),
                                                 z.size(), y.data(), y.size(), n, &out.langevin,
                                                 &out.mh));
        return out;
    }

    Handle<hatebm_session, hatebm_session_free> handle_;
};

/// Writes n images (NCHW floats in [-1, 1]) as a PNG grid.
inline void save_image_grid(const std::string &path, Span<const float> data, std::size_t n,
                            std::size_t c, std::size_t h, std::size_t w) {
    check(hatebm_save_image_grid(path.c_str(), data.data(), data.size(), n, c, h, w));
}

/// Writes a float32 .npy file.
inline void save_npy(const std::string &path, Span<const float> data,
                     const std::vector<std::size_t> &shape) {
    check(hatebm_save_npy(path.c_str(), data.data(), data.size(), shape.data(), shape.size()));
}

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
