// The NumPy array types of the bindings: C-contiguous, aligned arrays of one dtype. Bound with
// py::arg(...).noconvert(), an argument of another dtype or layout raises TypeError instead of
// being copied silently.
//
// Alignment, for every binding: an argument of the right dtype and layout at an address that is
// not a multiple of its item size (a view into received bytes, e.g. a Dask worker's rows) arrives
// as an aligned copy, marked read-only (the kernels load whole elements; misaligned loads are
// undefined behaviour). An argument the binding writes into must be the caller's own array, so
// writing into such a copy raises ValueError ("array is not writeable") instead of losing the
// writes.
#pragma once

#include <pybind11/numpy.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace recforge::bindings {

template <class T>
class CArray : public pybind11::array_t<T, pybind11::array::c_style> {
  public:
    using Base = pybind11::array_t<T, pybind11::array::c_style>;
    using Base::Base;
    CArray() = default;
    CArray(Base&& a) : Base(std::move(a)) {}  // NOLINT: implicit, as the alias it replaces

    // `a` itself when it is aligned, else an aligned read-only copy of it.
    static CArray aligned(Base a) {
        namespace d = pybind11::detail;
        if (d::array_proxy(a.ptr())->flags & d::npy_api::NPY_ARRAY_ALIGNED_)
            return CArray(std::move(a));
        std::vector<pybind11::ssize_t> shape(a.shape(), a.shape() + a.ndim());
        CArray copy(shape);
        std::memcpy(copy.mutable_data(), a.data(), static_cast<size_t>(a.nbytes()));
        d::array_proxy(copy.ptr())->flags &= ~d::npy_api::NPY_ARRAY_WRITEABLE_;
        return copy;
    }
};

using F32 = CArray<float>;
using F64 = CArray<double>;
using I32 = CArray<int32_t>;
using I64 = CArray<int64_t>;

// Throws std::invalid_argument (ValueError in Python) unless ok. No std::string is built unless it
// fails, so the structural checks may call it in loops.
inline void require(bool ok, const char* msg) {
    if (!ok) throw std::invalid_argument(msg);
}

// require(every idx[0, n) in [0, bound), msg): one branch-free pass, not a branch per index. As
// unsigned numbers the negative indices are >= 2^31, so one unsigned compare per index checks
// both ends; it vectorises with SSE2 alone (a signed min/max pass needs SSE4.1, and ran 7x slower
// on a GBDT fit's 32k rows per tree).
inline void require_indices(const int32_t* idx, int64_t n, int64_t bound, const char* msg) {
    const auto end = static_cast<uint32_t>(std::clamp<int64_t>(bound, 0, int64_t{1} << 31));
    uint32_t out_of_range = 0;
    for (int64_t i = 0; i < n; ++i) out_of_range |= static_cast<uint32_t>(idx[i]) >= end;
    require(out_of_range == 0, msg);
}

// Whether `a` has dtype T in native byte order (an equivalent dtype counts: int64 is 'l' or 'q').
template <class T>
bool has_dtype(const pybind11::array& a) {
    return pybind11::detail::npy_api::get().PyArray_EquivTypes_(
        pybind11::detail::array_proxy(a.ptr())->descr, pybind11::dtype::of<T>().ptr());
}

// f(T{}) for the first of the dtypes Ts that `a` has (has_dtype); TypeError naming `name` and
// `dtypes` when it has none of them. For kernels that read `a` through its strides themselves.
template <class T, class... Ts, class F>
decltype(auto) visit_dtype_tag(const pybind11::array& a, const char* name, const char* dtypes,
                               F&& f) {
    if (has_dtype<T>(a)) return f(T{});
    if constexpr (sizeof...(Ts) > 0) {
        return visit_dtype_tag<Ts...>(a, name, dtypes, std::forward<F>(f));
    } else {
        throw pybind11::type_error(std::string(name) + " must be an array of dtype " + dtypes +
                                   ", got " + std::string(pybind11::str(a.dtype())));
    }
}

// f(p) with p a const T* to the elements of `a` in C order, for the first of the dtypes Ts that
// `a` has (visit_dtype_tag). `a` must be C-contiguous (std::invalid_argument naming `name`); at a
// misaligned address (a view into received bytes) its elements are read from an aligned copy, as
// CArray::aligned does for the arguments of one dtype. `read`, if given, receives the array p
// points into (`a` or the copy), for a caller whose threads may read it after f returns.
template <class T, class... Ts, class F>
decltype(auto) visit_dtype(const pybind11::array& a, const char* name, const char* dtypes, F&& f,
                           pybind11::object* read = nullptr) {
    return visit_dtype_tag<T, Ts...>(a, name, dtypes, [&](auto tag) -> decltype(auto) {
        using U = decltype(tag);
        if (!(pybind11::detail::array_proxy(a.ptr())->flags &
              pybind11::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_))
            throw std::invalid_argument(std::string(name) + " must be C-contiguous");
        const CArray<U> typed =
            CArray<U>::aligned(pybind11::reinterpret_borrow<typename CArray<U>::Base>(a));
        if (read != nullptr) *read = typed;
        return f(typed.data());
    });
}

// A new 1-D array holding a copy of v.
template <class T>
CArray<T> to_array(const std::vector<T>& v) {
    CArray<T> a(static_cast<pybind11::ssize_t>(v.size()));
    std::copy(v.begin(), v.end(), a.mutable_data());
    return a;
}

}  // namespace recforge::bindings

namespace pybind11::detail {

// CArray arguments (pybind11's caster of every pyobject type is a pyobject_caster): array_t's
// loading (dtype and layout checked, converted only without noconvert), then CArray::aligned.
template <class T>
struct pyobject_caster<recforge::bindings::CArray<T>> {
    using Type = recforge::bindings::CArray<T>;
    using Base = typename Type::Base;
    PYBIND11_TYPE_CASTER(Type, handle_type_name<Base>::name);

    bool load(handle src, bool convert) {
        if (!convert && !Base::check_(src)) return false;
        Base a = Base::ensure(src);
        if (!a) return false;
        value = Type::aligned(std::move(a));
        return true;
    }

    static handle cast(const Type& src, return_value_policy, handle) { return src.inc_ref(); }
};

}  // namespace pybind11::detail
