package daemon

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/sync/errgroup"

	"github.com/fenceline/fenceline/alerts/engine"
	"github.com/fenceline/fenceline/alerts/outbox"
	"github.com/fenceline/fenceline/alerts/sink"
	"github.com/fenceline/fenceline/config"
	"github.com/fenceline/fenceline/ingest/budget"
	"github.com/fenceline/fenceline/ingest/deadletter"
	"github.com/fenceline/fenceline/ingest/decode"
	"github.com/fenceline/fenceline/ingest/devicesig"
	"github.com/fenceline/fenceline/ingest/influxwriter"
	"github.com/fenceline/fenceline/ingest/mqttsource"
	"github.com/fenceline/fenceline/ingest/pipeline"
	"github.com/fenceline/fenceline/ingest/spool"
	"github.com/fenceline/fenceline/ingest/tagcap"
	"github.com/fenceline/fenceline/internal/atomicfile"
	"github.com/fenceline/fenceline/internal/httpapi"
	"github.com/fenceline/fenceline/internal/model"
)

// daemon holds the running components.
type daemon struct {
	cfg *config.Config
	log *slog.Logger
	reg *prometheus.Registry

	source    *mqttsource.Source
	writer    *influxwriter.Writer
	dead      *deadletter.Store
	engine    *engine.Engine
	outbox    *outbox.Outbox
	mqttSink  *sink.MQTT
	webhooks  []*sink.Webhook
	pipe      *pipeline.Pipeline
	http      *httpapi.Server
	sec       *security
	stateFile string
	// stateFileBad is set while the state file could not be restored: it
	// must not become the previous save (keepPrevious) that the next start
	// would fall back to. Guarded by saveMu once running.
	stateFileBad bool
	cleanStop    bool // the pipeline has stopped: the next save is a clean stop's (under saveMu)
	holds        *stateHolds
	// saveMu makes the periodic save and the final one take turns: they
	// write the same temporary files, and a periodic save cut short by
	// shutdown removes its own.
	saveMu sync.Mutex

	// reloading holds one token while a reload runs: reloads take turns,
	// and one waiting for its turn gives up when its ctx ends (a SIGTERM
	// must not wait behind a reload that waits for a busy pipeline).
	reloading chan struct{}
	// stopping ends when a shutdown begins (or a component failed): a
	// reload asked over HTTP then is not applied.
	stopping context.Context
	stopNow  context.CancelFunc
	// cfgSum is the checksum of the daemon's file as it started: a reload
	// reads the rules file only, and says so when this one changed.
	cfgSum        [sha256.Size]byte
	reloadOK      prometheus.Gauge
	devices       *prometheus.GaugeVec
	reloadTime    prometheus.Gauge
	reloadsFailed prometheus.Counter
	// stateSaveFailures counts periodic saves of the alert state that
	// failed: until one succeeds, a crash loses the state since the last.
	stateSaveFailures prometheus.Counter
	// How long saves take and how large the state is: a state of seconds
	// to save is saved less often, and stateful alerts wait for saves.
	stateSaveSeconds prometheus.Histogram
	stateBytes       prometheus.Gauge
	stateSaved       prometheus.Gauge // when the last save succeeded
}

