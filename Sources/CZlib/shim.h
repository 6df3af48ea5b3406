#ifndef CZLIB_SHIM_H
#define CZLIB_SHIM_H
// zlib from Debian's zlib1g-dev (pkg-config name: zlib), for permessage-deflate (RFC 7692).
#include <zlib.h>

// deflateInit2 and inflateInit2 are macros, which Swift cannot call: these wrap them.

/// A raw deflate stream (no zlib header or trailer), as RFC 7692 frames carry.
static inline int czlib_deflate_init_raw(z_streamp stream, int level, int window_bits, int mem_level) {
    return deflateInit2(stream, level, Z_DEFLATED, -window_bits, mem_level, Z_DEFAULT_STRATEGY);
}

/// A raw inflate stream (no zlib header or trailer), as RFC 7692 frames carry.
static inline int czlib_inflate_init_raw(z_streamp stream, int window_bits) {
    return inflateInit2(stream, -window_bits);
}
#endif
