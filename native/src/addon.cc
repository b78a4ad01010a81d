// Thin N-API layer: argument checking and conversion only; the work is in the
// kernels, the policy in the TypeScript wrapper (daemon/native.ts).
#include <napi.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <memory>
#include <string>

#include "preview.h"
#include "byte_offset.h"
#include "cbf_decode.h"
#include "cbf_locate.h"
#include "geometry.h"
#include "integrator.h"
#include "pixel_map.h"
#include "huge_pages.h"
#include <cerrno>
#include <cstring>
#include <chrono>
#include <cstdio>
#include "jungfrau.h"
#include "jungfrau_integrate.h"
#include "lz4_codecs.h"
#include "pedestal.h"
#include "peakfinder8.h"  // spots: peakfinder8
#include "sd_notify.h"
#include "dispersion.h"
#include "fxs.h"  // correlate: angular cross-correlations

using namespace beamedge;

namespace {

template <typename F>
auto guarded(const Napi::Env& env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

Napi::Uint8Array bytes_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a Uint8Array or Buffer");
  return info[i].As<Napi::Uint8Array>();
}

double number_prop(const Napi::Object& o, const char* key) {
  const Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string("geometry.") + key + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

template <typename A>
A typed_array_or_null(const Napi::Object& o, const char* key, napi_typedarray_type type, size_t n, const char* tname) {
  const Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return A();
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
    throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a " + tname);
  A a = v.As<A>();
  if (a.ElementLength() != n)
    throw Napi::RangeError::New(o.Env(), std::string(key) + " has " + std::to_string(a.ElementLength()) +
                                             " elements, expected " + std::to_string(n));
  return a;
}

const char* element_name(CbfElement e) {
  switch (e) {
    case CbfElement::i8: return "int8";
    case CbfElement::u8: return "uint8";
    case CbfElement::i16: return "int16";
    case CbfElement::u16: return "uint16";
    case CbfElement::i32: return "int32";
    case CbfElement::u32: return "uint32";
  }
  return "?";
}

Napi::Object binary_to_js(Napi::Env env, const CbfBinary& b) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("sectionOffset", double(b.section_offset));
  o.Set("dataOffset", double(b.data_offset));
  o.Set("binarySize", double(b.binary_size));
  o.Set("elementType", b.element_type);
  o.Set("dtype", element_name(b.element));
  o.Set("conversions", b.conversions);
  o.Set("md5", b.md5.empty() ? env.Null() : Napi::String::New(env, b.md5));
  o.Set("elements", double(b.n_elements));
  o.Set("fastest", b.fastest < 0 ? env.Null() : Napi::Number::New(env, double(b.fastest)));
  o.Set("second", b.second < 0 ? env.Null() : Napi::Number::New(env, double(b.second)));
  o.Set("third", b.third < 0 ? env.Null() : Napi::Number::New(env, double(b.third)));
  o.Set("padding", b.padding < 0 ? env.Null() : Napi::Number::New(env, double(b.padding)));
  return o;
}

Napi::Int32Array output_arg(const Napi::CallbackInfo& info, size_t i, size_t count) {
  if (info.Length() > i && !info[i].IsUndefined() && !info[i].IsNull()) {
    if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      throw Napi::TypeError::New(info.Env(), "output must be an Int32Array");
    Napi::Int32Array out = info[i].As<Napi::Int32Array>();
    if (out.ElementLength() < count)
      throw Napi::RangeError::New(info.Env(), "output holds " + std::to_string(out.ElementLength()) +
                                                  " elements, the frame has " + std::to_string(count));
    return out;
  }
  return Napi::Int32Array::New(info.Env(), count);
}

// cbfLocate(buf) -> binary section description
Napi::Value CbfLocate(const Napi::CallbackInfo& info) {
  Napi::Uint8Array buf = bytes_arg(info, 0, "cbf");
  return guarded(info.Env(), [&] { return binary_to_js(info.Env(), cbf_locate(buf.Data(), buf.ByteLength())); });
}

// cbfDecode(buf, out?) -> { binary, pixels }
Napi::Value CbfDecode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array buf = bytes_arg(info, 0, "cbf");
  return guarded(env, [&]() -> Napi::Value {
    const CbfBinary b = cbf_locate(buf.Data(), buf.ByteLength());
    const size_t count = static_cast<size_t>(b.n_elements);
    Napi::Int32Array out = output_arg(info, 1, count);
    byte_offset_decode_exact(buf.Data() + b.data_offset, b.binary_size, out.Data(), count);
    Napi::Object o = Napi::Object::New(env);
    o.Set("binary", binary_to_js(env, b));
    o.Set("pixels", out);
    return o;
  });
}

// byteOffsetDecode(bytes, count, out?) -> Int32Array; the stream must be consumed exactly.
Napi::Value ByteOffsetDecode(const Napi::CallbackInfo& info) {
  Napi::Uint8Array src = bytes_arg(info, 0, "bytes");
  if (info.Length() < 2 || !info[1].IsNumber()) throw Napi::TypeError::New(info.Env(), "count must be a number");
  const double c = info[1].As<Napi::Number>().DoubleValue();
  if (!(c >= 0 && c <= 4294967295.0)) throw Napi::RangeError::New(info.Env(), "count out of range");
  const size_t count = static_cast<size_t>(c);
  Napi::Int32Array out = output_arg(info, 2, count);
  return guarded(info.Env(), [&]() -> Napi::Value {
    byte_offset_decode_exact(src.Data(), src.ByteLength(), out.Data(), count);
    return out;
  });
}

Napi::Value ByteOffsetEncode(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Napi::TypeError::New(info.Env(), "values must be an Int32Array");
  Napi::Int32Array v = info[0].As<Napi::Int32Array>();
  std::vector<uint8_t> enc = byte_offset_encode(v.Data(), v.ElementLength());
  return Napi::Buffer<uint8_t>::Copy(info.Env(), enc.data(), enc.size());
}

Napi::Float64Array to_js(Napi::Env env, const std::vector<double>& v) {
  Napi::Float64Array a = Napi::Float64Array::New(env, v.size());
  std::copy(v.begin(), v.end(), a.Data());
  return a;
}

Napi::Float32Array to_js(Napi::Env env, const std::vector<float>& v) {
  Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
  std::copy(v.begin(), v.end(), a.Data());
  return a;
}

// pixelArrays(geometry, rows, cols, request) -> { radial, radialDelta?, chi?, chiDelta?, solidAngle?, polarization? }
Napi::Value PixelArraysJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsObject() || !info[1].IsNumber() || !info[2].IsNumber() || !info[3].IsObject())
    throw Napi::TypeError::New(env, "pixelArrays(geometry, rows, cols, request)");
  Napi::Object g = info[0].As<Napi::Object>();
  Geometry geo{number_prop(g, "dist"),   number_prop(g, "poni1"),  number_prop(g, "poni2"),
               number_prop(g, "rot1"),   number_prop(g, "rot2"),   number_prop(g, "rot3"),
               number_prop(g, "pixel1"), number_prop(g, "pixel2"), number_prop(g, "wavelength")};
  const int64_t rows = info[1].As<Napi::Number>().Int64Value(), cols = info[2].As<Napi::Number>().Int64Value();
  if (rows < 1 || cols < 1 || rows * cols > (int64_t(1) << 31))
    throw Napi::RangeError::New(env, "detector shape out of range");
  Napi::Object r = info[3].As<Napi::Object>();
  PixelArrayRequest req;
  const std::string radial = r.Get("radial").ToString();
  if (radial == "q") req.radial = RadialKind::q_nm;
  else if (radial == "2th") req.radial = RadialKind::tth_rad;
  else if (radial == "r") req.radial = RadialKind::r_m;
  else throw Napi::TypeError::New(env, "request.radial must be q, 2th or r");
  req.corners = r.Get("corners").ToBoolean();
  req.chi = r.Get("chi").ToBoolean();
  req.solid_angle = r.Get("solidAngle").ToBoolean();
  const Napi::Value pf = r.Get("polarization");
  if (pf.IsNumber()) {
    req.polarization = true;
    req.polarization_factor = pf.As<Napi::Number>().DoubleValue();
  }
  PixelArrays a = compute_pixel_arrays(geo, size_t(rows), size_t(cols), req);
  Napi::Object o = Napi::Object::New(env);
  o.Set("radial", to_js(env, a.radial));
  if (req.corners) o.Set("radialDelta", to_js(env, a.radial_delta));
  if (req.chi) o.Set("chi", to_js(env, a.chi));
  if (req.chi && req.corners) o.Set("chiDelta", to_js(env, a.chi_delta));
  if (req.solid_angle) o.Set("solidAngle", to_js(env, a.solid_angle));
  if (req.polarization) o.Set("polarization", to_js(env, a.polarization));
  return o;
}

std::pair<uint8_t*, size_t> typed_bytes(const Napi::Env& env, const Napi::Value& v, const char* what);

