package brisk_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"brisk"
)

// Sentinel mode checks its settings: without a master name the config is refused; with one,
// an unreachable sentinel is a connection error naming it (a real deployment is tested by the
// C and Rust suites).
func TestSentinelModeChecksItsSettingsAndNamesTheSentinelsTried(t *testing.T) {
	sentinel := fmt.Sprintf("127.0.0.1:%d", freePort())
	_, err := brisk.New(brisk.WithMode(brisk.ModeSentinel), brisk.WithNodes(sentinel))
	if !errors.Is(err, brisk.ErrInvalidArgument) || !strings.Contains(strings.ToLower(err.Error()), "master") {
		t.Fatalf("without a master name: %v", err)
	}

	c, err := brisk.New(brisk.WithMode(brisk.ModeSentinel), brisk.WithNodes(sentinel),
		brisk.WithSentinelMaster("mymaster"), brisk.WithSentinelAuth("sam", "secret"),
		brisk.WithSentinelTimeout(200*time.Millisecond), brisk.WithConnectTimeout(500*time.Millisecond))
	if err == nil {
		defer c.Close()
		_, err = c.Do("PING")
	}
	if !errors.Is(err, brisk.ErrConnection) || !strings.Contains(err.Error(), sentinel) {
		t.Fatalf("with an unreachable sentinel: %v", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Fatalf("the message shows the password: %v", err)
	}
}

// The sentinel options' own checks: an empty or spaced master name, the default user.
func TestSentinelOptions(t *testing.T) {
	for _, bad := range []string{"", "my master"} {
		if _, err := brisk.New(brisk.WithSentinelMaster(bad)); !errors.Is(err, brisk.ErrInvalidArgument) {
			t.Errorf("master name %q: %v", bad, err)
		}
	}
	c, err := brisk.New(brisk.WithSentinelAuth("", "secret"), brisk.WithSentinelAuth("", ""),
		brisk.WithSentinelTimeout(0))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
