package sink

import (
	"context"
	"crypto/hmac"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fenceline/fenceline/alerts/outbox"
	"github.com/fenceline/fenceline/internal/model"
)

// receiver is a webhook endpoint that checks signatures the way a border
// unit's integration would.
type receiver struct {
	srv    *httptest.Server
	secret []byte
	status func(n int) int // answer to the n-th request (1-based)

	mu   sync.Mutex
	reqs []received
	ch   chan received
}

type received struct {
	method, contentType, sig, id, state, repeat string
	body                                        []byte
	sigOK                                       bool
}

func newReceiver(t *testing.T, secret []byte, status func(n int) int) *receiver {
	r := &receiver{secret: secret, status: status, ch: make(chan received, 100)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		got := received{
			method: req.Method, contentType: req.Header.Get("Content-Type"),
			sig: req.Header.Get(HeaderSignature), id: req.Header.Get(HeaderAlertID),
			state: req.Header.Get(HeaderAlertState), repeat: req.Header.Get(HeaderAlertRepeat), body: body,
		}
		// Verify as a receiver would: recompute and compare in constant time.
		got.sigOK = hmac.Equal([]byte(got.sig), []byte(Sign(r.secret, body)))
		r.mu.Lock()
		r.reqs = append(r.reqs, got)
		n := len(r.reqs)
		r.mu.Unlock()
		r.ch <- got
		w.WriteHeader(r.status(n))
		io.WriteString(w, http.StatusText(r.status(n)))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func always(code int) func(int) int { return func(int) int { return code } }

func newWebhookT(t *testing.T, url string, secret []byte) *Webhook {
	t.Helper()
	w, err := NewWebhook(url, secret, 5*time.Second, nil, 0)
	require.NoError(t, err)
	t.Cleanup(w.Close)
	return w
}

func TestWebhookPostsSignedJSON(t *testing.T) {
	secret := []byte("s3cr3t-shared-with-station-mdl")
	r := newReceiver(t, secret, always(http.StatusNoContent))
	w := newWebhookT(t, r.srv.URL+"/hooks/fenceline", secret)
	a := testAlert("inc-7f3a", model.StateFiring)

	require.NoError(t, w.Deliver(context.Background(), a))
	got := <-r.ch
	assert.Equal(t, http.MethodPost, got.method)
	assert.Equal(t, "application/json", got.contentType)
	assert.True(t, strings.HasPrefix(got.sig, "sha256="), got.sig)
	assert.True(t, got.sigOK, "signature verifies with the shared secret")
	assert.Equal(t, "inc-7f3a", got.id)
	assert.Equal(t, "firing", got.state)
	assert.Empty(t, got.repeat, "the first send is no repeat")
	requireContractPayload(t, a, got.body)
	assert.Contains(t, string(got.body), "speed > 0 & at night", "no HTML escaping")
	assert.Equal(t, WebhookName(r.srv.URL+"/hooks/fenceline"), w.Name())
}

// A re-send under repeat_interval says which one it is in a header too: a
// receiver that de-duplicates on the headers must not drop it.
func TestWebhookRepeatHeader(t *testing.T) {
	r := newReceiver(t, nil, always(http.StatusNoContent))
	w := newWebhookT(t, r.srv.URL, nil)
	a := testAlert("inc-7f3a", model.StateFiring)
	a.Repeat = 2
	require.NoError(t, w.Deliver(context.Background(), a))
	got := <-r.ch
	assert.Equal(t, "inc-7f3a", got.id)
	assert.Equal(t, "firing", got.state)
	assert.Equal(t, "2", got.repeat)
}

func TestWebhookWithoutSecretSendsNoSignature(t *testing.T) {
	r := newReceiver(t, nil, always(http.StatusOK))
	w := newWebhookT(t, r.srv.URL, nil)
	require.NoError(t, w.Deliver(context.Background(), testAlert("inc-1", model.StateResolved)))
	got := <-r.ch
	assert.Empty(t, got.sig)
	assert.Equal(t, "resolved", got.state)
}

func TestWebhookStatusClassification(t *testing.T) {
	tests := []struct {
		name      string
		code      int
		wantErr   bool
		permanent bool
	}{
		{"200 delivered", http.StatusOK, false, false},
		{"202 delivered", http.StatusAccepted, false, false},
		{"204 delivered", http.StatusNoContent, false, false},
		{"500 retried", http.StatusInternalServerError, true, false},
		{"502 retried", http.StatusBadGateway, true, false},
		{"503 retried", http.StatusServiceUnavailable, true, false},
		{"408 retried", http.StatusRequestTimeout, true, false},
		{"429 retried", http.StatusTooManyRequests, true, false},
		{"400 permanent", http.StatusBadRequest, true, true},
		{"401 permanent", http.StatusUnauthorized, true, true},
		{"403 permanent", http.StatusForbidden, true, true},
		{"404 permanent", http.StatusNotFound, true, true},
		{"413 permanent", http.StatusRequestEntityTooLarge, true, true},
		{"422 permanent", http.StatusUnprocessableEntity, true, true},
		{"302 not followed, permanent", http.StatusFound, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReceiver(t, nil, always(tt.code))
			w := newWebhookT(t, r.srv.URL, nil)
			err := w.Deliver(context.Background(), testAlert("inc-1", model.StateFiring))
			if !tt.wantErr {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Equal(t, tt.permanent, errors.Is(err, outbox.ErrPermanent), "%v", err)
			var se *StatusError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tt.code, se.Code)
			assert.Contains(t, err.Error(), "webhook-")
		})
	}
}

func TestWebhookRetryAfter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	w := newWebhookT(t, srv.URL, nil)
	err := w.Deliver(context.Background(), testAlert("inc-1", model.StateFiring))
	var ra interface{ RetryAfter() time.Duration }
	require.ErrorAs(t, err, &ra)
	assert.Equal(t, 7*time.Second, ra.RetryAfter())
}

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name, v string
		want    time.Duration
	}{
		{"empty", "", 0},
		{"seconds", "120", 2 * time.Minute},
		{"http date", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"date in the past", now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"garbage", "soon", 0},
		{"negative", "-5", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, retryAfter(tt.v, now))
		})
	}
}

