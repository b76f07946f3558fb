package brisk

// #include "bg.h"
import "C"

import (
	"runtime/cgo"
	"time"
	"unsafe"
)

// EventKind is what an event reports.
type EventKind uint32

// The event kinds.
const (
	EventCommand         EventKind = C.BRISK_EVENT_COMMAND
	EventRetry           EventKind = C.BRISK_EVENT_RETRY
	EventConnect         EventKind = C.BRISK_EVENT_CONNECT
	EventDisconnect      EventKind = C.BRISK_EVENT_DISCONNECT
	EventHealthCheck     EventKind = C.BRISK_EVENT_HEALTH_CHECK
	EventPoolWait        EventKind = C.BRISK_EVENT_POOL_WAIT
	EventTopology        EventKind = C.BRISK_EVENT_TOPOLOGY
	EventCacheInvalidate EventKind = C.BRISK_EVENT_CACHE_INVALIDATE // see Event.CacheReason
	EventResubscribe     EventKind = C.BRISK_EVENT_RESUBSCRIBE      // a subscriber subscribed again after a loss
)

// CacheReason is why client-side cache entries were dropped (Event.CacheReason).
type CacheReason uint32

// The reasons.
const (
	CacheReasonNone           CacheReason = C.BRISK_CACHE_REASON_NONE // not an EventCacheInvalidate
	CacheReasonInvalidation   CacheReason = C.BRISK_CACHE_REASON_INVALIDATION
	CacheReasonFlush          CacheReason = C.BRISK_CACHE_REASON_FLUSH
	CacheReasonConnectionLost CacheReason = C.BRISK_CACHE_REASON_CONNECTION_LOST
	CacheReasonTopology       CacheReason = C.BRISK_CACHE_REASON_TOPOLOGY
)

// Event is one finished piece of work (never arguments or values).
type Event struct {
	Kind          EventKind
	Status        Status
	Command       string // "GET", "PIPELINE", "MULTI"; "" for events not about a command
	Duration      time.Duration
	Attempt       int
	ServerAddress string
	ErrorType     string // the server's error code or the status name; "" on success
	BatchSize     int    // EventCacheInvalidate: keys named or entries dropped; EventResubscribe: subscriptions
	DB            int
	CacheReason   CacheReason // EventCacheInvalidate only
}

//export briskGoOnEvent
func briskGoOnEvent(h C.uintptr_t, e *C.bg_event) {
	fn := cgo.Handle(h).Value().(func(Event))
	ev := Event{
		Kind:        EventKind(e.kind),
		Status:      Status(e.status),
		Duration:    time.Duration(e.duration_us) * time.Microsecond,
		Attempt:     int(e.attempt),
		BatchSize:   int(e.batch_size),
		DB:          int(e.db),
		CacheReason: CacheReason(e.cache_reason),
	}
	if e.command_len > 0 {
		ev.Command = string(unsafe.Slice((*byte)(unsafe.Pointer(e.command)), int(e.command_len)))
	}
	if e.server_address != nil {
		ev.ServerAddress = C.GoString(e.server_address)
	}
	if e.error_type != nil {
		ev.ErrorType = C.GoString(e.error_type)
	}
	fn(ev)
}

// Stat names a counter or gauge of Client.Stat.
type Stat uint32

// The counters and gauges.
const (
	StatCommands            Stat = C.BRISK_STAT_COMMANDS
	StatErrors              Stat = C.BRISK_STAT_ERRORS
	StatRetries             Stat = C.BRISK_STAT_RETRIES
	StatTimeouts            Stat = C.BRISK_STAT_TIMEOUTS
	StatConnects            Stat = C.BRISK_STAT_CONNECTS
	StatReconnects          Stat = C.BRISK_STAT_RECONNECTS
	StatHealthChecks        Stat = C.BRISK_STAT_HEALTH_CHECKS
	StatHealthCheckFailures Stat = C.BRISK_STAT_HEALTH_CHECK_FAILURES
	StatPoolWaits           Stat = C.BRISK_STAT_POOL_WAITS
	StatPoolExhausted       Stat = C.BRISK_STAT_POOL_EXHAUSTED
	StatPoolOpen            Stat = C.BRISK_STAT_POOL_OPEN
	StatPoolIdle            Stat = C.BRISK_STAT_POOL_IDLE
	StatCacheHits           Stat = C.BRISK_STAT_CACHE_HITS
	StatCacheMisses         Stat = C.BRISK_STAT_CACHE_MISSES
	StatCacheInvalidations  Stat = C.BRISK_STAT_CACHE_INVALIDATIONS
	StatTopologyRefreshes   Stat = C.BRISK_STAT_TOPOLOGY_REFRESHES
	StatRedirects           Stat = C.BRISK_STAT_REDIRECTS
	StatCacheEntries        Stat = C.BRISK_STAT_CACHE_ENTRIES // gauge
	StatCacheBytes          Stat = C.BRISK_STAT_CACHE_BYTES   // gauge
	StatCacheEvictions      Stat = C.BRISK_STAT_CACHE_EVICTIONS
	StatPubSubMessages      Stat = C.BRISK_STAT_PUBSUB_MESSAGES
	StatPubSubDropped       Stat = C.BRISK_STAT_PUBSUB_DROPPED
	StatPubSubResubscribes  Stat = C.BRISK_STAT_PUBSUB_RESUBSCRIBES
)

var statNames = map[Stat]string{
	StatCommands: "commands", StatErrors: "errors", StatRetries: "retries",
	StatTimeouts: "timeouts", StatConnects: "connects", StatReconnects: "reconnects",
	StatHealthChecks: "health_checks", StatHealthCheckFailures: "health_check_failures",
	StatPoolWaits: "pool_waits", StatPoolExhausted: "pool_exhausted", StatPoolOpen: "pool_open",
	StatPoolIdle: "pool_idle", StatCacheHits: "cache_hits", StatCacheMisses: "cache_misses",
	StatCacheInvalidations: "cache_invalidations", StatTopologyRefreshes: "topology_refreshes",
	StatRedirects: "redirects", StatCacheEntries: "cache_entries", StatCacheBytes: "cache_bytes",
	StatCacheEvictions: "cache_evictions", StatPubSubMessages: "pubsub_messages",
	StatPubSubDropped: "pubsub_dropped", StatPubSubResubscribes: "pubsub_resubscribes",
}
