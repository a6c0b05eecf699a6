/* troupe version: the header's numbers and the library's, to detect a
 * mismatch between the two. The same major version means the same ABI. */
#ifndef TROUPE_VERSION_H
#define TROUPE_VERSION_H

#define TR_VERSION_MAJOR      0
#define TR_VERSION_MINOR      1
#define TR_VERSION_PATCH      0
#define TR_VERSION_IS_RELEASE 0
#define TR_VERSION_SUFFIX     "dev"

/* 0xMMmmpp: one byte each for major, minor and patch. */
#define TR_VERSION_HEX                                                         \
    ((TR_VERSION_MAJOR << 16) | (TR_VERSION_MINOR << 8) | TR_VERSION_PATCH)

#endif
