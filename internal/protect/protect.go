// Package protect replaces personal identifiers (IMSI, IMEI, MAC, plate)
// with keyed hashes before they leave the process for storage, and for
// alert receivers that are not allowed the raw values.
//
// A hash is the first 32 hex digits (128 bits) of
// HMAC-SHA256(key, kind + ":" + value), with value in its normalised form
// (as stored: MACs lower-case with colons; plates normalised, by their
// letters and digits alone, as the rules compare them). The same
// value always gives the same hash, so dashboards can still count distinct
// phones and join a detection to an alert; without the key nobody can go
// back from a hash to the value, nor test a guessed value — which an
// unkeyed hash would allow for IMSIs and plates, whose value space is
// small enough to enumerate.
//
// The kind is part of the hashed text so that an IMEI and an IMSI that
// happen to share their digits do not share a hash.
package protect

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/model"
)

// HashHexLen is the length of a hash in hex digits.
const HashHexLen = 32

// MinKeyBytes is the shortest key accepted: shorter keys could be guessed.
const MinKeyBytes = 16

// Hasher computes keyed hashes. It is not safe for concurrent use; give each
// goroutine its own (Clone).
type Hasher struct {
	key []byte
	mac hash.Hash
	buf []byte
}

// NewHasher returns a Hasher for key (at least MinKeyBytes).
func NewHasher(key []byte) (*Hasher, error) {
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("key has %d bytes, want at least %d", len(key), MinKeyBytes)
	}
	k := append([]byte(nil), key...)
	return &Hasher{key: k, mac: hmac.New(sha256.New, k)}, nil
}

// Clone returns a Hasher with the same key for another goroutine.
func (h *Hasher) Clone() *Hasher {
	c, _ := NewHasher(h.key) // the key was checked already
	return c
}

// Hash returns the keyed hash of value of the given kind (imsi, imei, mac,
// plate). The empty value stays empty: an absent identifier is absent.
func (h *Hasher) Hash(kind, value string) string {
	if value == "" {
		return ""
	}
	if kind == "plate" {
		// By its letters and digits, as the rules compare plates:
		// "蒙B-9X8Y7" and "蒙B9X8Y7" are one vehicle, to a dashboard too.
		value = model.PlateKey(value)
	}
	h.mac.Reset()
	h.buf = append(h.buf[:0], kind...)
	h.buf = append(h.buf, ':')
	h.buf = append(h.buf, value...)
	h.mac.Write(h.buf)
	var sum [sha256.Size]byte
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], h.mac.Sum(sum[:0]))
	return string(out[:HashHexLen])
}

// LoadKey reads the hash key from a file: the file's bytes, without a
// trailing newline. The error names the file, never the content.
func LoadKey(path string) ([]byte, error) {
	s, err := config.ReadSecret(path)
	if err != nil {
		return nil, err
	}
	if len(s) < MinKeyBytes {
		return nil, fmt.Errorf("%s holds %d bytes, want at least %d (e.g. 32 random bytes as hex: openssl rand -hex 32)", path, len(s), MinKeyBytes)
	}
	return []byte(s), nil
}

// Subject modes of alerts sent to units.
const (
	SubjectsRaw    = "raw"
	SubjectsHashed = "hashed"
)

// Options say what is hashed.
type Options struct {
	// Identifiers hashes IMSI, IMEI and MAC in stored readings and in the
	// alert measurement.
	Identifiers bool
	// Plates hashes plates likewise.
	Plates bool
	// AlertSubjects is SubjectsRaw or SubjectsHashed: what MQTT and webhook
	// alerts carry for a personal subject.
	AlertSubjects string
}

// Protector applies Options. Batch runs on the pipeline's goroutine; the
// alert methods may run on any, each call with its own Hasher.
type Protector struct {
	opts Options
	key  []byte
	h    *Hasher // the pipeline's
}

// New returns a Protector. key may be nil only when Options hash nothing.
func New(opts Options, key []byte) (*Protector, error) {
	if opts.AlertSubjects == "" {
		opts.AlertSubjects = SubjectsRaw
	}
	if opts.AlertSubjects != SubjectsRaw && opts.AlertSubjects != SubjectsHashed {
		return nil, fmt.Errorf("alert subjects %q: want raw or hashed", opts.AlertSubjects)
	}
	p := &Protector{opts: opts, key: key}
	if !p.Enabled() {
		return p, nil
	}
	if key == nil {
		return nil, errors.New("hashing is on but there is no key")
	}
	h, err := NewHasher(key)
	if err != nil {
		return nil, err
	}
	p.h = h
	return p, nil
}

