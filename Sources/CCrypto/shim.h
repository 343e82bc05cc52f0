#ifndef ARK_CCRYPTO_SHIM_H
#define ARK_CCRYPTO_SHIM_H
#include <openssl/evp.h>
#endif
