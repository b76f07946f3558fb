package brisk

// #include "bg.h"
import "C"

import (
	"fmt"
	"math"
	"net"
	"runtime/cgo"
	"strconv"
	"time"
	"unsafe"
)

// builder is the config being made by New's options.
type builder struct {
	cfg    *C.brisk_config
	events cgo.Handle
}

func (b *builder) dropEvents() {
	if b.events != 0 {
		b.events.Delete()
		b.events = 0
	}
}

// Option is a setting for New and Open; each is one brisk_config_set_* call (see brisk.h for
// what it does and its default).
type Option func(*builder) error

func cString(s string) (*C.char, func()) {
	p := C.CString(s)
	return p, func() { C.free(unsafe.Pointer(p)) }
}

func strOpt(fn C.bg_str_setter, v string) Option {
	return func(b *builder) error {
		p, free := cString(v)
		defer free()
		var msg *C.char
		return check(C.bg_set_str(fn, b.cfg, p, &msg), msg)
	}
}

// optStrOpt sends NULL for "" (clears the setting).
func optStrOpt(fn C.bg_str_setter, v string) Option {
	if v != "" {
		return strOpt(fn, v)
	}
	return func(b *builder) error {
		var msg *C.char
		return check(C.bg_set_str(fn, b.cfg, nil, &msg), msg)
	}
}

func u32Opt(fn C.bg_u32_setter, name string, v int64) Option {
	return func(b *builder) error {
		if v < 0 || v > math.MaxUint32 {
			return newError(StatusInvalidArgument, fmt.Sprintf("brisk: %s %d is out of range", name, v))
		}
		var msg *C.char
		return check(C.bg_set_u32(fn, b.cfg, C.uint32_t(v), &msg), msg)
	}
}

func msOpt(fn C.bg_u32_setter, name string, d time.Duration) Option {
	ms := d.Milliseconds()
	if d > 0 && ms == 0 {
		ms = 1 // a positive time under 1 ms is not "no limit"
	}
	return u32Opt(fn, name, ms)
}

func boolOpt(fn C.bg_bool_setter, v bool) Option {
	return func(b *builder) error {
		var msg *C.char
		return check(C.bg_set_bool(fn, b.cfg, C.bool(v), &msg), msg)
	}
}

func hostPortOpt(fn C.bg_host_port_setter, host string, port int) Option {
	return func(b *builder) error {
		if port <= 0 || port > math.MaxUint16 {
			return newError(StatusInvalidArgument, fmt.Sprintf("brisk: port %d is out of range", port))
		}
		p, free := cString(host)
		defer free()
		var msg *C.char
		return check(C.bg_set_host_port(fn, b.cfg, p, C.uint16_t(port), &msg), msg)
	}
}

// WithURL applies a URL's settings (what Open does first).
func WithURL(url string) Option { return strOpt(C.bg_str_setter(C.brisk_config_set_url), url) }

// WithAddress sets a TCP server.
func WithAddress(host string, port int) Option {
	return hostPortOpt(C.bg_host_port_setter(C.brisk_config_set_address), host, port)
}

// WithAddr sets a TCP server from "host:port".
func WithAddr(addr string) Option {
	host, port, err := splitHostPort(addr)
	if err != nil {
		return func(*builder) error { return err }
	}
	return WithAddress(host, port)
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err == nil {
		var port int
		if port, err = strconv.Atoi(p); err == nil {
			return host, port, nil
		}
	}
	return "", 0, newError(StatusInvalidArgument, fmt.Sprintf("brisk: %q is not host:port", addr))
}

// WithUnixSocket connects through a Unix domain socket.
func WithUnixSocket(path string) Option {
	return strOpt(C.bg_str_setter(C.brisk_config_set_unix_path), path)
}

// WithUsername sets the ACL user ("" clears it).
func WithUsername(name string) Option {
	return optStrOpt(C.bg_str_setter(C.brisk_config_set_username), name)
}

// WithPassword sets the password ("" clears it).
func WithPassword(password string) Option {
	return optStrOpt(C.bg_str_setter(C.brisk_config_set_password), password)
}

