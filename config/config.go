// Package config holds fenceline's configuration: the daemon file (MQTT,
// InfluxDB, HTTP, storage, webhooks) and the reloadable rules file (devices,
// zones, watchlists, rules). Decoding is strict — an unknown key is an
// error — and every key has its default in Default / DefaultRules.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the daemon configuration file.
type Config struct {
	MQTT      MQTT      `yaml:"mqtt"`
	Influx    Influx    `yaml:"influx"`
	HTTP      HTTP      `yaml:"http"`
	Storage   Storage   `yaml:"storage"`
	RulesFile string    `yaml:"rules_file"`
	Webhooks  []Webhook `yaml:"webhooks"`
	Ingest    Ingest    `yaml:"ingest"`
	Alerts    Alerts    `yaml:"alerts"`
	Privacy   Privacy   `yaml:"privacy"`

	// Path is the file the configuration was read from ("" for defaults);
	// relative paths in it were resolved against its folder.
	Path string `yaml:"-"`

	lines keyLines // where each key stands in Path
}

// Locate fills in the file and line of problems about keys of c, so that
// problems found after loading (files it names) point into it too.
func (c *Config) Locate(ps Problems) Problems {
	for i := range ps {
		if ps[i].File == "" {
			ps[i].File = c.Path
		}
		if ps[i].Line == 0 && ps[i].File == c.Path {
			ps[i].Line = c.lines.of(ps[i].Key)
		}
	}
	return ps
}

// MQTT is the broker connection and subscription.
type MQTT struct {
	Broker       string   `yaml:"broker"`
	ClientID     string   `yaml:"client_id"`
	Username     string   `yaml:"username"`
	PasswordFile string   `yaml:"password_file"`
	TLS          TLS      `yaml:"tls"`
	Topics       []string `yaml:"topics"`
	ShareGroup   string   `yaml:"share_group"`
	// QoS of the subscription (0 or 1).
	QoS            int      `yaml:"qos"`
	KeepAlive      Duration `yaml:"keep_alive"`
	ConnectTimeout Duration `yaml:"connect_timeout"`
	// MaxReconnectInterval caps paho's reconnect backoff.
	MaxReconnectInterval Duration `yaml:"max_reconnect_interval"`
	// Retained says what to do with retained messages: "ingest" (stored
	// once: a retained copy re-sent on resubscribe has the same seq and
	// point times, so it writes nothing new) or "ignore".
	Retained string `yaml:"retained"`
}

// TLS names the files of a TLS client configuration.
type TLS struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked in the server's certificate.
	ServerName string `yaml:"server_name"`
}

// Influx is the InfluxDB connection.
type Influx struct {
	URL       string `yaml:"url"`
	TokenFile string `yaml:"token_file"`
	Org       string `yaml:"org"`
	Bucket    string `yaml:"bucket"`
	// BatchSize is the most lines sent in one write request.
	BatchSize int `yaml:"batch_size"`
	// FlushInterval is the longest a line waits for others to share a request.
	FlushInterval Duration `yaml:"flush_interval"`
	// Concurrency is the number of write requests in flight at once.
	Concurrency int `yaml:"concurrency"`
	// MaxPendingLines bounds the lines buffered in memory: past it, intake
	// stops taking messages from the broker.
	MaxPendingLines int      `yaml:"max_pending_lines"`
	Timeout         Duration `yaml:"timeout"`
	Gzip            bool     `yaml:"gzip"`
	TLS             TLS      `yaml:"tls"`
	// MaxTagValues bounds the distinct values of each tag that holds device
	// text (tech, plate_color, vehicle_type); see ingest/tagcap.
	MaxTagValues int `yaml:"max_tag_values"`
}

// HTTP is the metrics/health/reload listener.
type HTTP struct {
	Listen string `yaml:"listen"`
	// TokenFile holds the bearer token that POST /-/reload (and any other
	// write endpoint) requires. Without it only a loopback listen is
	// allowed: anyone who can reach the port could otherwise reload.
	TokenFile string    `yaml:"token_file"`
	TLS       ServerTLS `yaml:"tls"`
	// Pprof serves Go's profiling endpoints under /debug/pprof/ (behind
	// the bearer token when one is configured): for measuring a live
	// daemon, off by default.
	Pprof bool `yaml:"pprof"`
}

