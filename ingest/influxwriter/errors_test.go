package influxwriter

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestLogSafe(t *testing.T) {
	for _, tc := range []struct {
		name, msg, want string
	}{
		{"type conflict names fields, not values: kept",
			`partial write: field type conflict: input field "rssi" on measurement "phone_detection" is type integer, already exists as type float dropped=1`,
			`partial write: field type conflict: input field "rssi" on measurement "phone_detection" is type integer, already exists as type float dropped=1`},
		{"a parse error's line is withheld",
			`unable to parse 'phone_detection,site=mdl imsi="460001234567890",rssi=-70 1764170000000000000': invalid number`,
			`unable to parse '<line withheld from the log>': invalid number`},
		{"a line holding quotes is withheld whole",
			`partial write: unable to parse 'vehicle_pass,site=mdl plate="蒙B7K3Q2",image="it's: here" 1': bad timestamp dropped=1`,
			`partial write: unable to parse '<line withheld from the log>': bad timestamp dropped=1`},
		{"cut short", `unable to parse 'phone_detection,site=mdl imsi="4600`, `unable to parse '<line withheld from the log>'`},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := logSafe(tc.msg)
			assert.Equal(t, tc.want, got)
			assert.NotContains(t, got, "460001234567890")
			assert.NotContains(t, got, "蒙B7K3Q2")
		})
	}
}
