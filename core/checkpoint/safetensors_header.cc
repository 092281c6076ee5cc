#include "core/checkpoint/safetensors_header.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/excerpt.h"
#include "nlohmann/json.hpp"

namespace gptb::checkpoint {
namespace {

using Json = nlohmann::json;

bool MulOverflows(uint64_t a, uint64_t b, uint64_t* out) {
  return __builtin_mul_overflow(a, b, out);
}
bool AddOverflows(uint64_t a, uint64_t b, uint64_t* out) {
  return __builtin_add_overflow(a, b, out);
}

// Names read from a file are echoed bounded and as valid UTF-8: errors must not carry a file's
// content back to whoever named it (the values of a header are never echoed at all).
std::string Quoted(std::string_view name) { return absl::StrCat("'", Excerpt(name, 64), "'"); }

std::string JsonTypeName(const Json& value) {
  if (value.is_number_integer() && !value.is_number_unsigned()) return "a negative integer";
  if (value.is_number_float()) return "a non-integer or out-of-range number";
  return absl::StrCat("a JSON ", value.type_name());
}

// Reads a JSON number that must be an integer in [0, max].
absl::StatusOr<uint64_t> NonNegativeInteger(const Json& value, uint64_t max,
                                            const std::string& what) {
  if (!value.is_number_unsigned()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is ", JsonTypeName(value),
                                                   "; it must be an integer in [0, ", max, "]"));
  }
  uint64_t v = value.get<uint64_t>();
  if (v > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is ", v, "; it must be an integer in [0, ", max, "]"));
  }
  return v;
}

// The byte count of a shape, with every product overflow-checked. Zero dims are left out of the
// check so that no partial product used while slicing (which skips some dims) can overflow.
absl::StatusOr<uint64_t> ShapeBytes(const std::vector<int64_t>& shape, DType dtype,
                                    const std::string& tensor) {
  uint64_t nonzero = DTypeSize(dtype);
  bool has_zero = false;
  for (int64_t d : shape) {
    if (d == 0) {
      has_zero = true;
      continue;
    }
    if (MulOverflows(nonzero, static_cast<uint64_t>(d), &nonzero)) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", Quoted(tensor), ": shape ", ShapeString(shape), " of ",
                       std::string(SafetensorsCode(dtype)), " (", DTypeSize(dtype),
                       " bytes per element) has more than 2^64 bytes"));
    }
  }
  return has_zero ? 0 : nonzero;
}

// The deepest nesting of objects and arrays in `text` (brackets inside strings do not count).
// A valid header nests three deep: the header object, a tensor's entry, its shape list.
int NestingDepth(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character cannot end the string
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      deepest = std::max(deepest, ++depth);
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return deepest;
}

// Parses the JSON text, rejecting nesting deeper than a header can have before parsing (the
// parser's own stack would otherwise grow with a hostile header's depth) and duplicate keys
// (nlohmann would silently keep the last one).
absl::StatusOr<Json> ParseJson(std::string_view text) {
  constexpr int kMaxNesting = 3;
  if (NestingDepth(text) > kMaxNesting) {
    return absl::InvalidArgumentError(
        "safetensors header JSON nests deeper than {name: {\"shape\": [dims]}}; no valid "
        "header has nested objects or lists inside a tensor's fields");
  }
  // Keys seen in the object open at each depth (the callback's depth of a key is one more than
  // that of its object's start).
  std::vector<std::set<std::string>> keys_at_depth(kMaxNesting + 1);
  std::string duplicate;
  auto callback = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::object_start && depth + 1 <= kMaxNesting) {
      keys_at_depth[depth + 1].clear();
    } else if (event == Json::parse_event_t::key && depth <= kMaxNesting && duplicate.empty() &&
               !keys_at_depth[depth].insert(parsed.get<std::string>()).second) {
      duplicate = parsed.get<std::string>();
    }
    return true;
  };
  Json json;
  try {
    json = Json::parse(text.begin(), text.end(), callback);
  } catch (const Json::parse_error& e) {
    // The parser's message quotes the bytes it read: say where, not what.
    return absl::InvalidArgumentError(absl::StrCat("safetensors header is not valid JSON (at byte ",
                                                   e.byte, "; is this a safetensors file?)"));
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError("safetensors header is not valid JSON");
  }
  if (!duplicate.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("safetensors header has the key ", Quoted(duplicate), " twice"));
  }
  return json;
}