// ServerTLS names the certificate and key of a TLS listener.
type ServerTLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Storage is where fenceline keeps its own durable state.
type Storage struct {
	Dir string `yaml:"dir"`
	// DeadLetterMaxBytes bounds the dead-letter store; the oldest segment
	// is evicted (and counted) past it.
	DeadLetterMaxBytes int64 `yaml:"dead_letter_max_bytes"`
	// SpoolMaxBytes bounds the spool (storage.dir/spool) that holds
	// batches InfluxDB could not take. Past it nothing more is spooled:
	// the writer keeps retrying and intake stops (the broker holds the
	// backlog); nothing is dropped.
	SpoolMaxBytes int64 `yaml:"spool_max_bytes"`
}

// Webhook is one alert receiver.
type Webhook struct {
	URL        string   `yaml:"url"`
	SecretFile string   `yaml:"secret_file"`
	Timeout    Duration `yaml:"timeout"`
	// CAFile verifies an https receiver's certificate instead of the
	// system's roots (a unit's own CA).
	CAFile string `yaml:"ca_file"`
}

// Ingest tunes message intake.
type Ingest struct {
	// MaxInflight bounds the messages taken from the broker but not yet
	// acknowledged; past it the MQTT handler waits (backpressure).
	MaxInflight int `yaml:"max_inflight"`
	// MaxInflightBytes bounds their payload bytes likewise: large payloads
	// (a flood of them from a broken or hostile unit) must not hold
	// MaxInflight × 256 KiB of memory.
	MaxInflightBytes int64 `yaml:"max_inflight_bytes"`
	// MaxPayloadBytes: larger messages are rejected (contract: 256 KiB).
	MaxPayloadBytes int `yaml:"max_payload_bytes"`
	// MaxFuture: readings further ahead of the clock are rejected.
	MaxFuture Duration `yaml:"max_future"`
	// DrainTimeout bounds how long shutdown waits for in-flight writes.
	DrainTimeout Duration `yaml:"drain_timeout"`
	// Signatures checks per-device HMAC signatures in payloads, for
	// brokers that cannot tie a device to its own topics.
	Signatures Signatures `yaml:"signatures"`
	// DeviceBudget bounds what one device may send, so that a unit stuck
	// in a loop cannot take the pipeline from the others.
	DeviceBudget DeviceBudget `yaml:"device_budget"`
}

// DeviceBudget is a per-device token bucket; a rate of 0 is no limit. A
// message over budget is dead-lettered (reason over_budget) with its
// payload, from where an operator can publish it again.
type DeviceBudget struct {
	MessagesPerSecond float64 `yaml:"messages_per_second"`
	MessageBurst      float64 `yaml:"message_burst"`
	ReadingsPerSecond float64 `yaml:"readings_per_second"`
	ReadingBurst      float64 `yaml:"reading_burst"`
}

// Signatures configures device payload signatures (see docs/threat-model.md
// for what is signed).
type Signatures struct {
	// Required: every message must be signed by a device listed in
	// KeyFile. When false, only the devices listed there must sign.
	Required bool `yaml:"required"`
	// KeyFile holds one "device-id:hex-key" a line.
	KeyFile string `yaml:"key_file"`
}

// Privacy controls how personal identifiers leave the process.
type Privacy struct {
	// HashIdentifiers stores IMSI, IMEI and MAC as keyed hashes.
	HashIdentifiers bool `yaml:"hash_identifiers"`
	// HashPlates stores plates as keyed hashes.
	HashPlates bool `yaml:"hash_plates"`
	// KeyFile holds the hash key (at least 16 bytes).
	KeyFile string `yaml:"key_file"`
	// AlertSubjects is what MQTT and webhook alerts carry for a personal
	// subject: "raw" (units must act on it) or "hashed".
	AlertSubjects string `yaml:"alert_subjects"`
}