class IntegratorWrap : public Napi::ObjectWrap<IntegratorWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Integrator",
                       {InstanceMethod("integrate", &IntegratorWrap::Integrate),
                        InstanceMethod("integrateCbf", &IntegratorWrap::IntegrateCbf),
                        InstanceMethod("integrateJungfrau", &IntegratorWrap::IntegrateJungfrau),
                        InstanceMethod("axes", &IntegratorWrap::Axes),
                        InstanceMethod("dispose", &IntegratorWrap::Dispose),
                        InstanceMethod("memoryBytes", &IntegratorWrap::MemoryBytes),
                        InstanceMethod("mapBlob", &IntegratorWrap::MapBlob)});
  }

  // new Integrator({ pos0, dpos0?, pos1?, dpos1?, mask?, norm?, bins0, bins1?, range0?, range1?, allowNegative? })
  explicit IntegratorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<IntegratorWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "Integrator(options)");
    Napi::Object o = info[0].As<Napi::Object>();
    const Napi::Value blob = o.Get("map");
    if (!blob.IsUndefined()) {
      // A built map read in place (a SharedArrayBuffer of the map store, or a
      // loaded cache file): held by reference so it outlives every frame.
      auto [data, len] = typed_bytes(env, blob, "map");
      guarded(env, [&] {
        impl_ = std::make_unique<Integrator>(data, len);
        return 0;
      });
      map_ref_ = Napi::Persistent(blob);
      return;
    }
    const Napi::Value p0 = o.Get("pos0");
    if (!p0.IsTypedArray() || p0.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      throw Napi::TypeError::New(env, "pos0 must be a Float64Array");
    const size_t n = p0.As<Napi::Float64Array>().ElementLength();
    MapInputs in;
    in.npix = n;
    in.pos0 = p0.As<Napi::Float64Array>().Data();
    auto f64 = [&](const char* k) {
      auto a = typed_array_or_null<Napi::Float64Array>(o, k, napi_float64_array, n, "Float64Array");
      return a.IsEmpty() ? nullptr : a.Data();
    };
    in.dpos0 = f64("dpos0");
    in.pos1 = f64("pos1");
    in.dpos1 = f64("dpos1");
    auto mask = typed_array_or_null<Napi::Uint8Array>(o, "mask", napi_uint8_array, n, "Uint8Array");
    in.mask = mask.IsEmpty() ? nullptr : mask.Data();
    auto norm = typed_array_or_null<Napi::Float32Array>(o, "norm", napi_float32_array, n, "Float32Array");
    in.norm = norm.IsEmpty() ? nullptr : norm.Data();
    in.axis0.bins = o.Get("bins0").ToNumber().Int32Value();
    in.axis1.bins = in.pos1 ? o.Get("bins1").ToNumber().Int32Value() : 1;
    in.axis0.allow_negative = o.Get("allowNegative").ToBoolean();
    auto range = [&](const char* k, AxisSpec& a) {
      const Napi::Value v = o.Get(k);
      if (v.IsUndefined() || v.IsNull()) return;
      if (!v.IsArray() || v.As<Napi::Array>().Length() != 2)
        throw Napi::TypeError::New(env, std::string(k) + " must be [lo, hi]");
      a.lo = v.As<Napi::Array>().Get(0u).ToNumber().DoubleValue();
      a.hi = v.As<Napi::Array>().Get(1u).ToNumber().DoubleValue();
    };
    range("range0", in.axis0);
    range("range1", in.axis1);
    guarded(env, [&] {
      impl_ = std::make_unique<Integrator>(in);
      return 0;
    });
    external_ = static_cast<int64_t>(impl_->memory_bytes());
    Napi::MemoryManagement::AdjustExternalMemory(env, external_);
  }

  ~IntegratorWrap() override {
    // The env may be gone at worker exit; V8's accounting dies with it then.
    if (external_) Napi::MemoryManagement::AdjustExternalMemory(Env(), -external_);
  }

 private:
  FrameInputs frame_options(const Napi::Value& v) {
    FrameInputs f;
    if (!v.IsObject()) return f;
    Napi::Object o = v.As<Napi::Object>();
    auto dark = typed_array_or_null<Napi::Float32Array>(o, "dark", napi_float32_array, impl_->npix(), "Float32Array");
    if (!dark.IsEmpty()) f.dark = dark.Data();
    const Napi::Value lt = o.Get("litThreshold");
    if (lt.IsNumber()) f.lit_threshold = lt.As<Napi::Number>().DoubleValue();
    f.negative_valid = o.Get("negativeValid").ToBoolean();
    const Napi::Value mv = o.Get("maxValid");
    if (mv.IsNumber()) f.max_valid = mv.As<Napi::Number>().DoubleValue();
    const Napi::Value d = o.Get("dummy");
    if (d.IsNumber()) {
      f.has_dummy = true;
      f.dummy = d.As<Napi::Number>().DoubleValue();
      const Napi::Value dd = o.Get("deltaDummy");
      f.delta_dummy = dd.IsNumber() ? dd.As<Napi::Number>().DoubleValue() : 0.0;
    }
    return f;
  }

  double empty_of(const Napi::Value& v) {
    if (!v.IsObject()) return 0.0;
    const Napi::Value e = v.As<Napi::Object>().Get("empty");
    return e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : 0.0;
  }

  Napi::Value result_to_js(Napi::Env env, const IntegrationResult& r) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("intensity", to_js(env, r.intensity));
    o.Set("sigma", to_js(env, r.sigma));
    o.Set("signal", to_js(env, r.signal));
    o.Set("variance", to_js(env, r.variance));
    o.Set("normalization", to_js(env, r.normalization));
    o.Set("count", to_js(env, r.count));
    o.Set("lit", double(r.lit));
    o.Set("excluded", double(r.excluded));
    return o;
  }

  // integrate(frame, { dark?, dummy?, deltaDummy?, empty? })
  Napi::Value Integrate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    live(env);
    if (info.Length() < 1 || !info[0].IsTypedArray()) throw Napi::TypeError::New(env, "frame must be a typed array");
    Napi::TypedArray t = info[0].As<Napi::TypedArray>();
    if (t.ElementLength() != impl_->npix())
      throw Napi::RangeError::New(env, "frame has " + std::to_string(t.ElementLength()) + " pixels, the geometry " +
                                           std::to_string(impl_->npix()));
    FrameInputs f = frame_options(info[1]);
    switch (t.TypedArrayType()) {
      case napi_int32_array: f.type = PixelType::i32; break;
      case napi_uint32_array: f.type = PixelType::u32; break;
      case napi_uint16_array: f.type = PixelType::u16; break;
      case napi_uint8_array: f.type = PixelType::u8; break;
      case napi_float32_array: f.type = PixelType::f32; break;
      default: throw Napi::TypeError::New(env, "frame must be Int32, Uint32, Uint16, Uint8 or Float32Array");
    }
    // From napi_get_typedarray_info directly: Napi::ArrayBuffer cannot wrap the
    // SharedArrayBuffer behind a ring slot.
    void* data = nullptr;
    napi_status st = napi_get_typedarray_info(env, t, nullptr, nullptr, &data, nullptr, nullptr);
    if (st != napi_ok || data == nullptr) throw Napi::TypeError::New(env, "cannot read the frame's memory");
    f.data = data;
    return guarded(env, [&]() -> Napi::Value {
      Accumulator acc = impl_->start();
      impl_->accumulate(acc, f, 0, impl_->npix());
      IntegrationResult r;
      impl_->finish(acc, empty_of(info[1]), r);
      return result_to_js(env, r);
    });
  }

  // integrateCbf(buf, options): decode tile by tile straight into the
  // integrator, so the frame never round-trips through main memory.
  Napi::Value IntegrateCbf(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    live(env);
    Napi::Uint8Array buf = bytes_arg(info, 0, "cbf");
    FrameInputs f = frame_options(info[1]);
    return guarded(env, [&]() -> Napi::Value {
      IntegrationResult r;
      integrate_cbf(*impl_, buf.Data(), buf.ByteLength(), f, empty_of(info[1]), r);
      return result_to_js(env, r);
    });
  }

  // integrateJungfrau(raw, cal, options): defined below, after the JUNGFRAU argument helpers.
  Napi::Value IntegrateJungfrau(const Napi::CallbackInfo& info);

  // dispose(): frees the map now rather than whenever the wrapper is collected.
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    impl_.reset();
    if (!map_ref_.IsEmpty()) map_ref_.Reset();
    if (external_) Napi::MemoryManagement::AdjustExternalMemory(info.Env(), -external_);
    external_ = 0;
    return info.Env().Undefined();
  }

  // mapBlob() -> Buffer: a copy of the map (tests read its layout).
  Napi::Value MapBlob(const Napi::CallbackInfo& info) {
    if (!impl_) throw Napi::Error::New(info.Env(), "integrator disposed");
    return Napi::Buffer<uint8_t>::Copy(info.Env(), impl_->map_blob(), impl_->map_bytes());
  }
  Napi::Value MemoryBytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), impl_ ? double(impl_->memory_bytes()) : 0.0);
  }

  void live(Napi::Env env) const {
    if (!impl_) throw Napi::Error::New(env, "integrator was disposed");
  }

  Napi::Value Axes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    live(env);
    auto axis = [&](const Axis& a) {
      Napi::Object o = Napi::Object::New(env);
      Napi::Float64Array c = Napi::Float64Array::New(env, a.bins);
      for (int i = 0; i < a.bins; ++i) c[i] = a.centre(i);
      o.Set("centres", c);
      o.Set("min", a.min);
      o.Set("max", a.max);
      o.Set("delta", a.delta);
      return o;
    };
    Napi::Object o = Napi::Object::New(env);
    o.Set("radial", axis(impl_->axis0()));
    o.Set("azimuthal", axis(impl_->axis1()));
    o.Set("entries", double(impl_->entries()));
    o.Set("mapBytes", double(impl_->map_bytes()));
    return o;
  }

  std::unique_ptr<Integrator> impl_;
  int64_t external_ = 0;
  Napi::Reference<Napi::Value> map_ref_;
};