absl::StatusOr<TensorInfo> ParseTensorEntry(const std::string& name, const Json& entry) {
  const std::string where = absl::StrCat("tensor ", Quoted(name));
  if (!entry.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": entry is ", JsonTypeName(entry),
                     "; it must be an object with \"dtype\", \"shape\" and \"data_offsets\""));
  }
  TensorInfo info;
  info.name = name;

  auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": missing \"dtype\""));
  }
  if (!dtype_it->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": \"dtype\" is ", JsonTypeName(*dtype_it), "; it must be a string"));
  }
  const std::string& dtype_name = dtype_it->get_ref<const std::string&>();
  std::optional<DType> dtype = ParseSafetensorsCode(dtype_name);
  if (!dtype) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": unknown dtype \"", dtype_name,
                     "\"; known: ", std::string(KnownSafetensorsCodes())));
  }
  info.dtype = *dtype;

  auto shape_it = entry.find("shape");
  if (shape_it == entry.end()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": missing \"shape\""));
  }
  if (!shape_it->is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": \"shape\" is ",
                                                   JsonTypeName(*shape_it),
                                                   "; it must be a list of non-negative integers"));
  }
  for (size_t i = 0; i < shape_it->size(); ++i) {
    absl::StatusOr<uint64_t> dim =
        NonNegativeInteger((*shape_it)[i], std::numeric_limits<int64_t>::max(),
                           absl::StrCat(where, ": shape[", i, "]"));
    if (!dim.ok()) return dim.status();
    info.shape.push_back(static_cast<int64_t>(*dim));
  }

  auto offsets_it = entry.find("data_offsets");
  if (offsets_it == entry.end()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": missing \"data_offsets\""));
  }
  if (!offsets_it->is_array() || offsets_it->size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": \"data_offsets\" is ", JsonTypeName(*offsets_it),
        offsets_it->is_array() ? absl::StrCat(" of ", offsets_it->size(), " entries") : "",
        "; it must be a list of two integers [begin, end]"));
  }
  uint64_t max = std::numeric_limits<uint64_t>::max();
  absl::StatusOr<uint64_t> begin =
      NonNegativeInteger((*offsets_it)[0], max, absl::StrCat(where, ": data_offsets[0]"));
  if (!begin.ok()) return begin.status();
  absl::StatusOr<uint64_t> end =
      NonNegativeInteger((*offsets_it)[1], max, absl::StrCat(where, ": data_offsets[1]"));
  if (!end.ok()) return end.status();
  if (*begin > *end) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": data_offsets [", *begin, ", ", *end,
                                                   "] has its begin after its end"));
  }
  info.data_begin = *begin;
  info.data_end = *end;

  absl::StatusOr<uint64_t> nbytes = ShapeBytes(info.shape, info.dtype, name);
  if (!nbytes.ok()) return nbytes.status();
  if (*nbytes != info.nbytes()) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": shape ", ShapeString(info.shape), " of ", dtype_name, " needs ", *nbytes,
        " bytes but data_offsets [", *begin, ", ", *end, "] span ", info.nbytes()));
  }
  return info;
}

absl::Status ParseMetadata(const Json& value, std::map<std::string, std::string>* metadata) {
  if (!value.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("\"__metadata__\" is ", JsonTypeName(value),
                                                   "; it must be an object of strings"));
  }
  for (auto it = value.begin(); it != value.end(); ++it) {
    if (!it->is_string()) {
      return absl::InvalidArgumentError(absl::StrCat("\"__metadata__\".", Quoted(it.key()), " is ",
                                                     JsonTypeName(*it),
                                                     "; metadata values must be strings"));
    }
    (*metadata)[it.key()] = it->get<std::string>();
  }
  return absl::OkStatus();
}

// Range checks over all tensors: in bounds, disjoint, and (optionally) covering the data section.
absl::Status CheckRanges(Header* header, const HeaderOptions& options) {
  std::vector<TensorInfo>& tensors = header->tensors;
  for (const TensorInfo& t : tensors) {
    if (t.data_end > header->data_size) {
      return absl::DataLossError(
          absl::StrCat("tensor ", Quoted(t.name), ": data_offsets [", t.data_begin, ", ",
                       t.data_end, "] end past the data section, which has ", header->data_size,
                       " bytes (the file is truncated or its header is corrupt)"));
    }
  }
  std::stable_sort(tensors.begin(), tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return std::make_pair(a.data_begin, a.data_end) < std::make_pair(b.data_begin, b.data_end);
  });
  uint64_t covered = 0;  // end of the byte ranges seen so far
  const TensorInfo* previous = nullptr;
  for (TensorInfo& t : tensors) {
    if (previous != nullptr && t.data_begin < previous->data_end) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensors ", Quoted(previous->name), " [", previous->data_begin, ", ", previous->data_end,
          "] and ", Quoted(t.name), " [", t.data_begin, ", ", t.data_end, "] overlap"));
    }
    if (options.require_full_coverage && t.data_begin > covered) {
      return absl::InvalidArgumentError(absl::StrCat(
          "no tensor covers data bytes [", covered, ", ", t.data_begin, ") before tensor ",
          Quoted(t.name), "; tensors must be laid out back to back"));
    }
    if (AddOverflows(header->data_offset, t.data_begin, &t.file_offset)) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", Quoted(t.name), ": file offset overflows 64 bits"));
    }
    covered = std::max(covered, t.data_end);
    previous = &t;
  }
  if (options.require_full_coverage && covered != header->data_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the data section has ", header->data_size, " bytes but the tensors end at ", covered, "; ",
        header->data_size - covered, " trailing bytes belong to no tensor"));
  }
  return absl::OkStatus();
}

}  // namespace

