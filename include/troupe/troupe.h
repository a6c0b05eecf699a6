/* troupe: an async actor-model runtime for C.
 * Include this one header to get the whole public API. */
#ifndef TROUPE_H
#define TROUPE_H

#include "troupe/version.h"
#include "troupe/status.h"
#include "troupe/message.h"
#include "troupe/mailbox.h"
#include "troupe/runtime.h"
#include "troupe/actor.h"
#include "troupe/io.h"
#include "troupe/thread.h"
#include "troupe/supervision.h"
#include "troupe/pool.h"

#endif
