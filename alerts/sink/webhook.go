package sink

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fenceline/fenceline/alerts/outbox"
	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/internal/model"
)

// Webhook headers.
const (
	// HeaderSignature carries "sha256=" + hex(HMAC-SHA256(secret, body)).
	HeaderSignature = "X-Fenceline-Signature"
	// HeaderAlertID, HeaderAlertState and HeaderAlertRepeat let a receiver
	// deduplicate (by id, state and repeat) without parsing the body. The
	// repeat header comes with the re-sends of repeat_interval only (the
	// body's repeat, 1, 2, …): a key of id and state alone would take
	// every re-send for a duplicate, and a receiver that expires alerts it
	// has not heard about would expire a firing still open.
	HeaderAlertID     = "X-Fenceline-Alert-Id"
	HeaderAlertState  = "X-Fenceline-Alert-State"
	HeaderAlertRepeat = "X-Fenceline-Alert-Repeat"
)

// DefaultWebhookTimeout bounds one POST when none is configured.
const DefaultWebhookTimeout = 10 * time.Second

// Webhook POSTs alerts as JSON to one URL.
//
// The body is signed only when a secret is configured: a signature made with
// an empty key proves nothing, and a receiver that requires signatures should
// see that none was configured rather than accept a forgeable one.
//
// Errors never contain the secret, the body, or the URL's path and query
// (webhook URLs often embed a token); only scheme and host, under the sink's
// name.
//
// Deliver is safe for concurrent use: the outbox POSTs the alerts of
// different sites at the same time, each site's in order.
type Webhook struct {
	url     string
	where   string // scheme://host, for errors
	secret  []byte
	timeout time.Duration
	client  *http.Client
	name    string
}

// NewWebhook returns the sink for the index-th configured webhook, named
// by its URL (WebhookName). client may be nil (a client of its own);
// redirects are never followed — a 302 would turn the POST into a GET — and
// count as a permanent failure. timeout <= 0 takes DefaultWebhookTimeout.
func NewWebhook(rawURL string, secret []byte, timeout time.Duration, client *http.Client, index int) (*Webhook, error) {
	name := WebhookName(rawURL)
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// Not err itself: url.Error quotes the whole URL.
		return nil, fmt.Errorf("webhooks[%d]: url must be http(s)://host/…", index)
	}
	if timeout <= 0 {
		timeout = DefaultWebhookTimeout
	}
	var c http.Client
	if client != nil {
		c = *client
	} else {
		c.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Webhook{
		url:     rawURL,
		where:   u.Scheme + "://" + u.Host,
		secret:  bytes.Clone(secret),
		timeout: timeout,
		client:  &c,
		name:    name,
	}, nil
}

// Name is the sink's name in the outbox and in metrics.
func (w *Webhook) Name() string { return w.name }

// Close releases idle connections.
func (w *Webhook) Close() { w.client.CloseIdleConnections() }

// Sign returns the signature header value of body: "sha256=" followed by
// the hex HMAC-SHA256 of body keyed with secret.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Deliver POSTs a. 2xx is delivered; 408, 429, 5xx and network errors are
// retried; other statuses (4xx, a redirect) wrap outbox.ErrPermanent.
func (w *Webhook) Deliver(ctx context.Context, a *model.Alert) error {
	body, err := Encode(a)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", w.name, outbox.ErrPermanent)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "fenceline-alerts")
	if len(w.secret) > 0 {
		req.Header.Set(HeaderSignature, Sign(w.secret, body))
	}
	if headerSafe(a.ID) {
		req.Header.Set(HeaderAlertID, a.ID)
	}
	if headerSafe(a.State) {
		req.Header.Set(HeaderAlertState, a.State)
	}
	if a.Repeat > 0 {
		req.Header.Set(HeaderAlertRepeat, strconv.Itoa(a.Repeat))
	}
	resp, err := w.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message repeats the URL
		}
		return fmt.Errorf("%s: POST %s: %w", w.name, w.where, err)
	}
	defer resp.Body.Close()
	// Read a little of the answer for the error message, and drain the rest
	// (bounded) so that the connection can be reused.
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))

	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return &StatusError{Sink: w.name, Where: w.where, Code: code, Body: clean(snippet),
			After: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	default:
		return fmt.Errorf("%w: %w", outbox.ErrPermanent,
			&StatusError{Sink: w.name, Where: w.where, Code: code, Body: clean(snippet)})
	}
}

// StatusError is a webhook's non-2xx answer.
type StatusError struct {
	Sink, Where string
	Code        int
	Body        string        // the start of the receiver's answer
	After       time.Duration // its Retry-After, 0 if none
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("%s: POST %s: HTTP %d", e.Sink, e.Where, e.Code)
	if e.Code >= 300 && e.Code < 400 {
		s += " (redirect not followed: configure the final URL)"
	}
	if e.Body != "" {
		s += ": " + strconv.Quote(e.Body)
	}
	return s
}

// RetryAfter is the receiver's Retry-After; the outbox waits at least that
// long (within its cap) before the next attempt.
func (e *StatusError) RetryAfter() time.Duration { return e.After }

// retryAfter parses a Retry-After value: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// headerSafe reports whether v can be a header value as is.
func headerSafe(v string) bool {
	if v == "" || len(v) > 256 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// clean makes a receiver's answer fit for one log line.
func clean(b []byte) string {
	s := strings.ToValidUTF8(string(b), "?")
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		cut := 200
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// Host is the receiver's scheme and host, for logs (never the path or
// query, which may hold a token).
func (w *Webhook) Host() string { return w.where }

// WebhookName is the name of the sink of the webhook at rawURL, in the
// outbox and in metrics: "webhook-" and 8 hex digits of the URL's SHA-256.
// The outbox keeps the deliveries a sink still owes under its name, so the
// name follows the receiver, not its place in the list: a webhook added
// before it, or one removed, must not hand its pending alerts (with their
// identifiers) to another unit. The URL itself is not shown: it may hold a
// token.
func WebhookName(rawURL string) string {
	sum := sha256.Sum256([]byte(config.CanonicalURL(rawURL)))
	return "webhook-" + hex.EncodeToString(sum[:4])
}