// Bytes of any typed array (including views on SharedArrayBuffers).
std::pair<uint8_t*, size_t> typed_bytes(const Napi::Env& env, const Napi::Value& v, const char* what) {
  if (!v.IsTypedArray()) throw Napi::TypeError::New(env, std::string(what) + " must be a typed array");
  void* data = nullptr;
  size_t length = 0;
  napi_typedarray_type type;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, nullptr, nullptr) != napi_ok)
    throw Napi::TypeError::New(env, std::string("cannot read ") + what);
  static const size_t sizes[] = {1, 1, 1, 2, 2, 4, 4, 4, 8, 8, 8};
  return {static_cast<uint8_t*>(data), length * (type <= napi_biguint64_array ? sizes[type] : 1)};
}

// bslz4Decode(src, out, elemSize): bitshuffle-LZ4 straight into `out`.
Napi::Value Bslz4Decode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[2].IsNumber()) throw Napi::TypeError::New(env, "bslz4Decode(src, out, elemSize)");
  auto [src, src_len] = typed_bytes(env, info[0], "src");
  auto [dst, dst_len] = typed_bytes(env, info[1], "out");
  const int64_t es = info[2].As<Napi::Number>().Int64Value();
  if (es != 1 && es != 2 && es != 4 && es != 8) throw Napi::RangeError::New(env, "elemSize must be 1, 2, 4 or 8");
  return guarded(env, [&]() -> Napi::Value {
    bslz4_decode(src, src_len, dst, dst_len, size_t(es));
    return info[1];
  });
}

// lz4Decode(src, out, framed): framed LZ4 (12-byte header) or one bare LZ4 block.
Napi::Value Lz4Decode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3) throw Napi::TypeError::New(env, "lz4Decode(src, out, framed)");
  auto [src, src_len] = typed_bytes(env, info[0], "src");
  auto [dst, dst_len] = typed_bytes(env, info[1], "out");
  const bool framed = info[2].ToBoolean();
  return guarded(env, [&]() -> Napi::Value {
    if (framed) lz4_framed_decode(src, src_len, dst, dst_len);
    else lz4_block_decode(src, src_len, dst, dst_len);
    return info[1];
  });
}

// bslz4Encode(bytes, elemSize) / lz4BlockEncode(bytes) -> Buffer (simulators, tests)
Napi::Value Bslz4Encode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto [src, len] = typed_bytes(env, info[0], "src");
  const int64_t es = info.Length() > 1 ? info[1].ToNumber().Int64Value() : 0;
  if (es != 1 && es != 2 && es != 4) throw Napi::RangeError::New(env, "elemSize must be 1, 2 or 4");
  if (len % size_t(es)) throw Napi::RangeError::New(env, "input is not a whole number of elements");
  const std::vector<uint8_t> out = bslz4_encode(src, len, size_t(es));
  return Napi::Buffer<uint8_t>::Copy(env, out.data(), out.size());
}

Napi::Value Lz4BlockEncode(const Napi::CallbackInfo& info) {
  auto [src, len] = typed_bytes(info.Env(), info[0], "src");
  const std::vector<uint8_t> out = lz4_block_encode(src, len);
  return Napi::Buffer<uint8_t>::Copy(info.Env(), out.data(), out.size());
}

// A typed array of one exact element type with n elements (n = 0: any length),
// read through napi_get_typedarray_info so SharedArrayBuffer views work too.
template <typename T>
T* typed_exact(const Napi::Env& env, const Napi::Value& v, napi_typedarray_type want, const char* tname, size_t n,
               const char* what, size_t* len_out = nullptr) {
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  if (!v.IsTypedArray() || napi_get_typedarray_info(env, v, &type, &length, &data, nullptr, nullptr) != napi_ok ||
      type != want)
    throw Napi::TypeError::New(env, std::string(what) + " must be a " + tname);
  if (n && length != n)
    throw Napi::TypeError::New(env, std::string(what) + " has " + std::to_string(length) + " elements, expected " +
                                        std::to_string(n));
  if (len_out) *len_out = length;
  // A zero-length view may have no storage; the kernel reads nothing from it then.
  return static_cast<T*>(data);
}

double finite_prop(const Napi::Object& o, const char* key, double fallback) {
  const Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if (!v.IsNumber() || !std::isfinite(v.As<Napi::Number>().DoubleValue()))
    throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a finite number");
  return v.As<Napi::Number>().DoubleValue();
}

// options.litThreshold of the JUNGFRAU calls: converted pixels above it are counted.
void lit_option(const Napi::Env& env, const Napi::Object& o, JfInputs& in) {
  const Napi::Value lt = o.Get("litThreshold");
  if (lt.IsUndefined()) return;
  if (!lt.IsNumber() || std::isnan(lt.As<Napi::Number>().DoubleValue()))
    throw Napi::TypeError::New(env, "litThreshold must be a number");
  in.lit = true;
  in.lit_threshold = static_cast<float>(lt.As<Napi::Number>().DoubleValue());
}

// options.track: { pedestal, rms, k?, window? } over n pixels; false when absent.
bool track_option(const Napi::Env& env, const Napi::Object& o, size_t n, JfTrack& track) {
  const Napi::Value tv = o.Get("track");
  if (tv.IsUndefined() || tv.IsNull()) return false;
  if (!tv.IsObject()) throw Napi::TypeError::New(env, "track must be an object");
  const Napi::Object t = tv.As<Napi::Object>();
  size_t len = 0;
  track.pedestal = typed_exact<float>(env, t.Get("pedestal"), napi_float32_array, "Float32Array", 0, "track.pedestal", &len);
  if (len != n)
    throw Napi::TypeError::New(env, "track.pedestal has " + std::to_string(len) + " elements, expected " + std::to_string(n));
  track.rms = typed_exact<const float>(env, t.Get("rms"), napi_float32_array, "Float32Array", 0, "track.rms", &len);
  if (len != n)
    throw Napi::TypeError::New(env, "track.rms has " + std::to_string(len) + " elements, expected " + std::to_string(n));
  track.k = static_cast<float>(finite_prop(t, "k", kJfTrackK));
  track.window = static_cast<float>(finite_prop(t, "window", kJfTrackWindow));
  if (!(track.k >= 0)) throw Napi::TypeError::New(env, "track.k must not be negative");
  if (!(track.window >= 1)) throw Napi::TypeError::New(env, "track.window must be at least 1");
  return true;
}

bool scalar_option(const Napi::Env& env, const Napi::Object& o) {
  const Napi::Value kv = o.Get("kernel");
  if (kv.IsUndefined()) return false;
  if (!kv.IsString() || kv.As<Napi::String>().Utf8Value() != "scalar")
    throw Napi::TypeError::New(env, "kernel must be 'scalar' when given");
  return true;
}

// pedestal and factor [3][n], mask [n] or null, excludeBits [3]: the JUNGFRAU calibration arguments.
void calibration_args(const Napi::Env& env, const Napi::Value& ped, const Napi::Value& fac, const Napi::Value& mask,
                      const Napi::Value& excl, size_t n, JfInputs& in) {
  const size_t n3 = 3 * n;
  auto plane3 = [&](const Napi::Value& v, const char* what) {
    size_t len = 0;
    const float* p = typed_exact<const float>(env, v, napi_float32_array, "Float32Array", 0, what, &len);
    if (len != n3)
      throw Napi::TypeError::New(env, std::string(what) + " has " + std::to_string(len) + " elements, expected 3 x " +
                                          std::to_string(n) + " (one image per gain)");
    return p;
  };
  in.pedestal = plane3(ped, "pedestal");
  in.factor = plane3(fac, "factor");
  if (!mask.IsNull() && !mask.IsUndefined())
    in.mask = typed_exact<const uint32_t>(env, mask, napi_uint32_array, "Uint32Array or null", n ? n : 0, "mask");
  const uint32_t* ex = typed_exact<const uint32_t>(env, excl, napi_uint32_array, "Uint32Array", 3, "excludeBits");
  for (int g = 0; g < 3; ++g) in.exclude[g] = ex[g];
  if (in.mask && n == 0) in.mask = nullptr;
}

Napi::Object counts_to_js(const Napi::Env& env, const JfCounts& c) {
  Napi::Object r = Napi::Object::New(env);
  r.Set("g0", double(c.gain[0]));
  r.Set("g1", double(c.gain[1]));
  r.Set("g2", double(c.gain[2]));
  r.Set("saturated", double(c.saturated));
  r.Set("invalidCode", double(c.invalid_code));
  r.Set("errorWord", double(c.error_word));
  r.Set("masked", double(c.masked));
  r.Set("lit", double(c.lit));
  return r;
}

