// hello: examples/hello.c in Go. Connects (default redis://127.0.0.1:6379), writes a
// binary-safe value, reads it back, runs a pipeline, and shows how a failure is reported.
//
//	go run ./examples/hello [redis://host:port]
package main

import (
	"errors"
	"fmt"
	"os"

	"brisk"
)

func main() {
	url := "redis://127.0.0.1:6379"
	if len(os.Args) > 1 {
		url = os.Args[1]
	}
	fmt.Printf("brisk %s, connecting to %s\n", brisk.Version(), url)
	c, err := brisk.Open(url, brisk.WithClientName("brisk-hello"))
	if err != nil {
		fail("open", err)
	}
	defer c.Close()
	if err := c.Ping(); err != nil {
		fail("PING", err)
	}

	value := "hi\x00!" // binary-safe: a NUL inside
	if _, err := c.Do("SET", "brisk:hello", value); err != nil {
		fail("SET", err)
	}
	got, err := brisk.String(c.Do("GET", "brisk:hello"))
	if err != nil {
		fail("GET", err)
	}
	fmt.Printf("GET brisk:hello -> %d bytes, round-tripped intact: %v\n", len(got), got == value)

	p, err := c.Pipeline() // three commands, one round trip, replies in order
	if err != nil {
		fail("pipeline", err)
	}
	p.Append("INCR", "brisk:hello:counter")
	p.Append("LPUSH", "brisk:hello", "x") // WRONGTYPE: an error element
	p.Append("INCR", "brisk:hello:counter")
	results, err := p.Exec()
	p.Close()
	if err != nil {
		fail("pipeline", err)
	}
	for i, r := range results {
		fmt.Printf("  pipeline[%d]: %v\n", i, r)
	}

	_, err = c.Do("LPUSH", "brisk:hello", "x") // the status says what kind, the message what
	var e *brisk.Error
	if errors.As(err, &e) {
		fmt.Printf("LPUSH on a string -> %s (category %s): %s\n", e.Status, e.Category, e.Message)
	}
	c.Do("DEL", "brisk:hello", "brisk:hello:counter")
	fmt.Println("ok")
}

func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "%s failed: %v\n", what, err)
	os.Exit(1)
}