// build constructs every component; nothing runs yet. Any error here is a
// configuration or environment problem the operator must fix.
func build(cfg *config.Config, log *slog.Logger, reg *prometheus.Registry, saveEvery time.Duration) (_ *daemon, err error) {
	d := &daemon{cfg: cfg, log: log, reg: reg, reloading: make(chan struct{}, 1)}
	d.stopping, d.stopNow = context.WithCancel(context.Background())
	d.cfgSum, _ = fileSum(cfg.Path)
	f := promauto.With(reg)
	d.reloadOK = f.NewGauge(prometheus.GaugeOpts{Name: "fenceline_config_last_reload_successful",
		Help: "1 if the last reload of the rules file succeeded (startup counts)."})
	d.reloadTime = f.NewGauge(prometheus.GaugeOpts{Name: "fenceline_config_last_reload_success_timestamp_seconds",
		Help: "When the rules were last loaded successfully."})
	d.reloadsFailed = f.NewCounter(prometheus.CounterOpts{Name: "fenceline_config_reload_failures_total",
		Help: "Reloads refused because the new rules had problems (the old ones stay)."})
	d.stateSaveFailures = f.NewCounter(prometheus.CounterOpts{Name: "fenceline_alerts_state_save_failures_total",
		Help: "Periodic saves of the alert state (open incidents, cooldowns, windows) that failed; a crash restores the last saved one."})
	d.stateSaveSeconds = f.NewHistogram(prometheus.HistogramOpts{Name: "fenceline_alerts_state_save_seconds",
		Help:    "Duration of saves of the alert state (encoding and fsync); alerts of incidents wait for the next one.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)})
	d.stateBytes = f.NewGauge(prometheus.GaugeOpts{Name: "fenceline_alerts_state_bytes",
		Help: "Size of the alert state at its last save."})
	d.stateSaved = f.NewGauge(prometheus.GaugeOpts{Name: "fenceline_alerts_state_last_save_timestamp_seconds",
		Help: "When the alert state was last saved (0: not in this run)."})
	stateLost := f.NewGauge(prometheus.GaugeOpts{Name: "fenceline_alerts_state_restore_incomplete",
		Help: "1 when this start could not restore the last saved alert state: from the previous save (incidents opened or resolved since are forgotten) or from nothing."})

	// A large deployment's rules (tens of thousands of devices, lists of
	// millions) take seconds to read: said, so that a start is not taken
	// for a hang.
	log.Info("loading the rules", "file", cfg.RulesFile)
	loadStart := time.Now()
	rs, rulesFile, err := loadRules(cfg)
	if err != nil {
		return nil, err
	}
	log.Info("rules loaded", "devices", rs.Registry.Len(), "rules", len(rs.Rules), "took", time.Since(loadStart).Round(time.Millisecond))
	warnUnplaced(log, rulesFile)
	d.devices = f.NewGaugeVec(prometheus.GaugeOpts{Name: "fenceline_registry_devices",
		Help: "Registered devices by kind and site (the denominator of silence ratios)."}, []string{"kind", "site"})
	d.countDevices(rs.Registry)
	d.reloadOK.Set(1)
	d.reloadTime.SetToCurrentTime()

	deadDir, outboxDir, stateFile, err := stateDirs(cfg.Storage.Dir)
	if err != nil {
		return nil, err
	}
	d.stateFile = stateFile
	if err := rulesCutShort(rulesFile, stateFile); err != nil {
		return nil, err
	}
	if w := diskWarning(cfg); w != nil {
		log.Warn("storage.dir has less free space than the spool and the dead letters may take", "problem", w.Error())
	}

	mqttPassword, err := config.ReadSecret(cfg.MQTT.PasswordFile)
	if err != nil {
		return nil, fmt.Errorf("mqtt.password_file: %w", err)
	}
	mqttTLS, err := clientTLS("mqtt.tls", cfg.MQTT.TLS)
	if err != nil {
		return nil, err
	}
	influxTLS, err := clientTLS("influx.tls", cfg.Influx.TLS)
	if err != nil {
		return nil, err
	}
	token, tokenFrom, err := influxToken(cfg)
	if err != nil {
		return nil, err
	}
	if tokenFrom != "" {
		log.Info("influxdb token read", "from", tokenFrom)
	}
	if d.sec, err = buildSecurity(cfg, rs.Registry, log, reg); err != nil {
		return nil, err
	}

	// Batches InfluxDB does not take wait here, fsynced, and their
	// messages are acked; the writer runs the spool and replays it.
	sp, err := spool.Open(filepath.Join(cfg.Storage.Dir, "spool"), spool.Options{MaxBytes: cfg.Storage.SpoolMaxBytes}, log, reg)
	if err != nil {
		return nil, fmt.Errorf("storage.dir spool: %w", err)
	}
	// The bound of the tags whose values are device text: the writer's
	// encoder applies it, once per tag set it has not cached.
	tags, err := tagcap.Open(filepath.Join(cfg.Storage.Dir, "tag-values.json"), cfg.Influx.MaxTagValues, log, reg)
	if err != nil {
		return nil, fmt.Errorf("storage.dir: %w", err)
	}
	d.writer, err = influxwriter.New(influxwriter.Config{
		URL:           cfg.Influx.URL,
		Token:         token,
		Org:           cfg.Influx.Org,
		Bucket:        cfg.Influx.Bucket,
		BatchSize:     cfg.Influx.BatchSize,
		FlushInterval: cfg.Influx.FlushInterval.D(),
		MaxPending:    cfg.Influx.MaxPendingLines,
		Concurrency:   cfg.Influx.Concurrency,
		Timeout:       cfg.Influx.Timeout.D(),
		Gzip:          cfg.Influx.Gzip,
		TLS:           influxTLS,
		Spool:         sp,
		Rejected:      d.deadLetterSpooled,
		Tags:          tags,
	}, log, reg)
	if err != nil {
		return nil, fmt.Errorf("influx: %w", err)
	}

	d.dead, err = deadletter.Open(deadDir, deadletter.Options{MaxBytes: cfg.Storage.DeadLetterMaxBytes}, log, reg)
	if err != nil {
		return nil, fmt.Errorf("storage.dir dead letters: %w", err)
	}

	d.mqttSink, err = sink.NewMQTT(sink.MQTTConfig{
		Broker:               cfg.MQTT.Broker,
		ClientID:             cfg.MQTT.ClientID + "-alerts",
		Username:             cfg.MQTT.Username,
		Password:             mqttPassword,
		TLS:                  mqttTLS,
		TopicPrefix:          cfg.Alerts.TopicPrefix,
		KeepAlive:            cfg.MQTT.KeepAlive.D(),
		ConnectTimeout:       cfg.MQTT.ConnectTimeout.D(),
		MaxReconnectInterval: cfg.MQTT.MaxReconnectInterval.D(),
	}, log)
	if err != nil {
		return nil, fmt.Errorf("alert publisher: %w", err)
	}
	sent := []outbox.Sink{d.mqttSink}
	for i, w := range cfg.Webhooks {
		secret, err := config.ReadSecret(w.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("webhooks[%d].secret_file: %w", i, err)
		}
		client, err := webhookClient(i, w)
		if err != nil {
			return nil, err
		}
		wh, err := sink.NewWebhook(w.URL, []byte(secret), w.Timeout.D(), client, i)
		if err != nil {
			return nil, err
		}
		// The sink's name (metrics, the outbox) is drawn from the URL, which
		// is not logged (it may hold a token): this line maps it to the list.
		log.Info("webhook", "index", i, "sink", wh.Name(), "host", wh.Host())
		d.webhooks = append(d.webhooks, wh)
		sent = append(sent, wh)
	}
	warnWebhooks(cfg, log)
	sinks := d.sec.wrapSinks(sink.NewInflux(d.writer), sent...)
	d.outbox, err = outbox.Open(outboxDir, sinks, outbox.Options{ShownID: d.sec.alertID, MaxPending: cfg.Alerts.MaxPending}, log, reg)
	if err != nil {
		return nil, fmt.Errorf("storage.dir outbox: %w", err)
	}

	d.engine = engine.New(rs, engineOptions(cfg), log, reg)
	d.holds = newStateHolds(d.engine, d.outbox, log.With("component", "alerts"), reg)
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "fenceline_alerts_state_held_messages",
		Help: "Evaluations that opened or resolved an incident whose alerts (and ack) wait for the next save of the alert state."},
		func() float64 { return float64(d.holds.waiting()) })
	var savedSeqs json.RawMessage // the devices' seq counters, saved with the state
	var seqsUnsure bool           // saved before an unclean stop
	data, resolved, restoredFrom, rerr := restoreState(d.engine, stateFile, log)
	fromPrev := rerr == nil && restoredFrom != stateFile
	d.stateFileBad = fromPrev || (rerr != nil && !errors.Is(rerr, os.ErrNotExist))
	if d.stateFileBad {
		stateLost.Set(1)
	}
	switch {
	case rerr == nil:
		d.stateBytes.Set(float64(len(data))) // not 0 until the first save
		log.Info("alert state restored", "file", restoredFrom, "resolved", len(resolved))
		var attached struct {
			Seqs      json.RawMessage `json:"seqs"`
			Unsent    unsentAlerts    `json:"unsent_alerts"`
			CleanStop bool            `json:"clean_stop"`
			SavedAt   time.Time       `json:"saved_at"`
		}
		if err := json.Unmarshal(data, &attached); err == nil {
			savedSeqs, seqsUnsure = attached.Seqs, !attached.CleanStop || fromPrev
		}
		if seqsUnsure {
			// The messages evaluated after the save were acked: a subject
			// seen then is not to be taken for gone. They came before the
			// next save was due, which did not happen (the stop, or saves
			// failing: then up to the file's time, at least).
			savedAt := attached.SavedAt
			if fi, err := os.Stat(restoredFrom); err == nil && savedAt.IsZero() {
				savedAt = fi.ModTime()
			}
			d.engine.AfterUncleanStop(savedAt.Add(saveEvery))
		}
		// The alerts of incidents opened or resolved that the saved state
		// holds but the outbox never took (a crash between the save and
		// their queueing; the saved state has evaluated their messages,
		// which raise them no more): saved with the state, and the firing
		// of every open incident (for a state saved without them).
		var untaken []model.Alert
		for _, a := range append(attached.Unsent, d.engine.OpenFirings()...) {
			if !d.outbox.Knows(&a) {
				untaken = append(untaken, a)
			}
		}
		if len(untaken) > 0 {
			log.Warn("queueing the alerts of incidents opened or resolved that the outbox never took (a crash right after the alert state was saved)", "alerts", len(untaken))
			d.outbox.Append(untaken, func(err error) {
				if err != nil {
					log.Error("could not queue the alerts of incidents opened or resolved", "err", err, "alerts", len(untaken))
				}
			})
		}
		if len(resolved) > 0 {
			d.outbox.Append(resolved, func(err error) {
				if err != nil {
					log.Error("could not queue the alerts that resolve incidents of changed rules", "err", err, "alerts", len(resolved))
				}
			})
		}
	case errors.Is(rerr, os.ErrNotExist):
		// Said, for the start that was not meant to be a first one (a
		// storage.dir changed, a volume not mounted): the open incidents
		// of the last run are not known here.
		log.Info("no alert state saved here: a first start, with no open incidents", "file", stateFile)
	default:
		log.Error("alert state not restored; starting with empty windows and no open incidents: "+
			"the firings of incidents open before are never resolved (close them by hand; their ids are in the outbox and the alert measurement)",
			"file", stateFile, "err", rerr)
	}
	// The alerts' ordinals (their InfluxDB point times) go on past those the
	// outbox took, which a crash may have taken past the saved state's.
	d.engine.OrdinalsFrom(d.outbox.MaxOrdinal())

	d.source = mqttsource.New(cfg.MQTT, mqttsource.Options{
		Password:         mqttPassword,
		TLS:              mqttTLS,
		MaxInflight:      cfg.Ingest.MaxInflight,
		MaxInflightBytes: cfg.Ingest.MaxInflightBytes,
		StateDir:         cfg.Storage.Dir,
	}, log, reg)

	d.pipe = pipeline.New(pipeline.Options{
		Decode: decode.Options{
			MaxPayload: cfg.Ingest.MaxPayloadBytes,
			MaxFuture:  cfg.Ingest.MaxFuture.D(),
		},
		Retained:   cfg.MQTT.Retained,
		Tick:       cfg.Alerts.EvaluateEvery.D(),
		Signatures: d.sec.sigs,
		Budget: budget.New(budget.Limits{
			MessagesPerSecond: cfg.Ingest.DeviceBudget.MessagesPerSecond,
			MessageBurst:      cfg.Ingest.DeviceBudget.MessageBurst,
			ReadingsPerSecond: cfg.Ingest.DeviceBudget.ReadingsPerSecond,
			ReadingBurst:      cfg.Ingest.DeviceBudget.ReadingBurst,
			MaxDevices:        max(rs.Registry.Len(), 1000),
		}, reg),
		Protect:   d.sec.prot,
		State:     d.holds,
		Listening: d.source.Subscribed,
	}, rs.Registry, d.engine, d.writer, deadLetters{d.dead}, d.outbox, log, reg)
	if len(savedSeqs) > 0 {
		// Saved with the engine's state, they hold the messages it has
		// evaluated: those are duplicates after the restart too.
		if err := d.pipe.RestoreSeqs(savedSeqs, func(id string) bool { return rs.Registry.Lookup(id) != nil }); err != nil {
			log.Warn("devices' seq counters not restored; messages sent again after the restart are evaluated again", "file", stateFile, "err", err)
		} else if seqsUnsure {
			d.pipe.SeqsFromUncleanStop()
			log.Info("the last run did not stop cleanly: each device's first seq jump counts as unknown, not lost (fenceline_ingest_sequence_unknown_messages_total): the messages after the last save may have been stored before the stop")
		}
	}

	// Readiness: subscribed, and able to store (InfluxDB takes writes, or the
	// spool does within storage.spool_max_bytes). /readyz and fenceline_ready
	// read the same checks.
	checks := map[string]httpapi.Check{
		"mqtt": func() error {
			if !d.source.Subscribed() {
				if d.source.IntakeFull() {
					// The broker's answer queues behind messages paho
					// cannot hand over: the cause is storage.
					return errors.New("not subscribed yet: the broker's answer waits behind a full intake (storage is not keeping up)")
				}
				return errors.New("not subscribed to the broker")
			}
			return nil
		},
		"influx": d.writer.ReadyToStore,
		// Rejects and alerts that cannot be written are kept and retried,
		// their messages unacked: not ready until the disk takes them.
		"dead_letters": d.dead.Healthy,
		"outbox":       d.outbox.Healthy,
	}
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "fenceline_ready",
		Help: "1 while /readyz would answer 200: subscribed to the broker and able to store."}, func() float64 {
		for _, c := range checks {
			if c() != nil {
				return 0
			}
		}
		return 1
	})

	if cfg.HTTP.Listen != "" {
		hc, err := httpConfig(cfg)
		if err != nil {
			return nil, err
		}
		d.http, err = httpapi.New(hc, reg, checks, d.reloadAsked, log)
		if err != nil {
			return nil, err
		}
	}
	return d, nil
}

