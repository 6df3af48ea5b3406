#ifndef CMALLOC_SHIM_H
#define CMALLOC_SHIM_H
// glibc's heap: how much it holds free, and giving free pages back to the kernel. Swift's Glibc
// module does not export <malloc.h>. Elsewhere (musl, Darwin) both are no-ops.
#include <stddef.h>
#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

/// Bytes the allocator holds free in all its arenas (glibc's `mallinfo2().fordblks`); 0 where unknown.
static inline size_t chorus_heap_free_bytes(void) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 info = mallinfo2();
    return info.fordblks;
#else
    return 0;
#endif
}

/// Returns the free pages of every arena to the kernel (`malloc_trim(0)`): 1 when some were.
static inline int chorus_heap_trim(void) {
#if defined(__GLIBC__)
    return malloc_trim(0);
#else
    return 0;
#endif
}
#endif
