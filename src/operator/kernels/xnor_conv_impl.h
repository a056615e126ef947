// Body of the binary kernels, included once per instruction set inside a namespace that
// provides `int64_t XorPopcount(const uint64_t* a, const uint64_t* b, int64_t words)`.
// Included only by xnor_conv.cc (portable) and xnor_conv_avx2.cc.

// The including file provides <algorithm>, <vector> and bitpack.h.

inline void ConvForwardImpl(const ConvGeometry& g, const uint64_t* x, const uint64_t* w,
                              const float* scale, const float* bias, float* y, int threads) {
  const int64_t per_group = g.in_channels / g.groups, words = WordsFor(per_group);
  const int64_t filters = g.out_channels / g.groups, taps = g.kernel_h * g.kernel_w;
  const int64_t patch_words = taps * words;
  const int64_t oh_count = g.OutHeight(), ow_count = g.OutWidth(), spatial = oh_count * ow_count;
  const bool minus_one_padding = g.pad_value != 0.0f;

  // A padded tap reads an all-zero word (zero padding: its popcount is popcount(w), taken
  // back out below) or the all-ones word of -1 (exactly what -1 padding means).
  std::vector<uint64_t> pad_word(words);
  for (int64_t k = 0; k < words; ++k) pad_word[k] = minus_one_padding ? TailMask(per_group, k) : 0;
  const std::vector<uint64_t> zeros(words, 0);
  std::vector<int32_t> tap_popcount(g.out_channels * taps);  // popcount(w) of each filter tap
  for (int64_t o = 0; o < g.out_channels; ++o)
    for (int64_t t = 0; t < taps; ++t)
      tap_popcount[o * taps + t] =
          static_cast<int32_t>(XorPopcount(w + (o * taps + t) * words, zeros.data(), words));

#pragma omp parallel num_threads(threads)
  {
    std::vector<uint64_t> patch(patch_words);
    std::vector<int64_t> padded_taps(taps);
#pragma omp for schedule(static) collapse(2)
    for (int64_t n = 0; n < g.batch; ++n) {
      for (int64_t oh = 0; oh < oh_count; ++oh) {
        for (int64_t ow = 0; ow < ow_count; ++ow) {
          for (int64_t group = 0; group < g.groups; ++group) {
            // Gather the receptive field: one run of words per tap, weight layout order.
            int64_t padded = 0;
            for (int64_t i = 0; i < g.kernel_h; ++i) {
              const int64_t h = oh * g.stride_h - g.pad_h + i * g.dilate_h;
              for (int64_t j = 0; j < g.kernel_w; ++j) {
                const int64_t wi = ow * g.stride_w - g.pad_w + j * g.dilate_w;
                const int64_t t = i * g.kernel_w + j;
                const uint64_t* source = pad_word.data();
                if (h >= 0 && h < g.in_height && wi >= 0 && wi < g.in_width)
                  source = x + (((n * g.in_height + h) * g.in_width + wi) * g.groups + group) * words;
                else
                  padded_taps[padded++] = t;
                std::copy_n(source, words, patch.data() + t * words);
              }
            }
            const int64_t counted = minus_one_padding ? taps : taps - padded;
            for (int64_t f = 0; f < filters; ++f) {
              const int64_t o = group * filters + f;
              int64_t differing = XorPopcount(patch.data(), w + o * patch_words, patch_words);
              if (!minus_one_padding)
                for (int64_t p = 0; p < padded; ++p) differing -= tap_popcount[o * taps + padded_taps[p]];
              float value = static_cast<float>(counted * per_group - 2 * differing);
              if (scale != nullptr) value *= scale[o];
              if (bias != nullptr) value += bias[o];
              y[(n * g.out_channels + o) * spatial + oh * ow_count + ow] = value;
            }
          }
        }
      }
    }
  }
}

inline void DenseForwardImpl(int64_t batch, int64_t features, int64_t out_features,
                               const uint64_t* x, const uint64_t* w, const float* scale,
                               const float* bias, float* y, int threads) {
  const int64_t words = WordsFor(features);
#pragma omp parallel for num_threads(threads) schedule(static) collapse(2)
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t o = 0; o < out_features; ++o) {
      float value = static_cast<float>(features - 2 * XorPopcount(x + n * words, w + o * words, words));
      if (scale != nullptr) value *= scale[o];
      if (bias != nullptr) value += bias[o];
      y[n * out_features + o] = value;
    }
  }
}
