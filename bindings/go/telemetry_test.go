package brisk_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"brisk"
)

const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"

var (
	sampledParent   = "00-" + traceID + "-00f067aa0ba902b7-01"
	unsampledParent = "00-" + traceID + "-00f067aa0ba902b7-00"
)

// quiet keeps the exporter from sending on its own during a test: only FlushTelemetry sends.
func quiet(endpoint string) []brisk.Option {
	return []brisk.Option{brisk.WithOTelEndpoint(endpoint),
		brisk.WithOTelExportInterval(10 * time.Minute), brisk.WithOTelExportTimeout(30 * time.Second)}
}

// otlpReceiver runs the repository's ctests/otlp_receiver.py on a free loopback port; requests
// reads its log, one "<path> <content-type> <bytes>" per POST.
type otlpReceiver struct {
	url string
	log string
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	script, err := filepath.Abs("../../ctests/otlp_receiver.py")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(script); err != nil {
		t.Skip("needs the repository's ctests/otlp_receiver.py")
	}
	dir := t.TempDir()
	cmd := exec.Command(program("PYTHON", "python3"), script, filepath.Join(dir, "port"), filepath.Join(dir, "log"))
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot run otlp_receiver.py: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	var port []byte
	if !waitUntil(30*time.Second, func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		port, err = os.ReadFile(filepath.Join(dir, "port")) // renamed into place once written
		return err == nil
	}) || len(port) == 0 {
		t.Fatal("otlp_receiver.py did not start")
	}
	return &otlpReceiver{url: "http://127.0.0.1:" + strings.TrimSpace(string(port)), log: filepath.Join(dir, "log")}
}

type otlpRequest struct {
	path, contentType string
	size              int
}

func (r *otlpReceiver) requests(t *testing.T) []otlpRequest {
	t.Helper()
	text, err := os.ReadFile(r.log)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []otlpRequest
	for _, line := range strings.Split(strings.TrimSpace(string(text)), "\n") {
		if f := strings.Fields(line); len(f) == 3 {
			size, _ := strconv.Atoi(f[2])
			out = append(out, otlpRequest{f[0], f[1], size})
		}
	}
	return out
}

func (r *otlpReceiver) posted(t *testing.T, path string) bool {
	for _, req := range r.requests(t) {
		if req.path == path {
			return true
		}
	}
	return false
}

