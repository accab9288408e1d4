/* Which records produced before a point have been acknowledged, without waiting for them.
 *
 * Produced records are tagged with the open epoch; closing an epoch (at a checkpoint) opens the
 * next. An epoch is complete when every record tagged with it, and with every earlier epoch,
 * was acknowledged: the input offsets read before it closed may then be committed, while
 * reading and producing went on. Delivery reports arrive in any order across partitions, hence
 * a count per epoch rather than a high-water mark.
 *
 * At most ACK_EPOCHS_RING epochs are tracked (the open one included): ack_epochs_can_close()
 * says whether the next one has a free slot. Single-threaded: tags are taken and delivery
 * reports served on the same thread. */
#ifndef IOTPIPE_ACK_EPOCHS_H
#define IOTPIPE_ACK_EPOCHS_H

#include <stdbool.h>
#include <stdint.h>

#define ACK_EPOCHS_RING 8

struct ack_epochs {
	uint64_t open;			 /* the epoch new records join */
	long pending[ACK_EPOCHS_RING]; /* records not yet acknowledged, per epoch slot */
};

/* A tag for a record about to be produced, as its opaque: never NULL. Counts it as pending. */
void *ack_epochs_tag(struct ack_epochs *e);
/* A delivery report for a record with that tag. Tags not from ack_epochs_tag (NULL) are
 * ignored. */
void ack_epochs_done(struct ack_epochs *e, const void *tag);
/* True when the epoch after the open one has a free slot. */
bool ack_epochs_can_close(const struct ack_epochs *e);
/* Closes the open epoch and returns it; the caller checked ack_epochs_can_close(). */
uint64_t ack_epochs_close(struct ack_epochs *e);
/* True when every record of epoch `closed` and of the epochs before it was acknowledged. */
bool ack_epochs_complete(const struct ack_epochs *e, uint64_t closed);

#endif