// Enabled reports whether anything is hashed anywhere.
func (p *Protector) Enabled() bool {
	return p != nil && (p.opts.Identifiers || p.opts.Plates || p.opts.AlertSubjects == SubjectsHashed)
}

// StoresHashed reports whether readings are hashed before storage.
func (p *Protector) StoresHashed() bool {
	return p != nil && (p.opts.Identifiers || p.opts.Plates)
}

// Batch hashes the identifiers of b in place, as Options say. Call it after
// the alert engine has seen b (watchlists match raw values) and before the
// writer encodes it. MCC, MNC and operator stay: they name a country and a
// network, not a person.
func (p *Protector) Batch(b *model.Batch) {
	if !p.StoresHashed() {
		return
	}
	if p.opts.Identifiers {
		for i := range b.Detections {
			d := &b.Detections[i]
			d.IMSI = p.h.Hash("imsi", d.IMSI)
			d.IMEI = p.h.Hash("imei", d.IMEI)
			d.MAC = p.h.Hash("mac", d.MAC)
		}
	}
	if p.opts.Plates {
		for i := range b.Passes {
			if b.Passes[i].Plate != model.NoPlate {
				b.Passes[i].Plate = p.h.Hash("plate", b.Passes[i].Plate)
			}
		}
	}
}

// storedHashed reports whether a subject of this kind is hashed when stored.
func (p *Protector) storedHashed(kind string) bool {
	switch kind {
	case "imsi", "imei", "mac":
		return p.opts.Identifiers
	case "plate":
		return p.opts.Plates
	}
	return false
}

// IsPersonal reports whether an alert subject kind names a person's phone
// or vehicle (as opposed to a device or a patrol).
func IsPersonal(kind string) bool {
	switch kind {
	case "imsi", "imei", "mac", "plate":
		return true
	}
	return false
}

// StoredAlert returns the alert as the alert measurement stores it: its
// subject hashed like the readings of its kind, so that dashboards can join
// the two. a itself is not modified (sinks share it).
func (p *Protector) StoredAlert(a *model.Alert) *model.Alert {
	if p == nil {
		return a
	}
	return p.protectAlert(a, p.storedHashed(a.Subject.Kind))
}

// SentAlert returns the alert as MQTT and webhooks send it: raw, or with a
// personal subject hashed when AlertSubjects is hashed.
func (p *Protector) SentAlert(a *model.Alert) *model.Alert {
	if p == nil {
		return a
	}
	return p.protectAlert(a, p.sentHashed(a.Subject.Kind))
}

// AlertID is the id every sink gives a (keyed when a sink hashes its
// subject; see protectAlert): the one to name it by in the log, so that an
// operator finds it where receivers and InfluxDB hold it.
func (p *Protector) AlertID(a *model.Alert) string {
	if p == nil {
		return a.ID
	}
	return p.protectAlert(a, false).ID
}

func (p *Protector) sentHashed(kind string) bool {
	return p.opts.AlertSubjects == SubjectsHashed && IsPersonal(kind)
}

// protectAlert returns a copy of a for one sink, its subject (and the
// subject's occurrences in the summary) a keyed hash when hashSubject. The
// id is keyed whenever any sink hashes the subject: the engine derives it
// from the subject with an unkeyed hash, and from rule, zone and start (all
// in the alert) an IMSI could be found by enumeration. It is keyed for
// every sink alike, raw subject or not, so that an incident has one id
// wherever it is read, stable, shared by firing and resolved.
func (p *Protector) protectAlert(a *model.Alert, hashSubject bool) *model.Alert {
	raw := a.Subject.Value
	if raw == "" || raw == model.NoPlate || !(p.storedHashed(a.Subject.Kind) || p.sentHashed(a.Subject.Kind)) {
		return a
	}
	h, _ := NewHasher(p.key) // per call: sinks deliver concurrently
	c := *a
	if hashSubject {
		c.Subject.Value = h.Hash(a.Subject.Kind, raw)
		c.Summary = strings.ReplaceAll(a.Summary, raw, c.Subject.Value)
	}
	if a.ID != "" {
		c.ID = keyedID(h, a.ID)
	}
	return &c
}

// keyedID is the alert id the engine derived, keyed.
func keyedID(h *Hasher, id string) string {
	k := h.Hash("alert-id", id)
	if len(id) < len(k) {
		k = k[:len(id)]
	}
	return k
}