// jungfrauConvert(raw, pedestal, factor, mask | null, excludeBits, out,
//                 { litThreshold?, track?: { pedestal, rms, k?, window? }, kernel?: 'scalar' }) -> counts
Napi::Value JungfrauConvert(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 6)
    throw Napi::TypeError::New(env, "jungfrauConvert(raw, pedestal, factor, mask, excludeBits, out, options?)");
  JfInputs in;
  size_t n = 0;
  in.raw = typed_exact<const uint16_t>(env, info[0], napi_uint16_array, "Uint16Array", 0, "raw", &n);
  in.n = n;
  calibration_args(env, info[1], info[2], info[3], info[4], n, in);
  size_t out_len = 0;
  float* out = typed_exact<float>(env, info[5], napi_float32_array, "Float32Array", 0, "out", &out_len);
  if (out_len != n)
    throw Napi::TypeError::New(env, "out has " + std::to_string(out_len) + " elements, expected " + std::to_string(n));
  JfTrack track;
  bool scalar = false;
  if (info.Length() > 6 && !info[6].IsUndefined() && !info[6].IsNull()) {
    if (!info[6].IsObject()) throw Napi::TypeError::New(env, "options must be an object");
    const Napi::Object o = info[6].As<Napi::Object>();
    lit_option(env, o, in);
    if (track_option(env, o, n, track)) in.track = &track;
    scalar = scalar_option(env, o);
  }
  if (n == 0) in.raw = nullptr;
  const JfCounts c = n == 0 ? JfCounts{} : scalar ? jungfrau_convert_scalar(in, out) : jungfrau_convert(in, out);
  return counts_to_js(env, c);
}

// integrateJungfrau(raw, { pedestal, factor, mask?, excludeBits }, { litThreshold?, track?, out?, empty?,
//   maxValid?, tilePixels?, kernel? }): JUNGFRAU conversion fused with integration, one tile at a time
// (jungfrau_integrate.h). litThreshold counts both the mapped lit pixels (result.lit, the veto's
// count, as integrate() gives it) and every converted lit pixel (result.jungfrau.lit, as jungfrauConvert).
Napi::Value IntegratorWrap::IntegrateJungfrau(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  live(env);
  if (info.Length() < 2 || !info[1].IsObject())
    throw Napi::TypeError::New(env, "integrateJungfrau(raw, { pedestal, factor, mask, excludeBits }, options?)");
  JfInputs in;
  size_t n = 0;
  in.raw = typed_exact<const uint16_t>(env, info[0], napi_uint16_array, "Uint16Array", 0, "raw", &n);
  if (n != impl_->npix())
    throw Napi::RangeError::New(env, "frame has " + std::to_string(n) + " pixels, the geometry " +
                                         std::to_string(impl_->npix()));
  in.n = n;
  const Napi::Object cal = info[1].As<Napi::Object>();
  calibration_args(env, cal.Get("pedestal"), cal.Get("factor"), cal.Get("mask"), cal.Get("excludeBits"), n, in);
  JfFusedOptions opt;
  JfTrack track;
  FrameInputs f;
  double empty = 0;
  if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull()) {
    if (!info[2].IsObject()) throw Napi::TypeError::New(env, "options must be an object");
    const Napi::Object o = info[2].As<Napi::Object>();
    lit_option(env, o, in);
    if (in.lit) f.lit_threshold = o.Get("litThreshold").As<Napi::Number>().DoubleValue();
    if (track_option(env, o, n, track)) in.track = &track;
    opt.scalar = scalar_option(env, o);
    const Napi::Value ov = o.Get("out");
    if (!ov.IsUndefined() && !ov.IsNull()) {
      size_t len = 0;
      opt.out = typed_exact<float>(env, ov, napi_float32_array, "Float32Array", 0, "out", &len);
      if (len != n)
        throw Napi::TypeError::New(env, "out has " + std::to_string(len) + " elements, expected " + std::to_string(n));
    }
    const double tile = finite_prop(o, "tilePixels", 0);
    if (tile != 0 && !(tile >= 1 && tile <= 1e9 && tile == std::floor(tile)))
      throw Napi::TypeError::New(env, "tilePixels must be a positive integer");
    opt.tile = static_cast<size_t>(tile);
    const Napi::Value mv = o.Get("maxValid");
    if (mv.IsNumber()) f.max_valid = mv.As<Napi::Number>().DoubleValue();
    const Napi::Value e = o.Get("empty");
    if (e.IsNumber()) empty = e.As<Napi::Number>().DoubleValue();
  }
  if (n == 0) in.raw = nullptr;
  return guarded(env, [&]() -> Napi::Value {
    IntegrationResult r;
    const JfCounts c = integrate_jungfrau(*impl_, in, opt, f, empty, r);
    Napi::Object o = result_to_js(env, r).As<Napi::Object>();
    o.Set("jungfrau", counts_to_js(env, c));
    return o;
  });
}

// sdNotify("READY=1\nSTATUS=...") -> false when not run under systemd
Napi::Value SdNotify(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(info.Env(), "sdNotify(state: string)");
  const std::string state = info[0].As<Napi::String>().Utf8Value();
  return guarded(info.Env(), [&] { return Napi::Boolean::New(info.Env(), sd_notify_send(state)); });
}

// --- dark-run accumulation (calibrate pedestal) ---
// new PedestalAccumulator(pixels); add(frame: Uint16Array); frames();
// counts() -> Uint32Array [3][pixels] (a copy); stats(mean, rms: Float32Array [3][pixels]); reset()
class PedestalWrap : public Napi::ObjectWrap<PedestalWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "PedestalAccumulator",
                       {InstanceMethod("add", &PedestalWrap::Add), InstanceMethod("frames", &PedestalWrap::Frames),
                        InstanceMethod("counts", &PedestalWrap::Counts), InstanceMethod("stats", &PedestalWrap::Stats),
                        InstanceMethod("reset", &PedestalWrap::Reset)});
  }

  explicit PedestalWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PedestalWrap>(info) {
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "PedestalAccumulator(pixels)");
    const double n = info[0].As<Napi::Number>().DoubleValue();
    if (!(n >= 1 && n <= 1e9 && n == static_cast<double>(static_cast<size_t>(n))))
      throw Napi::RangeError::New(info.Env(), "pixels must be a positive integer");
    acc_ = guarded(info.Env(), [&] { return std::make_unique<PedestalAccumulator>(static_cast<size_t>(n)); });
  }

 private:
  Napi::TypedArray typed(const Napi::CallbackInfo& info, size_t i, napi_typedarray_type type, size_t n, const char* what) {
    if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != type)
      throw Napi::TypeError::New(info.Env(), what);
    Napi::TypedArray a = info[i].As<Napi::TypedArray>();
    if (a.ElementLength() != n)
      throw Napi::RangeError::New(info.Env(), std::string(what) + ": " + std::to_string(a.ElementLength()) +
                                                  " elements, expected " + std::to_string(n));
    return a;
  }

  Napi::Value Add(const Napi::CallbackInfo& info) {
    auto a = typed(info, 0, napi_uint16_array, acc_->pixels(), "frame must be a Uint16Array of one frame");
    guarded(info.Env(), [&] { acc_->add(a.As<Napi::Uint16Array>().Data()); });
    return info.Env().Undefined();
  }
  Napi::Value Frames(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(acc_->frames()));
  }
  Napi::Value Counts(const Napi::CallbackInfo& info) {
    const size_t n = 3 * acc_->pixels();
    Napi::Uint32Array out = Napi::Uint32Array::New(info.Env(), n);
    std::copy(acc_->counts(), acc_->counts() + n, out.Data());
    return out;
  }
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    const size_t n = 3 * acc_->pixels();
    auto mean = typed(info, 0, napi_float32_array, n, "mean must be a Float32Array [3][pixels]");
    auto rms = typed(info, 1, napi_float32_array, n, "rms must be a Float32Array [3][pixels]");
    acc_->stats(mean.As<Napi::Float32Array>().Data(), rms.As<Napi::Float32Array>().Data());
    return info.Env().Undefined();
  }
  Napi::Value Reset(const Napi::CallbackInfo& info) {
    acc_->reset();
    return info.Env().Undefined();
  }

  std::unique_ptr<PedestalAccumulator> acc_;
};
// --- end dark-run accumulation ---

