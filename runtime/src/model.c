/* Model loading: parse and check every byte of an .ebnn file before anything runs.
 * A hostile file must yield EB_ERR_FORMAT with a message, never a crash: every
 * offset, count and size is checked against what actually lies in the buffer. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "kernels.h"

#if defined(__unix__) || defined(__APPLE__)
#define EB_HAVE_MMAP 1
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#define EB_VERSION_STRING "0.1.0"

/* Limits that keep every size computation far from overflow. */
#define EB_MAX_TENSORS (1 << 20)
#define EB_MAX_OPS (1 << 20)
#define EB_MAX_TENSOR_BYTES ((uint64_t)1 << 34)
#define EB_MAX_META 4096

const char *eb_version(void) { return EB_VERSION_STRING; }

const char *eb_status_name(eb_status s) {
  switch (s) {
    case EB_OK: return "ok";
    case EB_ERR_IO: return "io error";
    case EB_ERR_FORMAT: return "malformed model";
    case EB_ERR_UNSUPPORTED: return "unsupported";
    case EB_ERR_SHAPE: return "shape mismatch";
    case EB_ERR_ARG: return "bad argument";
    case EB_ERR_NOMEM: return "out of memory";
  }
  return "unknown status";
}

const char *eb_dtype_name(eb_dtype d) {
  switch (d) {
    case EB_F32: return "f32";
    case EB_I32: return "i32";
    case EB_I8: return "i8";
    case EB_U8: return "u8";
    case EB_BIT1: return "bit1";
  }
  return "?";
}

size_t eb_dtype_size(eb_dtype d) {
  switch (d) {
    case EB_F32: case EB_I32: return 4;
    case EB_I8: case EB_U8: return 1;
    case EB_BIT1: return 8; /* per word */
  }
  return 0;
}

eb_status eb_fail(eb_error *err, eb_status status, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    err->status = status;
  }
  return status;
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32); }
static float rdf32(const uint8_t *p) { uint32_t u = rd32(p); float f; memcpy(&f, &u, 4); return f; }
static double rdf64(const uint8_t *p) { uint64_t u = rd64(p); double d; memcpy(&d, &u, 8); return d; }

typedef struct { const uint8_t *p; uint64_t size; } span;

/* [off, off+len) inside [0, size)? Written so that nothing can overflow. */
static int in_bounds(uint64_t off, uint64_t len, uint64_t size) { return off <= size && len <= size - off; }

typedef struct {
  span strs, tens, grph, meta, data;
  int have_meta;
} sections;

#define FAIL(...) return eb_fail(err, EB_ERR_FORMAT, __VA_ARGS__)

static eb_status parse_sections(const uint8_t *b, size_t size, sections *s, eb_error *err) {
  if (size < 4 || memcmp(b, EBF_MAGIC, 4) != 0) FAIL("bad magic: not an .ebnn model");
  if (size < EBF_HEADER_SIZE) FAIL("file is %zu bytes, too short for the 64-byte header", size);
  uint16_t major = rd16(b + 4), minor = rd16(b + 6);
  if (major != EBF_VERSION_MAJOR)
    return eb_fail(err, EB_ERR_UNSUPPORTED,
                   "format version %u.%u is not supported by runtime %s (reads 1.x); convert the model again",
                   major, minor, EB_VERSION_STRING);
  uint64_t file_size = rd64(b + 8);
  if (file_size != size) FAIL("header says %llu bytes but the file has %zu: truncated or padded", (unsigned long long)file_size, size);
  uint32_t n_sec = rd32(b + 16);
  uint64_t dir = rd64(b + 24);
  if (n_sec > EBF_MAX_SECTIONS || !in_bounds(dir, (uint64_t)n_sec * EBF_SECTION_SIZE, size))
    FAIL("section directory (%u entries at %llu) lies outside the file", n_sec, (unsigned long long)dir);
  memset(s, 0, sizeof *s);
  int seen = 0;
  for (uint32_t i = 0; i < n_sec; i++) {
    const uint8_t *e = b + dir + (uint64_t)i * EBF_SECTION_SIZE;
    uint64_t off = rd64(e + 8), len = rd64(e + 16);
    if (off % EBF_ALIGN || !in_bounds(off, len, size))
      FAIL("section %.4s at %llu+%llu lies outside the file", (const char *)e, (unsigned long long)off, (unsigned long long)len);
    span sp = {b + off, len};
    if (!memcmp(e, "STRS", 4)) { s->strs = sp; seen |= 1; }
    else if (!memcmp(e, "TENS", 4)) { s->tens = sp; seen |= 2; }
    else if (!memcmp(e, "GRPH", 4)) { s->grph = sp; seen |= 4; }
    else if (!memcmp(e, "DATA", 4)) { s->data = sp; seen |= 8; }
    else if (!memcmp(e, "META", 4)) { s->meta = sp; s->have_meta = 1; }
    /* unknown sections are skipped: later minor versions may add some */
  }
  if ((seen & 1) == 0) FAIL("missing section STRS");
  if ((seen & 2) == 0) FAIL("missing section TENS");
  if ((seen & 4) == 0) FAIL("missing section GRPH");
  if ((seen & 8) == 0) FAIL("missing section DATA");
  return EB_OK;
}

