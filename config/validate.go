package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	_ "time/tzdata" // time zones on hosts without tzdata
)

// Validate checks every section and returns all problems, keyed by path.
// File and line are filled in by Load.
func (c *Config) Validate() Problems {
	var ps Problems
	ps = append(ps, c.MQTT.validate()...)
	ps = append(ps, c.Influx.validate()...)
	ps = append(ps, c.HTTP.validate()...)
	ps = append(ps, c.Storage.validate()...)
	ps = append(ps, c.Ingest.validate()...)
	ps = append(ps, c.Alerts.validate()...)
	ps = append(ps, c.Privacy.validate()...)
	if c.RulesFile == "" {
		ps.Add("", "rules_file", "must name the rules file")
	}
	seen := map[string]int{}
	for i, w := range c.Webhooks {
		key := fmt.Sprintf("webhooks[%d]", i)
		ps = append(ps, w.validate(key)...)
		u := CanonicalURL(w.URL)
		if j, dup := seen[u]; dup && w.URL != "" {
			ps.Add("", key+".url", "is also webhooks[%d].url: each receiver once (its alerts would be sent twice)", j)
		} else {
			seen[u] = i
		}
	}
	ps = append(ps, c.ownAlertsSubscribed()...)
	return ps
}

// Warnings returns what in c is valid but gives up something an operator
// may count on; check prints them, run logs them. Unlike Validate's
// problems they do not stop the daemon.
func (c *Config) Warnings() Problems {
	var ws Problems
	if c.MQTT.QoS == 0 {
		ws.Add("", "mqtt.qos", "%s", QoS0Warning)
	}
	for _, f := range []struct{ key, raw string }{{"mqtt.broker", c.MQTT.Broker}, {"influx.url", c.Influx.URL}} {
		if u, err := url.Parse(f.raw); err == nil && u.RawQuery != "" && !querySecret(u) {
			ws.Add("", f.key, queryUnused)
		}
	}
	ws = append(ws, c.webhookWarnings()...)
	return c.Locate(ws)
}

// WebhookWarnings are Warnings' about the webhooks: run logs them at start
// (the others are logged where their subsystem starts).
func (c *Config) WebhookWarnings() Problems { return c.Locate(c.webhookWarnings()) }

func (c *Config) webhookWarnings() Problems {
	var ws Problems
	for i, w := range c.Webhooks {
		if u, err := url.Parse(w.URL); err == nil && u.Scheme == "http" && !IsLoopbackHost(u.Hostname()) {
			ws.Add("", fmt.Sprintf("webhooks[%d].url", i), "is plain http: alerts, with their identifiers, travel unencrypted; use https")
		}
		if w.SecretFile == "" {
			ws.Add("", fmt.Sprintf("webhooks[%d].secret_file", i), "is empty: this webhook's alerts are not signed (X-Fenceline-Signature), so its receiver cannot tell them from forged ones")
		}
	}
	return ws
}

// QoS0Warning says what a subscription at QoS 0 gives up.
const QoS0Warning = "is 0: the broker queues nothing for fenceline while it is away, so messages published while it is down, restarting or reconnecting are lost (the seq gaps metric shows them); use 1"

// ownAlertsSubscribed reports the topic filters that match fenceline's own
// alert topics, {alerts.topic_prefix}/{site}/alerts/{rule}: every alert it
// publishes would come back to it as a rejected message (bad_topic), its
// subject with it into the dead letters.
func (c *Config) ownAlertsSubscribed() Problems {
	var ps Problems
	if c.Alerts.TopicPrefix == "" {
		return nil
	}
	// Any site, any rule: "*" stands for one level of any name.
	alertTopic := c.Alerts.TopicPrefix + "/*/alerts/*"
	for i, f := range c.MQTT.Topics {
		if validTopicFilter(f) == nil && topicMatches(f, alertTopic) {
			ps.Add("", fmt.Sprintf("mqtt.topics[%d]", i), "%q matches fenceline's own alert topics (%s/{site}/alerts/{rule}): every alert would come back as a rejected message", f, c.Alerts.TopicPrefix)
		}
	}
	return ps
}

