/* SipHash-2-4 (Aumasson and Bernstein), streaming form: pieces are fed without being copied
 * into one buffer, so hashing a reading's key allocates nothing. */
#include "siphash.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static void sipround(struct siphash *h)
{
	h->v0 += h->v1;
	h->v1 = ROTL(h->v1, 13);
	h->v1 ^= h->v0;
	h->v0 = ROTL(h->v0, 32);
	h->v2 += h->v3;
	h->v3 = ROTL(h->v3, 16);
	h->v3 ^= h->v2;
	h->v0 += h->v3;
	h->v3 = ROTL(h->v3, 21);
	h->v3 ^= h->v0;
	h->v2 += h->v1;
	h->v1 = ROTL(h->v1, 17);
	h->v1 ^= h->v2;
	h->v2 = ROTL(h->v2, 32);
}

static uint64_t load_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

void siphash_key_random(uint8_t key[16])
{
	if (getrandom(key, 16, GRND_NONBLOCK) == 16)
		return;
	/* No entropy yet (early boot): still better than a fixed key. */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t a = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid();
	uint64_t b = (uint64_t)(uintptr_t)key ^ (a * 0x9E3779B97F4A7C15ull);
	memcpy(key, &a, 8);
	memcpy(key + 8, &b, 8);
}

void siphash_init(struct siphash *h, const uint8_t key[16])
{
	uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
	h->v0 = k0 ^ 0x736f6d6570736575ull;
	h->v1 = k1 ^ 0x646f72616e646f6dull;
	h->v2 = k0 ^ 0x6c7967656e657261ull;
	h->v3 = k1 ^ 0x7465646279746573ull;
	h->tail = 0;
	h->ntail = 0;
	h->total = 0;
}

static void absorb(struct siphash *h, uint64_t m)
{
	h->v3 ^= m;
	sipround(h);
	sipround(h);
	h->v0 ^= m;
}

void siphash_update(struct siphash *h, const void *data, size_t len)
{
	const uint8_t *p = data;
	h->total += len;
	while (len && h->ntail) {
		h->tail |= (uint64_t)*p++ << (8 * h->ntail);
		len--;
		if (++h->ntail == 8) {
			absorb(h, h->tail);
			h->tail = 0;
			h->ntail = 0;
		}
	}
	for (; len >= 8; p += 8, len -= 8)
		absorb(h, load_le64(p));
	for (; len; len--)
		h->tail |= (uint64_t)*p++ << (8 * h->ntail++);
}

uint64_t siphash_final(struct siphash *h)
{
	absorb(h, h->tail | (h->total << 56));
	h->v2 ^= 0xff;
	for (int i = 0; i < 4; i++)
		sipround(h);
	return h->v0 ^ h->v1 ^ h->v2 ^ h->v3;
}
