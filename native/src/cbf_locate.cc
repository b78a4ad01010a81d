#include "cbf_locate.h"

#include <cctype>
#include <cstring>
#include <limits>
#include <vector>

namespace beamedge {
namespace {

const char kSection[] = "--CIF-BINARY-FORMAT-SECTION--";
const uint8_t kMarker[4] = {0x0C, 0x1A, 0x04, 0xD5};

const uint8_t* find(const uint8_t* hay, size_t hay_len, const void* needle, size_t n) {
  return static_cast<const uint8_t*>(memmem(hay, hay_len, needle, n));
}

std::string trim(std::string s) {
  const char* ws = " \t\r\n";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

bool iequals(const std::string& a, const char* b) {
  const size_t n = std::strlen(b);
  if (a.size() != n) return false;
  for (size_t i = 0; i < n; ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

int64_t parse_count(const std::string& key, const std::string& value) {
  if (value.empty()) throw CbfError("CBF header " + key + " is empty");
  int64_t v = 0;
  for (char c : value) {
    if (c < '0' || c > '9')
      throw CbfError("CBF header " + key + ": '" + value + "' is not a non-negative integer");
    if (v > (std::numeric_limits<int64_t>::max() - 9) / 10)
      throw CbfError("CBF header " + key + ": '" + value + "' is too large");
    v = v * 10 + (c - '0');
  }
  return v;
}

std::string unquote(std::string s) {
  s = trim(s);
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return s;
}

// Content-Type: application/octet-stream; conversions="x-CBF_BYTE_OFFSET"
std::string conversions_of(const std::string& content_type) {
  size_t pos = 0;
  while ((pos = content_type.find(';', pos)) != std::string::npos) {
    ++pos;
    const size_t eq = content_type.find('=', pos);
    if (eq == std::string::npos) break;
    const size_t end = content_type.find(';', eq);
    const std::string name = trim(content_type.substr(pos, eq - pos));
    if (iequals(name, "conversions"))
      return unquote(content_type.substr(eq + 1, end == std::string::npos ? std::string::npos : end - eq - 1));
  }
  return "";
}

CbfElement element_of(const std::string& t) {
  const std::string s = unquote(t);
  if (s == "signed 32-bit integer") return CbfElement::i32;
  if (s == "unsigned 32-bit integer") return CbfElement::u32;
  if (s == "signed 16-bit integer") return CbfElement::i16;
  if (s == "unsigned 16-bit integer") return CbfElement::u16;
  if (s == "signed 8-bit integer") return CbfElement::i8;
  if (s == "unsigned 8-bit integer") return CbfElement::u8;
  throw CbfError("unsupported X-Binary-Element-Type '" + s + "' (integers of 8 to 32 bits are supported)");
}

}  // namespace

CbfBinary cbf_locate(const uint8_t* buf, size_t len) {
  const uint8_t* sec = find(buf, len, kSection, sizeof kSection - 1);
  if (!sec) throw CbfError("not a CBF: no '--CIF-BINARY-FORMAT-SECTION--' MIME block");
  CbfBinary out;
  out.section_offset = static_cast<size_t>(sec - buf);
  const size_t rest = len - out.section_offset;
  const uint8_t* mark = find(sec, rest, kMarker, sizeof kMarker);
  if (!mark) throw CbfError("truncated CBF: no binary start marker 0C 1A 04 D5 after the MIME header");
  out.data_offset = static_cast<size_t>(mark - buf) + sizeof kMarker;

  const std::string mime(reinterpret_cast<const char*>(sec), static_cast<size_t>(mark - sec));
  bool have_size = false;
  std::string content_type, encoding;
  // MIME headers may be folded: a line starting with white space continues
  // the previous one (PILATUS puts conversions= on its own line).
  std::vector<std::string> lines;
  size_t line_start = 0;
  while (line_start < mime.size()) {
    size_t nl = mime.find('\n', line_start);
    if (nl == std::string::npos) nl = mime.size();
    std::string line = mime.substr(line_start, nl - line_start);
    line_start = nl + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t') && !lines.empty()) lines.back() += " " + trim(line);
    else lines.push_back(line);
  }
  for (const std::string& line : lines) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = trim(line.substr(0, colon));
    const std::string value = trim(line.substr(colon + 1));
    if (iequals(key, "Content-Type")) content_type = value;
    else if (iequals(key, "Content-Transfer-Encoding")) encoding = value;
    else if (iequals(key, "X-Binary-Size")) { out.binary_size = static_cast<size_t>(parse_count(key, value)); have_size = true; }
    else if (iequals(key, "X-Binary-Element-Type")) { out.element_type = unquote(value); out.element = element_of(value); }
    else if (iequals(key, "X-Binary-Element-Byte-Order")) {
      if (!iequals(value, "LITTLE_ENDIAN")) throw CbfError("unsupported X-Binary-Element-Byte-Order '" + value + "'");
    }
    else if (iequals(key, "Content-MD5")) out.md5 = value;
    else if (iequals(key, "X-Binary-Number-of-Elements")) out.n_elements = parse_count(key, value);
    else if (iequals(key, "X-Binary-Size-Fastest-Dimension")) out.fastest = parse_count(key, value);
    else if (iequals(key, "X-Binary-Size-Second-Dimension")) out.second = parse_count(key, value);
    else if (iequals(key, "X-Binary-Size-Third-Dimension")) out.third = parse_count(key, value);
    else if (iequals(key, "X-Binary-Size-Padding")) out.padding = parse_count(key, value);
  }

  out.conversions = conversions_of(content_type);
  if (out.conversions.empty())
    throw CbfError("CBF Content-Type names no conversions (expected conversions=\"x-CBF_BYTE_OFFSET\")");
  if (!iequals(out.conversions, "x-CBF_BYTE_OFFSET"))
    throw CbfError("unsupported CBF conversions '" + out.conversions + "' (only x-CBF_BYTE_OFFSET is supported)");
  if (!encoding.empty() && !iequals(encoding, "BINARY"))
    throw CbfError("unsupported Content-Transfer-Encoding '" + encoding + "' (only BINARY is supported)");
  if (out.element_type.empty()) throw CbfError("CBF header has no X-Binary-Element-Type");
  if (!have_size) throw CbfError("CBF header has no X-Binary-Size");

  const size_t available = len - out.data_offset;
  if (out.binary_size > available)
    throw CbfError("truncated CBF: X-Binary-Size is " + std::to_string(out.binary_size) + " bytes but only " +
                   std::to_string(available) + " follow the marker");

  if (out.fastest == 0 || out.second == 0 || out.third == 0) throw CbfError("CBF header gives a zero dimension");
  const int64_t fast = out.fastest > 0 ? out.fastest : -1;
  const int64_t second = out.second > 0 ? out.second : 1;
  const int64_t third = out.third > 0 ? out.third : 1;
  if (fast > 0 && (second > (int64_t(1) << 31) / fast || third > (int64_t(1) << 31) / (fast * second)))
    throw CbfError("CBF dimensions are implausibly large");
  if (out.n_elements < 0) {
    if (fast < 0) throw CbfError("CBF header gives neither X-Binary-Number-of-Elements nor the dimensions");
    out.n_elements = fast * second * third;
  } else if (fast > 0 && fast * second * third != out.n_elements) {
    throw CbfError("CBF X-Binary-Number-of-Elements (" + std::to_string(out.n_elements) +
                   ") does not match the dimensions " + std::to_string(fast) + " x " + std::to_string(second) +
                   (out.third > 0 ? " x " + std::to_string(third) : ""));
  }
  if (out.n_elements > (int64_t(1) << 31)) throw CbfError("CBF X-Binary-Number-of-Elements is implausibly large");
  // Every element takes at least one byte: a smaller binary cannot be right,
  // and rejecting it here keeps a hostile header from making us allocate.
  if (static_cast<uint64_t>(out.n_elements) > out.binary_size)
    throw CbfError("CBF X-Binary-Size (" + std::to_string(out.binary_size) + " bytes) is too small for " +
                   std::to_string(out.n_elements) + " elements");
  return out;
}

}  // namespace beamedge
