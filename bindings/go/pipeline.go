package brisk

// #include "bg.h"
import "C"

// Pipeline sends commands in one round trip; a transaction pipeline wraps them in MULTI/EXEC.
// Use one per goroutine (the client they share is safe for all). Close it when done.
type Pipeline struct {
	client *Client
	p      *C.brisk_pipeline
	queued int
}

// Pipeline makes a pipeline.
func (c *Client) Pipeline() (*Pipeline, error) { return c.newPipeline(0) }

// TxPipeline makes a transaction: its commands run between MULTI and EXEC, atomically.
func (c *Client) TxPipeline() (*Pipeline, error) { return c.newPipeline(1) }

func (c *Client) newPipeline(transaction C.int) (*Pipeline, error) {
	cl, err := c.acquire()
	if err != nil {
		return nil, err
	}
	defer c.release()
	var p *C.brisk_pipeline
	var msg *C.char
	if err := check(C.bg_pipeline_new(cl, transaction, &p, &msg), msg); err != nil {
		return nil, err
	}
	return &Pipeline{client: c, p: p}, nil
}

// Append queues a command (nothing is sent until Exec).
func (p *Pipeline) Append(args ...any) error {
	if p.p == nil {
		return newError(StatusClosed, "brisk: the pipeline is closed")
	}
	a, err := packArgs(args)
	if err != nil {
		return err
	}
	defer a.release()
	var msg *C.char
	if err := check(C.bg_pipeline_append(p.p, a.ptr(), a.lensPtr(), a.count(), &msg), msg); err != nil {
		return err
	}
	p.queued++
	return nil
}

// Len is the number of queued commands.
func (p *Pipeline) Len() int { return p.queued }

// Exec sends the queued commands and returns one result per command, in order. A command's
// error reply is an *Error in the results, not a failed Exec; a transaction fails with
// ErrWatch when a WATCHed key changed and with ErrServer (EXECABORT) when the server
// discarded it. The pipeline is empty afterwards and can be reused.
func (p *Pipeline) Exec() ([]any, error) {
	if p.p == nil {
		return nil, newError(StatusClosed, "brisk: the pipeline is closed")
	}
	if p.queued == 0 {
		return []any{}, nil
	}
	p.queued = 0
	if _, err := p.client.acquire(); err != nil {
		return nil, err
	}
	defer p.client.release()
	var replies *C.brisk_reply
	var msg *C.char
	if err := check(C.bg_pipeline_exec(p.p, &replies, &msg), msg); err != nil {
		return nil, err
	}
	defer C.brisk_reply_free(replies)
	results, _ := replyValue(replies).([]any)
	return results, nil
}

// Close frees the pipeline and any commands still queued.
func (p *Pipeline) Close() {
	C.brisk_pipeline_free(p.p)
	p.p = nil
}

// Session is one pooled connection pinned for commands that must share it: WATCH/MULTI/EXEC,
// blocking commands, per-connection CLIENT commands. Use it from one goroutine; Close gives
// the connection back (an open MULTI or WATCH is reset first).
type Session struct {
	client *Client
	s      *C.brisk_session
}

// Session borrows a connection for a session.
func (c *Client) Session() (*Session, error) {
	cl, err := c.acquire()
	if err != nil {
		return nil, err
	}
	defer c.release()
	var s *C.brisk_session
	var msg *C.char
	if err := check(C.bg_session_new(cl, &s, &msg), msg); err != nil {
		return nil, err
	}
	return &Session{client: c, s: s}, nil
}

// Do runs one command on the session's connection. An EXEC whose WATCHed key changed returns
// ErrWatch.
func (s *Session) Do(args ...any) (any, error) {
	if s.s == nil {
		return nil, newError(StatusClosed, "brisk: the session is closed")
	}
	a, err := packArgs(args)
	if err != nil {
		return nil, err
	}
	defer a.release()
	if _, err := s.client.acquire(); err != nil {
		return nil, err
	}
	defer s.client.release()
	var reply *C.brisk_reply
	var msg *C.char
	if err := check(C.bg_session_command(s.s, a.ptr(), a.lensPtr(), a.count(), &reply, &msg), msg); err != nil {
		return nil, err
	}
	defer C.brisk_reply_free(reply)
	return replyValue(reply), nil
}

// Close gives the connection back to the pool.
func (s *Session) Close() {
	C.brisk_session_free(s.s)
	s.s = nil
}

// Watch runs fn on a session with keys WATCHed: fn reads with s.Do, then runs MULTI, its
// writes and EXEC. When a watched key changed meanwhile, EXEC fails and Watch returns an error
// matching ErrWatch: call Watch again to retry (as go-redis's Watch).
func (c *Client) Watch(fn func(s *Session) error, keys ...string) error {
	s, err := c.Session()
	if err != nil {
		return err
	}
	defer s.Close()
	if len(keys) > 0 {
		args := make([]any, 0, len(keys)+1)
		args = append(args, "WATCH")
		for _, k := range keys {
			args = append(args, k)
		}
		if _, err := s.Do(args...); err != nil {
			return err
		}
	}
	return fn(s)
}