func TestTelemetryIsExportedOnFlush(t *testing.T) {
	r := startOTLPReceiver(t)
	c := open(t, append(quiet(r.url), brisk.WithOTelTracesSampleRatio(1))...)
	k := key(t, "k")
	must(t)(c.Do("SET", k, "v"))
	if v := must(t)(c.DoContext(context.Background(), "GET", k)); v != "v" {
		t.Fatal(v)
	}
	if reqs := r.requests(t); len(reqs) != 0 {
		t.Fatalf("exported before the flush: %v", reqs)
	}
	if err := c.FlushTelemetry(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	// The receiver logs a request before answering it: everything is in the log now.
	if !r.posted(t, "/v1/traces") || !r.posted(t, "/v1/metrics") {
		t.Fatalf("%v", r.requests(t))
	}
	for _, req := range r.requests(t) {
		if req.contentType != "application/x-protobuf" || req.size == 0 {
			t.Fatalf("%+v", req)
		}
	}
	if d := c.TelemetryDropped(); d != 0 {
		t.Fatalf("%d spans dropped", d)
	}
}

func TestTelemetryOffAndBadSettings(t *testing.T) {
	c := open(t)
	must(t)(c.Do("SET", key(t, "k"), "v"))
	if err := c.FlushTelemetry(time.Second); err != nil || c.TelemetryDropped() != 0 {
		t.Fatal(err, c.TelemetryDropped())
	}
	for _, bad := range []string{"https://127.0.0.1:4318", "not a url", "127.0.0.1:4318"} {
		if _, err := brisk.New(brisk.WithOTelEndpoint(bad)); !errors.Is(err, brisk.ErrInvalidArgument) {
			t.Errorf("endpoint %q: %v", bad, err)
		}
	}
	for _, opt := range []brisk.Option{brisk.WithOTelTracesSampleRatio(1.5), brisk.WithOTelTracesSampleRatio(-0.1),
		brisk.WithOTelExportInterval(0), brisk.WithOTelExportTimeout(0)} {
		if _, err := brisk.New(opt); !errors.Is(err, brisk.ErrInvalidArgument) {
			t.Errorf("%v", err)
		}
	}
	ctx := brisk.ContextWithTraceParent(context.Background(), "00-not-a-traceparent-01")
	if _, err := c.DoContext(ctx, "PING"); !errors.Is(err, brisk.ErrInvalidArgument) {
		t.Fatalf("a malformed trace parent: %v", err)
	}
}

// The parent's sampled flag decides; and the parent stays with the DoContext call it came
// with: a later command on the same OS thread is not under it.
func TestTraceParentAppliesToItsCommandOnly(t *testing.T) {
	r := startOTLPReceiver(t)
	c := open(t, quiet(r.url)...)
	unsampled := brisk.ContextWithTraceParent(context.Background(), unsampledParent)
	untraced, traced := key(t, "untraced"), key(t, "traced")
	done := make(chan error)
	go func() {
		runtime.LockOSThread() // the same thread for both commands
		defer runtime.UnlockOSThread()
		if _, err := c.DoContext(unsampled, "SET", untraced, "v"); err != nil {
			done <- err
			return
		}
		if err := c.FlushTelemetry(30 * time.Second); err != nil {
			done <- err
			return
		}
		if r.posted(t, "/v1/traces") || !r.posted(t, "/v1/metrics") {
			done <- errors.New("under an unsampled parent a span was exported (or no metrics)")
			return
		}
		if _, err := c.DoContext(context.Background(), "SET", traced, "v"); err != nil {
			done <- err
			return
		}
		if err := c.FlushTelemetry(30 * time.Second); err != nil {
			done <- err
			return
		}
		if !r.posted(t, "/v1/traces") {
			done <- errors.New("a command after the unsampled parent's was not traced: the parent stayed")
			return
		}
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// otlpRecorder is an OTLP/HTTP receiver in the test that keeps the bodies (otlp_receiver.py
// logs only sizes), to see what an export carries.
type otlpRecorder struct {
	*httptest.Server
	mu     sync.Mutex
	traces [][]byte
}

func startOTLPRecorder(t *testing.T) *otlpRecorder {
	rec := &otlpRecorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if req.URL.Path == "/v1/traces" {
			rec.mu.Lock()
			rec.traces = append(rec.traces, body)
			rec.mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rec.Close)
	return rec
}

// carrying counts the trace exports from the index from on that hold the trace id's bytes.
func (rec *otlpRecorder) carrying(from int, id []byte) (exports, carrying int) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, body := range rec.traces[from:] {
		if bytes.Contains(body, id) {
			carrying++
		}
	}
	return len(rec.traces) - from, carrying
}

// Spans of DoContext under a trace parent carry its trace id, from goroutines that move
// between threads; the spans of plain commands do not.
func TestSpansCarryTheTraceParentsTraceID(t *testing.T) {
	rec := startOTLPRecorder(t)
	c := open(t, quiet(rec.URL)...)
	id, _ := hex.DecodeString(traceID)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				c.Do("INCR", "go:traceid:plain")
				runtime.Gosched()
			}
		}()
	}
	wg.Wait()
	if err := c.FlushTelemetry(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if exports, carrying := rec.carrying(0, id); exports == 0 || carrying != 0 {
		t.Fatalf("plain commands: %d trace exports, %d with the parent's trace id", exports, carrying)
	}
	before, _ := rec.carrying(0, id)
	ctx := brisk.ContextWithTraceParent(context.Background(), sampledParent)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if _, err := c.DoContext(ctx, "INCR", "go:traceid:traced"); err != nil {
					t.Error(err)
					return
				}
				runtime.Gosched()
			}
		}()
	}
	wg.Wait()
	if err := c.FlushTelemetry(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if exports, carrying := rec.carrying(before, id); exports == 0 || carrying != exports {
		t.Fatalf("under the parent: %d trace exports, %d with its trace id", exports, carrying)
	}
}
