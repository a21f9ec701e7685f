package mqttsource

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Acks go to the broker in the order the messages arrived, whatever the
// order they finish in; an abandoned message is not acked and does not
// hold the others back.
func TestAckOrder(t *testing.T) {
	for _, tc := range []struct {
		name    string
		finish  []int  // the order messages finish in
		abandon []bool // by message
		sent    [][]int
	}{
		{"in order", []int{0, 1, 2}, nil, [][]int{{0}, {0, 1}, {0, 1, 2}}},
		{"the last first", []int{2, 1, 0}, nil, [][]int{{}, {}, {0, 1, 2}}},
		{"the middle first", []int{1, 0, 2}, nil, [][]int{{}, {0, 1}, {0, 1, 2}}},
		{"an abandoned one", []int{2, 1, 0}, []bool{false, true, false}, [][]int{{}, {}, {0, 2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o ackOrder
			var sent []int
			msgs := make([]*Message, 3)
			for i := range msgs {
				msgs[i] = &Message{order: &o, ack: func() { sent = append(sent, i) }}
				o.add(msgs[i])
			}
			for step, i := range tc.finish {
				if tc.abandon != nil && tc.abandon[i] {
					msgs[i].Abandon()
				} else {
					msgs[i].Ack()
				}
				require.Equal(t, tc.sent[step], append([]int{}, sent...), "after message %d finished", i)
			}
			require.Zero(t, o.waiting())
		})
	}
}

// The queue does not keep what it has acked.
func TestAckOrderCompacts(t *testing.T) {
	var o ackOrder
	first := &Message{order: &o}
	o.add(first)
	for range 10_000 {
		m := &Message{order: &o}
		o.add(m)
		m.Ack()
	}
	require.Equal(t, 10_001, o.waiting(), "all wait for the first")
	first.Ack()
	require.Zero(t, o.waiting())
	for range 10_000 {
		m := &Message{order: &o}
		o.add(m)
		m.Ack()
	}
	require.Less(t, len(o.q), 200, "acked messages are dropped as they go")
}

// countObserver counts observations.
type countObserver struct{ n int }

func (c *countObserver) Observe(float64) { c.n++ }

// An ack's latency is observed when the ack goes to the broker, not when
// its message finished ahead of an earlier one.
func TestAckOrderLatencyWhenSent(t *testing.T) {
	var o ackOrder
	first, second := &Message{order: &o}, &Message{order: &o}
	o.add(first)
	o.add(second)
	var lat countObserver
	second.AckObserved(&lat)
	require.Zero(t, lat.n, "its ack waits for the first message's")
	first.AckObserved(&lat)
	require.Equal(t, 2, lat.n)
}
