package brisk

// #include "bg.h"
import "C"

import (
	"context"
	"runtime/cgo"
	"sync"
)

// Version is the version of the libbrisk in use (brisk_version()).
func Version() string { return C.GoString(C.brisk_version()) }

// Client is a Redis/Valkey client: a pool of connections shared by every goroutine. Make one
// with Open or New and share it; Close it when done.
type Client struct {
	mu     sync.RWMutex // held for reading by calls in flight, for writing by Close
	c      *C.brisk_client
	events cgo.Handle // the event callback's handle, 0 without one
}

// Open makes a client from a URL ("redis://[user[:password]@]host[:port][/db][?option=value]",
// "rediss://", "redis+cluster://", "unix:///path"; options as in brisk.h) and options, which
// override the URL's settings. No connection is opened until the first command.
func Open(url string, opts ...Option) (*Client, error) {
	return New(append([]Option{WithURL(url)}, opts...)...)
}

// New makes a client from options (without any: localhost:6379).
func New(opts ...Option) (*Client, error) {
	cfg := C.brisk_config_new()
	if cfg == nil {
		return nil, newError(StatusInternal, "brisk: out of memory")
	}
	defer C.brisk_config_free(cfg)
	b := &builder{cfg: cfg}
	for _, opt := range opts {
		if err := opt(b); err != nil {
			b.dropEvents()
			return nil, err
		}
	}
	var c *C.brisk_client
	var msg *C.char
	if err := check(C.bg_client_new(cfg, &c, &msg), msg); err != nil {
		b.dropEvents()
		return nil, err
	}
	return &Client{c: c, events: b.events}, nil
}

// acquire marks a call in flight (so that Close waits for it); release ends it.
func (c *Client) acquire() (*C.brisk_client, error) {
	c.mu.RLock()
	if c.c == nil {
		c.mu.RUnlock()
		return nil, newError(StatusClosed, "brisk: the client is closed")
	}
	return c.c, nil
}

func (c *Client) release() { c.mu.RUnlock() }

// Do runs one command and returns its reply (see the package doc for the Go types). A server
// error reply is an *Error with StatusServer (or AUTH, READONLY, ...) and the server's text.
func (c *Client) Do(args ...any) (any, error) {
	a, err := packArgs(args)
	if err != nil {
		return nil, err
	}
	defer a.release()
	cl, err := c.acquire()
	if err != nil {
		return nil, err
	}
	defer c.release()
	var reply *C.brisk_reply
	var msg *C.char
	if err := check(C.bg_command(cl, a.ptr(), a.lensPtr(), a.count(), &reply, &msg), msg); err != nil {
		return nil, err
	}
	defer C.brisk_reply_free(reply)
	return replyValue(reply), nil
}

// Ping sends PING and waits for the answer.
func (c *Client) Ping() error {
	cl, err := c.acquire()
	if err != nil {
		return err
	}
	defer c.release()
	var msg *C.char
	return check(C.bg_ping(cl, &msg), msg)
}

// asyncResult is what briskGoOnReply hands to DoContext.
type asyncResult struct {
	status  Status
	message string
	reply   *C.brisk_reply
}

// pending is one DoContext in flight: the callback delivers unless the caller gave up, in
// which case whoever comes second frees the reply.
type pending struct {
	mu        sync.Mutex
	done      chan asyncResult
	abandoned bool
}

//export briskGoOnReply
func briskGoOnReply(h C.uintptr_t, status C.brisk_status, msg *C.char, reply *C.brisk_reply) {
	handle := cgo.Handle(h)
	p := handle.Value().(*pending)
	handle.Delete()
	result := asyncResult{status: Status(status), reply: reply}
	if status != C.BRISK_OK && msg != nil {
		result.message = C.GoString(msg)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.abandoned {
		C.brisk_reply_free(reply)
		return
	}
	p.done <- result // buffered: never blocks brisk's thread
}

// DoContext runs one command as brisk's async commands do (pipelined with the other async
// commands onto one connection per node) and waits for its reply or for ctx. When ctx ends
// first, DoContext returns ctx.Err() at once; the command itself may still run on the server.
// A trace parent in ctx (ContextWithTraceParent) is the parent of the command's span.
func (c *Client) DoContext(ctx context.Context, args ...any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a, err := packArgs(args)
	if err != nil {
		return nil, err
	}
	cl, err := c.acquire()
	if err != nil {
		a.release()
		return nil, err
	}
	var traceparent *C.char
	if tp, ok := traceParentOf(ctx); ok {
		p, free := cString(tp)
		defer free()
		traceparent = p
	}
	p := &pending{done: make(chan asyncResult, 1)}
	h := cgo.NewHandle(p)
	var msg *C.char
	err = check(C.bg_command_async(cl, a.ptr(), a.lensPtr(), a.count(), traceparent, C.uintptr_t(h), &msg), msg)
	c.release()
	a.release()
	if err != nil {
		h.Delete() // the callback never runs after a failed start
		return nil, err
	}
	select {
	case r := <-p.done:
		if r.status != StatusOK {
			return nil, newError(r.status, r.message)
		}
		defer C.brisk_reply_free(r.reply)
		return replyValue(r.reply), nil
	case <-ctx.Done():
		p.mu.Lock()
		p.abandoned = true
		select {
		case r := <-p.done: // it arrived meanwhile: free it
			C.brisk_reply_free(r.reply)
		default:
		}
		p.mu.Unlock()
		return nil, ctx.Err()
	}
}

// Stat reads one counter or gauge.
func (c *Client) Stat(which Stat) uint64 {
	cl, err := c.acquire()
	if err != nil {
		return 0
	}
	defer c.release()
	return uint64(C.brisk_client_stat(cl, C.brisk_stat(which)))
}

// Stats reads every counter and gauge, by name ("commands", "errors", ...).
func (c *Client) Stats() map[string]uint64 {
	out := make(map[string]uint64, len(statNames))
	for s, name := range statNames {
		out[name] = c.Stat(Stat(s))
	}
	return out
}

// CacheFlush drops every client-side cache entry now (a no-op when the cache is off); it is
// reported as an EventCacheInvalidate with CacheReasonFlush.
func (c *Client) CacheFlush() error {
	cl, err := c.acquire()
	if err != nil {
		return err
	}
	defer c.release()
	var msg *C.char
	return check(C.bg_cache_flush(cl, &msg), msg)
}

// Close waits for the calls in flight on other goroutines, then closes every connection.
// Pending DoContext calls fail with ErrClosed. Calls after Close fail with ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	cl := c.c
	c.c = nil
	c.mu.Unlock()
	if cl != nil {
		C.brisk_client_free(cl)
		if c.events != 0 {
			c.events.Delete() // brisk calls the callback no more
		}
	}
	return nil
}
