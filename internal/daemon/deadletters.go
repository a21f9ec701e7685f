package daemon

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/ingest/deadletter"
	"github.com/fenceline/fenceline/ingest/pipeline"
)

// deadLetterLine is one line of `fenceline deadletters`: the payload as text
// when it is UTF-8 (the contract's payloads are), else base64 in payload_b64.
type deadLetterLine struct {
	Received   time.Time `json:"received"`
	Topic      string    `json:"topic"`
	Reason     string    `json:"reason"`
	Detail     string    `json:"detail"`
	Index      int       `json:"index"` // the rejected reading; -1: the whole message
	Payload    *string   `json:"payload,omitempty"`
	PayloadB64 string    `json:"payload_b64,omitempty"`
}

// CheckDeadLetterReason refuses a --reason no dead letter can have ("" is
// every reason).
func CheckDeadLetterReason(reason string) error {
	if reasons := pipeline.Reasons(); reason != "" && !slices.Contains(reasons, reason) {
		slices.Sort(reasons)
		return fmt.Errorf("unknown --reason %q; the reasons are %s", reason, strings.Join(reasons, ", "))
	}
	return nil
}

// PrintDeadLetters writes the dead letters under cfg's storage.dir to w as
// JSON lines, oldest first, filtered by receive time and reason.
func PrintDeadLetters(cfg *config.Config, since time.Time, reason string, limit int, w io.Writer) error {
	if err := CheckDeadLetterReason(reason); err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	dir := filepath.Join(cfg.Storage.Dir, "deadletter")
	err := deadletter.Read(dir, deadletter.Filter{Since: since, Reason: reason, Limit: limit}, func(r deadletter.Record) error {
		line := deadLetterLine{Received: r.Received, Topic: r.Topic, Reason: r.Reason, Detail: r.Detail, Index: r.Index}
		if utf8.Valid(r.Payload) {
			s := string(r.Payload)
			line.Payload = &s
		} else {
			line.PayloadB64 = base64.StdEncoding.EncodeToString(r.Payload)
		}
		return enc.Encode(line)
	})
	if err != nil {
		return fmt.Errorf("reading dead letters in %s: %w", dir, err)
	}
	return nil
}
