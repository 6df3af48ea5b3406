#ifndef CHIREDIS_SHIM_H
#define CHIREDIS_SHIM_H
// hiredis from Debian's libhiredis-dev (pkg-config name: hiredis).
#include <hiredis/hiredis.h>
#endif
