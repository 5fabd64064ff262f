#include "checks.h"

#include <c10/util/Exception.h>
#include <c10/util/accumulate.h>

namespace cnnfast {

void check_dtype(const at::Tensor& t, const char* op, const char* arg, bool allow_16bit) {
  const auto dtype = t.scalar_type();
  const bool wide = dtype == at::kFloat || dtype == at::kDouble;
  const bool narrow = dtype == at::kHalf || dtype == at::kBFloat16;
  TORCH_CHECK(wide || (allow_16bit && narrow), "cnnfast.", op, ": ", arg, " must be ",
              allow_16bit ? "float16, bfloat16, float32 or float64" : "float32 or float64",
              " on ", t.device().type(), ", got ", dtype);
}

void check_same_device_dtype(const at::Tensor& a, const at::Tensor& b, const char* op,
                             const char* arg_a, const char* arg_b) {
  TORCH_CHECK(a.device() == b.device(), "cnnfast.", op, ": ", arg_a, " and ", arg_b,
              " must be on the same device, got ", a.device(), " and ", b.device());
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), "cnnfast.", op, ": ", arg_a, " and ",
              arg_b, " must have the same dtype, got ", a.scalar_type(), " and ",
              b.scalar_type());
}

void check_same_shape(const at::Tensor& a, const at::Tensor& b, const char* op,
                      const char* arg_a, const char* arg_b) {
  TORCH_CHECK(a.sizes() == b.sizes(), "cnnfast.", op, ": ", arg_a, " and ", arg_b,
              " must have the same shape, got ", a.sizes(), " and ", b.sizes());
}

