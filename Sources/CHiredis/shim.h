#ifndef ARK_CHIREDIS_SHIM_H
#define ARK_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#endif
