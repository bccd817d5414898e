// The NumPy array types of the bindings: C-contiguous arrays of one dtype. Bound with
// py::arg(...).noconvert(), an argument of another dtype or layout raises TypeError instead of
// being copied silently.
#pragma once

#include <pybind11/numpy.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace recforge::bindings {

template <class T>
using CArray = pybind11::array_t<T, pybind11::array::c_style>;

using F32 = CArray<float>;
using F64 = CArray<double>;
using I32 = CArray<int32_t>;
using I64 = CArray<int64_t>;

// Throws std::invalid_argument (ValueError in Python) unless ok. No std::string is built unless it
// fails, so the structural checks may call it in loops.
inline void require(bool ok, const char* msg) {
    if (!ok) throw std::invalid_argument(msg);
}

// The data of `a` as const T* when its dtype is T, else nullptr (the caller tries another dtype).
// An array of dtype T that is not C-contiguous and aligned raises std::invalid_argument naming
// `name` (the kernels read whole elements in C order; a view into received bytes can sit at an
// odd address).
template <class T>
const T* typed_data(const pybind11::array& a, const char* name) {
    const auto& api = pybind11::detail::npy_api::get();
    if (!api.PyArray_EquivTypes_(pybind11::detail::array_proxy(a.ptr())->descr,
                                 pybind11::dtype::of<T>().ptr()))
        return nullptr;
    constexpr int kNeeded = pybind11::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ |
                            pybind11::detail::npy_api::NPY_ARRAY_ALIGNED_;
    if ((pybind11::detail::array_proxy(a.ptr())->flags & kNeeded) != kNeeded)
        throw std::invalid_argument(std::string(name) + " must be C-contiguous and aligned");
    return static_cast<const T*>(a.data());
}

// f(p) with p the typed data of `a` (typed_data) for the first of the dtypes Ts that `a` has;
// TypeError naming `name` and `dtypes` when it has none of them.
template <class T, class... Ts, class F>
decltype(auto) visit_dtype(const pybind11::array& a, const char* name, const char* dtypes, F&& f) {
    if (const T* p = typed_data<T>(a, name)) return f(p);
    if constexpr (sizeof...(Ts) > 0) {
        return visit_dtype<Ts...>(a, name, dtypes, std::forward<F>(f));
    } else {
        throw pybind11::type_error(std::string(name) + " must be an array of dtype " + dtypes +
                                   ", got " + std::string(pybind11::str(a.dtype())));
    }
}

// A new 1-D array holding a copy of v.
template <class T>
CArray<T> to_array(const std::vector<T>& v) {
    CArray<T> a(static_cast<pybind11::ssize_t>(v.size()));
    std::copy(v.begin(), v.end(), a.mutable_data());
    return a;
}

}  // namespace recforge::bindings