// Alerts tunes the alert engine.
type Alerts struct {
	// PatrolMaxAge: patrol positions older than this are not offered as
	// nearest patrols.
	PatrolMaxAge Duration `yaml:"patrol_max_age"`
	// NearestPatrols is how many patrols an alert lists.
	NearestPatrols int `yaml:"nearest_patrols"`
	// LateAfter: an alert whose event time is older than this when raised
	// is marked late.
	LateAfter Duration `yaml:"late_after"`
	// EvaluateEvery is the tick of time-driven rules (silence, dwell).
	EvaluateEvery Duration `yaml:"evaluate_every"`
	// MaxPending is how many alerts may wait for delivery before intake
	// waits for the sinks (the broker holding the backlog).
	MaxPending int `yaml:"max_pending"`
	// TopicPrefix is the first level of alert topics:
	// {topic_prefix}/{site}/alerts/{rule}.
	TopicPrefix string `yaml:"topic_prefix"`
	// Timezone is where local times in alert summaries, and schedules
	// without their own tz, are read.
	Timezone string `yaml:"timezone"`
}

// Default returns the configuration every file is decoded over: a key the
// file does not set keeps the value here.
func Default() Config {
	return Config{
		MQTT: MQTT{
			Broker:               "tcp://127.0.0.1:1883",
			ClientID:             "fenceline-1",
			Topics:               []string{"border/+/+/+/+"},
			QoS:                  1,
			KeepAlive:            Duration(30 * time.Second),
			ConnectTimeout:       Duration(10 * time.Second),
			MaxReconnectInterval: Duration(30 * time.Second),
			Retained:             "ingest",
		},
		Influx: Influx{
			URL:             "http://127.0.0.1:8086",
			Bucket:          "border/autogen",
			BatchSize:       5000,
			FlushInterval:   Duration(100 * time.Millisecond),
			Concurrency:     2,
			MaxPendingLines: 50000,
			Timeout:         Duration(10 * time.Second),
			MaxTagValues:    256,
		},
		HTTP:      HTTP{Listen: "127.0.0.1:9464"},
		Storage:   Storage{Dir: "/var/lib/fenceline", DeadLetterMaxBytes: 1 << 30, SpoolMaxBytes: 1 << 30},
		RulesFile: "rules.yaml",
		Ingest: Ingest{
			MaxInflight:      2000,
			MaxInflightBytes: 32 << 20,
			MaxPayloadBytes:  256 << 10,
			MaxFuture:        Duration(5 * time.Minute),
			DrainTimeout:     Duration(30 * time.Second),
			// Generous: a site replaying days of backlog at its link's
			// speed stays within it; a firmware loop does not.
			DeviceBudget: DeviceBudget{
				MessagesPerSecond: 500, MessageBurst: 5000,
				ReadingsPerSecond: 50000, ReadingBurst: 500000,
			},
		},
		Alerts: Alerts{
			PatrolMaxAge:   Duration(30 * time.Minute),
			NearestPatrols: 3,
			LateAfter:      Duration(5 * time.Minute),
			EvaluateEvery:  Duration(10 * time.Second),
			MaxPending:     100000,
			TopicPrefix:    "border",
			Timezone:       "Asia/Shanghai",
		},
		Privacy: Privacy{AlertSubjects: "raw"},
	}
}

// DefaultWebhookTimeout applies to webhooks that set no timeout.
const DefaultWebhookTimeout = 10 * time.Second

// applyDefaults sets the defaults that Default cannot: those of list items.
func (c *Config) applyDefaults() {
	for i := range c.Webhooks {
		if c.Webhooks[i].Timeout == 0 {
			c.Webhooks[i].Timeout = Duration(DefaultWebhookTimeout)
		}
	}
}

