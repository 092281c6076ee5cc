#include "core/plan/pipeline_layout_string.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace gptb::plan {
namespace {

// Largest expansion we accept: a layout longer than this is certainly a typo (and would
// otherwise let `(t)*999999999` allocate without bound).
constexpr size_t kMaxExpandedLength = 1 << 20;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Reads the repeat count after a `*` at `pos`; advances `pos` past it.
absl::StatusOr<long> ReadCount(std::string_view s, size_t* pos) {
  size_t start = *pos;
  while (*pos < s.size() && IsDigit(s[*pos])) ++*pos;
  if (*pos == start) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected a repeat count after '*' at position ", start));
  }
  long count = 0;
  for (size_t i = start; i < *pos; ++i) {
    count = count * 10 + (s[i] - '0');
    if (count > static_cast<long>(kMaxExpandedLength)) {
      return absl::InvalidArgumentError("repeat count is too large");
    }
  }
  return count;
}

}  // namespace

int PipelineLayoutString::Count(char kind, int pp_rank, int vp_stage) const {
  const std::string& stage = stages[pp_rank][vp_stage];
  return static_cast<int>(std::count(stage.begin(), stage.end(), kind));
}

int PipelineLayoutString::Offset(char kind, int pp_rank, int vp_stage) const {
  int offset = 0;
  for (int v = 0; v <= vp_stage; ++v) {
    const int ranks = v < vp_stage ? pipeline_model_parallel_size : pp_rank;
    for (int p = 0; p < ranks; ++p) offset += Count(kind, p, v);
  }
  return offset;
}

absl::StatusOr<std::vector<std::string>> ExpandPipelineLayout(std::string_view layout) {
  std::string s;
  for (char c : layout) {
    if (c != ',' && c != ' ') s.push_back(c);
  }
  // Pass 1: `( ... )*k` with no parenthesis inside, as Megatron's first regex.
  std::string pass1;
  for (size_t i = 0; i < s.size();) {
    if (s[i] == '(') {
      size_t close = s.find_first_of("()", i + 1);
      if (close == std::string::npos || s[close] != ')') {
        return absl::InvalidArgumentError(
            absl::StrCat("unbalanced or nested parenthesis at position ", i));
      }
      if (close + 1 >= s.size() || s[close + 1] != '*') {
        return absl::InvalidArgumentError(absl::StrCat(
            "a parenthesised group must be followed by '*<count>' (position ", close, ")"));
      }
      size_t pos = close + 2;
      absl::StatusOr<long> count = ReadCount(s, &pos);
      if (!count.ok()) return count.status();
      std::string_view body(s.data() + i + 1, close - i - 1);
      if (body.size() * static_cast<size_t>(*count) + pass1.size() > kMaxExpandedLength) {
        return absl::InvalidArgumentError("the expanded layout is too long");
      }
      for (long k = 0; k < *count; ++k) pass1.append(body);
      i = pos;
    } else if (s[i] == ')') {
      return absl::InvalidArgumentError(absl::StrCat("unbalanced ')' at position ", i));
    } else {
      pass1.push_back(s[i]);
      ++i;
    }
  }
  // Pass 2: `x*k`.
  std::string pass2;
  for (size_t i = 0; i < pass1.size(); ++i) {
    if (i + 1 < pass1.size() && pass1[i + 1] == '*') {
      size_t pos = i + 2;
      absl::StatusOr<long> count = ReadCount(pass1, &pos);
      if (!count.ok()) return count.status();
      if (pass2.size() + static_cast<size_t>(*count) > kMaxExpandedLength) {
        return absl::InvalidArgumentError("the expanded layout is too long");
      }
      pass2.append(static_cast<size_t>(*count), pass1[i]);
      i = pos - 1;
    } else if (pass1[i] == '*') {
      return absl::InvalidArgumentError("'*' must follow a layer character or a group");
    } else {
      pass2.push_back(pass1[i]);
    }
  }
  std::vector<std::string> stages = absl::StrSplit(pass2, '|');
  for (const std::string& stage : stages) {
    for (char c : stage) {
      if (c != 'E' && c != 't' && c != 'm' && c != 'L') {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid layer character '", std::string(1, c), "' in stage '", stage,
                         "'; known layer characters: E (embedding), t (decoder), m (MTP), "
                         "L (loss)"));
      }
    }
  }
  return stages;
}