// deadLetters adapts the dead-letter store to the pipeline.
type deadLetters struct{ s *deadletter.Store }

func (d deadLetters) Append(r pipeline.DeadLetter, done func(error)) {
	d.s.Append(deadletter.Record(r), done)
}

func (d deadLetters) Kept(r pipeline.DeadLetter) bool { return d.s.Kept(deadletter.Record(r)) }

// deadLetterSpooled keeps spooled lines that InfluxDB refused for good on
// replay: their messages were acked when spooled, so the lines themselves
// are the dead letter. It returns once the record is durable (the replay
// moves on only then); until Run, and after Close, it fails and the replay
// tries again later.
func (d *daemon) deadLetterSpooled(lines []byte, perr *influxwriter.PermanentError) error {
	if d.dead == nil {
		return errors.New("dead letters not open yet")
	}
	// The message was acked when its lines were spooled: the line itself
	// is what is left of it, and names where it came from.
	o := influxwriter.OriginOf(lines)
	res := make(chan error, 1)
	d.dead.Append(deadletter.Record{
		Received: time.Now(), Topic: o.Topic, Reason: "storage_rejected", Index: o.Index,
		Detail:  "spooled line refused by InfluxDB on replay (the payload is the line, not the message): " + perr.Error(),
		Payload: lines,
	}, func(err error) { res <- err })
	if err := <-res; err != nil {
		return err
	}
	switch {
	case o.Alert && d.outbox != nil:
		d.outbox.DroppedLater("influx", o.AlertID, o.Rule, perr.Error())
	case o.Topic != "" && d.pipe != nil:
		d.pipe.StorageRejected(max(bytes.Count(lines, []byte("\n")), 1))
	}
	return nil
}