uint64_t TensorInfo::numel() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::StatusOr<uint64_t> TensorBytes(const TensorSpec& spec) {
  for (size_t i = 0; i < spec.shape.size(); ++i) {
    if (spec.shape[i] < 0) {
      return absl::InvalidArgumentError(absl::StrCat("tensor ", Quoted(spec.name), ": shape[", i,
                                                     "] is ", spec.shape[i],
                                                     "; dims must be non-negative"));
    }
  }
  return ShapeBytes(spec.shape, spec.dtype, spec.name);
}

absl::StatusOr<uint64_t> ParseHeaderLength(std::string_view prefix, uint64_t file_size,
                                           const HeaderOptions& options) {
  if (file_size < 8 || prefix.size() < 8) {
    return absl::DataLossError(absl::StrCat("the file has ", file_size,
                                            " bytes; a safetensors file starts with an 8-byte "
                                            "header length"));
  }
  uint64_t n;
  std::memcpy(&n, prefix.data(), 8);  // little-endian on disk and (asserted) on the host
  if (n > options.max_header_bytes) {
    // The length is the file's first 8 bytes: never echoed (the file may not be a
    // safetensors file at all, and its bytes are not the caller's to read).
    return absl::InvalidArgumentError(
        absl::StrCat("the header length in the first 8 bytes exceeds the cap of ",
                     options.max_header_bytes, " bytes (is this a safetensors file?)"));
  }
  if (n > file_size - 8) {
    return absl::DataLossError(
        absl::StrCat("the header length in the first 8 bytes runs past "
                     "the end of the ",
                     file_size, "-byte file (truncated, or not a safetensors file)"));
  }
  return n;
}

absl::StatusOr<Header> ParseHeader(std::string_view json, uint64_t file_size,
                                   const HeaderOptions& options) {
  Header header;
  header.header_size = json.size();
  header.data_offset = 8 + header.header_size;
  if (header.header_size > options.max_header_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("header length ", header.header_size,
                                                   " exceeds the cap of ", options.max_header_bytes,
                                                   " bytes"));
  }
  if (file_size < header.data_offset) {
    return absl::DataLossError(absl::StrCat("header length ", header.header_size,
                                            " runs past the end of the ", file_size,
                                            "-byte file (truncated, or not a safetensors file)"));
  }
  header.data_size = file_size - header.data_offset;

  absl::StatusOr<Json> parsed = ParseJson(json);
  if (!parsed.ok()) return parsed.status();
  if (!parsed->is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("safetensors header is ", JsonTypeName(*parsed),
                     "; it must be a JSON object mapping tensor names to entries"));
  }
  for (auto it = parsed->begin(); it != parsed->end(); ++it) {
    if (it.key() == kMetadataKey) {
      absl::Status status = ParseMetadata(*it, &header.metadata);
      if (!status.ok()) return status;
      continue;
    }
    absl::StatusOr<TensorInfo> info = ParseTensorEntry(it.key(), *it);
    if (!info.ok()) return info.status();
    header.tensors.push_back(*std::move(info));
  }
  absl::Status status = CheckRanges(&header, options);
  if (!status.ok()) return status;
  return header;
}