/* Strings are stored NUL-terminated in STRS, so names point into the file itself. */
static eb_status str_ref(span strs, uint32_t off, uint32_t len, const char **out, eb_error *err) {
  if (!in_bounds(off, (uint64_t)len + 1, strs.size) || strs.p[(uint64_t)off + len] != 0)
    FAIL("string reference %u+%u is not a terminated string inside the string section", off, len);
  *out = (const char *)strs.p + off;
  return EB_OK;
}

static eb_status parse_tensors(eb_model *m, const sections *s, eb_error *err) {
  if (s->tens.size < 8) FAIL("tensor section too short");
  uint32_t n = rd32(s->tens.p);
  if (n > EB_MAX_TENSORS || (uint64_t)n * EBF_TENSOR_SIZE > s->tens.size - 8)
    FAIL("tensor table claims %u tensors but the section holds %llu bytes", n, (unsigned long long)s->tens.size);
  m->tensors = calloc(n ? n : 1, sizeof *m->tensors);
  if (!m->tensors) return eb_fail(err, EB_ERR_NOMEM, "out of memory for %u tensors", n);
  m->n_tensors = (int)n;
  for (uint32_t i = 0; i < n; i++) {
    const uint8_t *r = s->tens.p + 8 + (uint64_t)i * EBF_TENSOR_SIZE;
    eb_tensor *t = &m->tensors[i];
    eb_status st = str_ref(s->strs, rd32(r), rd32(r + 4), &t->name, err);
    if (st) return st;
    uint8_t dt = r[8], ndim = r[9], qk = r[10], lay = r[11];
    if (dt < EB_F32 || dt > EB_BIT1) FAIL("tensor '%s': unknown dtype code %u", t->name, dt);
    if (ndim < 1 || ndim > EB_MAX_DIMS) FAIL("tensor '%s': %u dimensions (1..%d allowed)", t->name, ndim, EB_MAX_DIMS);
    if (qk > EBF_QUANT_CHANNEL) FAIL("tensor '%s': unknown quantization kind %u", t->name, qk);
    if (lay > EB_LAYOUT_NCHW) FAIL("tensor '%s': unknown layout code %u", t->name, lay);
    t->dtype = (eb_dtype)dt;
    t->ndim = ndim;
    t->quant_kind = qk;
    t->io_layout = (eb_layout)lay;
    t->quant_axis = (int32_t)rd32(r + 12);
    uint64_t count = 1, rows = 1;
    for (int d = 0; d < ndim; d++) {
      uint32_t v = rd32(r + 16 + 4 * d);
      if (v == 0 || v > INT32_MAX) FAIL("tensor '%s': dimension %d is %u", t->name, d, v);
      t->dims[d] = v;
      count *= v;
      if (d < ndim - 1) rows *= v;
      if (count > EB_MAX_TENSOR_BYTES) FAIL("tensor '%s': too many elements", t->name);
    }
    t->count = (size_t)count;
    uint64_t nbytes = t->dtype == EB_BIT1 ? rows * ((uint64_t)(t->dims[ndim - 1] + 63) / 64) * 8
                                          : count * eb_dtype_size(t->dtype);
    if (nbytes > EB_MAX_TENSOR_BYTES) FAIL("tensor '%s': %llu bytes is too large", t->name, (unsigned long long)nbytes);
    /* On a 32-bit target size_t is narrower than the format's limit: refuse rather than wrap. */
    if ((uint64_t)(size_t)count != count || (uint64_t)(size_t)nbytes != nbytes)
      FAIL("tensor '%s': %llu bytes does not fit this %u-bit build's address space", t->name,
           (unsigned long long)nbytes, (unsigned)(sizeof(size_t) * CHAR_BIT));
    t->nbytes = (size_t)nbytes;
    uint64_t off = rd64(r + 40), size = rd64(r + 48);
    t->scale = rdf32(r + 56);
    t->zero_point = (int32_t)rd32(r + 60);
    t->scales_tensor = rd32(r + 64);
    t->zero_points_tensor = rd32(r + 68);
    t->producer = -2; /* not yet known: constant, input or produced */
    if (size) {
      if (size != nbytes)
        FAIL("tensor '%s': %llu data bytes, its %s shape needs %llu", t->name, (unsigned long long)size,
             eb_dtype_name(t->dtype), (unsigned long long)nbytes);
      if (off % EBF_ALIGN || !in_bounds(off, size, s->data.size))
        FAIL("tensor '%s': data at %llu+%llu lies outside the data section", t->name, (unsigned long long)off,
             (unsigned long long)size);
      t->data = s->data.p + off;
      m->weight_bytes += t->nbytes;
    }
    if (qk == EBF_QUANT_TENSOR && !(isfinite(t->scale) && t->scale > 0))
      FAIL("tensor '%s': quantization scale must be finite and > 0", t->name);
  }
  /* Per-channel quantization points at constant tensors: check them now all are read. */
  for (int i = 0; i < m->n_tensors; i++) {
    eb_tensor *t = &m->tensors[i];
    if (t->quant_kind != EBF_QUANT_CHANNEL) continue;
    if (t->quant_axis < 0 || t->quant_axis >= t->ndim) FAIL("tensor '%s': quantization axis %d out of range", t->name, t->quant_axis);
    int64_t c = t->dims[t->quant_axis];
    uint32_t si = t->scales_tensor, zi = t->zero_points_tensor;
    /* no zero-point tensor (0xFFFFFFFF): every zero point is 0 */
    if (si >= n || (zi >= n && zi != EBF_NONE)) FAIL("tensor '%s': per-channel scales reference a missing tensor", t->name);
    const eb_tensor *ts = &m->tensors[si], *tz = zi == EBF_NONE ? NULL : &m->tensors[zi];
    if (!ts->data || ts->dtype != EB_F32 || ts->ndim != 1 || ts->dims[0] != c ||
        (tz && (!tz->data || tz->dtype != EB_I32 || tz->ndim != 1 || tz->dims[0] != c)))
      FAIL("tensor '%s': per-channel scales/zero points must be constant f32/i32 vectors of %lld", t->name, (long long)c);
    const float *sc = ts->data;
    for (int64_t k = 0; k < c; k++)
      if (!(isfinite(sc[k]) && sc[k] > 0)) FAIL("tensor '%s': quantization scale %lld is not > 0", t->name, (long long)k);
  }
  return EB_OK;
}