// --- dispersion spot finder (DIALS 3.12, native/src/dispersion.h) ---
// new DispersionSpotFinder(width, height, { kernelX, kernelY, sigmaBackground, sigmaStrong,
//   globalThreshold, minLocal, gain (number | null), extended });
// threshold(image: Int32Array | Float32Array, mask: Uint8Array | null, out: Uint8Array) -> strong count
// thresholdReference(...) the same through DIALS's summed-area-table order; path() -> 'integer' | 'reference'
// spots(image, strong: Uint8Array, { minSpotSize, maxSpotSize, maxSeparation (< 0: off) })
//   -> [{ fs, ss, intensity, pixels, peakFs, peakSs }]
class DispersionWrap : public Napi::ObjectWrap<DispersionWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "DispersionSpotFinder",
                       {InstanceMethod("threshold", &DispersionWrap::Threshold),
                        InstanceMethod("thresholdReference", &DispersionWrap::ThresholdReference),
                        InstanceMethod("spots", &DispersionWrap::Spots), InstanceMethod("path", &DispersionWrap::Path)});
  }

  explicit DispersionWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DispersionWrap>(info) {
    const Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsObject())
      throw Napi::TypeError::New(env, "DispersionSpotFinder(width, height, params)");
    const size_t w = dim(env, info[0], "width"), h = dim(env, info[1], "height");
    const Napi::Object o = info[2].As<Napi::Object>();
    DispersionParams p;
    p.kernel_x = int_prop(o, "kernelX", 3);
    p.kernel_y = int_prop(o, "kernelY", 3);
    p.sigma_background = finite_prop(o, "sigmaBackground", 6);
    p.sigma_strong = finite_prop(o, "sigmaStrong", 3);
    p.global_threshold = finite_prop(o, "globalThreshold", 0);
    p.min_local = int_prop(o, "minLocal", 2);
    const Napi::Value g = o.Get("gain");
    if (!g.IsUndefined() && !g.IsNull()) {
      p.use_gain = true;
      p.gain = finite_prop(o, "gain", 1);
    }
    const Napi::Value e = o.Get("extended");
    if (!e.IsUndefined() && !e.IsBoolean()) throw Napi::TypeError::New(env, "extended must be a boolean");
    p.extended = e.IsBoolean() && e.As<Napi::Boolean>().Value();
    try {
      finder_ = std::make_unique<DispersionFinder>(w, h, p);
    } catch (const std::invalid_argument& err) {
      throw Napi::RangeError::New(env, err.what());
    }
    zeros_.assign(w * h, 0);
  }

 private:
  static size_t dim(const Napi::Env& env, const Napi::Value& v, const char* what) {
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 1 && d <= (1 << 20) && d == std::floor(d)))
      throw Napi::RangeError::New(env, std::string(what) + " must be an integer in 1..2^20");
    return static_cast<size_t>(d);
  }
  static int int_prop(const Napi::Object& o, const char* key, int fallback) {
    const double d = finite_prop(o, key, fallback);
    if (d != std::floor(d) || d < -1e6 || d > 1e6)
      throw Napi::TypeError::New(o.Env(), std::string(key) + " must be an integer");
    return static_cast<int>(d);
  }
  // image: Int32Array or Float32Array of width * height; returns true for int32.
  bool image(const Napi::CallbackInfo& info, size_t i, const void** data) {
    const Napi::Env env = info.Env();
    const size_t n = finder_->width() * finder_->height();
    if (info.Length() > i && info[i].IsTypedArray() &&
        info[i].As<Napi::TypedArray>().TypedArrayType() == napi_float32_array) {
      *data = typed_exact<float>(env, info[i], napi_float32_array, "Float32Array", n, "image");
      return false;
    }
    if (info.Length() <= i) throw Napi::TypeError::New(env, "image must be an Int32Array or Float32Array");
    *data = typed_exact<int32_t>(env, info[i], napi_int32_array, "Int32Array or Float32Array", n, "image");
    return true;
  }
  const uint8_t* mask(const Napi::CallbackInfo& info, size_t i) {
    if (info.Length() <= i || info[i].IsNull() || info[i].IsUndefined()) return zeros_.data();
    return typed_exact<uint8_t>(info.Env(), info[i], napi_uint8_array, "Uint8Array", zeros_.size(), "mask");
  }
  Napi::Value Run(const Napi::CallbackInfo& info, bool reference) {
    const void* img = nullptr;
    const bool is_int = image(info, 0, &img);
    const uint8_t* mk = mask(info, 1);
    if (info.Length() < 3) throw Napi::TypeError::New(info.Env(), "out must be a Uint8Array");
    uint8_t* out = typed_exact<uint8_t>(info.Env(), info[2], napi_uint8_array, "Uint8Array", zeros_.size(), "out");
    if (out == mk || out == img) throw Napi::TypeError::New(info.Env(), "out must not share storage with image or mask");
    const size_t n = guarded(info.Env(), [&] {
      if (is_int) {
        const int32_t* p = static_cast<const int32_t*>(img);
        return reference ? finder_->threshold_reference(p, mk, out) : finder_->threshold(p, mk, out);
      }
      const float* p = static_cast<const float*>(img);
      return reference ? finder_->threshold_reference(p, mk, out) : finder_->threshold(p, mk, out);
    });
    return Napi::Number::New(info.Env(), static_cast<double>(n));
  }
  Napi::Value Threshold(const Napi::CallbackInfo& info) { return Run(info, false); }
  Napi::Value ThresholdReference(const Napi::CallbackInfo& info) { return Run(info, true); }
  Napi::Value Path(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), finder_->last_path()); }
  Napi::Value Spots(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    const void* img = nullptr;
    const bool is_int = image(info, 0, &img);
    if (info.Length() < 2) throw Napi::TypeError::New(env, "strong must be a Uint8Array");
    const uint8_t* strong = typed_exact<uint8_t>(env, info[1], napi_uint8_array, "Uint8Array", zeros_.size(), "strong");
    SpotFilter f;
    if (info.Length() > 2 && !info[2].IsUndefined()) {
      if (!info[2].IsObject()) throw Napi::TypeError::New(env, "filter must be an object");
      const Napi::Object o = info[2].As<Napi::Object>();
      const int mn = int_prop(o, "minSpotSize", 1), mx = int_prop(o, "maxSpotSize", 1000);
      if (mn < 1 || mx < 1) throw Napi::RangeError::New(env, "minSpotSize and maxSpotSize must be >= 1");
      f.min_spot_size = uint32_t(mn);
      f.max_spot_size = uint32_t(mx);
      f.max_separation = finite_prop(o, "maxSeparation", -1);
    }
    std::vector<DispersionSpot> s;
    guarded(env, [&] {
      if (is_int) finder_->spots(static_cast<const int32_t*>(img), strong, f, s);
      else finder_->spots(static_cast<const float*>(img), strong, f, s);
    });
    Napi::Array arr = Napi::Array::New(env, s.size());
    for (size_t i = 0; i < s.size(); ++i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("fs", s[i].fs);
      o.Set("ss", s[i].ss);
      o.Set("intensity", s[i].intensity);
      o.Set("pixels", double(s[i].pixels));
      o.Set("peakFs", double(s[i].peak_fs));
      o.Set("peakSs", double(s[i].peak_ss));
      arr.Set(uint32_t(i), o);
    }
    return arr;
  }

  std::unique_ptr<DispersionFinder> finder_;
  std::vector<uint8_t> zeros_;
};
// --- end dispersion spot finder ---
// --- spots: peakfinder8 ---
// new Peakfinder8(width, height, radius: Float32Array, mask: Uint8Array | null, params)
// find(frame: Float32Array | Int32Array, out: {fs, ss, intensity, maxIntensity, sigma, snr: Float32Array,
//      pixels: Int32Array}, each >= maxNumPeaks long) -> peaks found (stored: min(found, maxNumPeaks))
class Peakfinder8Wrap : public Napi::ObjectWrap<Peakfinder8Wrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Peakfinder8",
                       {InstanceMethod("find", &Peakfinder8Wrap::Find),
                        InstanceMethod("bins", &Peakfinder8Wrap::Bins),
                        InstanceMethod("memoryBytes", &Peakfinder8Wrap::MemoryBytes)});
  }

  explicit Peakfinder8Wrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Peakfinder8Wrap>(info) {
    const Napi::Env env = info.Env();
    if (info.Length() < 5 || !info[0].IsNumber() || !info[1].IsNumber() || !info[4].IsObject())
      throw Napi::TypeError::New(env, "Peakfinder8(width, height, radius, mask, params)");
    const double w = info[0].As<Napi::Number>().DoubleValue(), h = info[1].As<Napi::Number>().DoubleValue();
    if (!(w >= 3 && h >= 3 && w <= 65536 && h <= 65536 && w == std::floor(w) && h == std::floor(h) && w * h <= 1e8))
      throw Napi::TypeError::New(env, "width and height must be integers from 3 to 65536 (at most 1e8 pixels)");
    const size_t n = static_cast<size_t>(w) * static_cast<size_t>(h);
    const float* radius = typed_exact<float>(env, info[2], napi_float32_array, "Float32Array", n, "radius");
    for (size_t i = 0; i < n; ++i)
      if (!(radius[i] >= 0 && radius[i] <= 1e6f))
        throw Napi::TypeError::New(env, "radius must be finite, >= 0 and <= 1e6 (pixel " + std::to_string(i) + ")");
    const uint8_t* mask = nullptr;
    if (!info[3].IsNull() && !info[3].IsUndefined())
      mask = typed_exact<uint8_t>(env, info[3], napi_uint8_array, "Uint8Array", n, "mask");
    const Napi::Object o = info[4].As<Napi::Object>();
    Pf8Params p;
    auto integer = [&](const char* key, double lo, double hi, double fallback) {
      const double v = finite_prop(o, key, fallback);
      if (!(v >= lo && v <= hi && v == std::floor(v)))
        throw Napi::TypeError::New(env, std::string(key) + " must be an integer from " + std::to_string(long(lo)) +
                                            " to " + std::to_string(long(hi)));
      return static_cast<int>(v);
    };
    p.adc_thresh = static_cast<float>(finite_prop(o, "adcThresh", 0));
    p.min_snr = static_cast<float>(finite_prop(o, "minSnr", 0));
    p.min_pix = integer("minPixCount", 0, 1e8, 1);
    p.max_pix = integer("maxPixCount", 1, static_cast<double>(n), std::min<double>(n, 1e4));
    p.local_bg_radius = integer("localBgRadius", 0, 1000, 3);
    p.min_res = static_cast<float>(finite_prop(o, "minRes", 0));
    p.max_res = static_cast<float>(finite_prop(o, "maxRes", 1e30));
    p.max_num_peaks = integer("maxNumPeaks", 0, 1e7, 2048);
    p.asic_nx = integer("asicNx", 0, w, 0);
    p.asic_ny = integer("asicNy", 0, h, 0);
    if ((p.asic_nx && static_cast<int>(w) % p.asic_nx) || (p.asic_ny && static_cast<int>(h) % p.asic_ny))
      throw Napi::TypeError::New(env, "asicNx and asicNy must divide width and height");
    pf_ = guarded(env, [&] {
      return std::make_unique<Peakfinder8>(static_cast<int>(w), static_cast<int>(h), radius, mask, p);
    });
  }

 private:
  Napi::Value Find(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    const size_t n = static_cast<size_t>(pf_->width()) * pf_->height();
    if (info.Length() < 2 || !info[0].IsTypedArray() || !info[1].IsObject())
      throw Napi::TypeError::New(env, "find(frame: Float32Array | Int32Array, out)");
    const Napi::Object o = info[1].As<Napi::Object>();
    const size_t need = static_cast<size_t>(pf_->params().max_num_peaks);
    auto column = [&](const char* key) {
      size_t len = 0;
      float* d = typed_exact<float>(env, o.Get(key), napi_float32_array, "Float32Array", 0,
                                    (std::string("out.") + key).c_str(), &len);
      if (len < need)
        throw Napi::TypeError::New(env, std::string("out.") + key + " has " + std::to_string(len) +
                                            " elements, expected at least " + std::to_string(need));
      return d;
    };
    Pf8Out out;
    out.fs = column("fs");
    out.ss = column("ss");
    out.intensity = column("intensity");
    out.max_intensity = column("maxIntensity");
    out.sigma = column("sigma");
    out.snr = column("snr");
    size_t len = 0;
    out.pixels = typed_exact<int32_t>(env, o.Get("pixels"), napi_int32_array, "Int32Array", 0, "out.pixels", &len);
    if (len < need) throw Napi::TypeError::New(env, "out.pixels is shorter than maxNumPeaks");
    const napi_typedarray_type type = info[0].As<Napi::TypedArray>().TypedArrayType();
    int found = 0;
    if (type == napi_float32_array) {
      const float* d = typed_exact<float>(env, info[0], napi_float32_array, "Float32Array", n, "frame");
      found = guarded(env, [&] { return pf_->find(d, out); });
    } else if (type == napi_int32_array) {
      const int32_t* d = typed_exact<int32_t>(env, info[0], napi_int32_array, "Int32Array", n, "frame");
      found = guarded(env, [&] { return pf_->find(d, out); });
    } else {
      throw Napi::TypeError::New(env, "frame must be a Float32Array or Int32Array");
    }
    return Napi::Number::New(env, found);
  }
  Napi::Value Bins(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), pf_->bins()); }
  Napi::Value MemoryBytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(pf_->memory_bytes()));
  }

  std::unique_ptr<Peakfinder8> pf_;
};
// --- end spots: peakfinder8 ---

