package mqttsource

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/fenceline/fenceline/internal/atomicfile"
)

// SubscriptionsFile is the file, in Options.StateDir, that remembers the
// topic filters the broker's session holds for the client id.
//
// A persistent session keeps its subscriptions: a filter dropped from
// mqtt.topics (or one subscribed under another mqtt.share_group) goes on
// bringing its traffic after a restart, because subscribing the new
// filters does not remove the old. The source remembers every filter it
// subscribed (exactly as sent, with any $share/<group>/ prefix) and, once
// the configured ones are granted on a connection, unsubscribes those
// remembered that are no longer configured.
const SubscriptionsFile = "mqtt-subscriptions.json"

// subsRecord is the content of SubscriptionsFile: the filters of each
// session (client id) the source has run with. Those of another client id
// are in another session, not the current one's to drop; they are kept, so
// that a daemon that runs under another id for a while and comes back
// drops what its first session still holds.
type subsRecord struct {
	Sessions map[string][]string `json:"sessions"`
	// ClientID and Filters are the one session of the first version.
	ClientID string   `json:"client_id,omitempty"`
	Filters  []string `json:"filters,omitempty"`
}

// maxSessions bounds the sessions remembered: the oldest go first.
const maxSessions = 16

// subsPath is where the filters are remembered ("" when not).
func (s *Source) subsPath() string {
	if s.opts.StateDir == "" {
		return ""
	}
	return filepath.Join(s.opts.StateDir, SubscriptionsFile)
}

// loadSubscriptions reads the filters the session held when the source
// last ran (nil when unknown), and whether the file was there at all. A
// missing file means nothing to drop; an unreadable one, the same, with a
// warning: the operator may have to unsubscribe by hand.
func (s *Source) loadSubscriptions() (filters []string, found bool) {
	p := s.subsPath()
	if p == "" {
		return nil, false
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false
	}
	rec, err := s.readSubscriptions(b, err)
	if err != nil {
		s.log.Warn("the topic filters subscribed before are not known: filters dropped from mqtt.topics or of another mqtt.share_group, if any, stay subscribed in the broker's session",
			"file", p, "err", err)
		return nil, true
	}
	filters, ok := rec.Sessions[s.cfg.ClientID]
	if !ok {
		s.log.Info("no topic filters remembered for this client id (a session of its own, new or never seen here): none dropped",
			"file", p, "client_id", s.cfg.ClientID)
	}
	return filters, true
}

// readSubscriptions decodes SubscriptionsFile's content b (read with err).
func (s *Source) readSubscriptions(b []byte, err error) (subsRecord, error) {
	var rec subsRecord
	if err == nil {
		err = json.Unmarshal(b, &rec)
	}
	if err != nil {
		return rec, err
	}
	if rec.Sessions == nil {
		rec.Sessions = map[string][]string{}
	}
	if rec.ClientID != "" {
		if _, ok := rec.Sessions[rec.ClientID]; !ok {
			rec.Sessions[rec.ClientID] = rec.Filters
		}
		rec.ClientID, rec.Filters = "", nil
	}
	return rec, nil
}

// saveSubscriptions makes filters what SubscriptionsFile remembers.
func (s *Source) saveSubscriptions(filters []string) error {
	p := s.subsPath()
	if p == "" {
		return nil
	}
	old, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		old, err = []byte("{}"), nil
	}
	rec, err := s.readSubscriptions(old, err)
	if err != nil {
		rec = subsRecord{Sessions: map[string][]string{}} // unreadable: start again
	}
	delete(rec.Sessions, s.cfg.ClientID)
	for len(rec.Sessions) >= maxSessions {
		for id := range rec.Sessions { // any: they carry no age, and 16 is plenty
			delete(rec.Sessions, id)
			break
		}
	}
	rec.Sessions[s.cfg.ClientID] = filters
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(p, append(b, '\n'))
}

// configured returns the filters subscribed, sorted.
func (s *Source) configured() []string {
	out := make([]string, 0, len(s.cfg.Topics))
	for f := range s.filters() {
		out = append(out, f)
	}
	slices.Sort(out)
	return out
}

// afterSubscribed runs once the broker granted the configured filters:
// it remembers them and unsubscribes those remembered that are no longer
// configured. The memory holds both until the UNSUBACK, so that a crash or
// a lost connection in between leaves the stale filters to be dropped on
// the next connection.
func (s *Source) afterSubscribed(c mqtt.Client) {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	if s.subsPath() == "" {
		return
	}
	want := s.configured()
	var stale []string
	for _, f := range s.known {
		if !slices.Contains(want, f) {
			stale = append(stale, f)
		}
	}
	if err := s.saveSubscriptions(slices.Concat(want, stale)); err != nil {
		s.log.Warn("cannot remember the topic filters subscribed: if mqtt.topics or mqtt.share_group change, the filters dropped will not be unsubscribed",
			"file", s.subsPath(), "err", err)
		// Go on: the stale ones can still be dropped now.
	}
	s.known = slices.Concat(want, stale)
	if len(stale) == 0 {
		return
	}
	if err := s.await(c, c.Unsubscribe(stale...), "unsubscription"); err != nil {
		s.log.Warn("could not unsubscribe the topic filters no longer configured; trying again on the next connection",
			"filters", stale, "err", err)
		return
	}
	s.log.Info("unsubscribed the topic filters no longer configured (dropped from mqtt.topics, or of another mqtt.share_group): the broker's session no longer queues their messages",
		"filters", stale)
	s.known = want
	if err := s.saveSubscriptions(want); err != nil {
		s.log.Warn("cannot remember the topic filters subscribed", "file", s.subsPath(), "err", err)
	}
}

// await waits for tok, the broker's answer to the request named by what,
// which paho's router reads. A persistent session's backlog fills the
// intake before the answer comes, and the router, waiting in handle for a
// slot, reads nothing more until storage frees one: the broker has
// answered, and while the intake is full the wait goes on.
func (s *Source) await(c mqtt.Client, tok mqtt.Token, what string) error {
	told := false
	for !tok.WaitTimeout(s.cfg.ConnectTimeout.D()) {
		if !s.IntakeFull() || s.stopping.Load() || !c.IsConnectionOpen() {
			return errors.New("no answer from the broker")
		}
		if !told {
			s.log.Info("the broker's answer to the "+what+" waits behind a full intake (storage is not keeping up); waiting for it",
				"in_flight", len(s.slots))
			told = true
		}
	}
	return tok.Error()
}
