// LZ4 block decoding and the two framings DECTRIS detectors use: bitshuffle-LZ4
// (HDF5 filter 32008, "bslz4") and plain framed LZ4 ("lz4"). Every decoder
// checks every read and write against the buffers it was given.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

namespace beamedge {

struct CodecError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Decodes one LZ4 block into exactly `dst_len` bytes; throws CodecError otherwise.
void lz4_block_decode(const uint8_t* src, size_t src_len, uint8_t* dst, size_t dst_len);

// Bitshuffle-LZ4 into `dst_len` bytes of `elem_size`-byte elements. Accepts the
// 12-byte header (u64 BE size, u32 BE block bytes) and, when the header is
// absent (detected by size), the bitshuffle default of 8192-byte blocks.
void bslz4_decode(const uint8_t* src, size_t src_len, uint8_t* dst, size_t dst_len, size_t elem_size);

// Framed LZ4: same 12-byte header; a block whose compressed length equals its
// size is stored raw.
void lz4_framed_decode(const uint8_t* src, size_t src_len, uint8_t* dst, size_t dst_len);

// Encoders, for simulators and tests (speed is not their point): a greedy
// LZ4 block compressor, and bitshuffle-LZ4 with the 12-byte header.
std::vector<uint8_t> lz4_block_encode(const uint8_t* src, size_t len);
std::vector<uint8_t> bslz4_encode(const uint8_t* src, size_t len, size_t elem_size, size_t block_bytes = 8192);

// Bit-unshuffle one block of n elements (n a multiple of 8) from `in` to `out`.
void bitunshuffle_block(const uint8_t* in, uint8_t* out, size_t n, size_t elem_size);

}  // namespace beamedge
