// Package outbox makes alerts durable and delivers them to every sink (MQTT,
// the InfluxDB `alert` measurement, webhooks), so that an alert the engine
// raised survives a crash of fenceline and an outage of any sink.
//
// # Delivery guarantees
//
//   - Append calls done(nil) only after the alerts are fsynced to the log:
//     from then on they will be offered to every sink configured at that time,
//     across restarts, until the sink takes them or refuses them for good.
//   - Delivery is at least once per sink. The record saying "delivered" is
//     written after the sink returned, and its fsync is batched: a crash
//     between a delivery and that record's fsync delivers the alert again on
//     the next start. So does a publish whose PUBACK (or a webhook whose
//     response) was lost. Consumers deduplicate by the alert's id and state:
//     the firing and the resolved alert of one incident share the id.
//   - Per sink and per site (model.Alert.Site), alerts are delivered in the
//     order they were accepted. Each sink has one lane per site, a FIFO
//     delivered by a goroutine of its own: an alert a sink keeps failing
//     (an ACL that refuses one site's topic, a webhook answering 5xx to one
//     body) holds back the later alerts of its site for that sink
//     (head-of-line blocking is the price of that order), never those of
//     another site, nor another sink's. Border units subscribe per site
//     ({prefix}/{site}/alerts/+), so the order within a site is the one
//     that matters; alerts of different sites may reach a sink in another
//     order than they were accepted. A lane appears when an alert of its
//     site arrives (at Open, with what is pending for it in seq order; or
//     later, also while Run delivers) and goes once it is empty. A
//     BatchSink's batch is taken from one lane. Metrics stay per sink
//     (pending is the sum over the sink's lanes); the site is no label,
//     so that the series stay few and bounded by the configuration.
//   - Append drops an alert whose id+state was already accepted within the
//     last Options.DedupeWindow alerts (or is still pending): a redelivered
//     MQTT message that raises the same alert again is not delivered twice.
//   - A sink that returns an error wrapping ErrPermanent gives up on that
//     alert: it is dropped for that sink only, counted and logged at error
//     level, and its lane goes on with the next alert of the site. Any other
//     error is retried with capped, jittered backoff forever.
//   - Sinks are matched by name across restarts: an alert pending for a sink
//     that is no longer configured is dropped for it with a log line; a sink
//     that is new gets only alerts accepted after it was added.
//
// # Files
//
// dir holds outbox.log (the write-ahead log), LOCK (an flock held while the
// outbox is open, so that two processes never share the log) and, briefly
// during compaction, outbox.log.tmp.
//
// The log is a sequence of lines, each
//
//	<crc32c of the JSON, 8 lower-case hex digits> <space> <JSON record> <LF>
//
// with one of these records:
//
//	{"t":"hdr","v":1,"next":N,"ord":O}        first line: format version, next sequence number,
//	                                           largest alert ordinal taken
//	{"t":"keys","keys":[["id","state"],...]}  dedupe keys of alerts no longer pending (oldest first)
//	{"t":"alert","seq":N,"sinks":["mqtt",...],"alert":{...}}
//	                                           an accepted alert and the sinks it must still reach
//	                                           ("ord":O: its ordinal, when not N)
//	{"t":"done","seq":N,"sink":"mqtt"}         delivered to a sink ("drop":true: refused for good)
//
// An alert's ordinal (model.Alert.Ordinal, from which its InfluxDB point
// time is drawn) is the engine's, which a re-send shares with its firing;
// an alert without one takes its seq. The header keeps the largest taken:
// the engine's numbering goes on past it after a crash that lost the
// engine's last numbers, and Knows tells by it a firing taken too long ago
// for the dedupe window to remember.
//
// A line without its LF, or whose checksum or JSON is bad, at the end of the
// file is a write torn by a crash and is ignored; the same in the middle of
// the file is corruption: it is skipped, logged at error level and counted.
// Open rewrites the log (see compaction), so a torn tail never has records
// appended after it.
//
// # Compaction
//
// The log is rewritten — header, the dedupe window as "keys" records, the
// pending alerts with only the sinks they still lack — into outbox.log.tmp,
// fsynced and renamed over outbox.log (then the folder is fsynced). That
// happens on Open, after a failed write (whose tail is then of unknown
// content), and whenever the log has grown by Options.CompactMinBytes and by
// its own compacted size (or by just CompactMinBytes once nothing is
// pending), so the file stays within about twice its live content.
package outbox
