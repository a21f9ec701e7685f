// Package devicesig checks per-device payload signatures and rejects
// replayed messages, for deployments whose broker cannot tie a device to its
// own topics (anyone who may publish could otherwise speak for any device).
//
// # What is signed
//
// A signed payload ends with the member
//
//	,"sig":"<64 hex digits>"}
//
// written exactly so — no whitespace inside it — as the last member of the
// top-level object, followed only by the closing brace (and optional
// trailing whitespace). The signature is
//
//	hex(HMAC-SHA256(device key, topic + "\n" + payload without the member))
//
// where "payload without the member" is the payload with the bytes from the
// member's leading comma to its closing quote removed. A device builds its
// JSON as usual, signs topic, newline and that text, and inserts the member
// before the final brace; no JSON canonicalisation is involved. The topic is
// signed so that a message cannot be moved to another stream of the same
// device. Hex is accepted in either case.
//
// # Replay
//
// Each device's seq must grow. A validly signed message whose seq is not
// above the highest one accepted for the device is rejected as replayed —
// unless it is byte for byte a message accepted before (same seq, same
// signature) within the last Window seqs: that is a QoS 1 redelivery (an ack
// lost with a connection), which must be acked again and is stored
// idempotently. Replaying such a copy writes the same points again and, the
// pipeline's own duplicate detection seeing the seq, is not evaluated again.
//
// The highest acknowledged seq of each device survives restarts
// (MarshalState), tied to a fingerprint of the device's key: a new key
// starts the device's counter afresh, which is how an operator re-admits a
// device that lost its counter.
package devicesig

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/fenceline/fenceline/config"
)

// Rejection reasons, as dead-letter reasons and metric labels.
const (
	ReasonBadSignature = "bad_signature"
	ReasonReplayed     = "replayed"
)

// Reasons lists the rejection reasons, for pre-creating metric labels.
var Reasons = []string{ReasonBadSignature, ReasonReplayed}

// Window is how many recent seqs per device are remembered to tell a
// redelivery from a replay.
const Window = 256

// MinKeyBytes and MaxKeyBytes bound a device key.
const (
	MinKeyBytes = 16
	MaxKeyBytes = 64
)

// Keys maps a device id to its HMAC key.
type Keys map[string][]byte