// run starts the components and, when ctx ends or one of them fails, stops
// them in order. See the package doc.
func (d *daemon) run(ctx context.Context, opts Options) error {
	// Until this run saves, the state file says how the last one stopped:
	// a crash before the first periodic save would be restored as that
	// clean stop, and the messages this run took counted lost. Saved now,
	// before any message, it says this run has not stopped cleanly. (A
	// failure is told, and the periodic saves try again.)
	if err := d.saveAll(func(write func()) error { write(); return nil }); err != nil {
		d.stateSaveFailures.Inc()
		d.log.Error("could not save alert state at start", "err", err)
	}
	intakeCtx, stopIntake := context.WithCancel(context.Background())
	backCtx, stopBack := context.WithCancel(context.Background())
	outboxCtx, stopOutbox := context.WithCancel(context.Background())
	httpCtx, stopHTTP := context.WithCancel(context.Background())
	defer stopIntake()
	defer stopBack()
	defer stopOutbox()
	defer stopHTTP()

	failed := make(chan error, 8)
	var g errgroup.Group
	start := func(name string, ctx context.Context, fn func(context.Context) error) {
		g.Go(func() error {
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				failed <- fmt.Errorf("%s: %w", name, err)
			}
			return nil
		})
	}
	start("influx writer", backCtx, d.writer.Run)
	start("dead letters", backCtx, d.dead.Run)
	outboxDone := make(chan struct{})
	start("outbox", outboxCtx, func(ctx context.Context) error {
		defer close(outboxDone)
		return d.outbox.Run(ctx)
	})
	d.mqttSink.Start()
	if d.http != nil {
		start("http", httpCtx, d.http.Run)
		d.log.Info("http listening", "addr", d.http.Addr())
		if opts.HTTPAddr != nil {
			opts.HTTPAddr(d.http.Addr())
		}
	}
	pipeDone := make(chan struct{})
	start("pipeline", intakeCtx, func(ctx context.Context) error {
		defer close(pipeDone)
		return d.pipe.Run(ctx, d.source.Messages())
	})
	start("mqtt", intakeCtx, d.source.Run)
	saveEvery := saveInterval(opts)
	start("state saver", intakeCtx, func(ctx context.Context) error { return d.saveStatePeriodically(ctx, saveEvery) })
	d.log.Info("fenceline running", "version", Version(), "mqtt", d.source.Describe(), "influx", config.RedactURL(d.cfg.Influx.URL), "bucket", d.cfg.Influx.Bucket)
	d.notify("READY=1")
	if opts.Ready != nil {
		close(opts.Ready)
	}

	defer context.AfterFunc(ctx, d.stopNow)()
	// SIGHUP reloads run in a goroutine of their own, one at a time (a
	// burst is one: the channel holds one request), so that a SIGTERM is
	// never held up by one reading a large rules file. Not waited for at the
	// end either: one still reading then applies nothing (its ctx is done).
	go func() {
		for {
			select {
			case <-d.stopping.Done():
				return
			case <-opts.Reload:
				_, _ = d.reload(d.stopping, nil) // it logs a refusal, and its note
			}
		}
	}()
	var runErr error
	select {
	case <-ctx.Done():
		d.log.Info("shutting down")
	case runErr = <-failed:
		d.log.Error("component failed; shutting down", "err", runErr)
	}
	d.stopNow()

	d.notify("STOPPING=1")
	err := teardown(d.log, d.cfg.Ingest.DrainTimeout.D(), []shutdownStep{
		{"stop taking messages", func(ctx context.Context) error {
			d.source.Stop()
			stopIntake()
			select {
			case <-pipeDone:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}},
		// Alerts are durable in the outbox: stop delivering them before
		// the writer (one of their sinks) closes; the next start resumes.
		{"stop alert delivery", func(ctx context.Context) error {
			stopOutbox()
			select {
			case <-outboxDone:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}},
		// Acks of drained messages still reach the broker: the source
		// disconnects last.
		{"drain writes", d.writer.Close},
		{"close dead letters", func(context.Context) error { return d.dead.Close() }},
		{"save alert state", func(context.Context) error { return d.saveState() }},
	})
	stopBack()
	stopHTTP()
	_ = g.Wait()
	if err := errors.Join(err, d.outbox.Close()); err != nil {
		// A shutdown that could not drain everything within
		// ingest.drain_timeout (InfluxDB stalled, a full disk) loses
		// nothing: what was not made durable was not acked, and the broker
		// redelivers it to the next start. The exit status stays that of
		// the run: 0 after SIGTERM, as the contract says.
		d.log.Warn("shutdown did not drain everything; the broker redelivers what was not acknowledged", "err", err)
	}
	d.mqttSink.Close()
	for _, w := range d.webhooks {
		w.Close()
	}
	d.source.Close(time.Second)
	return runErr
}

// reload re-reads the rules file, compiles it and swaps it in whole; on any
// problem the running rules stay, and the problems are logged (where they
// are: their text may quote a watchlist entry) and returned (the POST
// /-/reload answer, for the operator who asked).
//
// run, when not nil, links the reload to the request that asked for it
// (see reloadAsked).
func (d *daemon) reload(ctx context.Context, run *reloadRun) (string, error) {
	select {
	case d.reloading <- struct{}{}:
	case <-ctx.Done():
		return "", d.reloadNotApplied(ctx, run)
	}
	defer func() { <-d.reloading }()
	if ctx.Err() != nil {
		return "", d.reloadNotApplied(ctx, run)
	}
	d.notify("RELOADING=1")
	defer d.notify("READY=1")
	rs, r, err := reloadRules(d.cfg)
	if err == nil {
		err = sectionsLost(r, d.engine.Ruleset())
	}
	if err == nil {
		warnUnplaced(d.log, r)
	}
	var keys devicesig.Keys
	if err == nil {
		keys, err = d.sec.reloadKeys(d.cfg)
	}
	if err != nil {
		d.reloadOK.Set(0)
		d.reloadsFailed.Inc()
		d.log.Error("reload refused; keeping the previous rules (the reload answer and fenceline check say why)", "problems", ProblemsForLog(err))
		if note := d.daemonFileNote(); note != "" {
			return "", errors.Join(err, errors.New(note)) // told with the problems, not only once they are fixed
		}
		return "", err
	}
	var alerts int
	if run != nil {
		close(run.swapping)
	}
	err = d.pipe.Do(ctx, func() {
		resolved := d.engine.Swap(rs)
		d.pipe.SetRegistry(rs.Registry)
		d.sec.setKeys(keys, rs.Registry, d.log)
		alerts = len(resolved)
		if len(resolved) > 0 {
			// Held for the next save like any incident change: a crash after
			// a save without the incidents must find their resolutions in it.
			d.holds.Hold(resolved, func(err error) {
				if err != nil {
					d.log.Error("could not queue alerts resolved by the reload", "err", err)
				}
			})
		}
	})
	if err != nil {
		return "", d.reloadNotApplied(ctx, run)
	}
	d.countDevices(rs.Registry)
	d.reloadOK.Set(1)
	d.reloadTime.SetToCurrentTime()
	d.log.Info("rules reloaded", "file", d.cfg.RulesFile, "devices", rs.Registry.Len(), "alerts_from_swap", alerts)
	return d.daemonFileNote(), nil
}

// reloadRules reads the rules for a reload (a test makes it slow).
var reloadRules = loadRules

// reloadRun links a reload to the request that asked for it.
type reloadRun struct {
	swapping  chan struct{} // closed when the reload hands the new rules to the pipeline
	abandoned atomic.Bool   // the request was answered "not applied" (and that logged)
}

type reloadResult struct {
	note string
	err  error
}

// reloadAsked is the reload of POST /-/reload: not applied if the client
// hangs up, or a shutdown begins, before the pipeline takes the new rules.
// The reload runs in a goroutine of its own, so that the answer does not
// wait for a large rules file to be read to its end (nor does the HTTP
// server's shutdown wait for that answer).
func (d *daemon) reloadAsked(ctx context.Context) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(d.stopping, cancel)
	run := &reloadRun{swapping: make(chan struct{})}
	done := make(chan reloadResult, 1)
	go func() {
		defer cancel()
		defer stop()
		note, err := d.reload(ctx, run)
		done <- reloadResult{note, err}
	}()
	select {
	case r := <-done:
		return r.note, r.err
	case <-ctx.Done():
	}
	select {
	case <-run.swapping:
		// At the swap: its answer comes at once (Do waits for nothing
		// but the swap with ctx done), and is the truth.
		r := <-done
		return r.note, r.err
	default:
		// Before it: the reload finds ctx done at its next step (Do
		// checks it first) and applies nothing.
		run.abandoned.Store(true)
		return "", d.reloadNotApplied(ctx, nil)
	}
}

