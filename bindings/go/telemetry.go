package brisk

// #include "bg.h"
import "C"

import (
	"context"
	"time"
)

type traceParentKey struct{}

// ContextWithTraceParent returns a context whose commands, run with DoContext, have their
// OpenTelemetry spans (see WithOTelEndpoint) made children of the application's span:
// traceparent is a W3C value, "00-<32 hex trace id>-<16 hex span id>-<2 hex flags>", as the
// application's tracer propagates it; its sampled flag decides whether the spans are
// recorded. brisk keeps the parent per OS thread, and a goroutine may change threads between
// two calls, so the binding sets it and starts the command in one C call, and clears it again
// there. A malformed value fails the command with ErrInvalidArgument.
func ContextWithTraceParent(ctx context.Context, traceparent string) context.Context {
	return context.WithValue(ctx, traceParentKey{}, traceparent)
}

func traceParentOf(ctx context.Context) (string, bool) {
	tp, ok := ctx.Value(traceParentKey{}).(string)
	return tp, ok
}

// FlushTelemetry exports the spans and metrics buffered now, waiting at most timeout for the
// collector: nil when they were sent (or OpenTelemetry is off), ErrTimeout when the time ran
// out (the export goes on in the background). Telemetry a collector refuses is dropped and
// counted (TelemetryDropped), not an error here.
func (c *Client) FlushTelemetry(timeout time.Duration) error {
	ms := timeout.Milliseconds()
	switch {
	case ms < 0:
		ms = 0
	case ms > 1<<32-1:
		ms = 1<<32 - 1
	}
	cl, err := c.acquire()
	if err != nil {
		return err
	}
	defer c.release()
	var msg *C.char
	return check(C.bg_flush_telemetry(cl, C.uint32_t(ms), &msg), msg)
}

// TelemetryDropped is the number of spans dropped so far because the export queue was full
// or their export failed (0 with OpenTelemetry off).
func (c *Client) TelemetryDropped() uint64 {
	cl, err := c.acquire()
	if err != nil {
		return 0
	}
	defer c.release()
	return uint64(C.brisk_client_telemetry_dropped(cl))
}