var deviceID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// LoadKeys reads a key file: one "device-id:hex-key" a line; blank lines and
// lines starting with # are skipped. Errors name the file and line, never a
// key; every bad line is one error of an errors.Join.
func LoadKeys(path string) (Keys, error) {
	// Stat first: opening a FIFO would hold the start for ever, and a
	// device such as /dev/zero never ends.
	if fi, err := os.Stat(path); err != nil {
		// Nothing there: the path may be a key written in its place.
		return nil, fmt.Errorf("cannot open %s: %w", config.SecretPath(path), errors.Unwrap(err))
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("cannot open %s: is not a regular file (a folder, a FIFO or a device)", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open %s: %w", path, err)
	}
	defer f.Close()
	ks, err := ParseKeys(f)
	if err != nil {
		var errs []error
		for _, e := range unjoin(err) {
			errs = append(errs, fmt.Errorf("%s: %w", path, e))
		}
		return nil, errors.Join(errs...)
	}
	return ks, nil
}

// unjoin is the errors an errors.Join holds, or err alone.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// ParseKeys reads the key file format (see LoadKeys). It reports every bad
// line, not just the first: an operator fixes them in one go.
func ParseKeys(r io.Reader) (Keys, error) {
	ks := Keys{}
	var errs []error
	bad := func(n int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("line %d: "+format, append([]any{n}, args...)...))
	}
	sc := bufio.NewScanner(r)
	lineOf := map[string]int{}
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, hexKey, ok := strings.Cut(line, ":")
		id, hexKey = strings.TrimSpace(id), strings.TrimSpace(hexKey)
		if !ok {
			bad(n, "want device-id:hex-key")
			continue
		}
		if !deviceID.MatchString(id) {
			bad(n, "device id must match [A-Za-z0-9_-]{1,64}")
			continue
		}
		// Lines are named by number, never by their device: a file named
		// by mistake (a token's, "user:password") would have its text
		// printed as one.
		if first, dup := lineOf[id]; dup {
			bad(n, "its device is listed at line %d already", first)
			continue
		}
		key, err := hex.DecodeString(hexKey)
		if err != nil {
			bad(n, "its key is not hex")
			continue
		}
		if len(key) < MinKeyBytes || len(key) > MaxKeyBytes {
			bad(n, "its key has %d bytes, want %d-%d", len(key), MinKeyBytes, MaxKeyBytes)
			continue
		}
		ks[id], lineOf[id] = key, n
	}
	if err := sc.Err(); err != nil {
		bad(n+1, "%w", err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(ks) == 0 {
		// Valid, but it would check no device's signature: most likely a
		// file emptied or cut short, which must not switch device
		// authentication off unnoticed.
		return nil, errors.New("holds no device key (an empty or truncated file?)")
	}
	return ks, nil
}

// sigMember is the start of the signature member.
var sigMember = []byte(`,"sig":"`)

const sigHexLen = 2 * sha256.Size

// Split finds the signature member of payload. It returns the signed part
// of the payload (without the member) and the signature; found is false
// when the payload does not end with a signature member.
func Split(payload []byte) (signed, sig []byte, found bool) {
	start, end, ok := SigSpan(payload)
	if !ok {
		return nil, nil, false
	}
	sig = make([]byte, sha256.Size)
	if _, err := hex.Decode(sig, payload[start+len(sigMember):end-1]); err != nil {
		return nil, nil, false
	}
	signed = make([]byte, 0, len(payload)-(end-start))
	signed = append(signed, payload[:start]...)
	signed = append(signed, payload[end:]...)
	return signed, sig, true
}

// SigSpan is where payload's signature member is, without allocating:
// payload[start:end] is `,"sig":"<64 hex digits>"`, and the payload
// without it is what was signed. ok is false when the payload does not end
// with one.
func SigSpan(payload []byte) (start, end int, ok bool) {
	last := len(payload)
	for last > 0 && isSpace(payload[last-1]) {
		last--
	}
	// ,"sig":"<64 hex>"}
	start = last - 1 - 1 - sigHexLen - len(sigMember)
	if start < 0 || payload[last-1] != '}' || payload[last-2] != '"' || !bytes.Equal(payload[start:start+len(sigMember)], sigMember) {
		return 0, 0, false
	}
	return start, last - 1, true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// Sign returns payload (a JSON object) with its signature member appended,
// as a device makes it. For tests, simulators and device firmware authors.
func Sign(key []byte, topic string, payload []byte) []byte {
	end := len(payload)
	for end > 0 && isSpace(payload[end-1]) {
		end--
	}
	mac := Sum(key, topic, payload)
	out := make([]byte, 0, len(payload)+len(sigMember)+sigHexLen+1)
	out = append(out, payload[:end-1]...)
	out = append(out, sigMember...)
	out = hex.AppendEncode(out, mac)
	out = append(out, '"')
	out = append(out, payload[end-1:]...)
	return out
}

// Sum is HMAC-SHA256(key, topic + "\n" + signed).
func Sum(key []byte, topic string, signed []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(topic))
	m.Write([]byte{'\n'})
	m.Write(signed)
	return m.Sum(nil)
}

// Outcome is the result of Check.
type Outcome uint8

// Outcomes of Check. Rejected ones have a Reason.
const (
	// Valid: signed by the device's key, seq above every accepted one.
	Valid Outcome = iota
	// Duplicate: a copy of a message accepted before (QoS 1 redelivery).
	Duplicate
	// Unsigned: the device has no key and signatures are not required; the
	// message is accepted as it is (signature, if any, not checked).
	Unsigned
	// BadSignature: missing, malformed or wrong signature, or a device
	// without a key while signatures are required.
	BadSignature
	// Replayed: validly signed, seq not above the highest accepted one.
	Replayed
)

var outcomeNames = [...]string{"valid", "duplicate", "unsigned", ReasonBadSignature, ReasonReplayed}

func (o Outcome) String() string { return outcomeNames[o] }

// Result of one Check.
type Result struct {
	Outcome Outcome
	// Reason is the dead-letter reason of a rejection, "" when accepted.
	Reason string
	// Detail says why, for the dead letter; it never holds a key.
	Detail string
}

// Accepted reports whether the message goes on.
func (r Result) Accepted() bool { return r.Reason == "" }

// Verifier checks signatures and seqs. Check, SetKeys and the state they
// keep belong to one goroutine (the pipeline's); Acked and MarshalState may
// be called from any. keys is written only under mu (by SetKeys, on the
// owning goroutine), so that goroutine reads it without the lock.
type Verifier struct {
	required bool
	keys     Keys
	devs     map[string]*devState

	mu    sync.Mutex
	acked map[string]ackedSeq // highest acknowledged seq per device

	checks *prometheus.CounterVec
}

// devState is one device's replay window.
type devState struct {
	max   int64
	slots [Window]slot
	// last is the message Check last took as Valid, for Owe.
	lastSeq int64
	lastTag [8]byte
}

type slot struct {
	seq  int64
	tag  [8]byte // the first bytes of the signature
	used bool
}

type ackedSeq struct {
	Seq int64  `json:"seq"`
	Key string `json:"key"` // fingerprint of the key it was accepted under
	// Owed are validly signed messages the pipeline rejected whole after
	// their check (over their device's budget): each may be accepted once
	// more, its dead letter published again (see Owe).
	Owed []owedSeq `json:"owed,omitempty"`
}

// owedSeq is a message owed acceptance: its seq and signature's first bytes.
type owedSeq struct {
	Seq int64  `json:"seq"`
	Tag string `json:"tag"` // hex
}

// maxOwed bounds a device's owed messages; past it the oldest go (their
// copies are then refused as replayed).
const maxOwed = 4096

// New returns a Verifier. With required, every message must be signed by a
// device in keys; otherwise only the devices in keys must sign.
func New(keys Keys, required bool, reg prometheus.Registerer) *Verifier {
	v := &Verifier{
		required: required,
		keys:     keys,
		devs:     map[string]*devState{},
		acked:    map[string]ackedSeq{},
		checks: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "fenceline_ingest_signature_checks_total",
			Help: "Device signature checks by outcome: valid, duplicate (redelivery of an accepted message), unsigned (device without a key, signatures not required), bad_signature, replayed.",
		}, []string{"outcome"}),
	}
	for _, n := range outcomeNames {
		v.checks.WithLabelValues(n)
	}
	return v
}