func TestWebhookErrorsDoNotLeakSecretsBodyOrURLPath(t *testing.T) {
	secret := []byte("top-secret-key")
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/services/T000/B000/XXXXtokenXXXX"
	srv.Close() // connection refused from now on
	w := newWebhookT(t, url, secret)
	a := testAlert("inc-1", model.StateFiring)
	err := w.Deliver(context.Background(), a)
	require.Error(t, err)
	assert.False(t, errors.Is(err, outbox.ErrPermanent), "a network error is retried: %v", err)
	for _, leak := range []string{"top-secret-key", "XXXXtokenXXXX", a.Summary, a.Subject.Value} {
		assert.NotContains(t, err.Error(), leak)
	}
	assert.Contains(t, err.Error(), "webhook-")
}

func TestWebhookTimeoutIsRetried(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	w, err := NewWebhook(srv.URL, nil, 50*time.Millisecond, nil, 3)
	require.NoError(t, err)
	defer w.Close()
	err = w.Deliver(context.Background(), testAlert("inc-1", model.StateFiring))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.False(t, errors.Is(err, outbox.ErrPermanent))
	assert.Contains(t, err.Error(), WebhookName(srv.URL))
}

func TestNewWebhookRejectsBadURLs(t *testing.T) {
	tests := []struct{ name, url string }{
		{"no scheme", "hooks.example.org/x"},
		{"ftp", "ftp://hooks.example.org/x"},
		{"no host", "https:///x"},
		{"unparsable", "https://exa mple.org/%zz?token=abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewWebhook(tt.url, nil, 0, nil, 1)
			require.ErrorContains(t, err, "webhooks[1]")
			assert.NotContains(t, err.Error(), "token=abc")
		})
	}
}

// The outbox retries a webhook that answers 500 until it takes the alert;
// every attempt carries the same signed body.
func TestWebhookThroughOutboxRetriesOn500(t *testing.T) {
	secret := []byte("k")
	r := newReceiver(t, secret, func(n int) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	w := &observed{Sink: newWebhookT(t, r.srv.URL, secret), results: make(chan error, 10)}
	ob, err := outbox.Open(t.TempDir(), []outbox.Sink{w},
		outbox.Options{MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond},
		testLogger(t), prometheus.NewRegistry())
	require.NoError(t, err)
	defer ob.Close()
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- ob.Run(ctx) }()

	a := testAlert("inc-9", model.StateFiring)
	appended := make(chan error, 1)
	ob.Append([]model.Alert{*a}, func(err error) { appended <- err })
	require.NoError(t, <-appended)

	var bodies [][]byte
	for range 3 {
		select {
		case got := <-r.ch:
			assert.True(t, got.sigOK)
			bodies = append(bodies, got.body)
		case <-time.After(waitFor):
			t.Fatal("webhook not retried")
		}
	}
	for _, want := range []bool{false, false, true} {
		select {
		case err := <-w.results:
			require.Equal(t, want, err == nil, "%v", err)
		case <-time.After(waitFor):
			t.Fatal("delivery attempt did not finish")
		}
	}
	cancel()
	require.NoError(t, <-runDone)
	assert.Equal(t, bodies[0], bodies[1])
	assert.Equal(t, bodies[0], bodies[2])
	requireContractPayload(t, a, bodies[2])
	assert.Equal(t, 0, ob.Pending(w.Name()))
	select {
	case got := <-r.ch:
		t.Fatalf("unexpected fourth request %s", got.id)
	default:
	}
}

// A webhook's name follows its URL, not its place in the list: the outbox
// keeps what a receiver is owed under it.
func TestWebhookName(t *testing.T) {
	a, b := WebhookName("https://unit-a.example/hook"), WebhookName("https://unit-b.example/hook")
	assert.NotEqual(t, a, b)
	assert.Regexp(t, `^webhook-[0-9a-f]{8}$`, a)
	w0, err := NewWebhook("https://unit-a.example/hook", nil, 0, nil, 0)
	require.NoError(t, err)
	w3, err := NewWebhook("https://unit-a.example/hook", nil, 0, nil, 3)
	require.NoError(t, err)
	assert.Equal(t, w0.Name(), w3.Name())
	assert.NotContains(t, a, "unit-a")
}

func TestWebhookNameSpelling(t *testing.T) {
	assert.Equal(t, WebhookName("https://unit-a.example/hook"), WebhookName("HTTPS://Unit-A.example:443/hook"),
		"one receiver, however its URL is spelt")
}