static eb_status parse_attrs(eb_node *nd, const uint8_t *p, uint64_t avail, int n_attrs, eb_error *err) {
  eb_params *q = &nd->p;
  q->strides[0] = q->strides[1] = q->dilations[0] = q->dilations[1] = 1;
  q->groups = 1;
  q->clamp[0] = -INFINITY;
  q->clamp[1] = INFINITY;
  q->step = 1.0f;
  q->bits = q->order = q->part = 1;
  q->axis = -1;
  for (int d = 0; d < EB_MAX_DIMS; d++) q->perm[d] = -1;
  uint64_t pos = 0;
  for (int a = 0; a < n_attrs; a++) {
    if (!in_bounds(pos, EBF_ATTR_HEADER_SIZE, avail)) FAIL("op '%s': attribute %d lies past its record", nd->name, a);
    uint16_t key = rd16(p + pos);
    uint8_t type = p[pos + 2];
    uint32_t cnt = rd32(p + pos + 4);
    pos += EBF_ATTR_HEADER_SIZE;
    if (!in_bounds(pos, (uint64_t)cnt * 8, avail)) FAIL("op '%s': attribute %u values lie past its record", nd->name, key);
    const uint8_t *v = p + pos;
    pos += (uint64_t)cnt * 8;
    int want_float = key == EB_ATTR_CLAMP || key == EB_ATTR_STEP;
    if (type != (want_float ? EBF_ATTR_FLOAT : EBF_ATTR_INT)) {
      if (key >= EB_ATTR_COUNT_) continue; /* unknown key from a newer minor version: ignore */
      FAIL("op '%s': attribute %u has value type %u", nd->name, key, type);
    }
    int64_t iv[EB_MAX_DIMS] = {0};
    int expect = 1;
    switch (key) {
      case EB_ATTR_STRIDES: case EB_ATTR_DILATIONS: case EB_ATTR_KERNEL: case EB_ATTR_CLAMP: expect = 2; break;
      case EB_ATTR_PADS: expect = 4; break;
      case EB_ATTR_PERM: expect = -1; break;
      default: break;
    }
    if (key >= EB_ATTR_COUNT_ || key == 0) continue;
    if (expect >= 0 && cnt != (uint32_t)expect) FAIL("op '%s': attribute %u needs %d values, has %u", nd->name, key, expect, cnt);
    if (expect < 0 && (cnt < 1 || cnt > EB_MAX_DIMS)) FAIL("op '%s': perm has %u values", nd->name, cnt);
    if (!want_float) {
      for (uint32_t k = 0; k < cnt; k++) {
        iv[k] = (int64_t)rd64(v + 8 * k);
        /* every integer attribute is a small non-negative count except axis */
        if (iv[k] < (key == EB_ATTR_AXIS ? -EB_MAX_DIMS : 0) || iv[k] > (1 << 16))
          FAIL("op '%s': attribute %u value %lld out of range", nd->name, key, (long long)iv[k]);
      }
    }
    switch (key) {
      case EB_ATTR_STRIDES: q->strides[0] = (int)iv[0]; q->strides[1] = (int)iv[1]; break;
      case EB_ATTR_DILATIONS: q->dilations[0] = (int)iv[0]; q->dilations[1] = (int)iv[1]; break;
      case EB_ATTR_KERNEL: q->kernel[0] = (int)iv[0]; q->kernel[1] = (int)iv[1]; break;
      case EB_ATTR_PADS: for (int k = 0; k < 4; k++) q->pads[k] = (int)iv[k]; break;
      case EB_ATTR_PERM: for (uint32_t k = 0; k < cnt; k++) q->perm[k] = (int)iv[k]; break;
      case EB_ATTR_GROUPS: q->groups = (int)iv[0]; break;
      case EB_ATTR_PAD_VALUE: q->pad_value = (int)iv[0]; break;
      case EB_ATTR_ACTIVATION: q->activation = (int)iv[0]; break;
      case EB_ATTR_AXIS: q->axis = (int)iv[0]; break;
      case EB_ATTR_BITS: q->bits = (int)iv[0]; break;
      case EB_ATTR_ORDER: q->order = (int)iv[0]; break;
      case EB_ATTR_PART: q->part = (int)iv[0]; break;
      case EB_ATTR_COUNT_INCLUDE_PAD: q->count_include_pad = (int)iv[0]; break;
      case EB_ATTR_ROUNDING: q->rounding = (int)iv[0]; break;
      case EB_ATTR_CLAMP: q->clamp[0] = (float)rdf64(v); q->clamp[1] = (float)rdf64(v + 8); break;
      case EB_ATTR_STEP: q->step = (float)rdf64(v); break;
      default: break;
    }
  }
  switch (q->activation) {
    case EB_ACT_NONE: q->out_min = -INFINITY; q->out_max = INFINITY; break;
    case EB_ACT_RELU: q->out_min = 0.0f; q->out_max = INFINITY; break;
    case EB_ACT_RELU6: q->out_min = 0.0f; q->out_max = 6.0f; break;
    default: FAIL("op '%s': unknown activation code %d", nd->name, q->activation);
  }
  return EB_OK;
}