// topicMatches reports whether MQTT topic filter f matches topic t, or, for
// a level of t that is "*", some name there.
func topicMatches(f, t string) bool {
	fl, tl := strings.Split(f, "/"), strings.Split(t, "/")
	for i, l := range fl {
		switch {
		case l == "#":
			return true
		case i >= len(tl):
			return false
		case l != "+" && tl[i] != "*" && l != tl[i]:
			return false
		}
	}
	return len(fl) == len(tl)
}

// RedactURL is raw for a log line: without its user and password
// (xxxxx@), query (InfluxDB 1.x URLs may carry u= and p= there) or fragment.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	// The user name too (a token is sometimes put there), the fragment,
	// the query: a log names the host and path.
	if u.User != nil {
		u.User = url.User("xxxxx")
	}
	u.RawQuery, u.Fragment, u.RawFragment = "", "", ""
	return u.String()
}

// portInRange reports whether port, a URL's (digits, or none), is a TCP
// port: url.Parse takes 99999.
func portInRange(port string) bool {
	if port == "" {
		return true
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 1 && n <= 65535
}

// notAURL says why raw, which url.Parse refused with err, is not a URL,
// without a word of what stands before an '@' (user:password): url.Parse's
// error quotes the whole URL, or the bad escape of a password ("%of" of
// "50%off"), and problems are printed by check and logged by run. The
// URL itself is not repeated: the key and line name it. secretHint says
// where a password belongs instead.
func notAURL(raw string, err error, secretHint string) string {
	if at := strings.LastIndex(raw, "@"); at >= 0 {
		if i := strings.Index(raw, "://"); i >= 0 && i < at {
			// A '/', '?' or '#' in a password moves where url.Parse sees
			// the host end: everything up to the last '@' is taken for
			// user info, so that no part of it reaches the message.
			_, err := url.Parse(raw[:i+3] + "x@" + raw[at+1:])
			if err != nil {
				return "not a URL (" + urlErrReason(err) + "; the part before '@' not shown)"
			}
			return "not a URL: the user:password part before '@' is not valid (a space, '%' and other special characters must be %XX-escaped); " + secretHint
		}
	}
	if !strings.Contains(raw, "://") {
		// "127.0.0.1:8086" reads as a scheme "127.0.0.1" to url.Parse,
		// whose complaint ("first path segment in URL cannot contain
		// colon") says nothing of what to write.
		return "not a URL: it has no scheme (write it as scheme://host:port, e.g. http://127.0.0.1:8086 or tcp://127.0.0.1:1883)"
	}
	return "not a URL (" + urlErrReason(err) + ")"
}

// urlErrReason is url.Parse's reason without the URL it quotes.
func urlErrReason(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return "malformed"
}

// hasPassword reports whether u carries a password (user:password@host).
// CanonicalURL is rawURL in the form that names one receiver whatever the
// spelling: scheme and host in lower case (an IP address in its standard
// form, a name without its trailing dot), the port as a number and without
// the scheme's default, the path with its escapes in their standard form,
// no fragment (it is never sent). The query stays as it is (a receiver may
// tell its parts apart). A URL that does not parse is returned as is.
func CanonicalURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Fragment, u.RawFragment, u.RawPath = "", "", ""
	host, port := strings.TrimSuffix(strings.ToLower(u.Hostname()), "."), u.Port()
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	if n, err := strconv.Atoi(port); err == nil {
		port = strconv.Itoa(n)
	}
	if (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
		port = ""
	}
	u.Host = host
	if port != "" {
		u.Host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		u.Host = "[" + host + "]"
	}
	return u.String()
}

// querySecret reports whether u's query holds a parameter that names a
// secret (InfluxDB 1.x's p=, a password=, a token=): a secret inline, and
// one neither client sends.
func querySecret(u *url.URL) bool {
	for k := range u.Query() {
		switch strings.ToLower(k) {
		case "p", "password", "pass", "passwd", "pwd", "token", "secret", "apikey", "api_key", "key", "auth", "authorization":
			return true
		}
	}
	return false
}

