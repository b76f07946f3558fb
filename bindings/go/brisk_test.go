package brisk_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"brisk"
)

func open(t *testing.T, opts ...brisk.Option) *brisk.Client {
	t.Helper()
	c, err := brisk.Open(server.url(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// must(t)(c.Do(...)) is the reply, failing the test on an error.
func must(t *testing.T) func(any, error) any {
	return func(v any, err error) any {
		t.Helper()
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return v
	}
}

func TestVersion(t *testing.T) {
	if len(strings.Split(brisk.Version(), ".")) != 3 {
		t.Fatal(brisk.Version())
	}
}

func TestBinaryRoundTripAndArgumentTypes(t *testing.T) {
	c := open(t)
	k := key(t, "k")
	value := []byte("bytes \x00 with \r\n inside \xff")
	if v := must(t)(c.Do("SET", k, value)); v != "OK" {
		t.Fatal(v)
	}
	if v := must(t)(c.Do("GET", k)); v != string(value) {
		t.Fatalf("%q", v)
	}
	must(t)(c.Do("SET", k, 41))
	if v := must(t)(c.Do("INCRBY", []byte(k), int64(1))); v != int64(42) {
		t.Fatal(v)
	}
	must(t)(c.Do("SET", k, 1.5))
	if v := must(t)(c.Do("GET", k)); v != "1.5" {
		t.Fatal(v)
	}
	must(t)(c.Do("SET", k, true))
	if v := must(t)(c.Do("GET", k)); v != "1" {
		t.Fatal(v)
	}
	fields := []any{"HSET", key(t, "h")}
	for i := 0; i < 40; i++ {
		fields = append(fields, fmt.Sprint("f", i), i)
	}
	if v := must(t)(c.Do(fields...)); v != int64(40) {
		t.Fatal(v)
	}
	if _, err := c.Do("SET", k, struct{}{}); !errors.Is(err, brisk.ErrInvalidArgument) {
		t.Fatal(err)
	}
	if _, err := c.Do(); !errors.Is(err, brisk.ErrInvalidArgument) {
		t.Fatal(err)
	}
}

func TestReplyTypes(t *testing.T) {
	c := open(t)
	h, z, s := key(t, "h"), key(t, "z"), key(t, "s")
	cases := []struct {
		args []any
		want any
	}{
		{[]any{"GET", key(t, "missing")}, nil},
		{[]any{"PING"}, "PONG"},
		{[]any{"HSET", h, "f", "v", "g", "w"}, int64(2)},
		{[]any{"HGETALL", h}, map[string]any{"f": "v", "g": "w"}},
		{[]any{"ZADD", z, "1.5", "m", "+inf", "top"}, int64(2)},
		{[]any{"ZSCORE", z, "m"}, 1.5},
		{[]any{"ZSCORE", z, "top"}, math.Inf(1)},
		{[]any{"SADD", s, "a"}, int64(1)},
		{[]any{"SMEMBERS", s}, []any{"a"}},
		{[]any{"EVAL", "redis.setresp(3); return true", 0}, true},
		{[]any{"EVAL", "redis.setresp(3); return false", 0}, false},
		{[]any{"EVAL", "return {1, {2, 'x', {}}, 'y', -7}", 0},
			[]any{int64(1), []any{int64(2), "x", []any{}}, "y", int64(-7)}},
	}
	for _, tc := range cases {
		if got := must(t)(c.Do(tc.args...)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%v: got %#v, want %#v", tc.args, got, tc.want)
		}
	}
	big1 := "1234567890123456789012345678901234567890"
	got := must(t)(c.Do("EVAL", "redis.setresp(3); return {big_number='"+big1+"'}", 0))
	if n, ok := got.(*big.Int); !ok || n.String() != big1 {
		t.Fatalf("%#v", got)
	}
	info := must(t)(c.Do("CLIENT", "INFO")).(string) // verbatim: without "txt:"
	if !strings.HasPrefix(info, "id=") {
		t.Fatal(info)
	}
}

func TestLongListsAcrossChunks(t *testing.T) {
	c := open(t)
	for _, n := range []int{1, 255, 256, 257, 1000} {
		k := key(t, "list")
		args := []any{"RPUSH", k}
		want := make([]any, n)
		for i := 0; i < n; i++ {
			want[i] = fmt.Sprintf("%016d", i)
			args = append(args, want[i])
		}
		must(t)(c.Do(args...))
		if got := must(t)(c.Do("LRANGE", k, 0, -1)); !reflect.DeepEqual(got, want) {
			t.Fatalf("n=%d: wrong list", n)
		}
	}
}

func TestServerErrors(t *testing.T) {
	c := open(t)
	k := key(t, "s")
	must(t)(c.Do("SET", k, "x"))
	_, err := c.Do("LPUSH", k, "y")
	var e *brisk.Error
	if !errors.As(err, &e) {
		t.Fatalf("%T %v", err, err)
	}
	if e.Status != brisk.StatusServer || e.Category != brisk.CategoryData || e.Prefix() != "WRONGTYPE" {
		t.Fatalf("%+v", e)
	}
	if !strings.HasPrefix(e.Error(), "WRONGTYPE Operation against a key") {
		t.Fatal(e.Error())
	}
	if !errors.Is(err, brisk.ErrServer) || errors.Is(err, brisk.ErrTimeout) {
		t.Fatal("errors.Is matches by status")
	}
	if _, err := c.Do("MULTI"); !errors.Is(err, brisk.ErrInvalidArgument) {
		t.Fatal(err)
	}
}

func TestConnectionAndTimeoutErrors(t *testing.T) {
	refused, err := brisk.New(brisk.WithAddress("127.0.0.1", freePort()),
		brisk.WithRetry(brisk.BackoffNone, 0, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer refused.Close()
	_, err = refused.Do("PING")
	var e *brisk.Error
	if !errors.As(err, &e) || e.Status != brisk.StatusConnection || e.Category != brisk.CategoryConnection ||
		!e.Status.Retryable() {
		t.Fatalf("%v", err)
	}

	silent, err := brisk.New(brisk.WithAddress("127.0.0.1", silentListener(t)),
		brisk.WithReadTimeout(200*time.Millisecond), brisk.WithRetry(brisk.BackoffNone, 0, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	started := time.Now()
	_, err = silent.Do("PING")
	if !errors.Is(err, brisk.ErrTimeout) || !err.(*brisk.Error).Timeout() {
		t.Fatal(err)
	}
	if time.Since(started) > 10*time.Second {
		t.Fatal("the timeout took too long")
	}
}

func TestBadURL(t *testing.T) {
	_, err := brisk.Open("redis://:secret@host:notaport")
	if !errors.Is(err, brisk.ErrInvalidArgument) || strings.Contains(err.Error(), "secret") {
		t.Fatal(err)
	}
	if _, err := brisk.New(brisk.WithPoolSize(0)); !errors.Is(err, brisk.ErrInvalidArgument) {
		t.Fatal(err)
	}
}

// The issue this binding fixes: brisk_last_error_message() is per OS thread, and Go moves
// goroutines between threads between two cgo calls. 64 goroutines x 150 failing INCRs: every
// error must carry the server's message.
func TestErrorMessagesAreReadOnTheCallingThread(t *testing.T) {
	c := open(t, brisk.WithPoolSize(64))
	k := key(t, "notanumber")
	must(t)(c.Do("SET", k, "abc"))
	var wg sync.WaitGroup
	var mu sync.Mutex
	failures, empty, wrong := 0, 0, 0
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 150; i++ {
				_, err := c.Do("INCR", k)
				mu.Lock()
				failures++
				switch {
				case err == nil || err.Error() == "":
					empty++
				case !strings.HasPrefix(err.Error(), "ERR value is not an integer"):
					wrong++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if failures != 9600 || empty != 0 || wrong != 0 {
		t.Fatalf("%d failures, %d without a message, %d with another message", failures, empty, wrong)
	}
}

func TestPipeline(t *testing.T) {
	c := open(t)
	k, s := key(t, "n"), key(t, "s")
	must(t)(c.Do("SET", s, "x"))
	p, err := c.Pipeline()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, args := range [][]any{{"INCR", k}, {"LPUSH", s, "y"}, {"INCR", k}} {
		if err := p.Append(args...); err != nil {
			t.Fatal(err)
		}
	}
	if p.Len() != 3 {
		t.Fatal(p.Len())
	}
	results, err := p.Exec()
	if err != nil {
		t.Fatal(err)
	}
	if results[0] != int64(1) || results[2] != int64(2) {
		t.Fatalf("%#v", results)
	}
	e, ok := results[1].(*brisk.Error)
	if !ok || e.Prefix() != "WRONGTYPE" || !errors.Is(e, brisk.ErrServer) {
		t.Fatalf("%#v", results[1])
	}
	if results, err := p.Exec(); err != nil || len(results) != 0 {
		t.Fatal(results, err)
	}
}

func TestTransactionAndWatch(t *testing.T) {
	c := open(t)
	k := key(t, "k")
	tx, err := c.TxPipeline()
	if err != nil {
		t.Fatal(err)
	}
	tx.Append("SET", k, 10)
	tx.Append("INCRBY", k, 5)
	if results, err := tx.Exec(); err != nil || !reflect.DeepEqual(results, []any{"OK", int64(15)}) {
		t.Fatal(results, err)
	}
	tx.Close()

	// WATCH, read, someone else writes, EXEC fails with ErrWatch.
	err = c.Watch(func(s *brisk.Session) error {
		n, err := brisk.Int64(s.Do("GET", k))
		if err != nil {
			return err
		}
		must(t)(c.Do("SET", k, 100))
		s.Do("MULTI")
		s.Do("SET", k, n+1)
		_, err = s.Do("EXEC")
		return err
	}, k)
	if !errors.Is(err, brisk.ErrWatch) {
		t.Fatal(err)
	}
	// Without interference it goes through.
	err = c.Watch(func(s *brisk.Session) error {
		n, _ := brisk.Int64(s.Do("GET", k))
		s.Do("MULTI")
		s.Do("SET", k, n+1)
		_, err := s.Do("EXEC")
		return err
	}, k)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := brisk.String(c.Do("GET", k)); v != "101" {
		t.Fatal(v)
	}
}

func TestDoContext(t *testing.T) {
	c := open(t)
	k := key(t, "n")
	var wg sync.WaitGroup
	results := make([]int64, 200)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			n, err := brisk.Int64(c.DoContext(context.Background(), "INCR", k))
			if err != nil {
				t.Error(err)
			}
			results[i] = n
		}(i)
	}
	wg.Wait()
	seen := map[int64]bool{}
	for _, n := range results {
		seen[n] = true
	}
	if len(seen) != 200 || !seen[1] || !seen[200] {
		t.Fatal("each INCR must see its own value")
	}

	// A cancelled context returns at once; the client goes on working.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	started := time.Now()
	if _, err := c.DoContext(ctx, "BLPOP", key(t, "empty"), 5); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
	if time.Since(started) > 4*time.Second {
		t.Fatal("DoContext did not return when its context ended")
	}
	if v, err := c.DoContext(context.Background(), "PING"); err != nil || v != "PONG" {
		t.Fatal(v, err)
	}
	k2 := key(t, "s")
	must(t)(c.Do("SET", k2, "x"))
	if _, err := c.DoContext(context.Background(), "LPUSH", k2, "y"); !errors.Is(err, brisk.ErrServer) {
		t.Fatal(err)
	}
}

func TestCloseFailsPendingAndLaterCalls(t *testing.T) {
	c, err := brisk.Open(server.url())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.DoContext(context.Background(), "BLPOP", key(t, "never"), 30)
		done <- err
	}()
	// Wait until the BLPOP reaches the server, then close.
	if !waitUntil(10*time.Second, func() bool { return strings.Contains(server.cli("CLIENT", "LIST"), "cmd=blpop") }) {
		t.Fatal("the BLPOP never reached the server")
	}
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, brisk.ErrClosed) {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the pending command was not completed by Close")
	}
	if _, err := c.Do("PING"); !errors.Is(err, brisk.ErrClosed) {
		t.Fatal(err)
	}
	c.Close() // idempotent
}

func TestEventsAndStats(t *testing.T) {
	var mu sync.Mutex
	var events []brisk.Event
	c := open(t, brisk.WithEventCallback(func(e brisk.Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}))
	k := key(t, "k")
	must(t)(c.Do("SET", k, "x"))
	c.Do("LPUSH", k, "y")
	mu.Lock()
	var commands []brisk.Event
	for _, e := range events {
		if e.Kind == brisk.EventCommand {
			commands = append(commands, e)
		}
	}
	mu.Unlock()
	if len(commands) != 2 || commands[0].Command != "SET" || commands[1].ErrorType != "WRONGTYPE" ||
		commands[0].ServerAddress != fmt.Sprintf("127.0.0.1:%d", server.port) || commands[0].Duration <= 0 {
		t.Fatalf("%+v", commands)
	}
	stats := c.Stats()
	if stats["commands"] != 2 || stats["errors"] != 1 || c.Stat(brisk.StatConnects) != 1 {
		t.Fatalf("%v", stats)
	}
}

func TestHelpers(t *testing.T) {
	c := open(t)
	k := key(t, "k")
	if _, err := brisk.String(c.Do("GET", k)); err != brisk.ErrNil {
		t.Fatal(err)
	}
	must(t)(c.Do("SET", k, 7))
	if n, err := brisk.Int64(c.Do("GET", k)); n != 7 || err != nil {
		t.Fatal(n, err)
	}
	h := key(t, "h")
	must(t)(c.Do("HSET", h, "a", "1"))
	if m, err := brisk.StringMap(c.Do("HGETALL", h)); err != nil || m["a"] != "1" {
		t.Fatal(m, err)
	}
	if d, err := brisk.RetryDelay(brisk.BackoffExponential, 10*time.Millisecond, 500*time.Millisecond, 3, 2); err != nil ||
		d != 40*time.Millisecond {
		t.Fatal(d, err)
	}
}

func TestSessionAndOptions(t *testing.T) {
	c := open(t, brisk.WithClientName("go-test"), brisk.WithDB(2), brisk.WithPoolSize(4),
		brisk.WithHealthCheckInterval(time.Second), brisk.WithRetryOnTimeout(true),
		brisk.WithRetryWrites(brisk.RetryWritesAlways), brisk.WithTCPKeepalive(10*time.Second, time.Second, 3))
	s, err := c.Session()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v := must(t)(s.Do("CLIENT", "GETNAME")); v != "go-test" {
		t.Fatal(v)
	}
	if v := must(t)(s.Do("CLIENT", "INFO")).(string); !strings.Contains(v, " db=2 ") {
		t.Fatal(v)
	}
}

// Every brisk_config_set_* / brisk_config_add_* of the header has an option.
func TestEveryConfigSetterHasAnOption(t *testing.T) {
	header, err := os.ReadFile("../../include/brisk.h")
	if err != nil {
		t.Skip("needs the repository's include/brisk.h")
	}
	options, err := os.ReadFile("options.go")
	if err != nil {
		t.Fatal(err)
	}
	setters := regexp.MustCompile(`brisk_status (brisk_config_(?:set|add)_\w+)\(`).FindAllStringSubmatch(string(header), -1)
	if len(setters) < 30 {
		t.Fatalf("only %d setters found", len(setters))
	}
	// Setters left unbound on purpose, and why.
	notBound := map[string]bool{
		// A C hook for programs that hand completions to their own thread; here every
		// completion goes to its command's channel, and Go's scheduler wakes the receiver.
		"brisk_config_set_async_batch_end": true,
	}
	for _, m := range setters {
		name := m[1]
		if _, skip := notBound[name]; skip {
			continue
		}
		bound := strings.Contains(string(options), "C."+name) ||
			strings.Contains(string(options), strings.TrimPrefix(name, "brisk_config_")) // via bg.c
		if !bound {
			t.Errorf("%s has no option", name)
		}
	}
}

// examples/hello runs against the test server (so the example cannot rot).
func TestExampleHello(t *testing.T) {
	out, err := exec.Command("go", "run", "./examples/hello", server.url()).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(string(out), "round-tripped intact: true") || !strings.HasSuffix(string(out), "ok\n") {
		t.Fatalf("%s", out)
	}
}

// Background connects (pool_min_idle) report their events from brisk's own threads: cgo
// callbacks from threads Go did not make.
func TestEventsFromBrisksThreads(t *testing.T) {
	var mu sync.Mutex
	connects := 0
	c := open(t, brisk.WithPoolMinIdle(2), brisk.WithEventCallback(func(e brisk.Event) {
		if e.Kind == brisk.EventConnect && e.Status == brisk.StatusOK {
			mu.Lock()
			connects++
			mu.Unlock()
		}
	}))
	if !waitUntil(20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return connects >= 2
	}) {
		t.Fatalf("%d connect events from the background", connects)
	}
	if c.Stat(brisk.StatPoolOpen) < 2 {
		t.Fatal(c.Stats())
	}
}

// TLS files are read when the client is made: unusable ones are ErrTLS there.
func TestUnusableTLSFiles(t *testing.T) {
	dir := t.TempDir()
	_, err := brisk.New(brisk.WithTLS(true), brisk.WithTLSClientCert(dir+"/cert.pem", dir+"/key.pem"))
	if !errors.Is(err, brisk.ErrTLS) || err.(*brisk.Error).Category != brisk.CategoryConnection {
		t.Fatal(err)
	}
	if _, err := brisk.New(brisk.WithTLS(true), brisk.WithTLSCAFile(dir+"/ca.pem")); !errors.Is(err, brisk.ErrTLS) {
		t.Fatal(err)
	}
}