static eb_status parse_graph(eb_model *m, const sections *s, eb_error *err) {
  span g = s->grph;
  if (g.size < 16) FAIL("graph section too short");
  uint32_t n_ops = rd32(g.p), n_in = rd32(g.p + 4), n_out = rd32(g.p + 8);
  if (n_ops > EB_MAX_OPS || n_in > EB_MAX_TENSORS || n_out > EB_MAX_TENSORS ||
      !in_bounds(16, 4ull * (n_in + n_out), g.size))
    FAIL("graph header claims %u ops, %u inputs, %u outputs: more than the section holds", n_ops, n_in, n_out);
  if (n_out == 0) FAIL("graph has no outputs");
  m->inputs = calloc(n_in + 1, sizeof *m->inputs);
  m->outputs = calloc(n_out, sizeof *m->outputs);
  m->nodes = calloc(n_ops + 1, sizeof *m->nodes);
  if (!m->inputs || !m->outputs || !m->nodes) return eb_fail(err, EB_ERR_NOMEM, "out of memory for the graph");
  m->n_inputs = (int)n_in;
  m->n_outputs = (int)n_out;
  int nt = m->n_tensors;
  for (uint32_t i = 0; i < n_in; i++) {
    uint32_t t = rd32(g.p + 16 + 4 * i);
    if (t >= (uint32_t)nt) FAIL("graph input %u names tensor %u of %d", i, t, nt);
    eb_tensor *tt = &m->tensors[t];
    if (tt->data || tt->producer == -1) FAIL("graph input '%s' is a constant or listed twice", tt->name);
    if (tt->dtype == EB_BIT1) FAIL("graph input '%s' is bit1; inputs must be f32, i32, i8 or u8", tt->name);
    tt->producer = -1;
    m->inputs[i] = (int32_t)t;
  }
  for (uint32_t i = 0; i < n_out; i++) {
    uint32_t t = rd32(g.p + 16 + 4 * (n_in + i));
    if (t >= (uint32_t)nt) FAIL("graph output %u names tensor %u of %d", i, t, nt);
    m->outputs[i] = (int32_t)t;
  }
  uint64_t pos = (16 + 4ull * (n_in + n_out) + 7) & ~7ull;
  for (uint32_t k = 0; k < n_ops; k++) {
    if (!in_bounds(pos, EBF_OP_HEADER_SIZE, g.size)) FAIL("op %u: record lies past the graph section", k);
    const uint8_t *r = g.p + pos;
    uint32_t size = rd32(r);
    uint16_t type = rd16(r + 4), ni = rd16(r + 6), no = rd16(r + 8), na = rd16(r + 10);
    if (size < EBF_OP_HEADER_SIZE || size % 8 || !in_bounds(pos, size, g.size))
      FAIL("op %u: record size %u is invalid", k, size);
    eb_node *nd = &m->nodes[k];
    eb_status st = str_ref(s->strs, rd32(r + 12), rd32(r + 16), &nd->name, err);
    if (st) return st;
    if (type < 1 || type >= EB_OP_COUNT_)
      return eb_fail(err, EB_ERR_UNSUPPORTED, "op '%s': unknown op code %u (made by a newer edgebnn?)", nd->name, type);
    nd->type = type;
    if (ni > EB_MAX_OP_INPUTS || no != 1) FAIL("op '%s': %u inputs and %u outputs (v1 ops have <= 8 and 1)", nd->name, ni, no);
    uint64_t body = size - EBF_OP_HEADER_SIZE;
    const uint8_t *b = r + EBF_OP_HEADER_SIZE;
    if (4ull * (ni + no) > body) FAIL("op '%s': tensor list lies past its record", nd->name);
    nd->n_in = ni;
    for (int i = 0; i < ni; i++) {
      uint32_t t = rd32(b + 4 * i);
      if (t == EBF_NONE) { nd->in[i] = -1; continue; }
      if (t >= (uint32_t)nt) FAIL("op '%s': input %d names tensor %u of %d", nd->name, i, t, nt);
      eb_tensor *tt = &m->tensors[t];
      if (!tt->data && tt->producer == -2)
        FAIL("op '%s' reads tensor '%s' before anything writes it", nd->name, tt->name);
      nd->in[i] = (int32_t)t;
      if (!tt->data) tt->last_use = (int)k;
    }
    for (int i = ni; i < EB_MAX_OP_INPUTS; i++) nd->in[i] = -1;
    uint32_t o = rd32(b + 4 * ni);
    if (o >= (uint32_t)nt) FAIL("op '%s': output names tensor %u of %d", nd->name, o, nt);
    eb_tensor *ot = &m->tensors[o];
    if (ot->data || ot->producer != -2) FAIL("op '%s' writes tensor '%s', which is a constant, an input or already written", nd->name, ot->name);
    ot->producer = (int)k;
    ot->last_use = (int)k;
    nd->out = (int32_t)o;
    uint64_t apos = (4ull * (ni + no) + 7) & ~7ull;
    if (apos > body) FAIL("op '%s': attributes lie past its record", nd->name);
    st = parse_attrs(nd, b + apos, body - apos, na, err);
    if (st) return st;
    st = eb_op_check(m, nd, err);
    if (st) return st;
    pos += size;
  }
  m->n_nodes = (int)n_ops;
  for (int i = 0; i < m->n_outputs; i++) {
    eb_tensor *t = &m->tensors[m->outputs[i]];
    if (t->producer < 0) FAIL("graph output '%s' is not written by any op", t->name);
    if (t->dtype == EB_BIT1) FAIL("graph output '%s' is bit1; outputs must be unpacked", t->name);
    t->last_use = m->n_nodes;
  }
  return EB_OK;
}

