// Locates the binary section of a CBF (miniCBF or full imgCIF) and reads its
// MIME header. The text header before it is left to the caller.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace beamedge {

struct CbfError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class CbfElement { i8, u8, i16, u16, i32, u32 };

struct CbfBinary {
  size_t section_offset = 0;  // where "--CIF-BINARY-FORMAT-SECTION--" starts
  size_t data_offset = 0;     // first compressed byte, right after 0C 1A 04 D5
  size_t binary_size = 0;     // X-Binary-Size
  CbfElement element = CbfElement::i32;
  std::string element_type;   // as written, e.g. "signed 32-bit integer"
  std::string conversions;    // e.g. "x-CBF_BYTE_OFFSET"
  std::string md5;            // Content-MD5 (base64), empty when absent
  int64_t n_elements = -1;
  int64_t fastest = -1;       // columns
  int64_t second = -1;        // rows
  int64_t third = -1;
  int64_t padding = -1;
};

// Throws CbfError with a message naming the offending field.
CbfBinary cbf_locate(const uint8_t* buf, size_t len);

}  // namespace beamedge
