package protect

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/internal/model"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// reference is the documented definition, computed independently.
func reference(key []byte, kind, value string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(kind + ":" + value))
	return hex.EncodeToString(m.Sum(nil))[:32]
}

func TestHashMatchesDefinition(t *testing.T) {
	h, err := NewHasher(testKey)
	require.NoError(t, err)
	for _, tc := range []struct{ name, kind, value string }{
		{"imsi", "imsi", "460001234567890"},
		{"imei", "imei", "490154203237518"},
		{"mac", "mac", "a4:5e:60:12:34:56"},
		{"plate", "plate", "蒙B12345"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := h.Hash(tc.kind, tc.value)
			require.Equal(t, reference(testKey, tc.kind, tc.value), got)
			require.Len(t, got, HashHexLen)
			require.Equal(t, got, h.Hash(tc.kind, tc.value), "stable")
		})
	}
	require.NotEqual(t, h.Hash("imsi", "490154203237518"), h.Hash("imei", "490154203237518"), "kinds are kept apart")
	require.Equal(t, "", h.Hash("imsi", ""), "absent stays absent")
	// A plate is hashed without its separators, as the rules compare it:
	// the ways of writing one plate are one vehicle to a dashboard too.
	for _, written := range []string{"蒙B-9X8Y7", "蒙B 9X8Y7", "蒙B·9X8Y7"} {
		require.Equal(t, reference(testKey, "plate", "蒙B9X8Y7"), h.Hash("plate", written), written)
	}
	other, err := NewHasher([]byte("another key, also long enough"))
	require.NoError(t, err)
	require.NotEqual(t, h.Hash("imsi", "460001234567890"), other.Hash("imsi", "460001234567890"), "keyed")
}

func TestNewHasherRefusesShortKey(t *testing.T) {
	_, err := NewHasher([]byte("short"))
	require.ErrorContains(t, err, "at least 16")
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		content string
		err     string
	}{
		{name: "hex key with newline", content: "8f1c2a0e9b7d4c3a8f1c2a0e9b7d4c3a\n"},
		{name: "too short", content: "secret\n", err: "holds 6 bytes, want at least 16"},
		{name: "missing", err: "cannot open"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			if tc.content != "" {
				require.NoError(t, os.WriteFile(p, []byte(tc.content), 0o600))
			}
			k, err := LoadKey(p)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				if tc.content != "" {
					require.NotContains(t, err.Error(), "secret", "never the content")
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, "8f1c2a0e9b7d4c3a8f1c2a0e9b7d4c3a", string(k))
		})
	}
}

func TestBatch(t *testing.T) {
	batch := func() *model.Batch {
		return &model.Batch{
			Detections: []model.Detection{{IMSI: "460001234567890", IMEI: "490154203237518", MAC: "a4:5e:60:12:34:56",
				MCC: "460", MNC: "00", Operator: "46000"}, {IMSI: "428991234567890"}},
			Passes: []model.Pass{{Plate: "蒙B12345", PlateColor: "blue"}, {Plate: model.NoPlate}},
		}
	}
	for _, tc := range []struct {
		name          string
		opts          Options
		hashedIDs     bool
		hashedPlates  bool
		storesHashed  bool
		alertsEnabled bool
	}{
		{name: "off", opts: Options{}},
		{name: "identifiers only", opts: Options{Identifiers: true}, hashedIDs: true, storesHashed: true},
		{name: "plates only", opts: Options{Plates: true}, hashedPlates: true, storesHashed: true},
		{name: "both", opts: Options{Identifiers: true, Plates: true}, hashedIDs: true, hashedPlates: true, storesHashed: true},
		{name: "alerts only", opts: Options{AlertSubjects: SubjectsHashed}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(tc.opts, testKey)
			require.NoError(t, err)
			require.Equal(t, tc.storesHashed, p.StoresHashed())
			b := batch()
			p.Batch(b)
			d := b.Detections[0]
			if tc.hashedIDs {
				require.Equal(t, reference(testKey, "imsi", "460001234567890"), d.IMSI)
				require.Equal(t, reference(testKey, "imei", "490154203237518"), d.IMEI)
				require.Equal(t, reference(testKey, "mac", "a4:5e:60:12:34:56"), d.MAC)
				require.Equal(t, reference(testKey, "imsi", "428991234567890"), b.Detections[1].IMSI)
				require.Equal(t, "", b.Detections[1].IMEI)
			} else {
				require.Equal(t, "460001234567890", d.IMSI)
			}
			require.Equal(t, "46000", d.Operator, "operator is not personal")
			require.Equal(t, "460", d.MCC)
			if tc.hashedPlates {
				require.Equal(t, reference(testKey, "plate", "蒙B12345"), b.Passes[0].Plate)
			} else {
				require.Equal(t, "蒙B12345", b.Passes[0].Plate)
			}
			require.Equal(t, model.NoPlate, b.Passes[1].Plate, "an unread plate is not personal")
			require.Equal(t, "blue", b.Passes[0].PlateColor)
		})
	}
}