// --- correlate: angular cross-correlations ---
int int_arg(const Napi::CallbackInfo& info, size_t i, const char* what, int lo, int hi) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  const double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= lo && v <= hi) || v != std::floor(v))
    throw Napi::RangeError::New(info.Env(), std::string(what) + " must be an integer in [" + std::to_string(lo) + ", " +
                                                std::to_string(hi) + "]");
  return static_cast<int>(v);
}

// Pairs (i, j) as an Int32Array [2 * P], each index checked against nq.
const int32_t* pairs_arg(const Napi::Env& env, const Napi::Value& v, int nq, size_t* npairs) {
  size_t len = 0;
  const int32_t* p = typed_exact<int32_t>(env, v, napi_int32_array, "Int32Array", 0, "pairs", &len);
  if (len % 2) throw Napi::RangeError::New(env, "pairs must hold (i, j) pairs");
  for (size_t t = 0; t < len; t++)
    if (p[t] < 0 || p[t] >= nq) throw Napi::RangeError::New(env, "pairs: index " + std::to_string(p[t]) + " is outside [0, " + std::to_string(nq) + ")");
  *npairs = len / 2;
  return p;
}

class CorrelatorWrap : public Napi::ObjectWrap<CorrelatorWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Correlator",
                       {InstanceMethod("add", &CorrelatorWrap::Add), InstanceMethod("frames", &CorrelatorWrap::Frames),
                        InstanceMethod("spectra", &CorrelatorWrap::Spectra), InstanceMethod("masks", &CorrelatorWrap::Masks),
                        InstanceMethod("memoryBytes", &CorrelatorWrap::MemoryBytes)});
  }

  // new Correlator(nq, nphi, batch)
  explicit CorrelatorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CorrelatorWrap>(info) {
    const int nq = int_arg(info, 0, "nq", 1, 100000), nphi = int_arg(info, 1, "nphi", 1, 100000);
    const int batch = int_arg(info, 2, "batch", 1, 4096);
    c_ = guarded(info.Env(), [&] { return std::make_unique<Correlator>(nq, nphi, batch); });
  }

 private:
  // add(intensity: Float64Array, count: Float64Array), both [nphi][nq]
  Napi::Value Add(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    const size_t n = static_cast<size_t>(c_->nq()) * c_->nphi();
    if (info.Length() < 2) throw Napi::TypeError::New(env, "add(intensity, count)");
    const double* in = typed_exact<double>(env, info[0], napi_float64_array, "Float64Array", n, "intensity");
    const double* cn = typed_exact<double>(env, info[1], napi_float64_array, "Float64Array", n, "count");
    guarded(env, [&] { c_->add(in, cn); });
    return env.Undefined();
  }
  Napi::Value Frames(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(c_->frames())); }
  Napi::Value MemoryBytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(c_->memory_bytes()));
  }
  // spectra(pairs: Int32Array) -> { re, im, mre?, mim? }: [P][H] each
  Napi::Value Spectra(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    size_t np = 0;
    if (info.Length() < 1) throw Napi::TypeError::New(env, "spectra(pairs)");
    const int32_t* pairs = pairs_arg(env, info[0], c_->nq(), &np);
    const size_t h = c_->harmonics();
    Napi::Float64Array re = Napi::Float64Array::New(env, np * h), im = Napi::Float64Array::New(env, np * h);
    for (size_t p = 0; p < np; p++) c_->pair_spectrum(pairs[2 * p], pairs[2 * p + 1], re.Data() + p * h, im.Data() + p * h);
    Napi::Object out = Napi::Object::New(env);
    out.Set("re", re);
    out.Set("im", im);
    if (c_->has_mask_spectra()) {
      Napi::Float64Array mre = Napi::Float64Array::New(env, np * h), mim = Napi::Float64Array::New(env, np * h);
      for (size_t p = 0; p < np; p++)
        c_->mask_pair_spectrum(pairs[2 * p], pairs[2 * p + 1], mre.Data() + p * h, mim.Data() + p * h);
      out.Set("mre", mre);
      out.Set("mim", mim);
    }
    return out;
  }
  // masks() -> [{ mask: Uint8Array [nq][nphi], count }]
  Napi::Value Masks(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    const auto& ms = c_->masks();
    Napi::Array out = Napi::Array::New(env, ms.size());
    for (size_t s = 0; s < ms.size(); s++) {
      Napi::Object o = Napi::Object::New(env);
      Napi::Uint8Array m = Napi::Uint8Array::New(env, ms[s].mask.size());
      std::copy(ms[s].mask.begin(), ms[s].mask.end(), m.Data());
      o.Set("mask", m);
      o.Set("count", Napi::Number::New(env, ms[s].count));
      out.Set(static_cast<uint32_t>(s), o);
    }
    return out;
  }

  std::unique_ptr<Correlator> c_;
};

// fxsRfft(rows: Float64Array [R][n], n) -> { re, im } [R][n/2+1]
Napi::Value FxsRfft(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const int n = int_arg(info, 1, "n", 1, 1 << 20);
  size_t len = 0;
  const double* rows = typed_exact<double>(env, info[0], napi_float64_array, "Float64Array", 0, "rows", &len);
  if (len % n) throw Napi::RangeError::New(env, "rows must hold whole rows of n");
  const size_t r = len / n, h = n / 2 + 1;
  Napi::Float64Array re = Napi::Float64Array::New(env, r * h), im = Napi::Float64Array::New(env, r * h);
  guarded(env, [&] { fxs_rfft(rows, r, n, re.Data(), im.Data()); });
  Napi::Object out = Napi::Object::New(env);
  out.Set("re", re);
  out.Set("im", im);
  return out;
}

// fxsIrfft(re, im, n) -> Float64Array [R][n]
Napi::Value FxsIrfft(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const int n = int_arg(info, 2, "n", 1, 1 << 20);
  const size_t h = n / 2 + 1;
  size_t len = 0, len2 = 0;
  const double* re = typed_exact<double>(env, info[0], napi_float64_array, "Float64Array", 0, "re", &len);
  const double* im = typed_exact<double>(env, info[1], napi_float64_array, "Float64Array", 0, "im", &len2);
  if (len != len2 || len % h) throw Napi::RangeError::New(env, "re and im must hold the same whole rows of n/2 + 1");
  const size_t r = len / h;
  Napi::Float64Array out = Napi::Float64Array::New(env, r * n);
  guarded(env, [&] { fxs_irfft(re, im, r, n, out.Data()); });
  return out;
}