// queryUnused is the warning of a URL's query that no client sends.
const queryUnused = "has a query (?…), which is not used: fenceline sends none"

func hasPassword(u *url.URL) bool {
	_, ok := u.User.Password()
	return ok
}

// Where the secrets go that do not belong in a URL.
const (
	brokerSecretHint = "give mqtt.username, and the password in mqtt.password_file (secrets never inline)"
	influxSecretHint = "put user:password in influx.token_file (secrets never inline)"
)

func (m *MQTT) validate() Problems {
	var ps Problems
	u, err := url.Parse(m.Broker)
	switch {
	case m.Broker == "":
		ps.Add("", "mqtt.broker", "must be set, e.g. tcp://127.0.0.1:1883")
	case err != nil:
		ps.Add("", "mqtt.broker", "%s", notAURL(m.Broker, err, brokerSecretHint))
	case u.Scheme != "tcp" && u.Scheme != "ssl" && u.Scheme != "tls" && u.Scheme != "mqtt" && u.Scheme != "mqtts" && u.Scheme != "ws" && u.Scheme != "wss":
		ps.Add("", "mqtt.broker", "scheme %q not supported (tcp:// or mqtt://; ssl://, tls:// or mqtts:// for TLS; ws://, wss://)", u.Scheme)
	case u.Host == "":
		ps.Add("", "mqtt.broker", "has no host:port")
	case u.Port() == "" && u.Scheme != "ws" && u.Scheme != "wss":
		// paho dials the host as given: without a port it retries for ever
		// ("missing port in address").
		ps.Add("", "mqtt.broker", "has no port (e.g. %s://%s:1883, or :8883 for TLS)", u.Scheme, u.Hostname())
	case !portInRange(u.Port()):
		ps.Add("", "mqtt.broker", "port %s is not one (1 to 65535)", u.Port())
	case hasPassword(u):
		ps.Add("", "mqtt.broker", "holds a password: %s", brokerSecretHint)
	case querySecret(u):
		ps.Add("", "mqtt.broker", "has a password or token in its query, which the MQTT client does not use: %s", brokerSecretHint)
	}
	if m.ClientID == "" || len(m.ClientID) > 256 {
		ps.Add("", "mqtt.client_id", "must be 1-256 characters (a fixed id keeps the persistent session)")
	}
	if m.PasswordFile != "" && m.Username == "" {
		ps.Add("", "mqtt.password_file", "is set but mqtt.username is empty")
	}
	if len(m.Topics) == 0 {
		ps.Add("", "mqtt.topics", "must list at least one topic filter")
	}
	for i, t := range m.Topics {
		if err := validTopicFilter(t); err != nil {
			ps.Add("", fmt.Sprintf("mqtt.topics[%d]", i), "%v", err)
		}
	}
	if strings.ContainsAny(m.ShareGroup, "/+#") {
		ps.Add("", "mqtt.share_group", "must not contain '/', '+' or '#'")
	}
	if m.QoS != 0 && m.QoS != 1 {
		ps.Add("", "mqtt.qos", "must be 0 or 1 (got %d)", m.QoS)
	}
	if m.KeepAlive.D() < 1e9 {
		ps.Add("", "mqtt.keep_alive", "must be at least 1s")
	}
	if m.ConnectTimeout.D() <= 0 {
		ps.Add("", "mqtt.connect_timeout", "must be positive")
	}
	if m.MaxReconnectInterval.D() <= 0 {
		ps.Add("", "mqtt.max_reconnect_interval", "must be positive")
	}
	if m.Retained != "ingest" && m.Retained != "ignore" {
		ps.Add("", "mqtt.retained", "must be ingest or ignore (got %q)", m.Retained)
	}
	ps = append(ps, m.TLS.validate("mqtt.tls")...)
	if err == nil && m.Broker != "" && !brokerTLS[u.Scheme] {
		// A CA or client certificate on a plaintext broker is a config
		// that looks secure and is not: refuse it rather than ignore it.
		ps = append(ps, m.TLS.onPlaintext("mqtt.tls", "mqtt.broker is "+u.Scheme+":// (use ssl:// or wss:// for TLS)")...)
	}
	return ps
}

