// RUN: qwen-opt %s --qwen-omp-schedule="kind=fastest" -verify-diagnostics

// expected-error @below {{--qwen-omp-schedule: kind must be static, dynamic or guided and chunk >= 0, got kind=fastest chunk=1}}
module {
}