// WithDB selects a database on every connection.
func WithDB(db int) Option { return u32Opt(C.bg_u32_setter(C.brisk_config_set_db), "db", int64(db)) }

// WithClientName names every connection (CLIENT SETNAME; "" clears it).
func WithClientName(name string) Option {
	return optStrOpt(C.bg_str_setter(C.brisk_config_set_client_name), name)
}

// WithProtocol chooses RESP3 (3, the default) or RESP2 (2).
func WithProtocol(version int) Option {
	return u32Opt(C.bg_u32_setter(C.brisk_config_set_protocol), "protocol", int64(version))
}

// WithConnectTimeout bounds connecting (0: no limit).
func WithConnectTimeout(d time.Duration) Option {
	return msOpt(C.bg_u32_setter(C.brisk_config_set_connect_timeout_ms), "connect timeout", d)
}

// WithReadTimeout bounds the wait for a whole reply, from when the request was sent (0: no
// limit).
func WithReadTimeout(d time.Duration) Option {
	return msOpt(C.bg_u32_setter(C.brisk_config_set_read_timeout_ms), "read timeout", d)
}

// WithWriteTimeout bounds writing a request (0: no limit).
func WithWriteTimeout(d time.Duration) Option {
	return msOpt(C.bg_u32_setter(C.brisk_config_set_write_timeout_ms), "write timeout", d)
}

// WithTCPKeepalive sets TCP keepalive (idle 0 turns it off).
func WithTCPKeepalive(idle, interval time.Duration, probes int) Option {
	return func(b *builder) error {
		var msg *C.char
		return check(C.bg_set_tcp_keepalive(b.cfg, C.uint32_t(idle/time.Second),
			C.uint32_t(interval/time.Second), C.uint32_t(probes), &msg), msg)
	}
}

// WithCommandDeadline bounds one whole command, retries and backoff included (0: none).
func WithCommandDeadline(d time.Duration) Option {
	return msOpt(C.bg_u32_setter(C.brisk_config_set_command_deadline_ms), "command deadline", d)
}

// WithMaxReplyBytes bounds the memory one reply may take (0: no limit).
func WithMaxReplyBytes(n uint64) Option {
	return func(b *builder) error {
		var msg *C.char
		return check(C.bg_set_size(C.bg_size_setter(C.brisk_config_set_max_reply_bytes), b.cfg,
			C.size_t(n), &msg), msg)
	}
}

// WithPoolSize sets the most connections the client opens.
func WithPoolSize(n int) Option {
	return u32Opt(C.bg_u32_setter(C.brisk_config_set_pool_size), "pool size", int64(n))
}

// WithPoolMaxWait bounds the wait for a pooled connection (0: forever).
func WithPoolMaxWait(d time.Duration) Option {
	return msOpt(C.bg_u32_setter(C.brisk_config_set_pool_max_wait_ms), "pool max wait", d)
}

// WithPoolMinIdle keeps that many connections open and idle.
func WithPoolMinIdle(n int) Option {
	return u32Opt(C.bg_u32_setter(C.brisk_config_set_pool_min_idle), "pool min idle", int64(n))
}

// WithPoolIdleTimeout closes connections idle for that long (0: never).
func WithPoolIdleTimeout(d time.Duration) Option {
	return msOpt(C.bg_u32_setter(C.brisk_config_set_pool_idle_timeout_ms), "pool idle timeout", d)
}

// WithPoolMaxLifetime closes connections older than that (0: no limit).
func WithPoolMaxLifetime(d time.Duration) Option {
	return msOpt(C.bg_u32_setter(C.brisk_config_set_pool_max_lifetime_ms), "pool max lifetime", d)
}

// WithHealthCheckInterval PINGs connections idle for longer before use (0: off).
func WithHealthCheckInterval(d time.Duration) Option {
	return msOpt(C.bg_u32_setter(C.brisk_config_set_health_check_interval_ms),
		"health check interval", d)
}

// WithTLS turns TLS on or off.
func WithTLS(on bool) Option { return boolOpt(C.bg_bool_setter(C.brisk_config_set_tls), on) }

