// Package brisk is a Redis and Valkey client on libbrisk, the brisk C library (cgo, found with
// pkg-config: install libbrisk-dev, or point PKG_CONFIG_PATH at an installed prefix).
//
//	c, err := brisk.Open("redis://localhost:6379")
//	if err != nil { ... }
//	defer c.Close()
//	_, err = c.Do("SET", "greeting", "hello")
//	v, err := brisk.String(c.Do("GET", "greeting"))
//
// One Client is shared by every goroutine: it pools connections, retries, times out and
// health-checks them, and follows a cluster's topology, all in libbrisk. Commands are Do
// (blocking), DoContext (async, cancellable by its context), pipelines (Pipeline,
// TxPipeline) and sessions (Session, Watch) for WATCH/MULTI/EXEC and blocking commands.
//
// Errors are *Error values with the call's Status, its Category and its message. The message
// is read by the same C call that failed, on the same OS thread: brisk's last-error message is
// per thread and Go moves goroutines between threads, so reading it in a later cgo call could
// read another call's.
package brisk