// reloadNotApplied logs and returns why a reload whose ctx ended was not
// applied (the rules in force are the old ones; nothing was refused). Not
// logged again for a run its request already answered.
func (d *daemon) reloadNotApplied(ctx context.Context, run *reloadRun) error {
	why := "its request ended"
	if d.stopping.Err() != nil || ctx.Err() == nil {
		// ctx.Err() == nil: the pipeline stopped (pipeline.ErrStopped)
		why = "fenceline is shutting down"
	}
	if run == nil || !run.abandoned.Load() {
		d.log.Warn("reload not applied: "+why+"; the rules in force are unchanged", "file", d.cfg.RulesFile)
	}
	return fmt.Errorf("%w: %s", httpapi.ErrReloadNotApplied, why)
}

// daemonFileNote says, and logs, that the daemon's file changed since start
// (or is gone), which a reload does not apply; "" when it did not.
func (d *daemon) daemonFileNote() string {
	sum, ok := fileSum(d.cfg.Path)
	if d.cfg.Path == "" || ok && sum == d.cfgSum {
		return ""
	}
	const note = "the daemon's configuration file changed since start (or cannot be read), and a reload does not read it (only the rules file): restart fenceline to apply it, after fenceline check"
	d.log.Warn(note, "file", d.cfg.Path)
	return note + ": " + d.cfg.Path
}