absl::StatusOr<PipelineLayoutString> ParsePipelineLayout(std::string_view layout,
                                                         int pipeline_model_parallel_size) {
  absl::StatusOr<std::vector<std::string>> flat = ExpandPipelineLayout(layout);
  if (!flat.ok()) return flat.status();
  const int p = pipeline_model_parallel_size;
  if (p <= 0 || flat->size() % p != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("the layout has ", flat->size(),
                     " stages, which is not a multiple of pipeline_model_parallel_size (", p, ")"));
  }
  PipelineLayoutString parsed;
  parsed.pipeline_model_parallel_size = p;
  parsed.virtual_pipeline_model_parallel_size = static_cast<int>(flat->size()) / p;
  const int v = parsed.virtual_pipeline_model_parallel_size;
  parsed.stages.assign(p, std::vector<std::string>(v));
  for (int a = 0; a < v; ++a) {
    for (int b = 0; b < p; ++b) parsed.stages[b][a] = (*flat)[a * p + b];
  }
  return parsed;
}

std::vector<std::string> ValidatePipelineLayout(const PipelineLayoutString& layout, int num_layers,
                                                std::optional<int> mtp_num_layers) {
  std::vector<std::string> errors;
  const int p = layout.pipeline_model_parallel_size;
  const int v = layout.virtual_pipeline_model_parallel_size;
  std::string flat;
  for (int a = 0; a < v; ++a) {
    for (int b = 0; b < p; ++b) flat += layout.stages[b][a];
  }
  if (flat.empty() || flat.front() != 'E') {
    errors.push_back("the first layer of the first stage must be the embedding 'E'");
  }
  if (flat.empty() || flat.back() != 'L') {
    errors.push_back("the last layer of the last stage must be the loss 'L'");
  }
  const auto count = [&](char c) {
    return static_cast<int>(std::count(flat.begin(), flat.end(), c));
  };
  if (count('E') != 1) errors.push_back("the embedding 'E' must appear exactly once");
  if (count('L') != 1) errors.push_back("the loss 'L' must appear exactly once");
  if (count('t') != num_layers) {
    errors.push_back(absl::StrCat("the layout has ", count('t'),
                                  " decoder layers 't' but num_layers is ", num_layers));
  }
  const int mtp = mtp_num_layers.value_or(0);
  if (count('m') != mtp) {
    errors.push_back(absl::StrCat("the layout has ", count('m'),
                                  " MTP layers 'm' but mtp_num_layers is ",
                                  mtp_num_layers.has_value() ? absl::StrCat(mtp) : "unset"));
  }
  const size_t first_m = flat.find('m');
  if (first_m != std::string::npos && flat.find('t', first_m) != std::string::npos) {
    errors.push_back("decoder layers 't' must all come before MTP layers 'm'");
  }
  for (int b = 0; b < p; ++b) {
    for (int a = 0; a + 1 < v; ++a) {
      if (layout.stages[b][a].find('m') != std::string::npos) {
        errors.push_back(
            absl::StrCat("MTP layers must be in the last virtual stage of a pipeline "
                         "rank, but pp rank ",
                         b, " has them in virtual stage ", a));
      }
    }
    const std::string& last = layout.stages[b][v - 1];
    const int m_here = static_cast<int>(std::count(last.begin(), last.end(), 'm'));
    if (m_here > 0 && m_here != mtp) {
      errors.push_back(absl::StrCat("all MTP layers must be in one stage, but pp rank ", b,
                                    " holds ", m_here, " of ", mtp));
    }
  }
  return errors;
}

}  // namespace gptb::plan