// brokerTLS lists the broker URL schemes paho connects to over TLS.
var brokerTLS = map[string]bool{"ssl": true, "tls": true, "mqtts": true, "wss": true}

// onPlaintext reports every TLS key that is set although the connection
// it belongs to is not TLS.
func (t *TLS) onPlaintext(key, why string) Problems {
	var ps Problems
	for _, f := range []struct{ name, v string }{
		{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile}, {"server_name", t.ServerName},
	} {
		if f.v != "" {
			ps.Add("", key+"."+f.name, "is set but %s", why)
		}
	}
	return ps
}

// deviceTopicLevels is the number of levels of a device topic,
// border/{site}/{kind}/{device}/{stream}.
const deviceTopicLevels = 5

// validTopicFilter reports why t is not a topic filter that can match a
// device topic. A broker takes more than that (it would subscribe
// $share/<group>/$share/x/… or a six-level filter, and the daemon would
// report ready to a subscription that never brings a message).
func validTopicFilter(t string) error {
	if t == "" {
		return fmt.Errorf("empty topic filter")
	}
	if strings.HasPrefix(t, "$share/") {
		return fmt.Errorf("%q: a shared subscription is made with mqtt.share_group (it subscribes $share/<group>/<filter>), not in the filter", t)
	}
	if strings.HasPrefix(t, "$") {
		return fmt.Errorf("%q: topics starting with '$' are the broker's own, never a device's", t)
	}
	levels := strings.Split(t, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return fmt.Errorf("%q: '#' must be a whole, last level", t)
		}
		if strings.Contains(l, "+") && l != "+" {
			return fmt.Errorf("%q: '+' must be a whole level", t)
		}
	}
	n, hash := len(levels), levels[len(levels)-1] == "#"
	if hash {
		n-- // '#' matches its parent level too: a/b/c/d/e/# matches a/b/c/d/e
	}
	if n > deviceTopicLevels || (!hash && n < deviceTopicLevels) {
		return fmt.Errorf("%q has %d levels and can never match a device topic, which has exactly %d (border/{site}/{kind}/{device}/{stream})", t, len(levels), deviceTopicLevels)
	}
	return nil
}

func (t *TLS) validate(key string) Problems {
	var ps Problems
	if (t.CertFile == "") != (t.KeyFile == "") {
		ps.Add("", key+".cert_file", "cert_file and key_file go together")
	}
	return ps
}

func (in *Influx) validate() Problems {
	var ps Problems
	u, err := url.Parse(in.URL)
	switch {
	case in.URL == "":
		ps.Add("", "influx.url", "must be set, e.g. http://127.0.0.1:8086")
	case err != nil:
		ps.Add("", "influx.url", "%s", notAURL(in.URL, err, influxSecretHint))
	case u.Scheme != "http" && u.Scheme != "https":
		ps.Add("", "influx.url", "scheme must be http or https")
	case u.Host == "":
		ps.Add("", "influx.url", "has no host")
	case !portInRange(u.Port()):
		ps.Add("", "influx.url", "port %s is not one (1 to 65535)", u.Port())
	case hasPassword(u):
		ps.Add("", "influx.url", "holds a password: %s", influxSecretHint)
	case querySecret(u):
		// InfluxDB 1.x takes u= and p= there; fenceline writes to a URL of
		// its own, without them, so they would only fail later as HTTP 401.
		ps.Add("", "influx.url", "has a password or token in its query, which is not sent: %s", influxSecretHint)
	}
	if in.Bucket == "" {
		ps.Add("", "influx.bucket", "must be set (InfluxDB 1.8: database/retention-policy, e.g. border/autogen)")
	}
	if in.BatchSize < 1 || in.BatchSize > 100000 {
		ps.Add("", "influx.batch_size", "must be 1-100000 (got %d)", in.BatchSize)
	}
	if in.FlushInterval.D() <= 0 {
		ps.Add("", "influx.flush_interval", "must be positive")
	}
	if in.Concurrency < 1 || in.Concurrency > 64 {
		ps.Add("", "influx.concurrency", "must be 1-64 (got %d)", in.Concurrency)
	}
	if in.MaxPendingLines < in.BatchSize {
		ps.Add("", "influx.max_pending_lines", "must be at least influx.batch_size (%d)", in.BatchSize)
	}
	if in.Timeout.D() <= 0 {
		ps.Add("", "influx.timeout", "must be positive")
	}
	if in.MaxTagValues < 1 || in.MaxTagValues > 100000 {
		ps.Add("", "influx.max_tag_values", "must be 1-100000 (got %d)", in.MaxTagValues)
	}
	ps = append(ps, in.TLS.validate("influx.tls")...)
	if err == nil && in.URL != "" && u.Scheme == "http" {
		ps = append(ps, in.TLS.onPlaintext("influx.tls", "influx.url is http:// (use https://)")...)
	}
	return ps
}