// notify tells systemd the daemon's state (see sdNotify).
func (d *daemon) notify(state string) {
	if err := sdNotify(state); err != nil {
		d.log.Warn("could not tell systemd the daemon's state", "state", state, "err", err)
	}
}

// countDevices sets fenceline_registry_devices from a registry.
func (d *daemon) countDevices(r *model.Registry) {
	d.devices.Reset()
	r.All(func(dev *model.Device) {
		d.devices.WithLabelValues(string(dev.Kind), dev.Site).Inc()
	})
}

// stateSaveEvery is how often the alert state is written while running; a
// crash loses at most this much of windows and cooldowns. When incidents
// open or resolve, the state is written sooner (see saveStatePeriodically).
const stateSaveEvery = 30 * time.Second

// Saves after incidents opened or resolved: looked for every saveCheck,
// at most once per saveCost times the last save's duration, so that a
// state of millions of entries (a second or more to save) does not take the
// pipeline's time over and over. When alerts wait for a save it is made at
// once, at most once per saveMin or per saveHeldCost times the last save's
// duration: a large state then costs more CPU, not minutes of delay.
const (
	saveCheck    = time.Second
	saveCost     = 10
	saveMin      = 100 * time.Millisecond
	saveHeldCost = 2
)

func (d *daemon) saveStatePeriodically(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(min(every, saveCheck))
	defer t.Stop()
	var turn <-chan time.Time // a save waiting for its turn
	last, cost, saved := time.Now(), time.Duration(0), d.engine.IncidentChanges()
	failed := 0 // saves that failed since the last that did not
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-d.holds.kick:
		case <-turn:
		}
		turn = nil
		changes := d.engine.IncidentChanges()
		since := time.Since(last)
		if since < every {
			if changes == saved {
				continue
			}
			gap := max(saveCheck, saveCost*cost)
			if d.holds.waiting() > 0 {
				gap = max(saveMin, saveHeldCost*cost)
			}
			if since < gap {
				turn = time.After(gap - since)
				continue
			}
		}
		// The engine's state is copied between two evaluations, even
		// while the pipeline waits on InfluxDB; encoded and fsynced here.
		start := time.Now()
		err := d.saveAll(func(write func()) error { d.pipe.WithEngine(write); return nil })
		if ctx.Err() != nil {
			return nil // shutting down: the final save follows
		}
		last, cost, saved = time.Now(), time.Since(start), changes
		switch {
		case err != nil:
			failed++
			d.stateSaveFailures.Inc()
			d.log.Error("could not save alert state", "err", err)
		case failed > 0:
			// Said: FencelineStateSaveFailing goes on firing for its range,
			// and the runbook asks not to restart before a save succeeded.
			d.log.Info("alert state saved again after failures", "failed_saves", failed, "file", d.stateFile)
			failed = 0
		}
	}
}

