package brisk

// #include "bg.h"
import "C"

import (
	"context"
	"sync"
	"time"
	"unsafe"
)

// Subscription is the kind of a subscription, and Message.Kind.
type Subscription uint32

// The subscription kinds.
const (
	SubscriptionChannel Subscription = C.BRISK_SUBSCRIPTION_CHANNEL
	SubscriptionPattern Subscription = C.BRISK_SUBSCRIPTION_PATTERN
	SubscriptionShard   Subscription = C.BRISK_SUBSCRIPTION_SHARD
)

// Message is one Pub/Sub message, copied out of libbrisk. The strings are binary safe.
type Message struct {
	Kind    Subscription
	Channel string
	Pattern string // the pattern that matched (SubscriptionPattern); "" otherwise
	Payload string
}

// Subscriber holds subscriptions to channels, patterns and shard channels, and the messages
// they bring. Its connections are its own (not the client's pool), opened by the first
// subscription; after a lost connection it reconnects and subscribes again by itself
// (EventResubscribe, StatPubSubResubscribes). Delivery is at most once: what is published
// while a connection is down is lost.
//
// Messages wait in a bounded queue (WithPubSubQueue) until taken, pull style: ReceiveMessage
// waits for the next one, or Channel delivers them on a Go channel. Every method is safe for
// concurrent use. Close it when done (closing the client ends it too: ReceiveMessage then
// returns what was queued, then ErrClosed).
type Subscriber struct {
	mu     sync.RWMutex // held for reading by calls in flight, for writing by Close
	s      *C.brisk_subscriber
	closed chan struct{} // closed by Close: wakes ReceiveMessage and the Channel goroutine

	chOnce sync.Once
	ch     chan *Message
}

// receiveSlice is how long one C call waits for a message: ReceiveMessage waits in such
// slices, so that a cancelled context or Close is noticed within it.
const receiveSlice = 100 * time.Millisecond

// NewSubscriber makes a pull-style subscriber on c (any mode: standalone, cluster, Sentinel).
func (c *Client) NewSubscriber() (*Subscriber, error) {
	cl, err := c.acquire()
	if err != nil {
		return nil, err
	}
	defer c.release()
	var s *C.brisk_subscriber
	var msg *C.char
	if err := check(C.bg_subscriber_new(cl, &s, &msg), msg); err != nil {
		return nil, err
	}
	return &Subscriber{s: s, closed: make(chan struct{})}, nil
}

func (s *Subscriber) acquire() (*C.brisk_subscriber, error) {
	s.mu.RLock()
	if s.s == nil {
		s.mu.RUnlock()
		return nil, newError(StatusClosed, "brisk: the subscriber is closed")
	}
	return s.s, nil
}

func (s *Subscriber) release() { s.mu.RUnlock() }

func (s *Subscriber) change(subscribe bool, kind Subscription, names []string) error {
	if len(names) == 0 {
		return newError(StatusInvalidArgument, "brisk: name at least one channel or pattern")
	}
	values := make([]any, len(names))
	for i, n := range names {
		values[i] = n
	}
	a, err := packArgs(values)
	if err != nil {
		return err
	}
	defer a.release()
	sub, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.release()
	flag := C.int(0)
	if subscribe {
		flag = 1
	}
	var msg *C.char
	return check(C.bg_subscriber_change(sub, flag, C.brisk_subscription(kind), a.ptr(), a.lensPtr(),
		a.count(), &msg), msg)
}

// Subscribe subscribes to channels, all in one round trip per node; it returns once the server
// confirmed every one (on failure none of them stays subscribed).
func (s *Subscriber) Subscribe(channels ...string) error {
	return s.change(true, SubscriptionChannel, channels)
}

// PSubscribe subscribes to glob-style patterns ("news.*").
func (s *Subscriber) PSubscribe(patterns ...string) error {
	return s.change(true, SubscriptionPattern, patterns)
}

// SSubscribe subscribes to shard channels (on a cluster, at the node owning each one's slot).
func (s *Subscriber) SSubscribe(shardChannels ...string) error {
	return s.change(true, SubscriptionShard, shardChannels)
}