// Check verifies the message of device with the given seq (as decoded).
func (v *Verifier) Check(topic string, payload []byte, device string, seq int64) Result {
	r := v.check(topic, payload, device, seq)
	v.checks.WithLabelValues(r.Outcome.String()).Inc()
	return r
}

// CheckCopy verifies a copy of a message accepted before — the broker's
// retained copy, which it sends again at every subscription, known by its
// checksum — as Check does its signature, not its seq: that is not above
// the highest accepted, being that message's, and no replay. A valid one is
// a Duplicate.
func (v *Verifier) CheckCopy(topic string, payload []byte, device string) Result {
	r, _ := v.verify(topic, payload, device)
	if r.Outcome == Valid {
		r.Outcome = Duplicate
	}
	v.checks.WithLabelValues(r.Outcome.String()).Inc()
	return r
}

// verify checks the signature of device's message: Valid (with its
// signature), Unsigned, or BadSignature.
func (v *Verifier) verify(topic string, payload []byte, device string) (Result, []byte) {
	key, ok := v.keys[device]
	if !ok {
		if v.required {
			return Result{Outcome: BadSignature, Reason: ReasonBadSignature,
				Detail: "device " + device + " has no key in ingest.signatures.key_file and signatures are required"}, nil
		}
		return Result{Outcome: Unsigned}, nil
	}
	signed, sig, found := Split(payload)
	if !found {
		return Result{Outcome: BadSignature, Reason: ReasonBadSignature,
			Detail: `no signature: the payload must end with ,"sig":"<64 hex digits>"}`}, nil
	}
	if !hmac.Equal(sig, Sum(key, topic, signed)) {
		return Result{Outcome: BadSignature, Reason: ReasonBadSignature,
			Detail: "signature does not match the payload, topic and the device's key"}, nil
	}
	return Result{Outcome: Valid}, sig
}

func (v *Verifier) check(topic string, payload []byte, device string, seq int64) Result {
	r, sig := v.verify(topic, payload, device)
	if r.Outcome != Valid {
		return r
	}
	var tag [8]byte
	copy(tag[:], sig)
	st := v.devs[device]
	if st == nil {
		st = &devState{max: -1}
		if a, ok := v.ackedOf(device, v.keys[device]); ok {
			st.max = a
		}
		v.devs[device] = st
	}
	st.lastSeq, st.lastTag = -1, tag
	if v.takeOwed(device, seq, tag) {
		st.lastSeq = seq
		st.slots[seq%Window] = slot{seq: seq, tag: tag, used: true}
		return Result{Outcome: Valid}
	}
	if seq > st.max {
		// Slots of older seqs are overwritten as seqs advance; one that
		// survives still names exactly one accepted message (by seq and
		// tag), so it needs no clearing.
		st.max = seq
		st.lastSeq = seq
		st.slots[seq%Window] = slot{seq: seq, tag: tag, used: true}
		return Result{Outcome: Valid}
	}
	if s := st.slots[seq%Window]; s.used && s.seq == seq {
		if s.tag == tag {
			return Result{Outcome: Duplicate}
		}
		return Result{Outcome: Replayed, Reason: ReasonReplayed,
			Detail: "seq " + strconv.FormatInt(seq, 10) + " was accepted before with another signature"}
	}
	return Result{Outcome: Replayed, Reason: ReasonReplayed,
		Detail: "seq " + strconv.FormatInt(seq, 10) + " is not above the highest accepted seq " + strconv.FormatInt(st.max, 10) +
			" of device " + device + " (a device that restarts its counter needs a new key)"}
}