at::MemoryFormat elementwise_format(const at::Tensor& x) {
  const bool channels_last = x.dim() == 4 && !x.is_contiguous() &&
                             x.is_contiguous(at::MemoryFormat::ChannelsLast);
  return channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

namespace {

struct Pair {
  int64_t h, w;
};

Pair pair_arg(at::IntArrayRef values, const char* op, const char* arg) {
  TORCH_CHECK(values.size() == 1 || values.size() == 2, "cnnfast.", op, ": ", arg,
              " must be an int or a pair of ints, got ", values);
  return {values[0], values.size() == 2 ? values[1] : values[0]};
}

void check_pool_input_size(at::IntArrayRef size, const char* op) {
  const auto dims = size.size();
  bool ok = dims == 3 || dims == 4;
  for (size_t d = dims == 4 ? 1 : 0; ok && d < dims; ++d) ok = size[d] > 0;
  TORCH_CHECK(ok, "cnnfast.", op,
              ": input must be a 3-D (C, H, W) or 4-D (N, C, H, W) tensor with non-zero C, "
              "H and W, got shape ",
              size);
}

// Everything but the output size, which forward computes and backward reads.
Pool2dProblem pool2d_geometry(at::IntArrayRef input_size, at::IntArrayRef kernel_size,
                              at::IntArrayRef stride, at::IntArrayRef padding,
                              bool count_include_pad, const char* op) {
  check_pool_input_size(input_size, op);
  const Pair k = pair_arg(kernel_size, op, "kernel_size");
  const Pair s = stride.empty() ? k : pair_arg(stride, op, "stride");
  const Pair pad = pair_arg(padding, op, "padding");
  TORCH_CHECK(k.h > 0 && k.w > 0, "cnnfast.", op, ": kernel_size must be positive, got ",
              kernel_size);
  TORCH_CHECK(s.h > 0 && s.w > 0, "cnnfast.", op, ": stride must be positive, got ", stride);
  TORCH_CHECK(pad.h >= 0 && pad.w >= 0, "cnnfast.", op,
              ": padding must be non-negative, got ", padding);
  TORCH_CHECK(pad.h <= k.h / 2 && pad.w <= k.w / 2, "cnnfast.", op,
              ": padding should be at most half of kernel_size, got padding ", padding,
              " and kernel_size ", kernel_size);
  const auto dims = input_size.size();
  Pool2dProblem p;
  p.planes = input_size[dims - 3] * (dims == 4 ? input_size[0] : 1);
  p.in_h = input_size[dims - 2];
  p.in_w = input_size[dims - 1];
  p.kernel_h = k.h;
  p.kernel_w = k.w;
  p.stride_h = s.h;
  p.stride_w = s.w;
  p.pad_h = pad.h;
  p.pad_w = pad.w;
  p.by_stride_h = Divisor<int64_t>(s.h);
  p.by_stride_w = Divisor<int64_t>(s.w);
  p.count_include_pad = count_include_pad;
  return p;
}

}  // namespace

Pool2dProblem pool2d_problem(const at::Tensor& x, at::IntArrayRef kernel_size,
                             at::IntArrayRef stride, at::IntArrayRef padding, bool ceil_mode,
                             bool count_include_pad, const char* op) {
  Pool2dProblem p =
      pool2d_geometry(x.sizes(), kernel_size, stride, padding, count_include_pad, op);
  p.out_h = pool_output_size(p.in_h, p.kernel_h, p.pad_h, p.stride_h, ceil_mode);
  p.out_w = pool_output_size(p.in_w, p.kernel_w, p.pad_w, p.stride_w, ceil_mode);
  TORCH_CHECK(p.out_h >= 1 && p.out_w >= 1, "cnnfast.", op, ": input of size (", p.in_h, ", ",
              p.in_w, ") is too small for kernel_size ", kernel_size, " with padding ",
              padding, ": the output would be (", p.out_h, ", ", p.out_w, ")");
  return p;
}

Pool2dProblem pool2d_backward_problem(const at::Tensor& grad_output,
                                      c10::SymIntArrayRef input_size,
                                      at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                      at::IntArrayRef padding, bool count_include_pad,
                                      const char* op) {
  const at::IntArrayRef sizes = C10_AS_INTARRAYREF_SLOW(input_size);
  Pool2dProblem p = pool2d_geometry(sizes, kernel_size, stride, padding, count_include_pad, op);
  TORCH_CHECK(grad_output.dim() == static_cast<int64_t>(sizes.size()), "cnnfast.", op,
              ": grad_output must have as many dimensions as the input (", sizes.size(),
              "), got ", grad_output.dim());
  p.out_h = grad_output.size(-2);
  p.out_w = grad_output.size(-1);
  TORCH_CHECK(pooled_sizes(sizes, p) == grad_output.sizes(), "cnnfast.", op,
              ": grad_output has shape ", grad_output.sizes(), ", which does not pool from ",
              sizes);
  TORCH_CHECK(p.out_h >= 1 && p.out_w >= 1 &&
                  (p.out_h - 1) * p.stride_h - p.pad_h < p.in_h &&
                  (p.out_w - 1) * p.stride_w - p.pad_w < p.in_w,
              "cnnfast.", op, ": grad_output's spatial size (", p.out_h, ", ", p.out_w,
              ") does not fit input size (", p.in_h, ", ", p.in_w, ")");
  return p;
}

std::vector<int64_t> pooled_sizes(at::IntArrayRef input_size, const Pool2dProblem& p) {
  std::vector<int64_t> sizes(input_size.begin(), input_size.end());
  sizes[sizes.size() - 2] = p.out_h;
  sizes[sizes.size() - 1] = p.out_w;
  return sizes;
}

LrnProblem lrn_problem(const at::Tensor& x, int64_t size, double alpha, double beta, double k,
                       const char* op) {
  TORCH_CHECK(x.dim() >= 3, "cnnfast.", op,
              ": x must have 3 or more dimensions (N, C, ...), got shape ", x.sizes());
  TORCH_CHECK(size > 0, "cnnfast.", op, ": size must be positive, got ", size);
  LrnProblem p;
  p.batch = x.size(0);
  p.channels = x.size(1);
  p.pixels = c10::multiply_integers(x.sizes().slice(2));
  p.size = size;
  p.alpha = alpha;
  p.beta = beta;
  p.k = k;
  return p;
}

FusedStageProblem fused_stage_problem(const at::Tensor& x, int64_t size, double alpha,
                                      double beta, double k, at::IntArrayRef kernel_size,
                                      at::IntArrayRef stride, const char* op) {
  TORCH_CHECK(x.dim() == 4, "cnnfast.", op, ": x must be a 4-D (N, C, H, W) tensor, got shape ",
              x.sizes());
  const int64_t no_padding[] = {0};
  return {lrn_problem(x, size, alpha, beta, k, op),
          pool2d_problem(x, kernel_size, stride, no_padding, /*ceil_mode=*/false,
                         /*count_include_pad=*/true, op)};
}

LrnProblem lrn_backward_problem(const at::Tensor& grad_output, const at::Tensor& x, int64_t size,
                                double alpha, double beta, double k, const char* op,
                                bool allow_16bit) {
  check_dtype(x, op, "x", allow_16bit);
  check_same_device_dtype(grad_output, x, op, "grad_output", "x");
  check_same_shape(grad_output, x, op, "grad_output", "x");
  return lrn_problem(x, size, alpha, beta, k, op);
}

FusedStageProblem fused_stage_backward_problem(const at::Tensor& grad_output,
                                               const at::Tensor& x, const at::Tensor& offsets,
                                               int64_t size, double alpha, double beta, double k,
                                               at::IntArrayRef kernel_size,
                                               at::IntArrayRef stride, const char* op,
                                               bool allow_16bit) {
  check_dtype(x, op, "x", allow_16bit);
  check_same_device_dtype(grad_output, x, op, "grad_output", "x");
  const FusedStageProblem p =
      fused_stage_problem(x, size, alpha, beta, k, kernel_size, stride, op);
  TORCH_CHECK(grad_output.sizes() == at::IntArrayRef(pooled_sizes(x.sizes(), p.pool)), "cnnfast.",
              op, ": grad_output has shape ", grad_output.sizes(), ", which does not pool from ",
              x.sizes());
  check_offsets(offsets, grad_output, p.pool, op);
  return p;
}

at::ScalarType pool_offset_dtype(const Pool2dProblem& p) {
  return p.window_cells() <= 256 ? at::kByte : at::kInt;
}

void check_offsets(const at::Tensor& offsets, const at::Tensor& grad_output,
                   const Pool2dProblem& p, const char* op) {
  TORCH_CHECK(offsets.scalar_type() == pool_offset_dtype(p), "cnnfast.", op,
              ": offsets must be ", pool_offset_dtype(p), " for a window of ", p.window_cells(),
              " cells, got ", offsets.scalar_type());
  TORCH_CHECK(offsets.device() == grad_output.device(), "cnnfast.", op,
              ": offsets and grad_output must be on the same device, got ", offsets.device(),
              " and ", grad_output.device());
  check_same_shape(offsets, grad_output, op, "offsets", "grad_output");
}

Activation parse_activation(std::optional<std::string_view> activation, const char* op) {
  if (!activation.has_value()) return Activation::kNone;
  if (*activation == "relu") return Activation::kRelu;
  if (*activation == "tanh") return Activation::kTanh;
  TORCH_CHECK(false, "cnnfast.", op, ": activation must be None, 'relu' or 'tanh', got '",
              std::string(*activation), "'");
}

namespace {

void check_bias(const std::optional<at::Tensor>& bias, const at::Tensor& x, int64_t channels,
                const char* op) {
  if (!bias.has_value()) return;
  check_same_device_dtype(x, *bias, op, "x", "bias");
  TORCH_CHECK(bias->dim() == 1 && bias->size(0) == channels, "cnnfast.", op,
              ": bias must be a 1-D tensor of ", channels, " elements, got shape ",
              bias->sizes());
}

}  // namespace

ConvProblem conv2d_problem(const at::Tensor& x, const at::Tensor& weight,
                           const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                           at::IntArrayRef padding, int64_t groups,
                           std::optional<std::string_view> activation, const char* op,
                           bool allow_16bit) {
  check_dtype(x, op, "x", allow_16bit);
  check_same_device_dtype(x, weight, op, "x", "weight");
  TORCH_CHECK(x.dim() == 3 || x.dim() == 4, "cnnfast.", op,
              ": x must be a 3-D (C, H, W) or 4-D (N, C, H, W) tensor, got shape ", x.sizes());
  TORCH_CHECK(weight.dim() == 4, "cnnfast.", op,
              ": weight must be a 4-D (out_channels, in_channels / groups, kH, kW) tensor, got "
              "shape ",
              weight.sizes());
  TORCH_CHECK(groups > 0, "cnnfast.", op, ": groups must be positive, got ", groups);
  const Pair step = pair_arg(stride, op, "stride");
  const Pair pad = pair_arg(padding, op, "padding");
  TORCH_CHECK(step.h > 0 && step.w > 0, "cnnfast.", op, ": stride must be positive, got ",
              stride);
  TORCH_CHECK(pad.h >= 0 && pad.w >= 0, "cnnfast.", op, ": padding must be non-negative, got ",
              padding);
  const int64_t batched = x.dim() == 4 ? 1 : 0;
  ConvProblem p;
  p.n = batched ? x.size(0) : 1;
  p.c = x.size(batched);
  p.h = x.size(batched + 1);
  p.w = x.size(batched + 2);
  p.k = weight.size(0);
  p.r = weight.size(2);
  p.s = weight.size(3);
  p.set_groups(groups);
  TORCH_CHECK(p.c > 0 && p.h > 0 && p.w > 0, "cnnfast.", op,
              ": x must have non-zero channels, height and width, got shape ", x.sizes());
  TORCH_CHECK(p.k > 0 && weight.size(1) > 0 && p.r > 0 && p.s > 0, "cnnfast.", op,
              ": weight must have non-zero sizes, got shape ", weight.sizes());
  TORCH_CHECK(p.c % groups == 0 && p.k % groups == 0, "cnnfast.", op, ": groups (", groups,
              ") must divide both the input channels (", p.c, ") and the output channels (", p.k,
              ")");
  TORCH_CHECK(weight.size(1) * groups == p.c, "cnnfast.", op, ": weight of shape ",
              weight.sizes(), " with groups=", groups, " expects ", weight.size(1) * groups,
              " input channels, but x has ", p.c);
  p.pad_h = pad.h;
  p.pad_w = pad.w;
  p.stride_h = step.h;
  p.stride_w = step.w;
  // The GEMM views index within a plane in 32 bits (GatherCoord).
  constexpr int64_t kPlaneLimit = INT32_MAX;
  const bool each_fits = p.h < kPlaneLimit && p.w < kPlaneLimit && p.pad_h < kPlaneLimit &&
                         p.pad_w < kPlaneLimit && p.stride_h < kPlaneLimit &&
                         p.stride_w < kPlaneLimit;
  TORCH_CHECK(each_fits && (p.h + 2 * p.pad_h) * (p.w + 2 * p.pad_w) < kPlaneLimit,
              "cnnfast.", op, ": the input plane of ", p.h, " × ", p.w, " pixels with padding ",
              padding, " and stride ", stride,
              " is too large: cnnfast's convolution takes padded planes of fewer than 2^31 "
              "pixels");
  TORCH_CHECK(p.h + 2 * p.pad_h >= p.r && p.w + 2 * p.pad_w >= p.s, "cnnfast.", op,
              ": kernel size (", p.r, ", ", p.s, ") is larger than the padded input (",
              p.h + 2 * p.pad_h, ", ", p.w + 2 * p.pad_w, ")");
  p.p = conv_output_size(p.h, p.r, p.pad_h, p.stride_h);
  p.q = conv_output_size(p.w, p.s, p.pad_w, p.stride_w);
  check_bias(bias, x, p.k, op);
  p.act = parse_activation(activation, op);
  return p;
}

ConvProblem linear_problem(const at::Tensor& x, const at::Tensor& weight,
                           const std::optional<at::Tensor>& bias,
                           std::optional<std::string_view> activation, const char* op,
                           bool allow_16bit) {
  check_dtype(x, op, "x", allow_16bit);
  check_same_device_dtype(x, weight, op, "x", "weight");
  TORCH_CHECK(x.dim() >= 1, "cnnfast.", op, ": x must have at least one dimension");
  TORCH_CHECK(weight.dim() == 2, "cnnfast.", op,
              ": weight must be a 2-D (out_features, in_features) tensor, got shape ",
              weight.sizes());
  TORCH_CHECK(x.size(-1) == weight.size(1), "cnnfast.", op, ": x has ", x.size(-1),
              " features in its last dimension but weight expects ", weight.size(1),
              " (x shape ", x.sizes(), ", weight shape ", weight.sizes(), ")");
  TORCH_CHECK(weight.size(0) > 0 && weight.size(1) > 0, "cnnfast.", op,
              ": weight must have non-zero sizes, got shape ", weight.sizes());
  ConvProblem p;
  p.c = weight.size(1);
  p.n = x.numel() / p.c;
  p.h = p.w = p.r = p.s = p.p = p.q = 1;
  p.k = weight.size(0);
  p.set_groups(1);
  check_bias(bias, x, p.k, op);
  p.act = parse_activation(activation, op);
  return p;
}

void check_conv_backward(const at::Tensor& grad_output, const at::Tensor& output,
                         const at::Tensor& x, at::IntArrayRef output_size, const char* op) {
  check_same_device_dtype(x, grad_output, op, "x", "grad_output");
  check_same_device_dtype(x, output, op, "x", "output");
  TORCH_CHECK(grad_output.sizes() == output_size && output.sizes() == output_size, "cnnfast.",
              op, ": grad_output and output must have the forward output's shape ",
              output_size, ", got ", grad_output.sizes(), " and ", output.sizes());
}

LeNet5Parameters LeNet5Parameters::contiguous() const {
  return {conv1_weight.contiguous(), conv1_bias.contiguous(), conv2_weight.contiguous(),
          conv2_bias.contiguous(),   fc1_weight.contiguous(), fc1_bias.contiguous(),
          fc2_weight.contiguous(),   fc2_bias.contiguous(),   fc3_weight.contiguous(),
          fc3_bias.contiguous()};
}

void check_lenet5_arguments(const at::Tensor& x, const LeNet5Parameters& params, const char* op,
                            bool allow_16bit) {
  using G = LeNet5Geometry;
  check_dtype(x, op, "x", allow_16bit);
  TORCH_CHECK(x.dim() == 4 && x.size(1) == 1 && x.size(2) == G::kImage && x.size(3) == G::kImage,
              "cnnfast.", op, ": x must be (N, 1, 32, 32), got shape ", x.sizes());
  const struct {
    const at::Tensor& tensor;
    const char* name;
    std::vector<int64_t> shape;
  } expected[] = {
      {params.conv1_weight, "conv1_weight", {G::kConv1Channels, 1, G::kKernel, G::kKernel}},
      {params.conv1_bias, "conv1_bias", {G::kConv1Channels}},
      {params.conv2_weight, "conv2_weight", {G::kConv2Channels, G::kConv1Channels, G::kKernel, G::kKernel}},
      {params.conv2_bias, "conv2_bias", {G::kConv2Channels}},
      {params.fc1_weight, "fc1_weight", {G::kFc1, G::kFlat}},
      {params.fc1_bias, "fc1_bias", {G::kFc1}},
      {params.fc2_weight, "fc2_weight", {G::kFc2, G::kFc1}},
      {params.fc2_bias, "fc2_bias", {G::kFc2}},
      {params.fc3_weight, "fc3_weight", {G::kClasses, G::kFc2}},
      {params.fc3_bias, "fc3_bias", {G::kClasses}},
  };
  for (const auto& e : expected) {
    check_same_device_dtype(x, e.tensor, op, "x", e.name);
    TORCH_CHECK(e.tensor.sizes() == at::IntArrayRef(e.shape), "cnnfast.", op, ": ", e.name,
                " must have LeNet-5's shape ", at::IntArrayRef(e.shape), ", got ", e.tensor.sizes());
  }
}

}  // namespace cnnfast
