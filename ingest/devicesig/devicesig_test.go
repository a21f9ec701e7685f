package devicesig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

const topic = "border/mdl/fence/F-AOL-01/detections"

var key = mustHex("8f1c2a0e9b7d4c3a8f1c2a0e9b7d4c3a11223344556677889900aabbccddeeff")

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func body(seq int) []byte {
	return fmt.Appendf(nil, `{"v":1,"seq":%d,"ts":1795741804120,"detections":[{"imsi":"460001234567890"}]}`, seq)
}

// TestSignatureDefinition computes the documented signature by hand: the
// HMAC of topic, newline and the payload without the member.
func TestSignatureDefinition(t *testing.T) {
	b := body(1)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(topic + "\n"))
	m.Write(b)
	want := strings.TrimSuffix(string(b), "}") + `,"sig":"` + hex.EncodeToString(m.Sum(nil)) + `"}`
	require.Equal(t, want, string(Sign(key, topic, b)))

	signed, sig, ok := Split([]byte(want))
	require.True(t, ok)
	require.Equal(t, string(b), string(signed))
	require.Equal(t, m.Sum(nil), sig)
}

func TestSplit(t *testing.T) {
	sig := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name    string
		payload string
		signed  string // "" when no signature is found
	}{
		{name: "last member", payload: `{"v":1,"sig":"` + sig + `"}`, signed: `{"v":1}`},
		{name: "upper-case hex", payload: `{"v":1,"sig":"` + strings.ToUpper(sig) + `"}`, signed: `{"v":1}`},
		{name: "trailing newline kept in signed bytes", payload: `{"v":1,"sig":"` + sig + "\"}\n", signed: "{\"v\":1}\n"},
		{name: "no signature", payload: `{"v":1}`},
		{name: "not last", payload: `{"sig":"` + sig + `","v":1}`},
		{name: "whitespace inside the member", payload: `{"v":1, "sig": "` + sig + `"}`},
		{name: "short signature", payload: `{"v":1,"sig":"` + sig[:62] + `"}`},
		{name: "not hex", payload: `{"v":1,"sig":"` + strings.Repeat("zz", 32) + `"}`},
		{name: "empty", payload: ``},
		{name: "just the member", payload: `,"sig":"` + sig + `"}`, signed: `}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			signed, _, ok := Split([]byte(tc.payload))
			require.Equal(t, tc.signed != "", ok)
			require.Equal(t, tc.signed, string(signed))
		})
	}
}

func TestParseKeys(t *testing.T) {
	k := hex.EncodeToString(key)
	for _, tc := range []struct {
		name string
		file string
		n    int
		err  string
	}{
		{name: "keys, comments and blanks", file: "# units of mdl\nF-AOL-01:" + k + "\n\n  CP-07 : " + strings.ToUpper(k) + "  \n", n: 2},
		{name: "no colon", file: "F-AOL-01 " + k, err: "line 1: want device-id:hex-key"},
		{name: "bad id", file: "F AOL:" + k, err: "line 1: device id must match"},
		{name: "twice", file: "A:" + k + "\nA:" + k, err: "line 2: its device is listed at line 1 already"},
		{name: "not hex", file: "A:" + k[:30] + "zz", err: "line 1: its key is not hex"},
		{name: "short", file: "A:00112233", err: "line 1: its key has 4 bytes, want 16-64"},
		{name: "no key at all", file: "\n# all devices removed\n", err: "holds no device key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ks, err := ParseKeys(strings.NewReader(tc.file))
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				require.NotContains(t, err.Error(), k[:30], "never the key")
				return
			}
			require.NoError(t, err)
			require.Len(t, ks, tc.n)
			require.Equal(t, key, ks["CP-07"])
		})
	}
	_, err := LoadKeys(filepath.Join(t.TempDir(), "none"))
	require.ErrorContains(t, err, "cannot open")
}

func TestCheck(t *testing.T) {
	other := mustHex("00112233445566778899aabbccddeeff")
	signed := func(seq int) []byte { return Sign(key, topic, body(seq)) }
	type step struct {
		device  string
		topic   string
		payload []byte
		seq     int64
		want    Outcome
		detail  string
	}
	for _, tc := range []struct {
		name     string
		required bool
		steps    []step
	}{
		{name: "signed messages in order", steps: []step{
			{payload: signed(1), seq: 1, want: Valid},
			{payload: signed(2), seq: 2, want: Valid},
			{payload: signed(10), seq: 10, want: Valid}, // a gap is not a replay
		}},
		{name: "redelivery of an accepted message is a duplicate", steps: []step{
			{payload: signed(1), seq: 1, want: Valid},
			{payload: signed(2), seq: 2, want: Valid},
			{payload: signed(1), seq: 1, want: Duplicate},
			{payload: signed(2), seq: 2, want: Duplicate},
		}},
		{name: "older seq never accepted is replayed", steps: []step{
			{payload: signed(5), seq: 5, want: Valid},
			{payload: signed(4), seq: 4, want: Replayed, detail: "seq 4 is not above the highest accepted seq 5"},
		}},
		{name: "same seq with other content is replayed", steps: []step{
			{payload: signed(5), seq: 5, want: Valid},
			{payload: Sign(key, topic, []byte(`{"v":1,"seq":5,"ts":1795741804999,"detections":[]}`)), seq: 5, want: Replayed, detail: "accepted before with another signature"},
		}},
		{name: "unsigned from a keyed device", steps: []step{
			{payload: body(1), seq: 1, want: BadSignature, detail: "no signature"},
		}},
		{name: "tampered payload", steps: []step{
			{payload: []byte(strings.Replace(string(signed(1)), "460001234567890", "460001234567891", 1)), seq: 1, want: BadSignature, detail: "does not match"},
		}},
		{name: "signed with another key", steps: []step{
			{payload: Sign(other, topic, body(1)), seq: 1, want: BadSignature},
		}},
		{name: "moved to another stream of the same device", steps: []step{
			{topic: "border/mdl/fence/F-AOL-01/status", payload: signed(1), seq: 1, want: BadSignature},
		}},
		{name: "another device's message on this device's topic", steps: []step{
			{payload: Sign(other, "border/mdl/fence/F-EPH-01/detections", body(1)), seq: 1, want: BadSignature},
		}},
		{name: "a bad signature does not advance the seq", steps: []step{
			{payload: Sign(other, topic, body(100)), seq: 100, want: BadSignature},
			{payload: signed(1), seq: 1, want: Valid},
		}},
		{name: "device without key, not required", steps: []step{
			{device: "CP-07", payload: body(1), seq: 1, want: Unsigned},
		}},
		{name: "device without key, required", required: true, steps: []step{
			{device: "CP-07", payload: Sign(key, topic, body(1)), seq: 1, want: BadSignature, detail: "has no key"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			v := New(Keys{"F-AOL-01": key}, tc.required, reg)
			for i, s := range tc.steps {
				if s.device == "" {
					s.device = "F-AOL-01"
				}
				if s.topic == "" {
					s.topic = topic
				}
				r := v.Check(s.topic, s.payload, s.device, s.seq)
				require.Equal(t, s.want.String(), r.Outcome.String(), "step %d: %s", i, r.Detail)
				require.Equal(t, s.want == Valid || s.want == Duplicate || s.want == Unsigned, r.Accepted())
				if !r.Accepted() {
					require.Equal(t, s.want.String(), r.Reason)
				}
				require.Contains(t, r.Detail, s.detail)
				require.NotContains(t, r.Detail, hex.EncodeToString(key)[:16])
			}
			require.Equal(t, float64(len(tc.steps)), checksCounted(v), "every check is counted once")
		})
	}
}

func checksCounted(v *Verifier) float64 {
	var n float64
	for _, name := range outcomeNames {
		n += testutil.ToFloat64(v.checks.WithLabelValues(name))
	}
	return n
}

// TestStateSurvivesRestart: the acknowledged high-water mark is kept, so a
// message captured before a restart cannot be replayed after it; a new key
// starts the device afresh.
func TestStateSurvivesRestart(t *testing.T) {
	v := New(Keys{"F-AOL-01": key}, true, prometheus.NewRegistry())
	for seq := 1; seq <= 3; seq++ {
		require.Equal(t, Valid, v.Check(topic, Sign(key, topic, body(seq)), "F-AOL-01", int64(seq)).Outcome)
		v.Acked("F-AOL-01", int64(seq))
	}
	// Seq 4 checked but not acked when the daemon stops: it is redelivered.
	require.Equal(t, Valid, v.Check(topic, Sign(key, topic, body(4)), "F-AOL-01", 4).Outcome)
	data, err := v.MarshalState()
	require.NoError(t, err)
	require.NotContains(t, string(data), hex.EncodeToString(key)[:16], "the state names keys by fingerprint only")

	after := New(Keys{"F-AOL-01": key}, true, prometheus.NewRegistry())
	require.NoError(t, after.UnmarshalState(data))
	require.Equal(t, Replayed, after.Check(topic, Sign(key, topic, body(2)), "F-AOL-01", 2).Outcome, "acked before the restart")
	require.Equal(t, Valid, after.Check(topic, Sign(key, topic, body(4)), "F-AOL-01", 4).Outcome, "the unacked message is redelivered and taken")

	newKey := mustHex("ffeeddccbbaa99887766554433221100")
	rekeyed := New(Keys{"F-AOL-01": newKey}, true, prometheus.NewRegistry())
	require.NoError(t, rekeyed.UnmarshalState(data))
	require.Equal(t, Valid, rekeyed.Check(topic, Sign(newKey, topic, body(1)), "F-AOL-01", 1).Outcome, "a new key restarts the counter")

	require.Error(t, after.UnmarshalState([]byte(`{"version":2}`)))
	require.Error(t, after.UnmarshalState([]byte(`nope`)))
}

// A validly signed message the pipeline rejected whole after its check
// (over its device's budget) is owed: its copy, published again from its
// dead letter, is accepted once — also after a restart, and after later
// messages moved the device's seq on — counted valid, not a duplicate; a
// second copy, or a copy with another signature, is a replay.
func TestOwedMessageAcceptedOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	v := New(Keys{"F-AOL-01": key}, true, reg)
	for seq := 1; seq <= 3; seq++ {
		require.Equal(t, Valid, v.Check(topic, Sign(key, topic, body(seq)), "F-AOL-01", int64(seq)).Outcome)
		v.Acked("F-AOL-01", int64(seq))
	}
	require.Equal(t, Valid, v.Check(topic, Sign(key, topic, body(4)), "F-AOL-01", 4).Outcome)
	v.Owe("F-AOL-01", 4) // over budget: dead-lettered, then acked
	v.Acked("F-AOL-01", 4)
	for seq := 5; seq <= 6; seq++ { // the device goes on
		require.Equal(t, Valid, v.Check(topic, Sign(key, topic, body(seq)), "F-AOL-01", int64(seq)).Outcome)
		v.Acked("F-AOL-01", int64(seq))
	}
	data, err := v.MarshalState()
	require.NoError(t, err)

	after := New(Keys{"F-AOL-01": key}, true, prometheus.NewRegistry())
	require.NoError(t, after.UnmarshalState(data))
	other := Sign(key, topic, []byte(`{"v":1,"seq":4,"ts":1,"other":true}`))
	require.Equal(t, Replayed, after.Check(topic, other, "F-AOL-01", 4).Outcome, "another message at the owed seq")
	require.Equal(t, Valid, after.Check(topic, Sign(key, topic, body(4)), "F-AOL-01", 4).Outcome, "the owed message, once")
	after.Acked("F-AOL-01", 4)
	require.Equal(t, Duplicate, after.Check(topic, Sign(key, topic, body(4)), "F-AOL-01", 4).Outcome, "its redelivery")
	again := New(Keys{"F-AOL-01": key}, true, prometheus.NewRegistry())
	data, err = after.MarshalState()
	require.NoError(t, err)
	require.NoError(t, again.UnmarshalState(data))
	require.Equal(t, Replayed, again.Check(topic, Sign(key, topic, body(4)), "F-AOL-01", 4).Outcome, "owed once only")
	require.Equal(t, Valid, again.Check(topic, Sign(key, topic, body(7)), "F-AOL-01", 7).Outcome, "the high-water mark was kept")

	// Within one run too (no restart): the copy is valid, not a duplicate.
	v.Owe("F-AOL-01", 6) // not the message just checked: nothing owed
	require.Equal(t, Valid, v.Check(topic, Sign(key, topic, body(7)), "F-AOL-01", 7).Outcome)
	v.Owe("F-AOL-01", 7)
	require.Equal(t, Valid, v.Check(topic, Sign(key, topic, body(7)), "F-AOL-01", 7).Outcome)
	require.Equal(t, Duplicate, v.Check(topic, Sign(key, topic, body(7)), "F-AOL-01", 7).Outcome)
}

// A copy of an accepted message (the broker's retained copy) has its
// signature checked, not its seq: valid, it is a duplicate; forged, it is
// refused as any message is.
func TestCheckCopy(t *testing.T) {
	v := New(Keys{"F-AOL-01": key}, true, prometheus.NewRegistry())
	require.Equal(t, Valid, v.Check(topic, Sign(key, topic, body(5)), "F-AOL-01", 5).Outcome)
	require.Equal(t, Duplicate, v.CheckCopy(topic, Sign(key, topic, body(5)), "F-AOL-01").Outcome)
	forged := v.CheckCopy(topic, Sign(mustHex("00112233445566778899aabbccddeeff"), topic, body(5)), "F-AOL-01")
	require.Equal(t, BadSignature, forged.Outcome)
	require.Equal(t, ReasonBadSignature, forged.Reason)
	require.Equal(t, BadSignature, v.CheckCopy(topic, body(5), "F-AOL-01").Outcome, "unsigned")
}

func TestSetKeys(t *testing.T) {
	v := New(Keys{"F-AOL-01": key, "CP-07": key}, true, prometheus.NewRegistry())
	require.Equal(t, Valid, v.Check(topic, Sign(key, topic, body(9)), "F-AOL-01", 9).Outcome)
	cpTopic := "border/mdl/checkpoint/CP-07/status"
	require.Equal(t, Valid, v.Check(cpTopic, Sign(key, cpTopic, body(9)), "CP-07", 9).Outcome)
	newKey := mustHex("ffeeddccbbaa99887766554433221100")
	v.SetKeys(Keys{"F-AOL-01": newKey, "CP-07": key})
	require.Equal(t, BadSignature, v.Check(topic, Sign(key, topic, body(10)), "F-AOL-01", 10).Outcome, "the old key is gone")
	require.Equal(t, Valid, v.Check(topic, Sign(newKey, topic, body(1)), "F-AOL-01", 1).Outcome, "the new key starts afresh")
	require.Equal(t, Replayed, v.Check(cpTopic, Sign(key, cpTopic, body(8)), "CP-07", 8).Outcome, "an unchanged key keeps its state")
}

func TestLoadKeysFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "devices.keys")
	require.NoError(t, os.WriteFile(p, []byte("F-AOL-01:"+hex.EncodeToString(key)+"\nbroken line\n"), 0o600))
	_, err := LoadKeys(p)
	require.ErrorContains(t, err, p+": line 2: want device-id:hex-key")
}

// A token's file named as the key file (user:password) is refused without
// its text: lines are named by number.
func TestParseKeysDoesNotPrintALine(t *testing.T) {
	for _, text := range []string{"Tok3nUser:Tok3nPassw0rd", "Tok3n:", "Tok3n: x"} {
		_, err := ParseKeys(strings.NewReader(text + "\n"))
		require.ErrorContains(t, err, "line 1: ")
		require.NotContains(t, err.Error(), "Tok3n", text)
	}
}

// A key file that is no regular file is refused, not read: a FIFO would
// hold the start for ever, /dev/zero never ends.
func TestLoadKeysOnlyARegularFile(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "devices.keys")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	for _, p := range []string{fifo, "/dev/zero", t.TempDir()} {
		_, err := LoadKeys(p)
		require.ErrorContains(t, err, "cannot open "+p+": is not a regular file")
	}
}

// Every bad line is reported, each with the file, not just the first.
func TestLoadKeysEveryProblem(t *testing.T) {
	k := hex.EncodeToString(key)
	p := filepath.Join(t.TempDir(), "devices.keys")
	require.NoError(t, os.WriteFile(p, []byte("A:"+k[:30]+"zz\nbroken line\nB:00112233\nC:"+k+"\nC:"+k+"\n"), 0o600))
	_, err := LoadKeys(p)
	require.Error(t, err)
	require.Equal(t, []string{
		p + ": line 1: its key is not hex",
		p + ": line 2: want device-id:hex-key",
		p + ": line 3: its key has 4 bytes, want 16-64",
		p + ": line 5: its device is listed at line 4 already",
	}, strings.Split(err.Error(), "\n"))
}

func FuzzSplit(f *testing.F) {
	f.Add([]byte(`{"v":1,"sig":"` + strings.Repeat("ab", 32) + `"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, p []byte) {
		signed, sig, ok := Split(p)
		if !ok {
			return
		}
		if len(sig) != sha256.Size {
			t.Fatalf("signature of %d bytes", len(sig))
		}
		if len(signed) != len(p)-len(sigMember)-sigHexLen-1 {
			t.Fatalf("signed part %q of %q", signed, p)
		}
	})
}

// A key written where the key file's path belongs is not printed back.
func TestLoadKeysDoesNotPrintAKeyForItsPath(t *testing.T) {
	_, err := LoadKeys(filepath.Join(t.TempDir(), "CP-07:2cb3f7e2a91d8a8f289c8f0ac62add1e"))
	require.Error(t, err)
	require.Contains(t, err.Error(), "its name not shown")
	require.NotContains(t, err.Error(), "2cb3f7e2")
}
