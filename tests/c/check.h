/* The C tests' one assertion: counts checks, reports each failure with its line, never aborts
 * (so one run lists every failure). Each test ends with the plain "N passed, N failed" line. */
#ifndef EDGEBNN_TEST_CHECK_H
#define EDGEBNN_TEST_CHECK_H
#include <stdio.h>

static int failures = 0, checks = 0;
#define CHECK(cond, ...)                                   \
  do {                                                     \
    checks++;                                              \
    if (!(cond)) {                                         \
      failures++;                                          \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                        \
      fputc('\n', stderr);                                 \
    }                                                      \
  } while (0)

#endif
