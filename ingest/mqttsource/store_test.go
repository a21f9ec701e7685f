package mqttsource

import (
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/stretchr/testify/require"
)

// The source's store keeps what paho reads back on a reconnect (a
// subscription to resend, a QoS 2 PUBREL), and not the messages received,
// which it only discards then.
func TestSessionStoreKeepsNoReceivedMessages(t *testing.T) {
	s := newSessionStore()
	s.Open()
	defer s.Close()

	pub := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	pub.Qos, pub.MessageID = 1, 7
	s.Put("i.7", pub)
	require.Empty(t, s.All(), "a received message is not kept")
	s.Del("i.7") // its ack: nothing to delete, and no harm

	sub := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
	sub.MessageID = 1
	s.Put("o.1", sub)
	rel := packets.NewControlPacket(packets.Pubrel).(*packets.PubrelPacket)
	rel.MessageID = 8
	s.Put("i.8", rel)
	out := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	out.Qos, out.MessageID = 1, 2
	s.Put("o.2", out)
	require.ElementsMatch(t, []string{"o.1", "i.8", "o.2"}, s.All())
	require.Same(t, sub, s.Get("o.1"))
	s.Del("i.8")
	require.ElementsMatch(t, []string{"o.1", "o.2"}, s.All())
}