func (h *HTTP) validate() Problems {
	var ps Problems
	if h.Listen == "" {
		return ps // no HTTP listener
	}
	host, port, err := net.SplitHostPort(h.Listen)
	if err != nil {
		ps.Add("", "http.listen", "must be host:port (%v)", err)
		return ps
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		ps.Add("", "http.listen", "port %q must be a number 0-65535 (0: any free port)", port)
	}
	if h.TokenFile == "" && !IsLoopbackHost(host) {
		ps.Add("", "http.listen", "%q is not a loopback address: set http.token_file, so that POST /-/reload needs a bearer token", h.Listen)
	}
	if (h.TLS.CertFile == "") != (h.TLS.KeyFile == "") {
		ps.Add("", "http.tls.cert_file", "cert_file and key_file go together")
	}
	return ps
}

// IsLoopbackHost reports whether host (of a host:port) names only the
// loopback interface: "localhost" or a loopback IP. An empty host, a
// wildcard address or any other name is not.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Storage) validate() Problems {
	var ps Problems
	if s.Dir == "" {
		ps.Add("", "storage.dir", "must be set")
	}
	if s.DeadLetterMaxBytes < 1<<20 {
		ps.Add("", "storage.dead_letter_max_bytes", "must be at least 1 MiB")
	}
	// The spool must hold at least a few of the writer's largest batches
	// (5000 lines of a few hundred bytes) to be of any use.
	if s.SpoolMaxBytes < 16<<20 {
		ps.Add("", "storage.spool_max_bytes", "must be at least 16 MiB")
	}
	return ps
}

func (in *Ingest) validate() Problems {
	var ps Problems
	if in.MaxInflightBytes < int64(in.MaxPayloadBytes) {
		ps.Add("", "ingest.max_inflight_bytes", "must be at least ingest.max_payload_bytes (%d)", in.MaxPayloadBytes)
	}
	if in.MaxInflight < 1 {
		ps.Add("", "ingest.max_inflight", "must be at least 1")
	}
	if in.MaxPayloadBytes < 1024 || in.MaxPayloadBytes > 256<<10 {
		ps.Add("", "ingest.max_payload_bytes", "must be 1024-262144 (the contract's limit is 256 KiB)")
	}
	switch {
	case in.MaxFuture.D() < 0:
		ps.Add("", "ingest.max_future", "must not be negative")
	case in.MaxFuture.D() == 0:
		// Not "the default" unsaid, nor "no future at all": a unit's clock
		// a millisecond ahead of fenceline's would have every reading
		// rejected.
		ps.Add("", "ingest.max_future", "must be positive (a unit's clock is never exactly fenceline's); leave it out for the default 5m")
	}
	for key, v := range map[string]float64{
		"messages_per_second": in.DeviceBudget.MessagesPerSecond, "message_burst": in.DeviceBudget.MessageBurst,
		"readings_per_second": in.DeviceBudget.ReadingsPerSecond, "reading_burst": in.DeviceBudget.ReadingBurst,
	} {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			ps.Add("", "ingest.device_budget."+key, "must be a number ≥ 0 (0: no limit)")
		}
	}
	if in.DrainTimeout.D() <= 0 {
		ps.Add("", "ingest.drain_timeout", "must be positive")
	}
	ps = append(ps, in.validateSignatures()...)
	return ps
}

