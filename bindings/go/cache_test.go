package brisk_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"brisk"
)

// readUntilAHit GETs until one is served from the cache: a hit needs the node's recent answer
// to a PING (brisk.h), which a busy machine may delay, so it polls with a deadline.
func readUntilAHit(t *testing.T, c *brisk.Client, k, want string) {
	t.Helper()
	ok := waitUntil(10*time.Second, func() bool {
		hits := c.Stat(brisk.StatCacheHits)
		if v := must(t)(c.Do("GET", k)); v != want {
			t.Fatalf("GET %s = %v, want %s", k, v, want)
		}
		return c.Stat(brisk.StatCacheHits) > hits
	})
	if !ok {
		t.Fatalf("no cache hit within 10 s: %v", c.Stats())
	}
}

// A hit is served; another client's write invalidates it (the new value is read back, the
// invalidation counted and reported); CacheFlush drops the rest.
func TestClientCacheHitsAndInvalidation(t *testing.T) {
	writer := open(t)
	var mu sync.Mutex
	var reasons []brisk.CacheReason
	cached := open(t, brisk.WithClientCache(1000, time.Minute), brisk.WithClientCacheMaxBytes(1<<20),
		brisk.WithEventCallback(func(e brisk.Event) {
			if e.Kind == brisk.EventCacheInvalidate {
				mu.Lock()
				reasons = append(reasons, e.CacheReason)
				mu.Unlock()
			}
		}))
	k := key(t, "k")
	must(t)(writer.Do("SET", k, "v1"))
	readUntilAHit(t, cached, k, "v1")
	if cached.Stat(brisk.StatCacheEntries) != 1 || cached.Stat(brisk.StatCacheBytes) == 0 {
		t.Fatal(cached.Stats())
	}

	before := cached.Stat(brisk.StatCacheInvalidations)
	must(t)(writer.Do("SET", k, "v2"))
	if !waitUntil(10*time.Second, func() bool { return cached.Stat(brisk.StatCacheInvalidations) > before }) {
		t.Fatal("no invalidation counted", cached.Stats())
	}
	if v := must(t)(cached.Do("GET", k)); v != "v2" {
		t.Fatal(v)
	}
	mu.Lock()
	got := append([]brisk.CacheReason(nil), reasons...)
	mu.Unlock()
	if len(got) == 0 || got[0] != brisk.CacheReasonInvalidation {
		t.Fatal(got)
	}

	readUntilAHit(t, cached, k, "v2")
	if err := cached.CacheFlush(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	last := reasons[len(reasons)-1]
	mu.Unlock()
	if cached.Stat(brisk.StatCacheEntries) != 0 || last != brisk.CacheReasonFlush {
		t.Fatal(cached.Stats(), last)
	}
	if s := cached.Stats(); s["cache_hits"] < 2 || s["cache_misses"] < 2 {
		t.Fatal(s)
	}
}

// Prefixes limit what is cached (broadcast mode); this client's own writes are read back.
func TestClientCachePrefixesAndOwnWrites(t *testing.T) {
	cachedKey, otherKey := key(t, "cached"), key(t, "other")
	prefix := strings.TrimSuffix(cachedKey, "cached") + "cach"
	c := open(t, brisk.WithClientCache(100, 0), brisk.WithClientCacheMode(brisk.CacheBroadcast),
		brisk.WithClientCachePrefixes(prefix))
	must(t)(c.Do("SET", cachedKey, "a"))
	must(t)(c.Do("SET", otherKey, "b"))
	readUntilAHit(t, c, cachedKey, "a")
	hits := c.Stat(brisk.StatCacheHits)
	for i := 0; i < 3; i++ {
		if v := must(t)(c.Do("GET", otherKey)); v != "b" {
			t.Fatal(v)
		}
	}
	if c.Stat(brisk.StatCacheHits) != hits {
		t.Fatal("a key outside the prefixes was served from the cache")
	}
	must(t)(c.Do("SET", cachedKey, "a2"))
	if v := must(t)(c.Do("GET", cachedKey)); v != "a2" {
		t.Fatal(v)
	}
	if _, err := brisk.New(brisk.WithClientCache(10, 0), brisk.WithClientCachePrefixes("")); !errors.Is(err, brisk.ErrInvalidArgument) {
		t.Fatal(err)
	}
	if _, err := brisk.New(brisk.WithClientCacheMode(99)); !errors.Is(err, brisk.ErrInvalidArgument) {
		t.Fatal(err)
	}
}