static eb_status parse_meta(eb_model *m, const sections *s, eb_error *err) {
  if (!s->have_meta || s->meta.size < 8) return EB_OK;
  uint32_t n = rd32(s->meta.p);
  if (n > EB_MAX_META || (uint64_t)n * EBF_META_ENTRY_SIZE > s->meta.size - 8) FAIL("metadata table lies past its section");
  m->meta_keys = calloc(n + 1, sizeof(char *));
  m->meta_values = calloc(n + 1, sizeof(char *));
  if (!m->meta_keys || !m->meta_values) return eb_fail(err, EB_ERR_NOMEM, "out of memory for metadata");
  for (uint32_t i = 0; i < n; i++) {
    const uint8_t *e = s->meta.p + 8 + (uint64_t)i * EBF_META_ENTRY_SIZE;
    eb_status st = str_ref(s->strs, rd32(e), rd32(e + 4), &m->meta_keys[i], err);
    if (!st) st = str_ref(s->strs, rd32(e + 8), rd32(e + 12), &m->meta_values[i], err);
    if (st) return st;
    m->n_meta = (int)i + 1;
  }
  return EB_OK;
}

static eb_status load_bytes(eb_model *m, eb_error *err) {
  sections s;
  m->bk = eb_kernels_best(); /* EDGEBNN_KERNELS is read here, once per model */
  eb_status st = parse_sections(m->base, m->size, &s, err);
  if (st) return st;
  if (m->map && s.strs.size) {
    /* names are read long after load (op info, profiles): from a copy, so that reading one
     * does not fault a mapped file's pages back in (pages.c) */
    m->strings = malloc((size_t)s.strs.size);
    if (!m->strings) return eb_fail(err, EB_ERR_NOMEM, "out of memory for the string section");
    memcpy(m->strings, s.strs.p, (size_t)s.strs.size);
    s.strs.p = m->strings;
  }
  st = parse_tensors(m, &s, err);
  if (!st) st = parse_graph(m, &s, err);
  if (!st) st = parse_meta(m, &s, err);
  if (!st) eb_fuse_graph(m);
  if (!st) st = eb_plan_arena(m, err);
  return st;
}