func (a *Alerts) validate() Problems {
	var ps Problems
	if a.PatrolMaxAge.D() <= 0 {
		ps.Add("", "alerts.patrol_max_age", "must be positive")
	}
	if a.NearestPatrols < 0 || a.NearestPatrols > 50 {
		ps.Add("", "alerts.nearest_patrols", "must be 0-50")
	}
	if a.LateAfter.D() <= 0 {
		ps.Add("", "alerts.late_after", "must be positive")
	}
	if a.EvaluateEvery.D() <= 0 {
		ps.Add("", "alerts.evaluate_every", "must be positive")
	}
	if a.MaxPending < 1000 || a.MaxPending > 10_000_000 {
		ps.Add("", "alerts.max_pending", "must be 1000-10000000 (each alert waiting for delivery takes a few KiB of memory)")
	}
	if _, err := time.LoadLocation(a.Timezone); err != nil {
		ps.Add("", "alerts.timezone", "unknown time zone %q", a.Timezone)
	} else if a.Timezone == "" {
		// time.LoadLocation("") is UTC: schedules would move by the site's
		// offset without a word.
		ps.Add("", "alerts.timezone", "is empty (UTC to Go, not the default): name the zone, e.g. Asia/Shanghai, or leave the key out")
	} else if a.Timezone == "Local" {
		ps.Add("", "alerts.timezone", "%s", LocalZoneProblem)
	}
	switch {
	case a.TopicPrefix == "":
		ps.Add("", "alerts.topic_prefix", "must not be empty (alerts go to {topic_prefix}/{site}/alerts/{rule}; the default is border)")
	case strings.ContainsAny(a.TopicPrefix, "+#"):
		ps.Add("", "alerts.topic_prefix", "must be a topic prefix without wildcards")
	case strings.HasPrefix(a.TopicPrefix, "$"):
		// $SYS is the broker's own; $share/… is a subscription's form.
		// A broker refuses publishes there, and every alert would wait.
		ps.Add("", "alerts.topic_prefix", "must not start with '$' (topics starting with '$' are the broker's: $SYS, $share)")
	}
	return ps
}

func (w *Webhook) validate(key string) Problems {
	var ps Problems
	u, err := url.Parse(w.URL)
	if w.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		ps.Add("", key+".url", "must be an http(s) URL")
	} else if hasPassword(u) {
		ps.Add("", key+".url", "holds a password: use secret_file to sign the body, or a token the receiver issues in the path (secrets never inline)")
	}
	if w.Timeout.D() < 0 {
		ps.Add("", key+".timeout", "must not be negative")
	}
	if w.CAFile != "" && err == nil && u.Scheme != "https" {
		ps.Add("", key+".ca_file", "is set but %s.url is not https://", key)
	}
	return ps
}

func (in *Ingest) validateSignatures() Problems {
	var ps Problems
	if in.Signatures.Required && in.Signatures.KeyFile == "" {
		ps.Add("", "ingest.signatures.key_file", "must be set when ingest.signatures.required is true")
	}
	return ps
}

func (p *Privacy) validate() Problems {
	var ps Problems
	if p.AlertSubjects != "raw" && p.AlertSubjects != "hashed" {
		ps.Add("", "privacy.alert_subjects", "must be raw or hashed (got %q)", p.AlertSubjects)
	}
	if p.KeyFile == "" {
		for _, f := range []struct {
			key string
			on  bool
		}{
			{"privacy.hash_identifiers", p.HashIdentifiers},
			{"privacy.hash_plates", p.HashPlates},
			{"privacy.alert_subjects", p.AlertSubjects == "hashed"},
		} {
			if f.on {
				ps.Add("", f.key, "needs privacy.key_file (the hash key)")
			}
		}
	}
	return ps
}

// LocalZoneProblem refuses the time zone "Local": it is the host's, which
// under a service manager is often UTC, and would move schedules and the
// times in summaries with the host it runs on.
const LocalZoneProblem = `"Local" is the host's time zone (often UTC under a service manager), not the site's: name the zone, e.g. Asia/Shanghai`