absl::StatusOr<HeaderLayout> LayoutHeader(const std::vector<TensorSpec>& tensors,
                                          const std::map<std::string, std::string>& metadata) {
  HeaderLayout layout;
  nlohmann::ordered_json json = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
    json[std::string(kMetadataKey)] = std::move(meta);
  }
  std::set<std::string_view> names;
  uint64_t offset = 0;
  for (const TensorSpec& spec : tensors) {
    if (spec.name.empty()) {
      return absl::InvalidArgumentError("a tensor has an empty name");
    }
    if (spec.name == kMetadataKey) {
      return absl::InvalidArgumentError(
          "tensor name \"__metadata__\" is reserved for the metadata entry");
    }
    if (!names.insert(spec.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", Quoted(spec.name), " is listed twice"));
    }
    absl::StatusOr<uint64_t> nbytes = TensorBytes(spec);
    if (!nbytes.ok()) return nbytes.status();
    TensorInfo info;
    info.name = spec.name;
    info.dtype = spec.dtype;
    info.shape = spec.shape;
    info.data_begin = offset;
    if (AddOverflows(offset, *nbytes, &info.data_end)) {
      return absl::InvalidArgumentError(absl::StrCat("the tensors up to ", Quoted(spec.name),
                                                     " have more than 2^64 bytes in all"));
    }
    offset = info.data_end;
    json[spec.name] = nlohmann::ordered_json{{"dtype", std::string(SafetensorsCode(spec.dtype))},
                                             {"shape", spec.shape},
                                             {"data_offsets", {info.data_begin, info.data_end}}};
    layout.header.tensors.push_back(std::move(info));
  }
  std::string text;
  try {
    text = json.dump();
  } catch (const nlohmann::ordered_json::exception& e) {
    return absl::InvalidArgumentError("tensor names and metadata must be valid UTF-8");
  }
  // Pad so that the data section (at 8 + N) starts at a multiple of 8.
  text.append((8 - text.size() % 8) % 8, ' ');
  if (text.size() > kMaxHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat("the header would have ", text.size(),
                                                   " bytes, over the reader's cap of ",
                                                   kMaxHeaderBytes));
  }
  Header& header = layout.header;
  header.header_size = text.size();
  header.data_offset = 8 + text.size();
  header.data_size = offset;
  header.metadata = metadata;
  for (TensorInfo& t : header.tensors) t.file_offset = header.data_offset + t.data_begin;
  if (AddOverflows(header.data_offset, offset, &layout.file_size)) {
    return absl::InvalidArgumentError("the file would have more than 2^64 bytes");
  }
  uint64_t n = header.header_size;
  layout.bytes.resize(8);
  std::memcpy(layout.bytes.data(), &n, 8);
  layout.bytes += text;
  return layout;
}

absl::StatusOr<SliceLayout> ComputeSlice(const TensorInfo& tensor, int dim, int64_t start,
                                         int64_t length) {
  const int rank = static_cast<int>(tensor.shape.size());
  if (dim < 0 || dim >= rank) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", Quoted(tensor.name), " of shape ",
                                                   ShapeString(tensor.shape), ": slice dim ", dim,
                                                   " is not in [0, ", rank, ")"));
  }
  const int64_t extent = tensor.shape[dim];
  if (start < 0 || length < 0 || start > extent || length > extent - start) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor ", Quoted(tensor.name), " of shape ", ShapeString(tensor.shape), ": slice [", start,
        ", ", start, " + ", length, ") along dim ", dim, " is not within [0, ", extent, "]"));
  }
  uint64_t outer = 1;
  uint64_t inner = DTypeSize(tensor.dtype);
  bool overflow = false;
  for (int i = 0; i < dim; ++i) overflow |= MulOverflows(outer, tensor.shape[i], &outer);
  for (int i = dim + 1; i < rank; ++i) overflow |= MulOverflows(inner, tensor.shape[i], &inner);
  SliceLayout slice;
  overflow |= MulOverflows(inner, static_cast<uint64_t>(length), &slice.run_bytes);
  overflow |= MulOverflows(inner, static_cast<uint64_t>(extent), &slice.stride);
  overflow |= MulOverflows(inner, static_cast<uint64_t>(start), &slice.first_offset);
  if (overflow) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", Quoted(tensor.name), " of shape ",
                                                   ShapeString(tensor.shape),
                                                   ": slice byte offsets overflow 64 bits"));
  }
  slice.runs = outer;
  if (slice.runs == 0 || slice.run_bytes == 0) return SliceLayout{};
  if (slice.runs > 1 && slice.run_bytes == slice.stride) {
    // The slice spans the whole dimension: its rows are adjacent, so one run covers them.
    slice.run_bytes *= slice.runs;  // = the tensor's nbytes, which fits
    slice.runs = 1;
  }
  if (slice.runs == 1) slice.stride = slice.run_bytes;
  // The last byte must lie inside the tensor, or the header was not validated.
  uint64_t last = 0;
  if (MulOverflows(slice.runs - 1, slice.stride, &last) ||
      AddOverflows(last, slice.first_offset, &last) || AddOverflows(last, slice.run_bytes, &last) ||
      last > tensor.nbytes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", Quoted(tensor.name), " of shape ", ShapeString(tensor.shape),
                     ": its ", tensor.nbytes(), " bytes do not match its shape"));
  }
  return slice;
}

}  // namespace gptb::checkpoint
