package mqttsource

import "sync"

// ackOrder sends the acks of a source's messages in the order the messages
// arrived, as MQTT 3.1.1 requires of a client (MQTT-4.6.0-2): a message's
// ack waits for those of the messages before it. fenceline finishes them
// out of order (a dead letter is durable before a batch InfluxDB has yet
// to take), and mosquitto 2.0 answers an ack made while a window's worth
// of earlier messages wait by sending the next message published ahead of
// those it has queued (database.c, db__message_delete_outgoing): a device's
// messages then arrive out of order, and its seq accounting counts gaps
// and late messages where nothing was lost.
type ackOrder struct {
	mu   sync.Mutex
	q    []*Message // in arrival order; q[head:] not yet acked or abandoned
	head int
}

// add queues m, just taken from the broker.
func (o *ackOrder) add(m *Message) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.q = append(o.q, m)
}

// finish records that m is done with (ack false: abandoned, never acked)
// and sends the acks of the messages at the head that are, in order. The
// acks are sent under the lock, so that two finishing at once cannot
// send theirs out of order.
func (o *ackOrder) finish(m *Message, ack bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	m.finished, m.acked = true, ack
	for o.head < len(o.q) && o.q[o.head].finished {
		x := o.q[o.head]
		if x.acked {
			x.sendAck()
		}
		o.q[o.head] = nil
		o.head++
	}
	// Compact once the acked part is the larger: amortised, a message is
	// moved at most once.
	if o.head > 64 && o.head*2 > len(o.q) {
		n := copy(o.q, o.q[o.head:])
		clear(o.q[n:])
		o.q, o.head = o.q[:n], 0
	}
}

// waiting is how many messages are finished or not whose acks are not sent.
func (o *ackOrder) waiting() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.q) - o.head
}
