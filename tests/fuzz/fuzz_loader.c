/* libFuzzer harness for the model loader: any byte string must load cleanly or fail
 * with a message; a file that loads must also run (on zeros) without a sanitizer report.
 *   cmake -DEDGEBNN_FUZZ=ON -DCMAKE_C_COMPILER=clang ... && ./fuzz_loader corpus/ -max_total_time=60 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edgebnn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  eb_model *m = NULL;
  eb_error err;
  if (eb_model_load_buffer(data, size, 1, &m, &err) != EB_OK) {
    if (err.message[0] == 0 || memchr(err.message, 0, sizeof err.message) == NULL) abort();
    return 0;
  }
  eb_session *s = NULL;
  if (eb_model_arena_bytes(m) < ((size_t)64 << 20) && eb_session_create(m, NULL, &s, &err) == EB_OK) {
    for (int i = 0; i < eb_model_num_inputs(m); i++) {
      eb_tensor_info info;
      eb_model_input_info(m, i, &info);
      if (info.bytes > ((size_t)16 << 20)) continue;
      void *z = calloc(1, info.bytes ? info.bytes : 1);
      eb_session_set_input(s, i, z, info.bytes, &err);
      free(z);
    }
    eb_session_run(s, &err);
    eb_session_free(s);
  }
  eb_model_free(m);
  return 0;
}