// Unsubscribe unsubscribes from channels; once it returns no message of them is delivered,
// save those already queued. Names not subscribed are no error.
func (s *Subscriber) Unsubscribe(channels ...string) error {
	return s.change(false, SubscriptionChannel, channels)
}

// PUnsubscribe unsubscribes from patterns.
func (s *Subscriber) PUnsubscribe(patterns ...string) error {
	return s.change(false, SubscriptionPattern, patterns)
}

// SUnsubscribe unsubscribes from shard channels.
func (s *Subscriber) SUnsubscribe(shardChannels ...string) error {
	return s.change(false, SubscriptionShard, shardChannels)
}

// next takes one message, waiting up to wait (0: not at all); nil, nil when none came.
func (s *Subscriber) next(wait time.Duration) (*Message, error) {
	sub, err := s.acquire()
	if err != nil {
		return nil, err
	}
	defer s.release()
	ms, _ := durationMs("wait", wait)
	var m C.bg_message
	var msg *C.char
	status := C.bg_subscriber_next(sub, C.uint32_t(ms), &m, &msg)
	if status == C.BRISK_ERR_TIMEOUT {
		C.free(unsafe.Pointer(msg))
		return nil, nil
	}
	if err := check(status, msg); err != nil {
		return nil, err
	}
	defer C.brisk_message_free(m.m)
	out := &Message{
		Kind:    Subscription(m.kind),
		Channel: C.GoStringN(m.channel, C.int(m.channel_len)),
		Payload: C.GoStringN(m.payload, C.int(m.payload_len)),
	}
	if m.pattern != nil {
		out.Pattern = C.GoStringN(m.pattern, C.int(m.pattern_len))
	}
	return out, nil
}

// ReceiveMessage waits for the next message until ctx ends (ctx.Err()) or the subscriber is
// closed (ErrClosed). After the client was closed it returns the messages still queued, then
// ErrClosed. A cancelled ctx or Close is noticed within 100 ms.
func (s *Subscriber) ReceiveMessage(ctx context.Context) (*Message, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		select {
		case <-s.closed:
			return nil, newError(StatusClosed, "brisk: the subscriber is closed")
		default:
		}
		wait := receiveSlice
		if deadline, ok := ctx.Deadline(); ok {
			if left := time.Until(deadline); left < wait {
				wait = left
			}
		}
		if wait <= 0 {
			return nil, context.DeadlineExceeded
		}
		m, err := s.next(wait)
		if m != nil || err != nil {
			return m, err
		}
	}
}

// TryReceive returns the next message if one waits, else nil (and no error).
func (s *Subscriber) TryReceive() (*Message, error) { return s.next(0) }

// Channel returns a channel that delivers the messages, fed by a goroutine that takes each
// from the queue only once the previous one was received (meanwhile the queue and its
// overflow policy, WithPubSubQueue, apply). It is closed when the subscriber or its client
// is closed. Every call returns the same channel; do not mix it with ReceiveMessage.
func (s *Subscriber) Channel() <-chan *Message {
	s.chOnce.Do(func() {
		s.ch = make(chan *Message)
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-s.closed
			cancel()
		}()
		go func() {
			defer close(s.ch)
			for {
				m, err := s.ReceiveMessage(ctx)
				if err != nil {
					return
				}
				select {
				case s.ch <- m:
				case <-s.closed:
					return
				}
			}
		}()
	})
	return s.ch
}

// Stat reads this subscriber's share of StatPubSubMessages, StatPubSubDropped and
// StatPubSubResubscribes (0 for any other); Client.Stat sums them over its subscribers.
func (s *Subscriber) Stat(which Stat) uint64 {
	sub, err := s.acquire()
	if err != nil {
		return 0
	}
	defer s.release()
	return uint64(C.brisk_subscriber_stat(sub, C.brisk_stat(which)))
}

// Close closes the subscriber's connections and drops what is still queued, after waiting
// for the calls in flight (at most about 100 ms for a waiting ReceiveMessage). Idempotent.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	sub := s.s
	s.s = nil
	if sub != nil {
		close(s.closed)
	}
	s.mu.Unlock()
	if sub != nil {
		C.brisk_subscriber_free(sub)
	}
	return nil
}
