package daemon

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/ingest/deadletter"
)

// PrintDeadLetters writes the dead letters under cfg's storage.dir to w as
// JSON lines, oldest first, filtered by receive time and reason.
func PrintDeadLetters(cfg *config.Config, since time.Time, reason string, limit int, w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	dir := filepath.Join(cfg.Storage.Dir, "deadletter")
	err := deadletter.Read(dir, deadletter.Filter{Since: since, Reason: reason, Limit: limit}, func(r deadletter.Record) error {
		return enc.Encode(r)
	})
	if err != nil {
		return fmt.Errorf("reading dead letters in %s: %w", dir, err)
	}
	return nil
}
