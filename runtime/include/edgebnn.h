/*
 * edgebnn.h - the edgebnn runtime's C API.
 *
 * Load a packed .ebnn model (from a path, mmap'd, or from a buffer), create a
 * session (one activation arena, allocated once), set inputs, run, read outputs.
 *
 *   eb_model *m; eb_session *s; eb_error err;
 *   if (eb_model_load_file("model.ebnn", &m, &err) != EB_OK) { puts(err.message); ... }
 *   eb_session_create(m, NULL, &s, &err);
 *   eb_session_set_input(s, 0, pixels, nbytes, &err);
 *   eb_session_run(s, &err);
 *   eb_session_get_output(s, 0, logits, nbytes, &err);
 *   eb_session_free(s); eb_model_free(m);
 *
 * No global state. A model is immutable after load and may be shared by any
 * number of sessions; each session is used by one thread at a time.
 * Every function that can fail returns an eb_status and, when err is not
 * NULL, fills err->message with one line that names what is wrong.
 */
#ifndef EDGEBNN_H
#define EDGEBNN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(EDGEBNN_BUILD_SHARED)
#define EB_API __declspec(dllexport)
#elif defined(__GNUC__)
#define EB_API __attribute__((visibility("default")))
#else
#define EB_API
#endif

#define EB_MAX_DIMS 6

typedef enum {
  EB_OK = 0,
  EB_ERR_IO = 1,          /* file cannot be opened or read */
  EB_ERR_FORMAT = 2,      /* malformed or hostile model file */
  EB_ERR_UNSUPPORTED = 3, /* valid file, but an op/dtype/version this build cannot run */
  EB_ERR_SHAPE = 4,       /* wrong size or shape at run time */
  EB_ERR_ARG = 5,         /* bad argument (NULL, index out of range) */
  EB_ERR_NOMEM = 6
} eb_status;

typedef enum { EB_F32 = 1, EB_I32 = 2, EB_I8 = 3, EB_U8 = 4, EB_BIT1 = 5 } eb_dtype;

/* Layout a user feeds or reads at the boundary. The runtime computes in NHWC;
 * an NCHW input or output is transposed on the way in or out. */
typedef enum { EB_LAYOUT_NHWC = 0, EB_LAYOUT_NCHW = 1 } eb_layout;

typedef struct {
  eb_status status;
  char message[256];
} eb_error;

typedef struct {
  const char *name;
  eb_dtype dtype;
  eb_layout layout;
  int ndim;
  int64_t dims[EB_MAX_DIMS]; /* as the user sees them (NCHW when layout is NCHW) */
  size_t bytes;              /* bytes set_input expects / get_output writes */
  float scale;               /* int8/uint8: real = (q - zero_point) * scale */
  int32_t zero_point;
} eb_tensor_info;

typedef struct {
  const char *name; /* op name from the file (module path for converted models) */
  const char *type; /* op type name, e.g. "BCONV2D" */
  const char *backend; /* kernel family that runs it, e.g. "ref" */
} eb_op_info;

/* Called after each op with its wall time in nanoseconds (the profiler's hook). */
typedef void (*eb_op_timer)(void *user, int op_index, uint64_t nanoseconds);

typedef struct {
  int threads;         /* worker threads for kernels that split work (>= 1) */
  eb_op_timer timer;   /* NULL: no per-op timing (no clock reads either) */
  void *timer_user;
} eb_session_options;

typedef struct eb_model eb_model;
typedef struct eb_session eb_session;

EB_API const char *eb_version(void);
EB_API const char *eb_status_name(eb_status status);
EB_API const char *eb_dtype_name(eb_dtype dtype);

/* ---- models ---- */
/* The file is mapped read-only and its weights are used in place, as llama.cpp and
 * safetensors do: replace a loaded model's file by writing a new file and renaming
 * it over the old one (edgebnn's writers do), never by rewriting it in place. */
EB_API eb_status eb_model_load_file(const char *path, eb_model **out, eb_error *err);
/* The buffer is copied when copy != 0; otherwise it must outlive the model
 * and be 64-byte aligned for weights to be used in place. */
EB_API eb_status eb_model_load_buffer(const void *data, size_t size, int copy,
                                      eb_model **out, eb_error *err);
EB_API void eb_model_free(eb_model *model);

EB_API int eb_model_num_inputs(const eb_model *model);
EB_API int eb_model_num_outputs(const eb_model *model);
EB_API eb_status eb_model_input_info(const eb_model *model, int index, eb_tensor_info *info);
EB_API eb_status eb_model_output_info(const eb_model *model, int index, eb_tensor_info *info);
EB_API int eb_model_num_ops(const eb_model *model);
EB_API eb_status eb_model_op_info(const eb_model *model, int index, eb_op_info *info);
/* Metadata value for key, or NULL. The string lives as long as the model. */
EB_API const char *eb_model_metadata(const eb_model *model, const char *key);
/* Bytes of the activation arena one session allocates (activations + scratch). */
EB_API size_t eb_model_arena_bytes(const eb_model *model);
/* Bytes of constant tensors (weights, scales, thresholds) in the file. */
EB_API size_t eb_model_weight_bytes(const eb_model *model);

/* ---- sessions ---- */
EB_API void eb_session_options_init(eb_session_options *options);
EB_API eb_status eb_session_create(const eb_model *model, const eb_session_options *options,
                                   eb_session **out, eb_error *err);
EB_API void eb_session_free(eb_session *session);
EB_API eb_status eb_session_set_input(eb_session *session, int index, const void *data,
                                      size_t bytes, eb_error *err);
EB_API eb_status eb_session_run(eb_session *session, eb_error *err);
EB_API eb_status eb_session_get_output(eb_session *session, int index, void *data,
                                       size_t bytes, eb_error *err);

#ifdef __cplusplus
}
#endif
#endif /* EDGEBNN_H */
