//===- StatsDriver.cpp - qwen::calib::TensorStats on a raw matrix ---------===//
//
//   qwen-calib-stats RAW.f32 ROWS COLS CHUNK_ROWS BINS XTX.npy > stats.json
//
// Test driver (test/Calibration): streams a row-major f32 matrix into
// TensorStats CHUNK_ROWS rows at a time (so the histogram re-bins as larger
// values arrive) and prints the statistics JSON, writing X^T X to XTX.npy.
// Exit 1 with the flat index on a NaN/Inf.
//
//===----------------------------------------------------------------------===//

#include "qwen/Calibration/ActivationStats.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <vector>

int main(int argc, char **argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: qwen-calib-stats RAW.f32 ROWS COLS "
                         "CHUNK_ROWS BINS XTX.npy\n");
    return 2;
  }
  int64_t rows = std::atoll(argv[2]), cols = std::atoll(argv[3]),
          chunk = std::atoll(argv[4]);
  int bins = std::atoi(argv[5]);
  std::vector<float> x(size_t(rows * cols));
  std::ifstream f(argv[1], std::ios::binary);
  f.read(reinterpret_cast<char *>(x.data()),
         std::streamsize(x.size() * sizeof(float)));
  if (!f) {
    std::fprintf(stderr, "cannot read %s\n", argv[1]);
    return 2;
  }
  qwen::calib::TensorStats st(cols, true, bins);
  for (int64_t r = 0; r < rows; r += chunk) {
    int64_t n = std::min(chunk, rows - r);
    int64_t bad = st.add(x.data() + r * cols, n);
    if (bad >= 0) {
      std::printf("non-finite at %lld\n", (long long)(r * cols + bad));
      return 1;
    }
  }
  std::string err;
  if (!qwen::calib::writeNpy(argv[6], st.xtx(), cols, cols, err)) {
    std::fprintf(stderr, "%s\n", err.c_str());
    return 2;
  }
  st.writeJson(std::cout, argv[6]);
  std::cout << "\n";
  return 0;
}