static eb_status finish(eb_model *m, eb_model **out, eb_error *err) {
  eb_status st = load_bytes(m, err);
  if (st) {
    eb_model_free(m);
    return st;
  }
  /* checked: what the loader read is in its own structures now, and sessions read weights
   * once more to pack them (session.c), so the mapping need not stay resident meanwhile */
  eb_model_drop_pages(m, m->base, m->size);
  *out = m;
  if (err) { err->status = EB_OK; err->message[0] = 0; }
  return EB_OK;
}

eb_status eb_model_load_buffer(const void *data, size_t size, int copy, eb_model **out, eb_error *err) {
  if (!out || (!data && size)) return eb_fail(err, EB_ERR_ARG, "eb_model_load_buffer: NULL argument");
  *out = NULL;
  eb_model *m = calloc(1, sizeof *m);
  if (!m) return eb_fail(err, EB_ERR_NOMEM, "out of memory");
  if (copy || ((uintptr_t)data % EBF_ALIGN) != 0) {
    /* weights are read in place as uint64/float: they need the file's alignment */
    void *buf = NULL;
    size_t alloc = (size + EBF_ALIGN - 1) / EBF_ALIGN * EBF_ALIGN;
    if (alloc < size || (buf = aligned_alloc(EBF_ALIGN, alloc ? alloc : EBF_ALIGN)) == NULL) {
      free(m);
      return eb_fail(err, EB_ERR_NOMEM, "out of memory copying a %zu-byte model", size);
    }
    if (size) memcpy(buf, data, size);
    m->owned = buf;
    m->base = buf;
  } else {
    m->base = data;
  }
  m->size = size;
  return finish(m, out, err);
}

