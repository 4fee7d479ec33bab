//go:build linux

package mesh

import (
	"io"
	"log/slog"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// blackhole listens on loopback with an accept queue of one and fills it:
// the kernel drops the SYNs of any further connection, so a dial to it
// waits out its timeout, as one to a member behind a DROP rule does.
func blackhole(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	c, err := net.DialTimeout("tcp", addr, 5*time.Second) // fills the queue
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return addr
}

// A stream dial in flight ends when the transport shuts down: the mesh's
// Shutdown waits for its rejoin goroutine, whose push-pull may be dialling a
// member whose SYNs are dropped (a one-way cut), for TCPTimeout (10 s on
// lan) without this.
func TestShutdownEndsADialInFlight(t *testing.T) {
	addr := blackhole(t)
	tr, err := newTransport("127.0.0.1", 0, "", &Stats{}, slog.New(slog.NewTextHandler(io.Discard, nil)), func([]byte, net.Addr) {})
	if err != nil {
		t.Fatal(err)
	}
	// The dial does hang: one with a short timeout times out.
	start := time.Now()
	if _, err := tr.DialAddressTimeout(memberlist.Address{Addr: addr}, 300*time.Millisecond); err == nil {
		t.Fatalf("a dial to the full queue at %s connected", addr)
	} else if time.Since(start) < 250*time.Millisecond {
		t.Fatalf("a dial to the full queue failed at once (%v), not by its timeout", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := tr.DialAddressTimeout(memberlist.Address{Addr: addr}, time.Minute)
		done <- err
	}()
	tr.Shutdown()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the dial connected")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a dial in flight outlived the transport's Shutdown by 5 s (its timeout is a minute)")
	}
}