// saveState writes the engine's state; called once the pipeline has
// stopped, it is the save of a clean stop.
func (d *daemon) saveState() error {
	d.saveMu.Lock()
	d.cleanStop = true
	d.saveMu.Unlock()
	return d.saveAll(func(write func()) error { write(); return nil })
}

// saveAll writes the engine's state (run runs its copying where the
// engine may be used) and the signature marks.
func (d *daemon) saveAll(run func(write func()) error) error {
	d.saveMu.Lock()
	defer d.saveMu.Unlock()
	return errors.Join(d.writeState(run), d.sec.saveState())
}

// fileSum is the SHA-256 of the file at path; false when it cannot be read
// (or there is none: a configuration of defaults).
func fileSum(path string) ([sha256.Size]byte, bool) {
	if path == "" {
		return [sha256.Size]byte{}, false
	}
	// As config.Load reads it: a FIFO put in its place would hold every
	// reload from then on, /dev/zero take all the memory.
	data, err := config.ReadFile(path, config.MaxFileBytes)
	if err != nil {
		return [sha256.Size]byte{}, false
	}
	return sha256.Sum256(data), true
}

// restoreState restores the engine's state from path, or, when that cannot
// be read or restored, from the previous save (path.prev). It returns the
// data restored, the file it was restored from, and the alerts that resolve
// the incidents of rules that changed meanwhile; an error wrapping
// os.ErrNotExist when there was no state to restore.
func restoreState(e *engine.Engine, path string, log *slog.Logger) (_ []byte, _ []model.Alert, from string, _ error) {
	var errs []error
	for i, p := range []string{path, path + ".prev"} {
		data, err := readState(p)
		if err == nil {
			var resolved []model.Alert
			if resolved, err = e.RestoreState(data); err == nil {
				if i > 0 {
					var saved time.Time
					if fi, err := os.Stat(p); err == nil {
						saved = fi.ModTime()
					}
					log.Error("alert state restored from the previous save, as the last one cannot be read: incidents opened or resolved since are forgotten, "+
						"and a firing delivered since may never be resolved (look in the alert measurement for firings without a resolution since the previous save, and close them by hand)",
						"file", p, "previous_save", saved.UTC().Format(time.RFC3339), "err", errs[0])
				}
				return data, resolved, p, nil
			}
		}
		if i == 0 && errors.Is(err, os.ErrNotExist) {
			if _, perr := os.Stat(path + ".prev"); errors.Is(perr, os.ErrNotExist) {
				return nil, nil, "", err // a first start
			}
		}
		if i > 0 && errors.Is(err, os.ErrNotExist) {
			// No previous save beside a damaged last one: the error is the
			// damage, not a first start.
			errs = append(errs, fmt.Errorf("%s: there is no previous save", p))
			continue
		}
		errs = append(errs, fmt.Errorf("%s: %w", p, err))
	}
	return nil, nil, "", errors.Join(errs...)
}