// fxsMaskSpectra(masks: Uint8Array [S][nq][nphi], counts: Float64Array [S], nq, nphi, pairs) -> { re, im }
Napi::Value FxsMaskSpectra(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const int nq = int_arg(info, 2, "nq", 1, 100000), nphi = int_arg(info, 3, "nphi", 1, 100000);
  size_t ml = 0, cl = 0, np = 0;
  const uint8_t* masks = typed_exact<uint8_t>(env, info[0], napi_uint8_array, "Uint8Array", 0, "masks", &ml);
  const double* counts = typed_exact<double>(env, info[1], napi_float64_array, "Float64Array", 0, "counts", &cl);
  if (ml != cl * nq * nphi) throw Napi::RangeError::New(env, "masks must hold one [nq][nphi] mask per count");
  const int32_t* pairs = pairs_arg(env, info[4], nq, &np);
  const size_t h = nphi / 2 + 1;
  Napi::Float64Array re = Napi::Float64Array::New(env, np * h), im = Napi::Float64Array::New(env, np * h);
  guarded(env, [&] { fxs_mask_spectra(masks, counts, static_cast<int>(cl), nq, nphi, pairs, np, re.Data(), im.Data()); });
  Napi::Object out = Napi::Object::New(env);
  out.Set("re", re);
  out.Set("im", im);
  return out;
}
// --- end correlate ---

// previewBlockMax(frame, rows, cols, binning, mask | null, minValid, maxValid, out: Float32Array)
Napi::Value PreviewBlockMax(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 8 || !info[0].IsTypedArray()) throw Napi::TypeError::New(env, "previewBlockMax(frame, rows, cols, binning, mask, minValid, maxValid, out)");
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  if (napi_get_typedarray_info(env, info[0], &type, &length, &data, nullptr, nullptr) != napi_ok)
    throw Napi::TypeError::New(env, "cannot read the frame's memory");
  beamedge::PreviewPixel pt;
  switch (type) {
    case napi_int32_array: pt = beamedge::PreviewPixel::i32; break;
    case napi_uint32_array: pt = beamedge::PreviewPixel::u32; break;
    case napi_uint16_array: pt = beamedge::PreviewPixel::u16; break;
    case napi_uint8_array: pt = beamedge::PreviewPixel::u8; break;
    case napi_float32_array: pt = beamedge::PreviewPixel::f32; break;
    default: throw Napi::TypeError::New(env, "frame must be Int32, Uint32, Uint16, Uint8 or Float32Array");
  }
  const double rows_d = info[1].As<Napi::Number>().DoubleValue();
  const double cols_d = info[2].As<Napi::Number>().DoubleValue();
  const double bin_d = info[3].As<Napi::Number>().DoubleValue();
  if (!(rows_d >= 1 && cols_d >= 1 && bin_d >= 1) || rows_d * cols_d != double(length))
    throw Napi::RangeError::New(env, "rows x cols must equal the frame's length, binning >= 1");
  const size_t rows = size_t(rows_d), cols = size_t(cols_d), binning = size_t(bin_d);
  const uint8_t* mask = nullptr;
  if (!info[4].IsNull() && !info[4].IsUndefined()) mask = typed_exact<const uint8_t>(env, info[4], napi_uint8_array, "Uint8Array", length, "mask");
  const size_t out_n = ((rows + binning - 1) / binning) * ((cols + binning - 1) / binning);
  float* out = typed_exact<float>(env, info[7], napi_float32_array, "Float32Array", out_n, "out");
  beamedge::preview_block_max(data, pt, rows, cols, binning, mask, info[5].As<Napi::Number>().DoubleValue(),
                              info[6].As<Napi::Number>().DoubleValue(), out);
  return env.Undefined();
}


// --- geometry map store ---
// What a map depends on, from { geometry, rows, cols, radial, split, twoD,
// chi, solidAngle, polarization?, mask?, flat?, bins0, bins1?, range0?,
// range1?, threads? }. Arrays are copied: an asynchronous build must not read
// JS memory from another thread.
MapSpec map_spec(const Napi::Env& env, const Napi::Value& v) {
  if (!v.IsObject()) throw Napi::TypeError::New(env, "map spec must be an object");
  Napi::Object o = v.As<Napi::Object>();
  if (!o.Get("geometry").IsObject()) throw Napi::TypeError::New(env, "spec.geometry must be an object");
  Napi::Object g = o.Get("geometry").As<Napi::Object>();
  MapSpec s;
  s.geometry = Geometry{number_prop(g, "dist"),   number_prop(g, "poni1"),  number_prop(g, "poni2"),
                        number_prop(g, "rot1"),   number_prop(g, "rot2"),   number_prop(g, "rot3"),
                        number_prop(g, "pixel1"), number_prop(g, "pixel2"), number_prop(g, "wavelength")};
  const int64_t rows = o.Get("rows").ToNumber().Int64Value(), cols = o.Get("cols").ToNumber().Int64Value();
  if (rows < 1 || cols < 1 || rows * cols > (int64_t(1) << 31)) throw Napi::RangeError::New(env, "detector shape out of range");
  s.rows = size_t(rows);
  s.cols = size_t(cols);
  const size_t n = s.rows * s.cols;
  const std::string radial = o.Get("radial").ToString();
  if (radial == "q") s.request.radial = RadialKind::q_nm;
  else if (radial == "2th") s.request.radial = RadialKind::tth_rad;
  else if (radial == "r") s.request.radial = RadialKind::r_m;
  else throw Napi::TypeError::New(env, "spec.radial must be q, 2th or r");
  s.request.corners = o.Get("split").ToBoolean();
  s.two_d = o.Get("twoD").ToBoolean();
  s.request.chi = s.two_d;
  s.request.solid_angle = o.Get("solidAngle").ToBoolean();
  const Napi::Value pf = o.Get("polarization");
  if (pf.IsNumber()) {
    // The exact path takes chi from the same evaluation; a chi array is for 2D bins only.
    s.request.polarization = true;
    s.request.polarization_factor = pf.As<Napi::Number>().DoubleValue();
  }
  auto mask = typed_array_or_null<Napi::Uint8Array>(o, "mask", napi_uint8_array, n, "Uint8Array");
  if (!mask.IsEmpty()) s.mask.assign(mask.Data(), mask.Data() + n);
  auto flat = typed_array_or_null<Napi::Float32Array>(o, "flat", napi_float32_array, n, "Float32Array");
  if (!flat.IsEmpty()) s.flat.assign(flat.Data(), flat.Data() + n);
  s.axis0.bins = o.Get("bins0").ToNumber().Int32Value();
  s.axis1.bins = s.two_d ? o.Get("bins1").ToNumber().Int32Value() : 1;
  if (s.axis0.bins < 1 || s.axis1.bins < 1) throw Napi::RangeError::New(env, "the number of bins must be at least 1");
  auto range = [&](const char* k, AxisSpec& a) {
    const Napi::Value r = o.Get(k);
    if (r.IsUndefined() || r.IsNull()) return;
    if (!r.IsArray() || r.As<Napi::Array>().Length() != 2) throw Napi::TypeError::New(env, std::string(k) + " must be [lo, hi]");
    a.lo = r.As<Napi::Array>().Get(0u).ToNumber().DoubleValue();
    a.hi = r.As<Napi::Array>().Get(1u).ToNumber().DoubleValue();
  };
  range("range0", s.axis0);
  if (s.two_d) range("range1", s.axis1);
  const Napi::Value th = o.Get("threads");
  s.threads = th.IsNumber() ? std::max(1, std::min(64, th.As<Napi::Number>().Int32Value())) : 1;
  s.reference = o.Get("reference").ToBoolean();
  return s;
}

Napi::Value blob_to_js(Napi::Env env, std::vector<uint8_t>&& blob) {
  // Handed over without a copy: the buffer owns the vector.
  auto* owned = new std::vector<uint8_t>(std::move(blob));
  return Napi::Buffer<uint8_t>::New(env, owned->data(), owned->size(), [](Napi::Env, uint8_t*, std::vector<uint8_t>* v) { delete v; }, owned);
}

// buildMap(spec) -> Buffer (the map blob), on the calling thread.
Napi::Value BuildMap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MapSpec spec = map_spec(env, info[0]);
  return guarded(env, [&]() -> Napi::Value {
    const size_t bytes = map_bytes_in_place(spec);
    if (bytes == 0) return blob_to_js(env, build_pixel_map(spec));
    // Built in place on huge pages, as the map store builds into its shared buffer.
    auto data = huge_array<uint8_t>(bytes);
    std::memset(data.get(), 0, bytes);
    build_pixel_map_into(spec, data.get(), bytes);
    uint8_t* raw = data.release();
    return Napi::Buffer<uint8_t>::New(env, raw, bytes, [](Napi::Env, uint8_t* p) { std::free(p); });
  });
}

