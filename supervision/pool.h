/* Pools' internals shared with their unit test: the hash routing.
 *
 * TR_ROUTE_HASH is rendezvous (highest random weight) hashing over seats.
 * A pool has TR_POOL_MAX_WORKERS seats numbered from 0, each empty or held
 * by one worker; a key goes to the occupied seat with the highest score
 * for (key, seat). So a key's seat changes only when that seat empties (its
 * keys spread over the others) or a seat that outscores it fills (it takes
 * back exactly the keys it scores highest): nothing else moves. A worker
 * replaced in its seat gets back exactly its predecessor's keys. */
#ifndef TR_SUPERVISION_POOL_H
#define TR_SUPERVISION_POOL_H

#include <stdint.h>

#include "actors/core.h"

/* A pool's start argument (its setup and the workers' init argument) for
 * `spec`, in a block the caller frees (tr__free), so that a supervisor can
 * start the pool's router as its child (tr__pool_behavior()) with it.
 * Errors: TR_EINVAL (a malformed spec), TR_EMSGSIZE, TR_ENOMEM. */
tr_status tr__pool_blob(tr_runtime *rt, const tr_pool_spec *spec, void **blob,
                        size_t *len);
const tr_behavior *tr__pool_behavior(void);

/* The index in seats[0..n-1] (distinct seat numbers) of the seat `key`
 * maps to; n must be at least 1. Pure: any thread. */
uint32_t tr__pool_pick_hash(uint64_t key, const uint32_t *seats, uint32_t n);

#endif