// CheckFiles reports the files the configuration names that cannot be
// read (secrets, certificates); the rules file is checked by loading it.
func (c *Config) CheckFiles() Problems {
	var ps Problems
	// Read whole, as run reads them: a folder opens, and fails only then.
	check := func(key, p string) {
		if p == "" {
			return
		}
		if _, err := readFile(p); err != nil {
			ps.Add(c.Path, key, "cannot read %s: %v", p, cause(err))
		}
	}
	// A private key's file is a secret's: its path, when nothing is there,
	// may be the key itself written in its place.
	keyFile := func(key, p string) {
		if p == "" {
			return
		}
		if _, err := readFile(p); err != nil {
			ps.Add(c.Path, key, "cannot read %s: %v", SecretPath(p), cause(err))
		}
	}
	// Secrets must also hold something: an empty webhook secret would send
	// alerts unsigned, an empty password or token fails every connection.
	secret := func(key, p string) {
		if p == "" {
			return
		}
		if _, err := ReadSecret(p); errors.Is(err, errEmptySecret) {
			ps.Add(c.Path, key, "%s is empty", p)
		} else if errors.Is(err, errSecretLines) {
			ps.Add(c.Path, key, "%s %v", p, errSecretLines)
		} else if err != nil {
			ps.Add(c.Path, key, "cannot read %s: %v", SecretPath(p), cause(err))
		}
	}
	secret("mqtt.password_file", c.MQTT.PasswordFile)
	check("mqtt.tls.ca_file", c.MQTT.TLS.CAFile)
	check("mqtt.tls.cert_file", c.MQTT.TLS.CertFile)
	keyFile("mqtt.tls.key_file", c.MQTT.TLS.KeyFile)
	secret("influx.token_file", c.Influx.TokenFile)
	check("influx.tls.ca_file", c.Influx.TLS.CAFile)
	check("influx.tls.cert_file", c.Influx.TLS.CertFile)
	keyFile("influx.tls.key_file", c.Influx.TLS.KeyFile)
	secret("http.token_file", c.HTTP.TokenFile)
	check("http.tls.cert_file", c.HTTP.TLS.CertFile)
	keyFile("http.tls.key_file", c.HTTP.TLS.KeyFile)
	keyFile("ingest.signatures.key_file", c.Ingest.Signatures.KeyFile)
	keyFile("privacy.key_file", c.Privacy.KeyFile)
	for i, w := range c.Webhooks {
		secret(fmt.Sprintf("webhooks[%d].secret_file", i), w.SecretFile)
		check(fmt.Sprintf("webhooks[%d].ca_file", i), w.CAFile)
	}
	// storage.dir is made by run if missing; what is there must be a
	// folder it can write in (or the first missing folder on its way must
	// be creatable there).
	if d := c.Storage.Dir; d != "" {
		if err := checkDirPath(d); err != nil {
			ps.Add(c.Path, "storage.dir", "%s: %v", d, err)
		}
	}
	return c.Locate(ps)
}

// Duration is a time.Duration written Go-style in YAML ("90s", "15m").
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalText parses a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q (use Go style: 90s, 15m, 2h)", string(b))
	}
	*d = Duration(v)
	return nil
}

// UnmarshalYAML parses a Go duration and says on which line it failed.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if err := d.UnmarshalText([]byte(n.Value)); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return nil
}

// MarshalText writes the Go form.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// checkDirPath reports why run could not use p as a folder: p, or the
// nearest of its parents that exists, is not a folder. A missing folder is
// fine (run makes it); whether it may be written is run's to find out,
// under the user it runs as.
func checkDirPath(p string) error {
	for q := filepath.Clean(p); ; q = filepath.Dir(q) {
		fi, err := os.Stat(q)
		switch {
		case err == nil && fi.IsDir():
			if err := canMake(q); err != nil {
				return fmt.Errorf("cannot write in %s: %w", q, err)
			}
			return nil
		case err == nil:
			if q == filepath.Clean(p) {
				return errors.New("not a folder")
			}
			return fmt.Errorf("%s is not a folder", q)
		case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR):
			return err
		}
		if parent := filepath.Dir(q); parent == q {
			return nil
		}
	}
}

// cause is the innermost error of err: what the operating system said,
// without the wrappers that name the file again.
func cause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}
