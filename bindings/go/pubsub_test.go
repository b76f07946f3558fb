package brisk_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"brisk"
)

func subscriber(t *testing.T, c *brisk.Client) *brisk.Subscriber {
	t.Helper()
	s, err := c.NewSubscriber()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func receive(t *testing.T, s *brisk.Subscriber) *brisk.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := s.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Channel, pattern and binary payloads, in order, with their fields; unsubscribe stops them.
func TestSubscriberReceivesChannelAndPatternMessages(t *testing.T) {
	publisher, c := open(t), open(t)
	s := subscriber(t, c)
	chanName, patChan := key(t, "chan"), key(t, "pattern")
	pattern := strings.TrimSuffix(patChan, "pattern") + "pat*"
	must(t)(nil, s.Subscribe(chanName))
	must(t)(nil, s.PSubscribe(pattern))
	if m, err := s.TryReceive(); m != nil || err != nil {
		t.Fatal(m, err)
	}
	payloads := []string{"one", "two \x00 binary \xff", "three"}
	for _, p := range payloads {
		if n := must(t)(publisher.Do("PUBLISH", chanName, p)); n != int64(1) {
			t.Fatal(n)
		}
		if n := must(t)(publisher.Do("PUBLISH", patChan, []byte(p))); n != int64(1) {
			t.Fatal(n)
		}
	}
	var byChannel, byPattern []*brisk.Message
	for i := 0; i < 2*len(payloads); i++ {
		m := receive(t, s)
		if m.Kind == brisk.SubscriptionPattern {
			byPattern = append(byPattern, m)
		} else {
			byChannel = append(byChannel, m)
		}
	}
	for i, p := range payloads {
		if m := byChannel[i]; m.Kind != brisk.SubscriptionChannel || m.Channel != chanName || m.Pattern != "" || m.Payload != p {
			t.Fatalf("%d: %+v", i, m)
		}
		if m := byPattern[i]; m.Channel != patChan || m.Pattern != pattern || m.Payload != p {
			t.Fatalf("%d: %+v", i, m)
		}
	}
	if got := s.Stat(brisk.StatPubSubMessages); got != 6 || c.Stat(brisk.StatPubSubMessages) != 6 {
		t.Fatal(got, c.Stats())
	}

	must(t)(nil, s.Unsubscribe(chanName))
	if n := must(t)(publisher.Do("PUBLISH", chanName, "gone")); n != int64(0) {
		t.Fatal(n)
	}
	must(t)(nil, s.PUnsubscribe(pattern))
	if n := must(t)(publisher.Do("PUBLISH", patChan, "gone")); n != int64(0) {
		t.Fatal(n)
	}
	if err := s.Subscribe(); !errors.Is(err, brisk.ErrInvalidArgument) {
		t.Fatal(err)
	}
}

// ReceiveMessage honours its context; Close wakes a waiting ReceiveMessage promptly.
func TestSubscriberContextAndClose(t *testing.T) {
	c := open(t)
	s := subscriber(t, c)
	must(t)(nil, s.Subscribe(key(t, "quiet")))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	started := time.Now()
	if _, err := s.ReceiveMessage(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
	if elapsed := time.Since(started); elapsed < 150*time.Millisecond || elapsed > 20*time.Second {
		t.Fatal(elapsed)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.ReceiveMessage(context.Background())
		done <- err
	}()
	s.Close()
	select {
	case err := <-done:
		if !errors.Is(err, brisk.ErrClosed) {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not end ReceiveMessage")
	}
	if err := s.Subscribe("x"); !errors.Is(err, brisk.ErrClosed) {
		t.Fatal(err)
	}
	s.Close() // idempotent
}

// Channel delivers shard-channel messages and is closed when the client is closed (after
// what was queued).
func TestSubscriberChannelAndShardChannels(t *testing.T) {
	publisher := open(t)
	c, err := brisk.Open(server.url())
	if err != nil {
		t.Fatal(err)
	}
	s := subscriber(t, c)
	shard := key(t, "shard")
	must(t)(nil, s.SSubscribe(shard))
	ch := s.Channel()
	if s.Channel() != ch {
		t.Fatal("Channel returned another channel")
	}
	must(t)(publisher.Do("SPUBLISH", shard, "first"))
	select {
	case m := <-ch:
		if m.Kind != brisk.SubscriptionShard || m.Channel != shard || m.Payload != "first" {
			t.Fatalf("%+v", m)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no message on the channel")
	}
	must(t)(nil, s.SUnsubscribe(shard))
	c.Close()
	select {
	case m, ok := <-ch:
		if ok {
			t.Fatalf("a message after the client closed: %+v", m)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the channel was not closed with the client")
	}
}

// A small queue that drops the newest messages, and a resubscription after CLIENT KILL
// (reported as an event and counted).
func TestSubscriberQueueAndResubscribe(t *testing.T) {
	publisher := open(t)
	var mu sync.Mutex
	resubscribes := 0
	c := open(t, brisk.WithPubSubQueue(2, brisk.OverflowDropNewest),
		brisk.WithPubSubHealthCheck(time.Second, 2*time.Second),
		brisk.WithEventCallback(func(e brisk.Event) {
			if e.Kind == brisk.EventResubscribe {
				mu.Lock()
				resubscribes++
				mu.Unlock()
			}
		}))
	s := subscriber(t, c)
	ch := key(t, "chan")
	must(t)(nil, s.Subscribe(ch))
	for i := 0; i < 5; i++ {
		must(t)(publisher.Do("PUBLISH", ch, i))
	}
	if !waitUntil(10*time.Second, func() bool { return s.Stat(brisk.StatPubSubMessages) == 5 }) {
		t.Fatal(s.Stat(brisk.StatPubSubMessages))
	}
	if d := s.Stat(brisk.StatPubSubDropped); d != 3 {
		t.Fatal(d)
	}
	if a, b := receive(t, s), receive(t, s); a.Payload != "0" || b.Payload != "1" {
		t.Fatal(a, b)
	}

	must(t)(publisher.Do("CLIENT", "KILL", "TYPE", "pubsub"))
	if !waitUntil(30*time.Second, func() bool { return s.Stat(brisk.StatPubSubResubscribes) >= 1 }) {
		t.Fatal("no resubscription")
	}
	mu.Lock()
	seen := resubscribes
	mu.Unlock()
	if seen == 0 {
		t.Fatal("no EventResubscribe")
	}
	must(t)(publisher.Do("PUBLISH", ch, "after"))
	if m := receive(t, s); m.Payload != "after" {
		t.Fatalf("%+v", m)
	}
	if _, err := brisk.New(brisk.WithPubSubQueue(0, brisk.OverflowBlock)); !errors.Is(err, brisk.ErrInvalidArgument) {
		t.Fatal(err)
	}
}