// WithTLSCAFile trusts the CA certificates of a PEM file instead of the system's.
func WithTLSCAFile(path string) Option {
	return strOpt(C.bg_str_setter(C.brisk_config_set_tls_ca_file), path)
}

// WithTLSClientCert presents a client certificate and key (PEM files) for mutual TLS.
func WithTLSClientCert(certPath, keyPath string) Option {
	return func(b *builder) error {
		cert, freeCert := cString(certPath)
		defer freeCert()
		key, freeKey := cString(keyPath)
		defer freeKey()
		var msg *C.char
		return check(C.bg_set_str2(C.bg_str2_setter(C.brisk_config_set_tls_client_cert), b.cfg, cert,
			key, &msg), msg)
	}
}

// WithTLSServerName sets the name the server's certificate must carry.
func WithTLSServerName(name string) Option {
	return optStrOpt(C.bg_str_setter(C.brisk_config_set_tls_server_name), name)
}

// WithTLSInsecureSkipVerify accepts any certificate (development only).
func WithTLSInsecureSkipVerify(skip bool) Option {
	return boolOpt(C.bg_bool_setter(C.brisk_config_set_tls_insecure_skip_verify), skip)
}

// Backoff is how the delay between attempts grows.
type Backoff uint32

// The backoff kinds of the C API.
const (
	BackoffNone               Backoff = C.BRISK_BACKOFF_NONE
	BackoffConstant           Backoff = C.BRISK_BACKOFF_CONSTANT
	BackoffExponential        Backoff = C.BRISK_BACKOFF_EXPONENTIAL
	BackoffFullJitter         Backoff = C.BRISK_BACKOFF_FULL_JITTER
	BackoffEqualJitter        Backoff = C.BRISK_BACKOFF_EQUAL_JITTER
	BackoffDecorrelatedJitter Backoff = C.BRISK_BACKOFF_DECORRELATED_JITTER
)