func TestAlerts(t *testing.T) {
	alert := func(kind, value string) *model.Alert {
		return &model.Alert{ID: "0123456789abcdef0123456789abcdef", Rule: "r", Subject: model.Subject{Kind: kind, Value: value},
			Summary: "Phone IMSI " + value + " (Mongolia, MCC 428) at the border"}
	}
	const imsi = "428991234567890"
	for _, tc := range []struct {
		name       string
		opts       Options
		kind       string
		storedHash bool
		sentHash   bool
	}{
		{name: "off", opts: Options{}, kind: "imsi"},
		{name: "stored hashed, sent raw (default)", opts: Options{Identifiers: true}, kind: "imsi", storedHash: true},
		{name: "stored and sent hashed", opts: Options{Identifiers: true, AlertSubjects: SubjectsHashed}, kind: "imsi", storedHash: true, sentHash: true},
		{name: "plates switch does not hash imsi", opts: Options{Plates: true}, kind: "imsi"},
		{name: "sent hashed although stored raw", opts: Options{AlertSubjects: SubjectsHashed}, kind: "imei", sentHash: true},
		{name: "devices are not personal", opts: Options{Identifiers: true, Plates: true, AlertSubjects: SubjectsHashed}, kind: "device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(tc.opts, testKey)
			require.NoError(t, err)
			a := alert(tc.kind, imsi)
			orig := *a
			// One id per incident wherever it is read: keyed for every
			// sink once any of them hashes the subject.
			idKeyed := tc.storedHash || tc.sentHash
			check := func(got *model.Alert, hashed bool) {
				t.Helper()
				if !hashed {
					want := orig
					want.ID = got.ID
					require.Equal(t, want, *got, "the subject as it is")
					if idKeyed {
						require.NotEqual(t, orig.ID, got.ID)
						require.Len(t, got.ID, len(orig.ID))
					} else {
						require.Equal(t, orig.ID, got.ID)
					}
					return
				}
				want := reference(testKey, tc.kind, imsi)
				require.Equal(t, want, got.Subject.Value)
				require.Equal(t, "Phone IMSI "+want+" (Mongolia, MCC 428) at the border", got.Summary)
				require.NotContains(t, got.Summary, imsi)
				require.NotEqual(t, orig.ID, got.ID, "the id is derived from the raw subject")
				require.Len(t, got.ID, len(orig.ID))
			}
			stored, sent := p.StoredAlert(a), p.SentAlert(a)
			check(stored, tc.storedHash)
			check(sent, tc.sentHash)
			require.Equal(t, stored.ID, sent.ID, "the same id in the alert measurement and on MQTT and webhooks")
			require.Equal(t, sent.ID, p.AlertID(a), "the log names it by that id")
			require.Equal(t, orig, *a, "the shared alert is not modified")
		})
	}
	p, err := New(Options{Identifiers: true}, testKey)
	require.NoError(t, err)
	a1, a2 := alert("imsi", imsi), alert("imsi", imsi)
	a2.State = model.StateResolved
	require.Equal(t, p.StoredAlert(a1).ID, p.StoredAlert(a2).ID, "firing and resolved keep one id")
}

func TestNewRefusesHashingWithoutKey(t *testing.T) {
	_, err := New(Options{Identifiers: true}, nil)
	require.ErrorContains(t, err, "no key")
	p, err := New(Options{}, nil)
	require.NoError(t, err)
	require.False(t, p.Enabled())
	_, err = New(Options{AlertSubjects: "masked"}, testKey)
	require.Error(t, err)
}
