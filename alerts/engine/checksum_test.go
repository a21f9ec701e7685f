package engine

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// withoutChecksum is data, a save, as it was before the checksum was added
// to it (a save of an older fenceline).
func withoutChecksum(t *testing.T, data []byte) []byte {
	t.Helper()
	require.NoError(t, checkSaved(data))
	i := bytes.LastIndex(data, []byte(checksumKey))
	require.GreaterOrEqual(t, i, 0, "a save ends with its checksum")
	return append(bytes.Clone(data[:i]), '}')
}

// A save whose content changed since it was written — a flipped digit that
// leaves the JSON readable — is refused, so that the daemon restores the
// previous save rather than a state that never was; a save without a
// checksum (older fenceline) restores as before.
func TestStateChecksum(t *testing.T) {
	saved, err := goldenState(t).MarshalState()
	require.NoError(t, err)
	i := bytes.LastIndex(saved, []byte(checksumKey))
	require.Greater(t, i, 0)
	sum := string(saved[i+len(checksumKey) : len(saved)-2])
	otherSum := "0" + sum[1:]
	if otherSum == sum {
		otherSum = "1" + sum[1:]
	}
	edit := func(old, new string) []byte {
		require.Contains(t, string(saved), old)
		return []byte(strings.Replace(string(saved), old, new, 1))
	}

	for _, tc := range []struct {
		name string
		data []byte
		err  string // "": restored
	}{
		{"as saved", saved, ""},
		{"an older save, without a checksum", withoutChecksum(t, saved), ""},
		{"a time's digit flipped", edit("21:41:00+08:00", "21:42:00+08:00"), "does not match its checksum"},
		{"a seq's digit flipped", edit(`"seq":2,`, `"seq":3,`), "does not match its checksum"},
		{"the checksum's digit flipped", edit(sum, otherSum), "does not match its checksum"},
		{"the checksum cut short", append(bytes.Clone(saved[:len(saved)-5]), `"}`...), "is not one fenceline writes"},
		{"a line added at the end", append(bytes.Clone(saved), '\n'), "is not one fenceline writes"},
		{"the checksum not hex", edit(sum, "zzzzzzzz"), "is not one fenceline writes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := goldenEngine(t)
			_, err := e.RestoreState(tc.data)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				assert.Contains(t, err.Error(), "alert engine state damaged")
				return
			}
			require.NoError(t, err)
			again, err := e.MarshalState()
			require.NoError(t, err)
			assert.Equal(t, string(saved), string(again), "restored, then saved again")
		})
	}
}