// RetryDelay is the delay a policy puts before retry number attempt (0-based); a fresh random
// draw for the jittered kinds.
func RetryDelay(backoff Backoff, base, cap time.Duration, retries, attempt int) (time.Duration, error) {
	var msg *C.char
	ms := C.bg_retry_backoff_ms(C.brisk_backoff(backoff), C.uint32_t(base.Milliseconds()),
		C.uint32_t(cap.Milliseconds()), C.uint32_t(retries), C.uint32_t(attempt), &msg)
	if msg != nil {
		return 0, check(C.BRISK_ERR_INVALID_ARGUMENT, msg)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// WithRetry sets the retry policy: retries after the first attempt, delays of kind backoff
// from base, capped at cap. WithRetry(BackoffExponential, 8*time.Millisecond,
// 512*time.Millisecond, 3) is go-redis's classic policy.
func WithRetry(backoff Backoff, base, cap time.Duration, retries int) Option {
	return func(b *builder) error {
		var msg *C.char
		return check(C.bg_set_retry(b.cfg, C.brisk_backoff(backoff), C.uint32_t(base.Milliseconds()),
			C.uint32_t(cap.Milliseconds()), C.uint32_t(retries), &msg), msg)
	}
}

// WithRetryOnTimeout retries after TIMEOUT errors too.
func WithRetryOnTimeout(on bool) Option {
	return boolOpt(C.bg_bool_setter(C.brisk_config_set_retry_on_timeout), on)
}

// WithRetryOnErrors retries after exactly these statuses.
func WithRetryOnErrors(statuses ...Status) Option {
	return func(b *builder) error {
		codes := make([]C.brisk_status, len(statuses)+1)
		for i, s := range statuses {
			codes[i] = C.brisk_status(s)
		}
		var msg *C.char
		return check(C.bg_set_retry_on_errors(b.cfg, &codes[0], C.size_t(len(statuses)), &msg), msg)
	}
}

// RetryWrites says whether a write that may have reached the server is retried.
type RetryWrites uint32

// The write-retry modes.
const (
	RetryWritesSafe   RetryWrites = C.BRISK_RETRY_WRITES_SAFE
	RetryWritesAlways RetryWrites = C.BRISK_RETRY_WRITES_ALWAYS
)

// WithRetryWrites sets the write-retry mode (default RetryWritesSafe).
func WithRetryWrites(mode RetryWrites) Option {
	return u32Opt(C.bg_u32_setter(C.brisk_config_set_retry_writes), "retry writes", int64(mode))
}

// Mode is the topology a client talks to.
type Mode uint32

// The modes.
const (
	ModeStandalone Mode = C.BRISK_MODE_STANDALONE
	ModeCluster    Mode = C.BRISK_MODE_CLUSTER
	ModeSentinel   Mode = C.BRISK_MODE_SENTINEL
)

// WithMode sets the topology; cluster and Sentinel need WithNodes.
func WithMode(mode Mode) Option {
	return u32Opt(C.bg_u32_setter(C.brisk_config_set_mode), "mode", int64(mode))
}

// WithNodes adds seed nodes ("host:port") for cluster or Sentinel mode.
func WithNodes(addrs ...string) Option {
	return func(b *builder) error {
		for _, addr := range addrs {
			host, port, err := splitHostPort(addr)
			if err != nil {
				return err
			}
			if err := hostPortOpt(C.bg_host_port_setter(C.brisk_config_add_node), host, port)(b); err != nil {
				return err
			}
		}
		return nil
	}
}

// WithClusterErrorRetryAttempts sets how many whole-cluster attempts a command gets.
func WithClusterErrorRetryAttempts(n int) Option {
	return u32Opt(C.bg_u32_setter(C.brisk_config_set_cluster_error_retry_attempts),
		"cluster error retry attempts", int64(n))
}

// WithClusterRefreshInterval sets how often the topology is re-read (0: only on need).
func WithClusterRefreshInterval(d time.Duration) Option {
	return msOpt(C.bg_u32_setter(C.brisk_config_set_cluster_refresh_interval_ms),
		"cluster refresh interval", d)
}

// ReadFrom chooses the cluster nodes that serve read-only commands.
type ReadFrom uint32

// Where reads go.
const (
	ReadPrimary          ReadFrom = C.BRISK_READ_PRIMARY
	ReadReplicaPreferred ReadFrom = C.BRISK_READ_REPLICA_PREFERRED
	ReadAny              ReadFrom = C.BRISK_READ_ANY
)

// WithReadFrom sets where read-only commands go in cluster mode.
func WithReadFrom(where ReadFrom) Option {
	return u32Opt(C.bg_u32_setter(C.brisk_config_set_read_from), "read from", int64(where))
}

// WithEventCallback calls fn for every event (commands, retries, connects, ...). It runs on
// the goroutine that did the work (or a brisk thread for background work): keep it short, and
// never call the client from it.
func WithEventCallback(fn func(Event)) Option {
	return func(b *builder) error {
		b.dropEvents()
		if fn == nil {
			var msg *C.char
			return check(C.bg_set_event_callback(b.cfg, 0, &msg), msg)
		}
		h := cgo.NewHandle(fn)
		var msg *C.char
		if err := check(C.bg_set_event_callback(b.cfg, C.uintptr_t(h), &msg), msg); err != nil {
			h.Delete()
			return err
		}
		b.events = h
		return nil
	}
}

// WithSentinelMaster names the master the sentinels monitor (required in ModeSentinel, where
// WithNodes lists the sentinels).
func WithSentinelMaster(name string) Option {
	return strOpt(C.bg_str_setter(C.brisk_config_set_sentinel_master), name)
}

// WithSentinelAuth sets the sentinels' own credentials (the data nodes' WithUsername and
// WithPassword are never sent to them): username "" is the default user; password "" clears
// both.
func WithSentinelAuth(username, password string) Option {
	return func(b *builder) error {
		var user, pass *C.char
		if username != "" {
			p, free := cString(username)
			defer free()
			user = p
		}
		if password != "" {
			p, free := cString(password)
			defer free()
			pass = p
		}
		var msg *C.char
		return check(C.bg_set_str2(C.bg_str2_setter(C.brisk_config_set_sentinel_auth), b.cfg, user,
			pass, &msg), msg)
	}
}

// WithSentinelTimeout bounds one question to one sentinel, connecting included (default
// 500 ms; 0: the connect and read timeouts instead).
func WithSentinelTimeout(d time.Duration) Option {
	return msOpt(C.bg_u32_setter(C.brisk_config_set_sentinel_timeout_ms), "sentinel timeout", d)
}

// WithOTelEndpoint turns on OpenTelemetry: a CLIENT span per command (pipeline, transaction)
// and the database-client metrics, exported over OTLP/HTTP to url ("http://host:4318") from a
// thread of the client's own. "" takes $OTEL_EXPORTER_OTLP_ENDPOINT (else
// http://localhost:4318). A slow or dead collector costs dropped telemetry, never a slower
// command; see Client.FlushTelemetry, Client.TelemetryDropped and ContextWithTraceParent.
func WithOTelEndpoint(url string) Option {
	return optStrOpt(C.bg_str_setter(C.brisk_config_set_otel_endpoint), url)
}

// WithOTelTracesSampleRatio sets the share of traces recorded, 0..1 (default 1; 0: metrics
// only). Commands under a trace parent follow the parent's sampled flag instead.
func WithOTelTracesSampleRatio(ratio float64) Option {
	return func(b *builder) error {
		var msg *C.char
		return check(C.bg_set_double(C.bg_double_setter(C.brisk_config_set_otel_traces_sample_ratio),
			b.cfg, C.double(ratio), &msg), msg)
	}
}

// WithOTelExportInterval sets how often metrics are exported, and the longest a span waits
// for export (default 10 s).
func WithOTelExportInterval(d time.Duration) Option {
	return msOpt(C.bg_u32_setter(C.brisk_config_set_otel_export_interval_ms), "otel export interval", d)
}

// CacheMode is how the server tracks what the client-side cache keeps.
type CacheMode uint32

// The tracking modes.
const (
	CacheDefault   CacheMode = C.BRISK_CACHE_DEFAULT   // the server remembers the keys each connection read
	CacheBroadcast CacheMode = C.BRISK_CACHE_BROADCAST // every change under the prefixes is announced
	CacheOptIn     CacheMode = C.BRISK_CACHE_OPTIN     // only reads under the prefixes are tracked
)

// WithClientCache turns client-side caching on: deterministic reads (GET, HGET, MGET, ...) are
// answered from memory after their first read, and the server's invalidations (CLIENT TRACKING)
// drop what changed; a read starting 1 ms or more after another client's acknowledged write
// never returns the old value, and this client's own writes drop their keys before they
// return. At most maxEntries entries (0 turns the cache off), each served for at most ttl (the
// C default is 5*time.Minute; 0: no TTL). New then fails when the server cannot track (Redis 6+
// or Valkey, and permission for CLIENT). See brisk_config_set_client_cache in brisk.h for the
// full contract, Client.CacheFlush, and the StatCache* counters.
func WithClientCache(maxEntries int, ttl time.Duration) Option {
	return func(b *builder) error {
		if maxEntries < 0 || int64(maxEntries) > math.MaxUint32 {
			return newError(StatusInvalidArgument, fmt.Sprintf("brisk: client cache size %d is out of range", maxEntries))
		}
		ms, err := durationMs("client cache ttl", ttl)
		if err != nil {
			return err
		}
		var msg *C.char
		return check(C.bg_set_u32x2(C.bg_u32x2_setter(C.brisk_config_set_client_cache), b.cfg,
			C.uint32_t(maxEntries), C.uint32_t(ms), &msg), msg)
	}
}

// WithClientCacheMaxBytes bounds the memory the client-side cache keeps (default 64 MiB; 0: no
// byte bound).
func WithClientCacheMaxBytes(n uint64) Option {
	return func(b *builder) error {
		var msg *C.char
		return check(C.bg_set_u64(C.bg_u64_setter(C.brisk_config_set_client_cache_max_bytes), b.cfg,
			C.uint64_t(n), &msg), msg)
	}
}

// WithClientCacheMode sets how the server tracks what the cache keeps (default CacheDefault).
func WithClientCacheMode(mode CacheMode) Option {
	return u32Opt(C.bg_u32_setter(C.brisk_config_set_client_cache_mode), "client cache mode", int64(mode))
}

// WithClientCachePrefixes adds key prefixes: only reads whose keys all start with one of them
// are cached (no prefix at all: every key); in CacheBroadcast mode the server is told exactly
// these.
func WithClientCachePrefixes(prefixes ...string) Option {
	return func(b *builder) error {
		for _, p := range prefixes {
			if err := strOpt(C.bg_str_setter(C.brisk_config_add_client_cache_prefix), p)(b); err != nil {
				return err
			}
		}
		return nil
	}
}

// Overflow is what a subscriber's full queue does with a message that arrives.
type Overflow uint32

// The overflow policies.
const (
	OverflowDropOldest Overflow = C.BRISK_OVERFLOW_DROP_OLDEST // the default: the newest messages are kept
	OverflowDropNewest Overflow = C.BRISK_OVERFLOW_DROP_NEWEST // the arriving message is dropped
	OverflowBlock      Overflow = C.BRISK_OVERFLOW_BLOCK       // stop reading until there is room (the server buffers)
)

// WithPubSubQueue bounds each subscriber's message queue (default 10000) and sets what a full
// queue does (default OverflowDropOldest); drops are counted in StatPubSubDropped.
func WithPubSubQueue(maxMessages int, policy Overflow) Option {
	return func(b *builder) error {
		if maxMessages < 0 || int64(maxMessages) > math.MaxUint32 {
			return newError(StatusInvalidArgument, fmt.Sprintf("brisk: pubsub queue %d is out of range", maxMessages))
		}
		var msg *C.char
		return check(C.bg_set_u32x2(C.bg_u32x2_setter(C.brisk_config_set_pubsub_queue), b.cfg,
			C.uint32_t(maxMessages), C.uint32_t(policy), &msg), msg)
	}
}

// WithPubSubHealthCheck sets how a subscriber finds a connection that died silently: after
// interval without a byte read it sends a PING that must be answered within timeout (defaults
// 3 s and 5 s; interval 0 turns the PINGs off).
func WithPubSubHealthCheck(interval, timeout time.Duration) Option {
	return func(b *builder) error {
		i, err := durationMs("pubsub health check interval", interval)
		if err != nil {
			return err
		}
		t, err := durationMs("pubsub health check timeout", timeout)
		if err != nil {
			return err
		}
		var msg *C.char
		return check(C.bg_set_u32x2(C.bg_u32x2_setter(C.brisk_config_set_pubsub_health_check), b.cfg,
			C.uint32_t(i), C.uint32_t(t), &msg), msg)
	}
}

// durationMs is d in whole milliseconds for a C setter (a positive d under 1 ms is 1 ms, not
// "no limit").
func durationMs(name string, d time.Duration) (int64, error) {
	ms := d.Milliseconds()
	if d > 0 && ms == 0 {
		ms = 1
	}
	if ms < 0 || ms > math.MaxUint32 {
		return 0, newError(StatusInvalidArgument, fmt.Sprintf("brisk: %s %v is out of range", name, d))
	}
	return ms, nil
}

// WithOTelExportTimeout bounds one export request (default 10 s).
func WithOTelExportTimeout(d time.Duration) Option {
	return msOpt(C.bg_u32_setter(C.brisk_config_set_otel_export_timeout_ms), "otel export timeout", d)
}

// WithRuntimeAsyncDispatch keeps async callbacks on brisk's runtime threads (the C library's
// default, brisk_config_set_async_dispatch with BRISK_ASYNC_DISPATCH_RUNTIME). It is the only
// mode this package supports: it never dispatches callbacks itself, so the C library's caller
// dispatch would leave them waiting.
func WithRuntimeAsyncDispatch() Option {
	return func(b *builder) error {
		var msg *C.char
		return check(C.bg_set_u32(C.bg_u32_setter(C.brisk_config_set_async_dispatch), b.cfg,
			C.uint32_t(C.BRISK_ASYNC_DISPATCH_RUNTIME), &msg), msg)
	}
}
