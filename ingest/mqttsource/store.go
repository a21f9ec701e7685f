package mqttsource

import (
	"strings"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// sessionStore is paho's store for the source's client: its memory store,
// except that it does not keep the messages received. paho puts each QoS 1
// or 2 PUBLISH it receives in its store, under "i.<packet id>", and deletes
// it when the ack goes: two lookups in a map, each under the store's lock,
// per message. Nothing reads them: on the next connection paho discards an
// inbound PUBLISH it finds in its store (v1.5.1, client.resume), and the
// broker sends the message again. What else paho stores (subscriptions to
// resend, the PUBRELs of QoS 2) is kept as before.
type sessionStore struct {
	*mqtt.MemoryStore
}

func newSessionStore() sessionStore { return sessionStore{mqtt.NewMemoryStore()} }

// inboundKeyPrefix begins paho's keys for what it received (v1.5.1,
// store.go: inboundPrefix).
const inboundKeyPrefix = "i."

func (s sessionStore) Put(key string, m packets.ControlPacket) {
	if _, ok := m.(*packets.PublishPacket); ok && strings.HasPrefix(key, inboundKeyPrefix) {
		return
	}
	s.MemoryStore.Put(key, m)
}