// mapBytes(spec) -> the size of the map when it can be built in place
// (buildMapAsync with a target), else 0.
Napi::Value MapBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MapSpec spec = map_spec(env, info[0]);
  return Napi::Number::New(env, static_cast<double>(map_bytes_in_place(spec)));
}

// buildMapAsync(spec, target | null, callback(error | null, blob | null, ms)):
// on a libuv thread, so the main thread's event loop goes on while a
// 6M-pixel map is built. With a target (zero-filled, mapBytes(spec) long, on
// a SharedArrayBuffer the caller keeps) the map is built straight into it and
// blob is null; without, blob is a new Buffer.
class MapBuildWorker : public Napi::AsyncWorker {
 public:
  MapBuildWorker(Napi::Function cb, MapSpec spec, Napi::Value target, uint8_t* data, size_t len)
      : Napi::AsyncWorker(cb), spec_(std::move(spec)), data_(data), len_(len) {
    if (data_) target_ = Napi::Persistent(target);
  }
  void Execute() override {
    const auto t0 = std::chrono::steady_clock::now();
    try {
      if (data_) build_pixel_map_into(spec_, data_, len_);
      else blob_ = build_pixel_map(spec_);
    } catch (const std::exception& e) {
      SetError(e.what());
    }
    ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }
  void OnOK() override {
    Napi::Env env = Env();
    Callback().Call({env.Null(), data_ ? env.Null() : blob_to_js(env, std::move(blob_)), Napi::Number::New(env, ms_)});
  }

 private:
  MapSpec spec_;
  Napi::Reference<Napi::Value> target_;
  uint8_t* data_;
  size_t len_;
  std::vector<uint8_t> blob_;
  double ms_ = 0;
};

Napi::Value BuildMapAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[2].IsFunction()) throw Napi::TypeError::New(env, "buildMapAsync(spec, target | null, callback)");
  MapSpec spec = map_spec(env, info[0]);
  uint8_t* data = nullptr;
  size_t len = 0;
  if (!info[1].IsNull() && !info[1].IsUndefined()) {
    std::tie(data, len) = typed_bytes(env, info[1], "target");
    if (len != map_bytes_in_place(spec)) throw Napi::RangeError::New(env, "target must be mapBytes(spec) bytes long");
  }
  (new MapBuildWorker(info[2].As<Napi::Function>(), std::move(spec), info[1], data, len))->Queue();
  return env.Undefined();
}

// checkMap(blob, checksum) -> '' when well-formed, else what is wrong.
Napi::Value CheckMap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto [data, len] = typed_bytes(env, info[0], "map");
  return Napi::String::New(env, check_map(data, len, info.Length() > 1 && info[1].ToBoolean()));
}

// mapNorm(blob) -> Float32Array: the per-pixel normalisation the map stores,
// decoded (empty when it has none); tests hold the packed form to the input.
Napi::Value MapNorm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto [data, len] = typed_bytes(env, info[0], "map");
  return guarded(env, [&]() -> Napi::Value {
    const std::vector<float> norm = map_norm(data, len);
    Napi::Float32Array out = Napi::Float32Array::New(env, norm.size());
    if (!norm.empty()) std::memcpy(out.Data(), norm.data(), norm.size() * 4);
    return out;
  });
}

// loadMapAsync(path, target, callback(problem)): reads a cache file into
// `target` (a view on a SharedArrayBuffer of exactly the file's size) and
// verifies it (checksum and every index) off the main thread; problem is ''
// when the map can be used.
class MapLoadWorker : public Napi::AsyncWorker {
 public:
  MapLoadWorker(Napi::Function cb, std::string path, Napi::Value target, uint8_t* data, size_t len)
      : Napi::AsyncWorker(cb), path_(std::move(path)), target_(Napi::Persistent(target)), data_(data), len_(len) {}
  void Execute() override {
    std::FILE* f = std::fopen(path_.c_str(), "rb");
    if (!f) {
      problem_ = "cannot open " + path_;
      return;
    }
    const size_t got = std::fread(data_, 1, len_, f);
    const bool more = std::fgetc(f) != EOF;
    std::fclose(f);
    if (got != len_ || more) problem_ = "cache file changed size while read";
    else problem_ = check_map(data_, len_, true);
  }
  void OnOK() override { Callback().Call({Napi::String::New(Env(), problem_)}); }

 private:
  std::string path_;
  Napi::Reference<Napi::Value> target_;
  uint8_t* data_;
  size_t len_;
  std::string problem_;
};

Napi::Value LoadMapAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[2].IsFunction()) throw Napi::TypeError::New(env, "loadMapAsync(path, target, callback)");
  auto [data, len] = typed_bytes(env, info[1], "target");
  (new MapLoadWorker(info[2].As<Napi::Function>(), info[0].As<Napi::String>().Utf8Value(), info[1], data, len))->Queue();
  return env.Undefined();
}
// readMapFile(path) -> Buffer: a cached map read whole into memory on huge
// pages (a 37 MB map read with readFileSync spent most of its 25 ms in page
// faults). Throws with the system's reason when it cannot be read.
Napi::Value ReadMapFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "readMapFile(path)");
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw Napi::Error::New(env, path + ": " + std::strerror(errno));
  std::fseek(f, 0, SEEK_END);
  const long size = std::ftell(f);
  std::fseek(f, 0, SEEK_SET);
  if (size < 0) {
    std::fclose(f);
    throw Napi::Error::New(env, path + ": cannot tell its size");
  }
  auto data = huge_array<uint8_t>(static_cast<size_t>(size));
  const size_t got = std::fread(data.get(), 1, static_cast<size_t>(size), f);
  std::fclose(f);
  if (got != static_cast<size_t>(size)) throw Napi::Error::New(env, path + ": changed size while read");
  uint8_t* raw = data.release();
  return Napi::Buffer<uint8_t>::New(env, raw, static_cast<size_t>(size), [](Napi::Env, uint8_t* p) { std::free(p); });
}
// --- end geometry map store ---

Napi::Object Init(Napi::Env env, Napi::Object exports) {
#if defined(__GLIBC__)
  // glibc raises its mmap threshold each time a large block is freed, after
  // which 10-50 MB pixel maps and pixel arrays come from the heap and their
  // memory is not given back when a reload replaces them: RSS crept up by tens
  // of MB over 100 reloads. A fixed threshold keeps every block over 1 MiB in
  // its own mapping, returned to the system when freed. Per-frame allocations
  // are all far smaller, so the hot path is unaffected. Process-wide and
  // idempotent, so every worker's load of the addon may set it.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
  exports.Set("sdNotify", Napi::Function::New(env, SdNotify));
  exports.Set("previewBlockMax", Napi::Function::New(env, PreviewBlockMax));  // live page preview
  exports.Set("bslz4Decode", Napi::Function::New(env, Bslz4Decode));
  exports.Set("lz4Decode", Napi::Function::New(env, Lz4Decode));
  exports.Set("bslz4Encode", Napi::Function::New(env, Bslz4Encode));
  exports.Set("lz4BlockEncode", Napi::Function::New(env, Lz4BlockEncode));
  exports.Set("cbfLocate", Napi::Function::New(env, CbfLocate));
  exports.Set("cbfDecode", Napi::Function::New(env, CbfDecode));
  exports.Set("byteOffsetDecode", Napi::Function::New(env, ByteOffsetDecode));
  exports.Set("byteOffsetEncode", Napi::Function::New(env, ByteOffsetEncode));
  exports.Set("pixelArrays", Napi::Function::New(env, PixelArraysJs));
  exports.Set("Integrator", IntegratorWrap::Define(env));
  exports.Set("buildMap", Napi::Function::New(env, BuildMap));
  exports.Set("mapBytes", Napi::Function::New(env, MapBytes));
  exports.Set("readMapFile", Napi::Function::New(env, ReadMapFile));  // geometry map store
  exports.Set("buildMapAsync", Napi::Function::New(env, BuildMapAsync));
  exports.Set("checkMap", Napi::Function::New(env, CheckMap));
  exports.Set("mapNorm", Napi::Function::New(env, MapNorm));
  exports.Set("loadMapAsync", Napi::Function::New(env, LoadMapAsync));
  exports.Set("jungfrauConvert", Napi::Function::New(env, JungfrauConvert));
  exports.Set("PedestalAccumulator", PedestalWrap::Define(env));  // calibrate pedestal
  exports.Set("DispersionSpotFinder", DispersionWrap::Define(env));  // spots/dispersion
  exports.Set("Peakfinder8", Peakfinder8Wrap::Define(env));  // spots: peakfinder8
  exports.Set("Correlator", CorrelatorWrap::Define(env));  // correlate
  exports.Set("fxsRfft", Napi::Function::New(env, FxsRfft));
  exports.Set("fxsIrfft", Napi::Function::New(env, FxsIrfft));
  exports.Set("fxsMaskSpectra", Napi::Function::New(env, FxsMaskSpectra));
  Napi::Object kernels = Napi::Object::New(env);
  kernels.Set("byteOffset", byte_offset_kernel_name());
  kernels.Set("jungfrau", jungfrau_kernel_name());
  kernels.Set("peakfinder8", peakfinder8_kernel_name());
  kernels.Set("correlate", Correlator::kernel_name());
  exports.Set("kernels", kernels);
  return exports;
}

}  // namespace

NODE_API_MODULE(beamedge, Init)