eb_status eb_model_load_file(const char *path, eb_model **out, eb_error *err) {
  if (!path || !out) return eb_fail(err, EB_ERR_ARG, "eb_model_load_file: NULL argument");
  *out = NULL;
#ifdef EB_HAVE_MMAP
  int fd = open(path, O_RDONLY);
  if (fd < 0) return eb_fail(err, EB_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return eb_fail(err, EB_ERR_IO, "%s is not a regular file", path);
  }
  /* st_size is 64-bit (_FILE_OFFSET_BITS=64); a 32-bit build cannot map more than size_t */
  if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX) {
    close(fd);
    return eb_fail(err, EB_ERR_IO, "%s is %llu bytes, too large to map in this %u-bit build", path,
                   (unsigned long long)st.st_size, (unsigned)(sizeof(size_t) * CHAR_BIT));
  }
  size_t size = (size_t)st.st_size;
  if (size == 0) {
    close(fd);
    return eb_fail(err, EB_ERR_FORMAT, "%s is empty: not an .ebnn model", path);
  }
  void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return eb_fail(err, EB_ERR_IO, "cannot map %s: %s", path, strerror(errno));
  eb_model *m = calloc(1, sizeof *m);
  if (!m) {
    munmap(map, size);
    return eb_fail(err, EB_ERR_NOMEM, "out of memory");
  }
  m->map = map;
  m->base = map;
  m->size = size;
  eb_status s = finish(m, out, err);
  if (s && err) {
    /* name the file in the message: one line says what and where */
    char tmp[sizeof err->message];
    memcpy(tmp, err->message, sizeof tmp);
    snprintf(err->message, sizeof err->message, "%.100s: %.150s", path, tmp);
  }
  return s;
