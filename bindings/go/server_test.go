package brisk_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testServer is a redis-server (or $BRISK_TEST_SERVER) on a free loopback port, in its own
// directory.
type testServer struct {
	cmd  *exec.Cmd
	port int
	dir  string
}

func program(env, fallback string) string {
	if p := os.Getenv(env); p != "" {
		return p
	}
	return fallback
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func startServer(extra ...string) (*testServer, error) {
	dir, err := os.MkdirTemp("", "brisk-go-")
	if err != nil {
		return nil, err
	}
	for attempt := 0; attempt < 5; attempt++ {
		port := freePort()
		args := append([]string{"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--dir", dir,
			"--save", "", "--appendonly", "no", "--logfile", filepath.Join(dir, "server.log")}, extra...)
		cmd := exec.Command(program("BRISK_TEST_SERVER", "redis-server"), args...)
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		s := &testServer{cmd: cmd, port: port, dir: dir}
		up := waitUntil(10*time.Second, func() bool {
			select {
			case <-exited:
				return true
			default:
			}
			return strings.Contains(s.cli("PING"), "PONG")
		})
		select {
		case <-exited:
			continue // the port was taken meanwhile: try another
		default:
		}
		if up {
			return s, nil
		}
		cmd.Process.Kill()
	}
	return nil, fmt.Errorf("could not start the server (see %s/server.log)", dir)
}

func (s *testServer) cli(args ...string) string {
	out, _ := exec.Command(program("BRISK_TEST_CLI", "redis-cli"),
		append([]string{"-h", "127.0.0.1", "-p", fmt.Sprint(s.port)}, args...)...).Output()
	return string(out)
}

func (s *testServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d", s.port) }

func (s *testServer) stop() {
	s.cmd.Process.Kill()
	os.RemoveAll(s.dir)
}

var server *testServer

func TestMain(m *testing.M) {
	var err error
	server, err = startServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	server.stop()
	os.Exit(code)
}

// silentListener accepts connections and never answers.
func silentListener(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().(*net.TCPAddr).Port
}

var keyCounter int

// key is a key unique to the test.
func key(t *testing.T, name string) string {
	keyCounter++
	return fmt.Sprintf("go:%s:%d:%s", t.Name(), keyCounter, name)
}
