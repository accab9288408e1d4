/* Acknowledgement epochs (see ack_epochs.h). */
#include "ack_epochs.h"

#include <stdint.h>

/* Tags are epoch + 1, so that no tag is NULL, the opaque of records nobody tracks. */
void *ack_epochs_tag(struct ack_epochs *e)
{
	e->pending[e->open % ACK_EPOCHS_RING]++;
	return (void *)(uintptr_t)(e->open + 1);
}

void ack_epochs_done(struct ack_epochs *e, const void *tag)
{
	uintptr_t t = (uintptr_t)tag;
	if (t == 0 || t - 1 > e->open || e->open - (t - 1) >= ACK_EPOCHS_RING)
		return;
	long *p = &e->pending[(t - 1) % ACK_EPOCHS_RING];
	if (*p > 0)
		(*p)--;
}

bool ack_epochs_can_close(const struct ack_epochs *e)
{
	return e->pending[(e->open + 1) % ACK_EPOCHS_RING] == 0;
}

uint64_t ack_epochs_close(struct ack_epochs *e)
{
	return e->open++;
}

bool ack_epochs_complete(const struct ack_epochs *e, uint64_t closed)
{
	if (closed >= e->open)
		return false;
	/* Epochs older than the ring were complete before their slot was taken again. */
	uint64_t first = e->open >= ACK_EPOCHS_RING ? e->open - ACK_EPOCHS_RING + 1 : 0;
	for (uint64_t k = first; k <= closed; k++)
		if (e->pending[k % ACK_EPOCHS_RING])
			return false;
	return true;
}