#else
  FILE *f = fopen(path, "rb");
  if (!f) return eb_fail(err, EB_ERR_IO, "cannot open %s", path);
  if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return eb_fail(err, EB_ERR_IO, "cannot seek %s", path); }
  long n = ftell(f);
  rewind(f);
  if (n <= 0) { fclose(f); return eb_fail(err, EB_ERR_FORMAT, "%s is empty: not an .ebnn model", path); }
  void *buf = aligned_alloc(EBF_ALIGN, ((size_t)n + EBF_ALIGN - 1) / EBF_ALIGN * EBF_ALIGN);
  if (!buf) { fclose(f); return eb_fail(err, EB_ERR_NOMEM, "out of memory"); }
  size_t got = fread(buf, 1, (size_t)n, f);
  fclose(f);
  if (got != (size_t)n) { free(buf); return eb_fail(err, EB_ERR_IO, "short read on %s", path); }
  eb_status s = eb_model_load_buffer(buf, (size_t)n, 0, out, err);
  if (s == EB_OK) (*out)->owned = buf; else free(buf);
  return s;
#endif
}

void eb_model_free(eb_model *m) {
  if (!m) return;
#ifdef EB_HAVE_MMAP
  if (m->map) munmap(m->map, m->size);
#endif
  free(m->owned);
  free(m->strings);
  free(m->tensors);
  free(m->nodes);
  free(m->inputs);
  free(m->outputs);
  free(m->meta_keys);
  free(m->meta_values);
  free(m);
}

int eb_model_num_inputs(const eb_model *m) { return m ? m->n_inputs : 0; }
int eb_model_num_outputs(const eb_model *m) { return m ? m->n_outputs : 0; }
int eb_model_num_ops(const eb_model *m) { return m ? m->n_nodes : 0; }
size_t eb_model_arena_bytes(const eb_model *m) { return m ? m->arena_bytes : 0; }
size_t eb_model_weight_bytes(const eb_model *m) { return m ? m->weight_bytes : 0; }

const char *eb_model_metadata(const eb_model *m, const char *key) {
  if (!m || !key) return NULL;
  for (int i = 0; i < m->n_meta; i++)
    if (strcmp(m->meta_keys[i], key) == 0) return m->meta_values[i];
  return NULL;
}

static void fill_info(const eb_tensor *t, eb_tensor_info *info) {
  memset(info, 0, sizeof *info);
  info->name = t->name;
  info->dtype = t->dtype;
  info->layout = t->io_layout;
  info->ndim = t->ndim;
  for (int d = 0; d < t->ndim; d++) info->dims[d] = t->dims[d];
  if (t->io_layout == EB_LAYOUT_NCHW) { /* runtime holds NHWC; the user sees NCHW */
    info->dims[1] = t->dims[3];
    info->dims[2] = t->dims[1];
    info->dims[3] = t->dims[2];
  }
  info->bytes = t->nbytes;
  info->scale = t->quant_kind == EBF_QUANT_TENSOR ? t->scale : 0.0f;
  info->zero_point = t->quant_kind == EBF_QUANT_TENSOR ? t->zero_point : 0;
}

eb_status eb_model_input_info(const eb_model *m, int i, eb_tensor_info *info) {
  if (!m || !info || i < 0 || i >= m->n_inputs) return EB_ERR_ARG;
  fill_info(&m->tensors[m->inputs[i]], info);
  return EB_OK;
}

eb_status eb_model_output_info(const eb_model *m, int i, eb_tensor_info *info) {
  if (!m || !info || i < 0 || i >= m->n_outputs) return EB_ERR_ARG;
  fill_info(&m->tensors[m->outputs[i]], info);
  return EB_OK;
}

eb_status eb_model_op_info(const eb_model *m, int i, eb_op_info *info) {
  if (!m || !info || i < 0 || i >= m->n_nodes) return EB_ERR_ARG;
  info->name = m->nodes[i].name;
  info->type = eb_op_type_name(m->nodes[i].type);
  info->backend = eb_op_backend(m, &m->nodes[i]);
  return EB_OK;
}