// Owe records that device's message of seq, which Check has just taken as
// Valid, was then rejected whole (over the device's budget): the same
// message, published again from its dead letter, is accepted once, not
// refused as a replay, also after a restart (it is saved with the marks).
func (v *Verifier) Owe(device string, seq int64) {
	st := v.devs[device]
	if st == nil || st.lastSeq != seq {
		return
	}
	key, ok := v.keys[device]
	if !ok {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	a := v.acked[device]
	if fp := fingerprint(key); a.Key != fp {
		a = ackedSeq{Seq: -1, Key: fp}
	}
	if len(a.Owed) >= maxOwed {
		a.Owed = a.Owed[1:]
	}
	a.Owed = append(a.Owed, owedSeq{Seq: seq, Tag: hex.EncodeToString(st.lastTag[:])})
	v.acked[device] = a
	// The slot would take the copy for a redelivery of an accepted one.
	if sl := &st.slots[seq%Window]; sl.used && sl.seq == seq {
		*sl = slot{}
	}
}

// takeOwed reports whether device's message of seq and tag was owed, and
// if so takes it off the list.
func (v *Verifier) takeOwed(device string, seq int64, tag [8]byte) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	a, ok := v.acked[device]
	if !ok || len(a.Owed) == 0 || a.Key != fingerprint(v.keys[device]) {
		return false
	}
	want := hex.EncodeToString(tag[:])
	for i, o := range a.Owed {
		if o.Seq == seq && o.Tag == want {
			a.Owed = append(a.Owed[:i:i], a.Owed[i+1:]...)
			v.acked[device] = a
			return true
		}
	}
	return false
}

// Acked records that the message of device with seq, accepted by Check as
// Valid or Duplicate, was acknowledged: the persisted high-water mark.
func (v *Verifier) Acked(device string, seq int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	key, ok := v.keys[device]
	if !ok {
		return
	}
	fp := fingerprint(key)
	switch a, ok := v.acked[device]; {
	case !ok || a.Key != fp:
		v.acked[device] = ackedSeq{Seq: seq, Key: fp}
	case seq > a.Seq:
		a.Seq = seq
		v.acked[device] = a
	}
}

func (v *Verifier) ackedOf(device string, key []byte) (int64, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	a, ok := v.acked[device]
	if !ok || a.Key != fingerprint(key) {
		return 0, false
	}
	return a.Seq, true
}

// SetKeys replaces the keys (reload). A device whose key changed or went
// starts afresh: its new key may come with a new counter.
func (v *Verifier) SetKeys(keys Keys) {
	for dev := range v.devs {
		if !bytes.Equal(v.keys[dev], keys[dev]) {
			delete(v.devs, dev)
		}
	}
	v.mu.Lock() // Acked reads keys from other goroutines
	v.keys = keys
	v.mu.Unlock()
}

// Applies reports whether messages of device must be signed: it has a key,
// or every device must.
func (v *Verifier) Applies(device string) bool {
	_, ok := v.keys[device]
	return ok || v.required
}

// Keys returns the keys in use.
func (v *Verifier) Keys() Keys { return v.keys }

// Required reports whether every device must sign.
func (v *Verifier) Required() bool { return v.required }

// fingerprint names a key without revealing it.
func fingerprint(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("fenceline devicesig state"))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// MarshalState returns the acknowledged high-water marks.
func (v *Verifier) MarshalState() ([]byte, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return json.Marshal(struct {
		Version int                 `json:"version"`
		Devices map[string]ackedSeq `json:"devices"`
	}{1, v.acked})
}

// UnmarshalState restores high-water marks saved by MarshalState; call it
// before the first Check. Marks saved under another key are ignored when
// checked.
func (v *Verifier) UnmarshalState(data []byte) error {
	var s struct {
		Version int                 `json:"version"`
		Devices map[string]ackedSeq `json:"devices"`
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("signature state: %w", err)
	}
	if s.Version != 1 {
		return fmt.Errorf("signature state: version %d, want 1", s.Version)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for dev, a := range s.Devices {
		v.acked[dev] = a
	}
	return nil
}