// maxStateBytes bounds a state file fenceline reads back: far above any it
// writes (hundreds of MB for the largest deployments), it only stops a
// device in its place (/dev/zero) from taking all the memory.
const maxStateBytes = 16 << 30

// readState reads a state file fenceline wrote: a regular file only (a
// FIFO in its place would hold the start for ever), within maxStateBytes.
func readState(path string) ([]byte, error) { return config.ReadFile(path, maxStateBytes) }

// keepPrevious keeps the state file about to be replaced as path.prev (a
// hard link: the replacing rename leaves it the old content), to restore
// from when the new one cannot be read — a disk that corrupts or truncates
// it would otherwise make fenceline forget its open incidents, whose
// firings would then never be resolved.
//
// The link is made beside .prev and renamed over it, so that .prev is only
// ever replaced by a save: when the state file cannot be linked (none
// before the first save; something else in its place, which also fails the
// save), the last .prev stays — it may be all a restart has.
func keepPrevious(path string) {
	prev, tmp := path+".prev", path+".prev.tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return
	}
	if os.Link(path, tmp) != nil {
		return // the next save tries again
	}
	if os.Rename(tmp, prev) != nil {
		_ = os.Remove(tmp)
	}
}

// writeState replaces the state file with the engine's state. run runs
// the copying of the state where the engine may be used (between two
// evaluations: Pipeline.WithEngine); encoding and writing the copy —
// a second or more for a state of hundreds of MB — happen here, while the
// pipeline goes on. What is held for a save is taken with the copy: it was
// held after its change, so the copy holds the change.
func (d *daemon) writeState(run func(copyState func()) error) error {
	var snap *engine.StateSnapshot
	var held []*heldAlerts
	var unsent unsentAlerts
	var seqs pipeline.SeqSnapshot
	if err := run(func() {
		snap, seqs = d.engine.Snapshot(), d.pipe.SeqSnapshot()
		held, unsent = d.holds.take()
	}); err != nil {
		return err
	}
	snap.Attach("seqs", seqs)
	snap.Attach("unsent_alerts", unsent)
	// A save with the pipeline stopped holds every message evaluated; a
	// start from any other save cannot tell the seqs after it received
	// from lost (see Pipeline.SeqsFromUncleanStop).
	snap.Attach("clean_stop", json.RawMessage(strconv.FormatBool(d.cleanStop)))
	snap.Attach("saved_at", json.RawMessage(strconv.Quote(time.Now().UTC().Format(time.RFC3339Nano))))
	defer d.holds.release(held)
	start := time.Now()
	f, err := atomicfile.Create(d.stateFile)
	if err != nil {
		return err
	}
	if err := snap.Save(f); err != nil {
		f.Abort()
		return err
	}
	if !d.stateFileBad {
		keepPrevious(d.stateFile)
	}
	if err := f.Commit(); err != nil {
		return err
	}
	d.stateFileBad = false
	d.stateSaveSeconds.Observe(time.Since(start).Seconds())
	d.stateSaved.SetToCurrentTime()
	if fi, err := os.Stat(d.stateFile); err == nil {
		d.stateBytes.Set(float64(fi.Size()))
	}
	return nil
}
